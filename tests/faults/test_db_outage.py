"""PostgreSQL stopped for 15 s while a study runs (a throwaway cluster of its own, never the
shared server): the head waits, keeps the results it holds, and goes on when it is back.

What must hold: the head exits 0; exactly max_points succeeded trials, each result recorded
once; no point runs twice (the head kept its lease and recorded what it held); the head said
so in one warning line, without the database password.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from head_kills import executions, point, recorded_study, study_counts, wait_for_points

from idds import tasks as tq

pytestmark = [pytest.mark.faults, pytest.mark.slow]
POINTS = 60
OUTAGE_S = 15


def test_postgres_stopped_for_15_s_loses_nothing(throwaway_pg, ray_address, tmp_path,
                                                 fault_figures):  # fmt: skip
    log = tmp_path / "executions.jsonl"
    spec = tmp_path / "study.yaml"
    recorded_study(spec, log, sleep=0.3, name="outage", max_points=POINTS, parallel=2, seed=5)
    url = throwaway_pg.url(password="s3cret")  # trust auth: the password is only carried
    argv = [sys.executable, "-m", "idds", "--db", url, "--ray-address", ray_address,
            "hpo", "launch", str(spec), "--no-progress"]  # fmt: skip
    env = {**os.environ, "IDDS_LEASE_SECONDS": "60", "IDDS_WORK_DIR": str(tmp_path / "work")}
    head = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    engine = sa.create_engine(throwaway_pg.url())
    try:
        wait_for_points(engine, head, POINTS // 3)
        engine.dispose()
        throwaway_pg.stop()
        ran_before = set(executions(log, point))
        time.sleep(OUTAGE_S)
        assert head.poll() is None, "the head died with the database"
        throwaway_pg.start()
        out, err = head.communicate(timeout=180)
    finally:
        if head.poll() is None:
            head.kill()
    assert head.returncode == 0, err
    assert "best value:" in out
    warnings = [line for line in err.splitlines() if "is away" in line]
    assert 1 <= len(warnings) <= 2, err  # one per outage seen (stopping, then refused)
    assert "s3cret" not in err + out

    counts, ok_attempts = study_counts(engine)
    engine.dispose()
    runs = executions(log, point)
    duplicates = sum(n - 1 for n in runs.values())
    fault_figures(outage_s=OUTAGE_S, lost=POINTS - counts[tq.TaskState.SUCCEEDED],
                  duplicates=duplicates, failed_attempts=sum(runs.values()) - ok_attempts)  # fmt: skip
    assert counts[tq.TaskState.SUCCEEDED] == POINTS and sum(counts.values()) == POINTS
    assert ok_attempts == POINTS  # each result recorded exactly once
    assert len(runs) == POINTS
    for x in ran_before:
        assert runs[x] == 1, f"point x={x} ran before the outage yet ran again"
    assert duplicates == 0  # the head kept its lease: nothing in flight was run again
