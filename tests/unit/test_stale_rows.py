"""A head killed with kill -9 that nobody resumes leaves its owner active and its attempts in
flight in the database: the lists and `show` must say so (stopped, attempts lost with their
head) once its lease has lapsed, rather than show them running forever."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.spec import load_spec_file
from hpo.study import Study
from idds import owners
from idds import tasks as tq
from idds.cli import main
from idds.config import Settings
from idds.records import Records
from idds.tasks import TaskSpec

STOPPED = "stopped (no live head; resume it)"
LOST = "lost with their head"
SPEC = """\
name: stale
objective: objectives:quadratic
space: {x: {type: float, low: -2.0, high: 2.0}}
max_points: 5
parallel: 2
"""


def _study_in_flight(engine, db_url: str, tmp_path: Path, *, lease_s: float) -> int:
    """A study with 3 trials, 2 of them claimed and started by head ``elsewhere:1:h``, whose
    lease on it lasts ``lease_s`` seconds from now (negative: it lapsed)."""
    path = tmp_path / "stale.yaml"
    path.write_text(SPEC)
    spec, base = load_spec_file(str(path))
    owner_id = Study(spec, settings=Settings(db_url=db_url), base_dir=base).create()
    payloads = [{"callable": "objectives:quadratic", "args": [{"x": n / 10}]} for n in range(3)]
    Records(engine).submit(
        owner_id, [TaskSpec(number=n, kind="hpo.trial", payload=p) for n, p in enumerate(payloads)]
    )
    with engine.begin() as conn:
        assert owners.acquire(conn, owner_id, "elsewhere:1:h", lease_s)
        claims = tq.claim(conn, owner_id, 2, lease_seconds=30)
        tq.start_attempts(conn, [(c, "local") for c in claims], head="elsewhere:1:h")
    return owner_id


def _idds(capsys, db_url: str, *words: str) -> str:
    main(["--db", db_url, *words])
    return capsys.readouterr().out


def test_a_lapsed_lease_shows_the_study_stopped_and_its_attempts_lost(
    engine, db_url, tmp_path, capsys
):
    _study_in_flight(engine, db_url, tmp_path, lease_s=-5.0)
    listed = _idds(capsys, db_url, "hpo", "list")
    assert STOPPED in listed
    assert f"2 {LOST}" in listed
    shown = _idds(capsys, db_url, "hpo", "show", "stale")
    assert f"study stale: {STOPPED}" in shown
    assert shown.count(LOST) == 2
    assert " running " not in shown


def test_a_live_lease_still_shows_the_study_running(engine, db_url, tmp_path, capsys):
    _study_in_flight(engine, db_url, tmp_path, lease_s=60.0)
    listed = _idds(capsys, db_url, "hpo", "list")
    shown = _idds(capsys, db_url, "hpo", "show", "stale")
    for out in (listed, shown):
        assert "stopped" not in out
        assert LOST not in out
    assert "study stale: active" in shown
    assert shown.count("dispatched") == 2


@pytest.mark.parametrize("lease_s", [-5.0, 60.0])
def test_the_shown_state_is_one_rule_in_the_records(engine, db_url, tmp_path, lease_s):
    owner_id = _study_in_flight(engine, db_url, tmp_path, lease_s=lease_s)
    records = Records(engine)
    record = records.owner_by_id(owner_id)
    shown = records.shown([record])[owner_id]
    assert shown.stopped is (lease_s < 0)
    assert shown.state == (STOPPED if lease_s < 0 else "active")
    assert (shown.running, shown.lost) == ((0, 2) if lease_s < 0 else (2, 0))


def test_the_dashboard_lists_show_the_study_stopped(engine, db_url, tmp_path):
    from dashboard import data

    owner_id = _study_in_flight(engine, db_url, tmp_path, lease_s=-5.0)
    records = Records(engine)
    (row,) = data.list_studies(records)
    assert (row.state, row.running, row.lost) == (STOPPED, 0, 2)
    assert data.shown_states(records, data.owners_of(records, "study")) == {owner_id: STOPPED}
    shown = data.shown_owner(records, data.STUDY_KINDS, "stale")
    assert (shown.stopped, shown.lost) == (True, 2)


def test_a_workflow_whose_head_is_gone_lists_and_shows_stopped(engine, db_url, capsys):
    from dag.workflow import Workflow

    spec = {"name": "gone", "nodes": [{"name": "a", "command": ["sh", "-c", "sleep 60"]}]}
    owner_id = Workflow(spec, settings=Settings(db_url=db_url)).create()
    payload = {"node": "a", "command": ["sh", "-c", "sleep 60"]}
    Records(engine).submit(owner_id, [TaskSpec(number=0, kind="dag.node", payload=payload)])
    with engine.begin() as conn:
        assert owners.acquire(conn, owner_id, "elsewhere:1:h", -5.0)
        claims = tq.claim(conn, owner_id, 1, lease_seconds=30)
        tq.start_attempts(conn, [(c, "local") for c in claims], head="elsewhere:1:h")
    listed = _idds(capsys, db_url, "dag", "list")
    assert STOPPED in listed
    shown = _idds(capsys, db_url, "dag", "show", "gone")
    assert f"workflow 'gone': {STOPPED}" in shown
    assert LOST in shown
