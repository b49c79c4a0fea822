"""Read helpers: what the pages show, read through the records API (:mod:`idds.records`).

Nothing here writes. Every function takes the records to read (:func:`dashboard._common.records`):
the database's (embedded mode), or those of an ``idds serve`` HTTP API read with the visitor's
token (:class:`idds.client.RemoteRecords`, service mode), so the pages never open a database
in service mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.study import GROUP_KIND, KIND
from idds.records import Failure, OwnerRecord, Records, TaskRecord

if TYPE_CHECKING:
    from idds.records.views import Shown

#: Owner kinds shown as studies: a study, and a segmented study (a group of studies).
STUDY_KINDS = (KIND, GROUP_KIND)

__all__ = [
    "STUDY_KINDS",
    "Failure",
    "OwnerRecord",
    "StudyRow",
    "TaskRecord",
    "database_version",
    "last_line",
    "list_studies",
    "owner_counts",
    "owner_version",
    "owners_of",
    "recent_failures",
    "shown_owner",
    "shown_states",
    "study_version",
    "tasks_by_site",
    "tasks_of",
]


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
    lost: int = 0


def list_studies(records: Records) -> list[StudyRow]:
    """Every study (segments included, groups too), oldest first, with progress and best
    (by the one rule: succeeded, feasible, not pruned; see :meth:`Records.best`).

    Args:
        records: the records read.

    Returns:
        One :class:`StudyRow` per study.
    """
    studies = records.owners(STUDY_KINDS)
    bests = records.best(studies)
    shown = records.shown(studies)
    return [_study_row(o, bests.get(o.id), shown[o.id]) for o in studies]


def _study_row(owner: OwnerRecord, best: TaskRecord | None, shown: Shown) -> StudyRow:
    return StudyRow(
        name=owner.name,
        kind=owner.kind,
        state=shown.state,
        proposer=owner.spec.get("proposer"),
        directions=owner.directions,
        done=owner.done,
        max_points=owner.spec.get("max_points"),
        running=shown.running,
        failed=owner.failed,
        best=None if best is None else best.result["values"][0],
        created=owner.created,
        user=owner.user,
        lost=shown.lost,
    )


def database_version(records: Records) -> tuple[Any, ...]:
    """A cheap fingerprint of everything recorded: it changes whenever an owner or a task is
    added or changes, so that lists are read again only then."""
    return records.stamp()


def owner_counts(records: Records) -> dict[str, dict[str, int]]:
    """How many owners (studies, scans, workflows, carousels ...) of each kind are in each
    state: ``{kind: {state: n}}``."""
    return records.kind_counts()


def tasks_by_site(records: Records) -> dict[str, dict[str, int]]:
    """Tasks dispatched or running now, per site and owner kind: ``{site: {kind: n}}``."""
    return records.tasks_by_site()


def recent_failures(records: Records, limit: int = 20) -> list[Failure]:
    """The last ``limit`` tasks that failed (all attempts spent), newest first."""
    return records.failures(limit)


def last_line(error: str | None) -> str:
    """An error's last line that is not blank (what raised, under its traceback)."""
    lines = [line for line in (error or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def study_version(records: Records, name: str) -> tuple[Any, ...]:
    """A cheap fingerprint of a study's recorded state: it changes whenever a trial is added,
    changes state or reports a value, so that pages recompute only then.

    Raises:
        NotFound: no study of that name.
    """
    return owner_version(records, STUDY_KINDS, name)


def owner_version(records: Records, kinds: tuple[str, ...], name: str) -> tuple[Any, ...]:
    """A cheap fingerprint of an owner's recorded state (a study, a scan, a workflow ...):
    its id and state (``[1]``), its tasks' count and latest times, their attempts and
    progress reports.

    Args:
        records: the records read.
        kinds: the owner kinds the name may have.
        name: the owner's name.

    Raises:
        NotFound: no owner of those kinds and that name.
    """
    return records.stamp(records.owner(kinds, name).id)


def owners_of(records: Records, kind: str) -> list[OwnerRecord]:
    """Every owner of ``kind``, oldest first, with its tasks counted by state."""
    return records.owners(kind)


def tasks_of(records: Records, kind: str, name: str) -> list[TaskRecord]:
    """The tasks of the owner ``name`` of ``kind``, in number order.

    Raises:
        NotFound: no such owner.
    """
    return records.tasks(records.owner(kind, name).id)


def shown_states(records: Records, owners_: list[OwnerRecord]) -> dict[int, str]:
    """How each of ``owners_`` is shown, by id: its state, or ``stopped (no live head; resume
    it)`` for an active one whose head is gone and whose lease lapsed (the one rule,
    :meth:`Records.shown`)."""
    return {oid: shown.state for oid, shown in records.shown(owners_).items()}


def shown_owner(records: Records, kinds: tuple[str, ...], name: str) -> Shown:
    """What to show of the owner ``name`` (its state; its tasks in flight, running or lost
    with their head).

    Raises:
        NotFound: no owner of those kinds and that name.
    """
    owner = records.owner(kinds, name)
    return records.shown([owner])[owner.id]
