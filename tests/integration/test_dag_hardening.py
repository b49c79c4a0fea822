"""Workflows and heads that survive bad input: costly or deep expressions, retried attempts,
a Ray that does not start, an owner whose run raises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dag import load_workflow
from idds.cli import main
from idds.db import connect
from idds.records import Records


def _idds(capsys, *argv):
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _write(tmp_path: Path, name: str, *nodes) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps({"name": name, "nodes": list(nodes)}))
    return str(path)


def _echo(name: str, **extra):
    return {"name": name, "command": ["sh", "-c", "echo hi"], **extra}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_deep_or_long_expressions_are_refused_at_load_and_nothing_is_recorded(
    settings, tmp_path, capsys
):
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    for when in ("1" + "+1" * 599 + " > 0", "-" * 10_000 + "1"):
        spec = _write(tmp_path, "deep", _echo("a", when=when))
        code, _, err = _idds(capsys, *db, "dag", "launch", spec, "--no-progress")
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1
        assert "node a" in err and "(in when)" in err
        code, _, err = _idds(capsys, *db, "dag", "show", "deep")
        assert code == 2 and "no workflow named 'deep'" in err


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("node", "reason"),
    [
        (_echo("a", when="len(sorted([[1]*1000000]*100000)) > 0"), "longer than"),
        (_echo("a", when="((10**1000)**1000)**1000 > 0"), "exponent"),
        ({"name": "a", "command": ["sh", "-c", "echo ${9**9**9}"]}, "exponent"),
        (_echo("a", when="'%1999999999d' % 1 != ''"), "width"),
    ],
)
def test_a_costly_expression_fails_its_node_with_a_reason(settings, tmp_path, capsys, node, reason):
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    spec = _write(tmp_path, "costly", node, _echo("b"))
    code, out, err = _idds(capsys, *db, "dag", "launch", spec, "--no-progress")
    assert code == 1, out + err
    assert "workflow 'costly' failed: 1 failed, 1 succeeded" in out
    line = next(line for line in err.splitlines() if line.startswith("  a failed: "))
    assert reason in line
    workflow = load_workflow("costly", settings=settings)
    assert workflow.state == "failed"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_attempt_numbers_only_grow_across_retries(settings, tmp_path, capsys):
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    count = tmp_path / "count"
    script = f"n=$(($(cat {count} 2>/dev/null || echo 0) + 1)); echo $n > {count}; echo run $n >&2; exit 1"
    spec = _write(
        tmp_path, "again", {"name": "a", "command": ["sh", "-c", script], "max_attempts": 2}
    )
    code, _, _ = _idds(capsys, *db, "dag", "launch", spec, "--no-progress")
    assert code == 1
    code, _, _ = _idds(capsys, *db, "dag", "retry", "again", "--no-progress")
    assert code == 1
    node = next(n for n in load_workflow("again", settings=settings).nodes() if n.path == "a")
    assert node.attempt == 4
    for attempt in (1, 2, 3, 4):
        code, out, err = _idds(capsys, *db, "dag", "logs", "again", "a", "--attempt", str(attempt))
        assert code == 0 and f"run {attempt}\n" in out, out + err
    code, out, _ = _idds(capsys, *db, "dag", "logs", "again", "a")
    assert "attempt 4" in out and "run 4" in out


def test_starting_ray_is_tried_again_then_fails_in_one_line(monkeypatch):
    import ray

    from idds.errors import IddsError
    from idds.runtime import ensure_ray

    calls = []

    def init(**_):
        calls.append(1)
        if len(calls) < 3:
            raise Exception("node timed out during startup\n(and 40 more lines)")  # noqa: TRY002

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    ensure_ray("127.0.0.1:1", tries=3, backoff_s=0)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(IddsError) as caught:
        ensure_ray("127.0.0.1:1", tries=2, backoff_s=0)
    assert len(calls) == 2
    assert str(caught.value) == (
        "cannot start or join Ray at 127.0.0.1:1 (2 tries): node timed out during startup"
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_head_whose_ray_does_not_start_says_so_and_holds_nothing(settings, tmp_path, capsys):
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    spec = _write(tmp_path, "noray", _echo("a"))
    assert _idds(capsys, *db, "dag", "launch", spec, "--detach")[0] == 0
    argv = [sys.executable, "-m", "idds", "--db", settings.db_url]
    argv += ["--ray-address", "ray://127.0.0.1:1", "dag", "resume", "noray", "--no-progress"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert errors == [errors[-1]] and errors[-1].startswith("error: cannot start or join Ray")
    record = Records(connect(settings.db_url)).owner("workflow", "noray")
    assert record.state == "active" and record.lease_holder is None


def test_a_serve_head_fails_a_poisoned_owner_once_and_runs_the_others(settings, tmp_path, capsys):
    import hpo
    from idds.records.commands import NewOwner
    from idds.serve import Server

    study = tmp_path / "study.json"
    study.write_text(json.dumps({
        "name": "good", "objective": "objectives:quadratic", "max_points": 3, "parallel": 1,
        "space": {"x": {"type": "float", "low": -2.0, "high": 2.0}},
        "proposer": "optuna:random", "seed": 1,
        "pythonpath": [str(Path(__file__).parents[1])],
    }))  # fmt: skip
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    assert _idds(capsys, *db, "hpo", "launch", str(study), "--detach")[0] == 0
    poisoned = {"name": "poisoned", "nodes": [{"name": "a", "callable": "m:f", "parallel": 0}]}
    records = Records(connect(settings.db_url))
    records.create(NewOwner(kind="workflow", name="poisoned", spec=poisoned), user=None)

    spawned = []

    class Counting(Server):
        def _spawn(self, row):
            spawned.append(row.name)
            super()._spawn(row)

    Counting(settings, poll_s=0.3).serve(until_idle=True)
    assert records.owner("workflow", "poisoned").state == "failed"
    assert spawned.count("poisoned") == 1
    assert hpo.load_study("good", settings=settings).state == "finished"
