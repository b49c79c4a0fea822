"""The CLs-versus-POI plot with the Brazil bands."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from matplotlib.figure import Figure

    from toys.toyscan import ScanResult


def plot_cls(result: ScanResult, path: str | Path, *, cl: float, poi: str, title: str) -> None:
    """Write the observed CLs (with its toy errors), the expected median and the 1 and 2
    sigma bands against the POI, and the ``1 - CL`` line, as a PNG at ``path``."""
    import matplotlib.pyplot as plt

    fig = cls_figure(result, cl=cl, poi=poi, title=title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cls_figure(result: ScanResult, *, cl: float, poi: str, title: str) -> Figure:
    """The figure :func:`plot_cls` writes (a matplotlib figure; the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mus = sorted(result.points)
    cls = {m: result.points[m].cls() for m in mus}
    if mus and mus[0] > 0:  # at zero both hypotheses are one: CLs is 1 in every band
        mus.insert(0, 0.0)
        cls[0.0] = {b: (1.0, 0.0) for b in ("obs", "-2", "-1", "0", "+1", "+2")}
    band = {b: [cls[m][b][0] for m in mus] for b in ("obs", "-2", "-1", "0", "+1", "+2")}
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.fill_between(mus, band["-2"], band["+2"], color="#fee000", label=r"expected $\pm2\sigma$")
    ax.fill_between(mus, band["-1"], band["+1"], color="#00cc00", label=r"expected $\pm1\sigma$")
    ax.plot(mus, band["0"], "k--", label="expected (median)")
    errors = [cls[m]["obs"][1] for m in mus]
    ax.errorbar(mus, band["obs"], yerr=errors, fmt="ko-", ms=3, label="observed (toys)")
    ax.axhline(1 - cl, color="r", label=f"CLs = {1 - cl:g}")
    obs = result.limits["obs"]
    if obs.value is not None:
        ax.axvline(obs.value, color="grey", ls=":", label=f"observed limit {obs.value:.3g}")
    ax.set_xlabel(poi)
    ax.set_ylabel("CLs")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
