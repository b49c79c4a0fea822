"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis, on Hypothesis): no request
gets a 500; every refusal is a 4xx with a one-line ``detail``; another user's work is never
changed, whatever the request."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from idds import auth
from idds.api import make_app
from idds.config import Settings
from idds.db import connect
from idds.records import NewOwner, Records
from idds.tasks import TaskSpec


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    db = tmp_path_factory.mktemp("fuzz") / "idds.db"
    settings = Settings(db_url=f"sqlite:///{db}")
    engine = connect(settings.db_url)
    admin = auth.Actor("alice", admin=True)
    auth.add_user(engine, admin, "alice")
    global BOB
    BOB = auth.add_user(engine, admin, "bob")
    records = Records(engine)
    owner = records.create(
        NewOwner(kind="study", name="alice-quad", spec={"direction": "minimize"}), user="alice"
    )
    records.submit(owner, [TaskSpec(number=0, kind="hpo", payload={"args": [{"x": 1}]})])
    app = make_app(settings, kinds=frozenset({"study", "workflow"}))
    app.state.fuzz_records = records
    return app


@pytest.fixture(scope="module")
def api_schema(api):
    return schemathesis.openapi.from_asgi("/openapi.json", api)


BOB = ""
schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_request_gets_a_500_and_refusals_are_one_line(case, api):
    response = case.call(headers={"Authorization": f"Bearer {BOB}"})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail and "\n" not in detail
    records = api.state.fuzz_records
    alice = records.owner("study", "alice-quad")
    assert alice.state == "active" and alice.spec == {"direction": "minimize"}  # bob: no change
    assert [t.number for t in records.tasks(alice.id)] == [0]
