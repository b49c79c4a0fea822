"""Real studies on real Ray, on SQLite and PostgreSQL by the same tests."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest

import hpo
from idds.tasks import TaskState

TESTS = str(Path(__file__).parents[1])


def _study(settings, name="s", objective="quadratic", **over):
    fields = {
        "name": name,
        "objective": f"objectives:{objective}",
        "space": {"x": {"type": "float", "low": -2.0, "high": 2.0}},
        "max_points": 10,
        "parallel": 2,
        "proposer": "optuna:random",
        "seed": 1,
        "pythonpath": [TESTS],
        **over,
    }
    return hpo.Study(settings=settings, **fields)


def test_study_runs_every_point_and_reports_the_best(settings):
    study = _study(settings, space={
        "x": {"type": "float", "low": -2.0, "high": 2.0},
        "y": {"type": "int", "low": -3, "high": 3},
        "kind": {"type": "categorical", "choices": ["a", "b"]},
    }, proposer="optuna:tpe", max_points=12)  # fmt: skip
    study.optimize(progress=False)
    trials = study.trials
    assert [t.number for t in trials] == list(range(12))
    assert all(t.state == TaskState.SUCCEEDED and t.attempt == 1 for t in trials)
    for t in trials:
        assert t.value == pytest.approx((t.params["x"] - 1) ** 2 + t.params["y"] ** 2)
        assert t.site == "local" and t.node and t.duration_s is not None
        assert isinstance(t.params["y"], int) and t.params["kind"] in ("a", "b")
    assert study.best.value == min(t.value for t in trials)
    assert study.state == "finished"
    again = hpo.load_study("s", settings=settings)
    assert again.best == study.best


def test_a_raising_objective_makes_failed_trials_and_the_study_goes_on(settings):
    study = _study(settings, objective="fails_above", max_points=12)
    study.optimize(progress=False)
    failed = [t for t in study.trials if t.state == TaskState.FAILED]
    ok = [t for t in study.trials if t.state == TaskState.SUCCEEDED]
    assert len(failed) + len(ok) == 12 and failed and ok
    for t in failed:
        assert t.params["x"] > 0 and t.attempt == 1  # errors are not retried by default
        assert "Traceback" in t.error and "out of the model's range" in t.error
    assert study.best.params["x"] <= 0


def test_nan_is_a_failed_trial_never_the_best(settings):
    study = _study(settings, objective="nan_above", max_points=10, direction="minimize")
    study.optimize(progress=False)
    failed = [t for t in study.trials if t.state == TaskState.FAILED]
    assert failed and all("nan" in t.error for t in failed)
    assert study.best is not None and not math.isnan(study.best.value)


def test_timeout_fails_the_attempt_and_is_retried_up_to_max_attempts(settings):
    study = _study(
        settings, objective="sleepy", max_points=1, parallel=1, timeout=1.0, max_attempts=2
    )
    started = time.monotonic()
    study.optimize(progress=False)
    (t,) = study.trials
    assert (t.state, t.attempt) == ("failed", 2)
    assert "timed out after 1 s" in t.error
    assert time.monotonic() - started < 20


def test_dead_worker_is_a_failed_attempt_that_is_retried(settings, tmp_path):
    space = {
        "x": {"type": "float", "low": -2.0, "high": 2.0},
        "log": {"type": "categorical", "choices": [str(tmp_path / "marker")]},
    }
    study = _study(settings, objective="crash_first", space=space, max_points=3)
    study.optimize(progress=False)
    assert [(t.state, t.attempt) for t in study.trials] == [("succeeded", 2)] * 3


def test_cancel_from_elsewhere_stops_a_running_study(settings):
    study = _study(
        settings,
        objective="sleepy",
        max_points=6,
        space={"sleep": {"type": "int", "low": 60, "high": 61}},
    )
    study.create()
    runner = threading.Thread(target=study.optimize, kwargs={"progress": False}, daemon=True)
    runner.start()
    deadline = time.monotonic() + 30
    while sum(t.state == "running" for t in study.trials) < 2:  # started on workers
        assert time.monotonic() < deadline
        time.sleep(0.2)
    running = [t for t in study.trials if t.state == "running"]
    assert all(t.node and t.site == "local" for t in running)
    hpo.load_study("s", settings=settings).cancel()
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert study.state == "cancelled"
    assert {t.state for t in study.trials} == {"cancelled"}


def test_resume_of_a_finished_study_runs_nothing_again(settings):
    study = _study(settings, max_points=4)
    study.optimize(progress=False)
    before = study.trials
    hpo.load_study("s", settings=settings).optimize(progress=False)
    assert study.trials == before


def test_a_study_held_by_a_live_head_is_not_run_twice(settings):
    from idds.errors import IddsError

    study = _study(
        settings, objective="sleepy", max_points=2, parallel=1,
        space={"sleep": {"type": "int", "low": 30, "high": 31}},
    )  # fmt: skip
    study.create()
    runner = threading.Thread(target=study.optimize, kwargs={"progress": False}, daemon=True)
    runner.start()
    deadline = time.monotonic() + 30
    while not any(t.state in ("dispatched", "running") for t in study.trials):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    second = hpo.load_study("s", settings=settings)
    with pytest.raises(IddsError, match="being run by another live head"):
        second.optimize(progress=False)  # waits out one lease: the holder renews it
    second.cancel()
    runner.join(timeout=30)
    assert not runner.is_alive()
