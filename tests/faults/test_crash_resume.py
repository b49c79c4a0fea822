"""kill -9 the process running a study halfway; `idds hpo resume` finishes it.

What must hold: exactly max_points succeeded trials, each result recorded once, and no point
whose result was recorded before the kill run again (a point in flight at the kill may run
again: at least once, recorded once).
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
import yaml

from idds import tasks as tq
from idds.db import connect

pytestmark = [pytest.mark.faults, pytest.mark.slow]
TESTS = Path(__file__).parents[1]
MAX_POINTS = 24


def _idds(settings, *args):
    return [
        sys.executable, "-m", "idds", "--db", settings.db_url,
        "--ray-address", settings.ray_address, "hpo", *args, "--no-progress",
    ]  # fmt: skip


def _succeeded(engine):
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(tq.tasks.c.payload).where(tq.tasks.c.state == tq.TaskState.SUCCEEDED)
        ).scalars()
        return {round(p["args"][0]["x"], 12) for p in rows}


def test_kill_9_halfway_then_resume_finishes_exactly_once(settings, tmp_path):
    log = tmp_path / "executions.jsonl"
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "crashy",
        "objective": "objectives:recorded",
        "space": {
            "x": {"type": "float", "low": -3.0, "high": 3.0},
            "sleep": {"type": "categorical", "choices": [0.25]},
            "log": {"type": "categorical", "choices": [str(log)]},
        },
        "max_points": MAX_POINTS,
        "parallel": 2,
        "proposer": "optuna:random",
        "seed": 11,
        "pythonpath": [str(TESTS)],
    }))  # fmt: skip
    env = {**os.environ, "IDDS_LEASE_SECONDS": "60"}
    head = subprocess.Popen(_idds(settings, "launch", str(spec)), env=env)
    engine = connect(settings.db_url)
    deadline = time.monotonic() + 120
    while len(_succeeded(engine)) < MAX_POINTS // 2:
        assert head.poll() is None, "the study ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    head.kill()  # SIGKILL: no cleanup of any kind
    head.wait()
    recorded_before_kill = _succeeded(engine)
    assert len(recorded_before_kill) < MAX_POINTS

    resumed = subprocess.run(
        _idds(settings, "resume", "crashy"), env=env, capture_output=True, text=True, timeout=180
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "best value:" in resumed.stdout

    with engine.begin() as conn:
        counts = tq.counts(conn, conn.execute(sa.text("SELECT id FROM owners")).scalar_one())
        ok_attempts = conn.execute(
            sa.select(sa.func.count()).where(tq.attempts.c.state == "succeeded")
        ).scalar_one()
        lost = conn.execute(
            sa.select(sa.func.count()).where(tq.attempts.c.error.like("lost:%"))
        ).scalar_one()
    engine.dispose()
    assert counts[tq.TaskState.SUCCEEDED] == MAX_POINTS
    assert sum(counts.values()) == MAX_POINTS
    assert ok_attempts == MAX_POINTS  # each result recorded exactly once
    executions = collections.Counter(
        round(json.loads(line)["x"], 12) for line in log.read_text().splitlines()
    )
    for x in recorded_before_kill:
        assert executions[x] == 1, f"point x={x} was recorded before the kill yet ran again"
    assert set(executions) == _succeeded(connect(settings.db_url))
    # only points in flight at the kill (at most `parallel`) may have run twice
    assert sum(n - 1 for n in executions.values()) <= 2
    assert lost <= 2
