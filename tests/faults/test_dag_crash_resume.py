"""kill -9 the head running a workflow five times, at each sixth of its fan-out; each time
`idds dag resume` or an `idds serve` head goes on with it, and the last run finishes it.

What must hold: every node succeeds once in the records; no node whose result was recorded
before a kill runs again; reruns only of what a killed head had in flight (at most `parallel`
per kill), each of those attempts recorded as lost; the fan-in after them runs once, with
every output.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from head_kills import (
    assert_nothing_recorded_ran_again,
    executions,
    head_env,
    heads_until_each_kill,
    idds_argv,
    kill_when,
    lost_attempts,
    start,
    succeeded_attempts,
)

from idds import tasks as tq
from idds.db import connect

pytestmark = [pytest.mark.faults, pytest.mark.slow]
NODES = Path(__file__).parents[1] / "workflow_nodes"
WIDTH = 30
PARALLEL = 2


def _succeeded(engine) -> set[str]:
    """The nodes recorded as succeeded, named as their side effects are (``square7``)."""
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(tq.tasks.c.payload).where(tq.tasks.c.state == tq.TaskState.SUCCEEDED)
        ).scalars()
        return {p["node"].replace("[", "").replace("]", "") for p in rows}


def _squares(engine) -> set[str]:
    return {n for n in _succeeded(engine) if n.startswith("square")}


def test_kill_9_five_times_mid_workflow_then_resume_runs_nothing_finished_again(
    settings, tmp_path, fault_figures
):
    log = tmp_path / "executions.jsonl"
    spec = tmp_path / "wf.json"
    spec.write_text(json.dumps({
        "name": "crashy-wf", "pythonpath": [str(NODES)], "parallel": PARALLEL,
        "nodes": [
            {"name": "square", "callable": "nodes_for_tests:square", "foreach": f"range({WIDTH})",
             "args": {"x": "${item}", "log": str(log), "sleep": 0.25}},
            {"name": "total", "callable": "nodes_for_tests:total", "after": ["square"],
             "args": {"log": str(log)}},
        ],
        "output": "total",
    }))  # fmt: skip
    engine = connect(settings.db_url)
    heads = heads_until_each_kill(settings, "dag", spec, "crashy-wf")
    kills = []
    for k, argv in enumerate(heads, 1):
        head = start(argv, tmp_path / "heads.out")
        note = lambda: executions(log, str)  # noqa: E731
        kills.append(kill_when(head, lambda: _squares(engine), k * WIDTH // 6, note, engine))
    assert len(kills[-1].recorded) < WIDTH

    final = subprocess.run(
        idds_argv(settings, "dag", "resume", "crashy-wf", "--no-progress"), env=head_env(),
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr
    assert f"output: {sum(i * i for i in range(WIDTH))}" in final.stdout

    ok, lost, recorded = succeeded_attempts(engine), lost_attempts(engine), _succeeded(engine)
    engine.dispose()
    runs = executions(log, str)
    reruns = sum(n - 1 for n in runs.values())
    fault_figures(kills=len(kills), lost=WIDTH + 1 - len(recorded),
                  duplicates=ok - len(recorded), failed_attempts=lost)  # fmt: skip
    assert recorded == {f"square{i}" for i in range(WIDTH)} | {"total"}
    assert ok == WIDTH + 1  # each result recorded exactly once
    assert set(runs) == recorded
    assert runs["total"] == 1
    assert_nothing_recorded_ran_again(kills, runs)
    # only what a killed head had in flight ran again, and each of those attempts is on record
    assert all(k.in_flight <= 2 * PARALLEL for k in kills)  # running, and as many held ahead
    assert lost == sum(k.in_flight for k in kills) >= 1
    assert reruns <= lost
