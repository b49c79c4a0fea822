"""The dispatcher through a database outage, without stopping a server: its connection is
swapped for one whose next commit fails, before reaching the database or after it (the
answer lost with the connection, as when PostgreSQL stops during a COMMIT).

What must hold: results held in memory are recorded once the database is back, each exactly
once, and each owner is told of each final state exactly once; tasks handed in or claimed in a
transaction whose fate was unknown are neither lost nor doubled; a head whose owner was taken
over meanwhile stands down; an outage longer than the limit is one clear error.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from idds import owners as owners_mod
from idds import tasks as tq
from idds.dispatch import Dispatcher, InFlight, LocalBroker, TaskOwner, Unrecorded, outage
from idds.dispatch.outage import Link, connection_lost
from idds.dispatch.ray_side import RaySide
from idds.errors import DatabaseError, LeaseLost
from idds.tasks import Outcome, TaskSpec, TaskState

if TYPE_CHECKING:
    from collections.abc import Callable

    from idds.dispatch import Placement
    from idds.tasks import Claim


def _lost() -> sa.exc.OperationalError:
    orig = Exception("server closed the connection unexpectedly")
    return sa.exc.OperationalError("COMMIT", {}, orig, connection_invalidated=True)


class _Flaky:
    """A connection whose next transaction fails at its commit: rolled back, or committed
    with the answer lost (``committed``); ``meanwhile`` runs before the failure shows."""

    def __init__(
        self, conn: sa.Connection, *, committed: bool, meanwhile: Callable[[], None] = bool
    ) -> None:
        self.conn = conn
        self.committed = committed
        self.meanwhile = meanwhile

    @contextlib.contextmanager
    def begin(self):
        with self.conn.begin() as tx:
            yield tx
            if self.committed:
                tx.commit()
            else:
                tx.rollback()
        self.meanwhile()
        raise _lost()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


class _NoRay(RaySide):
    """Runs nothing: notes the tokens of the claims it is asked to launch."""

    def __init__(self) -> None:
        super().__init__()
        self.launched: list[str] = []

    def launch(self, claim: Claim, placement: Placement) -> None:
        self.launched.append(claim.token)


class _Owner(TaskOwner):
    def __init__(self, owner_id: int, specs: list[TaskSpec] = ()) -> None:
        self.owner_id = owner_id
        self.parallel = 4
        self.specs = list(specs)
        self.finals: list[tuple[int, TaskState, Any]] = []

    def new_tasks(self, free: int) -> list[TaskSpec]:
        out, self.specs = self.specs[:free], self.specs[free:]
        return out

    def on_final(self, number: int, state: TaskState, result: Any, error: str | None) -> None:
        self.finals.append((number, state, result))

    def done(self) -> bool:
        return False


def _spec(number: int) -> TaskSpec:
    return TaskSpec(number=number, kind="t", payload={"callable": "m:f"}, max_attempts=2)


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch):
    monkeypatch.setattr(outage, "RECONNECT_BACKOFF_S", (0.01, 0.05))


@pytest.fixture
def owner_id(engine) -> int:
    with engine.begin() as conn:
        return owners_mod.create(conn, "test", "outage", {})


def _dispatcher(
    engine, owner: _Owner, *, in_flight: int = 0, **kw: Any
) -> tuple[Dispatcher, list[InFlight]]:
    """A dispatcher holding ``owner``, started as :meth:`Dispatcher.run` does, without Ray
    (``d.ray.launched`` lists what it launched), with ``in_flight`` tasks of the owner
    claimed by it."""
    d = Dispatcher(engine, broker=LocalBroker(), outage_s=5.0, ray_side=_NoRay(), **kw)
    assert d.hold(owner.owner_id)
    with engine.begin() as conn:
        tq.submit(conn, owner.owner_id, [_spec(100 + i) for i in range(in_flight)])
        claims = tq.claim(conn, owner.owner_id, in_flight, lease_seconds=30)
        tq.start_attempts(conn, [(c, "local") for c in claims], head=d.head)
    d.start([owner])
    d.link.open()
    return d, [InFlight(c, None, None, "local") for c in claims]


def _attempts(engine, state: str) -> int:
    with engine.begin() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(tq.attempts.c.state == state)
        ).scalar_one()


@pytest.mark.parametrize("committed", [False, True], ids=["rolled-back", "answer-lost"])
def test_results_held_through_an_outage_are_recorded_once(engine, owner_id, committed):
    owner = _Owner(owner_id)
    d, flights = _dispatcher(engine, owner, in_flight=3)
    for f in flights:
        d.buffer.add(f, Outcome(kind="ok", result=f.claim.number * 10))
    d.link.conn = _Flaky(d.link.open(), committed=committed)

    assert d.cycle() is False  # cut short; the outage waited out
    assert d.buffer.pending == 3 and owner.finals == []  # held, nobody told yet
    assert d.cycle() is True

    assert sorted(owner.finals) == [(i, TaskState.SUCCEEDED, i * 10) for i in range(100, 103)]
    assert d.buffer.pending == 0 and d.open_tasks(owner_id) == 0
    assert _attempts(engine, "succeeded") == 3
    with engine.begin() as conn:
        assert tq.counts(conn, owner_id)[TaskState.SUCCEEDED] == 3
    assert d.ray.launched == []


@pytest.mark.parametrize("committed", [False, True], ids=["rolled-back", "answer-lost"])
def test_tasks_handed_in_and_claimed_during_an_outage_are_neither_lost_nor_doubled(
    engine, owner_id, committed
):
    owner = _Owner(owner_id, [_spec(0), _spec(1)])
    d, _ = _dispatcher(engine, owner)
    d.link.conn = _Flaky(d.link.open(), committed=committed)

    assert d.cycle() is False
    # A claim committed after all is launched at once; otherwise nothing ran yet.
    assert len(d.ray.launched) == (2 if committed else 0)
    d.cycle()  # hands in (again) only what was not recorded, claims, launches

    assert len(d.ray.launched) == 2 and len(set(d.ray.launched)) == 2
    with engine.begin() as conn:
        rows = conn.execute(sa.select(tq.tasks.c.number, tq.tasks.c.attempt)).all()
        assert sorted(rows) == [(0, 1), (1, 1)]
        assert conn.execute(sa.select(sa.func.count()).select_from(tq.attempts)).scalar_one() == 2
    assert d.buffer.unrecorded() == Unrecorded()  # no task or claim held any more


def test_a_head_whose_owner_was_taken_during_the_outage_stands_down(engine, owner_id):
    owner = _Owner(owner_id)
    d, flights = _dispatcher(engine, owner, in_flight=2, lease_seconds=0.5)
    for f in flights:
        d.buffer.add(f, Outcome(kind="ok", result=1.0))
    other = Dispatcher(engine, broker=LocalBroker(), lease_seconds=30)

    def taken_over() -> None:
        time.sleep(0.6)  # the lease runs out while the database is away ...
        assert other.hold(owner_id)  # ... and another head takes the owner over

    d.link.conn = _Flaky(d.link.open(), committed=False, meanwhile=taken_over)
    with pytest.raises(LeaseLost):
        d.cycle()
    assert owner.finals == []
    assert _attempts(engine, "succeeded") == 0  # the takeover queued them again instead


def test_a_lease_that_ran_out_unclaimed_is_kept(engine, owner_id):
    owner = _Owner(owner_id)
    d, flights = _dispatcher(engine, owner, in_flight=1, lease_seconds=0.3)
    d.buffer.add(flights[0], Outcome(kind="ok", result=2.0))
    d.link.conn = _Flaky(d.link.open(), committed=False)
    assert d.cycle() is False
    time.sleep(0.4)  # past the lease, and no other head came
    d.cycle()
    assert owner.finals == [(100, TaskState.SUCCEEDED, 2.0)]


def test_a_paused_head_renews_before_claiming_and_claims_nothing_once_taken_over(engine, owner_id):
    owner = _Owner(owner_id, [_spec(0)])
    d, _ = _dispatcher(engine, owner, lease_seconds=0.3)
    time.sleep(0.4)  # "paused" past its lease
    assert Dispatcher(engine, broker=LocalBroker()).hold(owner_id)
    with pytest.raises(LeaseLost):
        d.cycle()
    assert d.ray.launched == []
    with engine.begin() as conn:
        assert sum(tq.counts(conn, owner_id).values()) == 0


def test_an_interrupted_head_records_the_results_it_holds(engine, owner_id):
    owner = _Owner(owner_id)
    d, flights = _dispatcher(engine, owner, in_flight=2)
    for f in flights:
        d.buffer.add(f, Outcome(kind="ok", result=1.0))
    d.wind_down()  # what run() does on SIGINT before it stops
    assert sorted(owner.finals) == [
        (100, TaskState.SUCCEEDED, 1.0),
        (101, TaskState.SUCCEEDED, 1.0),
    ]
    assert _attempts(engine, "succeeded") == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_outage_longer_than_the_limit_is_one_line_without_the_password(engine, caplog):
    url = "postgresql+psycopg://idds:s3cret@127.0.0.1:1/nowhere"
    away = sa.create_engine(url)
    link = Link(away, limit_s=0.3)

    def step() -> None:
        with away.connect():
            pass

    with (
        caplog.at_level(logging.INFO, logger="idds.dispatch"),
        pytest.raises(DatabaseError) as info,
    ):
        link.guarded(step, link.wait)
    message = str(info.value)
    assert "\n" not in message and "s3cret" not in message
    assert "IDDS_DB_OUTAGE_S" in message and "idds:***@127.0.0.1:1" in message
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "s3cret" not in caplog.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_statement_error_is_not_taken_for_an_outage(engine):
    link = Link(engine, limit_s=5.0)
    outages: list[Exception] = []

    def step() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table"))

    with pytest.raises(sa.exc.OperationalError):
        link.guarded(step, outages.append)
    assert outages == []


def test_which_errors_mean_the_database_is_away():
    orig = Exception("x")
    refused = sa.exc.OperationalError("SELECT 1", {}, orig)
    dropped = sa.exc.DBAPIError("SELECT 1", {}, orig, connection_invalidated=True)
    wrong = sa.exc.ProgrammingError("SELECT 1", {}, orig)
    assert connection_lost(refused, "postgresql")
    assert not connection_lost(refused, "sqlite")  # SQLite's mistakes are OperationalError too
    assert connection_lost(dropped, "sqlite") and connection_lost(dropped, "postgresql")
    assert not connection_lost(wrong, "postgresql")


@pytest.mark.parametrize(("raw", "ok"), [("", True), ("15", True), ("0", False), ("x", False)])
def test_outage_limit_from_the_environment(monkeypatch, raw, ok):
    monkeypatch.setenv("IDDS_DB_OUTAGE_S", raw)
    engine = sa.create_engine("sqlite://")
    if ok:
        assert Dispatcher(engine, broker=LocalBroker()).outage_s == (float(raw) if raw else 600.0)
    else:
        with pytest.raises(ValueError, match="IDDS_DB_OUTAGE_S"):
            Dispatcher(engine, broker=LocalBroker())
