"""Wall time and GPU-hours, from the attempts the core records (site, started, finished)
and each task's resources, rolled up per task, per owner (study, workflow ...) and per site.

Every attempt counts, failed ones too: the GPUs were held while it ran. An attempt still
running counts up to now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from idds.records import Records


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


def usage(records: Records, *, owner_kind: str | None = None) -> list[Usage]:
    """Every started attempt's use (of owners of ``owner_kind`` only, where given), in owner,
    task and attempt order."""
    now = records.now()
    attempts = records.attempts(started=True, owner_kind=owner_kind)
    names = {o.id: f"{o.kind}/{o.name}" for o in records.owners(owner_kind)}
    return [
        Usage(
            owner=names[a.owner_id],
            task=a.task_number,
            attempt=a.number,
            site=a.site,
            state=str(a.state),
            wall_s=max((a.finished if a.finished is not None else now) - (a.started or now), 0.0),
            gpus=float(a.resources.get("gpus", 0.0)),
        )
        for a in attempts
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
