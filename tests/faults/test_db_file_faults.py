"""The database file itself goes wrong under the `idds` command: deleted while a head runs,
written by a newer release, read-only. Each is refused with one line and a non-zero exit,
rather than a traceback or a run that reports a best value whose results are gone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).parents[1]
pytestmark = [pytest.mark.faults]


def idds(db: Path, *words: str, ray_address: str | None = None, timeout: float = 180):
    argv = [sys.executable, "-m", "idds", "--db", f"sqlite:///{db}"]
    if ray_address:
        argv += ["--ray-address", ray_address]
    started = time.monotonic()
    done = subprocess.run(
        [*argv, *words], capture_output=True, text=True, timeout=timeout
    )  # fmt: skip
    return done, time.monotonic() - started


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.mark.slow
def test_a_database_file_deleted_mid_run_stops_the_head(ray_address, tmp_path, fault_figures):
    db, log = tmp_path / "idds.db", tmp_path / "runs.log"
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "vanishing", "objective": "db_file_objectives:deletes_db_after",
        "space": {"x": {"type": "float", "low": -3.0, "high": 3.0},
                  "db": {"type": "categorical", "choices": [str(db)]},
                  "log": {"type": "categorical", "choices": [str(log)]},
                  "after": {"type": "categorical", "choices": [10]}},
        "proposer": "optuna:random", "max_points": 40, "parallel": 2, "seed": 3,
        "pythonpath": [str(TESTS)],
    }))  # fmt: skip
    done, _ = idds(db, "hpo", "launch", str(spec), "--no-progress", ray_address=ray_address)
    seconds = time.time() - float(Path(f"{log}.deleted").read_text())
    line = one_line_error(done)
    assert done.returncode == 1, done.stderr
    assert "best value" not in done.stdout
    assert "deleted or replaced" in line
    runs = len(log.read_text().splitlines())
    assert runs < 40
    fault_figures(tried="SQLite file deleted after 10 of 40 evaluations",
                  refused=f"exit {done.returncode}, one line", seconds=f"{seconds:.2f}",
                  evaluations_after=runs - 10)  # fmt: skip
