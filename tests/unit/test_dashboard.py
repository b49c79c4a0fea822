"""The dashboard's read helpers, figures and command, on studies imported from Optuna (no Ray
needed); the pages on an empty database."""

from __future__ import annotations

import importlib
import socket
from pathlib import Path

import optuna
import pytest

import hpo
from hpo.interop import import_study
from hpo.spec import StudySpec
from hpo.study import Trial
from idds.errors import NotFound
from idds.records import Records

APP = str(Path(__file__).parents[2] / "dashboard" / "app.py")
EXPECTED = {
    "dashboard": {
        "APP", "Failure", "StudyFigures", "StudyRow", "history_figure", "list_studies",
        "owner_counts", "recent_failures", "sample", "study_figures", "study_version",
        "tasks_by_site",
    },
    "hpo.jupyter": {"LiveStudy", "study_html", "watch"},
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(EXPECTED))
def test_all_is_what_we_mean_to_export(package):
    module = importlib.import_module(package)
    assert set(module.__all__) == EXPECTED[package]
    for name in module.__all__:
        assert hasattr(module, name), name


def _optuna_study(path: Path, name: str, values: list[float | None], *, directions=None):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    dist = {"x": optuna.distributions.FloatDistribution(-5, 5)}
    for i, v in enumerate(values):
        state = optuna.trial.TrialState.FAIL if v is None else optuna.trial.TrialState.COMPLETE
        study.add_trial(optuna.trial.create_trial(
            params={"x": float(i) - 2}, distributions=dist, state=state,
            values=None if v is None else ([v] if directions is None else [v, -v]),
            user_attrs={"idds:error": "Traceback...\nValueError: bad x"} if v is None else {},
        ))  # fmt: skip
    return f"journal:{path}"


@pytest.fixture
def imported(settings_nr, tmp_path):
    """Two studies recorded from Optuna: one with a failure, one with two objectives."""
    url = _optuna_study(tmp_path / "a.log", "one", [3.0, None, 1.0, 2.0])
    import_study(url, "one", {"name": "one", "objective": "objectives:quadratic"},
                 settings=settings_nr)  # fmt: skip
    url = _optuna_study(tmp_path / "b.log", "two", [1.0, 2.0], directions=["minimize"] * 2)
    import_study(url, "two", {"name": "two", "objective": "objectives:two_objectives",
                              "max_points": 5}, settings=settings_nr)  # fmt: skip
    return settings_nr


@pytest.fixture
def settings_nr(db_url, tmp_path):
    """Settings without Ray: these tests only read."""
    from idds.config import Settings

    return Settings(db_url=db_url, work_dir=tmp_path / "work")


def test_list_studies_counts_and_best(imported, engine):
    import dashboard

    rows = {r.name: r for r in dashboard.list_studies(Records(engine))}
    assert set(rows) == {"one", "two"}
    one, two = rows["one"], rows["two"]
    assert (one.state, one.done, one.failed, one.best) == ("finished", 4, 1, 1.0)
    assert (two.state, two.done, two.max_points, two.best) == ("active", 2, 5, None)
    assert two.directions == ("minimize", "minimize")


def test_the_list_and_the_cli_agree_that_a_pruned_trial_is_never_the_best(engine, capsys):
    import dashboard
    from idds.cli import main
    from idds.records import Imported, NewOwner, Records
    from idds.tasks import TaskSpec, TaskState

    records = Records(engine)
    spec = {"direction": "minimize", "proposer": "optuna:tpe", "max_points": 2}
    owner_id = records.create(NewOwner(kind="study", name="p", spec=spec), user="alice")
    done = [
        Imported(spec=TaskSpec(number=n, kind="hpo.trial", payload={"callable": "m:f"}),
                 state=TaskState.SUCCEEDED, result=result)
        for n, result in enumerate([{"values": [5.0]}, {"values": [1.0], "pruned": True}])
    ]  # fmt: skip
    records.record_imported(owner_id, done)
    (row,) = dashboard.list_studies(Records(engine))
    assert (row.name, row.done, row.best) == ("p", 2, 5.0)
    main(["--db", engine.url.render_as_string(hide_password=False), "hpo", "list"])
    line = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("p "))
    assert line.split()[-1] == "5", line


