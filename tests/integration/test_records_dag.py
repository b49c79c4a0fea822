"""A workflow's study and toy-scan nodes are parts of the workflow: recorded with it as their
parent, and never someone else's owner of the same name."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import hpo
from dag import Workflow, list_workflows, load_workflow
from idds import auth
from idds.db import connect
from idds.errors import Exists, NotFound
from idds.records import Records

TESTS = Path(__file__).parents[1]
SPACE = {"x": {"type": "float", "low": -2.0, "high": 2.0}}


def _study(**extra):
    return {
        "objective": "objectives:quadratic", "pythonpath": [str(TESTS)], "max_points": 2,
        "parallel": 2, "proposer": "optuna:random", "seed": 1, "space": SPACE, **extra,
    }  # fmt: skip


def _users(settings):
    engine = connect(settings.db_url)
    admin = auth.add_user(engine, settings, "alice")
    bob = auth.add_user(engine, dataclasses.replace(settings, token=admin), "bob")
    mallory = auth.add_user(engine, dataclasses.replace(settings, token=admin), "mallory")
    engine.dispose()
    return dataclasses.replace(settings, token=bob), dataclasses.replace(settings, token=mallory)


def test_a_study_node_is_recorded_as_part_of_its_workflow(settings):
    wf = Workflow({"name": "owned", "nodes": [{"name": "search", "study": _study()}]},
                  settings=settings)  # fmt: skip
    assert wf.run() == "finished"
    records = Records(wf.engine)
    study = records.owner("study", "owned.search")
    assert study.parent_id == wf.owner_id
    assert records.owners("study", parent_id=wf.owner_id) == [study]
    # a part is run by its parent: it is listed with no workflow of its own
    assert [w["name"] for w in list_workflows(settings)] == ["owned"]


def test_a_study_node_does_not_adopt_another_users_study_of_its_name(settings):
    bob, mallory = _users(settings)
    # mallory records "tune.search" first, the name bob's workflow gives its study node
    squatter = hpo.Study(name="tune.search", settings=mallory, **_study())
    squatter.create()
    wf = Workflow({"name": "tune", "nodes": [{"name": "search", "study": _study()}]},
                  settings=bob)  # fmt: skip
    with pytest.raises(Exists, match="'tune.search' .*mallory.* is named like a part of 'tune'"):
        wf.run()  # refused before anything is recorded
    with pytest.raises(NotFound):
        load_workflow("tune", settings=bob)
    found = hpo.load_study("tune.search", settings=mallory)
    assert found.user == "mallory" and found.trials == []  # nothing ran in it
