"""The scheduling core: claim the tasks of the owners this head holds, run them on Ray,
record their results in group commits, retry, and call the owners back.

Ray tasks are submitted with ``max_retries=0``: retries happen here, as new attempts.

A database that goes away (PostgreSQL stopped, the network cut) does not stop a head: it keeps
what it has not recorded yet in memory, tries again with a growing backoff, and once the
database answers it renews its leases (standing down if another head took an owner over) and
records what it holds; it gives up after ``IDDS_DB_OUTAGE_S`` seconds (600 by default).
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from idds import owners as owners_mod
from idds import tasks as tq
from idds.db import reason
from idds.errors import DatabaseError, IddsError, LeaseLost
from idds.owners import OwnerState
from idds.payloads import CHANNEL_NAME, HeadChannel, run_payload
from idds.tasks import Claim, Outcome, TaskSpec, TaskState

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("idds.dispatcher")

#: How often the head reads its channel (attempt starts, progress reports).
DRAIN_PERIOD_S = 0.25
#: The first wait before trying a database that went away again, and the longest (seconds).
RECONNECT_BACKOFF_S = (0.5, 5.0)
#: On an interrupt (SIGINT: ``idds serve`` stopping, Ctrl-C), how long a head lets the attempts
#: in flight end, and records them, before it stops the rest (which run again elsewhere).
INTERRUPT_GRACE_S = 10.0


def outage_limit() -> float:
    """Seconds a head waits for a database that went away (``IDDS_DB_OUTAGE_S``).

    Raises:
        SpecError: the variable is set to something other than a positive number.
    """
    from idds.config import Settings

    return Settings.from_env().db_outage_s


def connection_lost(exc: sa.exc.DBAPIError, dialect: str) -> bool:
    """True when ``exc`` says that the database is away (the connection dropped, the server
    refuses connections or is shutting down) rather than that a statement is wrong.

    SQLite reports mistakes as ``OperationalError`` too: there only a dropped connection counts.
    """
    if exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError) and dialect != "sqlite"


class TaskOwner(abc.ABC):
    """A study, workflow or carousel as the dispatcher sees it.

    The dispatcher calls these methods from its own thread only. A result is reported
    (:meth:`on_final`) only after it has been committed.

    Attributes:
        owner_id: the owner's row id.
        parallel: how many of its tasks may be in flight at once.
    """

    owner_id: int
    parallel: int

    @abc.abstractmethod
    def new_tasks(self, free: int) -> list[TaskSpec]:
        """Up to ``free`` new tasks to hand in now (an empty list when there are none)."""

    @abc.abstractmethod
    def on_final(self, number: int, state: TaskState, result: Any, error: str | None) -> None:
        """A task reached a final state (once per task)."""

    @abc.abstractmethod
    def done(self) -> bool:
        """True when the owner expects no more tasks to run."""

    def accept(self, result: Any) -> Any:
        """The result to record for a payload's return value.

        Raises:
            ValueError: the result is unacceptable; the attempt fails with this message.
        """
        return result

    def on_cancel(self) -> None:  # noqa: B027 - an optional hook
        """The owner was cancelled (from this or another process)."""

    def on_report(self, number: int, step: int, value: float) -> bool:
        """A running task reported progress; return True to advise it to stop (prune)."""
        return False

    def on_question(self, number: int, question: Any) -> Any:
        """A running task asks something (e.g. a parameter's value); the answer is JSON.

        Raises:
            ValueError: the question cannot be answered (the task gets the message).
        """
        raise ValueError("this owner answers no questions")

    def on_spec(self, spec: dict[str, Any]) -> None:  # noqa: B027 - an optional hook
        """The owner's stored spec changed in another process (e.g. points were enqueued)."""


@dataclass(frozen=True)
class Placement:
    """Where the broker put a task: the site's name and the Ray options that pin it there."""

    site: str
    ray_options: dict[str, Any]


class Broker(abc.ABC):
    """Picks a site for each claimed task (site adapters plug in here)."""

    @abc.abstractmethod
    def place(self, claim: Claim) -> Placement:
        """The site to run ``claim`` on; must not block."""


class LocalBroker(Broker):
    """Every task on the Ray cluster this process is connected to, as site ``local``."""

    def place(self, claim: Claim) -> Placement:
        res = claim.resources
        options: dict[str, Any] = {"num_cpus": float(res.get("cpus", 1))}
        if res.get("gpus"):
            options["num_gpus"] = float(res["gpus"])
        if res.get("memory_gb"):
            options["memory"] = int(float(res["memory_gb"]) * 2**30)
        return Placement(claim.site or "local", options)


def default_broker(engine: Engine) -> Broker:
    """The broker of the sites file named by ``IDDS_SITES`` where it is set, else
    :class:`LocalBroker`. The sites broker is found through the entry point ``sites`` of
    group ``idds.brokers`` (called with the file's path and the engine), so that the core
    imports no capability package.

    Raises:
        IddsError: ``IDDS_SITES`` is set and no such entry point is installed.
    """
    path = os.environ.get("IDDS_SITES")
    if not path:
        return LocalBroker()
    from importlib.metadata import entry_points

    found = entry_points(group="idds.brokers", name="sites")
    if not found:
        raise IddsError("IDDS_SITES is set, and no broker is installed as idds.brokers:sites")
    broker: Broker = next(iter(found)).load()(path, engine)
    return broker


@dataclass
class _InFlight:
    claim: Claim
    ref: Any
    deadline: float | None
    site: str


_channels: dict[str, Any] = {}


def _channel() -> Any:
    """This process's :class:`HeadChannel`, created once per Ray job: a handle kept for the
    life of the process keeps the actor alive (Ray ends an actor when its last handle goes)."""
    import ray

    job = ray.get_runtime_context().get_job_id()
    if job not in _channels:
        _channels[job] = (
            ray.remote(num_cpus=0)(HeadChannel)
            .options(name=CHANNEL_NAME, max_restarts=-1, get_if_exists=True)
            .remote()
        )
    return _channels[job]


class Dispatcher:
    """Runs the tasks of the owners it is given until they are done.

    Args:
        engine: the database.
        head: this head's name (see :func:`idds.owners.new_head_id`).
        lease_seconds: lease length; leases are renewed every third of it.
        broker: picks a site per task (:func:`default_broker` by default).
        backoff_s: delay before a failed attempt's retry; doubles with each attempt.
        poll_s: how long an idle head waits before it looks again.
        outage_s: how long to wait for a database that went away before giving up
            (:func:`outage_limit` by default).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        head: str | None = None,
        lease_seconds: float = 30.0,
        broker: Broker | None = None,
        backoff_s: float = 1.0,
        poll_s: float = 0.2,
        outage_s: float | None = None,
    ) -> None:
        self.engine = engine
        self.head = head or owners_mod.new_head_id()
        self.lease_seconds = lease_seconds
        self.broker = broker or default_broker(engine)
        self.backoff_s = backoff_s
        self.poll_s = poll_s
        self.outage_s = outage_limit() if outage_s is None else outage_s
        self._owners: dict[int, TaskOwner] = {}
        self._open: dict[int, int] = {}  # owner -> tasks not final
        self._flight: dict[Any, _InFlight] = {}
        self._retry_at: dict[int, float] = {}
        self._remotes: dict[str, Any] = {}
        self._idle = False
        self._channel: Any = None
        self._conn: Any = None
        self._reports: list[tuple[str, int, float]] = []
        self._next_drain = 0.0
        self._draining: Any = None  # the channel's answer being waited for
        self._seen: dict[int, float] = {}  # owner -> the `updated` time last seen
        self._started: list[tuple[str, str, float]] = []
        # Kept in memory until committed, so that a database outage loses none of it:
        self._ended: list[tuple[_InFlight, Outcome]] = []  # results that came back
        self._to_submit: dict[int, list[TaskSpec]] = {}  # tasks the owners handed in
        self._claiming: list[tuple[Claim, Placement]] = []  # claims of the open transaction
        self._unsure: set[str] = set()  # attempts whose recording may have been committed
        self._renew_period = min(lease_seconds / 3, 2.0)
        self._next_renew = 0.0

    # --- owners and leases ----------------------------------------------------------------

    def hold(self, owner_id: int) -> bool:
        """Take an owner's lease; queue again the attempts a previous head left in flight.

        Returns:
            False when another live head holds it.
        """
        with self.engine.begin() as conn:
            if not owners_mod.acquire(conn, owner_id, self.head, self.lease_seconds):
                return False
            tq.requeue_in_flight(conn, owner_id, f"lost: head gone, taken over by {self.head}")
        return True

    def hold_waiting(self, owner_id: int, what: str) -> None:
        """:meth:`hold`, waiting out a lease that a head which stopped may still hold.

        Raises:
            IddsError: a live head still holds it after a lease's length (``what`` names it).
        """
        from idds.runtime import ensure_ray

        ensure_ray()  # joining (or starting) Ray may take longer than a lease: do it first
        deadline = time.monotonic() + self.lease_seconds + 2
        while not self.hold(owner_id):
            if time.monotonic() > deadline:
                raise IddsError(f"{what} is being run by another live head")
            time.sleep(0.5)

    def release(self, owner_id: int) -> None:
        """Give an owner's lease up (where the database is away, the lease simply runs out)."""
        try:
            with self.engine.begin() as conn:
                owners_mod.release(conn, owner_id, self.head)
        except sa.exc.DBAPIError as exc:
            if not connection_lost(exc, self.engine.dialect.name):
                raise

    # --- the loop -------------------------------------------------------------------------

    def run(self, owners: list[TaskOwner]) -> None:
        """Run until every owner is done; the caller holds their leases (:meth:`hold`).

        Raises:
            LeaseLost: another head took an owner over; this head stood down.
            DatabaseError: the database stayed away longer than ``outage_s``.
        """

        from idds.runtime import ensure_ray

        ensure_ray()
        self._channel = _channel()
        self._owners = {o.owner_id: o for o in owners}
        try:
            while not self._guarded(self._load):
                pass
            while not all(o.done() for o in owners) or self._flight or self._ended:
                self._guarded(self._step)
        except KeyboardInterrupt:  # SIGINT (idds serve stopping): keep what is in
            self._record_what_came_in()
            raise
        finally:
            self._abandon_in_flight()
            self._close_connection(broken=False)

    def _load(self) -> None:
        self._open = self._count_open()
        with self.engine.begin() as conn:
            self._seen = {r.id: r.updated or 0.0 for r in self._owner_rows(conn, set(self._owners))}
        self._next_renew = time.monotonic()  # at once: the leases were taken a while ago

    def _step(self) -> None:
        if self._conn is None:
            # The hot path keeps one connection (no pool checkout and reset per commit).
            self._conn = self.engine.connect()
        self._ended += self._collect()
        # Renewing also notices a cancel made from another process: it is done often, and
        # before writing, so that a head that was paused (SIGSTOP) past its lease writes nothing.
        self._renew_if_due()
        self._cycle()

    def _cycle(self) -> None:
        """Record what came in (one group commit), tell the owners (a result is reported
        only once it is committed), then hand in their new tasks and claim the next ones
        (a second commit) and launch them. What is not committed stays in memory for the
        next try."""
        finals = self._record_ended()
        self._tell(finals)
        placed: list[tuple[Claim, Placement]] = []
        work = self._plan()
        if work:
            self._renew_if_due()  # the owners may have taken a while (a proposer)
            with self._conn.begin():
                placed = self._submit_and_claim(self._conn, work)
            self._to_submit.clear()
            self._claiming = []
        self._idle = not (placed or finals)
        for claim, placement in placed:
            self._launch(claim, placement)

    def _record_ended(self) -> list[tuple[Claim, TaskState, Outcome]]:
        """Commit the attempts that ended, started or reported; returns those now final."""
        if not (self._ended or self._started or self._reports):
            return []
        reports = self._claimed_reports()
        conn = self._conn
        with conn.begin():
            self._mark_started(conn, self._started)
            tq.add_reports(conn, reports)
            recorded = self._record(conn, self._ended)
        self._ended, self._started, self._reports, self._unsure = [], [], [], set()
        self._pass_on(reports)
        finals: list[tuple[Claim, TaskState, Outcome]] = []
        for claim, state, outcome in recorded:
            if state in tq.FINAL:
                finals.append((claim, state, outcome))
                self._open[claim.owner_id] -= 1
            elif state is TaskState.PENDING:
                self._retry_at[claim.owner_id] = 0.0
        return finals

    def _tell(self, finals: list[tuple[Claim, TaskState, Outcome]]) -> None:
        for claim, state, outcome in finals:
            self._owners[claim.owner_id].on_final(
                claim.number, state, outcome.result if outcome.ok else None, outcome.error
            )

    def _count_open(self) -> dict[int, int]:
        open_states = [TaskState.PENDING, *tq.IN_FLIGHT]
        with self.engine.begin() as conn:
            return {
                oid: sum(n for s, n in tq.counts(conn, oid).items() if s in open_states)
                for oid in self._owners
            }

    def _plan(self) -> list[tuple[TaskOwner, list[TaskSpec], int]]:
        """Per owner: the tasks to hand in (new ones, and any an outage kept from being
        committed), and how many queued tasks to claim."""
        now = time.monotonic()
        work: list[tuple[TaskOwner, list[TaskSpec], int]] = []
        for oid, owner in self._owners.items():
            in_flight = sum(1 for f in self._flight.values() if f.claim.owner_id == oid)
            fresh = owner.new_tasks(max(owner.parallel - self._open[oid], 0))
            self._open[oid] += len(fresh)
            if fresh:
                self._to_submit.setdefault(oid, []).extend(fresh)
            specs = list(self._to_submit.get(oid, ()))
            slots = min(owner.parallel - in_flight, self._open[oid] - in_flight)
            if specs:
                self._retry_at.pop(oid, None)
            elif self._retry_at.get(oid, 0.0) > now:
                slots = 0
            if specs or slots > 0:
                work.append((owner, specs, slots))
        return work

    def _submit_and_claim(
        self, conn: Connection, work: list[tuple[TaskOwner, list[TaskSpec], int]]
    ) -> list[tuple[Claim, Placement]]:
        for owner, specs, slots in work:
            tq.submit(conn, owner.owner_id, specs)
            claims = tq.claim(conn, owner.owner_id, slots, lease_seconds=self.lease_seconds)
            if len(claims) < slots:  # the rest wait out a backoff
                self._retry_at[owner.owner_id] = time.monotonic() + self.poll_s
            # Kept until committed: if the commit's answer is lost, these may have been made.
            self._claiming += [(c, self.broker.place(c)) for c in claims]
        tq.start_attempts(conn, [(c, p.site) for c, p in self._claiming], head=self.head)
        return list(self._claiming)

    # --- a database that went away --------------------------------------------------------

    def _guarded(self, step: Callable[[], None]) -> bool:
        """Run ``step``; if the database went away meanwhile, wait until it is back.

        Returns:
            False when an outage cut the step short (what it had not committed is kept).

        Raises:
            DatabaseError: the database stayed away longer than ``outage_s``.
            LeaseLost: when it came back, another head held an owner.
        """
        try:
            step()
        except sa.exc.DBAPIError as exc:
            if not connection_lost(exc, self.engine.dialect.name):
                raise
            self._wait_for_database(exc)
            return False
        return True

    def _wait_for_database(self, exc: sa.exc.DBAPIError) -> None:
        """Try the database again with a growing backoff; once it answers, renew the leases
        and settle what the transaction that failed may have committed."""
        url = self.engine.url.render_as_string()  # the password masked
        log.warning(
            "database %s is away (%s); holding %d result(s) in memory, trying again for up to "
            "%g s", url, reason(exc), len(self._ended), self.outage_s,
        )  # fmt: skip
        # The commit of these may have reached the database before the connection dropped.
        self._unsure |= {flight.claim.token for flight, _ in self._ended}
        since = time.monotonic()
        delay = RECONNECT_BACKOFF_S[0]
        while True:
            self._close_connection(broken=True)
            left = self.outage_s - (time.monotonic() - since)
            if left <= 0:
                raise DatabaseError(
                    f"database {url} did not answer for {self.outage_s:g} s "
                    f"(IDDS_DB_OUTAGE_S); giving up: {reason(exc)}"
                )
            time.sleep(min(delay, left))
            delay = min(2 * delay, RECONNECT_BACKOFF_S[1])
            try:
                self.engine.dispose()  # pooled connections are as dead as this one
                self._conn = self.engine.connect()
                self._renew()  # LeaseLost if another head took an owner over meanwhile
                self._reconcile()
            except sa.exc.DBAPIError as again:
                if not connection_lost(again, self.engine.dialect.name):
                    raise
                exc = again
                continue
            log.info("database %s answers again after %.1f s", url, time.monotonic() - since)
            return

    def _reconcile(self) -> None:
        """After an outage: launch the claims whose transaction was committed although its
        commit failed, and hand in again only the tasks that were not recorded."""
        t = tq.tasks.c
        launch: list[tuple[Claim, Placement]] = []
        with self._conn.begin():
            if self._claiming:
                tokens = [c.token for c, _ in self._claiming]
                made = set(self._conn.execute(
                    sa.select(t.token).where(t.token.in_(tokens), t.state == TaskState.DISPATCHED)
                ).scalars())  # fmt: skip
                launch = [(c, p) for c, p in self._claiming if c.token in made]
            for oid, specs in self._to_submit.items():
                numbers = [s.number for s in specs]
                there = set(self._conn.execute(
                    sa.select(t.number).where(t.owner_id == oid, t.number.in_(numbers))
                ).scalars())  # fmt: skip
                self._to_submit[oid] = [s for s in specs if s.number not in there]
        self._claiming = []
        for claim, placement in launch:
            self._launch(claim, placement)

    def _close_connection(self, *, broken: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            if broken and not conn.invalidated:
                conn.invalidate()
            conn.close()

    def _launch(self, claim: Claim, placement: Placement) -> None:
        # Options may nest (``resources={"site:NAME": ...}``): key them by their JSON.
        key = json.dumps(placement.ray_options, sort_keys=True, default=str)
        remote = self._remotes.get(key)
        if remote is None:
            import ray

            remote = ray.remote(max_retries=0)(run_payload).options(**placement.ray_options)
            self._remotes[key] = remote
        ref = remote.remote(claim.payload, claim.token)
        # A command stops itself at its timeout (killing its process group); the head's
        # deadline, a little later, is the backstop that cancels the Ray task.
        grace = 2.0 if "command" in claim.payload else 0.0
        deadline = time.monotonic() + claim.timeout_s + grace if claim.timeout_s else None
        self._flight[ref] = _InFlight(claim, ref, deadline, placement.site)

    def _collect(self) -> list[tuple[_InFlight, Outcome]]:
        """Wait for the next results (all that are ready) and for attempts past their time."""
        import ray

        if not self._flight:
            if self._idle and not all(o.done() for o in self._owners.values()):
                time.sleep(self.poll_s)  # e.g. tasks waiting out a backoff
            return []
        refs = list(self._flight)
        ready, rest = ray.wait(refs, num_returns=1, timeout=self._wait_timeout())
        self._drain()
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        ended = [(self._flight.pop(r), self._outcome(r)) for r in ready]
        return ended + self._expire()

    def _drain(self) -> None:
        """Read the channel (which attempts started, their reports, questions) without
        waiting for it: a channel slow to answer (its actor still starting on a busy cluster)
        must not keep the head from renewing its leases."""
        import ray

        if self._draining is None:
            if time.monotonic() < self._next_drain:
                return
            self._draining = self._channel.drain.remote()
        ready, _ = ray.wait([self._draining], timeout=0)
        if not ready:
            return
        started, reports, questions = ray.get(self._draining)
        self._draining = None
        self._started += started
        self._reports += reports
        if questions:
            self._answer(questions)
        self._next_drain = time.monotonic() + DRAIN_PERIOD_S

    def _wait_timeout(self) -> float:
        deadlines = [f.deadline for f in self._flight.values() if f.deadline is not None]
        until = min(deadlines, default=time.monotonic() + 1.0) - time.monotonic()
        return max(0.0, min(until, DRAIN_PERIOD_S, self.lease_seconds / 3))

    def _outcome(self, ref: Any) -> Outcome:
        import ray

        try:
            report = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            return Outcome(kind="error", error=str(exc))
        except ray.exceptions.RayError as exc:  # the worker or its node died
            return Outcome(kind="crash", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        return Outcome(
            kind="ok" if report["ok"] else report.get("kind", "error"),
            result=report.get("value"),
            error=report.get("error"),
            node=report.get("node"),
            started=report.get("started"),
            reports=tuple(tuple(r) for r in report.get("reports", ())),
        )

    def _expire(self) -> list[tuple[_InFlight, Outcome]]:
        import ray

        now = time.monotonic()
        late = [r for r, f in self._flight.items() if f.deadline is not None and f.deadline <= now]
        ended = []
        for ref in late:
            flight = self._flight.pop(ref)
            ray.cancel(ref, force=True)
            error = f"timed out after {flight.claim.timeout_s:g} s"
            ended.append((flight, Outcome(kind="timeout", error=error)))
        return ended

    def _by_token(self) -> dict[str, _InFlight]:
        """The attempts in flight here, by token (what the channel's messages name)."""
        return {f.claim.token: f for f in self._flight.values()}

    def _claimed_reports(self) -> list[tuple[Claim, int, float]]:
        """The drained progress reports of attempts still in flight here."""
        by_token = self._by_token()
        return [(by_token[t].claim, s, v) for t, s, v in self._reports if t in by_token]

    def _answer(self, questions: list[tuple[int, str, Any]]) -> None:
        """Owners answer their running tasks' questions (Optuna-style suggest calls)."""
        by_token = self._by_token()
        answers = []
        for key, token, question in questions:
            if token not in by_token:
                answers.append((key, {"error": "the attempt is no longer current"}))
                continue
            claim = by_token[token].claim
            try:
                answers.append((key, {"value": self._owners[claim.owner_id].on_question(
                    claim.number, question)}))  # fmt: skip
            except ValueError as exc:
                answers.append((key, {"error": str(exc)}))
        self._channel.answer.remote(answers)

    def _pass_on(self, reports: list[tuple[Claim, int, float]]) -> None:
        """Tell the owners of the reports (after they are recorded); post back which attempts
        they want stopped."""
        stop = [
            claim.token
            for claim, step, value in reports
            if self._owners[claim.owner_id].on_report(claim.number, step, value)
        ]
        if stop:
            self._channel.prune.remote(stop)

    def _mark_started(self, conn: Connection, started: list[tuple[str, str, float]]) -> None:
        if not started:
            return
        by_token = self._by_token()
        for token, node, when in started:
            if token in by_token:
                flight = by_token[token]
                tq.mark_running(conn, flight.claim, node=node, started=when, site=flight.site)

    def _record(
        self, conn: Connection, ended: list[tuple[_InFlight, Outcome]]
    ) -> list[tuple[Claim, TaskState, Outcome]]:
        """Record the ends of attempts; returns each one recorded, with the task's new state."""
        recorded: list[tuple[Claim, TaskState, Outcome]] = []
        tq.add_reports(conn, [(f.claim, s, v) for f, o in ended for s, v in o.reports])
        for flight, outcome in ended:
            claim = flight.claim
            outcome = self._checked(claim, outcome)
            state = tq.finish(conn, claim, outcome, site=flight.site, backoff_s=self.backoff_s)
            if state is None and claim.token in self._unsure:
                state = self._recorded_before(conn, claim)
            if state is not None:
                recorded.append((claim, state, outcome))
        return recorded

    @staticmethod
    def _recorded_before(conn: Connection, claim: Claim) -> TaskState | None:
        """The final state that a commit which seemed to fail (its answer was lost with the
        connection) gave the task of ``claim``, or None: the owner is told of it once."""
        t = tq.tasks.c
        row = conn.execute(sa.select(t.state, t.token).where(t.id == claim.task_id)).first()
        done = (TaskState.SUCCEEDED, TaskState.FAILED)
        if row is None or row.token != claim.token or row.state not in done:
            return None
        return TaskState(row.state)

    def _checked(self, claim: Claim, outcome: Outcome) -> Outcome:
        if not outcome.ok:
            return outcome
        try:
            result = self._owners[claim.owner_id].accept(outcome.result)
        except ValueError as exc:
            return replace(outcome, kind="invalid", result=None, error=str(exc))
        return replace(outcome, result=result)

    def _renew_if_due(self) -> None:
        if time.monotonic() >= self._next_renew:
            self._renew()

    def _renew(self) -> None:
        """Extend the leases; notice owners cancelled or changed from another process.

        Raises:
            LeaseLost: another head holds an owner now.
        """
        ids = list(self._owners)
        with self.engine.begin() as conn:
            held = owners_mod.renew(conn, ids, self.head, self.lease_seconds)
            rows = self._owner_rows(conn, held)
        self._next_renew = time.monotonic() + self._renew_period
        for row in rows:
            owner = self._owners[row.id]
            if row.state == OwnerState.CANCELLED:
                self._drop_owner_flights(row.id)
                owner.on_cancel()
            elif (row.updated or 0.0) > self._seen.get(row.id, 0.0):
                owner.on_spec(row.spec)
            self._seen[row.id] = row.updated or 0.0
        lost = set(ids) - held
        if lost:
            for oid in lost:
                self._drop_owner_flights(oid)
            names = ", ".join(str(i) for i in sorted(lost))
            raise LeaseLost(f"owner(s) {names} taken over by another head; standing down")

    def _owner_rows(self, conn: Connection, held: set[int]) -> list[Any]:
        if not held:
            return []
        o = owners_mod.owners
        return list(
            conn.execute(
                sa.select(o.c.id, o.c.state, o.c.spec, o.c.updated).where(o.c.id.in_(held))
            )
        )

    def _drop_owner_flights(self, owner_id: int) -> None:
        import ray

        for ref in [r for r, f in self._flight.items() if f.claim.owner_id == owner_id]:
            ray.cancel(ref, force=True)
            del self._flight[ref]
        self._open[owner_id] = 0
        self._to_submit.pop(owner_id, None)

    def _record_what_came_in(self) -> None:
        """On an interrupt: let the attempts in flight end for a while, renewing the leases
        meanwhile, and record their results, with those that came back already (they would
        run again otherwise); what still runs is stopped, and the next holder queues it
        again. Best effort: a result refused here (or not written) just runs again."""
        import ray

        if self._flight:
            log.warning(
                "interrupted: waiting up to %g s for %d attempt(s) in flight (interrupt again "
                "to stop them now)", INTERRUPT_GRACE_S, len(self._flight),
            )  # fmt: skip
            deadline = time.monotonic() + INTERRUPT_GRACE_S
            with contextlib.suppress(KeyboardInterrupt, LeaseLost, sa.exc.SQLAlchemyError):
                while self._flight and time.monotonic() < deadline:
                    wait = min(self._renew_period, max(deadline - time.monotonic(), 0.0))
                    refs = list(self._flight)
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=wait)
                    self._ended += [(self._flight.pop(r), self._outcome(r)) for r in ready]
                    self._renew()  # another head must not take the owners over meanwhile
            if self._flight:
                log.warning("stopping %d attempt(s) still in flight", len(self._flight))
        if not self._ended or self._conn is None:
            return
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            self._tell(self._record_ended())

    def _abandon_in_flight(self) -> None:
        """On an exception or interrupt: stop what runs; the next holder queues it again."""
        import ray

        for ref in list(self._flight):
            ray.cancel(ref, force=True)
        self._flight.clear()
