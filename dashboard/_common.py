"""What every page shares: the settings, one engine per database URL, refreshing."""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import pandas as pd
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


#: The colour of a state's word in the lists.
STATE_COLOURS = {
    "succeeded": "#2ca02c", "finished": "#2ca02c", "failed": "#d62728", "running": "#1f77b4",
    "active": "#1f77b4", "pruned": "#9467bd", "cancelled": "#7f7f7f", "suspended": "#7f7f7f",
    "stopped": "#ff7f0e",
}  # fmt: skip


def link_table(frame: pd.DataFrame, *, page: str, param: str, column: str = "name") -> None:
    """``frame`` as a table whose ``column`` cells link, in the same tab, to that row's own
    page (``page?param=NAME``); states are coloured.

    Args:
        frame: the rows to show.
        page: the URL path of the page that shows one (``studies``).
        param: its query parameter (``study``).
        column: the column holding the names.
    """
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for c in frame.columns:
            cells.append(f"<td>{_cell(row[c], c, page, param, column)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    st.markdown(
        f'<div class="idds-list" style="max-height: 28rem; overflow: auto">'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>",
        unsafe_allow_html=True,
    )


def _cell(value: object, column: str, page: str, param: str, names: str) -> str:
    text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
    shown = html.escape(text)
    if column == names:
        href = f"{page}?{urlencode({param: text})}"
        return f'<a href="{html.escape(href)}" target="_self" class="idds-open">{shown}</a>'
    if column == "state":
        colour = STATE_COLOURS.get(text.split(" ")[0])
        return f'<span style="color: {colour}">{shown}</span>' if colour else shown
    return shown


def back_link(page: str, label: str) -> None:
    """A link back to the list (``page`` without a query), at the top of an owner's page."""
    st.markdown(f'<a href="{html.escape(page)}" target="_self">← {html.escape(label)}</a>',
                unsafe_allow_html=True)  # fmt: skip
