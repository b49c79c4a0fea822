"""Figures and tables for Jupyter that also show where no JavaScript runs.

A plotly figure in a notebook carries only plotly's JSON, so GitHub and other static viewers
show nothing. :func:`figure_bundle` gives every form at once: plotly's JSON (JupyterLab, VS
Code), plotly's HTML with a PNG inside that its script removes (nbviewer, classic notebook;
the PNG stays where scripts do not run, e.g. on GitHub), the PNG alone and a line of text.
The PNG is drawn with matplotlib from the figure's scatter and bar traces.

Display it with ``IPython.display.display(bundle, raw=True)``; a display handle updated with
``handle.update(bundle, raw=True)`` redraws in place (a plotly figure object would ignore the
handle and draw into whichever cell runs). :class:`Figure` wraps a figure for a cell's value::

    from idds.notebook import Figure
    Figure(fig)     # the last expression of a cell
"""

from __future__ import annotations

import base64
import html
import io
import json
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure as MplFigure

__all__ = ["Figure", "figure_bundle", "png_html", "png_of", "static_png"]

PLOTLY_MIME = "application/vnd.plotly.v1+json"
_DRAWN = {"scatter", "scattergl", "bar"}


class Figure:
    """A plotly figure shown with its static fallbacks (see :func:`figure_bundle`).

    Args:
        figure: the plotly figure.
    """

    def __init__(self, figure: go.Figure) -> None:
        self.figure = figure

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return figure_bundle(self.figure)


def figure_bundle(figure: go.Figure) -> dict[str, Any]:
    """Every form of a plotly figure, by MIME type, for ``display(..., raw=True)``.

    Args:
        figure: the plotly figure.

    Returns:
        plotly's JSON, HTML (with the PNG for viewers that run no script), the PNG (base64;
        absent without matplotlib) and a line of text.
    """
    title = _title(figure)
    bundle: dict[str, Any] = {
        PLOTLY_MIME: json.loads(figure.to_json()),  # plotly's encoder: numpy arrays too
        "text/plain": f"<figure {title!r}>" if title else "<figure>",
    }
    png = static_png(figure)
    interactive = figure.to_html(full_html=False, include_plotlyjs="cdn")
    if png is None:
        bundle["text/html"] = interactive
        return bundle
    bundle["image/png"] = png
    uid = f"idds-{uuid.uuid4().hex[:12]}"
    bundle["text/html"] = (
        f"<div id='{uid}'>{png_html(png, alt=title)}</div>{interactive}"
        f"<script>document.getElementById('{uid}').remove()</script>"
    )
    return bundle


def png_html(png: str, *, alt: str = "") -> str:
    """An ``<img>`` of a base64 PNG."""
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{png}'>"


def png_of(fig: MplFigure) -> str:
    """A matplotlib figure as a base64 PNG (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def static_png(figure: go.Figure) -> str | None:
    """The figure's scatter and bar traces drawn with matplotlib, as a base64 PNG.

    Returns:
        The PNG, or None without matplotlib or without a trace it can draw (a parallel
        coordinates plot, a contour: those show only where plotly runs).
    """
    if not any(trace.type in _DRAWN for trace in figure.data):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    layout = figure.layout
    height = (layout.height or 400) / 100
    fig, ax = plt.subplots(figsize=((layout.width or 700) / 100, height))
    for trace in figure.data:
        _draw(ax, trace)
    ax.set_title(_title(figure), fontsize=10)
    ax.set_xlabel(layout.xaxis.title.text or "")
    ax.set_ylabel(layout.yaxis.title.text or "")
    for axis, setter in ((layout.xaxis, ax.set_xscale), (layout.yaxis, ax.set_yscale)):
        if axis.type == "log":
            setter("log")
    named = sum(1 for trace in figure.data if getattr(trace, "name", None))
    if 0 < named <= 12:  # a legend of more names hides the plot
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return png_of(fig)


def _draw(ax: Axes, trace: Any) -> None:
    x = list(trace.x) if trace.x is not None else []
    y = list(trace.y) if trace.y is not None else []
    label = trace.name or None
    if trace.type == "bar":
        if trace.orientation == "h":
            ax.barh([str(v) for v in y], x, label=label)
        else:
            ax.bar([str(v) for v in x], y, label=label)
    elif trace.type in _DRAWN:
        mode = trace.mode or "lines+markers"
        style = ("o" if "markers" in mode else "") + ("-" if "lines" in mode else "")
        ax.plot(x, y, style or "o", ms=4, label=label)


def _title(figure: go.Figure) -> str:
    title = figure.layout.title
    return str(title.text) if title and title.text else ""
