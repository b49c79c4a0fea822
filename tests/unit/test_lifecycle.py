"""The launch / resume / cancel / list commands every command group shares."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

TESTS = Path(__file__).parents[1]


def _idds(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "idds", *args], capture_output=True, text=True, timeout=120
    )


def test_a_taken_name_is_refused_before_ray_is_joined(tmp_path):
    """A second launch of the same spec says so at once: it never waits for Ray (the address
    given here has no Ray behind it)."""
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "twice", "objective": "objectives:quadratic", "max_points": 2,
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "pythonpath": [str(TESTS)],
    }))  # fmt: skip
    db = ["--db", f"sqlite:///{tmp_path / 'x.db'}", "--ray-address", "127.0.0.1:9"]
    recorded = _idds(*db, "hpo", "launch", "--detach", str(spec))
    assert recorded.returncode == 0, recorded.stderr
    started = time.monotonic()
    again = _idds(*db, "hpo", "launch", str(spec))
    assert again.returncode == 2
    assert "a study named 'twice' exists already" in again.stderr
    assert "resume it with `idds hpo resume twice`" in again.stderr
    assert time.monotonic() - started < 20
    listed = _idds(*db, "hpo", "list")
    assert "twice" in listed.stdout and "0/2" in listed.stdout
    cancelled = _idds(*db, "hpo", "cancel", "twice")
    assert cancelled.returncode == 0
    assert "study 'twice' cancelled" in cancelled.stdout
    resumed = _idds(*db, "hpo", "resume", "twice")
    assert "study 'twice' is cancelled; nothing to resume" in resumed.stdout


def test_every_group_launches_detached_under_another_name(tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_text(yaml.safe_dump({"name": "wf", "params": {"n": 1}, "nodes": [
        {"name": "a", "command": ["sh", "-c", "printf '${params.n}' > output.json"]}]}))  # fmt: skip
    db = ["--db", f"sqlite:///{tmp_path / 'x.db'}", "--ray-address", "127.0.0.1:9"]
    launched = _idds(*db, "dag", "launch", "--detach", "--name", "wf2", "--set", "n=2", str(wf))
    assert launched.returncode == 0, launched.stderr
    assert "workflow 'wf2' recorded" in launched.stdout
    listed = _idds(*db, "dag", "list")
    assert "wf2" in listed.stdout and "active" in listed.stdout
    assert "no toy scans" in _idds(*db, "toys", "list").stdout


def test_a_value_given_on_the_command_line_is_bounded_like_a_spec_file(tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_text(yaml.safe_dump({"name": "wf", "params": {"n": 1}, "nodes": [
        {"name": "a", "command": ["sh", "-c", "printf '${params.n}' > output.json"]}]}))  # fmt: skip
    layers = ["&a0 [x,x,x,x,x,x,x,x,x,x]"]
    layers += [f"&a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    bomb = f"[{', '.join(layers)}]"
    db = ["--db", f"sqlite:///{tmp_path / 'x.db'}", "--ray-address", "127.0.0.1:9"]
    refused = _idds(*db, "dag", "launch", "--detach", "--set", f"n={bomb}", str(wf))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: --set n: refused: more than 100,000 values once its aliases are expanded"
    ]
    assert not (tmp_path / "x.db").exists()
