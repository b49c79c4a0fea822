"""The Ray side of a head: attempts launched as Ray tasks, their outcomes collected, their
deadlines kept, and the channel that running attempts talk to the head through (starts,
progress reports, questions, prune advice).

Ray tasks are submitted with ``max_retries=0``: retries happen in the dispatcher, as new
attempts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from idds.payloads import CHANNEL_NAME, HeadChannel, run_payload
from idds.tasks import Outcome

if TYPE_CHECKING:
    from collections.abc import Callable

    from idds.dispatch.buffer import CommitBuffer
    from idds.dispatch.owner import Placement
    from idds.tasks import Claim

    #: Answers a running attempt's question (raises ValueError when it cannot).
    Ask = Callable[[Claim, Any], Any]

#: How often the head reads its channel (attempt starts, progress reports).
DRAIN_PERIOD_S = 0.25

#: How long a head that stops waits for the attempts it cancelled to end.
ABANDON_WAIT_S = 3.0


@dataclass
class InFlight:
    """An attempt launched from this head.

    Attributes:
        claim: the claim it runs.
        ref: its Ray object reference.
        deadline: when the head stops waiting for it (``time.monotonic()``), or None.
        site: the site it was placed on.
    """

    claim: Claim
    ref: Any
    deadline: float | None
    site: str


_channels: dict[str, Any] = {}


def channel() -> Any:
    """This process's :class:`~idds.payloads.HeadChannel`, created once per Ray job: a handle
    kept for the life of the process keeps the actor alive (Ray ends an actor when its last
    handle goes)."""
    import ray

    job = ray.get_runtime_context().get_job_id()
    if job not in _channels:
        _channels[job] = (
            ray.remote(num_cpus=0)(HeadChannel)
            .options(name=CHANNEL_NAME, max_restarts=-1, get_if_exists=True)
            .remote()
        )
    return _channels[job]


def outcome(ref: Any) -> Outcome:
    """The outcome of a finished Ray task that ran :func:`~idds.payloads.run_payload`."""
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


class RaySide:
    """The attempts this head runs on Ray.

    Attributes:
        flights: the attempts in flight, by Ray reference.
    """

    def __init__(self) -> None:
        self.flights: dict[Any, InFlight] = {}
        self._remotes: dict[str, Any] = {}
        self._channel: Any = None
        self._draining: Any = None  # the channel's answer being waited for
        self._next_drain = 0.0

    def connect(self) -> None:
        """Join (or start) Ray and open the channel."""
        from idds.runtime import ensure_ray

        ensure_ray()
        self._channel = channel()

    def count(self, owner_id: int) -> int:
        """How many attempts of ``owner_id`` are in flight."""
        return sum(1 for f in self.flights.values() if f.claim.owner_id == owner_id)

    def counts(self) -> dict[int, int]:
        """How many attempts of each owner are in flight (one pass, for all owners)."""
        out: dict[int, int] = {}
        for flight in self.flights.values():
            out[flight.claim.owner_id] = out.get(flight.claim.owner_id, 0) + 1
        return out

    def by_token(self) -> dict[str, InFlight]:
        """The attempts in flight, by token (what the channel's messages name)."""
        return {f.claim.token: f for f in self.flights.values()}

    def launch(self, claim: Claim, placement: Placement) -> None:
        """Submit ``claim`` as a Ray task where ``placement`` says, with ``max_retries=0``."""
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
        self.flights[ref] = InFlight(claim, ref, deadline, placement.site)

    def collect(
        self, buffer: CommitBuffer, ask: Ask, max_wait_s: float
    ) -> list[tuple[InFlight, Outcome]]:
        """Wait (up to ``max_wait_s``) for the next results, all that are ready, and for
        attempts past their time; what the channel says goes into ``buffer``, and ``ask``
        answers the questions of running attempts.

        Returns:
            The attempts that ended, with their outcomes (no longer in flight).
        """
        import ray

        refs = list(self.flights)
        ready, rest = ray.wait(refs, num_returns=1, timeout=self._wait_timeout(max_wait_s))
        self.drain(buffer, ask)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        ended = [(self.flights.pop(r), outcome(r)) for r in ready]
        return ended + self._expire()

    def wait_all(self, timeout: float) -> list[tuple[InFlight, Outcome]]:
        """Wait up to ``timeout`` for all attempts in flight; returns those that ended."""
        import ray

        refs = list(self.flights)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        return [(self.flights.pop(r), outcome(r)) for r in ready]

    def drain(self, buffer: CommitBuffer, ask: Ask) -> None:
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
        buffer.add_started(started)
        buffer.add_reports(reports)
        if questions:
            self._answer(questions, ask)
        self._next_drain = time.monotonic() + DRAIN_PERIOD_S

    def prune(self, tokens: list[str]) -> None:
        """Advise the attempts of ``tokens`` to stop."""
        self._channel.prune.remote(tokens)

    def cancel_owner(self, owner_id: int) -> None:
        """Stop the attempts of ``owner_id`` in flight."""
        import ray

        for ref in [r for r, f in self.flights.items() if f.claim.owner_id == owner_id]:
            ray.cancel(ref, force=True)
            del self.flights[ref]

    def abandon(self) -> None:
        """Stop every attempt in flight; the next holder of their owners queues them again.
        Only those still running are cancelled, and their ends are waited for (a few seconds
        at most): a cancel that crosses a task's reply can crash Ray's core worker in this
        process as it exits, with a C++ stack trace on stderr."""
        import ray

        refs = list(self.flights)
        self.flights.clear()
        if not refs:
            return
        _, running = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in running:
            ray.cancel(ref, force=True)
        if running:
            ray.wait(running, num_returns=len(running), timeout=ABANDON_WAIT_S)

    def _wait_timeout(self, max_wait_s: float) -> float:
        deadlines = [f.deadline for f in self.flights.values() if f.deadline is not None]
        until = min(deadlines, default=time.monotonic() + 1.0) - time.monotonic()
        return max(0.0, min(until, DRAIN_PERIOD_S, max_wait_s))

    def _expire(self) -> list[tuple[InFlight, Outcome]]:
        import ray

        now = time.monotonic()
        late = [r for r, f in self.flights.items() if f.deadline is not None and f.deadline <= now]
        ended = []
        for ref in late:
            flight = self.flights.pop(ref)
            ray.cancel(ref, force=True)
            error = f"timed out after {flight.claim.timeout_s:g} s"
            ended.append((flight, Outcome(kind="timeout", error=error)))
        return ended

    def _answer(self, questions: list[tuple[int, str, Any]], ask: Ask) -> None:
        """Owners answer their running tasks' questions (Optuna-style suggest calls)."""
        by_token = self.by_token()
        answers = []
        for key, token, question in questions:
            if token not in by_token:
                answers.append((key, {"error": "the attempt is no longer current"}))
                continue
            try:
                answers.append((key, {"value": ask(by_token[token].claim, question)}))
            except ValueError as exc:
                answers.append((key, {"error": str(exc)}))
        self._channel.answer.remote(answers)
