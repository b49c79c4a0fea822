"""The example notebooks run clean (nbclient, a real kernel, the session's Ray)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).parents[2] / "examples"
NOTEBOOKS = EXAMPLES / "notebooks"


def _run(name: str, workdir: Path) -> list:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(workdir / name, as_version=4)
    NotebookClient(nb, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()  # fmt: skip
    return nb.cells


def _outputs(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        for kind, value in out.get("data", {}).items():
            parts.append(f"{kind}: {value}")
    return "\n".join(str(p) for p in parts)


def test_quickstart_runs_clean_with_a_progress_bar_and_a_live_view(
    ray_address, tmp_path, monkeypatch
):
    pytest.importorskip("ipykernel", reason="a notebook kernel needs ipykernel")
    workdir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, workdir, ignore=shutil.ignore_patterns("*.db*", "idds-work"))
    monkeypatch.setenv("IDDS_DB_URL", f"sqlite:///{tmp_path / 'idds.db'}")
    monkeypatch.setenv("IDDS_RAY_ADDRESS", ray_address)
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the tests' dir would shadow `dag`
    monkeypatch.setenv("IDDS_WORK_DIR", str(tmp_path / "work"))
    cells = [c for c in _run("quickstart.ipynb", workdir) if c.cell_type == "code"]
    _clean(cells)
    assert "application/vnd.jupyter.widget-view+json" in _outputs(cells[0])  # tqdm's bar
    assert "<b>Study nb-branin</b>" in _outputs(cells[1])
    assert "12/12 trials" in _outputs(cells[1])
    live = _outputs(cells[2])
    assert "<b>Study nb-branin-epochs</b>" in live and "8/8 trials" in live  # last refresh
    assert "best value" in _outputs(cells[3])
    assert "Intermediate values" in _outputs(cells[4])
    assert not list(workdir.glob("*.db")), "the notebook wrote beside itself, not to IDDS_DB_URL"


def _clean(cells) -> None:
    for cell in cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", out
            if out.get("name") == "stderr":
                assert "Traceback" not in out["text"] and "Error" not in out["text"], out["text"]


def test_capabilities_notebook_runs_a_workflow_a_scan_and_a_carousel(
    ray_address, tmp_path, monkeypatch
):
    pytest.importorskip("ipykernel", reason="a notebook kernel needs ipykernel")
    for name in ("notebooks", "toys", "carousel"):  # the notebook reads ../toys, ../carousel
        shutil.copytree(EXAMPLES / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("*.db*", "idds-work"))  # fmt: skip
    monkeypatch.setenv("IDDS_DB_URL", f"sqlite:///{tmp_path / 'idds.db'}")
    monkeypatch.setenv("IDDS_RAY_ADDRESS", ray_address)
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the tests' dir would shadow `dag`
    monkeypatch.setenv("IDDS_WORK_DIR", str(tmp_path / "work"))
    cells = [c for c in _run("capabilities.ipynb", tmp_path / "notebooks") if c.cell_type == "code"]
    _clean(cells)
    workflow, scan, carousel = (_outputs(c) for c in cells)
    assert "finished" in workflow and "square[2]" in workflow  # the graph's nodes
    assert "observed limit:" in scan and "expected ±2σ" in scan
    assert "'lost': 0" in carousel and "staged" in carousel and "processed" in carousel
