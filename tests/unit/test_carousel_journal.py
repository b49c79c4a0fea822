"""The staging log (carousel.journal): a carousel stopped part-way and rebuilt from its log
stands where it stood, and asks the data management for nothing it asked for before."""

from __future__ import annotations

import math

import pytest

from carousel.catalog import build_catalog
from carousel.clock import SimClock
from carousel.journal import KEY, Journal, JournalledDM, JournalledOrchestrator, outstanding, replay
from carousel.orchestrator import SimProcessing
from carousel.policies import make_policy
from carousel.spec import CampaignSpec
from carousel.tape import make_tape
from idds.records import NewOwner, Records

SPEC = CampaignSpec.from_mapping({
    "name": "journalled", "files": {"count": 60, "datasets": 3, "size_median": "2GB"},
    "tape": {"cartridges": 6, "cartridges_per_dataset": 2, "drives": 2, "read_failure": 0.1,
             "max_read_attempts": 2},
    "processing": {"slots": 3, "failure": 0.0}, "buffer": "50GB",
    "policies": ["file-level", "dataset-level", {"name": "sliding-window", "window": 1}],
})  # fmt: skip


def _orchestrator(policy: str, records: Records, owner_id: int, events=()):
    catalog = build_catalog(SPEC)
    chosen = make_policy(SPEC, SPEC.policy(policy), catalog)
    clock = SimClock()
    tape = make_tape(catalog, SPEC.tape_libraries, clock, seed=3)
    journal = Journal(records, owner_id, events)
    processing = SimProcessing(SPEC.processing, catalog, clock, seed=4)
    buffer = SPEC.buffer if chosen.uses_buffer else None
    orch = JournalledOrchestrator(
        catalog, JournalledDM(tape, journal, clock), chosen, processing, clock, buffer
    )
    orch.journal = journal
    return orch, tape, clock, journal


@pytest.mark.parametrize("policy", ["file-level", "dataset-level", "sliding-window"])
def test_a_replayed_log_leaves_the_orchestrator_where_it_stood(engine, policy):
    records = Records(engine)
    owner_id = records.create(NewOwner(kind="carousel", name=policy, spec={KEY: []}), user=None)
    orch, tape, clock, journal = _orchestrator(policy, records, owner_id)
    orch.start()
    clock.run(until=4 * 3600.0)  # part-way: files requested, on disk, processed, released
    journal.commit()
    assert 0 < sum(not math.isnan(t) for t in orch.processed_at) < len(orch.catalog)

    again, _, _, _ = _orchestrator(
        policy, records, owner_id, records.owner_by_id(owner_id).spec[KEY]
    )
    assert replay(again, again.journal.events) == []  # every request it makes was recorded
    for column in ("requested_at", "staged_at", "processed_at", "released_at"):
        assert getattr(again, column) == pytest.approx(getattr(orch, column), abs=1e-3, nan_ok=True)
    assert again.lost == orch.lost and again.reserved == pytest.approx(orch.reserved)
    assert again.staging_retries == orch.staging_retries
    requested, staged = outstanding(again)
    assert all(tape.state(f).value == "requested" for f in requested)
    assert all(tape.state(f).value == "staged" for f in staged)
    # and the policy goes on where it was: the next files it would ask for are the same
    assert again.policy.next_requests(None) == orch.policy.next_requests(None)


def test_a_request_is_recorded_before_it_is_made(engine):
    records = Records(engine)
    owner_id = records.create(NewOwner(kind="carousel", name="ahead", spec={KEY: []}), user=None)
    orch, tape, _, _ = _orchestrator("file-level", records, owner_id)
    seen: list[int] = []
    asked = tape.request_staging

    def request(files):  # what the record holds when the tape system is asked
        seen.append(len(records.owner_by_id(owner_id).spec[KEY]))
        asked(files)

    tape.request_staging = request
    orch.start()
    assert seen == [1]
