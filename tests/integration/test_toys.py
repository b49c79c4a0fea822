"""Toy scans as a user runs them: the `idds toys` commands, bad input, determinism, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from idds.cli import main
from toys import ToyScan, ToyScanError, load_scan
from toys.run import ToyScanRun

EXAMPLES = Path(__file__).parents[2] / "examples" / "toys"
DATA = Path(__file__).parents[1] / "data"


def _low_count(poi: str = "mu", normfactor: bool = True) -> dict:
    """The low-count example with its measurement's POI renamed, or without its normfactor."""
    workspace = json.loads((EXAMPLES / "low_count.json").read_text())
    workspace["measurements"][0]["config"]["poi"] = poi
    for channel in workspace["channels"]:
        for sample in channel["samples"]:
            sample["modifiers"] = [
                m for m in sample["modifiers"] if normfactor or m["type"] != "normfactor"
            ]
    return workspace


def _fields(**over) -> dict:
    """A small, quick scan of the low-count example."""
    return {"name": "small", "workspace": str(EXAMPLES / "low_count.json"), "range": [0, 4],
            "toys": 40, "batch_size": 20, "points": 3, "max_steps": 2, "tolerance": 0.5,
            "seed": 5, **over}  # fmt: skip


def _write(path: Path, **over) -> Path:
    path.write_text(yaml.safe_dump(_fields(**over)))
    return path


def _idds(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_launch_show_list_resume_cancel(settings, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = _write(tmp_path / "scan.yaml")
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    code, out, err = _idds(capsys, *db, "toys", "launch", str(spec))
    assert code == 0, err
    assert "step 0: 6 batch(es) of 20 toys" in out
    assert "observed" in out and "expected +2s" in out
    code, out, _ = _idds(capsys, *db, "toys", "show", "small", "--points")
    assert code == 0 and "toy scan 'small' (finished" in out and "plot: small-cls.png" in out
    assert (tmp_path / "small-cls.png").stat().st_size > 5000
    code, out, _ = _idds(capsys, *db, "toys", "show", "small", "--log", "--plot", "log.png")
    assert code == 0 and (tmp_path / "log.png").stat().st_size > 5000
    code, out, _ = _idds(capsys, *db, "toys", "list")
    assert code == 0 and "small" in out and "finished" in out
    code, out, _ = _idds(capsys, *db, "toys", "resume", "small")
    assert code == 0 and "finished; nothing to resume" in out
    code, _, err = _idds(capsys, *db, "toys", "launch", str(spec))
    assert code == 2 and "exists already" in err
    code, out, _ = _idds(capsys, *db, "toys", "cancel", "small")
    assert code == 0 and "cancelled" in out
    code, _, err = _idds(capsys, *db, "toys", "show", "nosuch")
    assert code == 2 and err.strip() == "error: no toy scan named 'nosuch'"


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"toys": 0}, "toys: must be at least 1 (got 0)"),
        ({"poi": "nosuch"}, "poi: 'nosuch' is not a parameter"),
        ({"range": [0, 1]}, "does not bracket the limit"),
        ({"workspace": {"channels": []}}, "workspace: pyhf rejects it"),
        ({"workspace": _low_count(poi="mu_typo")}, "poi: the measurement's POI 'mu_typo' is"),
        ({"workspace": _low_count(normfactor=False)}, "poi: the measurement's POI 'mu' is"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, over, message):
    spec = _write(tmp_path / "scan.yaml", **over)
    db = tmp_path / "idds.db"
    code, out, err = _idds(capsys, "--db", f"sqlite:///{db}", "toys", "launch", str(spec))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not db.exists()


def _toys_by_point(scan: ToyScan) -> dict[float, tuple[list[float], list[float]]]:
    return {mu: (sorted(p.q_sb), sorted(p.q_b)) for mu, p in scan.result().points.items()}


class _Interrupted(Exception):
    pass


