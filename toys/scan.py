"""The scan logic: CLs per point from the toys recorded so far, limits by interpolation,
and where the next step puts points and toys.

Pure functions of the recorded batches, so a resumed scan plans exactly what an
uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from toys import fit
from toys.stats import (
    BANDS,
    EXPECTED_QUANTILES,
    REPLICAS,
    batch_seed,
    cls_replicas,
    sorted_array,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from toys.spec import ToyScanSpec


@dataclass
class Point:
    """The toys recorded at one POI value (all its batches together)."""

    mu: float
    q_obs: float = float("nan")
    q_sb: list[float] = field(default_factory=list)
    q_b: list[float] = field(default_factory=list)
    batches: int = 0
    failed: int = 0
    _cached: tuple[tuple[int, int], dict[str, tuple[float, float, np.ndarray]]] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def toys(self) -> int:
        """Toys thrown here (both hypotheses)."""
        return len(self.q_sb) + len(self.q_b) + self.failed

    def add(self, result: dict[str, Any]) -> None:
        """Add one batch's result (see :func:`toys.stats.run_batch`)."""
        self.q_obs = float(result["q_obs"])
        self.q_sb += result["q_sb"]
        self.q_b += result["q_b"]
        self.failed += int(result.get("failed", 0))
        self.batches += 1

    def cls(self) -> dict[str, tuple[float, float]]:
        """CLs and its error for each band (by :data:`BANDS`): the toys' whole noise, the
        spread of the background-only quantile included (see :func:`toys.stats.cls_bands`)."""
        return {band: (c, e) for band, (c, e, _) in self._bands().items()}

    def replicas(self, band: str) -> np.ndarray:
        """The bootstrap replicas of ``band``'s CLs behind its error (see
        :func:`toys.stats.cls_replicas`)."""
        return self._bands()[band][2]

    def _bands(self) -> dict[str, tuple[float, float, np.ndarray]]:
        if self.mu == 0.0:  # both hypotheses are the same: CLs is 1 exactly
            return {band: (1.0, 0.0, np.ones(REPLICAS)) for band in BANDS}
        key = (len(self.q_sb), len(self.q_b))
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        q_sb, q_b = sorted_array(self.q_sb), sorted_array(self.q_b)
        if not len(q_sb) or not len(q_b):
            return {band: (math.nan, math.inf, np.full(REPLICAS, np.nan)) for band in BANDS}
        found = cls_replicas(self.q_obs, q_sb, q_b, batch_seed(key[0], self.mu, key[1]))
        self._cached = (key, found)
        return found


def collect(results: Iterable[dict[str, Any]]) -> dict[float, Point]:
    """Batch results grouped into points, by POI value."""
    points: dict[float, Point] = {}
    for result in results:
        mu = float(result["mu"])
        points.setdefault(mu, Point(mu)).add(result)
    return points


@dataclass(frozen=True)
class Limit:
    """One band's upper limit and how well it is known.

    Attributes:
        band: ``obs`` or an expected band (``-2``, ``-1``, ``0``, ``+1``, ``+2``).
        value: the limit (None when the CLs curve does not cross ``1 - CL`` in the scan).
        stat: its error from the toy statistics (binomial errors of the tail fractions).
        interp: its interpolation error (log-linear against linear between the bracket).
        bracket: the scanned POI values on either side of the crossing.
        status: ``ok``, ``above`` (CLs above ``1 - CL`` everywhere scanned) or ``below``.
    """

    band: str
    value: float | None
    stat: float
    interp: float
    bracket: tuple[float, float] | None
    status: str

    @property
    def error(self) -> float:
        """The total error: statistical and interpolation errors in quadrature."""
        return math.hypot(self.stat, self.interp)


def _curve(points: dict[float, Point], band: str) -> list[tuple[float, float, float]]:
    """(mu, CLs, error) of one band, by increasing mu, with CLs(0) = 1 as an anchor."""
    curve = [(p.mu, *p.cls()[band]) for p in points.values()]
    if all(mu > 0 for mu, _, _ in curve):
        curve.append((0.0, 1.0, 0.0))
    return sorted(c for c in curve if not math.isnan(c[1]))


