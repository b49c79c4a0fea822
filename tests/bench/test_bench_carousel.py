"""The carousel benchmark still runs (--quick) and writes results in the shared format."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.bench, pytest.mark.slow]


def test_carousel_quick_writes_results_and_a_plot(tmp_path):
    from bench import carousel

    carousel.main(["--quick", "--no-rucio", "--out", str(tmp_path)])  # Rucio: test_carousel_rucio
    result = json.loads((tmp_path / "carousel.json").read_text())
    assert result["benchmark"] == "carousel"
    metrics = {r["metric"] for r in result["rows"]}
    assert {"peak_disk_tb", "disk_tb_hours", "makespan_h", "staged_to_processed_p95_h",
            "sim_s_100k_files"} <= metrics  # fmt: skip
    systems = {r["system"] for r in result["rows"]}
    assert systems == {"idds", "dataset-level", "sliding-window", "simpy"}
    assert all(r["value"] >= 0 for r in result["rows"])
    assert any("slots=500" in r["config"] for r in result["rows"])
    assert "Targets" in (tmp_path / "carousel.md").read_text()
    assert (tmp_path / "carousel.png").stat().st_size > 10_000
