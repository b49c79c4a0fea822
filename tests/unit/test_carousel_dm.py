"""The data-management conformance suite (tests/carousel_conformance.py) against the tape
emulator, on a simulated clock. The same suite runs against a real Rucio server in
tests/integration/test_carousel_rucio.py."""

from __future__ import annotations

from carousel_conformance import DataManagementConformance, campaign

from carousel.catalog import build_catalog
from carousel.clock import SimClock
from carousel.tape import TapeEmulator


class TestTapeEmulator(DataManagementConformance):
    def make(self, read_failure: float = 0.0):
        spec = campaign(read_failure=read_failure)
        clock = SimClock()
        dm = TapeEmulator(build_catalog(spec), spec.tape, clock, seed=1)
        return dm, clock.run
