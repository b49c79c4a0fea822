"""The queue operations on tasks: hand in, claim, start, finish, requeue, cancel, report."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from idds.db import db_now
from idds.errors import IllegalTransition
from idds.tasks.states import (
    FINAL,
    IN_FLIGHT,
    NOW,
    TRANSITIONS,
    AttemptKind,
    DbTime,
    TaskState,
    _run,
    _shape,
    _update_statement,
    attempts,
    reports,
    tasks,
    transition,
)


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """A task to hand in: what to run (``payload``) and how (resources, retries, timeout)."""

    number: int
    kind: str
    payload: dict[str, Any]
    resources: dict[str, Any] = field(default_factory=dict)
    site: str | None = None
    priority: int = 0
    max_attempts: int = 3
    retry_errors: bool = True
    timeout_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A task this head has claimed: one attempt, identified by its token."""

    task_id: int
    owner_id: int
    number: int
    attempt: int
    token: str
    payload: dict[str, Any]
    resources: dict[str, Any]
    site: str | None
    timeout_s: float | None
    max_attempts: int
    retry_errors: bool


def submit(conn: Connection, owner_id: int, specs: Sequence[TaskSpec]) -> None:
    """Hand in tasks in bulk (one INSERT for all)."""
    if not specs:
        return
    rows = [
        {
            "owner_id": owner_id,
            "number": s.number,
            "kind": s.kind,
            "payload": s.payload,
            "resources": s.resources,
            "site": s.site,
            "priority": s.priority,
            "state": TaskState.PENDING,
            "attempt": 0,
            "max_attempts": s.max_attempts,
            "retry_errors": s.retry_errors,
            "timeout_s": s.timeout_s,
            "not_before": 0.0,
        }
        for s in specs
    ]
    conn.execute(sa.insert(tasks), rows)


def submit_claimed(
    conn: Connection, owner_id: int, specs: Sequence[TaskSpec], *, lease_seconds: float
) -> list[Claim]:
    """Hand in tasks and claim them at once: what :func:`submit` then :func:`claim` do, in
    one INSERT, for tasks that are the next of their owner to run (none of its tasks waits in
    the queue before them). Each claim's token, first attempt and lease are set in the
    statement that records the task; the caller records the attempts with
    :func:`start_attempts` in the same transaction.

    Returns:
        The claims, in the order of ``specs``.
    """
    if not specs:
        return []
    prefix = uuid.uuid4().hex[:16]
    tokens = {s.number: f"{prefix}:{owner_id}.{s.number}:1" for s in specs}
    rows = [
        {
            "owner_id": owner_id, "number": s.number, "kind": s.kind, "payload": s.payload,
            "resources": s.resources, "site": s.site, "priority": s.priority,
            "state": TaskState.DISPATCHED, "attempt": 1, "token": tokens[s.number],
            "max_attempts": s.max_attempts, "retry_errors": s.retry_errors,
            "timeout_s": s.timeout_s, "not_before": 0.0, "p_lease": lease_seconds,
        }
        for s in specs
    ]  # fmt: skip
    ids = {number: task_id for number, task_id in conn.execute(_claimed_insert(), rows)}
    return [_claim(owner_id, ids[s.number], 1, tokens[s.number], s) for s in specs]


def _claim(owner_id: int, task_id: int, attempt: int, token: str, task: Any) -> Claim:
    """A claim on ``task`` (a :class:`TaskSpec` handed in claimed, or a claimed row)."""
    return Claim(
        task_id=task_id, owner_id=owner_id, number=task.number, attempt=attempt, token=token,
        payload=task.payload, resources=task.resources or {}, site=task.site,
        timeout_s=task.timeout_s, max_attempts=task.max_attempts, retry_errors=task.retry_errors,
    )  # fmt: skip


@functools.cache
def _claimed_insert() -> sa.Insert:
    lease = db_now() + sa.bindparam("p_lease", type_=sa.Float)
    return (
        sa.insert(tasks)
        .values(lease_expires=lease, dispatched=db_now())
        .returning(tasks.c.number, tasks.c.id)
    )


def record_finished(
    conn: Connection,
    owner_id: int,
    spec: TaskSpec,
    state: TaskState,
    *,
    result: Any = None,
    error: str | None = None,
    site: str | None = None,
) -> int:
    """Record a task that ran elsewhere (an import), final already, with its one attempt.

    Returns:
        The task's id.
    """
    if state not in FINAL:
        raise IllegalTransition(f"an imported task must be final, not {state}")
    row = {
        "owner_id": owner_id, "number": spec.number, "kind": spec.kind, "payload": spec.payload,
        "resources": spec.resources, "site": site, "priority": spec.priority, "state": state,
        "attempt": 1, "max_attempts": max(spec.max_attempts, 1),
        "retry_errors": spec.retry_errors, "timeout_s": spec.timeout_s, "not_before": 0.0,
        "result": result, "error": error, "finished": db_now(),
    }  # fmt: skip
    task_id = int(conn.execute(sa.insert(tasks).values(**row)).inserted_primary_key[0])  # type: ignore[index]
    token = f"import:{task_id}:1"
    conn.execute(sa.update(tasks).where(tasks.c.id == task_id).values(token=token))
    conn.execute(
        sa.insert(attempts).values(
            task_id=task_id, number=1, token=token, state=state, site=site,
            finished=db_now(), error=error, kind=_imported_kind(state, result),
        )
    )  # fmt: skip
    return task_id


