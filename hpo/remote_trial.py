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
import time
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

from idds.payloads import Stopped, channel, current, load_callable

#: What an objective calls on an Optuna trial (seen in its code, whatever it names the trial).
_TRIAL_CALLS = frozenset(
    {"suggest_float", "suggest_int", "suggest_categorical", "suggest_uniform",
     "suggest_loguniform", "suggest_discrete_uniform", "should_prune", "set_user_attr"}
)  # fmt: skip


def takes_a_trial(fn: Any) -> bool:
    """Whether ``fn`` is an Optuna-style objective, taking a trial rather than a point.

    Its one parameter is annotated as a trial (``optuna.Trial``), or, unannotated, it is
    named ``trial`` or the function calls a trial's methods (``t.suggest_float(...)``). A
    parameter annotated as anything else (``dict``) takes a point.
    """
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 1:
        return False
    p = params[0]
    if p.annotation is not inspect.Parameter.empty:
        return "Trial" in str(p.annotation)
    code = getattr(fn, "__code__", None)
    names = set(code.co_names) if code is not None else set()
    return p.name == "trial" or bool(names & _TRIAL_CALLS)


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


def run_objective(params: dict[str, Any], objective: str, pythonpath: list[str]) -> Any:
    """The payload of a point of a study whose objective takes a point: its result, with
    ``run_s``, the objective's own run time measured here (not counting the time to record)."""
    fn = load_callable(objective, pythonpath)
    start = time.perf_counter()
    try:
        value = fn(params)
    except Stopped as stop:
        stop.last = {**stop.last, "run_s": time.perf_counter() - start}
        raise
    return _timed(value, time.perf_counter() - start)


def _timed(value: Any, run_s: float) -> dict[str, Any]:
    result = dict(value) if isinstance(value, dict) else {"values": value}
    return {**result, "run_s": run_s}


def run_optuna_objective(
    params: dict[str, Any], objective: str, pythonpath: list[str], number: int
) -> dict[str, Any]:
    """The payload of a point of a study whose objective takes an Optuna trial (``params``:
    the values chosen already, from the spec's space or an enqueued point)."""
    fn = load_callable(objective, pythonpath)
    trial = RemoteTrial(number, current["token"], params)
    start = time.perf_counter()
    try:
        value = fn(trial)
    except optuna.TrialPruned:
        last = current.get("last_report", {})
        run_s = time.perf_counter() - start
        return {"pruned": True, **last, "run_s": run_s, **_what_was_asked(trial)}
    return {**_timed(value, time.perf_counter() - start), **_what_was_asked(trial)}


def _what_was_asked(trial: RemoteTrial) -> dict[str, Any]:
    return {
        "params": trial.params,
        "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
        **({"user_attrs": trial.user_attrs} if trial.user_attrs else {}),
    }