def test_overview_helpers_count_owners_and_list_failures(imported, engine):
    import dashboard

    assert dashboard.owner_counts(Records(engine)) == {"study": {"finished": 1, "active": 1}}
    assert dashboard.tasks_by_site(Records(engine)) == {}  # nothing runs
    failures = dashboard.recent_failures(Records(engine))
    assert [(f.owner, f.number, f.reason) for f in failures] == [("one", 1, "ValueError: bad x")]


def test_study_version_changes_when_a_point_is_enqueued_or_cancelled(imported, engine):
    import dashboard

    before = dashboard.study_version(Records(engine), "two")
    study = hpo.load_study("two", settings=imported)
    study.enqueue({"x": 0.5})
    after = dashboard.study_version(Records(engine), "two")
    assert after != before
    study.cancel()
    assert dashboard.study_version(Records(engine), "two") != after
    with pytest.raises(NotFound):
        dashboard.study_version(Records(engine), "nope")


SPEC = StudySpec.from_mapping(
    {"name": "s", "objective": "m:f", "max_points": 100, "space": {
        "x": {"type": "float", "low": -5, "high": 5}, "n": {"type": "int", "low": 1, "high": 4},
        "k": {"type": "categorical", "choices": ["a", "b"]}}},
    source="test",
)  # fmt: skip


def _trial(number, value, state="succeeded", **over):
    fields = {"number": number, "state": state, "values": None if value is None else [value],
              "params": {"x": number % 10 - 5.0, "n": number % 4 + 1, "k": "ab"[number % 2]},
              "constraints": None, "attempt": 1, "site": "local", "node": "n",
              "duration_s": 1.0, "error": None, **over}  # fmt: skip
    return Trial(**fields)


def test_sample_keeps_the_best_tenth_and_an_even_draw():
    from dashboard import sample

    trials = [_trial(i, float(i)) for i in range(5000)]
    kept = sample(trials, ("minimize",), 500)
    numbers = [t.number for t in kept]
    assert len(kept) == 500 and numbers == sorted(numbers)
    assert set(range(50)) <= set(numbers)  # the 50 best (lowest) values
    assert max(numbers) > 4000  # and the draw covers the rest
    assert sample(trials[:100], ("minimize",), 500) == trials[:100]


def test_history_shows_every_success_and_the_best_so_far():
    from dashboard import history_figure

    trials = [_trial(0, 3.0), _trial(1, None, "failed"), _trial(2, 1.0), _trial(3, 2.0)]
    fig = history_figure(trials, ("minimize",))
    values, best, failed = fig.data
    assert list(values.x) == [0, 2, 3] and list(values.y) == [3.0, 1.0, 2.0]
    assert list(best.y) == [3.0, 1.0, 1.0]
    assert failed.name == "failed (1)" and list(failed.x) == [1]  # drawn at the panel's foot
    assert list(history_figure(trials, ("maximize",)).data[1].y) == [3.0, 3.0, 3.0]


def test_study_figures_draws_each_figure_and_says_why_one_is_missing():
    from dashboard import study_figures

    reported = {"intermediate_values": {0: 2.0, 1: 1.0}}
    trials = [_trial(i, (i % 7) - 3.0, **(reported if i % 3 else {})) for i in range(40)]
    figures = study_figures(trials, SPEC, limit=30)
    assert set(figures.figures) == {"Optimisation history", "Parallel coordinates",
                                    "Parameter importance", "Slice", "Contour",
                                    "Intermediate values"}  # fmt: skip
    assert figures.missing == {"Pareto front": "one objective: see the history"}
    assert (figures.drawn, figures.finished) == (30, 40)
    alone = study_figures(trials[:1], SPEC)
    assert alone.missing["Parameter importance"] == "needs 2 succeeded trials (1 so far)"


def test_study_html_escapes_and_shows_the_best(imported):
    from hpo.jupyter import study_html

    study = hpo.load_study("one", settings=imported)
    page = study._repr_html_()
    assert page == study_html(study)
    assert "<b>Study one</b>" in page and "best <b>1</b> (trial 2)" in page
    assert "4/4 trials, 0 running, 1 failed" in page
    two = hpo.load_study("two", settings=imported)
    assert "Pareto front: 2 trials" in study_html(two)


