"""The small, safe expression language of conditions, loops, fan-outs and node arguments.

An expression reads the outputs of earlier nodes by name and computes a value::

    train.accuracy >= 0.9 and not (evaluate.loss > 2 * params.max_loss)
    len(split.files) if split else 0
    [x * 2 for x in range(3)]            # not allowed: no comprehensions

It is parsed with :mod:`ast` into a tree that this module walks itself, allowing only:
constants, names, list/tuple/dict literals, comparisons (including ``in``), ``and``/``or``/
``not``, arithmetic, ``a if c else b``, ``x.key`` and ``x[i]`` on outputs (``.key`` reads a
mapping's key, never a Python attribute), and calls of a few pure functions (:data:`FUNCTIONS`).
Names that start with ``_`` are refused. Nothing reaches builtins, modules, attributes of
Python objects or the file system: ``__import__('os')``, ``open('/etc/passwd')`` and
``().__class__`` are errors when the expression is parsed, before anything runs.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from idds.errors import SpecError


class ExpressionError(SpecError):
    """An expression that does not parse, uses what is not allowed, or cannot be evaluated."""


#: The functions an expression may call.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len, "min": min, "max": max, "sum": sum, "abs": abs, "round": round,
    "any": any, "all": all, "sorted": sorted, "range": lambda *a: _range(*a),
    "int": int, "float": float, "str": str, "bool": bool, "list": list,
    "sqrt": math.sqrt, "log": math.log, "exp": math.exp,
}  # fmt: skip

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}  # fmt: skip
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos,
}  # fmt: skip
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not,
}  # fmt: skip
_STRUCTURE = (ast.Expression, ast.Load, ast.And, ast.Or, ast.keyword)
_ALLOWED = (
    ast.Constant, ast.Name, ast.Attribute, ast.Subscript, ast.Slice, ast.List, ast.Tuple,
    ast.Dict, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.Call,
    *_STRUCTURE, *_BINARY, *_UNARY, *_COMPARE,
)  # fmt: skip
#: Guards against values that would exhaust memory (``10 ** 10 ** 10``, ``"a" * 10**9``).
_MAX_POWER = 1000
MAX_ITEMS = 1_000_000


class Expression:
    """A parsed expression: its source, the names it reads, and :meth:`evaluate`.

    Raises:
        ExpressionError: the text does not parse or uses what is not allowed.
    """

    def __init__(self, source: str) -> None:
        self.source = source.strip()
        if self.source.startswith("${") and self.source.endswith("}"):
            self.source = self.source[2:-1].strip()  # `${x}` where an expression is expected
        try:
            self._tree = ast.parse(self.source, mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(f"expression {source!r} does not parse: {exc.msg}") from None
        self.names = frozenset(_check(self._tree, source))

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        """The expression's value, reading ``names`` (node outputs and parameters).

        Raises:
            ExpressionError: a name is missing, a key or index does not exist, a type is
                wrong (e.g. ``"a" > 1``); the message names the expression.
        """
        try:
            return _Evaluator(names).visit(self._tree.body)
        except ExpressionError as exc:
            raise ExpressionError(f"in {self.source!r}: {exc}") from None
        except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError) as exc:
            raise ExpressionError(f"in {self.source!r}: {type(exc).__name__}: {exc}") from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _check(tree: ast.AST, source: str) -> set[str]:
    """The free names of ``tree`` (called functions aside); raises on anything outside the
    language."""
    functions = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            what = type(node).__name__
            raise ExpressionError(f"expression {source!r}: {what} is not allowed")
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
        ):
            allowed = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"expression {source!r}: only {allowed} can be called")
        if isinstance(node, ast.Name | ast.Attribute):
            _check_identifier(node.id if isinstance(node, ast.Name) else node.attr, source)
        if isinstance(node, ast.Name) and id(node) not in functions:
            names.add(node.id)
    return names


def _check_identifier(name: str, source: str) -> None:
    if name.startswith("_"):
        raise ExpressionError(f"expression {source!r}: names starting with '_' are not allowed")


class _Evaluator(ast.NodeVisitor):
    def __init__(self, names: Mapping[str, Any]) -> None:
        self.names = names

    def generic_visit(self, node: ast.AST) -> Any:  # every allowed node has a visit_ below
        raise ExpressionError(f"{type(node).__name__} is not allowed")

    def visit_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id not in self.names:
            raise ExpressionError(f"{node.id!r} has no value here")
        return self.names[node.id]

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        return _item(self.visit(node.value), node.attr)

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        container = self.visit(node.value)
        if isinstance(node.slice, ast.Slice):
            parts = (node.slice.lower, node.slice.upper, node.slice.step)
            return container[slice(*(None if p is None else self.visit(p) for p in parts))]
        return _item(container, self.visit(node.slice))

    def visit_List(self, node: ast.List) -> Any:
        return [self.visit(e) for e in node.elts]

    def visit_Tuple(self, node: ast.Tuple) -> Any:
        return [self.visit(e) for e in node.elts]

    def visit_Dict(self, node: ast.Dict) -> Any:
        if any(k is None for k in node.keys):
            raise ExpressionError("'**' in a dict is not allowed")
        return {self.visit(k): self.visit(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for operand in node.values:
            value = self.visit(operand)
            if isinstance(node.op, ast.And) != bool(value):
                return value
        return value

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        _check_size(node.op, left, right)
        return _BINARY[type(node.op)](left, right)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        return _UNARY[type(node.op)](self.visit(node.operand))

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.visit(comparator)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_Call(self, node: ast.Call) -> Any:
        fn = FUNCTIONS[node.func.id]  # type: ignore[attr-defined]  # checked when parsed
        args = [self.visit(a) for a in node.args]
        kwargs = {k.arg: self.visit(k.value) for k in node.keywords if k.arg}
        return fn(*args, **kwargs)


def _range(*args: int) -> list[int]:
    r = range(*args)
    if len(r) > MAX_ITEMS:
        raise ExpressionError(f"range of {len(r)} items is more than {MAX_ITEMS}")
    return list(r)


def _check_size(op: ast.operator, left: Any, right: Any) -> None:
    if isinstance(op, ast.Pow) and isinstance(right, int | float) and abs(right) > _MAX_POWER:
        raise ExpressionError(f"an exponent above {_MAX_POWER} is not allowed")
    if isinstance(op, ast.Mult):
        seq, n = (left, right) if isinstance(left, str | list) else (right, left)
        if isinstance(seq, str | list) and isinstance(n, int) and len(seq) * n > MAX_ITEMS:
            raise ExpressionError(f"a result longer than {MAX_ITEMS} is not allowed")


def _item(container: Any, key: Any) -> Any:
    """``container[key]`` on outputs only: mappings and sequences, never object attributes."""
    if isinstance(container, Mapping):
        if key not in container:
            raise ExpressionError(f"no key {key!r} (keys: {', '.join(map(str, container))})")
        return container[key]
    if isinstance(container, list | tuple | str) and isinstance(key, int):
        return container[key]
    raise ExpressionError(f"cannot read {key!r} of a {type(container).__name__}")


def render(value: Any, names: Mapping[str, Any]) -> Any:
    """``value`` with its ``${...}`` expressions evaluated (recursively in lists and dicts).

    A string that is exactly ``${expr}`` becomes the expression's value, of any type; other
    strings get each ``${expr}`` replaced by the value's text.
    """
    if isinstance(value, dict):
        return {k: render(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, names) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    parts = template_parts(value)
    if len(parts) == 1 and isinstance(parts[0], Expression):
        return parts[0].evaluate(names)
    return "".join(p if isinstance(p, str) else _text(p.evaluate(names)) for p in parts)


def template_parts(text: str) -> list[str | Expression]:
    """``"a ${x} b"`` as ``["a ", Expression("x"), " b"]``.

    Raises:
        ExpressionError: an unclosed ``${`` or a bad expression.
    """
    parts: list[str | Expression] = []
    rest = text
    while "${" in rest:
        before, _, after = rest.partition("${")
        inner, closed, rest = after.partition("}")
        while closed and inner.count("{") > inner.count("}"):  # a dict literal inside
            more, closed, rest = rest.partition("}")
            inner += "}" + more
        if not closed:
            raise ExpressionError(f"unclosed '${{' in {text!r}")
        if before:
            parts.append(before)
        parts.append(Expression(inner))
    if rest:
        parts.append(rest)
    return parts


def names_in(value: Any) -> set[str]:
    """The names the ``${...}`` expressions inside ``value`` read."""
    if isinstance(value, dict):
        return set().union(*(names_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(names_in(v) for v in value)) if value else set()
    if isinstance(value, str) and "${" in value:
        return set().union(*(p.names for p in template_parts(value) if isinstance(p, Expression)))
    return set()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _json(value)


def _json(value: Any) -> str:
    import json

    return (
        json.dumps(value) if isinstance(value, list | dict | bool) or value is None else str(value)
    )
