"""Work done per event does not grow with the size or number of the owners: a lease renewal
reads no spec that did not change (a workflow's spec holds every node), an engine does not find
the dependencies of a checked spec again, and a round of the dispatcher asks only the owners it
told something. Counted in SQL statements and calls, not timed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dag import spec as spec_mod
from dag.engine import Engine
from dag.spec import WorkflowSpec
from idds import owners as owners_mod
from idds.db import connect
from idds.dispatch import Dispatcher, InFlight, LocalBroker, TaskOwner, leases
from idds.dispatch.ray_side import RaySide
from idds.records import Records
from idds.tasks import Outcome, TaskSpec, TaskState

if TYPE_CHECKING:
    from idds.dispatch import Placement
    from idds.tasks import Claim


def _statements(engine: sa.Engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_a_lease_renewal_reads_only_the_specs_that_changed(db_url):
    engine = connect(db_url)
    big = {"nodes": [{"name": f"n{i}", "callable": "m:f"} for i in range(2000)]}
    with engine.begin() as conn:
        ids = [owners_mod.create(conn, "test", f"owner-{i}", big) for i in range(2)]
        for oid in ids:
            assert owners_mod.acquire(conn, oid, "head-a", 30.0)
    held = leases.Leases(engine, "head-a", 30.0)
    held.start(ids)
    seen = _statements(engine)

    renewal = held.renew(ids)
    assert renewal.notices == [] and renewal.lost == set()
    assert not any("spec" in s for s in seen), "an unchanged spec was read"

    Records(engine).update_spec(ids[1], lambda s: {**s, "suspended": True})
    seen.clear()
    renewal = held.renew(ids)
    assert [(n.owner_id, n.spec["suspended"]) for n in renewal.notices] == [(ids[1], True)]
    reads = [s for s in seen if "spec" in s]
    assert len(reads) == 1  # the changed owner's spec, once


def _layered(n_layers: int, width: int) -> WorkflowSpec:
    nodes = [{"name": f"n0_{i}", "callable": "m:f", "args": {"i": i}} for i in range(width)]
    for layer in range(1, n_layers):
        nodes += [
            {"name": f"n{layer}_{i}", "callable": "m:f", "after": [f"n{layer - 1}_{i}"]}
            for i in range(width)
        ]
    return WorkflowSpec.from_mapping({"name": "wide", "nodes": nodes})


def test_an_engine_does_not_check_a_checked_spec_again(monkeypatch):
    spec = _layered(5, 40)
    calls = []
    real = spec_mod._node_names  # what reading a node's expressions comes to
    monkeypatch.setattr(spec_mod, "_node_names", lambda *a: calls.append(1) or real(*a))
    engine = Engine(spec)
    engine.start()
    assert calls == []
    assert len(engine.take(1000)) == 40  # the first layer, its dependencies known


def test_the_check_reads_each_flow_s_names_once_not_per_node(monkeypatch):
    visible: list[int] = []
    real = spec_mod.node_reads

    def spy(spec, node, path, seen, local, found=None):
        visible.append(id(seen))
        return real(spec, node, path, seen, local, found)

    monkeypatch.setattr(spec_mod, "node_reads", spy)
    _layered(3, 30)
    assert len(visible) == 90 and len(set(visible)) == 1  # one set for the flow's 90 nodes


class _NoRay(RaySide):
    """Runs nothing (no Ray here): keeps the claims it is asked to launch."""

    def __init__(self) -> None:
        super().__init__()
        self.launched: list[Claim] = []

    def launch(self, claim: Claim, placement: Placement) -> None:
        self.launched.append(claim)


class _Owner(TaskOwner):
    """Hands in one task, then none; counts how often it is asked."""

    def __init__(self, owner_id: int) -> None:
        self.owner_id, self.parallel, self.asked, self.left = owner_id, 2, 0, 1

    def new_tasks(self, free: int) -> list[TaskSpec]:
        self.asked += 1
        if not self.left or not free:
            return []
        self.left = 0
        return [TaskSpec(number=0, kind="t", payload={"callable": "m:f"})]

    def on_final(self, number: int, state: TaskState, result: Any, error: str | None) -> None:
        pass

    def done(self) -> bool:
        return False


def test_a_round_asks_only_the_owners_it_told_something(engine):
    with engine.begin() as conn:
        ids = [owners_mod.create(conn, "test", f"many-{i}", {}) for i in range(30)]
    owners = [_Owner(oid) for oid in ids]
    d = Dispatcher(engine, broker=LocalBroker(), ray_side=_NoRay(), poll_s=60.0)
    for oid in ids:
        assert d.hold(oid)
    d.start(owners)
    d.cycle()  # each hands its task in; it is claimed and launched
    d.cycle()  # each is asked once more, and has none
    assert [o.asked for o in owners] == [2] * 30
    d.cycle()
    assert sum(o.asked for o in owners) == 60  # nobody was told anything: nobody asked
    claim = next(c for c in d.ray.launched if c.owner_id == ids[7])  # type: ignore[attr-defined]
    d.buffer.add(InFlight(claim, None, None, "local"), Outcome(kind="ok", result=1.0))
    d.cycle()  # its result is recorded and told: only its owner is asked
    assert [o.asked for o in owners] == [2] * 7 + [3] + [2] * 22
