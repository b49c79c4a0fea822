"""Do a scan's reported errors cover? Scans of a model whose toy limits are known exactly.

The model is one Gaussian measurement ``x ~ N(mu, 1)`` with ``mu >= 0`` and pyhf's q~mu
(``qtilde``): ``0`` where ``x >= mu``, ``(x - mu)^2`` where ``0 <= x < mu`` and
``mu^2 - 2 mu x`` where ``x < 0``. It decreases with ``x``, so a tail of toys at least as
extreme as a value is a tail of ``x``, and CLs with infinitely many toys is known in closed
form: ``Phi(x - mu) / Phi(x)`` at the observed ``x`` or, for an expected band, at the
background-only quantile of ``x``. Its CLs is pinned at 1 wherever the band's ``x`` is above
``mu`` (every toy has q~mu = 0 there), as the +2 sigma band of a real workspace is.

:func:`simulate` runs the scan's own plan (:func:`toys.scan.next_step`) and limits
(:func:`toys.scan.limits`) on toys drawn from this model, batch by batch as the dispatcher
would hand them in (steps as barriers: the plan a scan with ``barrier`` makes), without Ray or
pyhf: a scan takes about a second, so the fraction of reported +-1 sigma intervals that
contain the true limit can be counted over hundreds of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from toys import scan as scan_mod
from toys.stats import BANDS, EXPECTED_QUANTILES, batch_seed

if TYPE_CHECKING:
    from toys.spec import ToyScanSpec


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def _phi_inv(p: float) -> float:
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _phi(mid) < p else (lo, mid)
    return (lo + hi) / 2


def qtilde(x: np.ndarray, mu: float) -> np.ndarray:
    """q~mu of measurements ``x`` of a unit Gaussian with mean ``mu``."""
    x = np.asarray(x, dtype=float)
    inside = np.where(x >= 0, (x - mu) ** 2, mu * mu - 2 * mu * x)
    return np.where(x >= mu, 0.0, inside)


@dataclass(frozen=True)
class GaussianModel:
    """``x ~ N(mu, 1)`` observed at ``x_obs``; see the module's docstring."""

    x_obs: float = 0.3

    def band_x(self, band: str) -> float:
        """The measurement a band's CLs is read at (the observed one, or a b-only quantile)."""
        if band == "obs":
            return self.x_obs
        return _phi_inv(1 - EXPECTED_QUANTILES[band])  # a large q~mu is a small x

    def cls(self, mu: float, band: str) -> float:
        """CLs with infinitely many toys."""
        x = self.band_x(band)
        return 1.0 if x >= mu else _phi(x - mu) / _phi(x)

    def limit(self, band: str, alpha: float) -> float:
        """The true toy limit: where CLs first falls to ``alpha`` (bisection)."""
        lo, hi = 0.0, 50.0
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.cls(mid, band) > alpha else (lo, mid)
        return (lo + hi) / 2

    def batch(self, seed: int, mu: float, batch: int, toys: int) -> dict[str, Any]:
        """One batch of toys at ``mu``, as :func:`toys.stats.run_batch` returns it."""
        rng = np.random.default_rng(batch_seed(seed, mu, batch))
        q_sb = qtilde(rng.normal(mu, 1.0, toys), mu)
        q_b = qtilde(rng.normal(0.0, 1.0, toys), mu)
        q_obs = float(qtilde(np.array([self.x_obs]), mu)[0])
        return {"mu": mu, "batch": batch, "q_obs": q_obs, "q_sb": q_sb.tolist(),
                "q_b": q_b.tolist(), "failed": 0}  # fmt: skip


@dataclass(frozen=True)
class Simulated:
    """A simulated scan's end: its points and limits, the steps it ran and why it stopped."""

    points: dict[float, scan_mod.Point]
    limits: dict[str, scan_mod.Limit]
    steps: int
    stopped_because: str

    @property
    def toys(self) -> int:
        return scan_mod.total_toys(self.points)


#: Why a converged scan stopped.
CONVERGED = "every limit is known to the tolerance"


def simulate(spec: ToyScanSpec, model: GaussianModel) -> Simulated:
    """Run ``spec``'s plan step by step on toys of ``model`` (seeded by ``spec.seed``),
    stopping where :class:`toys.run.ToyScanRun` would."""
    results: list[dict[str, Any]] = []
    step, why = 0, "max_steps reached"
    while step < spec.max_steps:
        points = scan_mod.collect(results)
        want = scan_mod.next_step(points, spec)
        if not want:
            why = CONVERGED
            break
        if scan_mod.total_toys(points) + 2 * spec.batch_toys * sum(want.values()) > spec.max_toys:
            why = "max_toys reached"
            break
        for mu, count in sorted(want.items()):
            first = points[mu].batches if mu in points else 0
            results += [
                model.batch(spec.seed, mu, b, spec.batch_toys) for b in range(first, first + count)
            ]
        step += 1
    points = scan_mod.collect(results)
    return Simulated(points, scan_mod.limits(points, 1 - spec.cl), step, why)


@dataclass(frozen=True)
class Coverage:
    """What :func:`coverage` counted.

    Attributes:
        counts: per band, ``(contained, scans)`` over the scans that converged.
        converged: the scans that stopped because every limit was known to the tolerance.
        scans: the scans run.
        mean_toys: the toys a converged scan needed, on average.
    """

    counts: dict[str, tuple[int, int]]
    converged: int
    scans: int
    mean_toys: float


def coverage(spec: ToyScanSpec, model: GaussianModel, seeds: range) -> Coverage:
    """How many of the scans seeded ``seeds`` that converge report a +-1 sigma interval that
    contains the true limit, per band (a scan stopped by ``max_steps`` or ``max_toys``
    reports errors above the tolerance, and is counted apart)."""
    alpha = 1 - spec.cl
    truth = {band: model.limit(band, alpha) for band in BANDS}
    counts = dict.fromkeys(BANDS, (0, 0))
    toys: list[int] = []
    for seed in seeds:
        done = simulate(spec.model_copy(update={"seed": seed}), model)
        if done.stopped_because != CONVERGED:
            continue
        toys.append(done.toys)
        for band, lim in done.limits.items():
            hit, n = counts[band]
            inside = lim.value is not None and abs(lim.value - truth[band]) <= lim.error
            counts[band] = (hit + inside, n + 1)  # no limit found counts as a miss
    return Coverage(counts, len(toys), len(seeds), float(np.mean(toys)) if toys else math.nan)
