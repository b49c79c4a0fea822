"""The tape emulator: mount rules, reading order, positioning, failures."""

from __future__ import annotations

import json

import pytest

from carousel.catalog import build_catalog
from carousel.clock import SimClock
from carousel.spec import CampaignSpec
from carousel.tape import TapeEmulator


class Log:
    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.staged: list[tuple[float, int]] = []
        self.lost: list[int] = []

    def on_staged(self, file: int) -> None:
        self.staged.append((self.clock.now, file))

    def on_staging_failed(self, file: int, lost: bool) -> None:
        if lost:
            self.lost.append(file)


def library(**tape):
    spec = CampaignSpec.from_mapping(
        {"files": {"count": 200, "datasets": 2},
         "tape": {"cartridges": 2, "cartridges_per_dataset": 1, "drives": 1, **tape}}
    )  # fmt: skip
    clock = SimClock()
    cat = build_catalog(spec)
    tape_ = TapeEmulator(cat, spec.tape, clock, seed=3)
    log = Log(clock)
    tape_.attach(log)
    return spec, cat, clock, tape_, log


def test_a_small_request_waits_for_the_mount_age_rule():
    spec, cat, clock, tape, log = library(read_failure=0)
    tape.request_staging([0])
    clock.run()
    t = spec.tape
    first = t.mount_max_age_s + t.robot_move_s + t.load_s
    read = cat.sizes[0] / t.drive_rate + t.file_overhead_s
    locate = 2 * t.locate_mean_s * cat.positions[0] / t.cartridge_capacity
    assert log.staged == [(pytest.approx(first + locate + read), 0)]
    assert tape.stats.mounts == 1


def test_enough_bytes_queued_mount_at_once():
    spec, cat, clock, tape, log = library(read_failure=0, mount_min_bytes="10GB")
    files = [f for f in range(len(cat)) if cat.cartridges[f] == cat.cartridges[0]]
    tape.request_staging(files)
    clock.run()
    assert log.staged[0][0] < spec.tape.mount_max_age_s


def test_a_mount_reads_in_position_order_whatever_the_request_order():
    _, cat, clock, tape, log = library(read_failure=0)
    cart = cat.cartridges[0]
    files = [f for f in range(len(cat)) if cat.cartridges[f] == cart]
    tape.request_staging(list(reversed(files)))
    clock.run()
    read = [f for _, f in log.staged]
    assert [cat.positions[f] for f in read] == sorted(cat.positions[f] for f in files)
    assert tape.stats.mounts == 1


def test_one_drive_serves_two_cartridges_one_after_the_other():
    _, cat, clock, tape, log = library(read_failure=0)
    tape.request_staging(range(len(cat)))
    clock.run()
    carts = [cat.cartridges[f] for _, f in log.staged]
    assert carts == sorted(carts, key=carts.index)  # no interleaving: one mount each
    assert tape.stats.mounts == 2 and len(log.staged) == len(cat)


def test_failed_reads_retry_on_a_later_mount_and_are_lost_after_three():
    _, cat, clock, tape, log = library(read_failure=0.5)
    tape.request_staging(range(len(cat)))
    clock.run()
    assert len(log.staged) + len(log.lost) == len(cat)
    assert log.lost and tape.stats.mounts > 2
    assert tape.stats.read_failures == tape.stats.reads - len(log.staged)


def test_a_journalled_library_asks_now_for_a_request_it_never_received(tmp_path, monkeypatch):
    """A head recorded the request for file 7 and died before making it: the library that
    outlived it takes up file 3 (it was asked) and is asked for file 7 now, once."""
    journal = tmp_path / "tape.jsonl"
    monkeypatch.setenv("IDDS_CAROUSEL_TAPE_LOG", str(journal))
    _, cat, _, tape, _ = library(read_failure=0)
    tape.request_staging([3])
    _, _, clock, again, log = library(read_failure=0)
    again.reattach([3, 7], [])
    clock.run()
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sorted((e["event"], e["file"]) for e in events) == [
        ("reattach", cat.names[3]), ("request", cat.names[3]), ("request", cat.names[7])
    ]  # fmt: skip
    assert sorted(f for _, f in log.staged) == [3, 7]
