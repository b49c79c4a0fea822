"""One conformance suite for every data-management back-end of the carousel: the tape
emulator (tests/unit/test_carousel_dm.py) and Rucio, a real server with the emulator playing
the transfers (tests/integration/test_carousel_rucio.py)."""

from __future__ import annotations

import pytest

from carousel.dm import FileState
from carousel.spec import CampaignSpec


def campaign(name: str = "campaign", read_failure: float = 0.0) -> CampaignSpec:
    """20 files in 2 datasets on 4 cartridges, 2 drives."""
    return CampaignSpec.from_mapping(
        {"name": name, "files": {"count": 20, "datasets": 2},
         "tape": {"cartridges": 4, "cartridges_per_dataset": 2, "drives": 2,
                  "read_failure": read_failure, "max_read_attempts": 2}}
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
    """Each back-end's test class provides ``make(read_failure)`` -> (dm, advance), and
    ``again(dm)`` -> (dm, advance): a new instance over the same system, as a new process
    of the carousel makes."""

    def make(self, read_failure: float = 0.0):
        raise NotImplementedError

    def again(self, dm):
        raise NotImplementedError

    def test_requested_files_are_staged_and_reported_once(self):
        dm, advance = self.make()
        rec = Recorder()
        dm.attach(rec)
        dm.request_staging([3, 1, 7])
        assert dm.state(3) is FileState.REQUESTED
        advance()
        advance()
        assert sorted(rec.staged) == [1, 3, 7]
        assert all(dm.state(f) is FileState.STAGED for f in (1, 3, 7))
        assert dm.state(0) is FileState.ON_TAPE

    def test_a_whole_dataset_is_staged(self):
        dm, advance = self.make()
        rec = Recorder()
        dm.attach(rec)
        dm.request_staging(list(range(10)))  # dataset 0
        advance()
        assert sorted(rec.staged) == list(range(10))
        for f in range(10):
            dm.release(f)
        assert all(dm.state(f) is FileState.RELEASED for f in range(10))

    def test_release_unpins_a_staged_file(self):
        dm, advance = self.make()
        dm.attach(Recorder())
        dm.request_staging([2])
        advance()
        dm.release(2)
        assert dm.state(2) is FileState.RELEASED

    def test_a_file_the_library_gives_up_on_is_lost_once(self):
        dm, advance = self.make(read_failure=0.999)
        rec = Recorder()
        dm.attach(rec)
        dm.request_staging([4])
        advance()
        advance()
        assert rec.failed[-1] == (4, True) and [lost for _, lost in rec.failed].count(True) == 1
        assert dm.state(4) is FileState.LOST and rec.staged == []

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

    def test_a_new_instance_takes_up_what_the_last_one_left_and_asks_for_nothing_again(self):
        dm, advance = self.make()
        dm.attach(Recorder())
        dm.request_staging([1, 2, 3])
        advance()
        dm.request_staging([12, 14])  # outstanding when its process stops
        new, advance = self.again(dm)
        rec = Recorder()
        new.attach(rec)
        new.reattach([12, 14], [1, 2, 3])
        assert new.state(12) is FileState.REQUESTED and new.state(1) is FileState.STAGED
        advance()
        advance()
        assert sorted(rec.staged) == [12, 14]  # each reported once, by the new instance
        new.release(1)
        assert new.state(1) is FileState.RELEASED and new.state(2) is FileState.STAGED
        with pytest.raises(ValueError, match="already"):
            new.request_staging([12])

    def test_releasing_part_of_a_dataset_leaves_the_rest_staged(self):
        dm, advance = self.make()
        dm.attach(Recorder())
        dm.request_staging(list(range(10)))  # dataset 0
        advance()
        for f in range(5):
            dm.release(f)
        assert all(dm.state(f) is FileState.RELEASED for f in range(5))
        assert all(dm.state(f) is FileState.STAGED for f in range(5, 10))
