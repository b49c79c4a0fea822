"""Where a band's CLs curve crosses ``1 - CL``: a weighted fit of log CLs against the POI
over the scanned points around the crossing, and its error from a joint bootstrap.

Every replica redraws the CLs of every point in the fit at once, each from its own toys'
bootstrap (:func:`toys.stats.cls_replicas`: tail counts and, for an expected band, the
background-only quantile it is read at), and is fitted again. The error is half the central
68 % of the replicas' crossings: it carries the noise of every point the fit uses, the
uncertainty of the fitted curvature and the fit's non-linearity together, where a
propagation of the fit's covariance underrates a root whose slope is poorly known.

A replica whose fitted curve does not fall through ``1 - CL`` near the window counts as a
crossing at infinity on its side, so a fit that the toys do not yet pin down reports an
infinite error (and the scan throws more toys) rather than a small one.
"""

from __future__ import annotations

import math

import numpy as np

#: A replica's CLs of zero (no toy as extreme) still has a logarithm: this fraction of alpha.
FLOOR = 1e-3
#: The 1 sigma quantiles of a normal distribution.
_SIGMA = (0.5 * (1 - math.erf(1 / math.sqrt(2))), 0.5 * (1 + math.erf(1 / math.sqrt(2))))
#: Points on each side of the crossing the fit uses (fewer where the scan has fewer).
SIDE = 3


def window(
    curve: list[tuple[float, float, float]], first_below: int, edge: set[float] | None = None
) -> list[int]:
    """Indices of ``curve`` (by increasing POI) that the fit of a crossing uses: up to
    :data:`SIDE` usable points on each side of it. Points known exactly (CLs = 1 at zero, or
    pinned at 1 where every toy has q = 0) and points with no toy in the tail say nothing
    about the slope and are left out, as are the POI values in ``edge`` (see
    :func:`at_edge`)."""

    def usable(i: int) -> bool:
        mu, c, e = curve[i]
        return mu > 0 and 0 < c < 1 and e > 0 and mu not in (edge or ())

    left = [i for i in range(first_below - 1, -1, -1) if usable(i)][:SIDE]
    right = [i for i in range(first_below, len(curve)) if usable(i)][:SIDE]
    return sorted(left + right)


def at_edge(replicas: np.ndarray) -> bool:
    """Whether a point lies at the edge of the q = 0 spike: more than 16 % of its CLs
    replicas are pinned at 1 (the band's quantile falls on the toys with q = 0 there). There
    a band's CLs jumps from 1 to its smooth curve, so the point is no part of that curve."""
    return bool(np.mean(replicas >= 1.0) > _SIGMA[0])


def crossing(
    rows: list[tuple[float, float, float]], replicas: np.ndarray, alpha: float, near: float
) -> tuple[float, float] | None:
    """The crossing of ``alpha`` by a weighted fit of log CLs over ``rows`` and its error.

    A parabola over four points or more (log CLs of a test statistic that grows like the
    square of the POI), else a straight line; weights from each point's CLs error.

    Args:
        rows: ``(mu, CLs, error)`` of the points in the fit.
        replicas: the points' bootstrap replicas of CLs, one column per row.
        alpha: ``1 - CL``.
        near: a first estimate of the crossing (the fit is centred there).

    Returns:
        ``(value, error)``; None when fewer than three points remain or the fit of the
        points' own CLs does not fall through ``alpha`` within the window.
    """
    if len(rows) < 3:
        return None
    x = np.array([m for m, _, _ in rows]) - near
    y = np.log([c for _, c, _ in rows]) - math.log(alpha)
    w = np.array([(c / e) ** 2 for _, c, e in rows])  # 1 / variance of log CLs
    floor = alpha * FLOOR
    with np.errstate(invalid="ignore"):
        ys = np.log(np.maximum(np.nan_to_num(replicas, nan=0.0), floor)) - math.log(alpha)
    for degree in (2, 1) if len(rows) >= 4 else (1,):
        design = np.stack([x**k for k in range(degree + 1)], axis=1)
        # Each point's noise as it would be where the fitted curve puts its CLs: a point's
        # own error follows its own fluctuation (a low CLs has fewer tail toys, so a smaller
        # error), and a stopping rule that waits for a small error would pick low ones.
        scale = np.ones(len(rows))
        for _ in range(2):
            solve = _solve(design, w / scale**2)
            fitted = design @ (solve @ y)
            scale = np.exp(np.clip(y - fitted, -4, 4) / 2)  # sqrt(CLs / fitted CLs)
        root = _roots((solve @ y)[:, None], x)[0]
        if not math.isfinite(root):
            continue
        roots = _roots(solve @ (y + (ys - y) * scale).T, x)
        # Order statistics (no interpolation: a replica at infinity must not make a NaN).
        low, high = np.quantile(roots, _SIGMA, method="inverted_cdf")
        misfit = _misfit(y - fitted, w / scale**2, len(rows) - degree - 1)
        return near + float(root), float(high - low) / 2 * misfit
    return None


#: The chi-square probability below which the fitted curve is taken not to describe the
#: points: their errors are then scaled up by sqrt(chi2 / ndf).
MISFIT_PROBABILITY = 0.01


def _misfit(residuals: np.ndarray, w: np.ndarray, ndf: int) -> float:
    """How much the points scatter about the fitted curve beyond their errors: sqrt(chi2 /
    ndf) where the fit's chi-square probability is below :data:`MISFIT_PROBABILITY` (the
    curve is then not the points' model, and the bootstrap, which redraws the points about
    their own values, does not see it), else 1 (a scale taken from every fit would inflate
    the errors of fits whose scatter is only chance)."""
    from scipy.special import gammaincc

    if ndf <= 0:
        return 1.0
    chi2 = float(np.sum(w * residuals**2))
    return math.sqrt(chi2 / ndf) if gammaincc(ndf / 2, chi2 / 2) < MISFIT_PROBABILITY else 1.0


def _solve(design: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The weighted least-squares solution as a matrix: coefficients = this @ values."""
    return np.linalg.solve(design.T @ (design * w[:, None]), (design * w[:, None]).T)


def _roots(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """For each column of polynomial coefficients, the root nearest the window where the
    curve falls: Newton's steps from the straight line's root. A curve that does not fall
    through zero within a window's width of the points counts as crossing at infinity on
    its side (+inf while it is still above zero at the window's centre)."""
    c0, c1 = coef[0], coef[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.where(c1 < 0, -c0 / c1, np.nan)
        for _ in range(20):
            value = sum(c * root**k for k, c in enumerate(coef))
            slope = sum(k * c * root ** (k - 1) for k, c in enumerate(coef) if k)
            root = np.where(slope < 0, root - value / slope, np.nan)
        slope = sum(k * c * root ** (k - 1) for k, c in enumerate(coef) if k)
    span = max(float(np.ptp(x)), 1e-9)
    fine = (slope < 0) & (root >= x.min() - span) & (root <= x.max() + span)
    return np.where(fine, root, np.where(c0 > 0, np.inf, -np.inf))
