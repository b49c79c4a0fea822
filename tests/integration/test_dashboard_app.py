"""Every dashboard page through Streamlit's AppTest, on a database seeded by real studies run
on the session's Ray."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hpo
from idds.config import Settings

APP = str(Path(__file__).parents[2] / "dashboard" / "app.py")
TESTS = str(Path(__file__).parents[1])
SPACE = {
    "x": {"type": "float", "low": -2.0, "high": 2.0},
    "k": {"type": "categorical", "choices": ["a", "b"]},
}


def _study(settings, name, objective, **over):
    fields = {"name": name, "objective": f"objectives:{objective}", "space": SPACE,
              "max_points": 8, "parallel": 2, "proposer": "optuna:random", "seed": 3,
              "pythonpath": [TESTS], **over}  # fmt: skip
    return hpo.Study(settings=settings, **fields)


@pytest.fixture(scope="module")
def seeded(ray_address, tmp_path_factory) -> Settings:
    """A SQLite database holding a study with reports and failures, a two-objective study
    and an active study that has not run yet."""
    base = tmp_path_factory.mktemp("dashboard")
    settings = Settings(db_url=f"sqlite:///{base / 'idds.db'}", ray_address=ray_address,
                        work_dir=base / "work", lease_seconds=6.0)  # fmt: skip
    _study(settings, "reports", "with_report", initial_points=[{"x": 1.5, "k": "b"}]).optimize(
        progress=False
    )  # the first point fails: "diverged"
    _study(settings, "pareto", "two_objectives", direction=["minimize", "minimize"],
           max_points=6).optimize(progress=False)  # fmt: skip
    _study(settings, "waiting", "quadratic").create()
    return settings


@pytest.fixture
def app(seeded, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("IDDS_DB_URL", seeded.db_url)
    monkeypatch.setenv("IDDS_WORK_DIR", str(seeded.work_dir))
    return AppTest.from_file(APP, default_timeout=60)


def _texts(at) -> str:
    parts = [e.value for e in (*at.title, *at.header, *at.subheader, *at.caption, *at.markdown)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def _frame_with(at, column):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _no_error(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_overview_counts_studies_and_lists_failures(app):
    at = app.run()
    _no_error(at)
    assert at.title[0].value == "Overview"
    studies = next(m for m in at.metric if m.label.startswith("Studies ("))
    assert studies.value == "3"  # reports, pareto, waiting
    failures = at.dataframe[-1].value
    assert set(failures["owner"]) == {"reports"}
    assert failures["reason"].str.contains("diverged").all()


def _listed(at) -> list[str]:
    """The names the list links to their pages (``studies?study=NAME``)."""
    table = next(m.value for m in at.markdown if "idds-list" in m.value)
    return re.findall(r'href="studies\?study=([^"]+)"', table)


def test_studies_list_filters_by_state_and_name_and_links_each_study(app):
    at = app.run()
    at.switch_page("views/studies.py").run()
    _no_error(at)
    assert set(_listed(at)) == {"reports", "pareto", "waiting"}
    table = next(m.value for m in at.markdown if "idds-list" in m.value)
    assert "Pareto front (2 objectives)" in table and "None" not in table
    at.multiselect(key="filter-state").select("active").run()
    assert _listed(at) == ["waiting"]
    at.multiselect(key="filter-state").unselect("active").run()
    at.text_input(key="filter-name").input("par").run()
    assert _listed(at) == ["pareto"]


def _choose_figure(at, title):
    at.segmented_control(key="figure").set_value(title).run()
    _no_error(at)
    return len(at.get("plotly_chart")), [c.value for c in at.caption if "not drawn" in c.value]


def test_study_page_draws_every_figure_the_study_has(app, seeded):
    from dashboard.plots import OPTUNA_FIGURES

    app.query_params["study"] = "reports"
    at = app.run()
    at.switch_page("views/studies.py").run()
    _no_error(at)
    assert "Study reports" in _texts(at)
    for title in OPTUNA_FIGURES[:-1]:  # the history, and the figure chosen
        assert _choose_figure(at, title) == (2, []), title
    assert "Pareto front" not in at.segmented_control(key="figure").options  # one objective
    assert "Pruned 0" in _texts(at) and "Failed 1" in _texts(at)
    trials = _frame_with(at, "trial")
    assert len(trials) == 8
    study = hpo.load_study("reports", settings=seeded)
    assert set(trials["state"]) == {t.state for t in study.trials}
    best = study.best
    assert at.number_input(key="trial-number").value == best.number
    assert f"{best.value:.6g}" in _texts(at)


def test_selected_failed_trial_shows_its_traceback_and_logs(app, seeded):
    study = hpo.load_study("reports", settings=seeded)
    failed = next(t for t in study.trials if t.state == "failed")
    app.query_params["study"] = "reports"
    at = app.run()
    at.switch_page("views/studies.py").run()
    at.number_input(key="trial-number").set_value(failed.number).run()
    _no_error(at)
    codes = "\n".join(c.value for c in at.code)
    assert "diverged" in codes  # the traceback
    assert f"trial {failed.number}, attempt {failed.attempt}" in "\n".join(
        e.label for e in at.expander
    )


def test_two_objective_study_shows_its_pareto_front(app):
    app.query_params["study"] = "pareto"
    at = app.run()
    at.switch_page("views/studies.py").run()
    _no_error(at)
    assert _choose_figure(at, "Pareto front") == (2, [])
    assert any(m.label == "Pareto front" for m in at.metric)


def test_enqueue_and_cancel_act_through_the_study(app, seeded):
    app.query_params["study"] = "waiting"
    at = app.run()
    at.switch_page("views/studies.py").run()
    _no_error(at)
    at.number_input(key="enqueue-x").set_value(0.25)
    at.selectbox(key="enqueue-k").select("b")
    at.button[-1].click().run()  # the form's submit button
    _no_error(at)
    assert hpo.load_study("waiting", settings=seeded).spec.initial_points == [{"x": 0.25, "k": "b"}]
    at.checkbox(key="cancel-sure").check().run()
    at.button(key="cancel").click().run()
    _no_error(at)
    assert hpo.load_study("waiting", settings=seeded).state == "cancelled"
