"""The HTTP API benchmark still runs (a small load) and writes the shared result format."""

from __future__ import annotations

import json

import pytest

from bench import api


@pytest.mark.slow
@pytest.mark.bench
def test_api_bench_writes_latencies_errors_and_the_slowdown(tmp_path):
    api.main(["--clients", "3", "--points", "4", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "api.json").read_text())["rows"]
    metrics = {r["metric"]: r["value"] for r in rows}
    assert {"list_p99", "show_p50", "enqueue_errors", "slowdown_with_clients"} <= set(metrics)
    assert metrics["list_errors"] == metrics["show_errors"] == metrics["enqueue_errors"] == 0
    assert "HTTP API under load" in (tmp_path / "api.md").read_text()
