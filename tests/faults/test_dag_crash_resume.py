"""kill -9 the head running a workflow halfway; `idds dag resume` finishes it.

What must hold: every node succeeds once in the records; no node whose result was recorded
before the kill runs again (only nodes in flight at the kill may run twice); the fan-in
after them runs once, with every output.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from idds import tasks as tq
from idds.db import connect

pytestmark = [pytest.mark.faults, pytest.mark.slow]
NODES = Path(__file__).parents[1] / "workflow_nodes"
WIDTH = 16


def _idds(settings, *args):
    return [
        sys.executable, "-m", "idds", "--db", settings.db_url,
        "--ray-address", settings.ray_address, "dag", *args, "--no-progress",
    ]  # fmt: skip


def _succeeded(engine) -> set[str]:
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(tq.tasks.c.payload).where(tq.tasks.c.state == tq.TaskState.SUCCEEDED)
        ).scalars()
        return {p["node"] for p in rows}


def test_kill_9_mid_workflow_then_resume_runs_nothing_finished_again(settings, tmp_path):
    log = tmp_path / "executions.jsonl"
    spec = tmp_path / "wf.json"
    spec.write_text(json.dumps({
        "name": "crashy-wf", "pythonpath": [str(NODES)], "parallel": 2,
        "nodes": [
            {"name": "square", "callable": "nodes_for_tests:square", "foreach": f"range({WIDTH})",
             "args": {"x": "${item}", "log": str(log), "sleep": 0.3}},
            {"name": "total", "callable": "nodes_for_tests:total", "after": ["square"],
             "args": {"log": str(log)}},
        ],
        "output": "total",
    }))  # fmt: skip
    env = {**os.environ, "IDDS_LEASE_SECONDS": "60"}
    head = subprocess.Popen(_idds(settings, "launch", str(spec)), env=env)
    engine = connect(settings.db_url)
    deadline = time.monotonic() + 120
    while len(_succeeded(engine)) < WIDTH // 2:
        assert head.poll() is None, "the workflow ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    head.kill()  # SIGKILL: no cleanup of any kind
    head.wait()
    before = _succeeded(engine)
    assert len(before) < WIDTH

    resumed = subprocess.run(
        _idds(settings, "resume", "crashy-wf"), env=env, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    total = sum(i * i for i in range(WIDTH))
    assert f"output: {total}" in resumed.stdout

    after = _succeeded(engine)
    with engine.begin() as conn:
        ok_attempts = conn.execute(
            sa.select(sa.func.count()).where(tq.attempts.c.state == "succeeded")
        ).scalar_one()
    engine.dispose()
    assert after == {f"square[{i}]" for i in range(WIDTH)} | {"total"}
    assert ok_attempts == WIDTH + 1  # each result recorded exactly once
    runs = collections.Counter(json.loads(line) for line in log.read_text().splitlines())
    for path in before:
        name = f"square{path[7:-1]}"
        assert runs[name] == 1, f"{path} was recorded before the kill yet ran again"
    assert runs["total"] == 1
    assert sum(n - 1 for n in runs.values()) <= 2  # only the 2 in flight may have run twice
