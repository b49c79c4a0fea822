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
from typing import Any

import pytest
import sqlalchemy as sa

from idds import dispatcher as dispatcher_mod
from idds import owners as owners_mod
from idds import tasks as tq
from idds.dispatcher import Dispatcher, LocalBroker, TaskOwner, _InFlight, connection_lost
from idds.errors import DatabaseError, LeaseLost
from idds.tasks import Outcome, TaskSpec, TaskState


def _lost() -> sa.exc.OperationalError:
    orig = Exception("server closed the connection unexpectedly")
    return sa.exc.OperationalError("COMMIT", {}, orig, connection_invalidated=True)


class _Flaky:
    """A connection whose next transaction fails at its commit: rolled back, or committed
    with the answer lost (``committed``)."""

    def __init__(self, conn: sa.Connection, *, committed: bool) -> None:
        self.conn = conn
        self.committed = committed

    @contextlib.contextmanager
    def begin(self):
        with self.conn.begin() as tx:
            yield tx
            if self.committed:
                tx.commit()
            raise _lost()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


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
    monkeypatch.setattr(dispatcher_mod, "RECONNECT_BACKOFF_S", (0.01, 0.05))


@pytest.fixture
def owner_id(engine) -> int:
    with engine.begin() as conn:
        return owners_mod.create(conn, "test", "outage", {})


def _dispatcher(
    engine, owner: _Owner, launched: list, *, in_flight: int = 0, **kw: Any
) -> tuple[Dispatcher, list[_InFlight]]:
    """A dispatcher holding ``owner``, set up as :meth:`Dispatcher.run` does, without Ray,
    with ``in_flight`` tasks of the owner claimed by it."""
    d = Dispatcher(engine, broker=LocalBroker(), outage_s=5.0, **kw)
    assert d.hold(owner.owner_id)
    with engine.begin() as conn:
        tq.submit(conn, owner.owner_id, [_spec(100 + i) for i in range(in_flight)])
        claims = tq.claim(conn, owner.owner_id, in_flight, lease_seconds=30)
        tq.start_attempts(conn, [(c, "local") for c in claims], head=d.head)
    d._owners = {owner.owner_id: owner}
    d._load()
    d._conn = engine.connect()
    d._launch = lambda claim, placement: launched.append(claim.token)  # type: ignore[method-assign]
    return d, [_InFlight(c, None, None, "local") for c in claims]


def _attempts(engine, state: str) -> int:
    with engine.begin() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(tq.attempts.c.state == state)
        ).scalar_one()


@pytest.mark.parametrize("committed", [False, True], ids=["rolled-back", "answer-lost"])
def test_results_held_through_an_outage_are_recorded_once(engine, owner_id, committed):
    owner = _Owner(owner_id)
    launched: list[str] = []
    d, flights = _dispatcher(engine, owner, launched, in_flight=3)
    d._ended = [(f, Outcome(kind="ok", result=f.claim.number * 10)) for f in flights]
    d._conn = _Flaky(d._conn, committed=committed)

    assert d._guarded(d._cycle) is False  # cut short; the outage waited out
    assert len(d._ended) == 3 and owner.finals == []  # held, nobody told yet
    assert d._guarded(d._cycle) is True

    assert sorted(owner.finals) == [(i, TaskState.SUCCEEDED, i * 10) for i in range(100, 103)]
    assert d._ended == [] and d._open[owner_id] == 0
    assert _attempts(engine, "succeeded") == 3
    with engine.begin() as conn:
        assert tq.counts(conn, owner_id)[TaskState.SUCCEEDED] == 3
    assert launched == []


@pytest.mark.parametrize("committed", [False, True], ids=["rolled-back", "answer-lost"])
def test_tasks_handed_in_and_claimed_during_an_outage_are_neither_lost_nor_doubled(
    engine, owner_id, committed
):
    owner = _Owner(owner_id, [_spec(0), _spec(1)])
    launched: list[str] = []
    d, _ = _dispatcher(engine, owner, launched)
    d._next_renew = float("inf")
    d._conn = _Flaky(d._conn, committed=committed)

    assert d._guarded(d._cycle) is False
    # A claim committed after all is launched at once; otherwise nothing ran yet.
    assert len(launched) == (2 if committed else 0)
    d._guarded(d._cycle)  # hands in (again) only what was not recorded, claims, launches

    assert len(launched) == 2 and len(set(launched)) == 2
    with engine.begin() as conn:
        rows = conn.execute(sa.select(tq.tasks.c.number, tq.tasks.c.attempt)).all()
        assert sorted(rows) == [(0, 1), (1, 1)]
        assert conn.execute(sa.select(sa.func.count()).select_from(tq.attempts)).scalar_one() == 2
    assert d._to_submit == {} and d._claiming == []


