"""An expression's evaluation has a budget (steps, value sizes, wall time); its source has a
bounded length and depth, checked when it is parsed."""

from __future__ import annotations

import shlex
import time

import pytest

from dag.expr import Budget, Expression, ExpressionError, render


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("((10**1000)**1000)**1000", "exponent"),
        ("'%1999999999d' % 1", "width"),
        ("'%.1999999999f' % 1.5", "width"),
        ("'%*d' % (1999999999, 1)", "width"),
        ("sum([[1]*1000000]*100, [])", "longer than"),
        ("len(sorted([[1]*1000000]*100000)) > 0", "longer than"),
        ("[[[1] * 1000] * 1000] * 1000", "longer than"),
        ("${9**9**9}", "exponent"),
        ("2.0 ** 100000", "OverflowError"),
        ("exp(100000)", "OverflowError"),
    ],
)
def test_costly_expressions_fail_fast_with_a_one_line_reason(text, match):
    started = time.monotonic()
    with pytest.raises(ExpressionError, match=match) as caught:
        Expression(text).evaluate({})
    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert message and "\n" not in message


def test_every_intermediate_value_is_measured():
    big = Budget(size=1000)
    with pytest.raises(ExpressionError, match="longer than 1000"):
        Expression("x + x").evaluate({"x": list(range(600))}, budget=big)
    with pytest.raises(ExpressionError, match="bits"):
        Expression("2 ** 999 * 2 ** 999").evaluate({}, budget=big)
    with pytest.raises(ExpressionError, match="longer than 1000"):
        Expression("sum(xs, [])").evaluate({"xs": [[1] * 400] * 3}, budget=big)
    assert Expression("sum(xs, [])").evaluate({"xs": [[1], [2]]}) == [1, 2]
    assert Expression("len(x)").evaluate({"x": list(range(5000))}, budget=big) == 5000


def test_steps_and_wall_time_are_bounded():
    with pytest.raises(ExpressionError, match="steps"):
        Expression("1 + 2 + 3 + 4").evaluate({}, budget=Budget(steps=3))
    with pytest.raises(ExpressionError, match="seconds"):
        Expression("1 + 2 + 3 + 4").evaluate({}, budget=Budget(seconds=0.0))


def test_ordinary_expressions_stay_within_the_budget():
    assert Expression("'%5.2f' % 3.14159").evaluate({}) == " 3.14"
    assert Expression("'%-4s|' % 'ab'").evaluate({}) == "ab  |"
    assert Expression("2 ** 64").evaluate({}) == 2**64
    assert Expression("len([0] * 1000)").evaluate({}) == 1000
    assert Expression("sum(range(10))").evaluate({}) == 45


def test_deep_or_long_expressions_are_refused_when_parsed():
    with pytest.raises(ExpressionError, match="nested more than") as caught:
        Expression("1" + "+1" * 599 + " > 0")
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300
    with pytest.raises(ExpressionError, match="longer than"):
        Expression("-" * 10_000 + "1")
    with pytest.raises(ExpressionError, match="nested more than"):
        Expression("-" * 2000 + "1")
    with pytest.raises(ExpressionError, match="nested more than"):
        Expression("(" * 250 + "1" + ")" * 250)
    assert Expression("1" + "+1" * 40).evaluate({}) == 41


def test_shell_quote_makes_a_parameter_one_shell_word():
    hostile = "x; touch /tmp/pwned $(id) 'q'"
    line = render("echo ${shell_quote(params.x)}", {"params": {"x": hostile}})
    assert shlex.split(line) == ["echo", hostile]
    assert Expression("shell_quote(3)").evaluate({}) == "3"
