"""What every page shares: the settings, the records read (one engine per database URL in
embedded mode; the server's HTTP API with the visitor's token where ``IDDS_URL`` is set),
signing in, refreshing."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from idds import auth
from idds.config import Settings
from idds.db import connect
from idds.errors import AccessDenied, IddsError
from idds.records import Records

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


def service() -> bool:
    """Whether the dashboard reads through an ``idds serve`` HTTP API (``IDDS_URL``), with each
    visitor's token, and never opens a database (service mode)."""
    return bool(settings().url)


def records() -> Records:
    """The records this browser session reads: through the server as its user (service
    mode: what the server shows that user), else the database's."""
    if not service():
        return Records(engine())
    from idds.client import RemoteRecords

    token = st.session_state.get(TOKEN_KEY)
    cached = st.session_state.get(_REMOTE_KEY)
    if cached is None or cached[0] != token:  # one client (its connections) per session
        cached = (token, RemoteRecords(acting_settings()))
        st.session_state[_REMOTE_KEY] = cached
    return cached[1]  # type: ignore[no-any-return]


_REMOTE_KEY = "idds-remote-records"


def source() -> str:
    """What the cached pages are read from: the database URL, or in service mode the server
    and the visitor's token (as a digest), since the server hides others' errors and logs
    from them."""
    if not service():
        return settings().db_url
    token = st.session_state.get(TOKEN_KEY) or ""
    return f"{settings().url} {hashlib.sha256(token.encode()).hexdigest()}"


def actor() -> auth.Actor:
    """The user this browser session acts as (in service mode, as the server says)."""
    if service():
        from idds.client import RemoteRecords

        found = records()
        assert isinstance(found, RemoteRecords)
        return found.whoami()
    return auth.acting_user(engine(), acting_settings())


def _sign_out() -> None:
    st.session_state.pop(TOKEN_KEY, None)


def signed_in() -> bool:
    """Whether this browser session may see the pages: the database has no registered users,
    or the session signed in with a valid token (then its user shows in the sidebar). In
    service mode the server says: its ``whoami`` answers for the session's token (or for no
    token where it has no registered users)."""
    if service():
        return _served_sign_in()
    if not auth.has_users(engine()):
        return True
    if not st.session_state.get(TOKEN_KEY):
        return False
    try:
        who = actor()
    except AccessDenied:  # the token was renewed or its user removed meanwhile
        _sign_out()
        return False
    _signed_in_as(who)
    return True


def _served_sign_in() -> bool:
    try:
        who = actor()
    except AccessDenied:  # no token where one is needed, or one renewed or removed meanwhile
        _sign_out()
        return False
    except IddsError as exc:  # the server does not answer
        st.error(str(exc))
        st.stop()
    if st.session_state.get(TOKEN_KEY):
        _signed_in_as(who)
    return True


def _signed_in_as(who: auth.Actor) -> None:
    st.sidebar.caption(f"Signed in as **{who.name}**{' (admin)' if who.admin else ''}")
    st.sidebar.button("Sign out", key="sign-out", on_click=_sign_out)


def sign_in() -> None:
    """The sign-in page: a token, checked against the registered users (in service mode, by
    the server)."""
    st.title("iDDS dashboard")
    with st.form("sign-in"):
        token = st.text_input("Token", type="password", help="`idds users add NAME` gives one.")
        if st.form_submit_button("Sign in"):
            try:
                _check_token(token.strip())
            except AccessDenied:
                where = "this server" if service() else "this database"
                st.error(f"That is not the token of a user of {where}.")
                return
            st.session_state[TOKEN_KEY] = token.strip()
            st.rerun()


def _check_token(token: str) -> None:
    """Raises:
    AccessDenied: ``token`` is not a user's (the server's ``whoami`` refuses it).
    """
    acting = replace(settings(), token=token)
    if service():
        from idds.client import RemoteRecords

        RemoteRecords(acting).whoami()
    else:
        auth.acting_user(engine(), acting)


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Engine:
    return connect(url)


def engine() -> Engine:
    """The database engine of this dashboard (one per URL, shared by sessions); embedded mode
    only.

    Raises:
        IddsError: in service mode, where the dashboard opens no database.
    """
    if service():
        raise IddsError(f"service mode (IDDS_URL={settings().url}): no database is opened here")
    return _engine(settings().db_url)


#: The most characters of a log shown (its end).
LOG_CHARS = 20_000


def logs_of(
    handle: Any, number: int, attempt: int | None, *, path: str | None = None
) -> tuple[int, dict[str, str]]:
    """The end of a task's attempt's stdout and stderr, as ``(attempt, {name: text})``: from
    the server (service mode: it decides who may read them), else from the work dir.

    Args:
        handle: the study or workflow, loaded as the session's user.
        number: the task's number.
        attempt: the attempt (the last by default).
        path: a workflow's node path (its logs are found by it in embedded mode).

    Raises:
        AccessDenied: the session's user may not read them.
    """
    if handle.remote:
        attempt, out, err = handle.served_logs(number, attempt)
        texts = {"stdout": out, "stderr": err}
        return attempt, {k: (v or "")[-LOG_CHARS:] or "(nothing written)" for k, v in texts.items()}
    found = handle.log_paths(number if path is None else path, attempt)
    shown = {}
    for label, file in zip(("stdout", "stderr"), found[:2], strict=True):
        text = file.read_text(errors="replace")[-LOG_CHARS:] if file.exists() else ""
        shown[label] = text or f"(nothing at {file})"
    return found[2], shown


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
