"""The dispatcher: the loop that composes the parts of the scheduling core.

Each round it collects what came back from Ray (:mod:`~idds.dispatch.ray_side`), renews its
leases (:mod:`~idds.dispatch.leases`), records what came in in one group commit
(:mod:`~idds.dispatch.buffer`), tells the owners, hands in their new tasks, claims the next
ones in a second commit and launches them; a database that went away is waited out
(:mod:`~idds.dispatch.outage`). An interrupt lets the attempts in flight end for a while and
records them before the head stops.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

import sqlalchemy as sa

from idds import owners as owners_mod
from idds import tasks as tq
from idds.config import Settings
from idds.db import check_file
from idds.dispatch import leases
from idds.dispatch.buffer import CommitBuffer
from idds.dispatch.outage import Link, reconcile
from idds.dispatch.owner import HeldOwners, default_broker
from idds.dispatch.ray_side import RaySide
from idds.errors import DatabaseError, LeaseLost
from idds.tasks import TaskState

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy.engine import Connection, Engine

    from idds.dispatch.owner import Broker, Placement, TaskOwner
    from idds.tasks import Claim, Outcome, TaskSpec

    Final = tuple[Claim, TaskState, Outcome]
    #: An owner, the tasks it handed in, how many of its tasks to claim, and whether any of
    #: its tasks waits in the queue (else the new tasks are the next to run).
    Work = tuple[TaskOwner, list[TaskSpec], int, bool]

log = logging.getLogger("idds.dispatch")

#: On an interrupt (SIGINT: ``idds serve`` stopping, Ctrl-C), how long a head lets the attempts
#: in flight end, and records them, before it stops the rest (which run again elsewhere).
INTERRUPT_GRACE_S = 10.0


class Dispatcher:
    """Runs the tasks of the owners it is given until they are done.

    Args:
        engine: the database.
        settings: where the lease length, the outage limit and the sites file come from
            (:meth:`Settings.from_env` by default).
        head: this head's name (see :func:`idds.owners.new_head_id`).
        lease_seconds: lease length (``settings.lease_seconds`` by default); leases are
            renewed every third of it.
        broker: picks a site per task (:func:`~idds.dispatch.owner.default_broker` of
            ``settings.sites`` by default).
        backoff_s: delay before a failed attempt's retry; doubles with each attempt.
        poll_s: how long an idle head waits before it looks again.
        outage_s: how long to wait for a database that went away before giving up
            (``settings.db_outage_s`` by default).
        ray_side: runs the attempts (a :class:`~idds.dispatch.ray_side.RaySide` by default).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        settings: Settings | None = None,
        head: str | None = None,
        lease_seconds: float | None = None,
        broker: Broker | None = None,
        backoff_s: float = 1.0,
        poll_s: float = 0.2,
        outage_s: float | None = None,
        ray_side: RaySide | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.engine = engine
        self.head = head or owners_mod.new_head_id()
        self.lease_seconds = self.settings.lease_seconds if lease_seconds is None else lease_seconds
        self.broker = broker or default_broker(engine, self.settings.sites)
        self.backoff_s = backoff_s
        self.poll_s = poll_s
        self.outage_s = self.settings.db_outage_s if outage_s is None else outage_s
        self.buffer = CommitBuffer()
        self.link = Link(engine, self.outage_s)
        self.leases = leases.Leases(engine, self.head, self.lease_seconds)
        self.ray = ray_side or RaySide()
        self.owners = HeldOwners()
        self._open: dict[int, int] = {}  # owner -> tasks not final
        self._retry_at: dict[int, float] = {}
        # Owners to ask for new tasks in the next round: those told something since they were
        # last asked, or that handed tasks in; the others are asked every ``poll_s`` (an owner
        # may have work on a clock), so that a round costs what happened, not the owners held.
        self._to_ask: set[int] = set()
        self._quiet_until: dict[int, float] = {}
        self._idle = False
        #: Claims made ahead (see :attr:`~idds.dispatch.owner.TaskOwner.ahead`), per owner,
        #: launched the moment one of its slots frees, before anything is recorded.
        self._ready: dict[int, list[tuple[Claim, Placement]]] = {}

    # --- owners and leases ----------------------------------------------------------------

    def hold(self, owner_id: int) -> bool:
        """Take an owner's lease; queue again the attempts a previous head left in flight.

        Returns:
            False when another live head holds it.
        """
        return leases.hold(self.engine, owner_id, self.head, self.lease_seconds)

    def hold_waiting(self, owner_id: int, what: str) -> None:
        """:meth:`hold`, waiting out a lease that a head which stopped may still hold.

        Raises:
            IddsError: a live head still holds it after a lease's length (``what`` names it).
        """
        leases.hold_waiting(self.engine, owner_id, self.head, self.lease_seconds, what)

    def release(self, owner_id: int) -> None:
        """Give an owner's lease up (where the database is away, the lease simply runs out)."""
        leases.release(self.engine, owner_id, self.head)

    def open_tasks(self, owner_id: int) -> int:
        """How many tasks of an owner (of those :meth:`start` took) are not final yet."""
        return self._open.get(owner_id, 0)

    # --- the loop -------------------------------------------------------------------------

    def run(self, owners: Sequence[TaskOwner]) -> None:
        """Run until every owner is done; the caller holds their leases (:meth:`hold`).

        Raises:
            LeaseLost: another head took an owner over; this head stood down.
            DatabaseError: the database stayed away longer than ``outage_s``.
        """
        self.ray.connect()
        try:
            self.start(owners)
            while (
                not all(o.done() for o in owners)
                or self.ray.flights
                or self.buffer.pending
                or any(self._ready.values())
            ):
                self._guarded(self._step)
        except KeyboardInterrupt:  # SIGINT (idds serve stopping): keep what is in
            self.wind_down()
            raise
        finally:
            self._give_back_ready()
            self.ray.abandon()
            self.link.close(broken=False)

    def start(self, owners: Sequence[TaskOwner]) -> None:
        """Take charge of ``owners`` (the caller holds their leases): count their open
        tasks and note their specs, waiting out a database that is away. :meth:`run` does
        this first.

        Raises:
            DatabaseError: the database stayed away longer than ``outage_s``.
        """
        self.owners = HeldOwners(owners)
        while not self._guarded(self._load):
            pass

    def cycle(self) -> bool:
        """One round without waiting on Ray: record what came in (one group commit), tell
        the owners (a result is reported only once it is committed), then hand in their new
        tasks and claim the next ones (a second commit) and launch them. What is not
        committed stays in :attr:`buffer` for the next round.

        Returns:
            False when a database outage cut the round short (and was waited out).

        Raises:
            LeaseLost: another head holds an owner now; this head stood down.
            DatabaseError: the database stayed away longer than ``outage_s``.
        """
        return self._guarded(self._cycle)

    def wind_down(self) -> None:
        """What :meth:`run` does on an interrupt: let the attempts in flight end for up to
        :data:`INTERRUPT_GRACE_S`, renewing the leases meanwhile, and record their results,
        with those that came back already (they would run again otherwise); what still runs
        is stopped, and the next holder queues it again. Best effort: a result refused here
        (or not written) just runs again."""
        if self.ray.flights:
            self._let_flights_end()
        if not self.buffer.pending or self.link.conn is None:
            return
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            self.owners.tell(self._record_ended())

    def _let_flights_end(self) -> None:
        log.warning(
            "interrupted: waiting up to %g s for %d attempt(s) in flight (interrupt again "
            "to stop them now)", INTERRUPT_GRACE_S, len(self.ray.flights),
        )  # fmt: skip
        deadline = time.monotonic() + INTERRUPT_GRACE_S
        with contextlib.suppress(KeyboardInterrupt, LeaseLost, sa.exc.SQLAlchemyError):
            while self.ray.flights and time.monotonic() < deadline:
                wait = min(self.leases.period, max(deadline - time.monotonic(), 0.0))
                for flight, outcome in self.ray.wait_all(wait):
                    self.buffer.add(flight, outcome)
                self._renew()  # another head must not take the owners over meanwhile
        if self.ray.flights:
            log.warning("stopping %d attempt(s) still in flight", len(self.ray.flights))

    def _load(self) -> None:
        self._open = self._count_open()
        self._to_ask = set(self.owners.by_id)
        self.leases.start(self.owners.by_id)

    def _step(self) -> None:
        self.link.open()
        self._collect()
        # Renewing also notices a cancel made from another process: it is done often, and
        # before writing, so that a head that was paused (SIGSTOP) past its lease writes nothing.
        self._renew_if_due()
        self._cycle()

    def _collect(self) -> None:
        """Wait for the next results (all that are ready) and for attempts past their time."""
        if not self.ray.flights:
            if self._idle and not self.owners.done():
                time.sleep(self.poll_s)  # e.g. tasks waiting out a backoff
            return
        for flight, outcome in self.ray.collect(
            self.buffer, self.owners.ask, self.lease_seconds / 3
        ):
            self.buffer.add(flight, outcome)

    def _cycle(self) -> None:
        self._launch_ready()  # a slot freed gets its next attempt before anything is recorded
        finals = self._record_ended()
        self.owners.tell(finals)
        self._to_ask.update(claim.owner_id for claim, _, _ in finals)
        placed: list[tuple[Claim, Placement]] = []
        work = self._plan()
        if work:
            self._renew_if_due()  # the owners may have taken a while (a proposer)
            conn = self.link.open()
            with conn.begin():
                placed = self._submit_and_claim(conn, work)
            self.buffer.handed_over()
        self._idle = not (placed or finals)
        self._hold_ready(placed)

    def _hold_ready(self, placed: list[tuple[Claim, Placement]]) -> None:
        """Claims committed: launched where their owners have free slots, held otherwise."""
        for claim, placement in placed:
            self._ready.setdefault(claim.owner_id, []).append((claim, placement))
        self._launch_ready()

    def _ahead(self, owner: TaskOwner) -> int:
        """How many of ``owner``'s tasks to claim ahead: none where the broker's places may
        be gone by launch (a site excluded, a pilot ended)."""
        return owner.ahead if self.broker.lasting_places else 0

    def _give_back_ready(self) -> None:
        """A head that stops gives its held claims back to the queue, as if never made;
        where it cannot (the database is away), the next holder queues them again, each a
        lost attempt, like those it had in flight."""
        held = [claim for ready in self._ready.values() for claim, _ in ready]
        # An interrupt between the commit of claims and their being held leaves them here.
        held += [claim for claim, _ in self.buffer.claims()]
        self._ready.clear()
        self.buffer.clear_claims()
        link = self.link.conn
        if not held or link is None:
            return
        with contextlib.suppress(sa.exc.SQLAlchemyError, DatabaseError):
            if link.in_transaction():  # it would hold SQLite's lock against the one below
                link.rollback()
            check_file(self.engine)  # never write where a deleted file was
            with self.engine.begin() as conn:  # the head's own may be cut mid-statement
                tq.unclaim(conn, held)

    def _launch_ready(self) -> None:
        """Launch held claims into their owners' free slots, in the order they were made."""
        if not any(self._ready.values()):
            return
        counts = self.ray.counts()
        for oid, ready in self._ready.items():
            owner = self.owners.by_id.get(oid)
            free = (owner.parallel if owner else 0) - counts.get(oid, 0)
            while ready and free > 0:
                self.ray.launch(*ready[0])
                ready.pop(0)  # only once launched: an interrupt in between gives it back
                free -= 1

    def _record_ended(self) -> list[Final]:
        """Commit the attempts that ended, started or reported; returns those now final."""
        flights = self.ray.by_token()
        done = self.buffer.commit(self.link.open(), flights, self.owners.accept, self.backoff_s)
        stop = self.owners.to_stop(done.reports)
        if stop:
            self.ray.prune(stop)
        finals: list[Final] = []
        for claim, state, outcome in done.recorded:
            if state in tq.FINAL:
                finals.append((claim, state, outcome))
                self._open[claim.owner_id] -= 1
            elif state is TaskState.PENDING:
                self._retry_at[claim.owner_id] = 0.0
        return finals

    def _count_open(self) -> dict[int, int]:
        open_states = [TaskState.PENDING, *tq.IN_FLIGHT]
        with self.engine.begin() as conn:
            return {
                oid: sum(n for s, n in tq.counts(conn, oid).items() if s in open_states)
                for oid in self.owners.by_id
            }

    def _plan(self) -> list[Work]:
        """Per owner: the tasks to hand in (new ones, and any an outage kept from being
        committed), and how many queued tasks to claim."""
        now = time.monotonic()
        work: list[Work] = []
        counts = self.ray.counts()
        for oid, owner in self.owners.by_id.items():
            in_flight = counts.get(oid, 0) + len(self._ready.get(oid, ()))
            if oid in self._to_ask or now >= self._quiet_until.get(oid, 0.0):
                self._ask(oid, owner, now)
            specs = self.buffer.handed_in_by(oid)
            room = owner.parallel + self._ahead(owner) - in_flight
            slots = min(room, self._open[oid] - in_flight)
            if specs:
                self._retry_at.pop(oid, None)
            elif self._retry_at.get(oid, 0.0) > now:
                slots = 0
            if specs or slots > 0:
                work.append((owner, specs, slots, self._open[oid] - in_flight > len(specs)))
        return work

    def _ask(self, oid: int, owner: TaskOwner, now: float) -> None:
        """Ask an owner for new tasks and hand them in; one that has none is asked again once
        it is told something, or after ``poll_s``."""
        fresh = owner.new_tasks(max(owner.parallel + self._ahead(owner) - self._open[oid], 0))
        self._open[oid] += len(fresh)
        self.buffer.hand_in(oid, fresh)
        if fresh:
            self._to_ask.add(oid)
        else:
            self._to_ask.discard(oid)
            self._quiet_until[oid] = now + self.poll_s

    def _submit_and_claim(
        self, conn: Connection, work: list[Work]
    ) -> list[tuple[Claim, Placement]]:
        for owner, specs, slots, queued in work:
            claims = self._hand_in(conn, owner.owner_id, specs, slots, queued)
            if len(claims) < slots:  # the rest wait out a backoff
                self._retry_at[owner.owner_id] = time.monotonic() + self.poll_s
            self.buffer.add_claims([(c, self.broker.place(c)) for c in claims])
        claiming = self.buffer.claims()
        tq.start_attempts(conn, [(c, p.site) for c, p in claiming], head=self.head)
        return claiming

    def _hand_in(
        self, conn: Connection, oid: int, specs: list[TaskSpec], slots: int, queued: bool
    ) -> list[Claim]:
        """Record the tasks handed in and claim up to ``slots`` tasks: where none waits in the
        queue, the first of the new ones in the order a claim takes them are recorded claimed
        (one statement rather than an insert and a claim)."""
        lease = self.lease_seconds
        if queued or not specs:
            tq.submit(conn, oid, specs)
            return tq.claim(conn, oid, slots, lease_seconds=lease)
        ordered = sorted(specs, key=lambda s: (-s.priority, s.number))
        tq.submit(conn, oid, ordered[max(slots, 0) :])
        return tq.submit_claimed(conn, oid, ordered[: max(slots, 0)], lease_seconds=lease)

    # --- leases and outages ---------------------------------------------------------------

    def _guarded(self, step: Callable[[], None]) -> bool:
        return self.link.guarded(step, self._wait_for_database)

    def _wait_for_database(self, exc: sa.exc.DBAPIError) -> None:
        """Wait for the database; once it answers, renew the leases and settle what the
        transaction that failed may have committed."""
        held = self.buffer.pending
        self.buffer.mark_unsure()  # the commit of these may have reached the database
        self.link.wait(exc, held=held, resume=self._resume)

    def _resume(self) -> None:
        self._renew()  # LeaseLost if another head took an owner over meanwhile
        self._hold_ready(reconcile(self.link.open(), self.buffer))

    def _renew_if_due(self) -> None:
        if self.leases.due():
            self._renew()

    def _renew(self) -> None:
        """Extend the leases; tell the owners cancelled or changed from another process.

        Raises:
            LeaseLost: another head holds an owner now.
        """
        renewal = self.leases.renew(list(self.owners.by_id))
        for notice in renewal.notices:
            owner = self.owners.by_id[notice.owner_id]
            self._to_ask.add(notice.owner_id)
            if notice.cancelled:
                self._drop_owner(notice.owner_id)
                owner.on_cancel()
            else:
                owner.on_spec(notice.spec)
        if renewal.lost:
            for oid in renewal.lost:
                self._drop_owner(oid)
            names = ", ".join(str(i) for i in sorted(renewal.lost))
            raise LeaseLost(f"owner(s) {names} taken over by another head; standing down")

    def _drop_owner(self, owner_id: int) -> None:
        self._ready.pop(owner_id, None)
        self.ray.cancel_owner(owner_id)
        self._open[owner_id] = 0
        self.buffer.drop_owner(owner_id)
