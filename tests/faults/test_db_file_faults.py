"""The database file itself goes wrong under the `idds` command: deleted while a head runs,
written by a newer release, read-only. Each is refused with one line and a non-zero exit,
rather than a traceback or a run that reports a best value whose results are gone."""

from __future__ import annotations

import os
import shutil
import sqlite3
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


def made_database(tmp_path: Path) -> Path:
    from idds.db import connect

    db = tmp_path / "idds.db"
    connect(f"sqlite:///{db}").dispose()  # made and migrated, as a first launch makes it
    done, _ = idds(db, "hpo", "list")
    assert done.returncode == 0, done.stderr
    return db


def test_a_database_from_a_newer_release_is_refused_in_one_line(tmp_path, fault_figures):
    db = made_database(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff_from_the_future'")
    conn.close()
    for words in (("hpo", "list"), ("toys", "list"), ("hpo", "show", "anything")):
        done, seconds = idds(db, *words)
        line = one_line_error(done)
        assert done.returncode == 1, done.stderr
        assert "ffff_from_the_future" in line
        assert "newer release" in line
        assert "upgrade idds" in line
    fault_figures(tried="database of a newer release (unknown alembic revision)",
                  refused=f"exit {done.returncode}, one line", seconds=f"{seconds:.2f}")  # fmt: skip


def read_only(path: Path) -> None:
    """Make ``path`` read-only, for root too where the file system allows (chattr +i)."""
    path.chmod(0o444)
    if os.access(path, os.W_OK) and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if os.access(path, os.W_OK):
        pytest.skip("cannot make a file read-only for this user")


@pytest.fixture
def read_only_database(tmp_path):
    db = made_database(tmp_path)
    read_only(db)
    yield db
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(db)], capture_output=True, check=False)
    db.chmod(0o644)


def test_a_read_only_database_refuses_a_launch_in_one_line(read_only_database, tmp_path,
                                                           ray_address, fault_figures):  # fmt: skip
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "ro", "objective": "objectives:quadratic", "max_points": 4,
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}}, "pythonpath": [str(TESTS)],
    }))  # fmt: skip
    before = read_only_database.read_bytes()
    done, seconds = idds(read_only_database, "hpo", "launch", str(spec), "--no-progress",
                         ray_address=ray_address)  # fmt: skip
    line = one_line_error(done)
    assert done.returncode in (1, 2), done.stderr
    assert "read-only" in line
    assert read_only_database.read_bytes() == before
    assert not (tmp_path / "idds-work").exists()
    listed, _ = idds(read_only_database, "hpo", "list")  # reading still works
    assert listed.returncode == 0, listed.stderr
    assert "no studies" in listed.stdout
    fault_figures(tried="hpo launch on a read-only database file",
                  refused=f"exit {done.returncode}, one line", seconds=f"{seconds:.2f}")  # fmt: skip
