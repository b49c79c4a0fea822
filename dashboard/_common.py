"""What every page shares: the settings, one engine per database URL, refreshing."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import streamlit as st

from idds.config import Settings
from idds.db import connect

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Engine

#: Seconds between refreshes of a page while work runs.
REFRESH_SECONDS = 5.0


def settings() -> Settings:
    """The settings the dashboard was started with (``IDDS_*``; ``idds dashboard`` sets them)."""
    return Settings.from_env()


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Engine:
    return connect(url)


def engine() -> Engine:
    """The database engine of this dashboard (one per URL, shared by sessions)."""
    return _engine(settings().db_url)


def live(body: Callable[[], None], *, active: bool, key: str) -> None:
    """Run ``body`` in a fragment that reruns every few seconds while ``active`` and the
    "refresh" toggle is on, so a page follows work that runs.

    Args:
        body: draws the part of the page that changes.
        active: whether anything is still running (no refresh otherwise).
        key: the toggle's widget key (one per page).
    """
    on = st.sidebar.toggle("Refresh while work runs", value=True, key=key)
    every = REFRESH_SECONDS if (on and active) else None
    st.fragment(body, run_every=every)()


def when(seconds: float | None) -> str:
    """A database time (seconds since the epoch) as UTC text."""
    if seconds is None:
        return ""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
