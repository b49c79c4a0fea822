"""Command payloads: input.json / output.json in a per-point work dir, logs, failures."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

import hpo
from idds.cli import main
from idds.commands import container_command

SCRIPT = Path(__file__).parents[1] / "commands" / "fake_train.py"


@pytest.fixture
def sqlite_settings(settings):
    if not settings.db_url.startswith("sqlite"):
        pytest.skip("command payloads do not depend on the database: run once, on SQLite")
    return settings


def _study(settings, modes, **over):
    fields = {
        "name": "cmd",
        "command": [sys.executable, str(SCRIPT), "%OUT"],
        "space": {
            "x": {"type": "float", "low": -2.0, "high": 2.0},
            "mode": {"type": "categorical", "choices": modes},
        },
        "max_points": 4, "parallel": 2, "proposer": "optuna:random", "seed": 1, **over,
    }  # fmt: skip
    return hpo.Study(settings=settings, **fields)


def test_command_reads_input_json_and_writes_output_json(sqlite_settings, capsys):
    study = _study(sqlite_settings, ["ok"])
    study.optimize(progress=False)
    for t in study.trials:
        assert t.state == "succeeded"
        assert t.value == pytest.approx((t.params["x"] - 1) ** 2)
        workdir = Path(study.workdir) / f"trial-{t.number:05d}"
        assert (workdir / "input.json").exists()
        assert (workdir / "output.json").exists()
    db = ["--db", sqlite_settings.db_url]
    main([*db, "hpo", "logs", "cmd", "2"])  # returns: exit code 0
    out = capsys.readouterr().out
    assert "--- stdout of trial 2, attempt 1" in out
    assert "point {" in out


def test_a_command_run_time_is_measured_on_its_worker(sqlite_settings, capsys):
    study = _study(sqlite_settings, ["nap"], max_points=2)  # each sleeps 0.3 s
    study.optimize(progress=False)
    for t in study.trials:
        assert t.state == "succeeded"
        assert t.run_s is not None and t.run_s >= 0.3
        assert t.duration_s is not None and t.run_s < t.duration_s
    main(["--db", sqlite_settings.db_url, "hpo", "show", "cmd"])
    out = capsys.readouterr().out
    for t in study.trials:
        (row,) = [line for line in out.splitlines() if line.split()[:1] == [str(t.number)]]
        assert f"{t.run_s:.3g}s" in row and f"{t.duration_s:.3g}s" in row


@pytest.mark.parametrize(("mode", "message"), [
    ("exit", "command exited with 3: something went wrong"),
    ("no-output", "the command wrote no output.json"),
    ("status", "output.json says status 1: diverged"),
    ("nan", "objective returned str, not a number"),
])  # fmt: skip
def test_command_failures_are_failed_trials_with_a_reason(sqlite_settings, mode, message):
    study = _study(sqlite_settings, [mode], max_points=2)
    study.optimize(progress=False)
    for t in study.trials:
        assert t.state == "failed"
        assert message in t.error


def test_checkpoints_are_kept_between_attempts(sqlite_settings):
    study = _study(sqlite_settings, ["resume"], max_points=1, retry_errors=True, max_attempts=2)
    study.optimize(progress=False)
    (t,) = study.trials
    assert (t.state, t.attempt) == ("succeeded", 2)
    assert t.value == pytest.approx((5 - 1.0) ** 2)  # it read its own checkpoint


def test_command_timeout_kills_the_process(sqlite_settings):
    study = _study(sqlite_settings, ["sleep"], max_points=1, timeout=1.0, max_attempts=1)
    study.optimize(progress=False)
    (t,) = study.trials
    assert t.state == "failed"
    assert "timed out after 1 s" in t.error
    pid = int((Path(study.workdir) / "trial-00000" / "pid").read_text())
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_container_wrapping():
    """Apptainer and Docker are not run here (no engine on this machine): the command line
    they would get is checked instead."""
    wd = Path("/w/trial-1")
    argv = container_command({"engine": "apptainer", "image": "t.sif"}, wd, ["python", "t.py"])
    assert argv == ["apptainer", "exec", "--bind", "/w/trial-1:/w/trial-1", "--pwd",
                    "/w/trial-1", "t.sif", "python", "t.py"]  # fmt: skip
    argv = container_command({"engine": "docker", "image": "img:1"}, wd, ["run.sh"])
    assert argv[:3] == ["docker", "run", "--rm"]
    assert argv[-4:] == ["-w", "/w/trial-1", "img:1", "run.sh"]
    assert "-v" in argv and "/w/trial-1:/w/trial-1" in argv and argv[-1] == "run.sh"
    with pytest.raises(ValueError, match="unknown container engine"):
        container_command({"engine": "lxc", "image": "x"}, wd, ["a"])


def test_a_command_script_reports_and_is_pruned(sqlite_settings):
    study = hpo.Study(
        settings=sqlite_settings, name="cmd-prune",
        command=[sys.executable, str(SCRIPT.parent / "epochs.py")],
        space={"x": {"type": "float", "low": -3.0, "high": 3.0}},
        max_points=6, parallel=2, proposer="optuna:random", seed=4,
        pruner="median", pruner_options={"n_startup_trials": 2, "n_warmup_steps": 1},
    )  # fmt: skip
    study.optimize(progress=False)
    trials = study.trials
    assert all(t.state == "succeeded" for t in trials)
    assert all(t.intermediate_values for t in trials)  # relayed from the script's reports
    pruned = [t for t in trials if t.pruned]
    assert pruned, "no command was pruned"
    for t in pruned:
        assert len(t.intermediate_values) < 12
        assert t.value == t.intermediate_values[max(t.intermediate_values)]
