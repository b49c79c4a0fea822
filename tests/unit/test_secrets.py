"""No credential reaches an evaluation: not through the environment its worker inherits from
a head that started its own Ray, nor through one a cluster's node was started with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from idds.payloads import run_payload
from idds.secrets import SECRET_NAMES

TESTS = Path(__file__).parents[1]
SECRETS = {"IDDS_TOKEN": "idds_abc", "IDDS_DB_URL": "postgresql://u:pw@h/db",
           "PGPASSWORD": "pw", "RAY_AUTH_TOKEN": "ray-secret", "EXTRA_SECRET": "x",
           "IDDS_STRIP_ENV": "EXTRA_SECRET"}  # fmt: skip


def test_a_worker_strips_credentials_before_a_payload_runs(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    payload = {"callable": "objectives:no_secrets", "args": [{"x": 1.0}],
               "pythonpath": [str(TESTS)]}  # fmt: skip
    report = run_payload(payload)
    assert report["ok"], report.get("error")
    assert not SECRET_NAMES & set(os.environ) and "EXTRA_SECRET" not in os.environ


@pytest.mark.slow
def test_an_evaluation_of_a_head_with_its_own_ray_sees_no_credential(tmp_path):
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "clean", "objective": "objectives:no_secrets", "max_points": 2,
        "max_attempts": 1, "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "proposer": "optuna:random", "seed": 1, "pythonpath": [str(TESTS)],
    }))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "IDDS_"))}
    env.update({**SECRETS, "IDDS_DB_URL": f"sqlite:///{tmp_path / 'idds.db'}",
                "IDDS_WORK_DIR": str(tmp_path / "work"), "IDDS_TOKEN": ""})  # fmt: skip
    del env["RAY_AUTH_TOKEN"]  # a local Ray of its own: no cluster token to join with
    run = subprocess.run(
        [sys.executable, "-m", "idds", "hpo", "launch", str(spec), "--no-progress"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    show = subprocess.run([sys.executable, "-m", "idds", "hpo", "show", "clean"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert show.stdout.count("succeeded") == 2, show.stdout + show.stderr
