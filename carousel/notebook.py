"""A carousel run in Jupyter: its metrics and disk occupancy over time (a PNG).

``CampaignResult`` (what :func:`~carousel.simulate` and :func:`~carousel.run_live` return)
shows itself this way as a cell's value.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from idds.notebook import png_html, png_of

if TYPE_CHECKING:
    from carousel.simulate import CampaignResult

__all__ = ["campaign_html"]

_STYLE = "border-collapse:collapse;font-size:90%"


def campaign_html(result: CampaignResult) -> str:
    """An HTML summary of a campaign: files, losses, its metrics and the occupancy figure.

    Args:
        result: a campaign's result (times in simulated seconds).

    Returns:
        The HTML (the figure as an embedded PNG, when the run kept its occupancy trace).
    """
    head = (f"<b>Carousel campaign</b> · policy {_e(result.policy)} · {result.files} files · "
            f"{len(result.lost)} lost · {len(result.failed)} failed")  # fmt: skip
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{v:.4g}</td></tr>"
        if isinstance(v, float)
        else f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>"
        for k, v in result.summary().items()
    )
    table = f"<table style='{_STYLE}'><tr><th>metric</th><th>value</th></tr>{rows}</table>"
    return f"<div>{head}{table}{_figure(result)}</div>"


def _figure(result: CampaignResult) -> str:
    if not result.trace_t:
        return ""
    from carousel.plot import occupancy_figure

    return png_html(png_of(occupancy_figure([result])), alt="disk occupancy over time")


def _e(text: object) -> str:
    return html.escape(str(text))
