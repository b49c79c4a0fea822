"""The sites' rows in the database: one owner row of kind ``site`` per site, whose state
says whether it is drained (``suspended``) or takes work (``active``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from idds import owners as owners_mod
from idds.owners import OwnerState

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

KIND = "site"


def drained_sites(conn: Connection) -> set[str]:
    """The names of the drained sites."""
    o = owners_mod.owners
    rows = conn.execute(
        sa.select(o.c.name).where(o.c.kind == KIND, o.c.state == OwnerState.SUSPENDED)
    )
    return {name for (name,) in rows}


def set_drained(engine: Engine, name: str, drained: bool) -> None:
    """Mark a site drained (no new work; its pilots stop) or active again."""
    state = OwnerState.SUSPENDED if drained else OwnerState.ACTIVE
    with engine.begin() as conn:
        o = owners_mod.owners
        found = conn.execute(sa.select(o.c.id).where(o.c.kind == KIND, o.c.name == name)).first()
        owner_id = found.id if found else owners_mod.create(conn, KIND, name, {})
        owners_mod.set_state(conn, owner_id, state)
