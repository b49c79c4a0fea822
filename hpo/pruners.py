"""Pruners: stop unpromising evaluations early from their progress reports (Optuna's).

Names: ``median``, ``percentile``, ``successive_halving``, ``hyperband``, ``patient``,
``wilcoxon``, ``none``; ``pruner_options`` go to the pruner's constructor (``percentile``
defaults to 25; ``patient`` wraps a median pruner with ``patience`` 3 unless told).
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from idds.errors import SpecError


def _patient(**opts: Any) -> optuna.pruners.BasePruner:
    opts.setdefault("patience", 3)
    wrapped = opts.pop("wrapped", "median")
    return optuna.pruners.PatientPruner(make_pruner(wrapped, {}), **opts)


def _percentile(**opts: Any) -> optuna.pruners.BasePruner:
    opts.setdefault("percentile", 25.0)
    return optuna.pruners.PercentilePruner(**opts)


PRUNERS: dict[str, Any] = {
    "median": optuna.pruners.MedianPruner,
    "percentile": _percentile,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "patient": _patient,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "none": optuna.pruners.NopPruner,
}


def make_pruner(name: str, options: dict[str, Any]) -> optuna.pruners.BasePruner:
    """The pruner ``name`` with ``options``.

    Raises:
        SpecError: unknown name or options the pruner does not take.
    """
    if name not in PRUNERS:
        raise SpecError(f"unknown pruner {name!r} (known: {', '.join(PRUNERS)})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return PRUNERS[name](**options)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise SpecError(f"pruner_options for {name}: {str(exc).splitlines()[0]}") from None
