"""Read helpers: what the pages show, read through the core's tables and hpo's public API.

Nothing here writes. Every function takes an engine (``idds.connect``) so that the pages can
cache one per database URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from hpo.study import GROUP_KIND, KIND
from idds import owners as owners_mod
from idds import tasks as tq
from idds.db import reading
from idds.errors import NotFound
from idds.tasks import TaskState

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: Owner kinds shown as studies: a study, and a segmented study (a group of studies).
STUDY_KINDS = (KIND, GROUP_KIND)


@dataclass(frozen=True)
class StudyRow:
    """One line of the studies list."""

    name: str
    kind: str
    state: str
    proposer: str | None
    directions: tuple[str, ...]
    done: int
    max_points: int | None
    running: int
    failed: int
    best: float | None
    created: float
    user: str | None = None


@dataclass(frozen=True)
class Failure:
    """A task that failed: whose it is, which one, when and why (the error's last line)."""

    kind: str
    owner: str
    number: int
    finished: float | None
    site: str | None
    reason: str


def _directions(spec: dict[str, Any]) -> tuple[str, ...]:
    direction = spec.get("direction", "minimize")
    return (direction,) if isinstance(direction, str) else tuple(direction)


def list_studies(engine: Engine) -> list[StudyRow]:
    """Every study (segments included, groups too), oldest first, with progress and best.

    Args:
        engine: the database.

    Returns:
        One :class:`StudyRow` per study.
    """
    o, t = owners_mod.owners, tq.tasks
    with reading(engine) as conn:
        rows = conn.execute(sa.select(o).where(o.c.kind.in_(STUDY_KINDS)).order_by(o.c.id)).all()
        counts = _state_counts(conn, [r.id for r in rows])
        results = conn.execute(
            sa.select(t.c.owner_id, t.c.result).where(
                t.c.owner_id.in_([r.id for r in rows]), t.c.state == TaskState.SUCCEEDED
            )
        ).all()
    bests = _bests(rows, results)
    return [_study_row(r, counts.get(r.id, {}), bests.get(r.id)) for r in rows]


def _state_counts(conn: sa.Connection, owner_ids: list[int]) -> dict[int, dict[str, int]]:
    t = tq.tasks
    out: dict[int, dict[str, int]] = {}
    for owner_id, state, n in conn.execute(
        sa.select(t.c.owner_id, t.c.state, sa.func.count())
        .where(t.c.owner_id.in_(owner_ids))
        .group_by(t.c.owner_id, t.c.state)
    ):
        out.setdefault(owner_id, {})[state] = n
    return out


def _bests(rows: list[Any], results: list[Any]) -> dict[int, float]:
    """The best feasible, not pruned value of each single-objective study."""
    pick = {r.id: (max if _directions(r.spec) == ("maximize",) else min) for r in rows}
    single = {r.id for r in rows if len(_directions(r.spec)) == 1}
    best: dict[int, float] = {}
    for owner_id, result in results:
        if owner_id not in single or not result or result.get("pruned"):
            continue
        if any(c > 0 for c in result.get("constraints") or ()):
            continue
        value = result["values"][0]
        best[owner_id] = pick[owner_id](best.get(owner_id, value), value)
    return best


def _study_row(row: Any, counts: dict[str, int], best: float | None) -> StudyRow:
    return StudyRow(
        name=row.name,
        kind=row.kind,
        state=row.state,
        proposer=row.spec.get("proposer"),
        directions=_directions(row.spec),
        done=counts.get(TaskState.SUCCEEDED, 0) + counts.get(TaskState.FAILED, 0),
        max_points=row.spec.get("max_points"),
        running=counts.get(TaskState.DISPATCHED, 0) + counts.get(TaskState.RUNNING, 0),
        failed=counts.get(TaskState.FAILED, 0),
        best=best,
        created=row.created,
        user=row.user_name,
    )


def database_version(engine: Engine) -> tuple[Any, ...]:
    """A cheap fingerprint of everything recorded: it changes whenever an owner or a task is
    added or changes, so that lists are read again only then."""
    o, t = owners_mod.owners, tq.tasks
    stamp = sa.func.coalesce(t.c.finished, t.c.started, t.c.dispatched, t.c.created)
    with reading(engine) as conn:
        owners_row = conn.execute(
            sa.select(sa.func.count(), sa.func.max(o.c.updated), sa.func.max(o.c.id))
        ).one()
        tasks_row = conn.execute(
            sa.select(sa.func.count(), sa.func.max(stamp), sa.func.sum(t.c.attempt))
        ).one()
    return (*owners_row, *tasks_row)


def owner_counts(engine: Engine) -> dict[str, dict[str, int]]:
    """How many owners (studies, scans, workflows, carousels ...) of each kind are in each
    state: ``{kind: {state: n}}``."""
    o = owners_mod.owners
    with reading(engine) as conn:
        rows = conn.execute(
            sa.select(o.c.kind, o.c.state, sa.func.count()).group_by(o.c.kind, o.c.state)
        ).all()
    out: dict[str, dict[str, int]] = {}
    for kind, state, n in rows:
        out.setdefault(kind, {})[state] = n
    return out


def tasks_by_site(engine: Engine) -> dict[str, dict[str, int]]:
    """Tasks dispatched or running now, per site and owner kind: ``{site: {kind: n}}``."""
    o, t = owners_mod.owners, tq.tasks
    with reading(engine) as conn:
        rows = conn.execute(
            sa.select(t.c.site, o.c.kind, sa.func.count())
            .join(o, o.c.id == t.c.owner_id)
            .where(t.c.state.in_(tq.IN_FLIGHT))
            .group_by(t.c.site, o.c.kind)
        ).all()
    out: dict[str, dict[str, int]] = {}
    for site, kind, n in rows:
        out.setdefault(site or "(not placed yet)", {})[kind] = n
    return out


def recent_failures(engine: Engine, limit: int = 20) -> list[Failure]:
    """The last ``limit`` tasks that failed (all attempts spent), newest first."""
    o, t = owners_mod.owners, tq.tasks
    with reading(engine) as conn:
        rows = conn.execute(
            sa.select(o.c.kind, o.c.name, t.c.number, t.c.finished, t.c.site, t.c.error)
            .join(o, o.c.id == t.c.owner_id)
            .where(t.c.state == TaskState.FAILED)
            .order_by(t.c.finished.desc(), t.c.id.desc())
            .limit(limit)
        ).all()
    return [
        Failure(r.kind, r.name, r.number, r.finished, r.site, _last_line(r.error)) for r in rows
    ]


def _last_line(error: str | None) -> str:
    lines = [line for line in (error or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def study_version(engine: Engine, name: str) -> tuple[Any, ...]:
    """A cheap fingerprint of a study's recorded state: it changes whenever a trial is added,
    changes state or reports a value, so that pages recompute only then.

    Raises:
        NotFound: no study of that name.
    """
    return owner_version(engine, STUDY_KINDS, name)


def owner_version(engine: Engine, kinds: tuple[str, ...], name: str) -> tuple[Any, ...]:
    """A cheap fingerprint of an owner's recorded state (a study, a scan, a workflow ...):
    its state, its tasks' count and latest times, their attempts and progress reports.

    Args:
        engine: the database.
        kinds: the owner kinds the name may have.
        name: the owner's name.

    Raises:
        NotFound: no owner of those kinds and that name.
    """
    o, t, r = owners_mod.owners, tq.tasks, tq.reports
    with reading(engine) as conn:
        owner = conn.execute(
            sa.select(o.c.id, o.c.state, o.c.updated).where(o.c.name == name, o.c.kind.in_(kinds))
        ).first()
        if owner is None:
            raise NotFound(f"no {' or '.join(kinds)} named {name!r}")
        stamp = sa.func.coalesce(t.c.finished, t.c.started, t.c.dispatched, t.c.created)
        tasks_row = conn.execute(
            sa.select(sa.func.count(), sa.func.max(stamp), sa.func.sum(t.c.attempt)).where(
                t.c.owner_id == owner.id
            )
        ).one()
        reports_n = conn.execute(
            sa.select(sa.func.count())
            .select_from(r.join(t, t.c.id == r.c.task_id))
            .where(t.c.owner_id == owner.id)
        ).scalar_one()
    return (owner.id, owner.state, owner.updated, *tasks_row, reports_n)


@dataclass(frozen=True)
class OwnerRow:
    """An owner of some kind (a toy scan, a carousel ...) as recorded, with its tasks by state."""

    name: str
    state: str
    spec: dict[str, Any]
    tasks: dict[str, int]
    created: float
    user: str | None = None


def owners_of(engine: Engine, kind: str) -> list[OwnerRow]:
    """Every owner of ``kind``, oldest first, with its tasks counted by state."""
    o = owners_mod.owners
    with reading(engine) as conn:
        rows = conn.execute(sa.select(o).where(o.c.kind == kind).order_by(o.c.id)).all()
        counts = _state_counts(conn, [r.id for r in rows])
    return [
        OwnerRow(r.name, r.state, dict(r.spec), counts.get(r.id, {}), r.created, r.user_name)
        for r in rows
    ]


@dataclass(frozen=True)
class TaskRow:
    """One task of an owner as the core records it."""

    number: int
    state: str
    attempt: int
    payload: dict[str, Any]
    created: float
    started: float | None
    finished: float | None


def tasks_of(engine: Engine, kind: str, name: str) -> list[TaskRow]:
    """The tasks of the owner ``name`` of ``kind``, in number order.

    Raises:
        NotFound: no such owner.
    """
    t = tq.tasks
    with reading(engine) as conn:
        owner = owners_mod.find(conn, kind, name)
        rows = conn.execute(
            sa.select(t.c.number, t.c.state, t.c.attempt, t.c.payload, t.c.created,
                      t.c.started, t.c.finished)
            .where(t.c.owner_id == owner.id)
            .order_by(t.c.number)
        ).all()  # fmt: skip
    return [TaskRow(*r) for r in rows]
