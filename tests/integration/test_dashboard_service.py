"""The dashboard in service mode (``IDDS_URL``), through Streamlit's AppTest: it reads a real
``idds serve`` (tests/service.py) with each visitor's token, and never opens a database: its
own database URL points at a file that must not come to exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from service import start_service

import hpo
from dag import Workflow
from dashboard._common import TOKEN_KEY
from idds.config import Settings

ROOT = Path(__file__).parents[2]
APP = str(ROOT / "dashboard" / "app.py")
TESTS = str(ROOT / "tests")


@pytest.fixture
def served(db_url, ray_address, tmp_path, monkeypatch):
    """A server whose database holds bob's finished study and bob's workflow (one node fails,
    writing to stderr), both run by its heads; alice is an admin, carol a user."""
    for var in ("IDDS_TOKEN", "IDDS_USER", "IDDS_URL", "IDDS_DB_URL", "IDDS_WORK_DIR"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(db_url=db_url, ray_address=ray_address, work_dir=tmp_path / "work")
    svc = start_service(settings, tmp_path / "serve.log", users=("alice", "bob", "carol"))
    bob = svc.settings("bob")
    hpo.Study(settings=bob, name="quad", objective="objectives:quadratic", max_points=4,
              parallel=2, space={"x": {"type": "float", "low": -2.0, "high": 2.0}},
              proposer="optuna:random", seed=1, pythonpath=[TESTS]).optimize(progress=False)  # fmt: skip
    Workflow({"name": "flow", "nodes": [
        {"name": "hello", "command": ["sh", "-c", "echo hi"]},
        {"name": "broken", "command": ["sh", "-c", "echo oops-from-bob >&2; exit 3"],
         "max_attempts": 1, "after": ["hello"]},
    ]}, settings=bob).run()  # fmt: skip
    yield svc
    svc.stop()


@pytest.fixture
def app(served, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    nowhere = tmp_path / "dashboard-side" / "idds.db"
    monkeypatch.setenv("IDDS_URL", served.url)
    monkeypatch.setenv("IDDS_DB_URL", f"sqlite:///{nowhere}")
    monkeypatch.setenv("IDDS_WORK_DIR", str(tmp_path / "dashboard-side" / "work"))
    yield AppTest.from_file(APP, default_timeout=60)
    assert not nowhere.parent.exists()  # no database was opened, not even made


def _no_error(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _texts(at) -> str:
    parts = [e.value for e in (*at.title, *at.header, *at.subheader, *at.caption, *at.markdown)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def _sign_in(app, token: str):
    at = app.run()
    at.text_input[0].set_value(token)
    at.button[0].click().run()
    return at


def test_sign_in_is_checked_by_the_server(app, served):
    at = _sign_in(app, "idds_not-a-token")
    assert "not the token of a user of this server" in at.error[0].value
    at.text_input[0].set_value(served.tokens["bob"])
    at.button[0].click().run()
    _no_error(at)
    assert "Signed in as **bob**" in "\n".join(c.value for c in at.sidebar.caption)


def _page(app, token: str, script: str, **query):
    app.session_state[TOKEN_KEY] = token
    for key, value in query.items():
        app.query_params[key] = value
    at = app.run()  # the Overview, through the server too
    _no_error(at)
    at.switch_page(f"views/{script}").run()
    _no_error(at)
    return at


def test_a_study_and_a_workflow_render_through_the_server(app, served):
    at = _page(app, served.tokens["carol"], "sites.py")
    assert "Per site" in _texts(at)  # attempts' accounting, read through the server
    at = _page(app, served.tokens["carol"], "studies.py")
    assert 'href="studies?study=quad"' in _texts(at)
    at = _page(app, served.tokens["carol"], "studies.py", study="quad")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["State"] == "finished" and metrics["Trials"] == "4/4"
    trials = next(d.value for d in at.dataframe if "trial" in d.value.columns)
    assert sorted(trials["trial"]) == [0, 1, 2, 3]

    at = _page(app, served.tokens["bob"], "workflows.py", workflow="flow")
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["State"], metrics["Failed"]) == ("failed", "1")
    assert at.selectbox(key="log-node").value == "broken"
    assert any("oops-from-bob" in c.value for c in at.code)  # its stderr, from the server


def test_another_users_logs_are_refused_there(app, served):
    at = _page(app, served.tokens["carol"], "workflows.py", workflow="flow")
    assert "Logs are shown to the workflow's owner (bob) and admins only." in _texts(at)
    assert not any("oops-from-bob" in c.value for c in at.code)
    at = _page(app, served.tokens["carol"], "studies.py", study="quad")
    assert "Logs are shown to the study's owner (bob) and admins only." in _texts(at)
    at = _page(app, served.tokens["alice"], "workflows.py", workflow="flow")  # an admin
    assert any("oops-from-bob" in c.value for c in at.code)
