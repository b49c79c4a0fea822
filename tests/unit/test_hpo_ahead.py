"""Asks made ahead, off the dispatch path: the buffer, the background ask, queued tells."""

from __future__ import annotations

import threading
import time

from hpo.ahead import INLINE_ASK_S, REPLICA_ASK_S, Asker
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


def _tpe(seed=1):
    from hpo.proposers import make_proposer

    spec = StudySpec.from_mapping({
        "name": "r", "objective": "m:f", "proposer": "optuna:tpe", "seed": seed,
        "space": {k: {"type": "float", "low": -5.0, "high": 5.0} for k in "ab"},
    })  # fmt: skip
    return make_proposer(spec, seed)


def test_slow_asks_of_tpe_are_made_in_ask_processes_that_hear_every_outcome():
    tpe = _tpe()
    for i in range(20):  # a history the replicas start from
        tpe.restore({"a": i / 10, "b": -i / 10}, [float(i)])
    asker = Asker(tpe, parallel=2)
    asker.ask_s = REPLICA_ASK_S  # as if measured: asks the workers would wait for
    made = []
    deadline = time.monotonic() + 120
    while asker.made_elsewhere < 6 and time.monotonic() < deadline:
        asker.request(2, now=True)  # the head asks itself until the processes have started
        for point in asker.take(2):
            made.append(point)
            asker.tell(point, [point.params["a"] ** 2 + point.params["b"] ** 2])
    assert asker.replicas == 2 and asker.made_elsewhere >= 6
    trials = tpe.study.get_trials(deepcopy=False)
    assert len(trials) == 20 + len(made)  # every point is a trial of the head's study, told
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({tuple(p.params.values()) for p in made}) == len(made)
    asker.request(2)
    asker.drop()  # the points being made are waited for, and told as failed
    assert asker.ready == 0 and not asker.asking
    asker.close()


def test_proposers_whose_asks_depend_on_each_other_are_asked_in_the_head():
    asker = Asker(Slow(0.0), parallel=4)  # not replicable: a thread, as before
    assert asker.parallel == 0
    tpe = _tpe()
    assert Asker(tpe, parallel=2).parallel == 2
    tpe.spec.proposer_options["constant_liar"] = False  # without the liar, copies collide
    assert not tpe.replicable
