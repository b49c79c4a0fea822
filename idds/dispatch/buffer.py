"""The commit buffer: what a head has and has not committed yet.

Results that came back, attempts that started, progress reports, tasks the owners handed
in and the claims of the transaction under way are kept here until their commit succeeds, so
that a database outage loses none of them; a group commit records them all at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from idds import tasks as tq
from idds.db import check_file
from idds.tasks import TaskState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from sqlalchemy.engine import Connection

    from idds.dispatch.owner import Placement
    from idds.dispatch.ray_side import InFlight
    from idds.tasks import Claim, Outcome, TaskSpec

    #: The result to record for a claim's payload's return value (raises ValueError).
    Accept = Callable[[Claim, Any], Any]


@dataclass(frozen=True)
class Unrecorded:
    """How much a buffer holds that is not committed yet.

    Attributes:
        results: attempts that ended.
        started: attempts that started.
        reports: progress reports.
        tasks: tasks handed in.
        claims: claims of the transaction under way.
    """

    results: int = 0
    started: int = 0
    reports: int = 0
    tasks: int = 0
    claims: int = 0


@dataclass(frozen=True)
class Committed:
    """What a group commit recorded.

    Attributes:
        recorded: each attempt's end recorded, with its task's new state.
        reports: the progress reports recorded (of attempts in flight).
    """

    recorded: list[tuple[Claim, TaskState, Outcome]]
    reports: list[tuple[Claim, int, float]]


class CommitBuffer:
    """What came back to a head or was handed in, until it is committed."""

    def __init__(self) -> None:
        self._ended: list[tuple[InFlight, Outcome]] = []
        self._started: list[tuple[str, str, float]] = []
        self._reports: list[tuple[str, int, float]] = []
        self._to_submit: dict[int, list[TaskSpec]] = {}
        self._claiming: list[tuple[Claim, Placement]] = []
        self._unsure: set[str] = set()  # attempts whose recording may have been committed

    # --- results --------------------------------------------------------------------------

    def add(self, flight: InFlight, outcome: Outcome) -> None:
        """An attempt ended with ``outcome``."""
        self._ended.append((flight, outcome))

    def add_started(self, started: Iterable[tuple[str, str, float]]) -> None:
        """Attempts started: ``(token, node, when)`` each."""
        self._started += started

    def add_reports(self, reports: Iterable[tuple[str, int, float]]) -> None:
        """Progress reports: ``(token, step, value)`` each."""
        self._reports += reports

    @property
    def pending(self) -> int:
        """How many ended attempts are not recorded yet."""
        return len(self._ended)

    def unrecorded(self) -> Unrecorded:
        """How much is not committed yet, of each kind."""
        return Unrecorded(
            results=len(self._ended),
            started=len(self._started),
            reports=len(self._reports),
            tasks=sum(len(s) for s in self._to_submit.values()),
            claims=len(self._claiming),
        )

    def mark_unsure(self) -> None:
        """A commit failed with the connection: it may have reached the database all the
        same, so the next one checks what the held results' tasks say before it refuses one."""
        self._unsure |= {flight.claim.token for flight, _ in self._ended}

    def commit(
        self,
        conn: Connection,
        flights: dict[str, InFlight],
        accept: Accept,
        backoff_s: float,
    ) -> Committed:
        """Record what came in, in one transaction on ``conn``; what it recorded is no
        longer held. Where the commit fails, all of it stays held for the next try.

        Args:
            conn: the connection.
            flights: the attempts still in flight, by token (starts and reports of others
                are dropped).
            accept: the result to record for an attempt's value.
            backoff_s: delay before a failed attempt's retry; doubles with each attempt.

        Raises:
            DatabaseError: the SQLite file was deleted or replaced under the head.
        """
        if not (self._ended or self._started or self._reports):
            return Committed([], [])
        reports = [(flights[t].claim, s, v) for t, s, v in self._reports if t in flights]
        check_file(conn.engine)  # a deleted SQLite file would swallow every commit silently
        with conn.begin():
            self._mark_started(conn, flights)
            tq.add_reports(conn, reports)
            recorded = self._record(conn, accept, backoff_s)
        self._ended, self._started, self._reports, self._unsure = [], [], [], set()
        return Committed(recorded, reports)

    def _mark_started(self, conn: Connection, flights: dict[str, InFlight]) -> None:
        for token, node, when in self._started:
            if token in flights:
                flight = flights[token]
                tq.mark_running(conn, flight.claim, node=node, started=when, site=flight.site)

    def _record(
        self, conn: Connection, accept: Accept, backoff_s: float
    ) -> list[tuple[Claim, TaskState, Outcome]]:
        """Record the ends of attempts; returns each one recorded, with the task's new state."""
        ended = self._ended
        recorded: list[tuple[Claim, TaskState, Outcome]] = []
        tq.add_reports(conn, [(f.claim, s, v) for f, o in ended for s, v in o.reports])
        for flight, outcome in ended:
            claim = flight.claim
            outcome = _checked(claim, outcome, accept)
            state = tq.finish(conn, claim, outcome, site=flight.site, backoff_s=backoff_s)
            if state is None and claim.token in self._unsure:
                state = _recorded_before(conn, claim)
            if state is not None:
                recorded.append((claim, state, outcome))
        return recorded

    # --- tasks handed in and claimed ------------------------------------------------------

    def hand_in(self, owner_id: int, specs: list[TaskSpec]) -> None:
        """An owner handed in new tasks."""
        if specs:
            self._to_submit.setdefault(owner_id, []).extend(specs)

    def handed_in(self) -> dict[int, list[TaskSpec]]:
        """The tasks handed in and not committed yet, per owner."""
        return {oid: list(specs) for oid, specs in self._to_submit.items()}

    def handed_in_by(self, owner_id: int) -> list[TaskSpec]:
        """The tasks ``owner_id`` handed in that are not committed yet."""
        return list(self._to_submit.get(owner_id, ()))

    def forget_handed_in(self, owner_id: int, numbers: set[int]) -> None:
        """Tasks ``numbers`` of ``owner_id`` are recorded after all: do not hand them in."""
        specs = self._to_submit.get(owner_id, [])
        self._to_submit[owner_id] = [s for s in specs if s.number not in numbers]

    def drop_owner(self, owner_id: int) -> None:
        """Forget the tasks an owner handed in (it was cancelled or taken over)."""
        self._to_submit.pop(owner_id, None)

    def add_claims(self, placed: list[tuple[Claim, Placement]]) -> None:
        """Claims made in the transaction under way: if the commit's answer is lost, these
        may have been made all the same."""
        self._claiming += placed

    def claims(self) -> list[tuple[Claim, Placement]]:
        """The claims of the transaction under way."""
        return list(self._claiming)

    def clear_claims(self) -> None:
        """The claims' fate is known."""
        self._claiming = []

    def handed_over(self) -> None:
        """The transaction that handed in the tasks and made the claims was committed."""
        self._to_submit.clear()
        self._claiming = []


def _checked(claim: Claim, outcome: Outcome, accept: Accept) -> Outcome:
    if not outcome.ok:
        return outcome
    try:
        result = accept(claim, outcome.result)
    except ValueError as exc:
        return replace(outcome, kind="invalid", result=None, error=str(exc))
    return replace(outcome, result=result)


def _recorded_before(conn: Connection, claim: Claim) -> TaskState | None:
    """The final state that a commit which seemed to fail (its answer was lost with the
    connection) gave the task of ``claim``, or None: the owner is told of it once."""
    t = tq.tasks.c
    row = conn.execute(sa.select(t.state, t.token).where(t.id == claim.task_id)).first()
    done = (TaskState.SUCCEEDED, TaskState.FAILED)
    if row is None or row.token != claim.token or row.state not in done:
        return None
    return TaskState(row.state)
