"""Wall time and GPU-hours, from the attempts the core records (site, started, finished)
and each task's resources, rolled up per task, per owner (study, workflow ...) and per site.

Every attempt counts, failed ones too: the GPUs were held while it ran. An attempt still
running counts up to now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from idds import owners as owners_mod
from idds import tasks as tq
from idds.db import db_now

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class Usage:
    """What one attempt used.

    Attributes:
        owner: ``kind/name`` of the task's owner (``study/mnist`` ...).
        task: the task's number within its owner.
        attempt: the attempt's number.
        site: where it ran.
        state: the attempt's state.
        wall_s: seconds it ran.
        gpus: GPUs it held.
    """

    owner: str
    task: int
    attempt: int
    site: str | None
    state: str
    wall_s: float
    gpus: float

    @property
    def gpu_hours(self) -> float:
        return self.wall_s * self.gpus / 3600.0


@dataclass(frozen=True)
class Rollup:
    """Totals over a group of attempts (an owner, a site, a task)."""

    key: str
    attempts: int
    failed: int
    wall_s: float
    gpu_hours: float


def usage(conn: Connection, *, owner_kind: str | None = None) -> list[Usage]:
    """Every started attempt's use (of owners of ``owner_kind`` only, where given)."""
    a, t, o = tq.attempts, tq.tasks, owners_mod.owners
    end = sa.func.coalesce(a.c.finished, db_now())
    query = (
        sa.select(
            o.c.kind,
            o.c.name,
            t.c.number,
            a.c.number.label("attempt"),
            a.c.site,
            a.c.state,
            (end - a.c.started).label("wall"),
            t.c.resources,
        )  # fmt: skip
        .join(t, t.c.id == a.c.task_id)
        .join(o, o.c.id == t.c.owner_id)
        .where(a.c.started.is_not(None))
        .order_by(o.c.id, t.c.number, a.c.number)
    )
    if owner_kind:
        query = query.where(o.c.kind == owner_kind)
    return [
        Usage(
            owner=f"{r.kind}/{r.name}",
            task=r.number,
            attempt=r.attempt,
            site=r.site,
            state=r.state,
            wall_s=max(float(r.wall or 0.0), 0.0),
            gpus=float((r.resources or {}).get("gpus", 0.0)),
        )  # fmt: skip
        for r in conn.execute(query)
    ]


def rollup(rows: list[Usage], by: str) -> list[Rollup]:
    """Totals per ``owner``, ``site`` or ``task`` (``owner#number``), sorted by key."""
    groups: dict[str, list[Usage]] = {}
    for row in rows:
        key = {"owner": row.owner, "site": row.site or "-", "task": f"{row.owner}#{row.task}"}[by]
        groups.setdefault(key, []).append(row)
    return [
        Rollup(
            key=key,
            attempts=len(group),
            failed=sum(1 for r in group if r.state == "failed"),
            wall_s=sum(r.wall_s for r in group),
            gpu_hours=sum(r.gpu_hours for r in group),
        )
        for key, group in sorted(groups.items())
    ]
