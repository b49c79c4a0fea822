"""The database: one declarative Base, the engine with its dialect settings, migrations.

SQLite (a file, WAL journal) is the default; PostgreSQL serves many users, heads and sites.
Times that several processes compare (leases, backoff) are read from the database clock
through :class:`db_now`, as seconds since the epoch.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.functions import FunctionElement

from idds.errors import DatabaseError, NotFound

_MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    """The one declarative base of every table of the platform."""


class db_now(FunctionElement[float]):  # noqa: N801 - reads as a SQL function
    """The database clock, in seconds since the epoch (float)."""

    type = sa.Float()
    inherit_cache = True


@compiles(db_now, "sqlite")
def _now_sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(db_now, "postgresql")
def _now_postgresql(element: db_now, compiler: Any, **kw: Any) -> str:
    return "extract(epoch from clock_timestamp())::float8"


def redact(url: str) -> str:
    """The URL with its password hidden, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def reason(exc: BaseException) -> str:
    """The first line of a database error (the driver's own message), any password masked."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return redact(lines[0] if lines else type(orig).__name__)


def connect(url: str, *, migrate: bool = True, pool_size: int | None = None) -> Engine:
    """Open the database at ``url``, check that it answers and bring its schema to head.

    ``pool_size``: the connections kept open (SQLAlchemy's default, 5, otherwise), for a
    process that runs that many statements at once (the HTTP API's threads).

    Raises:
        DatabaseError: the URL is malformed, its driver is missing, the server does not answer
            or a newer release of idds wrote the database.
    """
    engine = _create_engine(url, {} if pool_size is None else {"pool_size": pool_size})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        if migrate:
            upgrade(engine)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise DatabaseError(f"cannot use database {redact(url)}: {reason(exc)}") from None
    except DatabaseError:
        engine.dispose()
        raise
    return engine


def check_url(url: str) -> None:
    """Check that ``url`` reads as a database URL of a known dialect (for another tool's
    storage, too).

    Raises:
        SpecError: it does not; one line.
    """
    from idds.errors import SpecError

    try:
        sa.make_url(url).get_dialect()
    except sa.exc.ArgumentError as exc:  # NoSuchModuleError too: an unknown dialect
        raise SpecError(f"not a database URL ({str(exc).splitlines()[0]})") from None


def made(url: str) -> bool:
    """Whether the database at ``url`` may exist already: False only for a SQLite file that
    does not (looking must not create it)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).exists()


def require(url: str, what: str = "") -> None:
    """Check, without creating it, that the database at ``url`` is there (a read must not
    make an empty one, where the next command would find nothing).

    Args:
        url: the database.
        what: what was looked for, to begin the message with (``no study named 'x'``).

    Raises:
        NotFound: a SQLite file that does not exist; the message names the path looked at.
    """
    if not made(url):
        path = Path(sa.make_url(url).database or "").absolute()
        raise NotFound(
            f"{what}{': ' if what else ''}no database at {path} (the default is the nearest "
            "idds.db from the current "
            "directory up, or IDDS_HOME; --db or IDDS_DB_URL names another)"
        )


def drop_all(url: str) -> None:
    """Drop the platform's tables (and Alembic's) at ``url``, so that a test or a benchmark
    starts from an empty database. Everything recorded there is lost.

    Raises:
        sqlalchemy.exc.DBAPIError: the database does not answer.
    """
    import idds.owners
    import idds.tasks  # noqa: F401 - registers the tables on Base.metadata

    engine = _create_engine(url)
    names = [t.name for t in Base.metadata.sorted_tables] + ["alembic_version"]
    cascade = " CASCADE" if engine.dialect.name == "postgresql" else ""
    try:
        with engine.begin() as conn:
            for name in names:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}{cascade}"))
    finally:
        engine.dispose()


def _create_engine(url: str, pool: dict[str, Any] | None = None) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise DatabaseError(f"not a database URL: {url!r}") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed, pool or {})
        args = _network_timeouts(parsed) if parsed.get_backend_name() == "postgresql" else {}
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args=args, **(pool or {}))
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise DatabaseError(f"cannot use database {redact(url)}: {exc}") from None


#: libpq's timeouts, so that a network cut is an error within seconds (and waited out as an
#: outage) rather than a call that waits on its socket until TCP gives up, a quarter of an
#: hour later: a connection gets 10 s to open; data the server has not acknowledged after
#: 10 s breaks the connection; an idle connection is probed after 10 s, every 3 s, 3 times.
#: A long query is not cut short (nothing is left unacknowledged while it runs). Each may be
#: set otherwise in the URL's query (``?tcp_user_timeout=60000``).
PG_NETWORK_TIMEOUTS = {
    "connect_timeout": 10,
    "tcp_user_timeout": 10_000,  # ms
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
}


