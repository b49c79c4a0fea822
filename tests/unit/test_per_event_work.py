"""Work done per event does not grow with the size of the owner: a lease renewal reads no
spec that did not change (a workflow's spec holds every node), and an engine does not find the
dependencies of a checked spec again. Counted in SQL statements and calls, not timed."""

from __future__ import annotations

import sqlalchemy as sa

from dag import spec as spec_mod
from dag.engine import Engine
from dag.spec import WorkflowSpec
from idds import owners as owners_mod
from idds.db import connect
from idds.dispatch import leases
from idds.records import Records


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
