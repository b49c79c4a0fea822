"""bench/toys.py still runs (in --quick mode) and writes its results, table and plot."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.bench, pytest.mark.slow]


def test_toys_quick_writes_both_metrics_and_the_plot(tmp_path, ray_address):
    from bench import toys

    toys.main(["--quick", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "toys.json").read_text())
    assert result["benchmark"] == "toys"
    rows = {(r["system"], r["metric"]): r for r in result["rows"]}
    assert set(rows) == {
        ("idds", "toys_per_s"), ("pyhf-loop", "toys_per_s"), ("pyhf-loops", "toys_per_s"),
        ("idds", "toys_per_cpu_s"), ("pyhf-loop", "toys_per_cpu_s"),
        ("idds", "toys_needed"), ("uniform-grid", "toys_needed"), ("idds", "coverage"),
        ("idds", "toys_needed_gaussian"), ("uniform-grid", "toys_needed_gaussian"),
    }  # fmt: skip
    bands = [r["config"].rsplit("band ", 1)[1] for r in result["rows"] if r["metric"] == "coverage"]
    assert bands == ["obs", "-2", "-1", "0", "+1", "+2"]
    assert all(r["value"] > 0 for r in result["rows"])
    markdown = (tmp_path / "toys.md").read_text()
    assert "Throughput: idds / single-process pyhf loop" in markdown
    assert "Coverage of the reported +-1 sigma intervals" in markdown
    assert "Toys needed on the Gaussian model" in markdown
    assert (tmp_path / "toys.png").stat().st_size > 5000


def test_toys_parts_run_alone_into_their_own_file(tmp_path, ray_address):
    from bench import toys

    toys.main(["--quick", "--parts", "throughput", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "toys-throughput.json").read_text())
    assert {r["metric"] for r in result["rows"]} == {"toys_per_s", "toys_per_cpu_s"}
    assert not (tmp_path / "toys.json").exists()  # the full run's results are left alone
    assert "Throughput: idds" in (tmp_path / "toys-throughput.md").read_text()
    assert "The machine's ceiling" in (tmp_path / "toys-throughput.md").read_text()
    with pytest.raises(SystemExit):
        toys.main(["--parts", "speed", "--out", str(tmp_path)])
