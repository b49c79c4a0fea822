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
    "step", "seed", "max_attempts", "constraints", "patience", "sites", "slots",
])  # fmt: skip
HUGE = (
    st.integers(-(10**30), 10**30) | st.sampled_from([2**63, -(2**63) - 1, 10**9 + 1, 10**100])
    | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e308, -1e308, 5e-324])
)  # fmt: skip
NAME_VALUES = st.sampled_from(["ok1", "ok1\n", "ok1\r\n", "\nok1", "ok1\n\n", "a b", ""])
SCALARS = (
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=12) | st.sampled_from(["${a}", "a > 1", "m:f", "${", "__import__('os')"])
    | HUGE | NAME_VALUES
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


# --- hostile files: aliases, deep nesting, huge numbers, trailing newlines --------------

#: (module, callable) of each spec file reader, and the top-level keys to put hostile values
#: under.
FILE_LOADERS = [
    ("dag.spec", "load_spec_file", KEYS),
    ("hpo.spec", "load_spec_file", KEYS),
    ("toys.spec", "load_scan_file", KEYS),
    ("carousel.spec", "load_campaign_file", KEYS),
    ("gpu_sites.spec", "load_sites", KEYS),
]


@st.composite
def alias_text(draw, keys):
    """YAML where each anchor holds ``width`` aliases of the one before: from harmless to a
    bomb of ``width ** depth`` values in a few hundred bytes."""
    width, depth = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    rows = ["&a0 [x]"] + [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in
                          range(1, depth)]  # fmt: skip
    key = draw(keys)
    return f"name: w\n{key}: [{', '.join(rows)}]\n"


@st.composite
def deep_text(draw, keys):
    depth = draw(st.integers(1, 3000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a": ', "}")]))
    return f'{{"name": "w", "{draw(keys)}": {opener * depth}1{closer * depth}}}'


@st.composite
def shaped_text(draw, keys):
    """Near-valid specs with huge numbers and names that end in a newline."""
    data = {"name": draw(NAME_VALUES), "objective": "m:f", "callable": "m:f"}
    for key in draw(st.lists(keys, max_size=4)):
        data[key] = draw(HUGE | NAME_VALUES)
    data["nodes"] = [{"name": draw(NAME_VALUES), "callable": "m:f"}]
    data["sites"] = [{"name": draw(NAME_VALUES), "kind": "local", "slots": draw(HUGE)}]
    data["space"] = {draw(NAME_VALUES): {"type": "float", "low": draw(HUGE), "high": draw(HUGE)}}
    import json

    return json.dumps(data, allow_nan=True)


@pytest.mark.parametrize(
    ("module", "attr", "keys"), FILE_LOADERS, ids=[m for m, *_ in FILE_LOADERS]
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_files_are_valid_or_one_line_error_quickly(module, attr, keys, data):
    text = data.draw(alias_text(keys) | deep_text(keys) | shaped_text(keys), label="text")
    _load_quickly(_parser(module, attr), text)


def test_workflow_file_with_params_not_a_mapping_is_one_line():
    from dag.spec import load_spec_file

    _load_quickly(load_spec_file, "name: w\nparams: [1]\nnodes: [{name: a, callable: 'm:f'}]\n")


def _load_quickly(load, text):
    import tempfile
    import time
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(text)
        start = time.monotonic()
        try:
            load(path)
        except SpecError as exc:
            message = str(exc)
            assert message and "\n" not in message, message
        assert time.monotonic() - start < 5.0