def _imported_kind(state: TaskState, result: Any) -> AttemptKind:
    if state is TaskState.SUCCEEDED:
        return attempt_kind("ok", result)
    return AttemptKind.CANCELLED if state is TaskState.CANCELLED else AttemptKind.ERROR


def claim(conn: Connection, owner_id: int, limit: int, *, lease_seconds: float) -> list[Claim]:
    """Claim up to ``limit`` pending tasks of an owner whose backoff has passed.

    The claim, the new attempt's token and the lease are set in one statement; on PostgreSQL
    the candidate rows are locked with ``FOR UPDATE SKIP LOCKED`` (in a CTE, which the planner
    runs once, so LIMIT holds) so heads never block each other. Returns the claims in
    priority, then number, order; the caller records their attempts with
    :func:`start_attempts` in the same transaction.
    """
    if limit <= 0:
        return []
    params = {
        "p_owner": owner_id,
        "limit": limit,
        "lease": lease_seconds,
        "prefix": uuid.uuid4().hex[:16],
    }
    rows = sorted(
        conn.execute(_claim_statement(), params).all(), key=lambda r: (-r.priority, r.number)
    )
    return [_claim(owner_id, r.id, r.attempt, r.token, r) for r in rows]


@functools.cache
def _claim_statement() -> sa.Update:
    candidates = (
        sa.select(tasks.c.id)
        .where(
            tasks.c.owner_id == sa.bindparam("p_owner"),
            tasks.c.state == TaskState.PENDING,
            tasks.c.not_before <= db_now(),
        )
        .order_by(tasks.c.priority.desc(), tasks.c.number)
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .with_for_update(skip_locked=True)
        .cte("candidates")
    )
    token = sa.bindparam("prefix", type_=sa.String) + ":" + sa.cast(tasks.c.id, sa.String)
    token = token + ":" + sa.cast(tasks.c.attempt + 1, sa.String)
    return (
        sa.update(tasks)
        .where(tasks.c.id == candidates.c.id, tasks.c.state == TaskState.PENDING)
        .values(
            state=TaskState.DISPATCHED,
            attempt=tasks.c.attempt + 1,
            token=token,
            lease_expires=db_now() + sa.bindparam("lease", type_=sa.Float),
            dispatched=db_now(),
            started=None,
            node=None,
        )
        .returning(
            tasks.c.id,
            tasks.c.number,
            tasks.c.attempt,
            tasks.c.token,
            tasks.c.payload,
            tasks.c.resources,
            tasks.c.site,
            tasks.c.timeout_s,
            tasks.c.priority,
            tasks.c.max_attempts,
            tasks.c.retry_errors,
        )
    )


def start_attempts(conn: Connection, placed: Sequence[tuple[Claim, str]], *, head: str) -> None:
    """Record one attempt row per claim, with the site the broker placed it on."""
    if not placed:
        return
    rows = [
        {
            "task_id": c.task_id,
            "number": c.attempt,
            "token": c.token,
            "state": TaskState.DISPATCHED,
            "site": site,
            "head": head,
        }
        for c, site in placed
    ]
    conn.execute(sa.insert(attempts), rows)


def unclaim(conn: Connection, claims: Sequence[Claim]) -> int:
    """Give back claims whose attempts were never launched (held ready by a head that
    stops): their tasks are pending again as before the claim, and those attempts' rows go.
    A claim no longer current (another head took its task over) is left alone.

    Returns:
        How many tasks went back to the queue.
    """
    tokens = [c.token for c in claims]
    if not tokens:
        return 0
    back = conn.execute(
        sa.update(tasks)
        .where(tasks.c.token.in_(tokens), tasks.c.state == TaskState.DISPATCHED)
        .values(
            state=TaskState.PENDING,
            attempt=tasks.c.attempt - 1,
            token=None,
            lease_expires=None,
            dispatched=None,
        )
    ).rowcount
    conn.execute(
        sa.delete(attempts).where(
            attempts.c.token.in_(tokens), attempts.c.state == TaskState.DISPATCHED
        )
    )
    return back