def limit(points: dict[float, Point], band: str, alpha: float) -> Limit:
    """Where ``band``'s CLs first falls to ``alpha``.

    The bracket (the scanned values either side of the first crossing) locates it; a
    weighted fit of log CLs over up to three points on each side of it (then of the
    crossing the fit finds) sets it, with an
    error from a bootstrap that redraws all those points at once (:mod:`toys.fit`), so that
    one noisy point neither moves it nor makes its error small. With too few points the
    bracket's log-linear interpolation stands in.

    Args:
        points: the scan's points.
        band: which curve.
        alpha: ``1 - CL``.

    Returns:
        The limit; ``stat`` is its error from the toys (through the fit), ``interp`` how much
        linear and log-linear interpolation across the bracket disagree.
    """
    curve = _curve(points, band)
    below = [i for i, (_, c, _) in enumerate(curve) if c <= alpha]
    if not below:
        return Limit(band, None, math.inf, math.inf, None, "above")
    i = below[0]
    if i == 0:
        return Limit(band, None, math.inf, math.inf, None, "below")
    m1, m2 = curve[i - 1][0], curve[i][0]
    value, stat, interp = _interpolate(curve[i - 1], curve[i], alpha)
    fitted = _fit(points, band, curve, i, alpha, value)
    if fitted is not None:
        value, stat = fitted
        interp = 0.0
    return Limit(band, value, stat, interp, (m1, m2), "ok")


def _fit(
    points: dict[float, Point],
    band: str,
    curve: list[tuple[float, float, float]],
    split: int,
    alpha: float,
    near: float,
) -> tuple[float, float] | None:
    """The fit of :mod:`toys.fit` over the points around ``split``, then again around the
    crossing it found until its points stay the same: a noisy point that falls below
    ``alpha`` early moves the bracket, not the fit's window."""
    used: list[int] = []
    fitted = None
    edge = {mu for mu, _, _ in curve if mu > 0 and fit.at_edge(points[mu].replicas(band))}
    for _ in range(3):
        window = fit.window(curve, split, edge)
        if window == used or len(window) < 3:
            break
        used = window
        rows = [curve[j] for j in window]
        replicas = np.stack([points[mu].replicas(band) for mu, _, _ in rows], axis=1)
        found = fit.crossing(rows, replicas, alpha, near)
        if found is None:
            break
        fitted = found
        split = next((j for j, (mu, _, _) in enumerate(curve) if mu > found[0]), len(curve))
    return fitted


#: A CLs of zero (no toy as extreme) still has a logarithm: this fraction of ``1 - CL``.
_FLOOR = 1e-3


def _interpolate(
    left: tuple[float, float, float], right: tuple[float, float, float], alpha: float
) -> tuple[float, float, float]:
    """The crossing between two points, log-linearly: value, error from the two CLs errors,
    and its distance to the linear interpolation's."""
    (m1, c1, e1), (m2, c2, e2) = left, right
    floor = alpha * _FLOOR
    l1, l2, la = math.log(max(c1, floor)), math.log(max(c2, floor)), math.log(alpha)
    span = l1 - l2
    value = m1 + (l1 - la) / span * (m2 - m1) if span > 0 else m2
    linear = m1 + (c1 - alpha) / (c1 - c2) * (m2 - m1) if c1 > c2 else value
    d1 = (m2 - m1) * (la - l2) / span**2 if span > 0 else 0.0  # d value / d l1
    d2 = (m2 - m1) * (l1 - la) / span**2 if span > 0 else 0.0  # d value / d l2
    stat = math.hypot(d1 * e1 / max(c1, floor), d2 * e2 / max(c2, floor))
    return value, stat, abs(value - linear)


def limits(points: dict[float, Point], alpha: float) -> dict[str, Limit]:
    """Every band's limit (by :data:`BANDS`)."""
    return {band: limit(points, band, alpha) for band in BANDS}


def coarse_grid(spec: ToyScanSpec) -> list[float]:
    """The first step's POI values: ``points`` evenly over the range (zero left out: there
    CLs is 1 by construction)."""
    lo, hi = spec.range
    if lo == 0.0:
        return [_tidy(hi * (i + 1) / spec.points) for i in range(spec.points)]
    return [_tidy(v) for v in np.linspace(lo, hi, spec.points)]


def _tidy(mu: float) -> float:
    return float(f"{mu:.10g}")


