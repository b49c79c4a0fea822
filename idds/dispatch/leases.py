"""Owner leases: one head runs an owner at a time, for as long as it renews the lease.

A head takes an owner's lease (:func:`hold`) before it runs it, renews it every third of its
length while it runs (:class:`Leases`), and gives it up at the end (:func:`release`). Another
head takes an owner over once its lease has run out, and queues again what the previous
head left in flight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from idds import owners as owners_mod
from idds import tasks as tq
from idds.dispatch.outage import connection_lost
from idds.errors import IddsError
from idds.owners import OwnerState

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Connection, Engine


def hold(engine: Engine, owner_id: int, head: str, lease_seconds: float) -> bool:
    """Take an owner's lease; queue again the attempts a previous head left in flight.

    Returns:
        False when another live head holds it.
    """
    with engine.begin() as conn:
        if not owners_mod.acquire(conn, owner_id, head, lease_seconds):
            return False
        tq.requeue_in_flight(conn, owner_id, f"lost: head gone, taken over by {head}")
    return True


def hold_waiting(engine: Engine, owner_id: int, head: str, lease_seconds: float, what: str) -> None:
    """:func:`hold`, waiting out a lease that a head which stopped may still hold.

    Raises:
        IddsError: a live head still holds it after a lease's length (``what`` names it).
    """
    from idds.runtime import ensure_ray

    ensure_ray()  # joining (or starting) Ray may take longer than a lease: do it first
    deadline = time.monotonic() + lease_seconds + 2
    while not hold(engine, owner_id, head, lease_seconds):
        if time.monotonic() > deadline:
            raise IddsError(f"{what} is being run by another live head")
        time.sleep(0.5)


def release(engine: Engine, owner_id: int, head: str) -> None:
    """Give an owner's lease up (where the database is away, the lease simply runs out)."""
    try:
        with engine.begin() as conn:
            owners_mod.release(conn, owner_id, head)
    except sa.exc.DBAPIError as exc:
        if not connection_lost(exc, engine.dialect.name):
            raise


@dataclass(frozen=True)
class Notice:
    """What a renewal found out about an owner that another process changed.

    Attributes:
        owner_id: the owner.
        cancelled: it was cancelled; otherwise its stored spec changed (``spec``).
        spec: its stored spec now.
    """

    owner_id: int
    cancelled: bool
    spec: dict[str, Any]


@dataclass(frozen=True)
class Renewal:
    """The outcome of renewing the leases: the owners still held that another process
    changed (in the order read), and the owners another head holds now."""

    notices: list[Notice]
    lost: set[int]


class Leases:
    """The renewal of the leases a head holds while it runs their owners.

    Args:
        engine: the database.
        head: this head's name.
        lease_seconds: lease length; leases are renewed every third of it (2 s at most).
    """

    def __init__(self, engine: Engine, head: str, lease_seconds: float) -> None:
        self.engine = engine
        self.head = head
        self.lease_seconds = lease_seconds
        self.period = min(lease_seconds / 3, 2.0)
        self._next = 0.0
        self._seen: dict[int, float] = {}  # owner -> the `updated` time last seen

    def start(self, owner_ids: Iterable[int]) -> None:
        """Note the owners' stored specs as seen; the next renewal is due at once (the
        leases were taken a while ago)."""
        with self.engine.begin() as conn:
            self._seen = {r.id: r.updated or 0.0 for r in _owner_rows(conn, set(owner_ids))}
        self._next = time.monotonic()

    def due(self) -> bool:
        """True when the leases should be renewed now."""
        return time.monotonic() >= self._next

    def renew(self, owner_ids: list[int]) -> Renewal:
        """Extend the leases of ``owner_ids``; notice owners cancelled or changed from
        another process, and those another head holds now."""
        with self.engine.begin() as conn:
            held = owners_mod.renew(conn, owner_ids, self.head, self.lease_seconds)
            changed = [r for r in _owner_rows(conn, held) if self._changed(r)]
            specs = _owner_specs(conn, {r.id for r in changed})
        self._next = time.monotonic() + self.period
        notices = []
        for row in changed:
            notices.append(Notice(row.id, row.state == OwnerState.CANCELLED, specs[row.id]))
            self._seen[row.id] = row.updated or 0.0
        return Renewal(notices, set(owner_ids) - held)

    def _changed(self, row: Any) -> bool:
        """Cancelled, or its spec changed since it was last seen."""
        return row.state == OwnerState.CANCELLED or (row.updated or 0.0) > self._seen.get(
            row.id, 0.0
        )


def _owner_rows(conn: Connection, held: set[int]) -> list[Any]:
    """State and change stamp only: a spec (a workflow's holds every node) is read only
    where it changed, so a renewal costs the same however big the owners are."""
    if not held:
        return []
    o = owners_mod.owners
    return list(conn.execute(sa.select(o.c.id, o.c.state, o.c.updated).where(o.c.id.in_(held))))


def _owner_specs(conn: Connection, ids: set[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    o = owners_mod.owners
    return {r.id: r.spec for r in conn.execute(sa.select(o.c.id, o.c.spec).where(o.c.id.in_(ids)))}
