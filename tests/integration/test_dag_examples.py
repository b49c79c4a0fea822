"""The workflow examples in examples/dag run as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dag import Workflow
from idds.cli import main

EXAMPLES = Path(__file__).parents[2] / "examples" / "dag"


def test_active_learning_loop_reaches_its_target_or_ten_iterations(settings):
    wf = Workflow.from_file(EXAMPLES / "active_learning" / "workflow.yaml", settings=settings)
    assert wf.run() == "finished"
    nodes = {n.path: n for n in wf.nodes()}
    steps = [nodes[f"learn[{i}].step"] for i in range(10) if f"learn[{i}].step" in nodes]
    accuracies = [s.output["accuracy"] for s in steps]
    target = wf.spec.params["target"]
    assert accuracies[-1] >= target or len(steps) == 10
    assert all(a < target for a in accuracies[:-1])  # it stopped at the first that reached it
    labelled = [s.output["n_labelled"] for s in steps]
    assert labelled == [30 + 20 * i for i in range(len(steps))]  # 20 points queried per round
    assert wf.output()["accuracy"] == accuracies[-1]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rubin_like_campaign_runs_scaled_down(settings, capsys):
    args = [
        "--db", settings.db_url, "--ray-address", settings.ray_address, "dag", "launch",
        str(EXAMPLES / "rubin" / "pipeline.yaml"), "--no-progress",
        "--set", "visits=3", "--set", "detectors=5", "--set", "patches=2",
    ]  # fmt: skip
    main(args)
    out = capsys.readouterr().out
    # 3 x 5 ISR + 3 calibrations + 2 coadds + 1 catalog
    assert "finished: 21 succeeded" in out
    assert 'output: {"patches": 2, "visits": 3}' in out
