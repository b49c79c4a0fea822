"""The records API: one rule for the best, owner states, parents, attempt kinds (SQLite and
PostgreSQL alike)."""

from __future__ import annotations

import pytest

from idds import tasks as tq
from idds.cli import main
from idds.errors import Exists, IllegalTransition, NotFound
from idds.owners import OwnerState
from idds.records import Imported, NewOwner, Records
from idds.tasks import AttemptKind, Outcome, TaskSpec, TaskState

STUDY_SPEC = {"direction": "minimize", "proposer": "optuna:tpe", "max_points": 4}


def _study(records: Records, name: str = "s", **spec) -> int:
    return records.create(
        NewOwner(kind="study", name=name, spec={**STUDY_SPEC, **spec}), user="alice"
    )


def _done(number: int, result, state=TaskState.SUCCEEDED) -> Imported:
    payload = {"callable": "m:f", "args": [{"x": number}]}
    spec = TaskSpec(number=number, kind="hpo.trial", payload=payload)
    return Imported(spec=spec, state=state, result=result, error=None if result else "boom")


def test_a_pruned_trial_never_counts_for_the_best(engine, capsys):
    records = Records(engine)
    owner_id = _study(records)
    records.record_imported(
        owner_id,
        [
            _done(0, {"values": [5.0]}),
            _done(1, {"values": [1.0], "pruned": True, "step": 3}),
            _done(2, {"values": [0.5], "constraints": [0.2]}),  # infeasible
            _done(3, None, TaskState.FAILED),
        ],
    )
    study = records.owner("study", "s")
    assert records.best([study])[owner_id].result["values"] == [5.0]
    assert (study.done, study.failed, study.in_flight) == (4, 1, 0)
    main(["--db", engine.url.render_as_string(hide_password=False), "hpo", "list"])
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("s "))
    assert line.split()[-1] == "5", line


def test_best_follows_the_direction_and_leaves_multi_objective_studies_out(engine):
    records = Records(engine)
    up = _study(records, "up", direction="maximize")
    many = _study(records, "many", direction=["minimize", "maximize"])
    records.record_imported(up, [_done(0, {"values": [2.0]}), _done(1, {"values": [3.0]})])
    records.record_imported(many, [_done(0, {"values": [2.0, 1.0]})])
    best = records.best(records.owners("study"))
    assert best[up].result["values"] == [3.0]
    assert many not in best


def test_a_name_is_taken_once_and_parts_know_their_parent(engine):
    records = Records(engine)
    parts = [NewOwner(kind="study", name=f"g.{i}", spec=STUDY_SPEC) for i in range(2)]
    group = records.create(NewOwner(kind="study-group", name="g", spec={}, parts=parts), user="a")
    with pytest.raises(Exists, match="kept for the parts of study-group 'g'"):
        records.create(NewOwner(kind="study", name="g.1", spec={}), user="b")
    with pytest.raises(Exists, match="kept for the parts"):  # a name of a part to be
        records.create(NewOwner(kind="workflow", name="g.2", spec={}), user="b")
    records.create(NewOwner(kind="study", name="h.1", spec={}), user="b")
    with pytest.raises(Exists, match="'h.1' .*named like a part of 'h'"):  # taken first
        records.create(NewOwner(kind="workflow", name="h", spec={}), user="a")
    assert [o.name for o in records.owners(parent_id=group)] == ["g.0", "g.1"]
    assert [o.name for o in records.owners(parent_id=None)] == ["g", "h.1"]
    with pytest.raises(NotFound):
        records.owner("study", "nope")


def test_owner_states_change_only_along_the_table(engine):
    records = Records(engine)
    owner_id = _study(records)
    assert records.set_state(owner_id, OwnerState.FINISHED)
    assert not records.set_state(owner_id, OwnerState.FINISHED)  # there already
    assert records.set_state(owner_id, OwnerState.ACTIVE)  # more points enqueued
    records.cancel(owner_id, "cancelled")
    with pytest.raises(IllegalTransition, match="cancelled -> active"):
        records.set_state(owner_id, OwnerState.ACTIVE)
    assert records.owner_by_id(owner_id).state is OwnerState.CANCELLED


def test_each_attempt_records_how_it_ended(engine):
    records = Records(engine)
    owner_id = _study(records)
    specs = [TaskSpec(number=n, kind="k", payload={}, max_attempts=1) for n in range(4)]
    records.submit(owner_id, specs)
    with engine.begin() as conn:
        claims = tq.claim(conn, owner_id, 3, lease_seconds=30)
        tq.start_attempts(conn, [(c, "local") for c in claims], head="h")
        outcomes = [
            Outcome(kind="ok", result={"values": [1.0], "pruned": True}),
            Outcome(kind="lost", error="lost: head gone"),
            Outcome(kind="timeout", error="timed out after 1 s"),
        ]
        for claim, outcome in zip(claims, outcomes, strict=True):
            tq.finish(conn, claim, outcome)
        tq.claim(conn, owner_id, 1, lease_seconds=30)
        # the fourth is in flight when the owner is cancelled
    records.cancel(owner_id, "cancelled")
    kinds = [a.kind for a in records.attempts(owner_id=owner_id)]
    assert kinds == [AttemptKind.PRUNED, AttemptKind.LOST, AttemptKind.TIMEOUT]
    assert records.in_flight_by_site(["local"]) == {}


def test_stamps_change_when_records_do(engine):
    records = Records(engine)
    owner_id = _study(records)
    before, before_owner = records.stamp(), records.stamp(owner_id)
    records.record_imported(owner_id, [_done(0, {"values": [1.0]})])
    assert records.stamp() != before
    assert records.stamp(owner_id) != before_owner
