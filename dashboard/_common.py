"""What every page shares: the settings, one engine per database URL, refreshing."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import TYPE_CHECKING

import streamlit as st

from idds import auth
from idds.config import Settings
from idds.db import connect
from idds.errors import AccessDenied

if TYPE_CHECKING:
    from collections.abc import Callable

    from idds.db import Engine

#: Seconds between refreshes of a page while work runs.
REFRESH_SECONDS = 5.0


#: Where a browser session keeps its login token.
TOKEN_KEY = "idds-token"  # noqa: S105 - a key, not a secret


def settings() -> Settings:
    """The settings the dashboard was started with (``IDDS_*``; ``idds dashboard`` sets them),
    less any token: the dashboard acts as the signed-in user (:func:`acting_settings`)."""
    return replace(Settings.from_env(), token=None)


def acting_settings() -> Settings:
    """:func:`settings` acting as this browser session's user (its login token, where the
    database has registered users)."""
    return replace(settings(), token=st.session_state.get(TOKEN_KEY))


def actor() -> auth.Actor:
    """The user this browser session acts as."""
    return auth.acting_user(engine(), acting_settings())


def _sign_out() -> None:
    st.session_state.pop(TOKEN_KEY, None)


def signed_in() -> bool:
    """Whether this browser session may see the pages: the database has no registered users,
    or the session signed in with a valid token (then its user shows in the sidebar)."""
    if not auth.has_users(engine()):
        return True
    if not st.session_state.get(TOKEN_KEY):
        return False
    try:
        who = actor()
    except AccessDenied:  # the token was renewed or its user removed meanwhile
        _sign_out()
        return False
    st.sidebar.caption(f"Signed in as **{who.name}**{' (admin)' if who.admin else ''}")
    st.sidebar.button("Sign out", key="sign-out", on_click=_sign_out)
    return True


def sign_in() -> None:
    """The sign-in page: a token, checked against the registered users."""
    st.title("iDDS dashboard")
    with st.form("sign-in"):
        token = st.text_input("Token", type="password", help="`idds users add NAME` gives one.")
        if st.form_submit_button("Sign in"):
            try:
                auth.acting_user(engine(), replace(settings(), token=token.strip()))
            except AccessDenied:
                st.error("That is not the token of a user of this database.")
                return
            st.session_state[TOKEN_KEY] = token.strip()
            st.rerun()


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
