"""Bad workflows are refused with one line naming the node, before anything is written."""

from __future__ import annotations

import pytest

from dag.spec import WorkflowSpec, load_spec_file
from idds.errors import SpecError


def wf(*nodes, **extra):
    return {"name": "w", "nodes": list(nodes), **extra}


def task(name, **kw):
    return {"name": name, "callable": "m:f", **kw}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (wf(task("a", after=["b"]), task("b", after=["a"])), "a cycle: (a -> b -> a|b -> a -> b)"),
        (wf(task("a", args={"x": "${b}"}), task("b", args={"y": "${a}"})), "a cycle"),
        (wf(task("a", after=["nope"])), "node a: depends on 'nope', which does not exist"),
        (
            wf(task("a", args={"x": "${ghost.value}"})),
            "node a: reads 'ghost', which is not an output here",
        ),
        (wf(task("a", when="a >")), "node a: expression 'a >' does not parse"),
        (wf(task("a", when="__import__('os')")), "node a: expression"),
        (
            wf(task("a", args={"x": "${item}"})),
            "node a: 'item' can only be read in a fan-out or a loop",
        ),
        (wf({"name": "t", "template": "nope"}), "node t: no template 'nope'"),
        (
            wf(
                {"name": "t", "template": "tp", "params": {"x": 1, "bogus": 2}},
                templates={"tp": {"params": {"x": None}, "nodes": [task("a")]}},
            ),
            "node t: template tp has no parameter\\(s\\) 'bogus'",
        ),
        (
            wf(
                {"name": "t", "template": "tp"},
                templates={"tp": {"params": ["x"], "nodes": [task("a")]}},
            ),
            "node t: template tp needs 'x'",
        ),
        (wf(task("a"), task("a")), "'a' used twice"),
        (wf({"name": "a"}), "give exactly one of"),
        (wf({"name": "a", "callable": "m:f", "command": "true"}), "give exactly one of"),
        (wf(task("item")), "reserved name"),
        (
            wf(
                task("a"),
                {
                    "name": "l",
                    "loop": {"max": 3, "until": "missing > 1", "body": {"nodes": [task("s")]}},
                },
            ),
            "reads 'missing'",
        ),
        (
            wf({"name": "c", "if": "x > 1", "then": {"nodes": [task("a")]}}),
            "node c: reads 'x', which is not an output here",
        ),
        (
            wf({"name": "c", "if": "1 > 0", "then": {"nodes": [task("a", after=["zz"])]}}),
            "node c.then.a: depends on 'zz'",
        ),
    ],
)
def test_bad_workflows_name_the_node(data, message):
    with pytest.raises(SpecError, match=message):
        WorkflowSpec.from_mapping(data)


def test_errors_are_one_line():
    with pytest.raises(SpecError) as info:
        WorkflowSpec.from_mapping(wf(task("a", after=["b"]), task("b", after=["a"])))
    assert "\n" not in str(info.value)


def test_nested_flows_see_outer_outputs_and_templates_do_not():
    ok = wf(
        task("a"), {"name": "c", "if": "a > 1", "then": {"nodes": [task("b", args={"x": "${a}"})]}}
    )
    WorkflowSpec.from_mapping(ok)
    leaky = wf(
        task("a"),
        {"name": "t", "template": "tp"},
        templates={"tp": {"nodes": [task("b", args={"x": "${a}"})]}},
    )
    with pytest.raises(SpecError, match="template tp"):
        WorkflowSpec.from_mapping(leaky)


def test_a_file_with_unknown_parameter_override_is_refused(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text("name: w\nparams: {n: 2}\nnodes: [{name: a, callable: 'm:f'}]\n")
    assert load_spec_file(path, {"n": 5}).params["n"] == 5
    with pytest.raises(SpecError, match="unknown parameter\\(s\\) m \\(known: n\\)"):
        load_spec_file(path, {"m": 1})


def test_the_spec_round_trips_through_json():
    data = wf(
        task("a", foreach=[1, 2]),
        {
            "name": "c",
            "if": "len(a) > 1",
            "then": {"nodes": [task("b")]},
            "else": {"nodes": [task("d")]},
        },
    )
    spec = WorkflowSpec.from_mapping(data)
    assert WorkflowSpec.from_mapping(spec.to_mapping()) == spec
