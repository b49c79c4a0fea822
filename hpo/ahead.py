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
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from hpo.proposers import Point, Proposer

#: An ask that costs less than this per point is made on the dispatch path, when needed: a
#: background ask shares the head's interpreter (its lock) with the dispatch loop and is
#: picked up at the loop's next round, which costs more than an ask of a few tens of ms
#: (TPE through 300 points of a 10 ms objective: 33 evaluations/s inline, 6 with a 5 ms
#: threshold, on a loaded 2-core machine).
INLINE_ASK_S = 0.05


class Asker:
    """A proposer's asks and tells, the asks made ahead where they are slow.

    Args:
        proposer: the study's proposer.
    """

    def __init__(self, proposer: Proposer) -> None:
        self.proposer = proposer
        self.exhausted = False
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
        return self._future is not None and not self._future.done()

    def take(self, n: int) -> list[Point]:
        """Up to ``n`` points made already."""
        self._collect()
        return [self._ready.popleft() for _ in range(min(n, len(self._ready)))]

    def request(self, n: int, *, now: bool = False) -> None:
        """Have ``n`` more points ready: made at once if asks are cheap or ``now`` (nothing
        else to do meanwhile: an ask in the background is waited for, and counts), else in
        the background (one ask at a time; a request while one runs is dropped)."""
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
        self._collect()
        while self._ready:
            self.tell(self._ready.popleft(), None)
        with self._lock:
            self._told()

    def close(self) -> None:
        """Wait for an ask in flight and stop the background thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _ask(self, n: int) -> list[Point]:
        with self._lock:
            self._told()
            start = time.perf_counter()
            points = self.proposer.ask(n)
            self.ask_s = (time.perf_counter() - start) / max(n, 1)
        if len(points) < n:
            self.exhausted = True
        return points

    def _collect(self) -> None:
        """Move the points of a finished background ask to the buffer (its error, raised)."""
        if self._future is not None and self._future.done():
            future, self._future = self._future, None
            self._ready.extend(future.result())

    def _told(self) -> None:
        while self._tells:
            point, args, kwargs = self._tells.pop(0)
            self.proposer.tell(point, *args, **kwargs)
