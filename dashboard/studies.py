"""The Studies page: the list with filters, then the chosen study (``?study=NAME``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard._common import back_link, link_table, live, records, source, when
from dashboard.study_page import render_study
from idds.errors import NotFound


@st.cache_resource(show_spinner=False, max_entries=4)
def _studies(url: str, version: tuple[Any, ...]) -> list[data.StudyRow]:
    return data.list_studies(records())


def render() -> None:
    """Draw the page: the study of ``?study=NAME`` at the top, else the list, whose names
    open each study's page."""
    wanted = st.query_params.get("study")
    if wanted:
        back_link("studies", "All studies")
        try:
            render_study(wanted)
        except NotFound:
            st.warning(f"No study named {wanted!r}.")
        return
    st.title("Studies")
    rows = _studies(source(), data.database_version(records()))
    if not rows:
        st.info("No study yet: `idds hpo launch study.yaml` starts one.")
        return
    _filters(rows)
    live(_list, active=any(r.state == "active" for r in rows), key="studies-refresh")


def _list() -> None:
    """The list, read again each time it refreshes (beside a running study it moves on)."""
    rows = _filtered(_studies(source(), data.database_version(records())))
    link_table(_frame(rows), page="studies", param="study")
    st.caption("Open a study by its name.")


def _filters(rows: list[data.StudyRow]) -> None:
    """The filters, above the list that refreshes; it reads their choices by their keys."""
    left, middle, right = st.columns(3)
    left.text_input("Name contains", key="filter-name")
    middle.multiselect("State", sorted({r.state for r in rows}), key="filter-state")
    right.multiselect("Proposer", sorted({r.proposer or "" for r in rows}), key="filter-proposer")


def _filtered(rows: list[data.StudyRow]) -> list[data.StudyRow]:
    """``rows`` under the filters' current choices."""
    text = st.session_state.get("filter-name", "")
    states = st.session_state.get("filter-state") or []
    chosen = st.session_state.get("filter-proposer") or []
    return [
        r
        for r in rows
        if text.lower() in r.name.lower()
        and (not states or r.state in states)
        and (not chosen or (r.proposer or "") in chosen)
    ]


def _best(r: data.StudyRow) -> str:
    if len(r.directions) > 1:
        return f"Pareto front ({len(r.directions)} objectives)"
    return "—" if r.best is None else f"{r.best:.6g}"


def _frame(rows: list[data.StudyRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "name": r.name,
                "user": r.user,
                "state": r.state,
                "segmented": r.kind == data.STUDY_KINDS[1],
                "proposer": r.proposer,
                "directions": "/".join(r.directions),
                "done": f"{r.done}/{r.max_points}",
                "running": r.running,
                "lost with their head": r.lost,
                "failed": r.failed,
                "best": _best(r),
                "created (UTC)": when(r.created),
            }
            for r in rows
        ],
        columns=["name", "user", "state", "segmented", "proposer", "directions", "done", "running",
                 "failed", "best", "created (UTC)"],
    )  # fmt: skip
