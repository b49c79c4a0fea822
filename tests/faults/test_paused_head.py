"""A head paused with SIGSTOP past its lease; another head takes its study over; while that
one runs it, the first head is resumed with SIGCONT.

What must hold: the resumed head writes nothing (its late results are not recorded, it claims
nothing, its attempt rows stay as the takeover left them), says in one line that it stands
down and exits non-zero; the other head finishes the study: exactly its points succeeded, each
result recorded once; only the points in flight at the pause ran twice.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest
import sqlalchemy as sa
from head_kills import executions, idds_argv, point, recorded_study

from idds import tasks as tq
from idds.db import connect

pytestmark = [pytest.mark.faults, pytest.mark.slow]
POINTS = 30
PARALLEL = 2
LEASE_S = 4


def _snapshot(engine) -> tuple[list[dict], list[dict]]:
    """Every row of the tasks and attempts tables, in id order."""
    with engine.begin() as conn:
        tasks = conn.execute(sa.select(tq.tasks).order_by(tq.tasks.c.id)).all()
        attempts = conn.execute(sa.select(tq.attempts).order_by(tq.attempts.c.id)).all()
    return [dict(r._mapping) for r in tasks], [dict(r._mapping) for r in attempts]


def _succeeded(engine) -> int:
    with engine.begin() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(tq.tasks.c.state == tq.TaskState.SUCCEEDED)
        ).scalar_one()


def test_a_head_paused_past_its_lease_stands_down_writing_nothing(settings, tmp_path,
                                                                   fault_figures):  # fmt: skip
    log = tmp_path / "executions.jsonl"
    spec = tmp_path / "study.yaml"
    # A paused driver keeps the Ray workers leased to it (and their CPUs) until it resumes:
    # half a CPU each leaves the other head room on a 2-CPU test cluster.
    recorded_study(
        spec,
        log,
        sleep=0.5,
        name="paused",
        max_points=POINTS,
        parallel=PARALLEL,
        seed=3,
        resources={"cpus": 0.5},
    )
    env = {**os.environ, "IDDS_LEASE_SECONDS": str(LEASE_S)}
    first = subprocess.Popen(idds_argv(settings, "hpo", "launch", str(spec), "--no-progress"), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    first_head = f"{socket.gethostname()}:{first.pid}:"
    engine = connect(settings.db_url)
    second = None
    try:
        _wait(lambda: _succeeded(engine) >= POINTS // 3, first)
        os.killpg(first.pid, signal.SIGSTOP)
        second = subprocess.Popen(idds_argv(settings, "hpo", "resume", "paused", "--no-progress"), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        # Wake the first head once the second has taken the study over and runs it.
        _wait(lambda: any(not r["head"].startswith(first_head) for r in _snapshot(engine)[1]),
              second)  # fmt: skip
        as_left = [r for r in _snapshot(engine)[1] if r["head"].startswith(first_head)]
        os.killpg(first.pid, signal.SIGCONT)
        out, err = first.communicate(timeout=60)
        assert second.poll() is None, "the study ended before the paused head woke"
        second_out, second_err = second.communicate(timeout=180)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    assert first.returncode != 0, (out, err)
    assert "taken over by another head; standing down" in err, err
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    assert second.returncode == 0, second_err
    tasks, rows = _snapshot(engine)
    engine.dispose()
    of_first = [r for r in rows if r["head"].startswith(first_head)]
    assert of_first == as_left  # after waking it wrote nothing: no claim, no late result
    cut_off = [r for r in of_first if r["state"] != "succeeded"]
    assert all(r["error"].startswith("lost: head gone") for r in cut_off), cut_off
    assert len(cut_off) <= 2 * PARALLEL  # running, and as many held ahead
    succeeded = [r for r in rows if r["state"] == "succeeded"]
    assert len(succeeded) == POINTS  # each result recorded exactly once
    assert len({r["task_id"] for r in succeeded}) == POINTS
    assert sum(1 for t in tasks if t["state"] == "succeeded") == POINTS == len(tasks)
    runs = executions(log, point)
    duplicates = sum(n - 1 for n in runs.values())
    assert len(runs) == POINTS and duplicates <= len(cut_off)
    fault_figures(pauses=1, lost=0, duplicates=duplicates, failed_attempts=len(cut_off))


def _wait(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
