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
    configs = {(r["system"], r["config"]) for r in result["rows"]}
    assert ("idds", "sqlite") in configs and ("ray", "raw tasks, refs as dependencies") in configs
    assert {"dask"} <= {r["system"] for r in result["rows"]}
    assert all(r["metric"] == "ms_per_node" and r["value"] > 0 for r in result["rows"])
    assert "ratio to raw Ray" in (tmp_path / "dag.md").read_text()
