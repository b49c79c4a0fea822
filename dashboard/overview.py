"""The Overview page: owners by kind and state, tasks running per site, recent failures."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import data
from dashboard._common import link_table, live, records, when

#: How the page names each owner kind it knows (others are shown by their kind).
KIND_NAMES = {
    "study": "Studies",
    "study-group": "Segmented studies",
    "toyscan": "Toy scans",
    "workflow": "Workflows",
    "carousel": "Carousels",
}


def render() -> None:
    """Draw the page."""
    st.title("Overview")
    counts = data.owner_counts(records())
    active = any(states.get("active") for states in counts.values())
    live(_body, active=active, key="overview-refresh")


def _body() -> None:
    counts = data.owner_counts(records())
    if not counts:
        st.info("The database holds nothing yet: run `idds hpo launch study.yaml` to start.")
        return
    _owner_metrics(counts)
    _active_work(counts)
    st.subheader("By state")
    st.dataframe(_counts_frame(counts), hide_index=True)
    _running(data.tasks_by_site(records()))
    _failures(data.recent_failures(records()))


def _owner_metrics(counts: dict[str, dict[str, int]]) -> None:
    columns = st.columns(len(counts))
    for column, (kind, states) in zip(columns, sorted(counts.items()), strict=True):
        label = f"{KIND_NAMES.get(kind, kind)} ({states.get('active', 0)} active)"
        column.metric(label, sum(states.values()))


#: Where each kind's own page is: (URL path, query parameter).
PAGES = {"study": ("studies", "study"), "study-group": ("studies", "study"),
         "toyscan": ("toys", "scan"), "workflow": ("workflows", "workflow"),
         "carousel": ("carousel", "carousel")}  # fmt: skip


def _active_work(counts: dict[str, dict[str, int]]) -> None:
    """The work that is active now, by name (each opens its page), with its progress."""
    st.subheader("Running now")
    active = [kind for kind, states in sorted(counts.items()) if states.get("active")]
    if not active:
        st.caption("Nothing is active.")
        return
    for kind in active:
        owners = [o for o in data.owners_of(records(), kind) if o.state == "active"]
        shown = data.shown_states(records(), owners)
        frame = pd.DataFrame([_progress(o, shown[o.id]) for o in owners])
        page, param = PAGES.get(kind, ("", kind))
        st.caption(KIND_NAMES.get(kind, kind))
        link_table(frame, page=page, param=param)


def _progress(owner: data.OwnerRecord, state: str) -> dict[str, object]:
    total = owner.spec.get("max_points") or sum(owner.tasks.values())
    return {"name": owner.name, "user": owner.user, "state": state,
            "progress": f"{owner.done}/{total} tasks done", "in flight": owner.in_flight,
            "failed": owner.failed}  # fmt: skip


def _counts_frame(counts: dict[str, dict[str, int]]) -> pd.DataFrame:
    states = sorted({s for by_state in counts.values() for s in by_state})
    rows = [
        {"kind": KIND_NAMES.get(kind, kind), **{s: by_state.get(s, 0) for s in states}}
        for kind, by_state in sorted(counts.items())
    ]
    return pd.DataFrame(rows)


def _running(by_site: dict[str, dict[str, int]]) -> None:
    st.subheader("Tasks running per site")
    if not by_site:
        st.caption("No task is dispatched or running now.")
        return
    rows = [
        {"site": site, "kind": KIND_NAMES.get(kind, kind), "tasks": n}
        for site, kinds in by_site.items()
        for kind, n in kinds.items()
    ]
    fig = px.bar(pd.DataFrame(rows), x="site", y="tasks", color="kind")
    st.plotly_chart(fig, key="running-per-site")


def _failures(failures: list[data.Failure]) -> None:
    st.subheader("Recent failures")
    if not failures:
        st.caption("No task has failed.")
        return
    rows = [
        {"when (UTC)": when(f.finished), "kind": KIND_NAMES.get(f.kind, f.kind),
         "owner": f.owner, "task": f.number, "site": f.site, "reason": f.reason}
        for f in failures
    ]  # fmt: skip
    st.dataframe(pd.DataFrame(rows), hide_index=True)
