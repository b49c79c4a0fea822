"""Campaign specs: sizes, validation, scaling; bad input is one line and exit 2."""

from __future__ import annotations

import pytest

from carousel.sizes import format_size, parse_size, parse_size_list
from carousel.spec import CampaignSpec, load_campaign_file
from idds.errors import SpecError


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2GB", 2e9), ("50TB", 50e12), ("1.5 TiB", 1.5 * 2**40), ("360MB/s", 360e6), (42, 42.0)],
)
def test_sizes_parse_as_operators_write_them(text, expected):
    assert parse_size(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["-2GB", "0TB", "2XB", "lots", True])
def test_a_bad_size_is_a_spec_error(text):
    with pytest.raises(SpecError):
        parse_size(text)


def test_a_buffer_list_takes_unbounded():
    assert parse_size_list("50TB, 100TB,unbounded") == [50e12, 100e12, None]
    assert format_size(6e12) == "6TB"


def test_the_reference_file_has_the_reference_parameters():
    spec = load_campaign_file("examples/carousel/reference.yaml")
    assert (spec.files.count, spec.files.datasets) == (20_000, 20)
    assert (spec.files.size_median, spec.files.size_sigma) == (2e9, 0.5)
    tape = spec.tape
    assert (tape.cartridge_capacity, tape.cartridges_per_dataset) == (18e12, 8)
    assert (tape.drives, tape.robots, tape.robot_move_s) == (10, 2, 20)
    assert (tape.drive_rate, tape.load_s, tape.unload_s, tape.locate_mean_s) == (
        360e6, 16, 56, 65,
    )  # fmt: skip
    assert tape.rewind_s == (62, 124, 186) and tape.rewind_thresholds == (5e9, 50e9)
    assert (tape.file_overhead_s, tape.mount_min_bytes, tape.mount_min_files) == (2, 500e9, 10_000)
    assert (tape.mount_max_age_s, tape.read_failure, tape.max_read_attempts) == (300, 0.005, 3)
    proc = spec.processing
    assert (proc.slots, proc.time_s, proc.time_per, proc.jitter) == (2000, 1800, 2e9, (0.8, 1.2))
    assert proc.failure == 0.01
    assert spec.replace(name="campaign") == CampaignSpec()  # the defaults are the reference


def test_a_spec_round_trips_through_json():
    spec = CampaignSpec.from_mapping({"buffer": "6TB", "policies": ["file-level"]})
    assert CampaignSpec.from_mapping(spec.to_json()) == spec


def test_scaling_keeps_the_library_and_scales_the_data():
    spec = CampaignSpec().scaled(100_000)
    assert (spec.files.count, spec.files.datasets, spec.tape.cartridges) == (100_000, 100, 200)
    assert spec.tape.drives == 10 and spec.processing.slots == 2000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tape": {"drives": 0}}, "tape.drives"),
        ({"files": {"size_median": "-2GB"}}, "must be positive"),
        ({"processing": {"slots": 0}}, "processing.slots"),
        ({"policies": ["fastest"]}, "policies.0.name"),
        ({"files": {"count": 3, "datasets": 5}}, "datasets need"),
    ],
)
def test_bad_campaigns_fail_with_one_line(data, message):
    with pytest.raises(SpecError, match=message) as err:
        CampaignSpec.from_mapping(data)
    assert "\n" not in str(err.value)


def test_a_campaign_mixes_file_size_populations_by_dataset():
    import statistics

    from carousel.catalog import build_catalog

    spec = CampaignSpec.from_mapping(
        {"files": {"count": 1000, "datasets": 10, "populations": [
            {"share": 0.7, "size_median": "200MB", "size_sigma": 0.2},
            {"share": 0.3, "size_median": "4GB"}]}}
    )  # fmt: skip
    catalog = build_catalog(spec)
    medians = [statistics.median(catalog.sizes[f] for f in files)
               for files in catalog.dataset_files()]  # fmt: skip
    assert all(1.5e8 < m < 2.5e8 for m in medians[:7])
    assert all(3e9 < m < 5e9 for m in medians[7:])
    assert build_catalog(spec.scaled(500)).sizes  # scaling keeps the mix


def test_population_shares_must_add_up_to_one():
    with pytest.raises(SpecError, match="the populations' shares add up to 0.7, not 1"):
        CampaignSpec.from_mapping(
            {"files": {"populations": [{"share": 0.7, "size_median": "1GB"}]}}
        )
