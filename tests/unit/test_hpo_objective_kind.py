"""Which objectives take an Optuna trial: by annotation, by the calls they make, by name."""

from __future__ import annotations

from typing import Any

import optuna

from hpo.remote_trial import takes_a_trial


def by_name(trial):  # noqa: ANN001
    return trial.suggest_float("x", 0, 1)


def short(t):  # noqa: ANN001
    return t.suggest_float("x", 0, 1)


def annotated(tr: optuna.Trial) -> float:
    return 0.0


def annotated_string(tr: "optuna.trial.Trial") -> float:  # noqa: UP037
    return 0.0


def a_point(p):  # noqa: ANN001
    return p["x"] ** 2


def a_typed_point(trial: dict[str, Any]) -> float:
    return trial["x"]


def two(a, b):  # noqa: ANN001
    return 0.0


def test_optuna_style_objectives_are_recognised_whatever_the_parameter_is_called():
    assert takes_a_trial(by_name)
    assert takes_a_trial(short)
    assert takes_a_trial(annotated)
    assert takes_a_trial(annotated_string)


def test_objectives_of_a_point_are_not_taken_for_optuna_ones():
    assert not takes_a_trial(a_point)
    assert not takes_a_trial(a_typed_point)
    assert not takes_a_trial(two)
