"""The CLs plot: toys' curves with the asymptotic ones overlaid, on a linear or a log axis."""

from __future__ import annotations

import pytest

from toys.coverage import GaussianModel, simulate
from toys.plot import plot_cls
from toys.spec import ToyScanSpec
from toys.stats import BANDS
from toys.toyscan import ScanResult


@pytest.mark.parametrize("log", [False, True])
def test_plot_overlays_the_asymptotic_curves(tmp_path, log):
    spec = ToyScanSpec.from_mapping({"name": "p", "workspace": {}, "range": [0, 5], "toys": 500,
                                     "batch_size": 500, "points": 6, "max_steps": 2})  # fmt: skip
    model = GaussianModel()
    done = simulate(spec, model)
    result = ScanResult(done.points, done.limits, 0.1, done.toys, {}, done.steps)
    mus = [0.1 * i for i in range(1, 51)]
    # For one Gaussian measurement the asymptotic formulae are exact.
    curves = {"mu": mus, **{b: [model.cls(m, b) for m in mus] for b in BANDS}}
    path = tmp_path / "cls.png"
    plot_cls(result, path, cl=0.95, poi="mu", title="t", asymptotic=curves, log=log)
    assert path.stat().st_size > 5000
