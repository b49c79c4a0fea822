"""A database made by the previous release (``tests/data/prev_release.db``, see
``tests/data/README.md``) upgrades when this release opens it, and everything in it lists,
shows and resumes as a user saw it then.

The assertions read what ``idds`` prints (and the dashboard shows), never the tables, so that
they hold across schema changes. The numbers are the ones the previous release printed.
Resumed studies and workflows write their new work dirs under ``/tmp/idds-prev-release``,
where the database records its work dir; objectives come from ``tests/objectives.py``
(``objectives`` on the path, as ``tests/conftest.py`` sets it).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from idds.cli import main

pytestmark = pytest.mark.slow

DATA = Path(__file__).parents[1] / "data"
ROOT = Path(__file__).parents[2]
#: The work dir the database records (where the previous release made it)
PREV_WORK = Path("/tmp/idds-prev-release/idds-work")

#: What ``idds hpo list`` printed: name -> (state, done, running, best)
STUDIES = {
    "done": ("finished", "8/8", "0", 0.120038),
    "segs.near": ("finished", "3/3", "0", 0.0275414),
    "segs.far": ("finished", "4/4", "0", 16.0009),
    "pareto": ("finished", "6/6", "0", None),
    "queued": ("active", "0/4", "0", None),
    "interrupted": ("active", "5/10", "0", 0.233221),
    # its head was killed and its lease lapsed long ago: not shown running forever
    "killed": ("stopped (no live head; resume it)", "3/10", "1 lost with their head", 0.0811774),
    "tuned.search": ("finished", "4/4", "0", 0.0198066),
}
#: The recorded trials of the studies stopped midway: number -> value
INTERRUPTED = {0: 4.46066, 1: 0.233221, 2: 4.72247, 3: 0.454874, 4: 1.09486}
KILLED = {0: 0.326544, 1: 2.79585, 2: 0.0811774}  # and trial 3 in flight (x=-1.833)
#: ``idds dag list``: name -> (state, tasks, running, succeeded, failed)
WORKFLOWS = {
    "tuned": ("finished", "3", "0", "3", "0"),
    "broken": ("failed", "2", "0", "1", "1"),
    "halfway": ("active", "2", "0", "2", "0"),
}
#: ``idds toys list``: name -> (state, points, toys, steps, observed)
SCANS = {
    "scan": ("finished", "3", "120", "1", "0.4033 +- 41"),
    "scan-cut": ("active", "7", "560", "3", "0.6443 +- 6.1"),
}


@pytest.fixture
def idds(tmp_path, ray_address, capsys, monkeypatch):
    """``idds ARGS...`` on a fresh copy of the previous release's database, as alice (no user
    is registered there): (exit code, stdout, stderr)."""
    db = tmp_path / "prev.db"
    shutil.copyfile(DATA / "prev_release.db", db)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IDDS_USER", "alice")
    monkeypatch.delenv("IDDS_TOKEN", raising=False)
    monkeypatch.delenv("IDDS_URL", raising=False)
    monkeypatch.setenv("IDDS_DB_URL", f"sqlite:///{db}")
    monkeypatch.setenv("IDDS_WORK_DIR", str(tmp_path / "work"))
    capsys.readouterr()

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(["--db", f"sqlite:///{db}", "--ray-address", ray_address, *args])
            code = 0
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def ok(idds, *args: str) -> str:
    code, out, err = idds(*args)
    assert code == 0, f"idds {' '.join(args)}: exit {code}\n{out}\n{err}"
    return out


def table(out: str, first: str) -> list[dict[str, str]]:
    """The rows of the first table in ``out`` whose header starts with ``first``, as dicts by
    column name (columns are where the dashes under the header are)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first])
    spans = [m.span() for m in re.finditer(r"-+", lines[start + 1])]
    names = [lines[start][a:b].strip() for a, b in _wide(spans)]
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        rows.append({n: line[a:b].strip() for n, (a, b) in zip(names, _wide(spans), strict=True)})
    return rows