@pytest.mark.slow
def test_same_spec_same_toys_and_an_interrupted_scan_resumes_to_the_same_result(
    settings, monkeypatch
):
    """With ``barrier`` a scan depends on its spec alone (steps overlap by default, and then
    which results are in when a step is planned depends on the batches' run times)."""
    whole = ToyScan(settings=settings, **_fields(name="whole", max_steps=3, barrier=True))
    whole.run(progress=False)
    assert whole.result().steps >= 2

    finals = {"n": 0}
    on_final = ToyScanRun.on_final

    def stop_after_seven(self, *args):
        on_final(self, *args)
        finals["n"] += 1
        if finals["n"] == 7:  # step 0 done, step 1 handed in: the head goes away
            raise _Interrupted

    monkeypatch.setattr(ToyScanRun, "on_final", stop_after_seven)
    cut = ToyScan(settings=settings, **_fields(name="cut", max_steps=3, barrier=True))
    with pytest.raises(_Interrupted):
        cut.run(progress=False)
    assert load_scan("cut", settings=settings).state == "active"
    monkeypatch.setattr(ToyScanRun, "on_final", on_final)
    resumed = load_scan("cut", settings=settings)
    resumed.run(progress=False)
    assert _toys_by_point(resumed) == _toys_by_point(whole)
    assert resumed.result().limits == whole.result().limits
    assert resumed.result().steps == whole.result().steps


def test_a_python_scan_records_every_batch(settings):
    scan = ToyScan(settings=settings, **_fields(name="py", max_steps=1))
    result = scan.run(progress=False)
    assert scan.stopped_because == "max_steps (1) reached"
    assert sorted(result.points) == pytest.approx([4 / 3, 8 / 3, 4.0], rel=1e-9)
    assert result.batches == {"succeeded": 6}
    assert all(p.batches == 2 and len(p.q_sb) + len(p.q_b) + p.failed == 80
               for p in result.points.values())  # fmt: skip
    assert json.dumps(scan.spec.to_json())  # the stored spec is plain JSON


@pytest.mark.slow
def test_range_advice_for_a_deficit_names_a_range_inside_the_bounds(tmp_path, capsys):
    """A deficit where pyhf's asymptotic CLs at mu -> 0 is 0 / 0: the advice is a range that
    brackets the limits (which lie well inside the POI's bounds), and pyhf's divide-by-zero
    warnings stay out of the terminal."""
    workspace = str(DATA / "toys_deficit.json")
    spec = _write(tmp_path / "scan.yaml", workspace=workspace, range=[0, 1])
    db = tmp_path / "idds.db"
    code, _, err = _idds(capsys, "--db", f"sqlite:///{db}", "toys", "launch", str(spec))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "try range: [0, " in err and "widen" not in err
    top = float(err.split("try range: [0, ")[1].split("]")[0])
    assert 2.3 < top <= 10  # the asymptotic +2 sigma limit is 2.24; the bounds are [0, 10]
    assert not db.exists()
    scan = ToyScan(name="deficit", workspace=workspace, range=[0, top])  # the advice holds
    assert scan.spec.poi == "mu"
    assert "Warning" not in capsys.readouterr().err


def _batches(scan: ToyScan) -> dict[int, tuple[int, dict]]:
    """Each recorded batch by task number: its attempt and result."""
    from idds.records import Records

    records = Records(scan.engine)
    return {t.number: (t.attempt, t.result) for t in records.tasks(scan.owner_id)}


@pytest.mark.slow
def test_a_finished_scan_extends_without_running_its_toys_again(settings, capsys):
    whole = ToyScan(settings=settings, **_fields(name="whole", max_steps=2))
    whole.run(progress=False)
    short = ToyScan(settings=settings, **_fields(name="short", max_steps=1))
    short.run(progress=False)
    assert load_scan("short", settings=settings).state == "finished"
    before = _batches(short)
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    code, _, err = _idds(capsys, *db, "toys", "extend", "short")
    assert code == 2 and "give max_steps, tolerance or max_toys" in err
    code, out, err = _idds(capsys, *db, "toys", "extend", "short", "--max-steps", "2")
    assert code == 0, err
    assert "step 1:" in out and "step 0:" not in out
    extended = load_scan("short", settings=settings)
    assert extended.spec.max_steps == 2 and extended.state == "finished"
    after = _batches(extended)
    assert {n: after[n] for n in before} == before  # the first step's batches, untouched
    assert len(after) > len(before)
    assert extended.result().limits == whole.result().limits  # as if run so from the start
    extended.cancel()
    with pytest.raises(ToyScanError, match="was cancelled; it cannot be extended"):
        load_scan("short", settings=settings).extend(max_steps=5)
