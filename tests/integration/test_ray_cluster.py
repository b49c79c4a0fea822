"""On a Ray cluster of several nodes (``pytest --ray-cluster N``): the work spreads across the
nodes. Skipped on a local Ray, where there is one node."""

from __future__ import annotations

from pathlib import Path

import pytest

from dag import Workflow
from hpo import Study

TESTS = Path(__file__).parents[1]
pytestmark = pytest.mark.skipif(
    "config.getoption('--ray-cluster') < 2",
    reason="runs on a multi-node cluster only: pytest --ray-cluster N (N >= 2)",
)


@pytest.fixture
def nodes(request: pytest.FixtureRequest, ray_address: str) -> set[str]:
    """The ids of the cluster's alive nodes (at least the ``--ray-cluster`` asked for)."""
    import ray

    wanted = request.config.getoption("--ray-cluster")
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(alive) >= wanted
    return alive


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_studys_evaluations_run_on_several_nodes(nodes, settings):
    study = Study(
        settings=settings, name="spread", objective="node_objectives:where",
        space={"x": {"type": "float", "low": -1.0, "high": 1.0},
               "sleep": {"type": "categorical", "choices": [0.5]}},
        max_points=3 * len(nodes), parallel=len(nodes), proposer="optuna:random", seed=3,
        pythonpath=[str(TESTS)],
    )  # fmt: skip
    study.optimize(progress=False)
    trials = study.trials
    assert [t.state for t in trials] == ["succeeded"] * 3 * len(nodes)
    ran_on = {t.user_attrs["ray_node"] for t in trials}
    assert ran_on <= nodes
    assert len(ran_on) > 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_workflows_nodes_run_on_several_ray_nodes(nodes, settings):
    wf = Workflow({
        "name": "spread-wf", "pythonpath": [str(TESTS)], "parallel": len(nodes),
        "nodes": [{"name": "where", "callable": "node_objectives:node_of",
                   "foreach": f"range({3 * len(nodes)})",
                   "args": {"index": "${item}", "sleep": 0.5}}],
    }, settings=settings)  # fmt: skip
    assert wf.run(progress=False) == "finished"
    ran_on = {n.output for n in wf.nodes() if n.path.startswith("where[")}
    assert ran_on <= nodes
    assert len(ran_on) > 1
