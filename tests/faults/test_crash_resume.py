"""kill -9 the head running a study five times, at each sixth of its points; each time
`idds hpo resume` or an `idds serve` head goes on with it, and the last run finishes it.

What must hold: exactly max_points succeeded trials, each result recorded once, no point whose
result was recorded before a kill run again, reruns only of what a killed head had in flight
(at most `parallel` per kill), and each of those attempts recorded as lost.
"""

from __future__ import annotations

import subprocess

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
    point,
    recorded_study,
    start,
    succeeded_attempts,
    succeeded_points,
)

from idds import tasks as tq
from idds.db import connect

pytestmark = [pytest.mark.faults, pytest.mark.slow]
MAX_POINTS = 36
PARALLEL = 2
KILLS = 5


def test_kill_9_five_times_then_resume_finishes_exactly_once(settings, tmp_path, fault_figures):
    log = tmp_path / "executions.jsonl"
    spec = tmp_path / "study.yaml"
    recorded_study(
        spec, log, sleep=0.25, name="crashy", max_points=MAX_POINTS, parallel=PARALLEL, seed=11
    )
    engine = connect(settings.db_url)
    heads = heads_until_each_kill(settings, "hpo", spec, "crashy")
    kills = []
    for k, argv in enumerate(heads, 1):
        head = start(argv, tmp_path / "heads.out")
        note = lambda: executions(log, point)  # noqa: E731
        progress = lambda: succeeded_points(engine)  # noqa: E731
        kills.append(kill_when(head, progress, k * MAX_POINTS // 6, note, engine))
    assert len(kills[-1].recorded) < MAX_POINTS

    final = subprocess.run(
        idds_argv(settings, "hpo", "resume", "crashy", "--no-progress"), env=head_env(),
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr
    assert "best value:" in final.stdout

    with engine.begin() as conn:
        counts = tq.counts(conn, conn.execute(sa.text("SELECT id FROM owners")).scalar_one())
    ok, lost, recorded = succeeded_attempts(engine), lost_attempts(engine), succeeded_points(engine)
    engine.dispose()
    runs = executions(log, point)
    reruns = sum(n - 1 for n in runs.values())
    fault_figures(kills=len(kills), lost=MAX_POINTS - len(recorded), duplicates=ok - len(recorded),
                  failed_attempts=lost)  # fmt: skip
    assert counts[tq.TaskState.SUCCEEDED] == sum(counts.values()) == MAX_POINTS
    assert ok == MAX_POINTS  # each result recorded exactly once
    assert set(runs) == recorded
    assert_nothing_recorded_ran_again(kills, runs)
    # only what a killed head had in flight ran again, and each of those attempts is on record
    assert all(k.in_flight <= 2 * PARALLEL for k in kills)  # running, and as many held ahead
    assert lost == sum(k.in_flight for k in kills) >= 1
    assert reruns <= lost
