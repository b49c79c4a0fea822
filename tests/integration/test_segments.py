"""Segmented studies: several independent segments in one submission, run side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import hpo
from idds.cli import main

TESTS = str(Path(__file__).parents[1])


def test_segments_run_side_by_side_each_with_its_space(settings, tmp_path, capsys):
    spec = {
        "name": "nets",
        "objective": "objectives:sleepy_value",
        "proposer": "optuna:random",
        "max_points": 4,
        "parallel": 1,
        "seed": 1,
        "pythonpath": [TESTS],
        "segments": {
            "small": {"space": {"x": {"type": "float", "low": 0.0, "high": 1.0},
                                "sleep": {"type": "categorical", "choices": [0.2]}}},
            "large": {"space": {"x": {"type": "float", "low": 10.0, "high": 20.0},
                                "sleep": {"type": "categorical", "choices": [0.2]}},
                      "max_points": 3},
        },
    }  # fmt: skip
    path = tmp_path / "nets.yaml"
    path.write_text(yaml.safe_dump(spec))
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    main([*db, "hpo", "launch", str(path), "--no-progress"])
    out = capsys.readouterr().out
    assert "[nets.small]" in out
    assert "[nets.large]" in out
    small = hpo.load_study("nets.small", settings=settings)
    large = hpo.load_study("nets.large", settings=settings)
    assert len(small.trials) == 4
    assert len(large.trials) == 3
    assert all(0 <= t.params["x"] <= 1 for t in small.trials)
    assert all(10 <= t.params["x"] <= 20 for t in large.trials)
    group = hpo.load_study("nets", settings=settings)
    assert group.state == "finished"
    recorded = group.record()  # the group's own row too: `idds serve` does not pick it up
    assert recorded.state == "finished"
    parts = group.records.owners(parent_id=recorded.id)
    assert sorted(o.name for o in parts) == ["nets.large", "nets.small"]
    main([*db, "hpo", "show", "nets"])
    shown = capsys.readouterr().out
    assert "segmented: 2 segments" in shown
    assert "study nets.large: finished" in shown
    main([*db, "hpo", "list"])
    listed = capsys.readouterr().out
    assert "nets.small" in listed
    assert "nets.large" in listed


def test_a_bad_segment_is_named(settings):
    from idds.errors import SpecError

    with pytest.raises(SpecError) as info:
        hpo.StudySpec.from_mapping({
            "name": "n", "objective": "objectives:quadratic",
            "segments": {"a": {"space": {"x": {"type": "float", "low": 2, "high": 1}}}},
        })  # fmt: skip
    assert "segments.a: space.x: low (2) must not be greater than high (1)" in str(info.value)


def test_a_segment_name_taken_writes_nothing(settings):
    taken = hpo.Study(settings=settings, name="grp.a", objective="objectives:quadratic",
                      space={"x": {"type": "float", "low": 0, "high": 1}}, pythonpath=[TESTS])  # fmt: skip
    taken.create()
    group = hpo.Study(
        settings=settings, name="grp", objective="objectives:quadratic", pythonpath=[TESTS],
        segments={"a": {"space": {"x": {"type": "float", "low": 0, "high": 1}}},
                  "b": {"space": {"x": {"type": "float", "low": 0, "high": 1}}}},
    )  # fmt: skip
    from idds.errors import NotFound, SpecError

    with pytest.raises(SpecError, match="'grp.a' .*is named like a part of 'grp'"):
        group.create()
    with pytest.raises(NotFound, match="no study named 'grp'"):
        hpo.load_study("grp", settings=settings)
    with pytest.raises(NotFound, match="no study named 'grp.b'"):
        hpo.load_study("grp.b", settings=settings)


def _segmented(**fields):
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    return {"name": "fcg", "proposer": "optuna:random", "max_points": 3, "parallel": 1,
            "seed": 7, "space": space, "pythonpath": [TESTS],
            "segments": {"net0": {}, "net1": {}, "net2": {"seed": 3}}, **fields}  # fmt: skip


def test_each_segment_has_its_own_seed_from_the_study_s_seed_and_its_name():
    specs = hpo.StudySpec.from_mapping(_segmented(objective="objectives:quadratic"))
    seeds = {name: s.seed for name, s in specs.segment_specs().items()}
    assert seeds["net2"] == 3  # a segment's own seed is kept
    assert seeds["net0"] != seeds["net1"] and None not in seeds.values()
    again = hpo.StudySpec.from_mapping(_segmented(objective="objectives:quadratic"))
    assert {n: s.seed for n, s in again.segment_specs().items()} == seeds  # repeatable
    other = hpo.StudySpec.from_mapping(_segmented(objective="objectives:quadratic", seed=8))
    assert other.segment_specs()["net0"].seed != seeds["net0"]


def test_a_segment_may_not_name_a_parameter_segment():
    from idds.errors import SpecError

    space = {"segment": {"type": "int", "low": 0, "high": 3}}
    with pytest.raises(SpecError, match="segments.net0: space: 'segment'"):
        hpo.StudySpec.from_mapping(_segmented(objective="objectives:quadratic", space=space))


def test_segments_propose_different_points_and_the_objective_knows_its_segment(settings):
    study = hpo.Study(settings=settings, **_segmented(objective="objectives:segment_aware"))
    study.optimize(progress=False)
    seen = {}
    for segment in study._segments_here():
        trials = segment.trials
        assert {t.user_attrs["segment"] for t in trials} == {segment.name.split(".")[1]}
        seen[segment.name] = [round(t.params["x"], 12) for t in trials]
    assert len({tuple(points) for points in seen.values()}) == 3  # not one seed for all


def test_a_segment_s_command_finds_its_segment_in_input_json(settings):
    script = "import json; json.dump({'status': 0, 'loss': 1.0}, open('output.json', 'w'))"
    study = hpo.Study(
        settings=settings, **_segmented(command=["python", "-c", script], max_points=1)
    )
    study.optimize(progress=False)
    for segment in study._segments_here():
        (trial,) = segment.trials
        assert trial.state == "succeeded"
        point = json.loads((Path(segment.workdir) / "trial-00000" / "input.json").read_text())
        assert point["segment"] == segment.name.split(".")[1] and "x" in point
