"""A toy scan in Jupyter: its limits, counts and the CLs figure (a PNG, so it shows anywhere).

``ToyScan`` and ``ScanResult`` show themselves this way as a cell's value::

    result = scan.run(progress=False)
    result      # the limits table and CLs against the POI with the expected bands
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from idds.errors import NotFound
from idds.notebook import png_html, png_of

if TYPE_CHECKING:
    from toys.toyscan import ScanResult, ToyScan

__all__ = ["result_html", "scan_html"]

_STYLE = "border-collapse:collapse;font-size:90%"
_BANDS = {"obs": "observed", "-2": "expected −2σ", "-1": "expected −1σ",
          "0": "expected (median)", "+1": "expected +1σ", "+2": "expected +2σ"}  # fmt: skip


def scan_html(scan: ToyScan) -> str:
    """An HTML summary of a scan: its spec, state and, once created, :func:`result_html`."""
    spec = scan.spec
    head = (f"<b>Toy scan {_e(scan.name)}</b> · {_e(spec.poi or 'POI')} in "
            f"[{spec.range[0]:g}, {spec.range[1]:g}] · CL {spec.cl:g}")  # fmt: skip
    try:
        state = scan.state
    except NotFound:
        return f"<div>{head} · not created yet</div>"
    return f"<div>{head} · {_e(state)}<br>{result_html(scan.result())}</div>"


def result_html(result: ScanResult, *, title: str = "") -> str:
    """The limits (value ± error, status), the toys and steps, and the CLs figure.

    Args:
        result: the scan's result so far.
        title: the figure's title.

    Returns:
        The HTML (the figure as an embedded PNG).
    """
    rows = "".join(
        f"<tr><td>{_BANDS.get(band, band)}</td><td>{_limit(lim.value, lim.error)}</td>"
        f"<td>{_e(lim.status)}</td></tr>"
        for band, lim in result.limits.items()
    )
    table = (f"<table style='{_STYLE}'><tr><th>limit</th><th>{_e(result.poi)}</th>"
             f"<th>status</th></tr>{rows}</table>")  # fmt: skip
    state = "converged" if result.converged else f"not yet to ± {result.tolerance:g}"
    line = (f"{result.toys} toys in {len(result.points)} points, {result.steps} step(s); "
            f"limits {state}")  # fmt: skip
    return f"<div>{line}{table}{_figure(result, title)}</div>"


def _figure(result: ScanResult, title: str) -> str:
    if not result.points:
        return ""
    from toys.plot import cls_figure

    fig = cls_figure(result, cl=result.cl, poi=result.poi, title=title or "CLs")
    return png_html(png_of(fig), alt=f"CLs against {result.poi}")


def _limit(value: float | None, error: float) -> str:
    return "—" if value is None else f"{value:.4g} ± {error:.2g}"


def _e(text: object) -> str:
    return html.escape(str(text))
