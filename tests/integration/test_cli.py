"""The `idds` command as a user runs it: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from idds.cli import main

TESTS = Path(__file__).parents[1]


def _write_spec(path: Path, **over) -> Path:
    spec = {
        "name": "cli-study",
        "objective": "objectives:quadratic",
        "space": {"x": {"type": "float", "low": -2.0, "high": 2.0, "log": False}},
        "max_points": 6,
        "parallel": 2,
        "proposer": "optuna:random",
        "seed": 3,
        "pythonpath": [str(TESTS)],
        **over,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def _idds(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_launch_list_show_resume_cancel(settings, tmp_path, capsys):
    spec = _write_spec(tmp_path / "s.yaml")
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    code, out, err = _idds(capsys, *db, "hpo", "launch", str(spec), "--no-progress")
    assert code == 0, err
    assert "best value:" in out and 'best point: {"x":' in out
    code, out, _ = _idds(capsys, *db, "hpo", "list")
    assert code == 0 and "cli-study" in out and "6/6" in out and "finished" in out
    code, out, _ = _idds(capsys, *db, "hpo", "show", "cli-study")
    assert code == 0
    assert out.count("succeeded") == 6 and "attempt" in out and "local" in out
    code, out, _ = _idds(capsys, *db, "hpo", "resume", "cli-study")
    assert code == 0 and "finished; nothing to resume" in out
    code, _, err = _idds(capsys, *db, "hpo", "launch", str(spec))
    assert code == 2 and "exists already" in err
    code, out, _ = _idds(capsys, *db, "hpo", "cancel", "cli-study")
    assert code == 0


def test_show_prints_the_traceback_of_a_failed_trial(settings, tmp_path, capsys):
    spec = _write_spec(tmp_path / "s.yaml", objective="objectives:fails_above", max_points=8)
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    assert _idds(capsys, *db, "hpo", "launch", str(spec), "--no-progress")[0] == 0
    code, out, _ = _idds(capsys, *db, "hpo", "show", "cli-study")
    assert code == 0
    assert "failed after 1 attempt(s):" in out and "Traceback" in out
    assert "ValueError: x=" in out


@pytest.mark.parametrize(("over", "message"), [
    ({"paralel": 2}, "paralel: unknown key"),
    ({"space": {"x": {"type": "float", "low": 5, "high": 1}}}, "space.x: low (5) must not be greater"),
    ({"proposer": "nope"}, "unknown proposer 'nope'"),
    ({"objective": "not_a_module_anywhere:f"}, "module 'not_a_module_anywhere' does not import"),
])  # fmt: skip
def test_bad_spec_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, over, message):
    spec = _write_spec(tmp_path / "s.yaml", **over)
    db_file = tmp_path / "never.db"
    code, out, err = _idds(capsys, "--db", f"sqlite:///{db_file}", "hpo", "launch", str(spec))
    assert code == 2
    assert err.strip().count("\n") == 0 and message in err
    assert not db_file.exists()


def test_unknown_study_and_missing_file(tmp_path, capsys):
    db = ["--db", f"sqlite:///{tmp_path / 'x.db'}"]
    code, _, err = _idds(capsys, *db, "hpo", "show", "nope")
    assert code == 2
    assert err.startswith(f"error: no study named 'nope': no database at {tmp_path / 'x.db'}")
    assert not (tmp_path / "x.db").exists()  # looking made nothing
    code, _, err = _idds(capsys, *db, "hpo", "launch", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read" in err


def test_database_that_does_not_answer_is_one_line(capsys):
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    code, _, err = _idds(capsys, "--db", url, "hpo", "list")
    assert code == 1
    assert err.startswith("error: cannot use database postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert err.strip().count("\n") == 0


def test_console_script_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "idds", "--db", f"sqlite:///{tmp_path / 'x.db'}", "hpo", "list"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "no studies" in proc.stdout


def test_gpus_the_cluster_lacks_are_refused_before_anything_is_written(settings, tmp_path, capsys):
    """The test cluster has no GPU: a study asking for one would wait forever."""
    spec = _write_spec(tmp_path / "s.yaml", resources={"gpus": 0.5})
    db_file = tmp_path / "gpu.db"
    db = ["--db", f"sqlite:///{db_file}", "--ray-address", settings.ray_address]
    code, _, err = _idds(capsys, *db, "hpo", "launch", str(spec))
    assert code == 2
    assert "resources.gpus: an evaluation asks for 0.5 GPU, and the Ray cluster has 0" in err
    assert not db_file.exists()


def test_a_study_can_be_read_where_its_objective_is_not_installed(settings, tmp_path, capsys):
    (tmp_path / "gone_soon.py").write_text("def f(p):\n    return p['x'] ** 2\n")
    spec = _write_spec(tmp_path / "s.yaml", objective="gone_soon:f", pythonpath=[str(tmp_path)])
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    assert _idds(capsys, *db, "hpo", "launch", str(spec), "--no-progress")[0] == 0
    (tmp_path / "gone_soon.py").unlink()
    sys.modules.pop("gone_soon", None)  # as in a new process: the module cannot be imported
    code, out, _ = _idds(capsys, *db, "hpo", "show", "cli-study")
    assert code == 0
    assert out.count("succeeded") == 6
