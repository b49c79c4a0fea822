"""The statistics of a toy scan: pyhf models, toy batches, tail fractions and CLs.

Toys are thrown from pyhf's own pdf (``model.make_pdf(pars).sample``) at the nuisance
parameters of the conditional fit to the observed data (the LHC prescription): the
signal-plus-background toys at the tested POI value, the background-only toys at zero. Each
toy's test statistic is pyhf's (``qmu_tilde`` or ``qmu``). The p-values are tail fractions
of the toy distributions, computed here (pyhf 0.7.6's ToyCalculator fails on numpy >= 2.4).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

#: The expected bands, by name, and the quantile of the background-only test-statistic
#: distribution each one is read at. A larger test statistic means a smaller CLs, hence a
#: lower limit: the -2 sigma band sits at the 97.7 % quantile.
EXPECTED_QUANTILES: dict[str, float] = {
    "-2": 0.5 * (1 + math.erf(2 / math.sqrt(2))),
    "-1": 0.5 * (1 + math.erf(1 / math.sqrt(2))),
    "0": 0.5,
    "+1": 0.5 * (1 - math.erf(1 / math.sqrt(2))),
    "+2": 0.5 * (1 - math.erf(2 / math.sqrt(2))),
}
#: Every curve a scan sets a limit on: the observed one and the five expected ones.
BANDS: tuple[str, ...] = ("obs", "-2", "-1", "0", "+1", "+2")
#: Test statistics by spec name: pyhf's q~mu (bounded POI) and qmu.
TEST_STATS = ("qtilde", "q")
#: Toys whose test statistic equals the observed one within this (relative) count as at
#: least as extreme: fits of identical counts differ only by the minimiser's noise.
TIE_TOLERANCE = 1e-6


def workspace_key(workspace: dict[str, Any]) -> str:
    """A short digest of a workspace (the cache key of its model on a worker)."""
    text = json.dumps(workspace, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=8)
def _model(key: str, text: str, poi: str) -> tuple[Any, Any]:
    import pyhf

    pyhf.set_backend("numpy")
    workspace = pyhf.Workspace(json.loads(text))
    model = workspace.model(poi_name=poi)
    return model, workspace.data(model)


def model_and_data(workspace: dict[str, Any], poi: str) -> tuple[Any, Any]:
    """The pyhf model of ``workspace`` with ``poi`` as parameter of interest, and its data.

    Built once per process and workspace (a worker runs many batches of one scan).

    Raises:
        pyhf.exceptions.InvalidSpecification: pyhf rejects the workspace.
    """
    text = json.dumps(workspace, sort_keys=True)
    return _model(workspace_key(workspace), text, poi)


def _fit_setup(model: Any) -> tuple[Any, Any, Any]:
    return (
        model.config.suggested_init(),
        model.config.suggested_bounds(),
        model.config.suggested_fixed(),
    )


def test_statistic(name: str, mu: float, data: Any, model: Any) -> float:
    """pyhf's test statistic ``name`` (``qtilde`` or ``q``) of ``data`` at POI ``mu``."""
    from pyhf.infer import test_statistics

    fn = test_statistics.qmu_tilde if name == "qtilde" else test_statistics.qmu
    return float(fn(mu, data, model, *_fit_setup(model)))


def _toy_statistics(name: str, mu: float, toys: Any, model: Any) -> tuple[list[float], int]:
    """The test statistic of each toy; toys whose fit fails are left out and counted."""
    from pyhf.exceptions import FailedMinimization

    values, failed = [], 0
    for toy in toys:
        try:
            values.append(test_statistic(name, mu, toy, model))
        except FailedMinimization:
            failed += 1
    return values, failed


