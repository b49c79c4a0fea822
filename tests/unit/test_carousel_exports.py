"""The carousel package's public API changes only on purpose."""

from __future__ import annotations

import importlib

EXPECTED = {
    "CampaignResult", "CampaignSpec", "CarouselInfo", "CarouselRun", "Catalog",
    "DataManagement", "DatasetLevel", "FileLevel", "FileState", "Orchestrator", "PlanRow",
    "Policy", "Processing", "RucioDM", "RucioSite", "SimClock", "SimProcessing", "Simulation",
    "SlidingWindow", "StagingListener", "TapeEmulator", "TapePlayer", "WallClock",
    "build_catalog", "format_size", "list_carousels", "load_campaign_file", "load_carousel",
    "make_policy", "parse_size", "plan", "recommend", "resume_live", "run_live", "simulate",
}  # fmt: skip


def test_all_is_what_we_mean_to_export():
    module = importlib.import_module("carousel")
    assert set(module.__all__) == EXPECTED
    for name in module.__all__:
        assert hasattr(module, name), name
