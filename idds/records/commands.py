"""The commands on the core's records: create owners, change their state and spec, hand in,
cancel and queue tasks again, record work that ran elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from idds import owners as owners_mod
from idds import tasks as tq
from idds.errors import Exists
from idds.owners import OwnerState
from idds.tasks import TaskSpec, TaskState

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass(frozen=True, kw_only=True)
class NewOwner:
    """An owner to create: its kind, name and spec, and its parts (created with it)."""

    kind: str
    name: str
    spec: dict[str, Any]
    parts: list[NewOwner] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Imported:
    """A task that ran elsewhere, to record as final (an import from another storage)."""

    spec: TaskSpec
    state: TaskState
    result: Any = None
    error: str | None = None
    site: str | None = None
    reports: dict[int, float] = field(default_factory=dict)


class Commands:
    """The write side of :class:`~idds.records.Records`; each command is one transaction."""

    engine: Engine

    def create(self, new: NewOwner, *, user: str | None, parent_id: int | None = None) -> int:
        """Record an owner and its parts (each part's parent is the owner), in one
        transaction; returns the owner's id.

        A name ``P.X`` where an owner ``P`` exists is kept for ``P``'s parts (a workflow's
        study nodes, a segmented study's segments): only they may take it, so that nobody
        takes a name a workflow will use before it does.

        Raises:
            Exists: an owner of that kind and name (or one of its parts') exists already
                (the message names its user), or the name is kept for another owner's parts.
        """
        try:
            with self.engine.begin() as conn:
                _check_free(conn, new, parent_id)
                return _create(conn, new, user, parent_id)
        except sa.exc.IntegrityError:
            with self.engine.connect() as conn:
                found = conn.execute(
                    sa.select(owners_mod.owners.c.user_name).where(
                        owners_mod.owners.c.kind == new.kind, owners_mod.owners.c.name == new.name
                    )
                ).first()
            whose = f" (user {found.user_name!r}'s)" if found and found.user_name else ""
            raise Exists(f"a {new.kind} named {new.name!r} exists already{whose}") from None

    def set_state(self, owner_id: int, state: OwnerState) -> bool:
        """Move an owner to ``state`` (a guarded update; see ``OWNER_TRANSITIONS``).

        Returns:
            False if it was in that state already.

        Raises:
            IllegalTransition: its state cannot go to ``state``.
        """
        with self.engine.begin() as conn:
            return owners_mod.set_state(conn, owner_id, state)

    def update_spec(
        self,
        owner_id: int,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        state: OwnerState | None = None,
    ) -> dict[str, Any]:
        """Change an owner's spec (read-modify-write under a row lock; a head holding it sees
        the change), and its state with it where given. Returns the new spec."""
        with self.engine.begin() as conn:
            spec = owners_mod.update_spec(conn, owner_id, change)
            if state is not None:
                owners_mod.set_state(conn, owner_id, state)
        return spec

    def cancel(self, owner_id: int, reason: str) -> int:
        """Cancel an owner and every task of it not final yet; returns the tasks cancelled."""
        with self.engine.begin() as conn:
            owners_mod.set_state(conn, owner_id, OwnerState.CANCELLED)
            return tq.cancel_owner_tasks(conn, owner_id, reason)

    def submit(self, owner_id: int, specs: Sequence[TaskSpec]) -> None:
        """Hand tasks in, in bulk."""
        with self.engine.begin() as conn:
            tq.submit(conn, owner_id, specs)

    def resubmit(
        self, owner_id: int, numbers: Sequence[int], *, continue_attempts: bool = False
    ) -> list[int]:
        """Queue tasks again as new tasks (same payload and resources, new numbers after the
        owner's last); returns the new numbers, in the order of ``numbers``.

        With ``continue_attempts``, a new task's attempts are numbered on from its old task's
        last (each gets as many as its old task had), so that attempt numbers, and the log
        files named after them, are never used twice."""
        t = tq.tasks.c
        with self.engine.begin() as conn:
            last = conn.execute(
                sa.select(sa.func.max(t.number)).where(t.owner_id == owner_id)
            ).scalar()
            rows = {
                r.number: r
                for r in conn.execute(
                    sa.select(tq.tasks).where(t.owner_id == owner_id, t.number.in_(list(numbers)))
                )
            }
            specs = [
                TaskSpec(
                    number=new, kind=rows[old].kind, payload=rows[old].payload,
                    resources=rows[old].resources, site=rows[old].site,
                    max_attempts=rows[old].max_attempts, timeout_s=rows[old].timeout_s,
                )
                for new, old in enumerate(numbers, start=(last or 0) + 1)
            ]  # fmt: skip
            tq.submit(conn, owner_id, specs)
            if continue_attempts:
                _continue_attempts(
                    conn, owner_id, {s.number: rows[o] for s, o in zip(specs, numbers, strict=True)}
                )
        return [s.number for s in specs]

    def record_imported(self, owner_id: int, done: Sequence[Imported]) -> None:
        """Record tasks that ran elsewhere, final already, each with its one attempt and its
        progress reports, in one transaction."""
        with self.engine.begin() as conn:
            report_rows = []
            for item in done:
                task_id = tq.record_finished(
                    conn, owner_id, item.spec, item.state,
                    result=item.result, error=item.error, site=item.site,
                )  # fmt: skip
                report_rows += [
                    {"task_id": task_id, "attempt": 1, "step": step, "value": value}
                    for step, value in item.reports.items()
                ]
            if report_rows:
                conn.execute(sa.insert(tq.reports), report_rows)

    def ensure(self, kind: str, name: str, state: OwnerState) -> int:
        """The id of the owner of that kind and name, created (with an empty spec) if there is
        none, after moving it to ``state``."""
        o = owners_mod.owners.c
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(o.id).where(o.kind == kind, o.name == name)).first()
            owner_id = found.id if found else owners_mod.create(conn, kind, name, {})
            owners_mod.set_state(conn, owner_id, state)
        return int(owner_id)


def _continue_attempts(conn: sa.Connection, owner_id: int, old_of: dict[int, Any]) -> None:
    """Start each new task's attempts after its old task's last."""
    a, t = tq.attempts.c, tq.tasks.c
    ids = [row.id for row in old_of.values()]
    first = dict(
        conn.execute(
            sa.select(a.task_id, sa.func.min(a.number))
            .where(a.task_id.in_(ids))
            .group_by(a.task_id)
        ).all()
    )
    for new, old in old_of.items():
        allowed = old.max_attempts - (first.get(old.id, old.attempt + 1) - 1)  # in its round
        conn.execute(
            sa.update(tq.tasks)
            .where(t.owner_id == owner_id, t.number == new)
            .values(attempt=old.attempt, max_attempts=old.attempt + max(allowed, 1))
        )


def _check_free(conn: sa.Connection, new: NewOwner, parent_id: int | None) -> None:
    """Refuse a name kept for another owner's parts, or a new owner whose parts' names
    others took (see :meth:`Commands.create`)."""
    o = owners_mod.owners.c
    prefixes = [new.name[:i] for i, c in enumerate(new.name) if c == "." and i]
    if prefixes:
        found = conn.execute(
            sa.select(o.id, o.kind, o.name, o.user_name).where(o.name.in_(prefixes))
        ).first()
        if found is not None and found.id != parent_id:
            raise Exists(
                f"the name {new.name!r} is kept for the parts of {found.kind} {found.name!r} "
                f"(user {found.user_name!r}'s): choose a name without its prefix"
            )
    if parent_id is None:
        prefix = new.name + "."
        taken = conn.execute(
            sa.select(o.kind, o.name, o.user_name)
            .where(sa.func.substr(o.name, 1, len(prefix)) == prefix, o.parent_id.is_(None))
            .limit(1)
        ).first()
        if taken is not None:
            raise Exists(
                f"{taken.kind} {taken.name!r} (user {taken.user_name!r}'s) is named like a part "
                f"of {new.name!r}: choose another name"
            )


def _create(conn: sa.Connection, new: NewOwner, user: str | None, parent_id: int | None) -> int:
    owner_id = owners_mod.create(conn, new.kind, new.name, new.spec, user=user, parent_id=parent_id)
    for part in new.parts:
        _create(conn, part, user, owner_id)
    return owner_id