def batch_seed(seed: int, mu: float, batch: int) -> int:
    """The seed of batch ``batch`` at POI ``mu`` of a scan seeded ``seed`` (deterministic)."""
    bits = int(np.float64(mu).view(np.uint64))
    entropy = [seed, bits & 0xFFFFFFFF, bits >> 32, batch]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def run_batch(task: dict[str, Any]) -> dict[str, Any]:
    """Throw one batch of toys at one POI value (the payload of a toy-scan task).

    Args:
        task: ``workspace`` (pyhf JSON), ``poi``, ``mu``, ``toys`` (per hypothesis),
            ``test_stat``, ``seed`` (the scan's) and ``batch`` (the batch's index at ``mu``).

    Returns:
        ``{"mu", "batch", "q_obs", "q_sb", "q_b", "failed", "cpu_s"}``: the observed test
        statistic, those of the signal-plus-background and background-only toys, how many
        toys' fits failed, and the CPU seconds the batch took.
    """
    import time

    import pyhf

    cpu = time.process_time()

    model, data = model_and_data(task["workspace"], task["poi"])
    mu, name, n = float(task["mu"]), task["test_stat"], int(task["toys"])
    init, bounds, fixed = _fit_setup(model)
    poi = model.config.poi_index
    sb_pars = pyhf.infer.mle.fixed_poi_fit(mu, data, model, init, bounds, fixed)
    b_pars = pyhf.infer.mle.fixed_poi_fit(0.0, data, model, init, bounds, fixed)
    sb_pars[poi], b_pars[poi] = mu, 0.0
    # pyhf's sampling draws from numpy's global generator: seed it for this batch.
    np.random.seed(batch_seed(int(task["seed"]), mu, int(task["batch"])))
    sb_toys = model.make_pdf(pyhf.tensorlib.astensor(sb_pars)).sample((n,))
    b_toys = model.make_pdf(pyhf.tensorlib.astensor(b_pars)).sample((n,))
    q_sb, failed_sb = _toy_statistics(name, mu, sb_toys, model)
    q_b, failed_b = _toy_statistics(name, mu, b_toys, model)
    return {
        "mu": mu,
        "batch": int(task["batch"]),
        "q_obs": test_statistic(name, mu, data, model),
        "q_sb": q_sb,
        "q_b": q_b,
        "failed": failed_sb + failed_b,
        "cpu_s": round(time.process_time() - cpu, 4),
    }


