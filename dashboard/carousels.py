"""The Carousel page: each live carousel's files released to processing and processed over
time, the disk its files in processing hold, and the policies compared on their recorded
metrics.

A carousel is an owner of kind ``carousel``: one task per file (its payload's arguments are
the file's name and size), and, once finished, its metrics under ``result`` in its spec. The
``carousel`` package has no read API of its own, so this page reads those records.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import data
from dashboard._common import back_link, engine, link_table, live, settings, when
from idds.tasks import TaskState

KIND = "carousel"
TB = 1e12
METRICS = {
    "peak_disk_tb": "peak disk (TB)", "disk_tb_hours": "disk TB×h", "makespan_h": "makespan (h)",
    "staged_to_processed_p95_h": "staged→processed p95 (h)", "mounts": "mounts",
    "drive_util": "drive utilisation", "lost": "files lost",
}  # fmt: skip


@st.cache_resource(show_spinner=False, max_entries=8)
def _tasks(url: str, name: str, version: tuple[Any, ...]) -> list[data.TaskRecord]:
    return data.tasks_of(engine(), KIND, name)


def render() -> None:
    """Draw the page."""
    rows = data.owners_of(engine(), KIND)
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
    rows = data.owners_of(engine(), KIND)
    frame = _list_frame(rows, data.shown_states(engine(), rows))
    link_table(frame, page="carousel", param="carousel")
    st.caption("Open a carousel by its name.")
    _compare([r for r in rows if r.spec.get("result")])


def _list_frame(rows: list[data.OwnerRecord], states: dict[int, str]) -> pd.DataFrame:
    out = []
    for r in rows:
        row = {"name": r.name, "user": r.user, "state": states[r.id],
               "policy": r.spec.get("policy"), "buffer": r.spec.get("buffer"),
               "files processed": r.tasks[TaskState.SUCCEEDED],
               "failed": r.tasks[TaskState.FAILED], "created (UTC)": when(r.created)}  # fmt: skip
        result = r.spec.get("result") or {}
        row.update({label: result.get(key) for key, label in METRICS.items()})
        out.append(row)
    return pd.DataFrame(out)


def _compare(finished: list[data.OwnerRecord]) -> None:
    st.subheader("Policies compared")
    if not finished:
        st.caption("No carousel has finished yet: its metrics are recorded when it ends.")
        return
    if len({r.spec["result"].get("policy", r.spec.get("policy")) for r in finished}) < 2:
        st.caption("One policy so far: run the campaign under another to compare them.")
        return
    long = [
        {"carousel": r.name, "policy": r.spec["result"].get("policy", r.spec.get("policy")),
         "metric": label, "value": r.spec["result"].get(key)}
        for r in finished
        for key, label in list(METRICS.items())[:4]
    ]  # fmt: skip
    fig = px.bar(pd.DataFrame(long), x="carousel", y="value", color="policy",
                 facet_col="metric", facet_col_wrap=4)  # fmt: skip
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    st.plotly_chart(fig, key="compare")


def _carousel(name: str) -> None:
    version = data.owner_version(engine(), (KIND,), name)
    tasks = _tasks(settings().db_url, name, version)
    st.header(f"Carousel {name}")
    done = [t for t in tasks if t.state == "succeeded"]
    cols = st.columns(4)
    cols[0].metric("State", version[1])
    cols[1].metric("Released to processing", len(tasks))
    cols[2].metric("Processed", len(done))
    cols[3].metric("Retries", sum(max(t.attempt - 1, 0) for t in tasks))
    if not tasks:
        st.caption("No file has been released to processing yet.")
        return
    st.plotly_chart(counts_figure(tasks), key="counts")
    st.plotly_chart(disk_figure(tasks), key="disk")


def _events(tasks: list[data.TaskRecord]) -> tuple[float, list[tuple[float, int, float]]]:
    """(start, [(time, +1 released / -1 processed, bytes)]) in time order."""
    start = min(t.created for t in tasks)
    events = [(t.created - start, 1, _size(t)) for t in tasks]
    events += [(t.finished - start, -1, _size(t)) for t in tasks
               if t.state == "succeeded" and t.finished is not None]  # fmt: skip
    return start, sorted(events)


def _size(t: data.TaskRecord) -> float:
    args = t.payload.get("args") or []
    return float(args[1]) if len(args) > 1 and isinstance(args[1], int | float) else 0.0


def counts_figure(tasks: list[data.TaskRecord]) -> go.Figure:
    """Files released to processing and files processed, cumulated over wall-clock time."""
    _, events = _events(tasks)
    released = processed = 0
    xs, rel, proc = [], [], []
    for t, kind, _ in events:
        released += kind == 1
        processed += kind == -1
        xs.append(t)
        rel.append(released)
        proc.append(processed)
    fig = go.Figure([go.Scatter(x=xs, y=rel, name="released to processing", line_shape="hv"),
                     go.Scatter(x=xs, y=proc, name="processed", line_shape="hv")])  # fmt: skip
    fig.update_layout(title="Files over time", xaxis_title="wall-clock seconds",
                      yaxis_title="files")  # fmt: skip
    return fig


def disk_figure(tasks: list[data.TaskRecord]) -> go.Figure:
    """Bytes of files released to processing and not yet processed (released, then unpinned
    as each one's processing succeeds) over wall-clock time. Files staged and waiting for a
    processing slot are not in the core's records, so this is a lower bound of the disk used."""
    _, events = _events(tasks)
    held, xs, ys = 0.0, [], []
    for t, kind, size in events:
        held += kind * size
        xs.append(t)
        ys.append(held / TB)
    fig = go.Figure(go.Scatter(x=xs, y=ys, line_shape="hv", fill="tozeroy", name="in processing"))
    fig.update_layout(title="Disk held by files in processing (TB)",
                      xaxis_title="wall-clock seconds", yaxis_title="TB")  # fmt: skip
    return fig
