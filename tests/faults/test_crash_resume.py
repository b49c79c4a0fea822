"""kill -9 the head running a study five times, at each sixth of its points; each time
`idds hpo resume` or an `idds serve` head goes on with it, and the last run finishes it.

What must hold: exactly max_points succeeded trials, each result recorded once, no point whose
result was recorded before a kill run again, reruns only of what a killed head had in flight
(at most `parallel` per kill), and each of those attempts recorded as lost.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from head_kills import (
    assert_nothing_recorded_ran_again,
    executions,
    head_env,
    idds_argv,
    kill_when,
    lost_attempts,
    serve_argv,
    start,
    succeeded_attempts,
)

from idds import tasks as tq
from idds.db import connect

pytestmark = [pytest.mark.faults, pytest.mark.slow]
TESTS = Path(__file__).parents[1]
MAX_POINTS = 36
PARALLEL = 2
KILLS = 5


def _succeeded(engine) -> set[float]:
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(tq.tasks.c.payload).where(tq.tasks.c.state == tq.TaskState.SUCCEEDED)
        ).scalars()
        return {round(p["args"][0]["x"], 12) for p in rows}


def test_kill_9_five_times_then_resume_finishes_exactly_once(settings, tmp_path, fault_figures):
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
        "parallel": PARALLEL,
        "proposer": "optuna:random",
        "seed": 11,
        "pythonpath": [str(TESTS)],
    }))  # fmt: skip
    engine = connect(settings.db_url)
    heads = [  # who runs the study until each kill: the launch, then resumes and serve heads
        idds_argv(settings, "hpo", "launch", str(spec), "--no-progress"),
        idds_argv(settings, "hpo", "resume", "crashy", "--no-progress"),
        serve_argv(settings),
        idds_argv(settings, "hpo", "resume", "crashy", "--no-progress"),
        serve_argv(settings),
    ]
    kills = []
    for k, argv in enumerate(heads, 1):
        head = start(argv, tmp_path / "heads.out")
        note = lambda: executions(log, lambda e: round(e["x"], 12))  # noqa: E731
        kills.append(kill_when(head, lambda: _succeeded(engine), k * MAX_POINTS // 6, note, engine))
    assert len(kills[-1].recorded) < MAX_POINTS

    final = subprocess.run(
        idds_argv(settings, "hpo", "resume", "crashy", "--no-progress"), env=head_env(),
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr
    assert "best value:" in final.stdout

    with engine.begin() as conn:
        counts = tq.counts(conn, conn.execute(sa.text("SELECT id FROM owners")).scalar_one())
    ok, lost, recorded = succeeded_attempts(engine), lost_attempts(engine), _succeeded(engine)
    engine.dispose()
    runs = executions(log, lambda e: round(e["x"], 12))
    reruns = sum(n - 1 for n in runs.values())
    fault_figures(kills=len(kills), lost=MAX_POINTS - len(recorded), duplicates=ok - len(recorded),
                  failed_attempts=lost)  # fmt: skip
    assert counts[tq.TaskState.SUCCEEDED] == sum(counts.values()) == MAX_POINTS
    assert ok == MAX_POINTS  # each result recorded exactly once
    assert set(runs) == recorded
    assert_nothing_recorded_ran_again(kills, runs)
    # only what a killed head had in flight ran again, and each of those attempts is on record
    assert all(k.in_flight <= PARALLEL for k in kills)
    assert lost == sum(k.in_flight for k in kills) >= 1
    assert reruns <= lost
