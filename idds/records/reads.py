"""Typed reads of the core's records: owners, tasks, attempts, reports; counts and stamps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from idds.db import db_now, reading
from idds.errors import NotFound
from idds.owners import OwnerState, lease_alive, owners
from idds.records.views import (
    AttemptRecord,
    Failure,
    OwnerRecord,
    Shown,
    TaskRecord,
    best_index,
    counts_for_best,
    shown,
)
from idds.tasks import IN_FLIGHT, AttemptKind, TaskState, attempts, reports, tasks

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

#: ``parent_id`` left out of :meth:`Reads.owners`: owners of any parent, or none.
ANY = object()


def _kinds(kind: str | Sequence[str]) -> list[str]:
    return [kind] if isinstance(kind, str) else list(kind)


class Reads:
    """The read side of :class:`~idds.records.Records`; every method reads in one transaction."""

    engine: Engine

    # --- owners ------------------------------------------------------------------------------

    def owners(
        self,
        kind: str | Sequence[str] | None = None,
        *,
        state: OwnerState | str | None = None,
        user: str | None = None,
        parent_id: int | None | object = ANY,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[OwnerRecord]:
        """Owners, oldest first, each with its tasks counted by state.

        Args:
            kind: only owners of this kind (or of these kinds).
            state: only owners in this state.
            user: only this user's.
            parent_id: only the parts of this owner (``None``: only owners that are not part
                of another).
            offset: skip this many.
            limit: at most this many.
        """
        o = owners.c
        query = sa.select(owners).order_by(o.id).offset(offset).limit(limit)
        if kind is not None:
            query = query.where(o.kind.in_(_kinds(kind)))
        if state is not None:
            query = query.where(o.state == state)
        if user is not None:
            query = query.where(o.user_name == user)
        if parent_id is not ANY:
            query = query.where(
                o.parent_id.is_(None) if parent_id is None else o.parent_id == parent_id
            )
        with reading(self.engine) as conn:
            rows = conn.execute(query).all()
            counts = _state_counts(conn, [r.id for r in rows])
        return [_owner(r, counts.get(r.id, {})) for r in rows]

    def owner(self, kind: str | Sequence[str], name: str) -> OwnerRecord:
        """The owner of that kind (or one of those kinds) and name.

        Raises:
            NotFound: there is none.
        """
        kinds = _kinds(kind)
        with reading(self.engine) as conn:
            row = conn.execute(
                sa.select(owners).where(owners.c.kind.in_(kinds), owners.c.name == name)
            ).first()
            if row is None:
                raise NotFound(f"no {' or '.join(kinds)} named {name!r}")
            counts = _state_counts(conn, [row.id])
        return _owner(row, counts.get(row.id, {}))

    def owner_by_id(self, owner_id: int) -> OwnerRecord:
        """The owner with that id.

        Raises:
            NotFound: there is none.
        """
        with reading(self.engine) as conn:
            row = conn.execute(sa.select(owners).where(owners.c.id == owner_id)).first()
            if row is None:
                raise NotFound(f"no owner with id {owner_id}")
            counts = _state_counts(conn, [row.id])
        return _owner(row, counts.get(row.id, {}))

    def kind_counts(self) -> dict[str, dict[str, int]]:
        """How many owners of each kind are in each state: ``{kind: {state: n}}``."""
        o = owners.c
        with reading(self.engine) as conn:
            rows = conn.execute(
                sa.select(o.kind, o.state, sa.func.count()).group_by(o.kind, o.state)
            ).all()
        out: dict[str, dict[str, int]] = {}
        for kind, state, n in rows:
            out.setdefault(kind, {})[state] = n
        return out

    def held(self, owner: OwnerRecord) -> bool:
        """Whether a live head holds ``owner`` now (its lease, by the database clock)."""
        return lease_alive(owner.lease_holder, owner.lease_expires, self.now())

    def now(self) -> float:
        """The database clock (seconds), the one clock all heads compare times on."""
        with reading(self.engine) as conn:
            return float(conn.execute(sa.select(db_now())).scalar_one())

    def shown(self, owners_: Sequence[OwnerRecord]) -> dict[int, Shown]:
        """What the lists show of each of ``owners_``, by id: an active owner whose head is
        gone and whose lease lapsed is ``stopped (no live head; resume it)``, its attempts in
        flight ``lost with their head`` (:func:`~idds.records.views.shown`, the one rule)."""
        now = self.now() if owners_ else 0.0
        return {o.id: shown(o, lease_alive(o.lease_holder, o.lease_expires, now)) for o in owners_}

    # --- tasks -------------------------------------------------------------------------------

    def tasks(
        self,
        owner_id: int,
        *,
        states: Sequence[TaskState | str] | None = None,
        numbers: Sequence[int] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[TaskRecord]:
        """An owner's tasks in number order (only those in ``states`` / with ``numbers``)."""
        t = tasks.c
        query = sa.select(tasks).where(t.owner_id == owner_id).order_by(t.number)
        if states is not None:
            query = query.where(t.state.in_(list(states)))
        if numbers is not None:
            query = query.where(t.number.in_(list(numbers)))
        with reading(self.engine) as conn:
            rows = conn.execute(query.offset(offset).limit(limit)).all()
        return [_task(r) for r in rows]

    def task(self, owner_id: int, number: int) -> TaskRecord:
        """One task of an owner.

        Raises:
            NotFound: the owner has no task of that number.
        """
        found = self.tasks(owner_id, numbers=[number])
        if not found:
            raise NotFound(f"owner {owner_id} has no task {number}")
        return found[0]

    def reports(self, owner_id: int) -> dict[int, dict[int, float]]:
        """Task number -> ``{step: value}`` reported by its last attempt that reported."""
        from idds.tasks import reports_of

        with reading(self.engine) as conn:
            return reports_of(conn, owner_id)

    def best(self, owners_: Sequence[OwnerRecord]) -> dict[int, TaskRecord]:
        """Each single-objective owner's best task (see
        :func:`~idds.records.views.counts_for_best`), by the direction its spec names."""
        single = {o.id: o.directions[0] for o in owners_ if len(o.directions) == 1}
        if not single:
            return {}
        with reading(self.engine) as conn:
            rows = conn.execute(
                sa.select(tasks)
                .where(tasks.c.owner_id.in_(list(single)), tasks.c.state == TaskState.SUCCEEDED)
                .order_by(tasks.c.owner_id, tasks.c.number)
            ).all()
        candidates: dict[int, list[Any]] = {}
        for r in rows:
            if counts_for_best(r.state, r.result):
                candidates.setdefault(r.owner_id, []).append(r)
        out = {}
        for owner_id, found in candidates.items():
            i = best_index([r.result["values"] for r in found], single[owner_id])
            if i is not None:
                out[owner_id] = _task(found[i])
        return out

    def failures(self, limit: int = 20) -> list[Failure]:
        """The last ``limit`` tasks that failed (all attempts spent), newest first."""
        o, t = owners.c, tasks.c
        with reading(self.engine) as conn:
            rows = conn.execute(
                sa.select(o.kind, o.name, o.user_name, t.number, t.finished, t.site, t.error)
                .join(owners, o.id == t.owner_id)
                .where(t.state == TaskState.FAILED)
                .order_by(t.finished.desc(), t.id.desc())
                .limit(limit)
            ).all()
        return [
            Failure(r.kind, r.name, r.number, r.finished, r.site, _last_line(r.error), r.user_name)
            for r in rows
        ]

    def tasks_by_site(self) -> dict[str, dict[str, int]]:
        """Tasks in flight now, per site and owner kind: ``{site: {kind: n}}``."""
        o, t = owners.c, tasks.c
        with reading(self.engine) as conn:
            rows = conn.execute(
                sa.select(t.site, o.kind, sa.func.count())
                .join(owners, o.id == t.owner_id)
                .where(t.state.in_(IN_FLIGHT))
                .group_by(t.site, o.kind)
            ).all()
        out: dict[str, dict[str, int]] = {}
        for site, kind, n in rows:
            out.setdefault(site or "(not placed yet)", {})[kind] = n
        return out

    def retries(self, owner_id: int) -> int:
        """How many attempts of an owner's tasks were beyond their first."""
        t = tasks.c
        with reading(self.engine) as conn:
            total = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(t.attempt - 1), 0)).where(
                    t.owner_id == owner_id, t.attempt > 0
                )
            ).scalar_one()
        return int(total)

    # --- attempts ----------------------------------------------------------------------------

    def attempts(
        self,
        *,
        owner_id: int | None = None,
        owner_kind: str | None = None,
        sites: Sequence[str] | None = None,
        started: bool | None = None,
        finished: bool | None = None,
        exclude_kinds: Sequence[AttemptKind] = (),
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[AttemptRecord]:
        """Attempts, in owner, task and attempt order (or newest finished first).

        Args:
            owner_id: only this owner's.
            owner_kind: only those of owners of this kind.
            sites: only those placed on these sites.
            started: only those that started (True) or did not (False).
            finished: only those that ended (True) or are in flight (False).
            exclude_kinds: leave out attempts that ended so.
            newest_first: order by the time they ended, newest first.
            limit: at most this many.
        """
        a, t, o = attempts.c, tasks.c, owners.c
        query = (
            sa.select(  # type: ignore[call-overload]
                a,
                t.owner_id,
                t.number.label("task_number"),
                t.resources,
            )
            .join(tasks, t.id == a.task_id)
            .join(owners, o.id == t.owner_id)
        )
        conditions = [
            (owner_id is not None, lambda: t.owner_id == owner_id),
            (owner_kind is not None, lambda: o.kind == owner_kind),
            (sites is not None, lambda: a.site.in_(list(sites or ()))),
            (
                started is not None,
                lambda: a.started.is_not(None) if started else a.started.is_(None),
            ),
            (
                finished is not None,
                lambda: a.finished.is_not(None) if finished else a.state.in_(IN_FLIGHT),
            ),
            (
                bool(exclude_kinds),
                lambda: sa.or_(a.kind.is_(None), a.kind.not_in(list(exclude_kinds))),
            ),
        ]
        for applies, condition in conditions:
            if applies:
                query = query.where(condition())
        if newest_first:
            query = query.order_by(a.finished.desc(), a.id.desc())
        else:
            query = query.order_by(t.owner_id, t.number, a.number)
        with reading(self.engine) as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [_attempt(r) for r in rows]

    def in_flight_by_site(self, sites: Sequence[str]) -> dict[str, int]:
        """How many attempts are in flight on each of ``sites`` (those with none are left out)."""
        a = attempts.c
        with reading(self.engine) as conn:
            rows = conn.execute(
                sa.select(a.site, sa.func.count())
                .where(a.state.in_(IN_FLIGHT), a.site.in_(list(sites)))
                .group_by(a.site)
            ).all()
        return {site: int(n) for site, n in rows}

    def known_tokens(self, tokens: Sequence[str]) -> set[str]:
        """Which of these attempt tokens are recorded."""
        if not tokens:
            return set()
        a = attempts.c
        with reading(self.engine) as conn:
            return set(conn.execute(sa.select(a.token).where(a.token.in_(list(tokens)))).scalars())

    # --- change stamps -----------------------------------------------------------------------

    def stamp(self, owner_id: int | None = None) -> tuple[Any, ...]:
        """A cheap fingerprint of what is recorded (of everything, or of one owner): it
        changes whenever an owner or a task is added or changes state, or a report arrives,
        so that a cache is refreshed only then."""
        o, t, r = owners.c, tasks.c, reports.c
        when = sa.func.coalesce(t.finished, t.started, t.dispatched, t.created)
        task_stamp = sa.select(sa.func.count(), sa.func.max(when), sa.func.sum(t.attempt))
        with reading(self.engine) as conn:
            if owner_id is None:
                own = conn.execute(
                    sa.select(sa.func.count(), sa.func.max(o.updated), sa.func.max(o.id))
                ).one()
                return (*own, *conn.execute(task_stamp).one())
            own = conn.execute(sa.select(o.id, o.state, o.updated).where(o.id == owner_id)).one()
            task_row = conn.execute(task_stamp.where(t.owner_id == owner_id)).one()
            n_reports = conn.execute(
                sa.select(sa.func.count())
                .select_from(reports.join(tasks, t.id == r.task_id))
                .where(t.owner_id == owner_id)
            ).scalar_one()
        return (*own, *task_row, n_reports)


def _state_counts(conn: Connection, owner_ids: list[int]) -> dict[int, dict[TaskState, int]]:
    if not owner_ids:
        return {}
    t = tasks.c
    out: dict[int, dict[TaskState, int]] = {}
    for owner_id, state, n in conn.execute(
        sa.select(t.owner_id, t.state, sa.func.count())
        .where(t.owner_id.in_(owner_ids))
        .group_by(t.owner_id, t.state)
    ):
        out.setdefault(owner_id, {})[TaskState(state)] = n
    return out


def _owner(row: Any, counts: dict[TaskState, int]) -> OwnerRecord:
    return OwnerRecord(
        id=row.id,
        kind=row.kind,
        name=row.name,
        state=OwnerState(row.state),
        spec=dict(row.spec or {}),
        user=row.user_name,
        parent_id=row.parent_id,
        created=row.created,
        updated=row.updated,
        lease_holder=row.lease_holder,
        lease_expires=row.lease_expires,
        tasks={s: counts.get(s, 0) for s in TaskState},
    )


def _task(row: Any) -> TaskRecord:
    return TaskRecord(
        id=row.id,
        owner_id=row.owner_id,
        number=row.number,
        kind=row.kind,
        state=TaskState(row.state),
        attempt=row.attempt,
        max_attempts=row.max_attempts,
        payload=row.payload,
        resources=row.resources or {},
        priority=row.priority,
        site=row.site,
        node=row.node,
        result=row.result,
        error=row.error,
        created=row.created,
        dispatched=row.dispatched,
        started=row.started,
        finished=row.finished,
    )


def _attempt(row: Any) -> AttemptRecord:
    return AttemptRecord(
        task_id=row.task_id,
        owner_id=row.owner_id,
        task_number=row.task_number,
        number=row.number,
        state=TaskState(row.state),
        kind=AttemptKind(row.kind) if row.kind else None,
        site=row.site,
        node=row.node,
        head=row.head,
        dispatched=row.dispatched,
        started=row.started,
        finished=row.finished,
        error=row.error,
        resources=row.resources or {},
    )


def _last_line(error: str | None) -> str:
    lines = [line for line in (error or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
