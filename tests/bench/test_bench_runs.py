"""Each benchmark still runs (in --quick mode) and writes results in the shared format."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.bench, pytest.mark.slow]


def test_overhead_quick_writes_the_result_format(tmp_path, ray_address, pg_url):
    from bench import overhead

    overhead.main(["--quick", "--rounds", "2", "--pg", pg_url, "--out", str(tmp_path)])
    result = json.loads((tmp_path / "overhead.json").read_text())
    assert result["benchmark"] == "overhead"
    assert {"cpus", "optuna", "ray"} <= set(result["machine"])
    rows = {(r["system"], r["config"].split(",")[0]): r for r in result["rows"]}
    assert ("idds", "sqlite") in rows
    assert ("optuna", "JournalStorage (file)") in rows
    assert ("ray-tune", "reuse_actors=True") in rows
    assert ("ray", "floor: raw tasks") in rows  # raw Ray at the same parallelism
    assert all(r["metric"] == "ms_per_eval" and r["value"] > 0 for r in result["rows"])
    # idds and the floor alternate in rounds; each gives the CPU its time went to
    assert len(rows[("idds", "sqlite")]["rounds"]) == 2
    assert len(rows[("ray", "floor: raw tasks")]["rounds"]) == 2
    assert rows[("idds", "sqlite")]["cpu_ms_per_eval"]["own"] > 0
    for key in [("idds", "sqlite"), ("ray", "floor: raw tasks")]:  # a slot's time, split
        assert rows[key]["slot_ms"]["round_trip"] > 0 and rows[key]["slot_ms"]["turnaround"] > 0
    assert "ratio to idds on SQLite" in (tmp_path / "overhead.md").read_text()
    assert "ratio to the floor" in (tmp_path / "overhead.md").read_text()


def test_segments_quick_writes_the_result_format(tmp_path, ray_address, pg_url):
    from bench import segments

    segments.main(["--quick", "--pg", pg_url, "--out", str(tmp_path)])
    result = json.loads((tmp_path / "segments.json").read_text())
    assert result["benchmark"] == "segments"
    configs = [r["config"] for r in result["rows"]]
    assert "sqlite, 6 segments x 4 points" in configs
    assert "sqlite, one study of 24 points" in configs
    assert all(r["metric"] == "ms_per_eval" and r["value"] > 0 for r in result["rows"])
    assert "ratio to one study" in (tmp_path / "segments.md").read_text()


def test_quality_quick_writes_results_and_a_plot(tmp_path, ray_address):
    from bench import quality

    quality.main(["--quick", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "quality.json").read_text())
    assert result["benchmark"] == "quality"
    systems = {r["system"] for r in result["rows"]}
    assert systems == {"idds:optuna:tpe", "optuna-tpe-sequential", "random"}
    metrics = {r["metric"] for r in result["rows"]}
    assert metrics == {"median_final_regret", "median_wall_s_per_study"}
    assert all(r["value"] >= 0 for r in result["rows"])  # regret against the known optimum
    assert (tmp_path / "quality.png").stat().st_size > 1000


def test_proposers_quick_writes_throughput_and_idle_fraction(tmp_path, ray_address):
    from bench import proposers

    proposers.main(["--quick", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "proposers.json").read_text())
    rows = {(r["system"], r["metric"]): r["value"] for r in result["rows"]}
    assert rows[("idds", "evals_per_s")] > 0 and rows[("optuna-loop", "evals_per_s")] > 0
    assert 0 <= rows[("idds", "worker_idle_fraction")] <= 1
