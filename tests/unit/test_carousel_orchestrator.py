"""The orchestrator's behaviours, and the reference file's sanity checks, on small
simulated campaigns (each runs in well under a second)."""

from __future__ import annotations

import math

import pytest

from carousel.simulate import Simulation
from carousel.spec import CampaignSpec
from idds.errors import SpecError


def campaign(**changes) -> CampaignSpec:
    base = {
        "files": {"count": 600, "datasets": 6},
        "tape": {"cartridges": 12, "cartridges_per_dataset": 4, "drives": 3},
        "processing": {"slots": 60},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            base.setdefault(section, {})[field] = value
        else:
            base[section] = value
    return CampaignSpec.from_mapping(base)


def run(spec: CampaignSpec, policy: str) -> Simulation:
    sim = Simulation(spec, policy)
    sim.result = sim.run()
    return sim


@pytest.mark.parametrize("policy", ["file-level", "sliding-window"])
def test_the_buffer_budget_is_never_exceeded(policy):
    window = {"name": "sliding-window", "window": 1}  # one dataset (~225 GB) fits in 300 GB
    sim = run(campaign(buffer="300GB", policies=["file-level", window]), policy)
    orch = sim.orchestrator
    assert orch.peak_reserved <= 300e9  # requested and not released: disk and on its way
    assert max(orch.trace_bytes) <= 300e9
    assert orch.finished and sim.result.peak_bytes > 150e9  # the buffer was used


def test_a_sliding_window_larger_than_the_buffer_is_refused_in_one_line():
    spec = campaign(buffer="300GB", policies=[{"name": "sliding-window", "window": 4}])
    with pytest.raises(SpecError, match=r"^a window of 4 datasets \(up to .*\) is larger than "
                       r"the buffer of 300GB; use window <= 1$"):  # fmt: skip
        Simulation(spec, "sliding-window")


def test_file_level_feeds_every_drive_whatever_the_buffer():
    spec = campaign(buffer="100GB")
    policy = Simulation(spec, "file-level").policy
    assert policy._width == spec.tape.drives


def test_staging_is_requested_in_cartridge_and_position_order():
    sim = run(campaign(buffer="200GB"), "file-level")
    cat, order = sim.catalog, sim.orchestrator.request_order
    assert sorted(order) == list(range(len(cat)))  # every file requested, once
    for cart in set(cat.cartridges):
        on_cart = [cat.positions[f] for f in order if cat.cartridges[f] == cart]
        assert on_cart == sorted(on_cart)
    # cartridges are taken up a few at a time (the drives), in cartridge order
    first_seen = list(dict.fromkeys(cat.cartridges[f] for f in order))
    assert first_seen == sorted(first_seen)


def test_a_file_is_released_as_soon_as_its_processing_succeeds():
    sim = run(campaign(), "file-level")
    orch = sim.orchestrator
    assert all(orch.released_at[f] == orch.processed_at[f] for f in range(len(sim.catalog)))


def test_dataset_level_releases_a_dataset_when_all_of_it_is_processed():
    sim = run(campaign(), "dataset-level")
    orch, cat = sim.orchestrator, sim.catalog
    for files in cat.dataset_files():
        assert {orch.released_at[f] for f in files} == {max(orch.processed_at[f] for f in files)}
        assert min(orch.processed_at[f] for f in files) >= max(orch.staged_at[f] for f in files)


def test_failed_processing_is_retried_without_staging_again():
    sim = run(
        campaign(
            processing={"slots": 60, "failure": 0.3, "max_attempts": 20}, tape__read_failure=0
        ),
        "file-level",
    )
    result, tape = sim.result, sim.tape
    assert result.processing_retries > 50
    assert tape.stats.reads == len(sim.catalog)  # each file read from tape exactly once
    assert not result.failed and sim.orchestrator.finished


def test_lost_files_are_reported_and_the_campaign_still_ends():
    sim = run(campaign(tape__read_failure=0.4), "file-level")
    result = sim.result
    assert result.lost and len(result.lost) == sim.tape.stats.lost
    assert all(name.startswith("campaign:file.") for name in result.lost)
    assert result.staging_retries > len(result.lost)
    orch = sim.orchestrator
    lost = {sim.catalog.names.index(n) for n in result.lost}
    assert all(math.isnan(orch.staged_at[f]) for f in lost)
    assert orch.finished and orch.reserved == pytest.approx(0, abs=1)


def test_dataset_level_processes_a_dataset_with_lost_files():
    sim = run(campaign(tape__read_failure=0.4), "dataset-level")
    assert sim.result.lost and sim.orchestrator.finished
    assert sim.orchestrator.on_disk == pytest.approx(0, abs=1)


@pytest.mark.parametrize("policy", ["file-level", "dataset-level", "sliding-window"])
def test_littles_law_holds(policy):
    """Time-weighted mean occupancy = byte throughput x mean residence: the trace and the
    per-file records agree."""
    r = run(campaign(), policy).result
    occupancy = r.byte_seconds / r.makespan_s
    throughput = r.released_bytes / r.makespan_s
    assert occupancy == pytest.approx(throughput * r.mean_residence_s, rel=1e-9)


def test_dataset_level_peak_is_the_bytes_of_the_datasets_on_disk_at_once():
    sim = run(campaign(), "dataset-level")
    orch, cat = sim.orchestrator, sim.catalog
    peak_at = orch.trace_t[orch.trace_bytes.index(sim.result.peak_bytes)]
    on_disk = {
        cat.datasets[f]
        for f in range(len(cat))
        if orch.staged_at[f] <= peak_at < orch.released_at[f]
    }
    whole = sum(cat.sizes[f] for f in range(len(cat)) if cat.datasets[f] in on_disk)
    assert sim.result.peak_bytes == pytest.approx(whole, rel=1e-9)
    # all requested at once: every dataset is on disk at the peak
    assert on_disk == set(range(len(cat.dataset_names)))


def test_file_level_peak_tends_to_staging_rate_times_processing_time():
    """With processing far above staging, the bytes on disk are those staged within one
    processing time: the peak is the library's full streaming rate times that time."""
    spec = campaign(
        files={"count": 3000, "datasets": 6, "size_sigma": 0},
        tape__read_failure=0,
        processing={"slots": 100_000, "jitter": [1, 1], "failure": 0},
    )
    sim = run(spec, "file-level")
    tape, proc = spec.tape, spec.processing
    size = spec.files.size_median
    streaming = tape.drives * size / (size / tape.drive_rate + tape.file_overhead_s)
    seconds = proc.time_s * size / proc.time_per
    assert sim.result.peak_bytes == pytest.approx(streaming * seconds, rel=0.05)
    staged = sim.orchestrator.staged_at
    mean_rate = sim.result.total_bytes / (max(staged) - min(staged))
    assert sim.result.peak_bytes >= mean_rate * seconds


def test_file_level_needs_less_disk_than_dataset_level_without_taking_longer():
    spec = campaign(buffer="400GB")
    file_level = run(spec, "file-level").result
    dataset_level = run(spec, "dataset-level").result
    assert file_level.peak_bytes < 0.5 * dataset_level.peak_bytes
    assert file_level.byte_seconds < 0.5 * dataset_level.byte_seconds
    assert file_level.makespan_s <= dataset_level.makespan_s
