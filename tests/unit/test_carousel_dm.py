"""The data-management conformance suite (tests/carousel_conformance.py) against the tape
emulator, on a simulated clock. The same suite runs against a real Rucio server in
tests/integration/test_carousel_rucio.py."""

from __future__ import annotations

from carousel_conformance import DataManagementConformance, campaign

from carousel.catalog import build_catalog
from carousel.clock import SimClock
from carousel.spec import CampaignSpec
from carousel.tape import TapeEmulator, TapeLibraries


class TestTapeEmulator(DataManagementConformance):
    def make(self, read_failure: float = 0.0):
        spec = campaign(read_failure=read_failure)
        clock = SimClock()
        dm = TapeEmulator(build_catalog(spec), spec.tape, clock, seed=1)
        return dm, clock.run

    def again(self, dm):
        clock = SimClock()  # the emulator of a new process: one that outlived the last
        return TapeEmulator(dm.catalog, dm.spec, clock, seed=2), clock.run


class TestTwoTapeLibraries(DataManagementConformance):
    def make(self, read_failure: float = 0.0):
        spec = campaign(read_failure=read_failure)
        tape = spec.to_json()["tape"]
        spec = CampaignSpec.from_mapping({**spec.to_json(), "tape": [tape, tape]})
        clock = SimClock()
        dm = TapeLibraries(build_catalog(spec), spec.tape_libraries, clock, seed=1)
        return dm, clock.run

    def again(self, dm):
        clock = SimClock()
        specs = [lib.spec for lib in dm.libraries]
        return TapeLibraries(dm.catalog, specs, clock, seed=2), clock.run


def test_each_library_stages_its_own_datasets_from_its_own_cartridges():
    from carousel.simulate import Simulation

    spec = CampaignSpec.from_mapping({
        "files": {"count": 400, "datasets": 4},
        "tape": [{"cartridges": 6, "cartridges_per_dataset": 2, "drives": 2},
                 {"cartridges": 6, "cartridges_per_dataset": 2, "drives": 1}],
        "processing": {"slots": 40}})  # fmt: skip
    sim = Simulation(spec, "file-level")
    result = sim.run()
    catalog, tape = sim.catalog, sim.tape
    assert catalog.libraries == [0] * 200 + [1] * 200  # datasets shared by cartridge pool
    assert {catalog.cartridges[f] for f in range(200)} <= set(range(6))
    assert {catalog.cartridges[f] for f in range(200, 400)} <= set(range(6, 12))
    assert all(lib.stats.mounts > 0 for lib in tape.libraries)
    assert result.mounts == sum(lib.stats.mounts for lib in tape.libraries)
    assert tape.spec.drives == 3 and not result.lost
