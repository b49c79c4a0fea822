"""The Studies page: the list with filters, then the chosen study (``?study=NAME``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard._common import engine, settings, when
from dashboard.study_page import render_study


@st.cache_resource(show_spinner=False, max_entries=4)
def _studies(url: str, version: tuple[Any, ...]) -> list[data.StudyRow]:
    return data.list_studies(engine())


def render() -> None:
    """Draw the page."""
    st.title("Studies")
    rows = _studies(settings().db_url, data.database_version(engine()))
    if not rows:
        st.info("No study yet: `idds hpo launch study.yaml` starts one.")
        return
    shown = _filtered(rows)
    st.dataframe(_frame(shown), hide_index=True, key="studies-table")
    name = _chosen(shown)
    if name:
        render_study(name)


def _filtered(rows: list[data.StudyRow]) -> list[data.StudyRow]:
    left, middle, right = st.columns(3)
    text = left.text_input("Name contains", key="filter-name")
    states = middle.multiselect("State", sorted({r.state for r in rows}), key="filter-state")
    proposers = sorted({r.proposer or "" for r in rows})
    chosen = right.multiselect("Proposer", proposers, key="filter-proposer")
    return [
        r
        for r in rows
        if text.lower() in r.name.lower()
        and (not states or r.state in states)
        and (not chosen or (r.proposer or "") in chosen)
    ]


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
                "best": r.best,
                "created (UTC)": when(r.created),
            }
            for r in rows
        ],
        columns=["name", "user", "state", "segmented", "proposer", "directions", "done", "running",
                 "failed", "best", "created (UTC)"],
    )  # fmt: skip


def _chosen(rows: list[data.StudyRow]) -> str | None:
    """The study to show: picked in the box, which starts at ``?study=NAME``."""
    names = [r.name for r in rows if r.kind == data.STUDY_KINDS[0]]
    wanted = st.query_params.get("study")
    if wanted and wanted not in names:
        st.warning(f"No study named {wanted!r} among those listed.")
    index = names.index(wanted) if wanted in names else None
    name = st.selectbox("Open a study", names, index=index, placeholder="choose a study",
                        key="open-study")  # fmt: skip
    if name and name != wanted:
        st.query_params["study"] = name
    return name
