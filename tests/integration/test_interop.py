"""Export to and import from Optuna storages; the round trip read back by Optuna."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

import hpo
from hpo.interop import export_study, import_study
from idds.cli import main

TESTS = str(Path(__file__).parents[1])


@pytest.fixture
def finished_study(settings):
    if not settings.db_url.startswith("sqlite"):
        pytest.skip("interop reads studies through the public API: run once, on SQLite")
    study = hpo.Study(
        settings=settings, name="src", objective="objectives:with_report",
        space={"x": {"type": "float", "low": -2.0, "high": 2.0},
               "k": {"type": "categorical", "choices": ["a", "b"]}},
        max_points=8, parallel=2, proposer="optuna:random", seed=2, pythonpath=[TESTS],
    )  # fmt: skip
    study.optimize(progress=False)
    return study


@pytest.mark.parametrize("kind", ["rdb", "journal"])
def test_export_is_read_back_by_optuna(finished_study, tmp_path, kind):
    url = (
        f"sqlite:///{tmp_path / 'optuna.db'}" if kind == "rdb" else f"journal:{tmp_path / 'j.log'}"
    )
    assert export_study(finished_study, url) == 8
    storage = hpo.interop.storage(url)
    loaded = optuna.load_study(study_name="src", storage=storage)
    ours = {t.number: t for t in finished_study.trials}
    failed = 0
    for t in loaded.trials:
        mine = ours[t.number]
        assert t.params == mine.params
        assert t.intermediate_values == mine.intermediate_values
        if mine.state == "succeeded":
            assert t.state == optuna.trial.TrialState.COMPLETE
            assert t.values == mine.values
            assert t.user_attrs["tag"] == f"k={mine.params['k']}"
        else:
            failed += 1
            assert t.state == optuna.trial.TrialState.FAIL
    assert failed == sum(t.state == "failed" for t in finished_study.trials) > 0
    assert loaded.best_value == finished_study.best.value
    # optuna.visualization works on it
    optuna.visualization.plot_optimization_history(loaded)


def test_round_trip_through_import(finished_study, tmp_path, settings):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    export_study(finished_study, url)
    back = import_study(url, "src", {"name": "back", "objective": "objectives:with_report",
                                     "pythonpath": [TESTS]}, settings=settings)  # fmt: skip
    assert back.state == "finished"
    pairs = zip(finished_study.trials, back.trials, strict=True)
    for a, b in pairs:
        assert (a.params, a.values, a.state, a.pruned) == (b.params, b.values, b.state, b.pruned)
        assert a.intermediate_values == b.intermediate_values
        assert a.user_attrs == b.user_attrs
    export_study(back, url, name="again")
    again = optuna.load_study(study_name="again", storage=url)
    first = optuna.load_study(study_name="src", storage=url)
    assert [t.params for t in again.trials] == [t.params for t in first.trials]
    assert [t.values for t in again.trials] == [t.values for t in first.trials]


def test_cli_export_and_import(finished_study, tmp_path, settings, capsys):
    url = f"journal:{tmp_path / 'j.log'}"
    db = ["--db", settings.db_url]
    main([*db, "hpo", "export", "src", "--to", url])
    assert "exported 8 finished trial(s)" in capsys.readouterr().out
    main([*db, "hpo", "import", url, "--study", "src", "--name", "copy",
          "--objective", "objectives:with_report", "--max-points", "10"])  # fmt: skip
    assert "imported 8 trial(s) into study 'copy' (active)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main([*db, "hpo", "export", "src", "--to", url])  # the name is taken there
    assert info.value.code == 2
