"""Which owners an `idds serve` head takes: active ones of a kind it can resume, not part of
another owner, that no live head holds."""

from __future__ import annotations

from pathlib import Path

from idds import owners as owners_mod
from idds.config import Settings
from idds.owners import OwnerState
from idds.records import NewOwner, Records
from idds.serve import Server


def _new(kind: str, name: str, *parts: NewOwner) -> NewOwner:
    return NewOwner(kind=kind, name=name, spec={}, parts=list(parts))


def test_a_head_takes_free_active_owners_that_are_not_parts(engine, db_url, tmp_path: Path):
    records = Records(engine)
    workflow = records.create(_new("workflow", "wf", _new("study", "wf.node")), user="bob")
    lone = records.create(_new("study", "lone"), user="bob")
    # a dotted name alone does not make an owner a part: only its parent does
    dotted = records.create(_new("study", "other.mine"), user="carol")
    held = records.create(_new("study", "held"), user="bob")
    with engine.begin() as conn:  # a live head elsewhere holds it
        assert owners_mod.acquire(conn, held, "elsewhere:1:head", 60.0)
    done = records.create(_new("study", "done"), user="bob")
    records.set_state(done, OwnerState.FINISHED)
    records.create(_new("a-plugin-not-installed", "no-resume-command"), user="bob")

    server = Server(Settings(db_url=db_url, work_dir=tmp_path))
    assert [r.id for r in server.free_owners()] == [workflow, lone, dotted]

    with engine.begin() as conn:  # its lease ran out
        conn.execute(
            owners_mod.owners.update()
            .where(owners_mod.owners.c.id == held)
            .values(lease_expires=0.0)
        )
    assert held in [r.id for r in server.free_owners()]


def test_a_head_takes_a_detached_segmented_study(engine, db_url, tmp_path: Path):
    records = Records(engine)
    group = records.create(_new("study-group", "g", _new("study", "g.a")), user="bob")
    server = Server(Settings(db_url=db_url, work_dir=tmp_path))
    assert [r.id for r in server.free_owners()] == [group]
    assert server.kinds["study-group"] == ["hpo", "resume"]
