"""The Task record and its state machine: states, the legal transitions, the tables and
the one function that applies a transition (its statements compiled once: the hot path)."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from idds.db import Base, db_now
from idds.errors import IllegalTransition


class TaskState(enum.StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AttemptKind(enum.StrEnum):
    """How an attempt ended (``None`` while it is in flight).

    ``error``: the payload raised or reported failure, or its result was rejected; ``failed``:
    the worker died under it; ``timeout``: it ran past its limit; ``lost``: its head went away
    (the site is not to blame); ``pruned``: it stopped early on its pruner's advice, with a
    value.
    """

    SUCCEEDED = "succeeded"
    PRUNED = "pruned"
    ERROR = "error"
    FAILED = "failed"
    TIMEOUT = "timeout"
    LOST = "lost"
    CANCELLED = "cancelled"


FINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})
IN_FLIGHT = (TaskState.DISPATCHED, TaskState.RUNNING)

#: The legal transitions; :func:`transition` applies only these.
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.PENDING: frozenset({TaskState.DISPATCHED, TaskState.CANCELLED}),
    TaskState.DISPATCHED: frozenset(
        {TaskState.RUNNING, TaskState.PENDING, TaskState.FAILED, TaskState.CANCELLED}
    ),
    TaskState.RUNNING: frozenset(
        {TaskState.SUCCEEDED, TaskState.PENDING, TaskState.FAILED, TaskState.CANCELLED}
    ),
    TaskState.SUCCEEDED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.CANCELLED: frozenset(),
}

_STATES = ", ".join(f"'{s}'" for s in TaskState)
_FINAL = ", ".join(f"'{s}'" for s in sorted(FINAL))
_KINDS = ", ".join(f"'{k}'" for k in AttemptKind)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        sa.UniqueConstraint("owner_id", "number"),
        sa.Index("ix_tasks_owner_state", "owner_id", "state"),
        sa.CheckConstraint(f"state IN ({_STATES})", name="ck_tasks_state"),
        sa.CheckConstraint(
            f"state NOT IN ({_FINAL}) OR finished IS NOT NULL", name="ck_tasks_finished"
        ),
        sa.CheckConstraint("attempt <= max_attempts", name="ck_tasks_attempts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("owners.id", ondelete="CASCADE"))
    number: Mapped[int]
    kind: Mapped[str] = mapped_column(sa.String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    resources: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    site: Mapped[str | None] = mapped_column(sa.String(64))
    priority: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(sa.String(16), default=TaskState.PENDING)
    attempt: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    retry_errors: Mapped[bool] = mapped_column(default=True)
    timeout_s: Mapped[float | None]
    token: Mapped[str | None] = mapped_column(sa.String(64))
    lease_expires: Mapped[float | None]
    not_before: Mapped[float] = mapped_column(default=0.0)
    result: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text)
    node: Mapped[str | None] = mapped_column(sa.String(128))
    created: Mapped[float] = mapped_column(server_default=db_now())
    dispatched: Mapped[float | None]
    started: Mapped[float | None]
    finished: Mapped[float | None]


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (
        sa.UniqueConstraint("task_id", "number"),
        # At most one succeeded attempt per task, whatever races happen.
        sa.Index(
            "ux_attempts_one_success",
            "task_id",
            unique=True,
            sqlite_where=sa.text("state = 'succeeded'"),
            postgresql_where=sa.text("state = 'succeeded'"),
        ),
        sa.CheckConstraint(f"kind IS NULL OR kind IN ({_KINDS})", name="ck_attempts_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(sa.ForeignKey("tasks.id", ondelete="CASCADE"))
    number: Mapped[int]
    token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    state: Mapped[str] = mapped_column(sa.String(16))
    site: Mapped[str | None] = mapped_column(sa.String(64))
    node: Mapped[str | None] = mapped_column(sa.String(128))
    head: Mapped[str | None] = mapped_column(sa.String(128))
    kind: Mapped[str | None] = mapped_column(sa.String(16))
    dispatched: Mapped[float] = mapped_column(server_default=db_now())
    started: Mapped[float | None]
    finished: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(sa.Text)


class Report(Base):
    """A progress report of a running attempt: its value at a step (an intermediate value)."""

    __tablename__ = "reports"
    __table_args__ = (sa.UniqueConstraint("task_id", "attempt", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(sa.ForeignKey("tasks.id", ondelete="CASCADE"))
    attempt: Mapped[int]
    step: Mapped[int]
    value: Mapped[float]


tasks: sa.Table = Task.__table__  # type: ignore[assignment]
attempts: sa.Table = Attempt.__table__  # type: ignore[assignment]
reports: sa.Table = Report.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class DbTime:
    """A value for a time column: the database clock when the update runs, plus ``offset`` s."""

    offset: float = 0.0


#: The database clock, as a value for :func:`transition` and the queue operations.
NOW = DbTime()


def transition(
    conn: Connection,
    task_id: int,
    old: TaskState,
    new: TaskState,
    *,
    expect_token: str | None = None,
    **values: Any,
) -> bool:
    """Move one task from ``old`` to ``new`` if it is still in ``old`` (and holds the token).

    ``values`` are other columns to set; a :class:`DbTime` value is read off the database
    clock. The statement is built once per shape and reused (this is the hot path).

    Returns:
        True if this call made the change; False if another head or an earlier call did.

    Raises:
        IllegalTransition: the table has no ``old -> new`` edge.
    """
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"task {task_id}: {old} -> {new} is not allowed")
    shape, params = _shape(values)
    params.update(g_id=task_id, g_state=old, v_state=new, g_token=expect_token)
    stmt = _update_statement("tasks", expect_token is not None, shape)
    return _run(conn, stmt, params) == 1


@dataclass(frozen=True)
class _DriverSql:
    """A statement compiled once for a dialect: its SQL, and how to lay its parameters out."""

    sql: str
    order: tuple[str, ...] | None  # positional parameters' names in order (None: by name)
    processors: dict[str, Any]
    fixed: dict[str, Any]  # the values the statement carries itself

    def args(self, params: dict[str, Any]) -> Any:
        values = {**self.fixed, **params}
        for key, process in self.processors.items():
            values[key] = process(values[key])
        return values if self.order is None else tuple(values[k] for k in self.order)


_driver_sql: dict[tuple[type, int], _DriverSql] = {}


def _run(conn: Connection, stmt: sa.Update, params: dict[str, Any]) -> int:
    """Execute one of the hot path's cached statements; returns its row count.

    The statement is compiled once per dialect and sent as the driver's SQL: SQLAlchemy's
    work per call (cache key, parameter processing) costs more than SQLite's own execution
    of an update, and an evaluation runs several. Errors are SQLAlchemy's as usual.
    """
    key = (type(conn.dialect), id(stmt))
    driver = _driver_sql.get(key)
    if driver is None:
        compiled = stmt.compile(dialect=conn.dialect)
        names = compiled.bind_names
        driver = _driver_sql[key] = _DriverSql(
            sql=str(compiled),
            order=tuple(compiled.positiontup) if compiled.positiontup is not None else None,
            processors=dict(compiled._bind_processors),
            fixed={names[b]: b.effective_value for b in names if not b.required},
        )
    return conn.exec_driver_sql(driver.sql, driver.args(params)).rowcount


def _shape(values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The cache key of an update's SET clause, and its parameters."""
    shape = tuple(sorted((k, isinstance(v, DbTime)) for k, v in values.items()))
    params = {f"v_{k}": v.offset if isinstance(v, DbTime) else v for k, v in values.items()}
    return shape, params


@functools.cache
def _update_statement(table_name: str, guard_token: bool, shape: tuple[Any, ...]) -> sa.Update:
    """``UPDATE table SET state, <shape> WHERE id|token [AND state] [AND token]``, cached."""
    table = tasks if table_name == "tasks" else attempts
    if table_name == "tasks":
        where = [table.c.id == sa.bindparam("g_id"), table.c.state == sa.bindparam("g_state")]
        if guard_token:
            where.append(table.c.token == sa.bindparam("g_token"))
    else:
        where = [table.c.token == sa.bindparam("g_token")]
    sets: dict[str, Any] = {"state": sa.bindparam("v_state", type_=sa.String)}
    for key, is_time in shape:
        param = sa.bindparam(f"v_{key}", type_=table.c[key].type)
        sets[key] = db_now() + param if is_time else param
    return sa.update(table).where(*where).values(**sets)