def test_pages_on_an_empty_database_say_how_to_start(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("IDDS_DB_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert "idds hpo launch" in at.info[0].value
    at.switch_page("views/studies.py").run()
    assert not at.exception
    assert "No study yet" in at.info[0].value


def _main(argv, capsys):
    from idds.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


def test_command_refuses_a_bad_port_a_taken_port_and_a_dead_database(tmp_path, capsys):
    code, err = _main(["dashboard", "--port", "0"], capsys)
    assert code == 2 and "--port" in err
    code, err = _main(["dashboard", "--db", "postgresql+psycopg://u@127.0.0.1:1/x"], capsys)
    assert code == 1 and err.startswith("error: cannot use database") and err.count("\n") == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = _main(["dashboard", "--db", f"sqlite:///{tmp_path / 'x.db'}",
                           "--port", str(port)], capsys)  # fmt: skip
    assert code == 1 and f"cannot serve on 127.0.0.1:{port}" in err


def test_through_a_server_the_command_keeps_no_database_url_or_token(tmp_path, capsys,
                                                                        monkeypatch):  # fmt: skip
    from dashboard import cli
    from idds.config import Settings

    code, err = _main(["dashboard", "--url", "http://127.0.0.1:1"], capsys)
    assert code == 1 and "server at http://127.0.0.1:1 does not answer" in err
    assert err.count("\n") == 1
    monkeypatch.setenv("IDDS_DB_URL", "postgresql+psycopg://u:secret@db/idds")
    monkeypatch.setenv("IDDS_TOKEN", "idds_head")
    env = cli._env(Settings.from_env(url="https://idds:8443", work_dir=tmp_path))
    assert env["IDDS_URL"] == "https://idds:8443"
    assert "IDDS_DB_URL" not in env and "IDDS_TOKEN" not in env


def test_a_page_appears_only_where_its_capability_is_installed(tmp_path, monkeypatch):
    from dashboard import navigation

    (tmp_path / "nocode").mkdir()  # a directory of that name, no package
    monkeypatch.syspath_prepend(str(tmp_path))
    assert navigation._exists("hpo") and navigation._exists(None)
    assert not navigation._exists("nocode")
    assert not navigation._exists("no_such_package.sub")


def test_watch_follows_a_study_until_it_is_no_longer_active(imported, monkeypatch):
    from hpo.jupyter import watch

    class Handle:  # what IPython's display(..., display_id=True) returns in a notebook
        def __init__(self, obj):
            self.shown = [obj]

        def update(self, obj, raw=False):
            self.shown.append(obj)

    handles = []
    monkeypatch.setattr("IPython.display.display",
                        lambda obj, raw=False, display_id=False: handles.append(Handle(obj)) or handles[-1])  # fmt: skip
    live = watch(hpo.load_study("one", settings=imported), run=False, interval=0.1)
    live.wait(timeout=30)
    assert not live.running and live.error is None and live.refreshes >= 1
    summary, history = (h.shown[-1] for h in handles)
    assert "<b>Study one</b>" in summary.data and "4/4 trials" in summary.data
    traces = history["application/vnd.plotly.v1+json"]["data"]  # a MIME bundle, PNG and all
    assert list(traces[0]["y"]) == [3.0, 1.0, 2.0]  # the succeeded trials' values
    assert list(traces[1]["y"]) == [3.0, 1.0, 1.0]  # and the best so far
    assert "image/png" in history


def test_study_page_renders_on_each_database(imported, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("IDDS_DB_URL", imported.db_url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["study"] = "one"
    at.run().switch_page("views/studies.py").run()
    assert not at.exception and not at.error
    assert "Study one" in [h.value for h in at.header]
    assert {m.label: m.value for m in at.metric}["Best (trial 2)"] == "1"


def test_no_dashboard_module_shadows_a_package():
    """Streamlit puts the directory of the app's script first on sys.path: a module there
    named like a package (toys.py) would be imported in its place."""
    from pathlib import Path

    root = Path(__file__).parents[2]
    packages = {p.parent.name for p in root.glob("*/__init__.py")}
    modules = {p.stem for p in (root / "dashboard").glob("*.py")}
    assert not modules & packages
