"""What a user reads about a study: failures, pruned points, capacity, run times, seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import hpo
from idds.cli import main

TESTS = Path(__file__).parents[1]


def _idds(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _spec(tmp_path: Path, **over) -> str:
    spec = {
        "name": "h", "objective": "objectives:quadratic", "max_points": 4, "parallel": 2,
        "space": {"x": {"type": "float", "low": -2.0, "high": 2.0}},
        "proposer": "optuna:random", "seed": 3, "pythonpath": [str(TESTS)], **over,
    }  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _sqlite_only(settings):
    if not settings.db_url.startswith("sqlite"):
        pytest.skip("does not depend on the database: run once, on SQLite")


def test_a_study_whose_every_trial_failed_exits_1_with_the_commonest_error(
    settings, tmp_path, capsys
):
    _sqlite_only(settings)
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    spec = _spec(tmp_path, objective="objectives:always_fails", max_attempts=1)
    code, _, err = _idds(capsys, *db, "hpo", "launch", spec, "--no-progress")
    assert code == 1
    assert "every evaluation failed" in err and "ValueError: the model diverged" in err


def test_an_optuna_objective_with_any_parameter_name_runs(settings):
    _sqlite_only(settings)
    study = hpo.Study(
        settings=settings, name="short", objective="objectives:short_named", max_points=3,
        proposer="optuna:tpe", seed=1, pythonpath=[str(TESTS)],
    )  # fmt: skip
    study.optimize(progress=False)
    assert [t.state for t in study.trials] == ["succeeded"] * 3
    assert all("x" in t.params for t in study.trials)


def test_a_pruned_trial_reads_the_same_in_python_and_in_show(settings, tmp_path, capsys):
    _sqlite_only(settings)
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    spec = _spec(tmp_path, objective="objectives:pruned_at_once", max_points=2)
    code, _, err = _idds(capsys, *db, "hpo", "launch", spec, "--no-progress")
    trials = hpo.load_study("h", settings=settings).trials
    assert all(t.pruned for t in trials)
    code, out, _ = _idds(capsys, *db, "hpo", "show", "h")
    assert code == 0
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 2
    for t, row in zip(trials, rows, strict=True):
        assert t.state in row.split() and "(pruned)" in row


def test_parallel_beyond_the_cluster_is_said_at_launch(settings, tmp_path, capsys):
    _sqlite_only(settings)
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    spec = _spec(tmp_path, parallel=64, max_points=2, resources={"cpus": 1})
    code, _, err = _idds(capsys, *db, "hpo", "launch", spec, "--no-progress")
    assert code == 0, err
    assert "parallel 64" in err and "CPU" in err and "at once" in err


def test_run_time_is_measured_on_the_worker_beside_the_time_to_record(settings, tmp_path, capsys):
    _sqlite_only(settings)
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    spec = _spec(tmp_path, objective="objectives:tiny", max_points=3)
    code, _, err = _idds(capsys, *db, "hpo", "launch", spec, "--no-progress")
    assert code == 0, err
    trials = hpo.load_study("h", settings=settings).trials
    for t in trials:
        assert t.run_s is not None and 0 <= t.run_s < 0.5
        assert t.duration_s is not None and t.duration_s >= t.run_s
    code, out, _ = _idds(capsys, *db, "hpo", "show", "h")
    assert "run" in out.splitlines()[1]


def _points(settings, name, **over):
    study = hpo.Study(
        settings=settings, name=name, objective="objectives:jittery", max_points=12,
        parallel=3, proposer="optuna:tpe", seed=7,
        proposer_options={"n_startup_trials": 3}, pythonpath=[str(TESTS)],
        space={"x": {"type": "float", "low": -1.0, "high": 1.0},
               "y": {"type": "float", "low": -1.0, "high": 1.0}}, **over,
    )  # fmt: skip
    study.optimize(progress=False)
    return [t.params for t in study.trials]


@pytest.mark.slow
def test_a_seeded_parallel_study_proposes_the_same_points_whatever_the_timing(settings):
    _sqlite_only(settings)
    first = _points(settings, "det-a")
    second = _points(settings, "det-b")
    assert first == second
