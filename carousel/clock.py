"""The clocks the emulator and the orchestrator run on: an event heap of our own.

A heap of ``(time, sequence, callback, argument)`` runs a campaign of 100,000 files several
times faster than SimPy processes on this machine (see README: Data carousel), and the
carousel needs nothing SimPy adds (its resources here are counters).

:class:`SimClock` jumps from event to event (simulation mode); :class:`WallClock` runs the
same events on an accelerated wall clock (live mode).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Any


class SimClock:
    """A simulated clock: callbacks scheduled at times (seconds), run in time order.

    Not thread-safe: one thread schedules and runs.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._seq = 0

    def at(self, when: float, callback: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``callback(arg)`` at time ``when`` (now if ``when`` is in the past)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(when, self.now), self._seq, callback, arg))

    def after(self, delay: float, callback: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``callback(arg)`` ``delay`` seconds from now."""
        self.at(self.now + delay, callback, arg)

    def run(self, until: float | None = None) -> None:
        """Run events in time order until none is left (or the next is after ``until``)."""
        heap = self._heap
        pop = heapq.heappop
        while heap and (until is None or heap[0][0] <= until):
            when, _, callback, arg = pop(heap)
            self.now = when
            callback(arg)
        if until is not None and until > self.now:
            self.now = until

    @property
    def pending(self) -> int:
        """Events scheduled and not yet run."""
        return len(self._heap)


class WallClock(SimClock):
    """The simulated clock tied to the wall clock, ``speedup`` times faster.

    Args:
        speedup: simulated seconds per wall-clock second.
        start: the simulated time it starts at (a resumed run goes on from its last).
    """

    def __init__(self, speedup: float, start: float = 0.0) -> None:
        super().__init__()
        self.speedup = speedup
        self.now = self.origin = start
        self._start = time.monotonic()

    def restart(self, start: float) -> None:
        """Go on from simulated time ``start`` now."""
        self.now = self.origin = start
        self._start = time.monotonic()

    def sim_time(self) -> float:
        """The simulated time that the wall clock has reached."""
        return self.origin + (time.monotonic() - self._start) * self.speedup

    def catch_up(self) -> None:
        """Run every event due by the wall clock, and set ``now`` to it."""
        self.run(until=self.sim_time())
