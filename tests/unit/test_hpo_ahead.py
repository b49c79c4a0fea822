"""Asks made ahead, off the dispatch path: the buffer, the background ask, queued tells."""

from __future__ import annotations

import threading
import time

from hpo.ahead import INLINE_ASK_S, Asker
from hpo.proposers import Point, Proposer
from hpo.spec import StudySpec

SPEC = StudySpec.from_mapping({
    "name": "a", "objective": "m:f", "proposer": "optuna:random",
    "space": {"x": {"type": "float", "low": 0, "high": 1}},
})  # fmt: skip


class Slow(Proposer):
    """Takes ``delay`` seconds an ask, until released; records what it is told, in order."""

    def __init__(self, delay: float) -> None:
        super().__init__(SPEC, None)
        self.delay = delay
        self.asked = 0
        self.told: list[float] = []
        self.release = threading.Event()

    def ask(self, n):
        if self.asked:
            self.release.wait(5)
        time.sleep(self.delay)
        points = [Point({"x": (self.asked + i) / 100}, self.asked + i) for i in range(n)]
        self.asked += n
        return points

    def tell(self, point, values, constraints=None, *, pruned=False):
        self.told.append(point.params["x"])

    def restore(self, params, values, constraints=None, **kw):
        return None


def test_a_cheap_proposer_is_asked_at_once_on_the_dispatch_path():
    asker = Asker(Slow(0.0))
    asker.request(2)
    assert len(asker.take(5)) == 2 and not asker.asking


def test_a_slow_proposer_is_asked_in_the_background_and_tells_wait_their_turn():
    slow = Slow(INLINE_ASK_S * 4)
    asker = Asker(slow)
    asker.request(2)  # the first ask is made at once, and measured
    first = asker.take(2)
    assert len(first) == 2 and asker.ask_s >= INLINE_ASK_S
    asker.request(3)  # slow: made in the background
    assert asker.asking and asker.take(3) == []
    asker.tell(first[0], [1.0])  # a slow proposer is told before its next ask, off this path
    asker.tell(first[1], [2.0])
    assert slow.told == []
    slow.release.set()
    _wait(asker)
    assert len(asker.take(3)) == 3
    asker.request(1)
    _wait(asker)
    assert slow.told == [first[0].params["x"], first[1].params["x"]]
    asker.close()


def _wait(asker):
    deadline = time.monotonic() + 5
    while asker.asking and time.monotonic() < deadline:
        time.sleep(0.01)


def test_points_never_handed_out_are_told_as_failed_when_the_study_stops():
    slow = Slow(0.0)
    asker = Asker(slow)
    asker.request(3)
    asker.take(1)
    asker.drop()
    assert len(slow.told) == 2 and asker.ready == 0
