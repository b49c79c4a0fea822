"""One conformance suite for every data-management back-end.

The tape emulator runs for real on a simulated clock. The Rucio adapter runs against a
stand-in for ``rucio.client.Client`` (no Rucio server is available here): these tests check
the calls it makes and how it reads lock states, not a real server's behaviour.
"""

from __future__ import annotations

import itertools

import pytest

from carousel.catalog import build_catalog
from carousel.clock import SimClock
from carousel.dm import FileState
from carousel.rucio import RucioDM
from carousel.spec import CampaignSpec
from carousel.tape import TapeEmulator

SPEC = CampaignSpec.from_mapping(
    {"files": {"count": 20, "datasets": 2}, "tape": {"cartridges": 4, "cartridges_per_dataset": 2,
     "drives": 2, "read_failure": 0}}
)  # fmt: skip


class Recorder:
    def __init__(self) -> None:
        self.staged: list[int] = []
        self.failed: list[tuple[int, bool]] = []

    def on_staged(self, file: int) -> None:
        self.staged.append(file)

    def on_staging_failed(self, file: int, lost: bool) -> None:
        self.failed.append((file, lost))


class DataManagementConformance:
    """Each back-end's test class provides ``make()`` -> (dm, advance)."""

    def make(self):
        raise NotImplementedError

    def test_requested_files_are_staged_and_reported_once(self):
        dm, advance = self.make()
        rec = Recorder()
        dm.attach(rec)
        dm.request_staging([3, 1, 7])
        assert dm.state(3) is FileState.REQUESTED
        advance()
        assert sorted(rec.staged) == [1, 3, 7]
        assert all(dm.state(f) is FileState.STAGED for f in (1, 3, 7))
        assert dm.state(0) is FileState.ON_TAPE

    def test_release_unpins_a_staged_file(self):
        dm, advance = self.make()
        dm.attach(Recorder())
        dm.request_staging([2])
        advance()
        dm.release(2)
        assert dm.state(2) is FileState.RELEASED

    def test_releasing_a_file_not_staged_is_refused(self):
        dm, _ = self.make()
        dm.attach(Recorder())
        with pytest.raises(ValueError, match="not staged"):
            dm.release(4)

    def test_requesting_a_file_twice_is_refused(self):
        dm, _ = self.make()
        dm.attach(Recorder())
        dm.request_staging([5])
        with pytest.raises(ValueError, match="already"):
            dm.request_staging([5])


class TestTapeEmulator(DataManagementConformance):
    def make(self):
        clock = SimClock()
        dm = TapeEmulator(build_catalog(SPEC), SPEC.tape, clock, seed=1)
        return dm, clock.run


class FakeRucio:
    """Stands in for rucio.client.Client: rules are OK after ``delay`` polls, or STUCK."""

    def __init__(self, stuck: set[str] = frozenset(), delay: int = 1) -> None:
        self.rules: dict[str, dict] = {}
        self.deleted: list[tuple[str, bool]] = []
        self.calls: list[dict] = []
        self.stuck, self.delay = stuck, delay
        self._ids = itertools.count()

    def add_replication_rule(self, dids, copies, rse_expression, **kwargs):
        self.calls.append({"dids": dids, "copies": copies, "rse": rse_expression, **kwargs})
        ids = []
        for did in dids:
            rule = f"rule-{next(self._ids)}"
            self.rules[rule] = {"did": did, "polls": 0}
            ids.append(rule)
        return ids

    def list_replica_locks(self, rule_id):
        rule = self.rules[rule_id]
        rule["polls"] += 1
        name = rule["did"]["name"]
        state = "STUCK" if name in self.stuck else "REPLICATING"
        if state != "STUCK" and rule["polls"] > self.delay:
            state = "OK"
        return iter([{**rule["did"], "rse": "DISK", "state": state, "rule_id": rule_id}])

    def delete_replication_rule(self, rule_id, purge_replicas=None):
        self.deleted.append((rule_id, purge_replicas))
        del self.rules[rule_id]


class TestRucioAdapter(DataManagementConformance):
    def make(self, client=None):
        client = client or FakeRucio()
        dm = RucioDM(build_catalog(SPEC), client, rse="DATADISK", source="DATATAPE")
        return dm, lambda: [dm.poll() for _ in range(3)]

    def test_staging_is_one_rule_per_file_from_tape_to_the_buffer(self):
        client = FakeRucio()
        dm, _ = self.make(client)
        dm.attach(Recorder())
        dm.request_staging([0, 1])
        call = client.calls[0]
        assert [d["name"] for d in call["dids"]] == ["file.00000.0000000", "file.00000.0000001"]
        assert all(d["scope"] == "campaign" for d in call["dids"])
        assert (call["rse"], call["source_replica_expression"]) == ("DATADISK", "DATATAPE")
        assert (call["copies"], call["grouping"], call["activity"]) == (1, "NONE", "Staging")

    def test_release_deletes_the_rule_and_keeps_nothing_pinned(self):
        client = FakeRucio()
        dm, advance = self.make(client)
        dm.attach(Recorder())
        dm.request_staging([0])
        advance()
        dm.release(0)
        assert client.deleted == [("rule-0", False)] and not client.rules

    def test_a_stuck_file_is_retried_then_lost(self):
        client = FakeRucio(stuck={"file.00000.0000001"})
        dm, _ = self.make(client)
        rec = Recorder()
        dm.attach(rec)
        dm.request_staging([0, 1])
        dm.poll()
        assert rec.failed == [(1, False)]  # one failed attempt per STUCK spell
        dm.poll()
        assert rec.failed == [(1, False)]
        for _ in range(2):  # Rucio retries; the lock goes back to REPLICATING, then STUCK
            client.stuck.discard("file.00000.0000001")
            client.rules["rule-1"]["polls"] = -10
            dm.poll()
            client.stuck.add("file.00000.0000001")
            dm.poll()
        assert rec.failed[-1] == (1, True) and dm.state(1) is FileState.LOST
        assert rec.staged == [0]
