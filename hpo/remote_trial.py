"""Optuna-style objectives, unchanged, on any worker.

An objective written for Optuna (``def objective(trial): x = trial.suggest_float(...)``, with
``trial.report`` / ``trial.should_prune`` / ``trial.set_user_attr``) runs as a payload: on the
worker it gets a :class:`RemoteTrial`, whose ``suggest_*`` calls reach the study's sampler in
the head through Ray (so define-by-run spaces work remotely; each new parameter costs a round
trip of a fraction of a second). The point's parameters and distributions come back with its
value and are recorded with it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from idds.payloads import channel, current, load_callable


def takes_a_trial(fn: Any) -> bool:
    """Whether ``fn`` is an Optuna-style objective: its one parameter is the trial."""
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 1:
        return False
    p = params[0]
    return p.name == "trial" or "Trial" in str(p.annotation)


class RemoteTrial:
    """Stands in for :class:`optuna.trial.Trial` in an objective run by idds."""

    def __init__(self, number: int, token: str, params: dict[str, Any] | None = None) -> None:
        self.number = number
        self._token = token
        self.params: dict[str, Any] = dict(params or {})  # known already: no round trip
        self.distributions: dict[str, BaseDistribution] = {}
        self.user_attrs: dict[str, Any] = {}

    def _suggest(self, name: str, distribution: BaseDistribution) -> Any:
        if name in self.params:
            self.distributions[name] = distribution
            return self.params[name]
        import ray

        question = {"suggest": name, "distribution": distribution_to_json(distribution)}
        answer = ray.get(channel().ask.remote(self._token, question))
        if "error" in answer:
            raise ValueError(f"suggest {name!r}: {answer['error']}")
        self.params[name] = answer["value"]
        self.distributions[name] = distribution
        return answer["value"]

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return float(self._suggest(name, FloatDistribution(low, high, step=step, log=log)))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return int(self._suggest(name, IntDistribution(low, high, step=step, log=log)))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._suggest(name, CategoricalDistribution(choices))

    def report(self, value: float, step: int) -> None:
        from hpo.sdk import report

        report(step, value)

    def should_prune(self) -> bool:
        from hpo.sdk import should_prune

        return should_prune()

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


def run_optuna_objective(
    params: dict[str, Any], objective: str, pythonpath: list[str], number: int
) -> dict[str, Any]:
    """The payload of a point of a study whose objective takes an Optuna trial (``params``:
    the values chosen already, from the spec's space or an enqueued point)."""
    fn = load_callable(objective, pythonpath)
    trial = RemoteTrial(number, current["token"], params)
    try:
        value = fn(trial)
    except optuna.TrialPruned:
        last = current.get("last_report", {})
        return {"pruned": True, **last, **_what_was_asked(trial)}
    result = value if isinstance(value, dict) else {"values": value}
    return {**result, **_what_was_asked(trial)}


def _what_was_asked(trial: RemoteTrial) -> dict[str, Any]:
    return {
        "params": trial.params,
        "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
        **({"user_attrs": trial.user_attrs} if trial.user_attrs else {}),
    }
