"""Claims made ahead: an owner whose next tasks wait on nothing in flight has up to ``ahead``
of them claimed beyond ``parallel`` and held in the head; a slot that frees gets one launched
before the result that freed it is recorded, and a head that stops gives the held ones back
to the queue as if never claimed (no attempt spent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from idds import owners as owners_mod
from idds import tasks as tq
from idds.dispatch import Dispatcher, InFlight, LocalBroker, TaskOwner
from idds.dispatch.ray_side import RaySide
from idds.tasks import Outcome, TaskSpec, TaskState

if TYPE_CHECKING:
    from idds.dispatch import Placement
    from idds.tasks import Claim


class _HeldRay(RaySide):
    """Runs nothing; keeps what it launched in flight, and notes, at each launch, how many
    of the owner's tasks had succeeded in the database."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__()
        self.engine = engine
        self.launched: list[tuple[int, int]] = []  # (task number, succeeded before it)

    def launch(self, claim: Claim, placement: Placement) -> None:
        with self.engine.begin() as conn:
            done = tq.counts(conn, claim.owner_id).get(TaskState.SUCCEEDED, 0)
        self.launched.append((claim.number, done))
        self.flights[claim.token] = InFlight(claim, claim.token, None, placement.site)

    def end(self, dispatcher: Dispatcher, number: int) -> None:
        token = next(t for t, f in self.flights.items() if f.claim.number == number)
        dispatcher.buffer.add(self.flights.pop(token), Outcome(kind="ok", result=number))


class _Owner(TaskOwner):
    def __init__(self, owner_id: int, tasks: int, ahead: int) -> None:
        self.owner_id, self.parallel, self.ahead = owner_id, 2, ahead
        self.specs = [
            TaskSpec(number=i, kind="t", payload={}, max_attempts=1) for i in range(tasks)
        ]
        self.finals: list[int] = []

    def new_tasks(self, free: int) -> list[TaskSpec]:
        out, self.specs = self.specs[:free], self.specs[free:]
        return out

    def on_final(self, number: int, state: TaskState, result: Any, error: str | None) -> None:
        self.finals.append(number)

    def done(self) -> bool:
        return False


class _SitesBroker(LocalBroker):
    """A broker whose places may be gone by launch (as a sites file's)."""

    lasting_places = False


def _started(
    engine, owner: _Owner, broker: LocalBroker | None = None
) -> tuple[Dispatcher, _HeldRay]:
    with engine.begin() as conn:
        owner.owner_id = owners_mod.create(conn, "test", f"ahead-{owner.ahead}", {})
    ray = _HeldRay(engine)
    d = Dispatcher(engine, broker=broker or LocalBroker(), ray_side=ray)
    assert d.hold(owner.owner_id)
    d.start([owner])
    d.link.open()
    return d, ray


def _counts(engine, owner_id: int) -> dict[TaskState, int]:
    with engine.begin() as conn:
        return {s: n for s, n in tq.counts(conn, owner_id).items() if n}


@pytest.mark.parametrize("ahead", [0, 2])
def test_a_freed_slot_gets_a_held_claim_before_its_result_is_recorded(engine, ahead):
    owner = _Owner(0, tasks=8, ahead=ahead)
    d, ray = _started(engine, owner)
    d.cycle()
    assert [n for n, _ in ray.launched] == [0, 1]  # never more than parallel in flight
    assert _counts(engine, owner.owner_id) == {TaskState.DISPATCHED: 2 + ahead}
    ray.end(d, 0)
    d.cycle()
    assert ray.launched[2] == (2, 0 if ahead else 1)  # launched before task 0 was recorded
    assert owner.finals == [0] and len(ray.flights) == 2


def test_a_head_that_stops_gives_its_held_claims_back(engine):
    owner = _Owner(0, tasks=8, ahead=2)
    d, ray = _started(engine, owner)
    d.cycle()
    d._give_back_ready()
    counts = _counts(engine, owner.owner_id)
    assert counts == {TaskState.DISPATCHED: 2, TaskState.PENDING: 2}  # the two launched stay
    with engine.begin() as conn:
        attempts = conn.execute(sa.select(sa.func.count()).select_from(tq.attempts)).scalar()
        spent = conn.execute(
            sa.select(tq.tasks.c.number).where(tq.tasks.c.attempt > 0).order_by("number")
        ).scalars().all()  # fmt: skip
    assert attempts == 2 and spent == [0, 1]


def test_nothing_is_claimed_ahead_where_places_may_be_gone_by_launch(engine):
    owner = _Owner(0, tasks=8, ahead=2)
    d, ray = _started(engine, owner, _SitesBroker())
    d.cycle()
    assert [n for n, _ in ray.launched] == [0, 1]
    assert _counts(engine, owner.owner_id) == {TaskState.DISPATCHED: 2}


class _InterruptedRay(_HeldRay):
    """Ctrl-C lands inside the third launch, before the attempt is in flight."""

    def launch(self, claim: Claim, placement: Placement) -> None:
        if len(self.launched) == 2:
            raise KeyboardInterrupt
        super().launch(claim, placement)


def test_a_claim_whose_launch_ctrl_c_cut_short_is_given_back(engine):
    owner = _Owner(0, tasks=8, ahead=2)
    with engine.begin() as conn:
        owner.owner_id = owners_mod.create(conn, "test", "interrupted", {})
    ray = _InterruptedRay(engine)
    d = Dispatcher(engine, broker=LocalBroker(), ray_side=ray)
    assert d.hold(owner.owner_id)
    d.start([owner])
    d.link.open()
    d.cycle()  # tasks 0 and 1 launched, 2 and 3 held
    ray.end(d, 0)
    with pytest.raises(KeyboardInterrupt):
        d.cycle()  # the freed slot's launch of task 2 is cut short
    d._give_back_ready()
    # Tasks 0 and 1 were launched (0's result, not recorded yet, is the wind-down's to
    # record); 2, whose launch was cut short, and 3 are back in the queue.
    assert _counts(engine, owner.owner_id) == {TaskState.DISPATCHED: 2, TaskState.PENDING: 2}
