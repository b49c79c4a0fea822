"""Owners (a study, a workflow, a carousel) and the leases through which one head holds each.

A head holds an owner while its lease row names the head and has not expired by the database
clock. Another head may take an owner over once the lease has expired, or at once when the
holder is a process on this host that no longer exists (a head killed with ``kill -9``).
"""

from __future__ import annotations

import enum
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from idds.db import Base, db_now
from idds.errors import IllegalTransition, NotFound


class OwnerState(enum.StrEnum):
    ACTIVE = "active"
    FINISHED = "finished"
    FAILED = "failed"  # finished, with work that did not succeed (a workflow's failed node)
    SUSPENDED = "suspended"  # releases no new work until resumed
    CANCELLED = "cancelled"


#: The legal owner-state changes; :func:`set_state` applies only these (or none at all, where
#: the owner is in that state already).
OWNER_TRANSITIONS: dict[OwnerState, frozenset[OwnerState]] = {
    OwnerState.ACTIVE: frozenset(
        {OwnerState.FINISHED, OwnerState.FAILED, OwnerState.SUSPENDED, OwnerState.CANCELLED}
    ),
    OwnerState.SUSPENDED: frozenset({OwnerState.ACTIVE, OwnerState.CANCELLED}),
    # more work arrives (points enqueued, nodes retried) or the owner is cancelled
    OwnerState.FINISHED: frozenset({OwnerState.ACTIVE, OwnerState.CANCELLED}),
    OwnerState.FAILED: frozenset({OwnerState.ACTIVE, OwnerState.CANCELLED}),
    OwnerState.CANCELLED: frozenset(),
}


class Owner(Base):
    __tablename__ = "owners"
    __table_args__ = (
        sa.UniqueConstraint("kind", "name"),
        sa.Index("ix_owners_parent", "parent_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    name: Mapped[str] = mapped_column(sa.String(200))
    #: The owner this one is part of (a segmented study's segment, a workflow's study node).
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("owners.id", ondelete="CASCADE", name="fk_owners_parent")
    )
    state: Mapped[str] = mapped_column(sa.String(16), default=OwnerState.ACTIVE)
    spec: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    user_name: Mapped[str | None] = mapped_column(sa.String(64))  # who created it
    lease_holder: Mapped[str | None] = mapped_column(sa.String(128))
    lease_expires: Mapped[float | None]
    created: Mapped[float] = mapped_column(server_default=db_now())
    updated: Mapped[float | None]


class User(Base):
    """A user who acts with a token (see :mod:`idds.auth`); only the token's hash is kept."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    admin: Mapped[bool] = mapped_column(default=False)
    created: Mapped[float | None]


owners: sa.Table = Owner.__table__  # type: ignore[assignment]
users: sa.Table = User.__table__  # type: ignore[assignment]


def new_head_id() -> str:
    """A name for this head: host, process id and a random part (unique per process start)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def create(
    conn: Connection,
    kind: str,
    name: str,
    spec: dict[str, Any],
    *,
    user: str | None = None,
    parent_id: int | None = None,
) -> int:
    """Insert an owner, created by ``user`` (part of ``parent_id``); returns its id. A name
    already used raises IntegrityError."""
    stmt = sa.insert(owners).values(
        kind=kind, name=name, spec=spec, state=OwnerState.ACTIVE, user_name=user,
        parent_id=parent_id,
    )  # fmt: skip
    return int(conn.execute(stmt).inserted_primary_key[0])  # type: ignore[index]


def find(conn: Connection, kind: str, name: str) -> sa.Row[Any]:
    """The owner row of that kind and name.

    Raises:
        NotFound: there is none.
    """
    row = conn.execute(
        sa.select(owners).where(owners.c.kind == kind, owners.c.name == name)
    ).first()
    if row is None:
        raise NotFound(f"no {kind} named {name!r}")
    return row


def acquire(conn: Connection, owner_id: int, head: str, seconds: float) -> bool:
    """Take or renew the lease of an owner; False if another live head holds it."""
    free = sa.or_(
        owners.c.lease_holder.is_(None),
        owners.c.lease_holder == head,
        owners.c.lease_expires < db_now(),
    )
    holder = conn.execute(
        sa.select(owners.c.lease_holder).where(owners.c.id == owner_id)
    ).scalar_one_or_none()
    if holder and holder != head and holder_is_dead(holder):
        free = sa.or_(free, owners.c.lease_holder == holder)
    stmt = (
        sa.update(owners)
        .where(owners.c.id == owner_id, free)
        .values(lease_holder=head, lease_expires=db_now() + seconds, updated=db_now())
    )
    return conn.execute(stmt).rowcount == 1


def renew(conn: Connection, owner_ids: list[int], head: str, seconds: float) -> set[int]:
    """Extend the leases this head still holds; returns the ids it holds."""
    if not owner_ids:
        return set()
    stmt = (
        sa.update(owners)
        .where(owners.c.id.in_(owner_ids), owners.c.lease_holder == head)
        .values(lease_expires=db_now() + seconds)
        .returning(owners.c.id)
    )
    return {i for (i,) in conn.execute(stmt).all()}


def release(conn: Connection, owner_id: int, head: str) -> None:
    """Give a lease up (the owner may be taken at once by another head)."""
    conn.execute(
        sa.update(owners)
        .where(owners.c.id == owner_id, owners.c.lease_holder == head)
        .values(lease_holder=None, lease_expires=None)
    )


def update_spec(
    conn: Connection, owner_id: int, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """Read-modify-write an owner's spec under a row lock; a head holding it sees the change.

    Returns:
        The new spec.
    """
    spec = conn.execute(
        sa.select(owners.c.spec).where(owners.c.id == owner_id).with_for_update()
    ).scalar_one()
    new = change(dict(spec))
    conn.execute(
        sa.update(owners).where(owners.c.id == owner_id).values(spec=new, updated=db_now())
    )
    return new


def set_state(conn: Connection, owner_id: int, state: OwnerState) -> bool:
    """Move an owner to ``state`` in one update guarded by the states it may come from.

    Returns:
        True if this call changed the state; False if the owner was in ``state`` already.

    Raises:
        IllegalTransition: the owner is in a state that cannot go to ``state``.
        NotFound: there is no such owner.
    """
    sources = [old for old, news in OWNER_TRANSITIONS.items() if state in news]
    changed = conn.execute(
        sa.update(owners)
        .where(owners.c.id == owner_id, owners.c.state.in_(sources))
        .values(state=state, updated=db_now())
    ).rowcount
    if changed:
        return True
    now = conn.execute(sa.select(owners.c.state).where(owners.c.id == owner_id)).scalar()
    if now is None:
        raise NotFound(f"no owner with id {owner_id}")
    if now != state:
        raise IllegalTransition(f"owner {owner_id}: {now} -> {state} is not allowed")
    return False


def lease_alive(holder: str | None, expires: float | None, now: float) -> bool:
    """Whether a lease (its holder and expiry, by the database clock ``now``) still holds."""
    if not holder or expires is None or expires < now:
        return False
    return not holder_is_dead(holder)


def holder_is_dead(holder: str) -> bool:
    """True when ``holder`` names a process on this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
