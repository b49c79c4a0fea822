"""Asks off the dispatch path: a proposer that is slow to ask works while the evaluations run.

The dispatcher asks a study for new points whenever slots are free; a proposer that takes
seconds to ask (a Gaussian process) would hold the whole head meanwhile: no result recorded,
no other point handed in. :class:`Asker` keeps a buffer of points made ahead by one
background thread, sized to the slots that the points in flight will free, so that a slot
that frees is filled at once from the buffer. A proposer cheap to ask (under
:data:`INLINE_ASK_S` a point, as measured) is asked on the dispatch path instead, when the
points are needed, so that they are made with the latest results.

The proposer is used by one thread at a time (a lock). For a slow proposer the outcomes are
queued and told by the background thread before its next ask (a model refitted as it is
told, as scikit-optimize's, would hold the dispatch path otherwise).

A thread shares the head's interpreter: where the proposer is what the workers wait for (an
ask of a point takes longer than an evaluation over the points run at once), a proposer whose
asks are independent given the pending points (:attr:`~hpo.proposers.Proposer.replicable`,
Optuna's TPE with its constant liar) is asked in processes of its own instead, one for each
point run at once, up to the CPUs (:mod:`hpo.replicas`); the head then only registers and
tells points.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from hpo.replicas import Replicas, replica_count

if TYPE_CHECKING:
    from collections.abc import Callable

    from hpo.proposers import Point, Proposer

#: An ask that costs less than this per point is made on the dispatch path, when needed: a
#: background ask shares the head's interpreter (its lock) with the dispatch loop and is
#: picked up at the loop's next round, which costs more than an ask of a few tens of ms
#: (TPE through 300 points of a 10 ms objective: 33 evaluations/s inline, 6 with a 5 ms
#: threshold, on a loaded 2-core machine).
INLINE_ASK_S = 0.05

#: Asks that cost at least this a point, where they are what the workers wait for, are made in
#: ask processes (where the proposer allows it): a process's round trip costs about a ms.
REPLICA_ASK_S = 0.01


class Asker:
    """A proposer's asks and tells, the asks made ahead where they are slow.

    Args:
        proposer: the study's proposer.
        parallel: the points run at once; where above 0 and the proposer is
            :attr:`~hpo.proposers.Proposer.replicable`, slow asks are made in ask processes.
    """

    def __init__(self, proposer: Proposer, *, parallel: int = 0) -> None:
        self.proposer = proposer
        self.parallel = parallel if proposer.replicable else 0
        self.exhausted = False
        #: An evaluation's mean run time (told by :meth:`observe`), None before the first.
        self.run_s: float | None = None
        self._runs = 0
        self._replicas: Replicas | None = None
        #: Points made by ask processes so far.
        self.made_elsewhere = 0
        #: Seconds per point of the last ask (None before the first).
        self.ask_s: float | None = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future[list[Point]] | None = None
        self._ready: deque[Point] = deque()
        self._tells: list[tuple[Point, tuple[Any, ...], dict[str, Any]]] = []

    @property
    def ready(self) -> int:
        """Points made and not handed out yet."""
        self._collect()
        return len(self._ready)

    @property
    def asking(self) -> bool:
        """Whether an ask runs in the background now."""
        if self._replicas is not None:
            return self._replicas.asking > 0
        return self._future is not None and not self._future.done()

    @property
    def in_flight(self) -> int:
        """Points being made in the background now."""
        if self._replicas is not None:
            return self._replicas.asking
        return 1 if self.asking else 0

    @property
    def replicas(self) -> int:
        """Ask processes started (0: the head asks)."""
        return 0 if self._replicas is None else self._replicas.count

    def observe(self, run_s: float) -> None:
        """An evaluation's run time, which says whether asks are what workers wait for."""
        self._runs += 1  # the mean of the first 50, then a moving one
        last = self.run_s or 0.0
        self.run_s = last + (run_s - last) / min(self._runs, 50)

    def take(self, n: int) -> list[Point]:
        """Up to ``n`` points made already."""
        self._collect()
        return [self._ready.popleft() for _ in range(min(n, len(self._ready)))]

    def request(self, n: int, *, now: bool = False) -> None:
        """Have ``n`` more points ready: made at once if asks are cheap or ``now`` (nothing
        else to do meanwhile: an ask in the background is waited for, and counts), else in
        the background (one ask at a time; a request while one runs is dropped)."""
        if self._replicated():
            self._request_replicas(n, now=now)
            return
        if now and self._future is not None:
            self._future.result()
            self._collect()
            n -= len(self._ready)  # made by the background ask meanwhile
        if n <= 0 or self.exhausted or self.asking:
            return
        self._collect()
        if now or not self._slow():
            self._ready.extend(self._ask(n))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="idds-ask")
        self._future = self._pool.submit(self._ask, n)

    def tell(self, point: Point, *args: Any, **kwargs: Any) -> None:
        """Tell an outcome (:meth:`Proposer.tell`): now if the proposer is cheap and free,
        else before its next use (a slow proposer refits as it is told: the background
        ask does it)."""
        self._tells.append((point, args, kwargs))
        if self._replicas is not None:  # the head's study only records: told now
            with self._lock:
                self._told()
            return
        if self._slow():
            return
        if self._lock.acquire(blocking=False):
            try:
                self._told()
            finally:
                self._lock.release()

    def _slow(self) -> bool:
        return self.ask_s is not None and self.ask_s >= INLINE_ASK_S

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the proposer's ``fn`` (a report, a define-by-run suggestion) in turn."""
        with self._lock:
            self._told()
            return fn(*args, **kwargs)

    def drop(self) -> None:
        """Tell the points made and never handed out as failed (the study stops)."""
        if self._future is not None:
            self._future.result()
        while self._replicas is not None and self._replicas.asking:
            self._collect(timeout=None)
        self._collect()
        while self._ready:
            self.tell(self._ready.popleft(), None)
        with self._lock:
            self._told()

    def close(self) -> None:
        """Wait for an ask in flight and stop the background thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._replicas is not None:
            self._replicas.close()

    def _ask(self, n: int) -> list[Point]:
        with self._lock:
            self._told()
            start = time.perf_counter()
            points = self.proposer.ask(n)
            self.ask_s = (time.perf_counter() - start) / max(n, 1)
            if self._replicas is not None:
                for point in points:
                    self._replicas.pending(point)
        if len(points) < n:
            self.exhausted = True
        return points

    def _collect(self, timeout: float | None = 0.0) -> None:
        """Move the points of a finished background ask to the buffer (its error, raised)."""
        if self._replicas is not None:
            self._register(self._replicas.results(timeout))
        if self._future is not None and self._future.done():
            future, self._future = self._future, None
            self._ready.extend(future.result())

    def _told(self) -> None:
        while self._tells:
            point, args, kwargs = self._tells.pop(0)
            self.proposer.tell(point, *args, **kwargs)
            if self._replicas is not None:
                self._replicas.final(point)

    # --- ask processes ---------------------------------------------------------------------

    def _replicated(self) -> bool:
        """Whether asks go to ask processes: started already, or worth starting now (asks
        slow enough, and slower than the workers need points)."""
        if self._replicas is not None:
            return True
        ask_s, run_s = self.ask_s, self.run_s
        if not self.parallel or ask_s is None or ask_s < REPLICA_ASK_S:
            return False
        if run_s is not None and ask_s * self.parallel < run_s:
            return False
        with self._lock:
            self._told()
            self._replicas = Replicas(self.proposer, replica_count(self.parallel))  # type: ignore[arg-type]
        return True

    def _request_replicas(self, n: int, *, now: bool) -> None:
        assert self._replicas is not None
        replicas = self._replicas
        self._collect()
        want = n - replicas.asking
        if want > 0 and not self.exhausted:
            if replicas.idle:
                replicas.ask(want)
            elif now and not replicas.asking:  # none has started yet: the head asks meanwhile
                self._ready.extend(self._ask(want))
        while now and not self._ready and replicas.asking:
            self._collect(timeout=None)

    def _register(self, made: list[tuple[int, dict[str, Any]]]) -> None:
        """The points the ask processes made, as pending trials of the head's study."""
        assert self._replicas is not None
        for key, params in made:
            with self._lock:
                point = self.proposer.restore(params, None, pending=True)
            assert point is not None
            self._replicas.pending(point, key)
            self._ready.append(point)
            self.made_elsewhere += 1
