"""The workflow benchmark still runs (in --quick mode) and writes the shared result format."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.bench, pytest.mark.slow]


def test_dag_quick_writes_the_result_format(tmp_path, ray_address, pg_url):
    from bench import dag

    dag.main(["--quick", "--pg", pg_url, "--out", str(tmp_path)])
    result = json.loads((tmp_path / "dag.json").read_text())
    assert result["benchmark"] == "dag"
    rows = {(r["system"], r["config"], r["metric"]): r["value"] for r in result["rows"]}
    for n in (500, 2000):  # --quick: two sizes
        assert rows[("idds", f"sqlite, {n} nodes", "ms_per_node")] > 0
        assert rows[("idds", f"sqlite, {n} nodes", "create_s")] > 0
        assert rows[("idds", f"sqlite, {n} nodes", "create_cpu_s")] > 0
        assert ("idds", f"sqlite, {n} nodes", "peak_head_mb_per_100k_nodes") in rows
        assert rows[("ray", f"raw tasks, refs as dependencies, {n} nodes", "ms_per_node")] > 0
    assert {"dask"} <= {r["system"] for r in result["rows"]}
    assert "ratio to raw Ray" in (tmp_path / "dag.md").read_text()
