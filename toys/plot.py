"""The CLs-versus-POI plot with the Brazil bands (and pyhf's asymptotic curves, dashed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from toys.spec import ToyScanSpec
    from toys.toyscan import ScanResult

_BANDS = ("obs", "-2", "-1", "0", "+1", "+2")
#: Why the +2 sigma band's edge sits at CLs = 1 at low POI values (the legend says it).
PINNED = r"expected $\pm2\sigma$ (upper edge 1 while $\geq$2.3 % of b-only toys have q = 0)"


def asymptotic_curves(spec: ToyScanSpec, points: int = 40) -> dict[str, list[float]]:
    """pyhf's asymptotic CLs of every band over the spec's range: ``{"mu": [...], band: [...]}``."""
    from toys.stats import asymptotic_cls

    assert spec.poi is not None  # noqa: S101 - a recorded spec names its POI
    lo, hi = spec.range
    mus = [lo + (hi - lo) * (i + 1) / points for i in range(points)]
    curves: dict[str, list[float]] = {"mu": mus, **{b: [] for b in _BANDS}}
    for mu in mus:
        for band, value in asymptotic_cls(spec.workspace, spec.poi, mu, spec.test_stat).items():
            curves[band].append(value)
    return curves


def plot_cls(
    result: ScanResult,
    path: str | Path,
    *,
    cl: float,
    poi: str,
    title: str,
    asymptotic: dict[str, list[float]] | None = None,
    log: bool = False,
) -> None:
    """Write the observed CLs (with its toy errors), the expected median and the 1 and 2
    sigma bands against the POI, the labelled ``1 - CL`` line and, where given, pyhf's
    asymptotic curves (dashed), as a PNG at ``path``; ``log`` puts CLs on a log axis."""
    import matplotlib.pyplot as plt

    fig = cls_figure(result, cl=cl, poi=poi, title=title, asymptotic=asymptotic, log=log)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cls_figure(
    result: ScanResult,
    *,
    cl: float,
    poi: str,
    title: str,
    asymptotic: dict[str, list[float]] | None = None,
    log: bool = False,
) -> Figure:
    """The figure :func:`plot_cls` writes (a matplotlib figure; the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mus = sorted(result.points)
    cls = {m: result.points[m].cls() for m in mus}
    if mus and mus[0] > 0:  # at zero both hypotheses are one: CLs is 1 in every band
        mus.insert(0, 0.0)
        cls[0.0] = {b: (1.0, 0.0) for b in _BANDS}
    floor = min(1e-3, (1 - cl) / 10) if log else 0.0  # a log axis shows CLs = 0 at its floor
    band = {b: [max(cls[m][b][0], floor) for m in mus] for b in _BANDS}
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ax.fill_between(mus, band["-2"], band["+2"], color="#fee000", label=PINNED)
    ax.fill_between(mus, band["-1"], band["+1"], color="#00cc00", label=r"expected $\pm1\sigma$")
    ax.plot(mus, band["0"], "k--", label="expected (median)")
    errors = [cls[m]["obs"][1] for m in mus]
    ax.errorbar(mus, band["obs"], yerr=errors, fmt="ko-", ms=3, label="observed (toys)")
    if asymptotic is not None:
        _overlay(ax, asymptotic)
    ax.axhline(1 - cl, color="r")
    ax.annotate(f"CLs = {1 - cl:g} ({cl:.0%} CL)", (1.0, 1 - cl), xycoords=("axes fraction",
                "data"), ha="right", va="bottom", color="r", fontsize=8)  # fmt: skip
    obs = result.limits["obs"]
    if obs.value is not None:
        ax.axvline(obs.value, color="grey", ls=":", label=f"observed limit {obs.value:.3g}")
    ax.set_xlabel(poi)
    ax.set_ylabel("CLs")
    if log:
        ax.set_yscale("log")
        ax.set_ylim(floor, 1.5)
    else:
        ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _overlay(ax: Axes, curves: dict[str, list[float]]) -> None:
    """pyhf's asymptotic observed curve and band edges, dashed."""
    mus = curves["mu"]
    ax.plot(mus, curves["obs"], color="tab:blue", ls="--", lw=1, label="observed (asymptotic)")
    for b in ("0", "-1", "+1", "-2", "+2"):
        label = r"expected, $\pm1\sigma$, $\pm2\sigma$ (asymptotic)" if b == "0" else None
        ax.plot(mus, curves[b], color="tab:grey", ls="--", lw=1.0 if b == "0" else 0.6, label=label)
