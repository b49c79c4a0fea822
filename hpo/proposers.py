"""Proposers: where new points come from.

A proposer hands out several points at once for parallel evaluation. Points handed out but
not yet evaluated stay in the Optuna study as RUNNING trials, so samplers that know about
pending trials take them into account (TPE here runs with ``constant_liar=True``: a pending
point is treated as if it had the worst value seen, which spreads parallel proposals).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from idds.errors import SpecError


def _tpe(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def _random(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


#: Proposer names and the factories of their samplers.
PROPOSERS: dict[str, Callable[[int | None], optuna.samplers.BaseSampler]] = {
    "optuna:tpe": _tpe,
    "optuna:random": _random,
}


def check_proposer(name: str) -> None:
    """Raise :class:`SpecError` unless ``name`` is a known proposer."""
    if name not in PROPOSERS:
        raise SpecError(f"unknown proposer {name!r} (known: {', '.join(sorted(PROPOSERS))})")


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """The Optuna sampler behind proposer ``name``."""
    check_proposer(name)
    return PROPOSERS[name](seed)


def distributions(space: dict[str, Any]) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions for a validated search space."""
    from hpo.spec import CategoricalParam, FloatParam

    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, p in space.items():
        if isinstance(p, FloatParam):
            out[name] = optuna.distributions.FloatDistribution(
                p.low, p.high, log=p.log, step=p.step
            )
        elif isinstance(p, CategoricalParam):
            out[name] = optuna.distributions.CategoricalDistribution(p.choices)
        else:
            out[name] = optuna.distributions.IntDistribution(p.low, p.high, log=p.log, step=p.step)
    return out
