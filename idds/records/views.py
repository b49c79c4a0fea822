"""What the records API returns: typed, frozen views of owners, tasks, attempts; and the one
rule for which results count as the best."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from idds.owners import OwnerState
from idds.tasks import IN_FLIGHT, AttemptKind, TaskState


@dataclass(frozen=True)
class OwnerRecord:
    """An owner (a study, a workflow, a toy scan, a carousel ...) as recorded.

    ``tasks`` counts its tasks by state (every state present, zeros included).
    """

    id: int
    kind: str
    name: str
    state: OwnerState
    spec: dict[str, Any]
    user: str | None
    parent_id: int | None
    created: float
    updated: float | None
    lease_holder: str | None = None
    lease_expires: float | None = None
    tasks: dict[TaskState, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Tasks that ended, succeeded or failed (cancelled ones are not counted)."""
        return self.tasks.get(TaskState.SUCCEEDED, 0) + self.tasks.get(TaskState.FAILED, 0)

    @property
    def in_flight(self) -> int:
        """Tasks dispatched or running now."""
        return sum(self.tasks.get(s, 0) for s in IN_FLIGHT)

    @property
    def failed(self) -> int:
        return self.tasks.get(TaskState.FAILED, 0)

    @property
    def directions(self) -> tuple[str, ...]:
        """The objectives' directions, where the spec names them (``minimize`` by default)."""
        direction = self.spec.get("direction", "minimize")
        return (direction,) if isinstance(direction, str) else tuple(direction)


@dataclass(frozen=True)
class TaskRecord:
    """One task of an owner: what it runs, its state, its current attempt and its result."""

    id: int
    owner_id: int
    number: int
    kind: str
    state: TaskState
    attempt: int
    max_attempts: int
    payload: dict[str, Any]
    resources: dict[str, Any]
    priority: int
    site: str | None
    node: str | None
    result: Any
    error: str | None
    created: float
    dispatched: float | None
    started: float | None
    finished: float | None

    @property
    def duration_s(self) -> float | None:
        """How long its last attempt ran on its worker (None until it finished)."""
        if self.finished is None or self.started is None:
            return None
        return self.finished - self.started


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt of a task; ``kind`` says how it ended (None while it runs)."""

    task_id: int
    owner_id: int
    task_number: int
    number: int
    state: TaskState
    kind: AttemptKind | None
    site: str | None
    node: str | None
    head: str | None
    dispatched: float
    started: float | None
    finished: float | None
    error: str | None
    resources: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """A task that failed (all attempts spent): whose it is, which one, when and why."""

    kind: str
    owner: str
    number: int
    finished: float | None
    site: str | None
    reason: str
    user: str | None = None


# --- the one rule for "best" -----------------------------------------------------------------


def feasible(constraints: Sequence[float] | None) -> bool:
    """Whether a result meets its constraints: none of them above zero (Optuna's rule)."""
    return all(c <= 0 for c in constraints or ())


def counts_for_best(state: str, result: Any) -> bool:
    """Whether a task's result competes for the best: succeeded, with values, not pruned, and
    feasible."""
    if state != TaskState.SUCCEEDED or not isinstance(result, dict):
        return False
    if result.get("pruned") or not result.get("values"):
        return False
    return feasible(result.get("constraints"))


def best_index(values: Sequence[Sequence[float]], direction: str) -> int | None:
    """Which of ``values`` (each a result's objective values) has the best first value under
    ``direction`` (``minimize`` or ``maximize``); the earliest on ties; None when empty."""
    if not values:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(range(len(values)), key=lambda i: (sign * values[i][0], i))


def pareto_indices(values: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Which of ``values`` no other one dominates (at least as good in every objective and
    better in one), in their order."""
    signs = [-1.0 if d == "maximize" else 1.0 for d in directions]
    keyed = [[s * v for s, v in zip(signs, vs, strict=True)] for vs in values]

    def dominated(a: list[float]) -> bool:
        return any(all(x <= y for x, y in zip(b, a, strict=True)) and b != a for b in keyed)

    return [i for i, k in enumerate(keyed) if not dominated(k)]


# --- the one rule for what a list shows of an owner no live head runs ---------------------

#: How an active owner is shown whose head is gone (killed, say) and whose lease has lapsed.
STOPPED = "stopped (no live head; resume it)"
#: How the attempts in flight of such an owner are shown: no head will record their results.
LOST = "lost with their head"


@dataclass(frozen=True)
class Shown:
    """What the lists and pages show of an owner: :func:`shown` computes it.

    Attributes:
        state: its state, or :data:`STOPPED`.
        stopped: whether it is active with no live head while a head ran it (or left
            attempts in flight).
        running: its tasks in flight under a live head.
        lost: its tasks in flight whose head is gone.
    """

    state: str
    stopped: bool
    running: int
    lost: int

    def task_state(self, state: TaskState | str) -> str:
        """How a task of this owner in ``state`` is shown (:data:`LOST` where its head is
        gone)."""
        return LOST if self.stopped and state in IN_FLIGHT else str(state)

    @property
    def in_flight(self) -> str:
        """The tasks in flight, as a list cell: ``2`` or ``2 lost with their head``."""
        return f"{self.lost} {LOST}" if self.lost else str(self.running)


def shown(owner: OwnerRecord, held: bool) -> Shown:
    """What to show of ``owner``, given whether a live head holds its lease now (by the
    database clock: :meth:`~idds.records.Records.held`). An active owner that no live head
    holds is stopped if a head held it (its lease lapsed without a release: the head was
    killed) or left attempts in flight; one that no head took yet (waiting for ``idds
    serve``) is not."""
    orphaned = owner.lease_holder is not None or owner.in_flight > 0
    stopped = owner.state == OwnerState.ACTIVE and not held and orphaned
    if not stopped:
        return Shown(str(owner.state), False, owner.in_flight, 0)
    return Shown(STOPPED, True, 0, owner.in_flight)
