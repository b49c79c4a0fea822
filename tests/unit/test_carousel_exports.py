"""The carousel package's public API changes only on purpose."""

from __future__ import annotations

import importlib

EXPECTED = {
    "CampaignResult", "CampaignSpec", "CarouselRun", "Catalog", "DataManagement",
    "DatasetLevel", "FileLevel", "FileState", "Orchestrator", "PlanRow", "Policy",
    "Processing", "RucioDM", "SimClock", "SimProcessing", "Simulation", "SlidingWindow",
    "StagingListener", "TapeEmulator", "WallClock", "build_catalog", "format_size",
    "load_campaign_file", "make_policy", "parse_size", "plan", "recommend", "run_live",
    "simulate",
}  # fmt: skip


def test_all_is_what_we_mean_to_export():
    module = importlib.import_module("carousel")
    assert set(module.__all__) == EXPECTED
    for name in module.__all__:
        assert hasattr(module, name), name