def _network_timeouts(url: sa.URL) -> dict[str, Any]:
    """:data:`PG_NETWORK_TIMEOUTS`, less those the URL sets itself."""
    return {k: v for k, v in PG_NETWORK_TIMEOUTS.items() if k not in url.query}


#: The SQLite file each engine opened first, as (path, device, inode): see :func:`check_file`.
_OPENED: weakref.WeakKeyDictionary[Engine, tuple[str, int, int]] = weakref.WeakKeyDictionary()


def check_file(engine: Engine) -> None:
    """Check that a SQLite engine's file is still the one it opened first: a file deleted or
    replaced under a running head would take every result the head records after with it
    (its connections write on to the unlinked file). One ``stat``; nothing for PostgreSQL.

    Raises:
        DatabaseError: the file is gone or is another file now.
    """
    opened = _OPENED.get(engine)
    if opened is None:
        return
    path, dev, ino = opened
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is None or (st.st_dev, st.st_ino) != (dev, ino):
        what = "deleted" if st is None else "replaced by another file"
        raise DatabaseError(
            f"database file {path} was deleted or replaced while in use ({what}); stopping "
            "before more results are written where nobody can read them"
        )


def _sqlite_engine(url: sa.URL, pool: dict[str, Any]) -> Engine:
    memory = url.database in (None, "", ":memory:")
    engine = sa.create_engine(url, connect_args={"timeout": 60}, **({} if memory else pool))
    path = url.database if url.database not in (None, "", ":memory:") else None

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        if path is not None and engine not in _OPENED:
            with contextlib.suppress(OSError):  # the file is made by the first statement
                st = os.stat(path)
                _OPENED[engine] = (os.path.abspath(path), st.st_dev, st.st_ino)
        # Let SQLAlchemy's "begin" event emit BEGIN itself (see below).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        _set_wal(cur)
        # WAL + NORMAL: a commit survives a crash of any process; only an OS crash
        # may lose the last commits.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        # A write refused by a read-only file (or folder): one line, not the driver's trace.
        # The transaction is rolled back, so nothing is half-written.
        if "readonly database" in str(context.original_exception):
            where = os.path.abspath(path) if path else str(url)
            raise DatabaseError(
                f"database file {where} is read-only: nothing was written; make it (and its "
                "folder) writable, or work on a copy"
            ) from None

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front, so two heads never deadlock upgrading a read lock.
        mode = "DEFERRED" if conn.get_execution_options().get("readonly") else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _set_wal(cur: Any) -> None:
    """Switch the file to WAL. The switch needs the file to itself, and SQLite reports a busy
    file at once rather than waiting: two processes opening a new file together retry."""
    import sqlite3

    for attempt in range(50):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.2)


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only: on SQLite it takes no write lock."""
    with engine.connect().execution_options(readonly=True) as conn:
        yield conn


_UPGRADING = threading.Lock()


def _pragma(conn: Connection, pragma: str) -> None:
    """Run a SQLite pragma outside any transaction (on the driver's own connection)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA {pragma}")


def upgrade(engine: Engine) -> None:
    """Apply every migration the database lacks (Alembic ``upgrade head``)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    sqlite = engine.dialect.name == "sqlite"
    # Alembic's `op` and `context` are process-wide proxies: one migration at a time.
    with _UPGRADING, engine.connect() as conn:
        if sqlite:
            # SQLite changes a table by copying it and dropping the old one: with foreign
            # keys on, the drop would cascade to every row that refers to it. The pragma
            # takes effect outside a transaction only; the keys are checked after.
            _pragma(conn, "foreign_keys=OFF")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # Two heads starting together must not both create the schema.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))
                config.attributes["connection"] = conn
                _check_known(conn, config)
                command.upgrade(config, "head")
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise DatabaseError("a migration left rows that refer to none")
        finally:
            if sqlite:
                _pragma(conn, "foreign_keys=ON")


def _check_known(conn: Connection, config: Any) -> None:
    """Refuse a database whose schema revision this release does not know (a newer release
    wrote it): Alembic would fail with a long trace, and going on could corrupt it.

    Raises:
        DatabaseError: the revision is unknown here.
    """
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    known = {r.revision for r in ScriptDirectory.from_config(config).walk_revisions()}
    for revision in MigrationContext.configure(conn).get_current_heads():
        if revision not in known:
            raise DatabaseError(
                f"database {conn.engine.url.render_as_string()} is "
                f"at schema revision {revision!r}, which this release of idds ({_version()}) "
                "does not know: a newer release wrote it; upgrade idds (pip install -U idds) "
                "to use it"
            )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("idds")
    except PackageNotFoundError:
        return "unknown version"
