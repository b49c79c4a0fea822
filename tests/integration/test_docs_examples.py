"""Every command example of the docs runs: each docs/examples/*.sh (the pages include them)
runs with bash in a copy of the examples, on a SQLite file of its own and the session's Ray,
and must exit 0 without a traceback; and the site builds with warnings as errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
SCRIPTS = sorted((ROOT / "docs" / "examples").glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_docs_example_runs(script, ray_address, tmp_path):
    if shutil.which("idds") is None:
        pytest.skip("the idds command is not installed (pip install -e .)")
    ignore = shutil.ignore_patterns("*.db*", "idds-work", "__pycache__", "*.png")
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=ignore)
    shutil.copytree(ROOT / "docs" / "examples", tmp_path / "docs" / "examples", ignore=ignore)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDDS_")}
    env.update(
        IDDS_DB_URL=f"sqlite:///{tmp_path / 'idds.db'}",
        IDDS_WORK_DIR=str(tmp_path / "idds-work"),
        IDDS_RAY_ADDRESS=ray_address,
        PYTHONPATH=str(ROOT),  # this checkout, not the tests' dir (whose `dag` would shadow ours)
    )
    run = subprocess.run(["bash", "-eo", "pipefail", str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=400)  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "Traceback" not in out, out


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    pytest.importorskip(
        "mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "site" / "benchmarks" / "quality.png").is_file()  # bench/results' figures
    assert "hpo.Study" in (tmp_path / "site" / "reference" / "hpo" / "index.html").read_text()
