"""``idds carousel ...`` as a user runs it: tables, the plot, one-line errors with exit 2
and nothing written on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from idds.cli import main

SMALL = Path(__file__).parents[2] / "examples" / "carousel" / "small.yaml"


def _idds(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _campaign(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(SMALL.read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[section] = value
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_simulate_prints_each_policy_and_writes_the_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _idds(capsys, "carousel", "simulate", str(SMALL))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["policy", "buffer", "peak", "TB"]
    assert [line.split()[0] for line in lines[2:5]] == [
        "dataset-level", "file-level", "sliding-window",
    ]  # fmt: skip
    assert (tmp_path / "small-occupancy.png").stat().st_size > 10_000


def test_plan_prints_makespan_against_buffer(tmp_path, capsys):
    code, out, err = _idds(capsys, "carousel", "plan", str(SMALL), "--buffer", "50GB,200GB,1TB")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [r[0] for r in rows] == ["50GB", "200GB", "1TB"]
    peaks = [float(r[2]) for r in rows]
    assert peaks[0] <= 0.05 and peaks[1] <= 0.2  # the peak stays within each buffer
    makespans = [float(r[1]) for r in rows]
    assert makespans[0] > makespans[2]  # a tight buffer starves processing


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tape__drives": 0}, "tape.drives"),
        ({"files__size_median": "-2GB"}, "must be positive"),
        ({"buffer": "1GB"}, "cannot fit in the buffer of 1GB"),
    ],
)
@pytest.mark.parametrize("command", ["simulate", "plan", "run"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, capsys, monkeypatch, changes, message, command
):
    monkeypatch.chdir(tmp_path)
    path = _campaign(tmp_path, **changes)
    db = tmp_path / "idds.db"
    code, out, err = _idds(capsys, "--db", f"sqlite:///{db}", "carousel", command, str(path))
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["campaign.yaml"]


def test_simulate_save_records_each_policy_to_list_show_and_compare(tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path}/idds.db"
    args = ["--db", db, "carousel", "simulate", str(SMALL), "--save", "s1"]
    code, out, err = _idds(capsys, *args)
    assert code == 0, err
    assert "saved: carousel 's1-file-level'" in out
    code, out, _ = _idds(capsys, "--db", db, "carousel", "list", "--format", "json")
    listed = {c["name"]: c for c in json.loads(out)}
    assert set(listed) == {"s1-dataset-level", "s1-file-level", "s1-sliding-window"}
    assert listed["s1-file-level"]["result"]["peak_disk_tb"] <= 0.3
    assert max(listed["s1-file-level"]["disk"]["bytes"]) <= 300e9
    code, out, _ = _idds(capsys, "--db", db, "carousel", "show", "s1-file-level")
    assert code == 0 and "finished, file-level, buffer 300GB, 400 files" in out
    code, _, err = _idds(capsys, *args)  # a name is taken once: nothing run, nothing written
    assert code == 2 and "a carousel named 's1-dataset-level' exists" in err


def test_show_of_an_unknown_carousel_is_one_line(tmp_path, capsys):
    code, _, err = _idds(
        capsys, "--db", f"sqlite:///{tmp_path}/idds.db", "carousel", "show", "nope"
    )
    assert code != 0 and "no carousel named 'nope'" in err and len(err.strip().splitlines()) == 1


def test_resume_of_an_unknown_or_a_finished_carousel_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # simulate writes its plot here
    db = f"sqlite:///{tmp_path}/idds.db"
    code, _, err = _idds(capsys, "--db", db, "carousel", "resume", "nope")
    assert code != 0 and "no carousel named 'nope'" in err and len(err.strip().splitlines()) == 1
    code, _, err = _idds(capsys, "--db", db, "carousel", "simulate", str(SMALL), "--save", "s2",
                         "--policy", "file-level")  # fmt: skip
    assert code == 0, err
    code, _, err = _idds(capsys, "--db", db, "carousel", "resume", "s2-file-level")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "carousel 's2-file-level' is finished: nothing to resume" in err
