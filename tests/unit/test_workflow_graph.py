"""The workflow graph at the Rubin example's size: 3,041 tasks drawn as one box per spec node,
in layers that follow the dependencies. Instances come from the real engine, run without Ray
(each ready task is finished at once)."""

from __future__ import annotations

from pathlib import Path

from dag.engine import Engine, NodeState
from dag.spec import load_spec_file
from dag.workflow import NodeInfo
from dashboard.workflow_graph import boxes, grouped_figure, layers
from dashboard.workflows import COLOURS

RUBIN = Path(__file__).parents[2] / "examples" / "dag" / "rubin" / "pipeline.yaml"


def _instances(spec) -> list[NodeInfo]:
    engine = Engine(spec)
    engine.start()
    while engine.ready:
        for node in engine.take(len(engine.ready)):
            engine.finished(node.path, NodeState.SUCCEEDED, {"visits": 30})
    numbered = {path: i for i, path in enumerate(engine.tasks)}
    return [NodeInfo(path=n.path, kind=n.kind, state=str(n.state), output=None, error=None,
                     detail="", attempt=None, duration_s=None, number=numbered.get(n.path),
                     depth=n.path.count(".")) for n in engine.walk()]  # fmt: skip


def test_the_rubin_campaign_is_five_boxes_in_five_layers():
    spec = load_spec_file(RUBIN)
    nodes = _instances(spec)
    assert sum(n.number is not None for n in nodes) == 3041
    found = boxes(spec, nodes)
    assert set(found) == {"visit", "visit.isr", "visit.calibrate", "coadd", "catalog"}
    assert (found["visit.isr"].tasks, found["visit.isr"].label) == (3000, "isr (3000 tasks)")
    assert found["visit.calibrate"].deps == {"visit.isr"}
    assert found["visit.isr"].owner == "visit" and found["coadd"].deps == {"visit"}
    level = layers(found)
    order = ["visit", "visit.isr", "visit.calibrate", "coadd", "catalog"]
    assert [level[k] for k in order] == [0, 1, 2, 3, 4]  # coadd waits for all of visit


def test_its_figure_has_one_mark_per_box_and_none_share_a_place():
    spec = load_spec_file(RUBIN)
    fig = grouped_figure(spec, _instances(spec), COLOURS)
    marks = [t for t in fig.data if t.mode == "markers+text"]
    places = [(x, y) for t in marks for x, y in zip(t.x, t.y, strict=True)]
    assert len(places) == 5 and len(set(places)) == 5
    assert "3,041 tasks" in fig.layout.title.text
    assert {t.name for t in marks} == {"succeeded"}
