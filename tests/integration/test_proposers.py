"""Every proposer runs a short study end to end through the dispatcher; the study knobs."""

from __future__ import annotations

from pathlib import Path

import pytest

import hpo
from hpo.proposers import PROPOSERS
from idds.errors import SpecError

TESTS = str(Path(__file__).parents[1])
SPACE = {
    "x": {"type": "float", "low": -2.0, "high": 2.0, "step": 0.5},
    "y": {"type": "int", "low": -2, "high": 2},
}


@pytest.fixture
def sqlite_settings(settings):
    if not settings.db_url.startswith("sqlite"):
        pytest.skip("proposers are database-independent: run once, on SQLite")
    return settings


def _study(settings, **over):
    fields = {
        "name": "p", "objective": "objectives:quadratic", "space": SPACE, "max_points": 8,
        "parallel": 2, "seed": 3, "pythonpath": [TESTS], **over,
    }  # fmt: skip
    return hpo.Study(settings=settings, **fields)


@pytest.mark.parametrize("proposer", [*PROPOSERS, "optuna.samplers:BruteForceSampler"])
def test_each_proposer_runs_a_study(sqlite_settings, proposer):
    stepped = proposer in ("optuna:grid", "optuna.samplers:BruteForceSampler")
    space = SPACE if stepped else {**SPACE, "x": {"type": "float", "low": -2.0, "high": 2.0}}
    study = _study(sqlite_settings, proposer=proposer, space=space)
    study.optimize(progress=False)
    trials = study.trials
    assert len(trials) == 8
    assert all(t.state == "succeeded" for t in trials)
    assert len({(t.params["x"], t.params["y"]) for t in trials}) > 1
    for t in trials:
        assert -2.0 <= t.params["x"] <= 2.0
        if stepped:
            assert t.params["x"] in [-2 + 0.5 * i for i in range(9)]
        assert isinstance(t.params["y"], int)
        assert t.value == pytest.approx((t.params["x"] - 1) ** 2 + t.params["y"] ** 2)
    assert study.best.value == min(t.value for t in trials)


def test_skopt_learns_with_batches(sqlite_settings):
    space = {"x": {"type": "float", "low": -2.0, "high": 2.0}}
    study = _study(
        sqlite_settings, proposer="skopt:gp", space=space, max_points=16, parallel=2,
        proposer_options={"n_initial_points": 6, "liar": "cl_min"},
    )  # fmt: skip
    study.optimize(progress=False)
    assert study.best.value < 0.05  # the minimum is at x = 1


def test_grid_stops_when_exhausted(sqlite_settings):
    space = {"x": {"type": "categorical", "choices": [-1.0, 0.0, 1.0]}}
    study = _study(sqlite_settings, proposer="optuna:grid", space=space, max_points=10)
    study.optimize(progress=False)
    assert sorted(t.params["x"] for t in study.trials) == [-1.0, 0.0, 1.0]
    assert study.state == "finished"


def test_several_objectives_give_a_pareto_front(sqlite_settings):
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    study = _study(
        sqlite_settings, objective="objectives:two_objectives", space=space,
        direction=["minimize", "minimize"], proposer="optuna:nsga2", max_points=12,
    )  # fmt: skip
    study.optimize(progress=False)
    front = study.best_trials
    assert front
    assert all(len(t.values) == 2 for t in study.trials)
    # x**2 and (x-1)**2 trade off on [0, 1]: every point is on the front
    assert len(front) == len({t.params["x"] for t in study.trials})
    with pytest.raises(SpecError, match="several objectives"):
        _ = study.best


def test_infeasible_points_are_never_best(sqlite_settings):
    space = {"x": {"type": "float", "low": -2.0, "high": 2.0}}
    study = _study(
        sqlite_settings, objective="objectives:constrained", space=space, constraints=1,
        proposer="optuna:tpe", max_points=12,
    )  # fmt: skip
    study.optimize(progress=False)
    infeasible = [t for t in study.trials if not t.feasible]
    assert infeasible  # x < 0.5 is infeasible: random start hits it
    assert study.best.params["x"] >= 0.5


def test_conditional_parameters_exist_only_when_their_condition_holds(sqlite_settings):
    space = {
        "x": {"type": "float", "low": -2.0, "high": 2.0},
        "model": {"type": "categorical", "choices": ["linear", "quad"]},
        "y": {"type": "int", "low": -2, "high": 2, "when": {"model": "quad"}},
    }
    study = _study(sqlite_settings, space=space, proposer="optuna:tpe", max_points=10)
    study.optimize(progress=False)
    for t in study.trials:
        assert ("y" in t.params) == (t.params["model"] == "quad")


def test_initial_points_are_evaluated_first(sqlite_settings):
    study = _study(
        sqlite_settings, proposer="optuna:random", max_points=4,
        initial_points=[{"x": 1.0, "y": 0}, {"x": -1.0, "y": 2}],
    )  # fmt: skip
    study.optimize(progress=False)
    first = [t.params for t in study.trials[:2]]
    assert first == [{"x": 1.0, "y": 0}, {"x": -1.0, "y": 2}]
    assert study.best.value == 0.0


def test_patience_stops_a_study_without_improvement(sqlite_settings):
    study = _study(
        sqlite_settings, proposer="optuna:random", max_points=40, parallel=1, patience=3,
        initial_points=[{"x": 1.0, "y": 0}],  # the optimum first: nothing can improve on it
    )  # fmt: skip
    study.optimize(progress=False)
    assert len(study.trials) == 4
    assert study.state == "finished"


