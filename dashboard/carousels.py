"""The Carousel page: the carousels recorded, their policies compared on their metrics, and
one carousel's files over time and disk occupancy.

It reads only the carousel's read API (:func:`carousel.store.list_carousels`,
:func:`carousel.store.load_carousel`): the metrics, the disk curve and each file's
timeline that a run records when it ends (simulated hours).
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from carousel.sizes import format_size
from carousel.store import CarouselInfo, list_carousels, load_carousel
from dashboard._common import acting_settings, back_link, link_table, live, when

HOUR, TB = 3600.0, 1e12
METRICS = {
    "peak_disk_tb": "peak disk (TB)", "disk_tb_hours": "disk TB×h", "makespan_h": "makespan (h)",
    "staged_to_processed_p95_h": "staged→processed p95 (h)", "mounts": "mounts",
    "drive_util": "drive utilisation", "lost": "files lost",
}  # fmt: skip


def render() -> None:
    """Draw the page: the list (each name links to its carousel's own page), or one carousel."""
    rows = list_carousels(acting_settings())
    name = st.query_params.get("carousel")
    if name:  # a carousel's own page (its name in the list links here)
        back_link("carousel", "All carousels")
        state = next((r.state for r in rows if r.name == name), None)
        if state is None:
            st.warning(f"No carousel named {name!r}.")
            return
        live(lambda: _carousel(name), active=state == "active", key="carousel-refresh")
        return
    st.title("Carousel")
    if not rows:
        st.info("No carousel yet: `idds carousel run campaign.yaml` runs one live.")
        return
    live(_list, active=any(r.state == "active" for r in rows), key="carousel-refresh")


def _list() -> None:
    rows = list_carousels(acting_settings())
    link_table(_list_frame(rows), page="carousel", param="carousel")
    st.caption("Open a carousel by its name.")
    _compare([r for r in rows if r.result])


def _list_frame(rows: list[CarouselInfo]) -> pd.DataFrame:
    out = []
    for r in rows:
        row = {"name": r.name, "user": r.user, "state": r.state, "policy": r.policy,
               "buffer": "unbounded" if r.buffer is None else format_size(r.buffer),
               "files": r.files, "files processed": r.counts.get("processed", 0),
               "failed": r.counts.get("failed", 0), "created (UTC)": when(r.created)}  # fmt: skip
        row.update({label: r.result.get(key) for key, label in METRICS.items()})
        out.append(row)
    return pd.DataFrame(out)


def _compare(finished: list[CarouselInfo]) -> None:
    st.subheader("Policies compared")
    if not finished:
        st.caption("No carousel has finished yet: its metrics are recorded when it ends.")
        return
    if len({r.result.get("policy", r.policy) for r in finished}) < 2:
        st.caption("One policy so far: run the campaign under another to compare them.")
        return
    long = [
        {"carousel": r.name, "policy": r.result.get("policy", r.policy), "metric": label,
         "value": r.result.get(key)}
        for r in finished
        for key, label in list(METRICS.items())[:4]
    ]  # fmt: skip
    fig = px.bar(pd.DataFrame(long), x="carousel", y="value", color="policy",
                 facet_col="metric", facet_col_wrap=4)  # fmt: skip
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    st.plotly_chart(fig, key="compare")


def _carousel(name: str) -> None:
    info = load_carousel(name, acting_settings())
    st.header(f"Carousel {name}")
    cols = st.columns(4)
    cols[0].metric("State", info.state)
    cols[1].metric("Released to processing", info.counts.get("submitted", 0))
    cols[2].metric("Processed", info.counts.get("processed", 0))
    cols[3].metric("Lost", info.result.get("lost", 0))
    if not info.timeline:
        st.caption("No timeline recorded yet: a live run records one every few seconds.")
        return
    st.plotly_chart(counts_figure(info), key="counts")
    st.plotly_chart(disk_figure(info), key="disk")


def counts_figure(info: CarouselInfo) -> go.Figure:
    """Files requested, staged, processed and released, cumulated over simulated hours."""
    traces = []
    for step in ("requested", "staged", "processed", "released"):
        times = sorted(t[step] for t in info.timeline.values() if t.get(step) is not None)
        traces.append(go.Scatter(x=[t / HOUR for t in times], y=list(range(1, len(times) + 1)),
                                 name=step, line_shape="hv"))  # fmt: skip
    fig = go.Figure(traces)
    fig.update_layout(title="Files over time", xaxis_title="hours", yaxis_title="files")
    return fig


def disk_figure(info: CarouselInfo) -> go.Figure:
    """Bytes on disk (staged and not released) over simulated hours, as recorded."""
    fig = go.Figure(go.Scatter(x=[t / HOUR for t in info.disk_t],
                               y=[b / TB for b in info.disk_bytes], line_shape="hv",
                               fill="tozeroy", name="on disk"))  # fmt: skip
    fig.update_layout(title="Disk occupancy (TB)", xaxis_title="hours", yaxis_title="TB")
    return fig
