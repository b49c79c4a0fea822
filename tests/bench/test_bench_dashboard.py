"""bench/dashboard.py still runs (--quick) and writes the shared result format."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.bench, pytest.mark.slow]


def test_dashboard_quick_writes_render_times_beside_optuna(tmp_path, monkeypatch):
    from bench import dashboard

    monkeypatch.delenv("IDDS_DB_URL", raising=False)
    dashboard.main(["--quick", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "dashboard.json").read_text())
    assert result["benchmark"] == "dashboard"
    rows = {(r["system"], r["config"]): r for r in result["rows"]}
    assert set(rows) == {
        (s, "200") for s in ("idds", "idds-refresh", "idds-every-figure", "optuna", "optuna-best")
    }
    assert all(r["metric"] == "render_s" and r["value"] > 0 for r in result["rows"])
    assert "ratio to idds" in (tmp_path / "dashboard.md").read_text()
