"""A database that goes away (PostgreSQL stopped, the network cut) does not stop a head.

The head keeps what it has not recorded yet in memory (:mod:`idds.dispatch.buffer`), tries
the database again with a growing backoff, and once it answers renews its leases (standing
down if another head took an owner over) and settles what the transaction that failed may
have committed (:func:`reconcile`); it gives up after ``db_outage_s`` seconds
(:attr:`idds.config.Settings.db_outage_s`, ``IDDS_DB_OUTAGE_S``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

import sqlalchemy as sa

from idds import tasks as tq
from idds.db import reason
from idds.errors import DatabaseError
from idds.tasks import TaskState

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection, Engine

    from idds.dispatch.buffer import CommitBuffer
    from idds.dispatch.owner import Placement
    from idds.tasks import Claim

log = logging.getLogger("idds.dispatch")

#: The first wait before trying a database that went away again, and the longest (seconds).
RECONNECT_BACKOFF_S = (0.5, 5.0)


def connection_lost(exc: sa.exc.DBAPIError, dialect: str) -> bool:
    """True when ``exc`` says that the database is away (the connection dropped, the server
    refuses connections or is shutting down) rather than that a statement is wrong.

    SQLite reports mistakes as ``OperationalError`` too: there only a dropped connection counts.
    """
    if exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError) and dialect != "sqlite"


class Link:
    """The connection a head's hot path keeps (no pool checkout and reset per commit), and
    its recovery when the database goes away.

    Args:
        engine: the database.
        limit_s: how long to wait for a database that went away before giving up.

    Attributes:
        conn: the open connection, or None while there is none.
    """

    def __init__(self, engine: Engine, limit_s: float) -> None:
        self.engine = engine
        self.limit_s = limit_s
        self.conn: Connection | None = None

    def open(self) -> Connection:
        """The open connection; one is opened where there is none."""
        if self.conn is None:
            self.conn = self.engine.connect()
        return self.conn

    def close(self, *, broken: bool) -> None:
        """Close the connection (throw it away if ``broken``); errors are ignored."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            if broken and not conn.invalidated:
                conn.invalidate()
            conn.close()

    def guarded(
        self, step: Callable[[], None], on_outage: Callable[[sa.exc.DBAPIError], None]
    ) -> bool:
        """Run ``step``; if the database went away meanwhile, call ``on_outage`` (which
        waits until it is back, e.g. with :meth:`wait`).

        Returns:
            False when an outage cut the step short.

        Raises:
            sa.exc.DBAPIError: the step failed for another reason than an outage.
        """
        try:
            step()
        except sa.exc.DBAPIError as exc:
            if not connection_lost(exc, self.engine.dialect.name):
                raise
            on_outage(exc)
            return False
        return True

    def wait(
        self,
        exc: sa.exc.DBAPIError,
        *,
        held: int = 0,
        resume: Callable[[], None] | None = None,
    ) -> None:
        """Try the database again with a growing backoff; once it answers, call ``resume``
        (renew the leases, settle what the failed transaction may have committed), itself
        tried again while the database is still away.

        Args:
            exc: the error that showed the database away.
            held: how many results the head holds in memory meanwhile (for the log).
            resume: what to do once the database answers.

        Raises:
            DatabaseError: the database stayed away longer than ``limit_s``; one line, the
                password masked.
        """
        url = self.engine.url.render_as_string()  # the password masked
        log.warning(
            "database %s is away (%s); holding %d result(s) in memory, trying again for up to "
            "%g s", url, reason(exc), held, self.limit_s,
        )  # fmt: skip
        since = time.monotonic()
        delay = RECONNECT_BACKOFF_S[0]
        while True:
            self.close(broken=True)
            left = self.limit_s - (time.monotonic() - since)
            if left <= 0:
                raise DatabaseError(
                    f"database {url} did not answer for {self.limit_s:g} s "
                    f"(IDDS_DB_OUTAGE_S); giving up: {reason(exc)}"
                )
            time.sleep(min(delay, left))
            delay = min(2 * delay, RECONNECT_BACKOFF_S[1])
            try:
                self._reconnect(resume)
            except sa.exc.DBAPIError as again:
                if not connection_lost(again, self.engine.dialect.name):
                    raise
                exc = again
                continue
            log.info("database %s answers again after %.1f s", url, time.monotonic() - since)
            return

    def _reconnect(self, resume: Callable[[], None] | None) -> None:
        self.engine.dispose()  # pooled connections are as dead as the one that failed
        self.conn = self.engine.connect()
        if resume is not None:
            resume()


def reconcile(conn: Connection, buffer: CommitBuffer) -> list[tuple[Claim, Placement]]:
    """After an outage: the claims held in ``buffer`` whose transaction was committed
    although its commit failed (to launch now); of the tasks handed in, keep only those that
    were not recorded (to hand in again).

    Returns:
        The claims to launch; the buffer holds no claims any more.
    """
    t = tq.tasks.c
    with conn.begin():
        claiming = buffer.claims()
        launch: list[tuple[Claim, Placement]] = []
        if claiming:
            tokens = [c.token for c, _ in claiming]
            made = set(conn.execute(
                sa.select(t.token).where(t.token.in_(tokens), t.state == TaskState.DISPATCHED)
            ).scalars())  # fmt: skip
            launch = [(c, p) for c, p in claiming if c.token in made]
        for oid, specs in buffer.handed_in().items():
            numbers = [s.number for s in specs]
            there = set(conn.execute(
                sa.select(t.number).where(t.owner_id == oid, t.number.in_(numbers))
            ).scalars())  # fmt: skip
            buffer.forget_handed_in(oid, there)
    buffer.clear_claims()
    return launch