def mark_running(
    conn: Connection,
    claim: Claim,
    *,
    node: str | None,
    started: float | None,
    site: str | None = None,
) -> bool:
    """``dispatched -> running`` for an attempt that has started on a worker.

    Returns:
        False if the attempt is no longer current or was already marked running.
    """
    ok = transition(
        conn,
        claim.task_id,
        TaskState.DISPATCHED,
        TaskState.RUNNING,
        expect_token=claim.token,
        node=node,
        started=started,
        **({"site": site} if site else {}),
    )
    if ok:
        shape, params = _shape({"node": node, "started": started})
        params.update(g_token=claim.token, v_state=TaskState.RUNNING)
        _run(conn, _update_statement("attempts", True, shape), params)
    return ok


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How an attempt ended.

    ``kind`` is ``ok``, ``error`` (the payload raised or reported failure), ``invalid``
    (its result was rejected), ``crash`` (the worker died), ``timeout`` or ``lost`` (its head
    died). ``error`` and ``invalid`` are retried only where the task has ``retry_errors``;
    ``invalid`` never is.
    """

    kind: str
    result: Any = None
    error: str | None = None
    node: str | None = None
    started: float | None = None
    reports: tuple[tuple[int, float], ...] = ()

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


def finish(
    conn: Connection,
    claim: Claim,
    outcome: Outcome,
    *,
    site: str | None = None,
    backoff_s: float = 1.0,
) -> TaskState | None:
    """Record the end of an attempt (and the site it ran on).

    Returns:
        The task's new state, or None if the attempt's token is no longer current (another
        head took the task over, or it was cancelled): then nothing is written.
    """
    new = _next_state(outcome, claim.attempt, claim.max_attempts, claim.retry_errors)
    values: dict[str, Any] = {"error": outcome.error}
    if outcome.node is not None:
        values["node"] = outcome.node
    if site is not None:
        values["site"] = site
    if new is TaskState.SUCCEEDED:
        values.update(result=outcome.result, finished=NOW, error=None)
    elif new is TaskState.FAILED:
        values.update(finished=NOW)
    else:  # back to the queue after a backoff that doubles with each attempt
        delay = min(backoff_s * 2 ** (claim.attempt - 1), 300.0)
        values.update(not_before=DbTime(delay), token=None, lease_expires=None)
    if not _end_attempt(conn, claim, new, outcome.started, values):
        return None
    _close_attempt(conn, claim.token, outcome)
    return new


def _end_attempt(
    conn: Connection, claim: Claim, new: TaskState, started: float | None, values: dict[str, Any]
) -> bool:
    """``dispatched | running -> new`` in one guarded update: an attempt whose start was not
    reported yet passes through ``running`` (taking the worker's start time) on the way,
    rather than in a statement of its own (this is the hot path: one result, one update)."""
    if new not in TRANSITIONS[TaskState.RUNNING]:
        raise IllegalTransition(f"task {claim.task_id}: running -> {new} is not allowed")
    shape, params = _shape(values)
    params.update(g_id=claim.task_id, g_token=claim.token, v_state=new, v_started=started)
    return _run(conn, _end_statement(shape), params) == 1


@functools.cache
def _end_statement(shape: tuple[Any, ...]) -> sa.Update:
    c = tasks.c
    sets: dict[str, Any] = {
        "state": sa.bindparam("v_state", type_=sa.String),
        "started": sa.func.coalesce(c.started, sa.bindparam("v_started", type_=c.started.type)),
    }
    for key, is_time in shape:
        param = sa.bindparam(f"v_{key}", type_=c[key].type)
        sets[key] = db_now() + param if is_time else param
    # Two comparisons, not IN (...): an IN list is expanded anew on each execution.
    live = sa.or_(c.state == TaskState.DISPATCHED, c.state == TaskState.RUNNING)
    guard = [c.id == sa.bindparam("g_id"), c.token == sa.bindparam("g_token"), live]
    return sa.update(tasks).where(*guard).values(**sets)


def _next_state(outcome: Outcome, attempt: int, max_attempts: int, retry_errors: bool) -> TaskState:
    if outcome.ok:
        return TaskState.SUCCEEDED
    retryable = outcome.kind in ("crash", "timeout", "lost") or (
        outcome.kind == "error" and retry_errors
    )
    return TaskState.PENDING if retryable and attempt < max_attempts else TaskState.FAILED


#: The attempt kind of each outcome kind that is not ``ok``.
_ATTEMPT_KIND = {
    "error": AttemptKind.ERROR,
    "invalid": AttemptKind.ERROR,
    "crash": AttemptKind.FAILED,
    "timeout": AttemptKind.TIMEOUT,
    "lost": AttemptKind.LOST,
}


def attempt_kind(outcome_kind: str, result: Any = None) -> AttemptKind:
    """The kind recorded for an attempt that ended with an outcome of ``outcome_kind``."""
    if outcome_kind == "ok":
        pruned = isinstance(result, dict) and result.get("pruned")
        return AttemptKind.PRUNED if pruned else AttemptKind.SUCCEEDED
    return _ATTEMPT_KIND.get(outcome_kind, AttemptKind.ERROR)


def _close_attempt(conn: Connection, token: str, outcome: Outcome) -> None:
    state = TaskState.SUCCEEDED if outcome.ok else TaskState.FAILED
    values: dict[str, Any] = {"finished": NOW, "error": outcome.error, "started": outcome.started}
    values["kind"] = attempt_kind(outcome.kind, outcome.result)
    if outcome.node is not None:
        values["node"] = outcome.node
    shape, params = _shape(values)
    params.update(g_token=token, v_state=state)
    _run(conn, _update_statement("attempts", True, shape), params)


def requeue_in_flight(conn: Connection, owner_id: int, reason: str) -> int:
    """After taking an owner over: its attempts in flight are lost; queue their tasks again.

    A task whose lost attempt was its last fails. Returns how many attempts were lost.
    """
    rows = conn.execute(
        sa.select(tasks).where(tasks.c.owner_id == owner_id, tasks.c.state.in_(IN_FLIGHT))
    ).all()
    for r in rows:
        claim = Claim(
            task_id=r.id, owner_id=owner_id, number=r.number, attempt=r.attempt, token=r.token,
            payload=r.payload, resources=r.resources, site=r.site, timeout_s=r.timeout_s,
            max_attempts=r.max_attempts, retry_errors=r.retry_errors,
        )  # fmt: skip
        finish(conn, claim, Outcome(kind="lost", error=reason), backoff_s=0.0)
    return len(rows)


def cancel_owner_tasks(conn: Connection, owner_id: int, reason: str = "cancelled") -> int:
    """Cancel every task of an owner that is not final. Returns how many were cancelled."""
    stmt = (
        sa.update(tasks)
        .where(tasks.c.owner_id == owner_id, tasks.c.state.in_([TaskState.PENDING, *IN_FLIGHT]))
        .values(state=TaskState.CANCELLED, finished=db_now(), error=reason)
        .returning(tasks.c.token)
    )
    rows = conn.execute(stmt).all()
    tokens = [t for (t,) in rows if t]
    if tokens:
        conn.execute(
            sa.update(attempts)
            .where(attempts.c.token.in_(tokens), attempts.c.state.in_(IN_FLIGHT))
            .values(
                state=TaskState.CANCELLED,
                kind=AttemptKind.CANCELLED,
                finished=db_now(),
                error=reason,
            )
        )
    return len(rows)


def add_reports(conn: Connection, rows: Sequence[tuple[Claim, int, float]]) -> None:
    """Record progress reports (a step reported twice by an attempt keeps its first value)."""
    seen: set[tuple[int, int, int]] = set()
    values = []
    for claim, step, value in rows:
        key = (claim.task_id, claim.attempt, step)
        if key not in seen:
            seen.add(key)
            values.append({"task_id": key[0], "attempt": key[1], "step": step, "value": value})
    if not values:
        return
    existing = conn.execute(
        sa.select(reports.c.task_id, reports.c.attempt, reports.c.step).where(
            reports.c.task_id.in_({v["task_id"] for v in values})
        )
    ).all()
    known = {tuple(r) for r in existing}
    fresh = [v for v in values if (v["task_id"], v["attempt"], v["step"]) not in known]
    if fresh:
        conn.execute(sa.insert(reports), fresh)


def reports_of(conn: Connection, owner_id: int) -> dict[int, dict[int, float]]:
    """Task number -> {step: value} of the last attempt that reported, for an owner."""
    rows = conn.execute(
        sa.select(tasks.c.number, reports.c.attempt, reports.c.step, reports.c.value)
        .join(tasks, tasks.c.id == reports.c.task_id)
        .where(tasks.c.owner_id == owner_id)
        .order_by(tasks.c.number, reports.c.attempt, reports.c.step)
    ).all()
    out: dict[int, dict[int, float]] = {}
    last_attempt: dict[int, int] = {}
    for number, attempt, step, value in rows:
        if last_attempt.get(number) != attempt:
            last_attempt[number] = attempt
            out[number] = {}
        out[number][step] = value
    return out


def counts(conn: Connection, owner_id: int) -> dict[TaskState, int]:
    """How many tasks of an owner are in each state."""
    rows = conn.execute(
        sa.select(tasks.c.state, sa.func.count())
        .where(tasks.c.owner_id == owner_id)
        .group_by(tasks.c.state)
    ).all()
    found = {TaskState(s): n for s, n in rows}
    return {s: found.get(s, 0) for s in TaskState}
