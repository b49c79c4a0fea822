"""The Toy scans page: each scan's CLs against the POI with the expected bands, its limits
and its points, read through ``toys.load_scan``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import data
from dashboard._common import acting_settings, back_link, link_table, live, records, source, when
from idds.tasks import TaskState

if TYPE_CHECKING:
    from toys import ScanResult

KIND = "toyscan"
LABELS = {"obs": "observed", "-2": "expected -2σ", "-1": "expected -1σ", "0": "expected",
          "+1": "expected +1σ", "+2": "expected +2σ"}  # fmt: skip


@st.cache_resource(show_spinner=False, max_entries=8)
def _result(url: str, name: str, version: tuple[Any, ...]) -> tuple[Any, ScanResult]:
    from toys import load_scan

    scan = load_scan(name, settings=acting_settings())
    return scan.spec, scan.result()


def render() -> None:
    """Draw the page."""
    rows = data.owners_of(records(), KIND)
    name = st.query_params.get("scan")
    if name:  # a scan's own page (its name in the list links here)
        back_link("toys", "All toy scans")
        state = next((r.state for r in rows if r.name == name), None)
        if state is None:
            st.warning(f"No toy scan named {name!r}.")
            return
        live(lambda: _scan(name), active=state == "active", key="toys-refresh")
        return
    st.title("Toy scans")
    if not rows:
        st.info("No toy scan yet: `idds toys launch scan.yaml` starts one.")
        return
    live(_list, active=any(r.state == "active" for r in rows), key="toys-refresh")


def _list() -> None:
    rows = data.owners_of(records(), KIND)
    link_table(_list_frame(rows, data.shown_states(records(), rows)), page="toys", param="scan")
    st.caption("Open a scan by its name.")


def _list_frame(rows: list[data.OwnerRecord], states: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame([
        {"name": r.name, "user": r.user, "state": states[r.id], "POI": r.spec.get("poi"),
         "CL": r.spec.get("cl"),
         "range": str(r.spec.get("range")), "batches": sum(r.tasks.values()),
         "failed batches": r.tasks[TaskState.FAILED], "created (UTC)": when(r.created)}
        for r in rows
    ])  # fmt: skip


def _scan(name: str) -> None:
    version = data.owner_version(records(), (KIND,), name)
    spec, result = _result(source(), name, version)
    st.header(f"Toy scan {name}")
    cols = st.columns(5)
    cols[0].metric("State", version[1])
    cols[1].metric("Converged", "yes" if result.converged else "not yet")
    cols[2].metric("Points", len(result.points))
    cols[3].metric("Toys", f"{result.toys:,}")
    cols[4].metric("Steps", result.steps)
    if not result.points:
        st.caption("No batch has finished yet.")
        return
    st.plotly_chart(cls_figure(result, cl=spec.cl, poi=spec.poi or "POI"), key="cls")
    st.subheader("Limits")
    st.dataframe(_limits_frame(result), hide_index=True)
    st.subheader("Points")
    st.dataframe(_points_frame(result), hide_index=True)


def cls_figure(result: ScanResult, *, cl: float, poi: str) -> go.Figure:
    """CLs against the POI: the expected median with its 1 and 2 sigma bands (the "Brazil"
    plot), the observed CLs with its toy errors, the ``1 - CL`` line and the limits.

    Args:
        result: the scan's result.
        cl: the confidence level.
        poi: the POI's name (the x axis).

    Returns:
        The figure.
    """
    mus = sorted(result.points)
    cls = {m: result.points[m].cls() for m in mus}
    if mus and mus[0] > 0:  # at zero both hypotheses are one: CLs is 1 in every band
        mus.insert(0, 0.0)
        cls[0.0] = {band: (1.0, 0.0) for band in LABELS}
    band = {b: [cls[m][b][0] for m in mus] for b in LABELS}
    fig = go.Figure()
    for low, high, colour, label in (
        ("-2", "+2", "#fee000", "±2σ"),
        ("-1", "+1", "#00cc00", "±1σ"),
    ):
        edge = {"width": 0}
        fig.add_trace(go.Scatter(x=mus, y=band[high], mode="lines", line=edge, showlegend=False))
        fig.add_trace(
            go.Scatter(x=mus, y=band[low], mode="lines", line=edge, fill="tonexty",
                       fillcolor=colour, name=f"expected {label}")
        )  # fmt: skip
    fig.add_trace(go.Scatter(x=mus, y=band["0"], mode="lines", name="expected (median)",
                             line={"dash": "dash", "color": "black"}))  # fmt: skip
    errors = [cls[m]["obs"][1] for m in mus]
    fig.add_trace(go.Scatter(x=mus, y=band["obs"], mode="lines+markers", name="observed (toys)",
                             error_y={"array": errors}, line={"color": "black"}))  # fmt: skip
    fig.add_hline(y=1 - cl, line_color="red", annotation_text=f"CLs = {1 - cl:g}")
    obs = result.limits["obs"]
    if obs.value is not None:
        fig.add_vline(x=obs.value, line_dash="dot", line_color="grey",
                      annotation_text=f"observed limit {obs.value:.3g}")  # fmt: skip
    fig.update_layout(title="CLs against the POI", xaxis_title=poi, yaxis_title="CLs",
                      yaxis_range=[0, 1.05])  # fmt: skip
    return fig


def _limits_frame(result: ScanResult) -> pd.DataFrame:
    rows = []
    for band, lim in result.limits.items():
        known = lim.value is not None
        rows.append({"limit": LABELS[band], "value": lim.value, "status": lim.status,
                     "error": lim.error if known else None, "stat": lim.stat if known else None,
                     "interp": lim.interp if known else None,
                     "within tolerance": known and lim.error <= result.tolerance})  # fmt: skip
    return pd.DataFrame(rows)


def _points_frame(result: ScanResult) -> pd.DataFrame:
    rows = []
    for mu in sorted(result.points):
        point = result.points[mu]
        cls = point.cls()
        row: dict[str, Any] = {"POI": mu, "toys": point.toys, "batches": point.batches}
        for band, label in LABELS.items():
            value, error = cls[band]
            row[f"CLs {label}"] = None if math.isnan(value) else value
            if band == "obs":
                row["CLs observed error"] = error
        rows.append(row)
    return pd.DataFrame(rows)
