"""Ray worker processes killed with kill -9 while a study runs.

What must hold: the study ends with exactly its points succeeded, each result recorded once,
the killed attempts recorded as failed attempts; an evaluation that kills its worker every
time ends failed after its attempts, with the reason, and does not stall the study.
"""

from __future__ import annotations

import collections
import json
import random
import threading
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from hpo import Study
from idds import tasks as tq

pytestmark = [pytest.mark.faults, pytest.mark.slow]
TESTS = Path(__file__).parents[1]
POINTS = 300


def _busy_workers(session_dir: str) -> list[psutil.Process]:
    """This Ray session's worker processes running an attempt now (named after the function
    they run; children of the session's raylet): never another Ray's on this host."""
    out = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        title = " ".join(proc.info["cmdline"] or [proc.info["name"] or ""])
        if not title.startswith("ray::run_payload"):
            continue
        try:
            raylet = proc.parent()
            if raylet is not None and any(session_dir in a for a in raylet.cmdline()):
                out.append(proc)
        except psutil.Error:
            pass
    return out


class _Killer(threading.Thread):
    def __init__(self, every_s: float, most: int, log: Path, progress: int) -> None:
        import ray

        super().__init__(daemon=True)
        self.every_s = every_s
        self.most = most
        self.log = log
        self.progress = progress
        self.session_dir = ray._private.worker._global_node.get_session_dir_path()
        self.kills = 0
        self.stop = threading.Event()

    def run(self) -> None:
        rng = random.Random(7)
        seen = 0
        while self.kills < self.most and not self.stop.wait(rng.uniform(0.5, 1.5) * self.every_s):
            done = _lines(self.log)
            if done < seen + self.progress:  # let the study move on between kills, so that
                continue  # no one point takes every kill
            workers = _busy_workers(self.session_dir)
            if workers:
                try:
                    rng.choice(workers).kill()
                    self.kills += 1
                    seen = done
                except psutil.NoSuchProcess:
                    pass


def _lines(path: Path) -> int:
    try:
        return path.read_text().count("\n")
    except FileNotFoundError:
        return 0


@pytest.mark.timeout(900)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_random_worker_kills_lose_and_duplicate_nothing(settings, tmp_path, fault_figures):
    log = tmp_path / "executions.jsonl"
    study = Study(
        settings=settings, name="under-fire", objective="objectives:recorded",
        space={"x": {"type": "float", "low": -3.0, "high": 3.0},
               "sleep": {"type": "categorical", "choices": [0.1]},
               "log": {"type": "categorical", "choices": [str(log)]}},
        max_points=POINTS, parallel=2, proposer="optuna:random", seed=5, max_attempts=10,
        pythonpath=[str(TESTS)],
    )  # fmt: skip
    killer = _Killer(every_s=0.3, most=24, log=log, progress=8)
    killer.start()
    try:
        study.optimize(progress=False)
    finally:
        killer.stop.set()
        killer.join()
    with study.engine.begin() as conn:
        ok = conn.execute(
            sa.select(sa.func.count()).where(tq.attempts.c.state == "succeeded")
        ).scalar_one()
        failed = conn.execute(
            sa.select(sa.func.count()).where(tq.attempts.c.state == "failed")
        ).scalar_one()
    trials = study.trials
    succeeded = [t for t in trials if t.state == "succeeded"]
    recorded = {round(t.params["x"], 12) for t in succeeded}
    runs = collections.Counter(round(json.loads(x)["x"], 12) for x in log.read_text().splitlines())
    fault_figures(kills=killer.kills, lost=POINTS - len(recorded), duplicates=ok - len(succeeded),
                  failed_attempts=failed)  # fmt: skip
    assert killer.kills >= 20
    assert len(trials) == len(succeeded) == POINTS  # nothing lost, nothing failed for good
    assert ok == POINTS  # each result recorded exactly once
    assert failed >= 1  # the killed attempts are on record
    assert recorded <= set(runs)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_evaluation_that_kills_its_worker_fails_after_its_attempts(settings, fault_figures):
    study = Study(
        settings=settings, name="suicidal", objective="objectives:kills_worker",
        space={"x": {"type": "float", "low": -1.0, "high": 1.0}}, max_points=8, parallel=2,
        proposer="optuna:random", seed=2, max_attempts=2, pythonpath=[str(TESTS)],
    )  # fmt: skip
    study.optimize(progress=False)
    trials = study.trials
    doomed = [t for t in trials if t.params["x"] > 0]
    assert doomed and len(trials) == 8
    for t in doomed:
        assert t.state == "failed" and t.attempt == 2
        assert "Worker" in t.error or "died" in t.error, t.error
    assert all(t.state == "succeeded" for t in trials if t.params["x"] <= 0)
    fault_figures(kills=2 * len(doomed), lost=0, duplicates=0, failed_attempts=2 * len(doomed))
