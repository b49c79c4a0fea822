"""A script run as a command finds its work dir in IDDS_TASK_DIR (IDDS_WORKDIR before)."""

from __future__ import annotations

import pytest

import hpo


@pytest.mark.parametrize("name", ["IDDS_TASK_DIR", "IDDS_WORKDIR"])
def test_a_command_script_finds_its_work_dir(monkeypatch, tmp_path, name):
    monkeypatch.delenv("IDDS_TASK_DIR", raising=False)
    monkeypatch.delenv("IDDS_WORKDIR", raising=False)
    monkeypatch.setenv(name, str(tmp_path))
    assert hpo.checkpoint_dir() == tmp_path / "checkpoints"
    hpo.report(3, 0.5)
    assert (tmp_path / "reports.jsonl").read_text().strip() == '{"step": 3, "value": 0.5}'
    assert not hpo.should_prune()
    (tmp_path / "PRUNE").touch()
    assert hpo.should_prune()


def test_the_new_name_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("IDDS_TASK_DIR", str(tmp_path / "new"))
    monkeypatch.setenv("IDDS_WORKDIR", str(tmp_path / "old"))
    assert hpo.checkpoint_dir() == tmp_path / "new" / "checkpoints"
