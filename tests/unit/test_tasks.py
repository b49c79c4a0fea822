"""The task state machine and the queue operations, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from idds import owners as ow
from idds import tasks as tq
from idds.db import db_now
from idds.errors import IllegalTransition
from idds.tasks import Outcome, TaskSpec, TaskState


def _owner(engine, name="o") -> int:
    with engine.begin() as conn:
        return ow.create(conn, "test", name, {})


def _submit(engine, owner_id, n, **kw) -> None:
    with engine.begin() as conn:
        tq.submit(
            conn, owner_id, [TaskSpec(number=i, kind="t", payload={"i": i}, **kw) for i in range(n)]
        )


def _claim(engine, owner_id, limit, head="h1"):
    with engine.begin() as conn:
        claims = tq.claim(conn, owner_id, limit, lease_seconds=30)
        tq.start_attempts(conn, [(c, "local") for c in claims], head=head)
        return claims


def _state(engine, task_id):
    with engine.begin() as conn:
        return conn.execute(sa.select(tq.tasks).where(tq.tasks.c.id == task_id)).one()


def test_transition_table_rejects_illegal_moves():
    for final in tq.FINAL:
        assert tq.TRANSITIONS[final] == frozenset()
    with pytest.raises(IllegalTransition):
        tq.transition(None, 1, TaskState.PENDING, TaskState.SUCCEEDED)  # type: ignore[arg-type]
    with pytest.raises(IllegalTransition):
        tq.transition(None, 1, TaskState.SUCCEEDED, TaskState.PENDING)  # type: ignore[arg-type]


def test_guarded_transition_has_one_winner(engine):
    oid = _owner(engine)
    _submit(engine, oid, 1)
    (c,) = _claim(engine, oid, 1)
    with engine.begin() as conn:
        assert tq.transition(
            conn, c.task_id, TaskState.DISPATCHED, TaskState.RUNNING, expect_token=c.token
        )
        assert not tq.transition(
            conn, c.task_id, TaskState.DISPATCHED, TaskState.RUNNING, expect_token=c.token
        )
        assert not tq.transition(
            conn, c.task_id, TaskState.RUNNING, TaskState.FAILED, expect_token="x"
        )


def test_claim_orders_by_priority_then_number_and_respects_limit(engine):
    oid = _owner(engine)
    with engine.begin() as conn:
        tq.submit(
            conn,
            oid,
            [
                TaskSpec(number=i, kind="t", payload={}, priority=1 if i == 3 else 0)
                for i in range(5)
            ],
        )
    claims = _claim(engine, oid, 3)
    assert [c.number for c in claims] == [3, 0, 1]
    assert {c.attempt for c in claims} == {1}
    assert len({c.token for c in claims}) == 3
    with engine.begin() as conn:
        n_attempts = conn.execute(sa.select(sa.func.count()).select_from(tq.attempts)).scalar()
        assert n_attempts == 3
        assert tq.counts(conn, oid)[TaskState.DISPATCHED] == 3
    assert [c.number for c in _claim(engine, oid, 10)] == [2, 4]
    assert _claim(engine, oid, 10) == []


def test_success_is_recorded_once_and_stale_tokens_are_refused(engine):
    oid = _owner(engine)
    _submit(engine, oid, 1)
    (c,) = _claim(engine, oid, 1)
    with engine.begin() as conn:
        assert tq.finish(conn, c, Outcome(kind="ok", result=4.5, node="n1")) is TaskState.SUCCEEDED
        assert tq.finish(conn, c, Outcome(kind="ok", result=9.9)) is None
    row = _state(engine, c.task_id)
    assert (row.state, row.result, row.node) == ("succeeded", 4.5, "n1")
    assert row.finished is not None


def test_failed_attempt_retries_after_backoff_then_fails(engine):
    oid = _owner(engine)
    _submit(engine, oid, 1, max_attempts=2)
    (c1,) = _claim(engine, oid, 1)
    with engine.begin() as conn:
        assert tq.finish(conn, c1, Outcome(kind="crash", error="died"), backoff_s=30) == "pending"
    assert _claim(engine, oid, 1) == []  # still in its backoff
    with engine.begin() as conn:
        conn.execute(sa.update(tq.tasks).values(not_before=db_now() - 1))
    (c2,) = _claim(engine, oid, 1)
    assert (c2.attempt, c2.token != c1.token) == (2, True)
    with engine.begin() as conn:
        assert tq.finish(conn, c2, Outcome(kind="timeout", error="late")) is TaskState.FAILED
        states = conn.execute(
            sa.select(tq.attempts.c.state).order_by(tq.attempts.c.number)
        ).scalars()
        assert list(states) == ["failed", "failed"]
    assert _state(engine, c1.task_id).error == "late"


@pytest.mark.parametrize(("kind", "retry_errors", "expected"), [
    ("error", False, "failed"),
    ("error", True, "pending"),
    ("invalid", True, "failed"),
    ("lost", False, "pending"),
])  # fmt: skip
def test_which_failures_are_retried(engine, kind, retry_errors, expected):
    oid = _owner(engine)
    _submit(engine, oid, 1, retry_errors=retry_errors)
    (c,) = _claim(engine, oid, 1)
    with engine.begin() as conn:
        assert tq.finish(conn, c, Outcome(kind=kind, error="e")) == expected


def test_schema_allows_one_succeeded_attempt_per_task(engine):
    oid = _owner(engine)
    _submit(engine, oid, 1)
    (c,) = _claim(engine, oid, 1)
    with engine.begin() as conn:
        tq.finish(conn, c, Outcome(kind="ok", result=1))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.insert(tq.attempts).values(
                task_id=c.task_id, number=2, token="t2", state="succeeded"
            )
        )


def test_requeue_in_flight_after_takeover(engine):
    oid = _owner(engine)
    _submit(engine, oid, 2, max_attempts=1)
    claims = _claim(engine, oid, 2)
    with engine.begin() as conn:
        assert tq.requeue_in_flight(conn, oid, "lost: head gone") == 2
        counts = tq.counts(conn, oid)
    # max_attempts=1: the lost attempt was the last one
    assert counts[TaskState.FAILED] == 2
    assert all(_state(engine, c.task_id).error == "lost: head gone" for c in claims)


def test_cancel_owner_tasks(engine):
    oid = _owner(engine)
    _submit(engine, oid, 3)
    (c,) = _claim(engine, oid, 1)
    with engine.begin() as conn:
        assert tq.cancel_owner_tasks(conn, oid) == 3
        assert tq.finish(conn, c, Outcome(kind="ok", result=1)) is None
        assert tq.counts(conn, oid)[TaskState.CANCELLED] == 3


def test_concurrent_heads_never_claim_the_same_task(engine):
    oid = _owner(engine)
    _submit(engine, oid, 200)
    claimed: dict[str, list[int]] = {}

    def head(name):
        got = []
        while batch := _claim(engine, oid, 7, head=name):
            got += [c.task_id for c in batch]
        claimed[name] = got

    threads = [threading.Thread(target=head, args=(f"h{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for got in claimed.values() for i in got]
    assert len(every) == 200
    assert len(set(every)) == 200


def test_owner_lease_is_exclusive_until_it_expires(engine):
    oid = _owner(engine)
    with engine.begin() as conn:
        assert ow.acquire(conn, oid, "host-a:1:x", 60)
        assert not ow.acquire(conn, oid, "host-b:2:y", 60)
        assert ow.acquire(conn, oid, "host-a:1:x", 60)  # renewal by the holder
        conn.execute(sa.update(ow.owners).values(lease_expires=db_now() - 1))
        assert ow.acquire(conn, oid, "host-b:2:y", 60)
        assert ow.renew(conn, [oid], "host-a:1:x", 60) == set()
        assert ow.renew(conn, [oid], "host-b:2:y", 60) == {oid}


def test_lease_of_a_dead_process_on_this_host_is_taken_at_once(engine):
    import socket
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    dead = f"{socket.gethostname()}:{proc.pid}:dead"
    oid = _owner(engine)
    with engine.begin() as conn:
        assert ow.acquire(conn, oid, dead, 600)
        assert ow.acquire(conn, oid, "me:1:x", 60)


def test_a_claim_given_back_leaves_its_task_as_before_it(engine):
    oid = _owner(engine)
    _submit(engine, oid, 3, max_attempts=1)
    first, second, third = _claim(engine, oid, 3)
    with engine.begin() as conn:
        assert tq.finish(conn, third, Outcome(kind="lost", error="head gone")) is TaskState.FAILED
        assert tq.unclaim(conn, [first, third]) == 1  # the third is no longer current
    row = _state(engine, first.task_id)
    assert (row.state, row.attempt, row.token) == ("pending", 0, None)
    assert _state(engine, second.task_id).state == "dispatched"
    assert _state(engine, third.task_id).state == "failed"
    with engine.begin() as conn:
        tokens = set(conn.execute(sa.select(tq.attempts.c.token)).scalars())
    assert tokens == {second.token, third.token}
    (again,) = _claim(engine, oid, 1)  # claimed again: its one attempt is still to come
    assert (again.task_id, again.attempt) == (first.task_id, 1)
    with engine.begin() as conn:
        assert tq.finish(conn, again, Outcome(kind="ok", result=1.0)) is TaskState.SUCCEEDED