@dataclass(frozen=True)
class TailFraction:
    """``k`` of ``n`` toys at least as extreme as a value: a binomial estimate."""

    k: int
    n: int

    @property
    def p(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def relative_error(self) -> float:
        """The binomial error over the estimate; an empty tail counts half a toy (so that an
        estimate of zero is not taken as exact)."""
        if not self.n:
            return float("inf")
        k = max(self.k, 0.5)
        p = k / self.n
        return math.sqrt(p * (1 - p) / self.n) / p if p < 1 else 0.0


def tail(sorted_values: np.ndarray, value: float) -> TailFraction:
    """How many of ``sorted_values`` are at least ``value`` (within :data:`TIE_TOLERANCE`)."""
    edge = value - TIE_TOLERANCE * max(1.0, abs(value))
    n = len(sorted_values)
    return TailFraction(n - int(np.searchsorted(sorted_values, edge, side="left")), n)


def cls(q_sb: np.ndarray, q_b: np.ndarray, value: float) -> tuple[float, float]:
    """CLs = CLs+b / CLb at test statistic ``value``, and its statistical error.

    Args:
        q_sb: the signal-plus-background toys' test statistics, sorted.
        q_b: the background-only toys' test statistics, sorted.
        value: the observed test statistic (or a quantile of ``q_b`` for an expected band).

    Returns:
        CLs and its error: the binomial errors of both tail fractions, propagated.
    """
    sb, b = tail(q_sb, value), tail(q_b, value)
    if b.k == 0:  # no background toy as extreme: CLs is not defined; call it 0 +- 1
        return 0.0, 1.0
    ratio = sb.p / b.p
    rel = math.hypot(sb.relative_error, b.relative_error)
    return ratio, max(ratio, 0.5 / sb.n / b.p) * rel


#: Bootstrap replicas behind each CLs error (:func:`cls_bands`).
REPLICAS = 400
#: The 1 sigma quantiles of a normal distribution (the half-width of a 68 % interval).
_SIGMA = (0.5 * (1 - math.erf(1 / math.sqrt(2))), 0.5 * (1 + math.erf(1 / math.sqrt(2))))


def cls_bands(
    q_obs: float, q_sb: np.ndarray, q_b: np.ndarray, seed: int
) -> dict[str, tuple[float, float]]:
    """CLs of every band (by :data:`BANDS`) with an error that covers all the toys' noise.

    The error is half the central 68 % of a bootstrap of the recorded toys (see
    :func:`cls_replicas`); it is never below the resolution of half a toy.

    Args:
        q_obs: the observed test statistic.
        q_sb: the signal-plus-background toys' test statistics, sorted.
        q_b: the background-only toys' test statistics, sorted.
        seed: seeds the replicas (the same toys give the same errors).

    Returns:
        ``(CLs, error)`` by band.
    """
    return {band: (c, e) for band, (c, e, _) in cls_replicas(q_obs, q_sb, q_b, seed).items()}


def cls_replicas(
    q_obs: float, q_sb: np.ndarray, q_b: np.ndarray, seed: int
) -> dict[str, tuple[float, float, np.ndarray]]:
    """:func:`cls_bands`, with the bootstrap replicas of each band's CLs behind its error.

    Each replica redraws the background-only quantile an expected band is read at (its
    order statistic, ``Beta``-distributed in probability) and both tail counts (binomial);
    the observed band redraws only the counts. A limit's fit redraws every point it uses
    from these replicas at once (:mod:`toys.fit`).

    Returns:
        ``(CLs, error, replicas)`` by band; a replica whose CLb is zero is NaN.
    """
    out = {}
    for index, (band, value) in enumerate(band_values(q_obs, q_b).items()):
        ratio = cls(q_sb, q_b, value)[0]
        rng = np.random.default_rng([seed, index])
        replicas = _replicas(rng, band, value, q_sb, q_b)
        finite = replicas[np.isfinite(replicas)]
        low, high = _quantiles(np.sort(finite), _SIGMA) if len(finite) else (0.0, 0.0)
        clb = tail(q_b, value).p
        half_toy = 0.5 / len(q_sb) / clb if clb > 0 else 1.0
        out[band] = (ratio, max(float(high - low) / 2, half_toy), replicas)
    return out


def _tails(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """:func:`tail`'s fraction at each of ``values``."""
    edges = values - TIE_TOLERANCE * np.maximum(1.0, np.abs(values))
    n = len(sorted_values)
    return (n - np.searchsorted(sorted_values, edges, side="left")) / n


def _quantiles(sorted_values: np.ndarray, probs: Any) -> np.ndarray:
    """``np.quantile`` (its linear method) of values already sorted, without sorting."""
    at = np.asarray(probs, dtype=float) * (len(sorted_values) - 1)
    low = np.clip(np.floor(at).astype(int), 0, len(sorted_values) - 1)
    high = np.minimum(low + 1, len(sorted_values) - 1)
    frac = at - low
    return sorted_values[low] + frac * (sorted_values[high] - sorted_values[low])


def _replicas(
    rng: np.random.Generator, band: str, value: float, q_sb: np.ndarray, q_b: np.ndarray
) -> np.ndarray:
    """CLs of :data:`REPLICAS` bootstrap replicas of one band (NaN where CLb is zero)."""
    n_sb, n_b = len(q_sb), len(q_b)
    if band == "obs":
        clb = rng.binomial(n_b, tail(q_b, value).p, REPLICAS) / n_b
        clsb = rng.binomial(n_sb, tail(q_sb, value).p, REPLICAS) / n_sb
    else:
        # The order statistic np.quantile reads, redrawn: its probability is Beta-distributed.
        # CLb stays what it is: redrawn background-only toys hold the same fraction beyond
        # their own quantile (it is the quantile's definition), while CLs+b moves with it.
        prob = EXPECTED_QUANTILES[band]
        rank = prob * (n_b - 1)
        probs = rng.beta(rank + 1, n_b - rank, REPLICAS)
        clb = np.full(REPLICAS, tail(q_b, value).p)
        ratio = _local_ratio(q_sb, q_b, rank)
        if ratio is None:  # on the q = 0 spike: the sample's own order statistics
            clsb = rng.binomial(n_sb, _tails(q_sb, _quantiles(q_b, probs))) / n_sb
        else:
            moved = np.clip(tail(q_sb, value).p + ratio * (prob - probs), 0.0, 1.0)
            clsb = rng.binomial(n_sb, moved) / n_sb
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(clb > 0, clsb / np.where(clb > 0, clb, 1.0), np.nan)


def _local_ratio(q_sb: np.ndarray, q_b: np.ndarray, rank: float) -> float | None:
    """How fast CLs+b grows with CLb around the background-only order statistic ``rank``:
    the fraction of signal-plus-background toys over that of background-only toys between
    the order statistics three standard deviations of the rank either side (at least ten).
    Counting over that window, not between neighbouring toys, keeps the band's error from
    following the chance spacing of the few toys in a tail. None where the window reaches
    the toys tied at the lowest value (the q = 0 spike)."""
    n_b = len(q_b)
    p = (rank + 1) / (n_b + 1)
    half = max(10, math.ceil(3 * math.sqrt(n_b * p * (1 - p))))
    lo, hi = int(math.floor(rank)) - half, int(math.ceil(rank)) + half
    lo, hi = max(lo, 0), min(hi, n_b - 1)
    low, high = q_b[lo], q_b[hi]
    if low <= q_b[0] or not high > low:
        return None
    in_b = np.searchsorted(q_b, high, "right") - np.searchsorted(q_b, low, "left")
    in_sb = np.searchsorted(q_sb, high, "right") - np.searchsorted(q_sb, low, "left")
    return float(in_sb / len(q_sb)) / float(in_b / n_b)


def band_values(q_obs: float, q_b: np.ndarray) -> dict[str, float]:
    """The test-statistic value each band's CLs is read at: observed, and the quantiles of
    the (sorted) background-only distribution."""
    values = _quantiles(q_b, list(EXPECTED_QUANTILES.values()))
    return {"obs": q_obs} | dict(zip(EXPECTED_QUANTILES, map(float, values), strict=True))


def asymptotic_cls(
    workspace: dict[str, Any], poi: str, mu: float, test_stat: str
) -> dict[str, float]:
    """pyhf's asymptotic CLs at ``mu``: observed and each expected band (by :data:`BANDS`)."""
    import pyhf

    model, data = model_and_data(workspace, poi)
    with quiet():
        obs, expected = pyhf.infer.hypotest(
            mu, data, model, test_stat="qtilde" if test_stat == "qtilde" else "q",
            return_expected_set=True,
        )  # fmt: skip
    # pyhf orders the expected set from -2 sigma to +2 sigma.
    values = [float(obs)] + [float(e) for e in expected]
    return dict(zip(BANDS, values, strict=True))


def asymptotic_limits(
    workspace: dict[str, Any], poi: str, cl: float, test_stat: str
) -> dict[str, float]:
    """pyhf's asymptotic upper limits (observed and expected bands) within the POI's bounds.

    Returns:
        The limit per band (by :data:`BANDS`).

    Raises:
        ValueError: a limit is not within the POI's bounds.
    """
    from pyhf.infer.intervals.upper_limits import toms748_scan

    model, data = model_and_data(workspace, poi)
    low, high = model.config.suggested_bounds()[model.config.poi_index]
    low = defined_low(workspace, poi, low, high, test_stat)
    # upper_limit(scan=None) of pyhf 0.7.6 drops its level: call the root finder itself.
    with quiet():
        obs, expected = toms748_scan(data, model, low, high, level=1 - cl, test_stat=test_stat)
    return dict(zip(BANDS, [float(obs)] + [float(e) for e in expected], strict=True))


def defined_low(
    workspace: dict[str, Any], poi: str, low: float, high: float, test_stat: str
) -> float:
    """The lowest of a few POI values just above ``low`` where every band's asymptotic CLs
    is defined. Close to zero pyhf's asymptotic CLs of a deficit can be 0 / 0 (the Asimov
    test statistic vanishes while the observed one, a fit's noise, does not)."""
    for fraction in (0.0, 1e-6, 1e-4, 1e-3, 1e-2):
        mu = max(low, 1e-9) + fraction * (high - low)
        if all(math.isfinite(v) for v in asymptotic_cls(workspace, poi, mu, test_stat).values()):
            return mu
    return max(low, 1e-9) + 0.05 * (high - low)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """pyhf's asymptotic formulae divide by zero near mu = 0: keep numpy's warnings of it out
    of the terminal (the callers check the values)."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def sorted_array(values: Sequence[float]) -> np.ndarray:
    """Test statistics as a sorted array (what :func:`tail` searches)."""
    return np.sort(np.asarray(values, dtype=float))
