"""bench/hardening.py still runs (--quick: the cases refused before Ray is needed) and each
case is refused with one line and a non-zero exit."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.bench, pytest.mark.slow]

METRICS = {"refuse_s", "peak_rss_mb", "exit_code", "stderr_lines"}


def test_hardening_quick_refuses_each_case_in_one_line(tmp_path, monkeypatch):
    from bench import hardening

    monkeypatch.delenv("IDDS_DB_URL", raising=False)
    hardening.main(["--quick", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "hardening.json").read_text())
    assert result["benchmark"] == "hardening"
    values = {(r["system"], r["config"], r["metric"]): r["value"] for r in result["rows"]}
    configs = {config for _, config, _ in values}
    assert sorted(c.split(".")[0] for c in configs) == ["1", "2", "3", "4", "6", "7"]
    assert set(values) == {
        (system, config, metric)
        for system in ("idds", "valid-input")
        for config in configs
        for metric in METRICS
    }
    for config in configs:
        assert values[("idds", config, "exit_code")] != 0, config
        assert values[("idds", config, "stderr_lines")] == 1, config
        assert values[("valid-input", config, "exit_code")] == 0, config
        for system in ("idds", "valid-input"):
            assert values[(system, config, "refuse_s")] > 0
            assert values[(system, config, "peak_rss_mb")] > 0
    assert "ratio bad/valid" in (tmp_path / "hardening.md").read_text()
