"""Two `idds serve` heads on one PostgreSQL database; one is killed with kill -9 (with the
processes running its studies): the other takes its studies over and finishes them.

What must hold: every study ends with exactly its points succeeded, each result recorded once,
and no point recorded before the kill runs again.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from idds import owners as owners_mod
from idds import tasks as tq
from idds.db import connect

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.pg]
TESTS = Path(__file__).parents[1]
POINTS = 12


def _head(settings, *, max_owners):
    argv = [sys.executable, "-m", "idds", "--db", settings.db_url, "--ray-address",
            settings.ray_address, "serve", "--poll", "0.5", "--max-owners", str(max_owners)]  # fmt: skip
    env = {**os.environ, "IDDS_LEASE_SECONDS": "60"}
    return subprocess.Popen(argv, env=env, start_new_session=True)


def _succeeded(engine) -> dict[str, set[float]]:
    o, t = owners_mod.owners.c, tq.tasks.c
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(o.name, t.payload).join(tq.tasks, t.owner_id == o.id)
            .where(t.state == tq.TaskState.SUCCEEDED)
        ).all()  # fmt: skip
    out: dict[str, set[float]] = collections.defaultdict(set)
    for name, payload in rows:
        out[name].add(round(payload["args"][0]["x"], 12))
    return out


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_killed_heads_studies_are_finished_by_the_other(settings, tmp_path):
    names = [f"served-{i}" for i in range(3)]
    logs = {name: tmp_path / f"{name}.jsonl" for name in names}
    from hpo import Study

    for i, name in enumerate(names):
        Study(settings=settings, name=name, objective="objectives:recorded", max_points=POINTS,
              parallel=1, proposer="optuna:random", seed=i, pythonpath=[str(TESTS)],
              space={"x": {"type": "float", "low": -3.0, "high": 3.0},
                     "sleep": {"type": "categorical", "choices": [0.3]},
                     "log": {"type": "categorical", "choices": [str(logs[name])]}}).create()  # fmt: skip
    engine = connect(settings.db_url)
    doomed = _head(settings, max_owners=3)  # takes all three first
    deadline = time.monotonic() + 120
    while sum(len(v) for v in _succeeded(engine).values()) < 6:
        assert time.monotonic() < deadline and doomed.poll() is None
        time.sleep(0.1)
    survivor = _head(settings, max_owners=3)
    os.killpg(doomed.pid, signal.SIGKILL)  # the head and the processes running its studies
    doomed.wait()
    before = _succeeded(engine)
    try:
        deadline = time.monotonic() + 240
        while not all(len(_succeeded(engine).get(n, ())) == POINTS for n in names):
            assert time.monotonic() < deadline, _succeeded(engine)
            assert survivor.poll() is None
            time.sleep(0.5)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(60)
    with engine.begin() as conn:
        ok_attempts = conn.execute(
            sa.select(sa.func.count()).where(tq.attempts.c.state == "succeeded")
        ).scalar_one()
        states = dict(
            conn.execute(sa.select(owners_mod.owners.c.name, owners_mod.owners.c.state)).all()
        )
    engine.dispose()
    assert ok_attempts == 3 * POINTS  # each result recorded exactly once
    assert all(states[n] == "finished" for n in names)
    for name in names:
        runs = collections.Counter(
            round(json.loads(line)["x"], 12) for line in logs[name].read_text().splitlines()
        )
        for x in before.get(name, ()):
            assert runs[x] == 1, f"{name}: x={x} was recorded before the kill yet ran again"
        assert sum(n - 1 for n in runs.values()) <= 1  # only the one in flight may rerun