def test_a_head_whose_owner_was_taken_during_the_outage_stands_down(engine, owner_id):
    owner = _Owner(owner_id)
    d, flights = _dispatcher(engine, owner, [], in_flight=2, lease_seconds=0.5)
    d._ended = [(f, Outcome(kind="ok", result=1.0)) for f in flights]
    other = Dispatcher(engine, broker=LocalBroker(), lease_seconds=30)
    d._conn = _Flaky(d._conn, committed=False)
    with pytest.raises(sa.exc.OperationalError):
        d._cycle()  # the database goes away ...
    time.sleep(0.6)  # the lease runs out meanwhile
    assert other.hold(owner_id)  # ... and another head takes the owner over

    with pytest.raises(LeaseLost):
        d._wait_for_database(_lost())
    assert owner.finals == []
    assert _attempts(engine, "succeeded") == 0  # the takeover queued them again instead


def test_a_lease_that_ran_out_unclaimed_is_kept(engine, owner_id):
    owner = _Owner(owner_id)
    d, flights = _dispatcher(engine, owner, [], in_flight=1, lease_seconds=0.3)
    d._ended = [(flights[0], Outcome(kind="ok", result=2.0))]
    d._conn = _Flaky(d._conn, committed=False)
    assert d._guarded(d._cycle) is False
    time.sleep(0.4)  # past the lease, and no other head came
    d._guarded(d._cycle)
    assert owner.finals == [(100, TaskState.SUCCEEDED, 2.0)]


def test_a_paused_head_renews_before_claiming_and_claims_nothing_once_taken_over(engine, owner_id):
    owner = _Owner(owner_id, [_spec(0)])
    launched: list[str] = []
    d, _ = _dispatcher(engine, owner, launched, lease_seconds=0.3)
    time.sleep(0.4)  # "paused" past its lease
    assert Dispatcher(engine, broker=LocalBroker()).hold(owner_id)
    with pytest.raises(LeaseLost):
        d._cycle()
    assert launched == []
    with engine.begin() as conn:
        assert sum(tq.counts(conn, owner_id).values()) == 0


def test_an_interrupted_head_records_the_results_it_holds(engine, owner_id):
    owner = _Owner(owner_id)
    d, flights = _dispatcher(engine, owner, [], in_flight=2)
    d._ended = [(f, Outcome(kind="ok", result=1.0)) for f in flights]
    d._record_what_came_in()  # what run() does on SIGINT before it stops
    assert sorted(owner.finals) == [
        (100, TaskState.SUCCEEDED, 1.0),
        (101, TaskState.SUCCEEDED, 1.0),
    ]
    assert _attempts(engine, "succeeded") == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_outage_longer_than_the_limit_is_one_line_without_the_password(engine, caplog):
    url = "postgresql+psycopg://idds:s3cret@127.0.0.1:1/nowhere"
    away = sa.create_engine(url)
    d = Dispatcher(away, broker=LocalBroker(), outage_s=0.3)

    def step() -> None:
        with away.connect():
            pass

    with (
        caplog.at_level(logging.INFO, logger="idds.dispatcher"),
        pytest.raises(DatabaseError) as info,
    ):
        d._guarded(step)
    message = str(info.value)
    assert "\n" not in message and "s3cret" not in message
    assert "IDDS_DB_OUTAGE_S" in message and "idds:***@127.0.0.1:1" in message
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "s3cret" not in caplog.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_statement_error_is_not_taken_for_an_outage(engine):
    d = Dispatcher(engine, broker=LocalBroker())

    def step() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table"))

    with pytest.raises(sa.exc.OperationalError):
        d._guarded(step)


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
    if ok:
        assert dispatcher_mod.outage_limit() == (float(raw) if raw else 600.0)
    else:
        with pytest.raises(ValueError, match="IDDS_DB_OUTAGE_S"):
            dispatcher_mod.outage_limit()
