"""``proposer: auto``: the policy, and a study through it without a cluster."""

from __future__ import annotations

import pytest

from hpo.auto import GP_MOST_POINTS, ROLES, AutoProposer, Situation, choose
from hpo.spec import StudySpec

NUMERIC = {"x": {"type": "float", "low": -3, "high": 3}, "y": {"type": "int", "low": 0, "high": 9}}


def _spec(**over):
    fields = {"name": "a", "objective": "m:f", "space": NUMERIC, "max_points": 1000, **over}
    return StudySpec.from_mapping(fields)


def test_auto_is_the_default_proposer():
    assert _spec().proposer == "auto"


def test_a_numeric_space_starts_with_a_gaussian_process_then_moves_on():
    spec = _spec()
    assert choose(spec, Situation(finished=0), ROLES)[0] == "optuna:gp"
    name, why = choose(spec, Situation(finished=GP_MOST_POINTS), ROLES)
    assert name == "optuna:cmaes" and "points finished" in why
    short = _spec(max_points=GP_MOST_POINTS + 5)  # no room for CMA-ES generations
    assert choose(short, Situation(finished=GP_MOST_POINTS), ROLES)[0] == "optuna:tpe"


def test_a_gaussian_process_slower_than_the_evaluations_is_dropped():
    now = Situation(finished=20, ask_s=4.0, run_s=0.5)
    name, why = choose(_spec(), now, ROLES)
    assert name != "optuna:gp" and "an ask costs 4" in why
    cheap = Situation(finished=20, ask_s=0.3, run_s=0.001)  # under a second: affordable
    assert choose(_spec(), cheap, ROLES)[0] == "optuna:gp"
    seeded = Situation(finished=20, ask_s=4.0, run_s=0.5, timed=False)  # reproducible
    assert choose(_spec(seed=1), seeded, ROLES)[0] == "optuna:gp"
    assert AutoProposer(_spec(seed=1), 1).now.timed is False
    assert AutoProposer(_spec(seed=1, deterministic=False), 1).now.timed is True


def test_categorical_conditional_constrained_and_multi_objective_spaces():
    mixed = {**NUMERIC, "k": {"type": "categorical", "choices": ["a", "b"]}}
    # A categorical parameter is modelled by the GP (its kernel compares choices); CMA-ES,
    # which has none, never follows it.
    assert choose(_spec(space=mixed), Situation(0), ROLES)[0] == "optuna:gp"
    assert choose(_spec(space=mixed), Situation(GP_MOST_POINTS), ROLES)[0] == "optuna:tpe"
    conditional = {**mixed, "z": {"type": "float", "low": 0, "high": 1, "when": {"k": ["a"]}}}
    name, why = choose(_spec(space=conditional), Situation(0), ROLES)
    assert name == "optuna:tpe" and why == "a conditional space"
    assert choose(_spec(constraints=1), Situation(0), ROLES)[0] == "optuna:tpe"
    multi = _spec(direction=["minimize", "maximize"])
    assert choose(multi, Situation(0), ROLES)[0] == "optuna:tpe"
    assert choose(multi, Situation(600), ROLES)[0] == "optuna:nsga2"


def test_roles_can_name_other_libraries():
    spec = _spec(proposer_options={"numeric": "bayes_opt:ei"})
    assert AutoProposer(spec, 1).roles["numeric"] == "bayes_opt:ei"
    with pytest.raises(ValueError, match="unknown role"):
        _spec(proposer_options={"fast": "optuna:tpe"})


def test_auto_says_which_proposer_made_each_point_and_why_it_changed():
    spec = _spec(space={"x": NUMERIC["x"]}, max_points=40, seed=3,
                 proposer_options={"numeric": "optuna:random", "long": "optuna:tpe"})  # fmt: skip
    auto = AutoProposer(spec, 3)
    first = auto.ask(2)
    assert [p.by for p in first] == ["optuna:random"] * 2
    assert first[0].note and "without conditions" in first[0].note and first[1].note is None
    for p in first:
        auto.tell(p, [p.params["x"] ** 2])
    auto.now.finished = GP_MOST_POINTS  # as if the study had grown
    later = auto.ask(1)[0]
    assert later.by == "optuna:tpe" and later.note.startswith("optuna:random -> optuna:tpe")
    auto.tell(later, [1.0])