def converged(lim: Limit, tolerance: float) -> bool:
    """Whether a band's limit is known to ``tolerance`` (or cannot be, within the range)."""
    return lim.status != "ok" or lim.error <= tolerance


def next_step(points: dict[float, Point], spec: ToyScanSpec) -> dict[float, int]:
    """Batches to add per POI value in the next step (empty when every limit is known).

    For each band whose limit is not known to the tolerance: while its bracket is wide (the
    interpolation error is too large, or the bracket spans over four tolerances) a new point
    at its estimate, with ``toys`` toys; once it is narrow, more toys where the statistical
    error comes from (enough to reach the tolerance, at most four times as many).
    """
    if not points:
        return {mu: spec.batches_per_point for mu in coarse_grid(spec)}
    want: dict[float, int] = {}
    tolerance = spec.tolerance_or_default
    share = tolerance / math.sqrt(2)
    alpha = 1 - spec.cl
    for lim in limits(points, alpha).values():
        if lim.status == "ok" and lim.bracket is not None:
            _fill_tails(points, lim, alpha, want)
        if converged(lim, tolerance) or lim.value is None or lim.bracket is None:
            continue
        wide = lim.bracket[1] - lim.bracket[0] > 4 * tolerance
        if lim.interp > share or wide:
            mu, batches = _new_point(points, lim.value, spec)
            if mu not in lim.bracket:  # a new point (else its nearest end gets more toys)
                # Bands whose estimates fall within half a tolerance share one new point.
                mu = next((m for m in want if m not in points and abs(m - mu) < share), mu)
                _ask(want, mu, batches)
                continue
        factor = min(4.0, (lim.stat / (0.8 * share)) ** 2)
        for mu in _stat_sources(points, lim):
            _ask(want, mu, math.ceil(points[mu].batches * max(factor - 1.0, 0.5)))
    return want


#: Signal-plus-background toys a bracket end's tail should hold at the crossing before its
#: limit counts as known: with fewer, log CLs is too skewed for its error to be trusted.
TAIL_TOYS = 10


def _fill_tails(
    points: dict[float, Point], lim: Limit, alpha: float, want: dict[float, int]
) -> None:
    """More toys (up to four times as many) at the bracket ends whose tail at the crossing,
    ``alpha`` x CLb x toys, holds fewer than :data:`TAIL_TOYS` toys."""
    # A band's CLb is one minus its quantile; the observed one's is taken as a half.
    clb = 1 - EXPECTED_QUANTILES[lim.band] if lim.band in EXPECTED_QUANTILES else 0.5
    for mu in lim.bracket or ():
        point = points.get(mu)
        if point is None or mu == 0.0 or not point.q_sb:
            continue
        tail = alpha * clb * len(point.q_sb)
        if tail < TAIL_TOYS:
            factor = min(4.0, TAIL_TOYS / max(tail, 1e-9))
            _ask(want, mu, math.ceil(point.batches * (factor - 1.0)))


def _stat_sources(points: dict[float, Point], lim: Limit) -> list[float]:
    """The bracket ends whose CLs errors make up most of the limit's statistical error: the
    one nearer the crossing, and the other too when it counts for as much."""
    value = lim.value if lim.value is not None else 0.0
    ends = [mu for mu in lim.bracket or () if mu in points and mu > 0]
    ends.sort(key=lambda mu: abs(mu - value))
    if len(ends) == 2:
        near, far = (abs(mu - value) for mu in ends)
        return ends if far < 2 * near else ends[:1]
    return ends


def _new_point(points: dict[float, Point], estimate: float, spec: ToyScanSpec) -> tuple[float, int]:
    """A new POI value at ``estimate`` (on a grid of a fifth of the tolerance); an existing
    point as near as that gets more toys instead."""
    step = spec.tolerance_or_default / 5
    mu = _tidy(round(estimate / step) * step)
    near = [m for m in points if abs(m - mu) < step]
    if near:
        return near[0], points[near[0]].batches
    return mu, spec.batches_per_point


def _ask(want: dict[float, int], mu: float, batches: int) -> None:
    want[mu] = max(want.get(mu, 0), batches)


def total_toys(points: dict[float, Point]) -> int:
    """Toys thrown in all (both hypotheses)."""
    return sum(p.toys for p in points.values())
