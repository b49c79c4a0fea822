"""An objective written for Optuna runs unchanged; its suggest calls reach the head."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

import hpo
from hpo.interop import export_study
from idds.errors import SpecError

TESTS = str(Path(__file__).parents[1])


def test_define_by_run_objective_runs_remotely(settings, tmp_path):
    if not settings.db_url.startswith("sqlite"):
        pytest.skip("does not depend on the database: run once, on SQLite")
    study = hpo.Study(
        settings=settings, name="dbr", objective="objectives:optuna_style", max_points=8,
        parallel=2, proposer="optuna:tpe", seed=5, pythonpath=[TESTS],
    )  # fmt: skip
    study.optimize(progress=False)
    trials = study.trials
    assert all(t.state == "succeeded" for t in trials)
    for t in trials:
        assert ("shift" in t.params) == (t.params["kind"] == "shifted")
        shift = t.params.get("shift", 0)
        assert t.value == pytest.approx((t.params["x"] - 1.0) ** 2 + shift)
        assert t.user_attrs == {"kind_used": t.params["kind"]}
        assert t.intermediate_values == {0: pytest.approx((t.params["x"] - 1.0) ** 2 + 1.0)}
    url = f"sqlite:///{tmp_path / 'o.db'}"
    export_study(study, url)
    loaded = optuna.load_study(study_name="dbr", storage=url)
    assert [t.params for t in loaded.trials] == [t.params for t in trials]
    # a resumed define-by-run study rebuilds its sampler from the recorded distributions
    more = hpo.load_study("dbr", settings=settings)
    assert more.define_by_run


def test_define_by_run_needs_an_optuna_proposer(settings):
    with pytest.raises(SpecError, match="needs the space in the spec"):
        hpo.Study(settings=settings, name="x", objective="objectives:optuna_style",
                  proposer="skopt:gp", pythonpath=[TESTS])  # fmt: skip
    with pytest.raises(SpecError, match="space: give at least one parameter"):
        hpo.Study(settings=settings, name="x", objective="objectives:quadratic",
                  pythonpath=[TESTS])  # fmt: skip
