"""A PNG of disk occupancy over time, one panel per policy side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from carousel.simulate import HOUR, TB, CampaignResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_occupancy(results: list[CampaignResult], path: str | Path, title: str = "") -> Path:
    """Draw each result's disk occupancy (TB) against time (h), on shared axes.

    Returns:
        The path written.
    """
    import matplotlib.pyplot as plt

    fig = occupancy_figure(results, title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def occupancy_figure(results: list[CampaignResult], title: str = "") -> Figure:
    """The figure :func:`plot_occupancy` writes (a matplotlib figure; the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(results), figsize=(4.2 * len(results), 3.6), sharey=True, squeeze=False
    )
    for ax, r in zip(axes[0], results, strict=True):
        t = [x / HOUR for x in r.trace_t]
        ax.step(t, [b / TB for b in r.trace_bytes], where="post", linewidth=0.8)
        if r.buffer is not None:
            ax.axhline(r.buffer / TB, color="grey", linestyle="--", linewidth=0.8)
        label = r.policy if r.buffer is None else f"{r.policy}, buffer {r.buffer / TB:.3g} TB"
        ax.set_title(
            f"{label}\npeak {r.peak_bytes / TB:.3g} TB, makespan {r.makespan_s / HOUR:.3g} h"
        )
        ax.set_xlabel("time (h)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("disk occupancy (TB)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