def _wide(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each column up to the next one's start (the last one to the end of the line)."""
    return [
        (a, spans[i + 1][0] if i + 1 < len(spans) else 10_000) for i, (a, _) in enumerate(spans)
    ]


def by(rows: list[dict[str, str]], key: str) -> dict[str, dict[str, str]]:
    return {r[key]: r for r in rows}


def trials(out: str) -> dict[int, tuple[str, str, str]]:
    """``idds hpo show``'s trials: number -> (state, attempt, value)."""
    return {int(r["trial"]): (r["state"], r["attempt"], r["value"]) for r in table(out, "trial")}


def best_value(out: str) -> float:
    found = re.search(r"best value: (\S+)", out)
    assert found, out
    return float(found.group(1))


def emptied(path: Path) -> Path:
    """``path``, removed: what a resume writes there is what it ran (each execution of a
    trial or node makes its work dir)."""
    shutil.rmtree(path, ignore_errors=True)
    return path


def listing(*paths: Path) -> list[str]:
    return sorted(p.name for path in paths if path.is_dir() for p in path.iterdir())


def test_studies_list_and_show_as_recorded(idds):
    listed = by(table(ok(idds, "hpo", "list"), "name"), "name")
    assert set(STUDIES) <= set(listed), listed
    for name, (state, done, running, best) in STUDIES.items():
        row = listed[name]
        assert (row["user"], row["state"], row["done"], row["running"]) == (
            "alice", state, done, running), row  # fmt: skip
        if best is None:
            assert row["best"] == ""
        else:
            assert float(row["best"]) == pytest.approx(best, rel=1e-5)

    out = ok(idds, "hpo", "show", "done")
    assert "8/8 points" in out
    assert set(trials(out).values()) >= {("succeeded", "1", "0.120038")}
    assert len(trials(out)) == 8 and all(s == "succeeded" for s, _, _ in trials(out).values())
    assert best_value(out) == pytest.approx(0.120038) and "(trial 7)" in out
    assert json.loads(out.split("best point: ")[1].splitlines()[0])["x"] == pytest.approx(
        0.7050196079205251)  # fmt: skip

    out = ok(idds, "hpo", "show", "segs")
    assert "segmented: 2 segments" in out
    assert "study segs.near: finished" in out and "study segs.far: finished" in out
    for name, n, best in (("segs.near", 3, 0.0275414), ("segs.far", 4, 16.0009)):
        out = ok(idds, "hpo", "show", name)
        assert f"{n}/{n} points" in out and len(trials(out)) == n
        assert best_value(out) == pytest.approx(best, rel=1e-5)

    out = ok(idds, "hpo", "show", "pareto")
    assert "Pareto front (5 trial(s)" in out
    front = re.findall(r"^\s+trial (\d+): \[", out, re.MULTILINE)
    assert front == ["0", "2", "3", "4", "5"]

    out = ok(idds, "hpo", "show", "interrupted")
    assert {n: (s, a, float(v)) for n, (s, a, v) in trials(out).items()} == {
        n: ("succeeded", "1", pytest.approx(v, rel=1e-5)) for n, v in INTERRUPTED.items()}  # fmt: skip
    out = ok(idds, "hpo", "show", "killed")
    shown = trials(out)
    assert shown[3][:2] == ("lost with their head", "1")
    assert {n: float(shown[n][2]) for n in KILLED} == pytest.approx(KILLED, rel=1e-5)
    out = ok(idds, "hpo", "show", "queued")
    assert "0/4 points" in out and trials(out) == {}
    out = ok(idds, "hpo", "show", "tuned.search")
    assert best_value(out) == pytest.approx(0.0198066, rel=1e-5) and len(trials(out)) == 4


def test_workflows_and_toy_scans_list_and_show_as_recorded(idds):
    listed = by(table(ok(idds, "dag", "list"), "workflow"), "workflow")
    for name, (state, tasks, running, succeeded, failed) in WORKFLOWS.items():
        row = listed[name]
        assert (row["user"], row["state"], row["tasks"], row["running"], row["succeeded"],
                row["failed"]) == ("alice", state, tasks, running, succeeded, failed), row  # fmt: skip

    nodes = by(table(ok(idds, "dag", "show", "tuned"), "node"), "node")
    assert {n: (r["kind"], r["state"]) for n, r in nodes.items()} == {
        "prepare": ("command", "succeeded"), "search": ("study", "succeeded"),
        "report": ("command", "succeeded")}  # fmt: skip
    assert nodes["prepare"]["output / detail"] == "[1, 2]"
    assert nodes["report"]["output / detail"] == "4"
    assert '"study": "tuned.search"' in nodes["search"]["output / detail"]
    out = ok(idds, "dag", "show", "broken")
    nodes = by(table(out, "node"), "node")
    assert {n: r["state"] for n, r in nodes.items()} == {
        "fine": "succeeded", "bad": "failed", "later": "blocked"}  # fmt: skip
    assert nodes["bad"]["output / detail"] == "command exited with 3: oops"
    nodes = by(table(ok(idds, "dag", "show", "halfway"), "node"), "node")
    assert {n: r["state"] for n, r in nodes.items()} == {
        "one": "succeeded", "two": "succeeded", "three": "ready"}  # fmt: skip

    listed = by(table(ok(idds, "toys", "list"), "name"), "name")
    for name, (state, points, toys, steps, observed) in SCANS.items():
        row = listed[name]
        assert (row["user"], row["state"], row["points"], row["toys"], row["steps"],
                row["observed"]) == ("alice", state, points, toys, steps, observed), row  # fmt: skip
    out = ok(idds, "toys", "show", "scan", "--no-plot", "--points")
    assert "(finished, not converged to 0.5): 3 points, 120 toys in 1 step(s)" in out
    limits = by(table(out, "limit"), "limit")
    assert {k: float(limits[k]["value"]) for k in ("observed", "expected +1s", "expected +2s")} == {
        "observed": 0.4033, "expected +1s": 1.375, "expected +2s": 1.343}  # fmt: skip
    assert [r["poi"] for r in table(out, "poi")] == ["1.333", "2.667", "4"]
    out = ok(idds, "toys", "show", "scan-cut", "--no-plot", "--points")
    assert [r["toys"] for r in table(out, "poi")] == ["80"] * 7


def test_the_carousel_shows_on_the_dashboard_with_its_metrics(idds, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    ok(idds, "hpo", "list")  # upgrades the copy before the dashboard reads it
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Carousels (0 active)"] == "1"
    assert metrics["Studies (3 active)"] == "8"  # queued, interrupted, killed
    assert [v for k, v in metrics.items() if k.startswith("Segmented studies")] == ["1"]
    assert metrics["Toy scans (1 active)"] == "2"
    assert metrics["Workflows (1 active)"] == "3"
    at.switch_page("views/carousel.py").run()
    assert not at.exception, [e.message for e in at.exception]
    table = next(m.value for m in at.markdown if "idds-list" in m.value)
    row = re.search(r'<tr><td><a href="carousel\?carousel=tape".*?</tr>', table).group()
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[1:4] == ["alice", '<span style="color: #2ca02c">finished</span>', "file-level"]
    assert cells[4:8] == ["300GB", "12", "12", "0"]  # buffer, files, files processed, failed
    # after the creation time: peak disk (TB), TB x h, makespan (h), p95, mounts, util, lost
    assert float(cells[9]) == pytest.approx(0.024105909720421637)
    assert float(cells[11]) == pytest.approx(41.53591843333275)
    assert (cells[13], cells[15]) == ("4", "0")
    at.query_params["carousel"] = "tape"
    at.switch_page("views/carousel.py").run()
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["State"], metrics["Released to processing"], metrics["Processed"]) == (
        "finished", "12", "12")  # fmt: skip


def test_finished_work_stays_finished(idds):
    for name in ("done", "segs", "pareto", "tuned.search"):
        out = ok(idds, "hpo", "resume", name)
        assert f"study {name!r} is finished; nothing to resume" in out
    assert best_value(ok(idds, "hpo", "resume", "done")) == pytest.approx(0.120038)
    assert "workflow 'tuned' is finished; nothing to resume" in ok(idds, "dag", "resume", "tuned")
    assert "toy scan 'scan' is finished; nothing to resume" in ok(idds, "toys", "resume", "scan")
    code, out, err = idds("dag", "resume", "broken")  # runs nothing: its failed node blocks
    assert code == 1 and "workflow 'broken' failed" in out + err
    nodes = by(table(ok(idds, "dag", "show", "broken"), "node"), "node")
    assert {n: (r["state"], r["attempt"]) for n, r in nodes.items()} == {
        "fine": ("succeeded", "1"), "bad": ("failed", "1"), "later": ("blocked", "")}  # fmt: skip
    listed = by(table(ok(idds, "hpo", "list"), "name"), "name")
    for name in ("done", "segs.near", "segs.far", "pareto", "tuned.search"):
        assert (listed[name]["state"], listed[name]["done"]) == STUDIES[name][:2]


def test_studies_stopped_midway_complete_without_rerunning_recorded_trials(idds):
    work = {name: emptied(PREV_WORK / name) for name in ("interrupted", "killed", "queued")}
    ok(idds, "hpo", "resume", "interrupted", "--no-progress")
    out = ok(idds, "hpo", "show", "interrupted")
    shown = trials(out)
    assert "finished" in out.splitlines()[0] and "10/10 points" in out
    assert sorted(shown) == list(range(10))
    assert all(s == "succeeded" for s, _, _ in shown.values())
    assert {n: (shown[n][1], float(shown[n][2])) for n in INTERRUPTED} == {
        n: ("1", pytest.approx(v, rel=1e-5)) for n, v in INTERRUPTED.items()}  # fmt: skip
    assert best_value(out) <= 0.233221
    assert listing(work["interrupted"]) == [f"trial-{n:05d}" for n in range(5, 10)]

    # killed with SIGKILL: its head's lease ran out long ago; the point it had in flight runs
    # again (at least once), the others do not
    ok(idds, "hpo", "resume", "killed", "--no-progress")
    out = ok(idds, "hpo", "show", "killed")
    shown = trials(out)
    assert "finished" in out.splitlines()[0] and "10/10 points" in out
    assert sorted(shown) == list(range(10))
    assert all(s == "succeeded" for s, _, _ in shown.values())
    assert {n: (shown[n][1], float(shown[n][2])) for n in KILLED} == {
        n: ("1", pytest.approx(v, rel=1e-5)) for n, v in KILLED.items()}  # fmt: skip
    assert shown[3][1] == "2"  # its first attempt was lost with the head
    assert float(shown[3][2]) == pytest.approx((-1.833 - 1.0) ** 2, rel=1e-3)
    assert listing(work["killed"]) == [f"trial-{n:05d}" for n in range(3, 10)]

    ok(idds, "hpo", "resume", "queued", "--no-progress")
    out = ok(idds, "hpo", "show", "queued")
    assert "4/4 points" in out and len(trials(out)) == 4
    assert listing(work["queued"]) == [f"trial-{n:05d}" for n in range(4)]

    listed = by(table(ok(idds, "hpo", "list"), "name"), "name")
    for name, n in (("interrupted", 10), ("killed", 10), ("queued", 4)):
        assert (listed[name]["state"], listed[name]["done"]) == ("finished", f"{n}/{n}")


def test_a_workflow_and_a_toy_scan_stopped_midway_complete(idds, tmp_path):
    # a workflow's nodes run in the current work dir (or the recorded one)
    here, recorded = tmp_path / "work/dag/halfway", emptied(PREV_WORK / "dag/halfway")
    out = ok(idds, "dag", "resume", "halfway", "--no-progress")
    assert "workflow 'halfway' finished" in out
    nodes = by(table(ok(idds, "dag", "show", "halfway"), "node"), "node")
    assert {n: (r["state"], r["attempt"], r["output / detail"]) for n, r in nodes.items()} == {
        "one": ("succeeded", "1", "1"), "two": ("succeeded", "1", "2"),
        "three": ("succeeded", "1", "3")}  # fmt: skip
    assert listing(here, recorded) == ["three"]

    ok(idds, "toys", "resume", "scan-cut", "--no-progress")
    row = by(table(ok(idds, "toys", "list"), "name"), "name")["scan-cut"]
    assert row["state"] == "finished"
    # its last step is planned again from the steps before it, with this release's errors
    # (which may ask for nothing more); the recorded toys are kept
    assert int(row["toys"]) >= 560 and int(row["points"]) >= 7
    out = ok(idds, "toys", "show", "scan-cut", "--no-plot", "--points")
    points = by(table(out, "poi"), "poi")
    # the points recorded before keep their toys (more may be added to a bracket's end)
    for poi in ("0.4", "0.52", "1.333", "1.36", "1.46", "2.667", "4"):
        assert int(points[poi]["toys"]) >= 80
    assert float(by(table(out, "limit"), "limit")["observed"]["value"]) < 4
