"""The expression language: what it computes, and what it refuses (no builtins, no files)."""

from __future__ import annotations

import pytest

from dag.expr import Expression, ExpressionError, names_in, render

OUTPUTS = {"train": {"accuracy": 0.93, "losses": [0.5, 0.2]}, "n": 3, "params": {"k": 2}}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("train.accuracy >= 0.9", True),
        ("train['accuracy'] < 0.9 or n == 3", True),
        ("not (n > 2 and train.losses[-1] < 0.1)", True),
        ("n * params.k + 1", 7),
        ("n // 2, n % 2", [1, 1]),
        ("'big' if n > 2 else 'small'", "big"),
        ("len(train.losses) + max(train.losses)", 2.5),
        ("range(n)", [0, 1, 2]),
        ("train.losses[0:1]", [0.5]),
        ("1 < n <= 3", True),
        ("'acc' in train", False),
        ("{'a': n}['a']", 3),
        ("${n + 1}", 4),
    ],
)
def test_expressions_compute_on_outputs(text, value):
    assert Expression(text).evaluate(OUTPUTS) == value


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "open('/etc/passwd').read()",
        "().__class__.__bases__",
        "train.__class__",
        "eval('1')",
        "exec('x=1')",
        "getattr(train, 'keys')",
        "(lambda: 1)()",
        "[x for x in range(3)]",
        "train.keys()",
        "_private",
        "x := 1",
    ],
)
def test_expressions_cannot_reach_builtins_attributes_or_files(text):
    with pytest.raises(ExpressionError):
        Expression(text)


def test_dict_keys_are_read_never_python_attributes():
    # `.keys` on a mapping is the key "keys", not the dict method
    assert Expression("d.keys").evaluate({"d": {"keys": 5}}) == 5
    with pytest.raises(ExpressionError, match="no key 'keys'"):
        Expression("d.keys").evaluate({"d": {"a": 1}})
    with pytest.raises(ExpressionError, match="cannot read 'real' of a int"):
        Expression("n.real").evaluate({"n": 3})


def test_evaluation_errors_name_the_expression():
    with pytest.raises(ExpressionError, match="in 'missing \\+ 1': 'missing' has no value here"):
        Expression("missing + 1").evaluate({})
    with pytest.raises(ExpressionError, match="ZeroDivisionError"):
        Expression("n / 0").evaluate({"n": 1})


def test_memory_bombs_are_refused():
    with pytest.raises(ExpressionError, match="exponent"):
        Expression("10 ** 10 ** 10").evaluate({})
    with pytest.raises(ExpressionError, match="longer than"):
        Expression("'a' * 10 ** 9").evaluate({})
    with pytest.raises(ExpressionError, match="range of"):
        Expression("range(10 ** 9)").evaluate({})


def test_names_are_the_outputs_read_not_the_functions_called():
    assert Expression("len(a.x) + b[0] if c else max(d)").names == {"a", "b", "c", "d"}


def test_render_substitutes_values_and_text():
    assert render("${train.losses}", OUTPUTS) == [0.5, 0.2]  # a whole expression keeps its type
    assert render("n=${n}, k=${params.k}", OUTPUTS) == "n=3, k=2"
    assert render({"a": ["${n}", "x"], "b": 1}, OUTPUTS) == {"a": [3, "x"], "b": 1}
    assert names_in({"a": ["${n}", "x ${train.accuracy}"]}) == {"n", "train"}
    with pytest.raises(ExpressionError, match="unclosed"):
        render("${n", OUTPUTS)
