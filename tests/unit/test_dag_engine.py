"""The workflow engine without a database or Ray: expansion, conditions, loops, failures."""

from __future__ import annotations

from dag.engine import Engine, NodeState
from dag.spec import WorkflowSpec


def run(data, outputs, fail=()):
    """Drive an engine to the end; ``outputs(node)`` gives each task node's output."""
    engine = Engine(WorkflowSpec.from_mapping({"name": "w", **data}))
    engine.start()
    order = []
    while engine.ready:
        for node in engine.take(100):
            order.append(node.path)
            if node.path in fail:
                engine.finished(node.path, NodeState.FAILED, error="boom")
            else:
                engine.finished(node.path, NodeState.SUCCEEDED, outputs(node))
    return engine, order, {n.path: n for n in engine.walk()}


def test_fan_out_over_a_runtime_list_and_fan_in():
    data = {"nodes": [
        {"name": "split", "callable": "m:f"},
        {"name": "work", "callable": "m:f", "foreach": "split", "args": {"x": "${item}", "i": "${index}"}},
        {"name": "join", "callable": "m:f", "after": ["work"]},
    ], "output": "join"}  # fmt: skip

    def outputs(node):
        if node.spec.name == "split":
            return [10, 20, 30]
        if node.spec.name == "work":
            return node.inputs["x"] + node.inputs["i"]
        return sum(node.inputs["work"])

    engine, order, nodes = run(data, outputs)
    assert order == ["split", "work[0]", "work[1]", "work[2]", "join"]
    assert nodes["work"].output == [10, 21, 32]
    assert engine.state == NodeState.SUCCEEDED and engine.output == 63


def test_a_template_is_instantiated_per_item_with_its_params():
    data = {
        "templates": {"t": {"params": {"k": None, "scale": 2}, "nodes": [
            {"name": "a", "callable": "m:f", "args": {"v": "${params.k * params.scale}"}}]}},
        "nodes": [{"name": "use", "template": "t", "foreach": [1, 2, 3], "params": {"k": "${item}"}}],
    }  # fmt: skip
    _, order, nodes = run(data, lambda n: n.inputs["v"])
    assert order == ["use[0].a", "use[1].a", "use[2].a"]
    assert nodes["use"].output == [2, 4, 6]


def test_a_condition_takes_one_branch_from_upstream_outputs():
    def data(threshold):
        return {"nodes": [
            {"name": "score", "callable": "m:f"},
            {"name": "pick", "if": f"score.value > {threshold}",
             "then": {"nodes": [{"name": "deploy", "callable": "m:f"}]},
             "else": {"nodes": [{"name": "retrain", "callable": "m:f"}]}},
        ]}  # fmt: skip

    out = lambda n: {"value": 0.8} if n.spec.name == "score" else n.spec.name  # noqa: E731
    _, order, nodes = run(data(0.5), out)
    assert order == ["score", "pick.then.deploy"] and nodes["pick"].output == "deploy"
    _, order, nodes = run(data(0.9), out)
    assert order == ["score", "pick.else.retrain"] and nodes["pick"].output == "retrain"


def test_a_loop_runs_until_its_condition_and_keeps_every_iteration():
    data = {"nodes": [{"name": "grow", "loop": {
        "max": 10, "initial": 1, "until": "double >= 20",
        "body": {"nodes": [{"name": "double", "callable": "m:f", "args": {"x": "${previous}"}}]},
    }}]}  # fmt: skip
    _, order, nodes = run(data, lambda n: n.inputs["x"] * 2)
    assert order == [f"grow[{i}].double" for i in range(5)]  # 2 4 8 16 32
    assert nodes["grow"].output == 32
    assert "until held" in nodes["grow"].detail


def test_a_loop_stops_at_its_maximum():
    data = {"nodes": [{"name": "l", "loop": {
        "max": 3, "until": "s > 100", "body": {"nodes": [{"name": "s", "callable": "m:f"}]}}}]}  # fmt: skip
    _, order, nodes = run(data, lambda n: 1)
    assert len(order) == 3 and "max reached" in nodes["l"].detail


def test_when_false_skips_the_node_and_its_dependants():
    data = {"nodes": [
        {"name": "a", "callable": "m:f"},
        {"name": "b", "callable": "m:f", "when": "a > 5"},
        {"name": "c", "callable": "m:f", "after": ["b"]},
        {"name": "d", "callable": "m:f", "after": ["a"]},
    ]}  # fmt: skip
    engine, order, nodes = run(data, lambda n: 1)
    assert order == ["a", "d"]
    assert nodes["b"].state == nodes["c"].state == NodeState.SKIPPED
    assert engine.state == NodeState.SUCCEEDED


def test_a_failure_blocks_its_dependants_and_the_rest_still_runs():
    data = {"nodes": [
        {"name": "a", "callable": "m:f"},
        {"name": "b", "callable": "m:f", "after": ["a"]},
        {"name": "other", "callable": "m:f"},
    ]}  # fmt: skip
    engine, order, nodes = run(data, lambda n: 1, fail={"a"})
    assert order == ["a", "other"]
    assert nodes["b"].state == NodeState.BLOCKED
    assert engine.state == NodeState.FAILED and "a: boom" in engine.error


def test_an_expression_failing_at_run_time_fails_its_node_only():
    data = {"nodes": [
        {"name": "a", "callable": "m:f"},
        {"name": "b", "callable": "m:f", "args": {"x": "${a.missing}"}},
    ]}  # fmt: skip
    engine, _, nodes = run(data, lambda n: {"present": 1})
    assert nodes["b"].state == NodeState.FAILED and "no key 'missing'" in nodes["b"].error


def test_the_same_outputs_give_the_same_paths():
    data = {"nodes": [
        {"name": "a", "callable": "m:f"},
        {"name": "b", "callable": "m:f", "foreach": "range(a)"},
    ]}  # fmt: skip
    first = run(data, lambda n: 3)[1]
    assert first == run(data, lambda n: 3)[1] == ["a", "b[0]", "b[1]", "b[2]"]
