"""The objectives of the quickstart notebook: the Branin function (minimum 0.397887)."""

from __future__ import annotations

import math
import time

import hpo


def objective(point: dict) -> float:
    """Branin-Hoo on x1 in [-5, 10], x2 in [0, 15]."""
    x1, x2 = point["x1"], point["x2"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


def with_epochs(point: dict) -> float:
    """Branin reached over 5 "epochs", each reported (the dashboard's intermediate values)."""
    final = objective(point)
    for epoch in range(5):
        time.sleep(0.05)
        hpo.report(epoch, final * (1 + 1 / (epoch + 1)))
        if hpo.should_prune():
            raise hpo.Pruned()
    return final
