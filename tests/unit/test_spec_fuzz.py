"""Arbitrary YAML/JSON given to a spec parser: a valid object or one line of error, never a
traceback (property-based, with Hypothesis)."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idds.errors import SpecError

KEYS = st.sampled_from([
    "name", "nodes", "callable", "command", "after", "foreach", "when", "if", "then", "else",
    "loop", "body", "max", "until", "template", "templates", "params", "args", "output",
    "objective", "space", "type", "low", "high", "choices", "max_points", "parallel",
    "proposer", "direction", "workspace", "range", "toys", "files", "resources", "x",
])  # fmt: skip
SCALARS = (
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=12) | st.sampled_from(["${a}", "a > 1", "m:f", "${", "__import__('os')"])
)  # fmt: skip
DATA = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)

#: (module, callable) of each spec parser that takes a mapping.
PARSERS = [
    ("dag.spec", "WorkflowSpec.from_mapping"),
    ("hpo.spec", "StudySpec.from_mapping"),
    ("toys.spec", "ToyScanSpec.from_mapping"),
    ("carousel.spec", "CampaignSpec.from_mapping"),
    ("gpu_sites.spec", "parse_sites"),
]


def _parser(module: str, attr: str):
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize(("module", "attr"), PARSERS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=DATA)
def test_any_input_is_valid_or_one_line_error(module, attr, data):
    parse = _parser(module, attr)
    try:
        parse(data)
    except SpecError as exc:  # ValueError subclass: a user's error, not a crash
        message = str(exc)
    else:
        return
    assert message and "\n" not in message


@given(data=st.dictionaries(KEYS, DATA, max_size=6).map(lambda d: {"name": "w", **d}))
@settings(max_examples=150, deadline=None)
def test_workflow_shaped_input_is_valid_or_one_line_error(data):
    from dag.spec import WorkflowSpec

    try:
        WorkflowSpec.from_mapping(data)
    except SpecError as exc:
        message = str(exc)
    else:
        return
    assert message and "\n" not in message


NAMES = st.sampled_from(["a", "b", "c", "d", "item", "params"])
EXPRS = st.sampled_from([
    "a", "b.x > 1", "len(c) + 1", "a and not b", "a[0]", "item", "previous", "x.__class__",
    "open('f')", "1 +", "${a}", "params.n", "range(3)", "{'k': a}['k']", "a if b else c",
])  # fmt: skip


@st.composite
def node(draw, depth=0):
    n = {"name": draw(NAMES)}
    kind = draw(st.sampled_from(["callable", "command", "if", "loop", "template"] if depth < 2
                                else ["callable", "command"]))  # fmt: skip
    if kind == "callable":
        n["callable"] = "m:f"
    elif kind == "command":
        n["command"] = draw(st.sampled_from(["echo ${a}", "true", "echo ${item}"]))
    elif kind == "if":
        n["if"] = draw(EXPRS)
        n["then"] = {"nodes": draw(st.lists(node(depth + 1), min_size=1, max_size=2))}
    elif kind == "loop":
        n["loop"] = {"max": draw(st.integers(0, 3)), "until": draw(EXPRS),
                     "body": {"nodes": draw(st.lists(node(depth + 1), min_size=1, max_size=2))}}  # fmt: skip
    else:
        n["template"] = draw(st.sampled_from(["t", "nope"]))
        n["params"] = draw(
            st.dictionaries(
                st.sampled_from(["k", "z"]), EXPRS.map(lambda e: f"${{{e}}}"), max_size=2
            )
        )
    if draw(st.booleans()):
        n["after"] = draw(st.lists(NAMES, max_size=2))
    if draw(st.booleans()):
        n["foreach"] = draw(EXPRS | st.lists(st.integers(), max_size=3))
    if draw(st.booleans()):
        n["when"] = draw(EXPRS)
    if draw(st.booleans()):
        n["args"] = {"v": draw(EXPRS.map(lambda e: f"${{{e}}}"))}
    return n


@given(nodes=st.lists(node(), min_size=1, max_size=5), output=st.none() | EXPRS)
@settings(max_examples=200, deadline=None)
def test_near_valid_workflows_are_valid_or_one_line_error_naming_where(nodes, output):
    from dag.engine import Engine, NodeState
    from dag.spec import WorkflowSpec

    data = {"name": "w", "nodes": nodes, "params": {"n": 2},
            "templates": {"t": {"params": {"k": None}, "nodes": [{"name": "a", "callable": "m:f"}]}}}  # fmt: skip
    if output:
        data["output"] = output
    try:
        spec = WorkflowSpec.from_mapping(data)
    except SpecError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        return
    engine = Engine(spec)  # a valid spec runs to an end, whatever the outputs
    engine.start()
    for _ in range(200):
        ready = engine.take(100)
        if not ready:
            break
        for n in ready:
            engine.finished(n.path, NodeState.SUCCEEDED, [1, 2])
    assert engine.done
