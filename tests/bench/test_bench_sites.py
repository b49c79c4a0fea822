"""The sites benchmark still runs (--quick) and writes its three metrics for both systems."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.bench, pytest.mark.slow]


def test_sites_quick_writes_the_result_format(tmp_path, ray_address):
    from bench import sites

    sites.main(["--quick", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "sites.json").read_text())
    assert result["benchmark"] == "sites"
    got = {(r["system"], r["metric"]) for r in result["rows"]}
    assert got == {(s, m) for s in ("idds", "ray-local")
                   for m in ("time_to_first_eval_s", "utilisation", "evals_per_s")}  # fmt: skip
    assert all(r["value"] > 0 for r in result["rows"])
    assert all(r["value"] <= 1.0 for r in result["rows"] if r["metric"] == "utilisation")
    assert "evaluations per site" in (tmp_path / "sites.md").read_text()
