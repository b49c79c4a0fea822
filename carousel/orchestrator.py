"""The orchestrator: requests staging as its policy says, within the disk-buffer budget;
hands each processable file to the processing side at once; releases files as its policy
says; keeps the books that the metrics come from.

The same orchestrator runs in simulation mode (processing on the simulated clock,
:class:`SimProcessing`) and in live mode (processing as tasks of the scheduling core,
:mod:`carousel.live`).
"""

from __future__ import annotations

import abc
import math
import random
from collections import deque

from carousel.catalog import Catalog
from carousel.clock import SimClock
from carousel.dm import DataManagement
from carousel.policies import Policy
from carousel.spec import ProcessingSpec


class Processing(abc.ABC):
    """Where staged files are processed; reports back through
    :meth:`Orchestrator.on_processed` and :meth:`Orchestrator.on_processing_retry`."""

    orchestrator: Orchestrator

    @abc.abstractmethod
    def submit(self, files: list[int]) -> None:
        """Process ``files`` (each once; failed attempts are retried here, not re-staged)."""


class Orchestrator:
    """Drives one campaign: staging requests, processing hand-off, release.

    The bytes requested and not yet released (on disk or on their way) never exceed
    ``buffer``; a file is released as soon as the policy allows; every file ends processed,
    failed (processing attempts exhausted) or lost (staging attempts exhausted).

    Args:
        catalog: the campaign's files.
        dm: the data-management system that stages and releases them.
        policy: what to request, process and release when.
        processing: where files are processed.
        clock: the clock events are timed by.
        buffer: the disk-buffer budget in bytes (``None``: unbounded).
    """

    def __init__(
        self,
        catalog: Catalog,
        dm: DataManagement,
        policy: Policy,
        processing: Processing,
        clock: SimClock,
        buffer: float | None,
    ) -> None:
        self.catalog, self.dm, self.policy = catalog, dm, policy
        self.processing, self.clock, self.buffer = processing, clock, buffer
        n = len(catalog)
        self.reserved = 0.0  # requested and not released
        self.on_disk = 0.0  # staged and not released
        self.peak_reserved = 0.0
        self.requested_at = [math.nan] * n
        self.staged_at = [math.nan] * n
        self.processed_at = [math.nan] * n  # the end of its last processing attempt
        self.released_at = [math.nan] * n
        self.request_order: list[int] = []
        self.lost: list[int] = []
        self.failed: list[int] = []  # processing attempts exhausted
        self.staging_retries = 0
        self.processing_retries = 0
        self.trace_t: list[float] = [0.0]
        self.trace_bytes: list[float] = [0.0]
        self._over = 0

    def start(self) -> None:
        """Attach to the data-management system and make the first requests."""
        self.dm.attach(self)
        self.processing.orchestrator = self
        self._fill()

    @property
    def finished(self) -> bool:
        """Every file is processed, failed or lost."""
        return self._over == len(self.catalog)

    def _fill(self) -> None:
        free = None if self.buffer is None else self.buffer - self.reserved
        files = self.policy.next_requests(free)
        if not files:
            return
        now, sizes = self.clock.now, self.catalog.sizes
        for f in files:
            self.requested_at[f] = now
            self.reserved += sizes[f]
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        self.request_order += files
        self.dm.request_staging(files)

    def _occupancy(self, delta: float) -> None:
        self.on_disk += delta
        self.trace_t.append(self.clock.now)
        self.trace_bytes.append(self.on_disk)

    # --- from the data-management system ---------------------------------------------------

    def on_staged(self, file: int) -> None:
        self.staged_at[file] = self.clock.now
        self._occupancy(self.catalog.sizes[file])
        ready = self.policy.on_staged(file)
        if ready:
            self.processing.submit(ready)

    def on_staging_failed(self, file: int, lost: bool) -> None:
        if not lost:
            self.staging_retries += 1
            return
        self.lost.append(file)
        self.reserved -= self.catalog.sizes[file]
        self._over += 1
        ready = self.policy.on_lost(file)
        if ready:
            self.processing.submit(ready)
        self._fill()

    # --- from processing -------------------------------------------------------------------

    def on_processing_retry(self, file: int) -> None:
        """An attempt of ``file`` failed and will be retried (the file stays on disk)."""
        self.processing_retries += 1

    def on_processed(self, file: int, ok: bool) -> None:
        """``file``'s processing is over (``ok``: it succeeded)."""
        self.processed_at[file] = self.clock.now
        self._over += 1
        if not ok:
            self.failed.append(file)
        for f in self.policy.on_processed(file):
            self._release(f)
        self._fill()

    def _release(self, file: int) -> None:
        self.dm.release(file)
        self.released_at[file] = self.clock.now
        size = self.catalog.sizes[file]
        self.reserved -= size
        self._occupancy(-size)


class SimProcessing(Processing):
    """Processing on the simulated clock: ``slots`` at once, first come first served; a
    failed attempt goes back to the front of the queue (the file is still on disk)."""

    def __init__(self, spec: ProcessingSpec, catalog: Catalog, clock: SimClock, seed: int) -> None:
        self.spec, self.catalog, self.clock = spec, catalog, clock
        self._rng = random.Random(seed)
        self._queue: deque[int] = deque()
        self._free = spec.slots
        self._attempts = [0] * len(catalog)
        self.busy_s = 0.0

    def submit(self, files: list[int]) -> None:
        self._queue.extend(files)
        self._start()

    def _start(self) -> None:
        spec, rng, sizes = self.spec, self._rng, self.catalog.sizes
        low, high = spec.jitter
        per_byte = spec.time_s / spec.time_per
        while self._free and self._queue:
            f = self._queue.popleft()
            self._free -= 1
            seconds = per_byte * sizes[f] * rng.uniform(low, high)
            self.busy_s += seconds
            self.clock.at(self.clock.now + seconds, self._done, f)

    def _done(self, f: int) -> None:
        self._free += 1
        self._attempts[f] += 1
        if self._rng.random() >= self.spec.failure:
            self.orchestrator.on_processed(f, True)
        elif self._attempts[f] < self.spec.max_attempts:
            self.orchestrator.on_processing_retry(f)
            self._queue.appendleft(f)
        else:
            self.orchestrator.on_processed(f, False)
        self._start()
