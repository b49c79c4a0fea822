"""`idds serve` runs what was launched with --detach, in child processes of its own."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

import hpo
from dag import load_workflow
from idds.cli import main
from idds.serve import Server

TESTS = Path(__file__).parents[1]


def test_detached_study_and_workflow_are_run_by_a_serve_head(settings, tmp_path, capsys):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "name": "detached", "objective": "objectives:quadratic", "max_points": 6, "parallel": 2,
        "space": {"x": {"type": "float", "low": -2.0, "high": 2.0}},
        "proposer": "optuna:random", "seed": 1, "pythonpath": [str(TESTS)],
    }))  # fmt: skip
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"name": "detached-wf", "nodes": [
        {"name": "a", "command": ["sh", "-c", "printf 3 > output.json"]},
        {"name": "b", "command": ["sh", "-c", "printf '${a + 1}' > output.json"]}],
        "output": "b"}))  # fmt: skip
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    for args in (["hpo", "launch", str(study)], ["dag", "launch", str(wf)]):
        main([*db, *args, "--detach"])  # returns without SystemExit when it succeeds
    assert "an `idds serve` head will run it" in capsys.readouterr().out
    assert hpo.load_study("detached", settings=settings).state == "active"
    assert not hpo.load_study("detached", settings=settings).trials  # nothing ran yet

    server = Server(settings, poll_s=0.3)
    assert {"study", "workflow", "toyscan", "carousel"} <= set(server.kinds)
    server.serve(until_idle=True)

    done = hpo.load_study("detached", settings=settings)
    assert done.state == "finished"
    assert sum(t.state == "succeeded" for t in done.trials) == 6
    workflow = load_workflow("detached-wf", settings=settings)
    assert workflow.state == "finished" and workflow.output() == 4
    assert Server(settings).free_owners() == []