def test_wall_clock_budget_stops_new_points(sqlite_settings):
    space = {"sleep": {"type": "float", "low": 0.3, "high": 0.4}}
    study = _study(
        sqlite_settings, objective="objectives:sleepy", space=space, proposer="optuna:random",
        max_points=100, parallel=2, max_time=1.0,
    )  # fmt: skip
    study.optimize(progress=False)
    assert 2 <= len(study.trials) <= 12
    assert all(t.state == "succeeded" for t in study.trials)


@pytest.mark.parametrize(("over", "message"), [
    ({"proposer": "optuna:cmaes", "space": {"k": {"type": "categorical", "choices": [1, 2]}}},
     "optuna:cmaes cannot handle categorical parameters (k)"),
    ({"proposer": "skopt:gp", "direction": ["minimize", "maximize"]},
     "skopt:gp handles one objective"),
    ({"proposer": "optuna:grid", "space": {"x": {"type": "float", "low": 0, "high": 1}}},
     "optuna:grid cannot handle parameter 'x'"),
    ({"proposer": "skopt:rf", "space": {"x": {"type": "float", "low": 0, "high": 1, "step": 0.1}}},
     "skopt:rf cannot handle a step"),
    ({"proposer": "nowhere.module:Sampler"}, "unknown proposer 'nowhere.module:Sampler'"),
    ({"proposer": "optuna:tpe", "proposer_options": {"nonsense": 1}}, "nonsense"),
])  # fmt: skip
def test_a_space_a_proposer_cannot_handle_is_refused(tmp_path, over, message):
    fields = {"name": "p", "objective": "objectives:quadratic", "space": SPACE, **over}
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hpo.StudySpec.from_mapping(fields)


def test_enqueued_points_reach_a_running_study(sqlite_settings, capsys):
    import threading
    import time

    from idds.cli import main

    space = {"x": {"type": "float", "low": -2.0, "high": 2.0},
             "sleep": {"type": "categorical", "choices": [0.3]}}  # fmt: skip
    study = _study(
        sqlite_settings, objective="objectives:sleepy_value", space=space,
        proposer="optuna:random", max_points=12, parallel=1,
    )  # fmt: skip
    study.create()
    runner = threading.Thread(target=study.optimize, kwargs={"progress": False}, daemon=True)
    runner.start()
    time.sleep(1.0)
    main(["--db", sqlite_settings.db_url, "hpo", "enqueue", "p", "x=1.25", "sleep=0.3"])
    assert "enqueued" in capsys.readouterr().out
    runner.join(timeout=60)
    xs = [t.params["x"] for t in study.trials]
    assert xs.count(1.25) == 1
    assert len(xs) == 12
    with pytest.raises(SystemExit) as info:
        main(["--db", sqlite_settings.db_url, "hpo", "enqueue", "p", "x=7", "sleep=0.3"])
    assert info.value.code == 2


def test_bad_enqueued_point_is_refused(sqlite_settings):
    study = _study(sqlite_settings, proposer="optuna:random", max_points=1)
    study.create()
    with pytest.raises(SpecError, match=r"x: 9 is outside \[-2.0, 2.0\]"):
        study.enqueue({"x": 9, "y": 0})
    with pytest.raises(SpecError, match="unknown parameter"):
        study.enqueue({"x": 1, "y": 0, "z": 1})


def test_warm_start_from_an_earlier_study(sqlite_settings):
    first = _study(sqlite_settings, name="first", proposer="optuna:random", max_points=6)
    first.optimize(progress=False)
    second = _study(
        sqlite_settings, name="second", proposer="optuna:tpe", max_points=2,
        warm_start=["first"], proposer_options={"n_startup_trials": 3},
    )  # fmt: skip
    second.optimize(progress=False)
    assert len(second.trials) == 2  # the earlier points inform the proposer, not the count
    from hpo.run import StudyRun

    run = StudyRun(second, second.owner_id, progress=False)
    told = run.proposer.study.trials
    assert len(told) == 6 + 2
    assert {t.params["x"] for t in told} >= {t.params["x"] for t in first.trials}


def test_tpe_asks_in_ask_processes_where_asks_hold_the_workers_up(sqlite_settings, monkeypatch):
    import hpo.ahead

    started = []

    class Counted(hpo.ahead.Replicas):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(hpo.ahead, "REPLICA_ASK_S", 0.0)  # every ask counts as slow
    monkeypatch.setattr(hpo.ahead, "Replicas", Counted)
    space = {k: {"type": "float", "low": -2.0, "high": 2.0} for k in "xy"}
    study = _study(sqlite_settings, proposer="optuna:tpe", max_points=30, space=space,
                   deterministic=False)  # fmt: skip
    study.optimize(progress=False)
    assert len(started) == 1 and started[0].count == 2
    assert [t.number for t in study.trials] == list(range(30))
    assert all(t.state == "succeeded" for t in study.trials)
    assert len({(t.params["x"], t.params["y"]) for t in study.trials}) == 30
    seeded = _study(sqlite_settings, name="d", proposer="optuna:tpe", space=space,
                    deterministic=True)  # fmt: skip
    seeded.optimize(progress=False)
    assert len(started) == 1  # reproducible batches are asked in the head
