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

An expression is at most :data:`MAX_LENGTH` characters, nested at most :data:`MAX_DEPTH`
deep (checked when it is parsed), and its evaluation has a :class:`Budget`: the nodes it
evaluates, the size of every value it builds (checked before building where the size is known
in advance: ``**``, ``*`` on a sequence, ``%`` widths) and its wall time. Going over is an
:class:`ExpressionError` of one line, which fails the node that evaluated it.
"""

from __future__ import annotations

import ast
import itertools
import math
import operator
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from idds.errors import SpecError


class ExpressionError(SpecError):
    """An expression that does not parse, uses what is not allowed, or cannot be evaluated."""


#: The functions an expression may call.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len, "min": min, "max": max, "sum": lambda *a: _sum(*a), "abs": abs, "round": round,
    "any": any, "all": all, "sorted": sorted, "range": lambda *a: _range(*a),
    "int": int, "float": float, "str": str, "bool": bool, "list": list,
    "sqrt": math.sqrt, "log": math.log, "exp": math.exp,
    "shell_quote": lambda value: shlex.quote(_text(value)),
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
MAX_ITEMS = 1_000_000
#: The longest expression source, and the deepest nesting of its syntax tree.
MAX_LENGTH = 4096
MAX_DEPTH = 64
#: A ``%`` conversion's flags, width and precision (``%-10.3f``, ``%*d``).
_CONVERSION = re.compile(r"%[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")


@dataclass(frozen=True)
class Budget:
    """What one evaluation may spend.

    Attributes:
        steps: syntax-tree nodes evaluated.
        size: items of any value built (nested items counted), or bits of an integer.
        seconds: wall time.
    """

    steps: int = 100_000
    size: int = MAX_ITEMS
    seconds: float = 2.0


DEFAULT_BUDGET = Budget()


class Expression:
    """A parsed expression: its source, the names it reads, and :meth:`evaluate`.

    Raises:
        ExpressionError: the text does not parse or uses what is not allowed.
    """

    def __init__(self, source: str) -> None:
        self.source = source.strip()
        if self.source.startswith("${") and self.source.endswith("}"):
            self.source = self.source[2:-1].strip()  # `${x}` where an expression is expected
        self._tree = _parse(self.source)
        self.names = frozenset(_check(self._tree, source))

    def evaluate(self, names: Mapping[str, Any], *, budget: Budget = DEFAULT_BUDGET) -> Any:
        """The expression's value, reading ``names`` (node outputs and parameters).

        Raises:
            ExpressionError: a name is missing, a key or index does not exist, a type is
                wrong (e.g. ``"a" > 1``), a number overflows, or the evaluation goes over
                ``budget``; one line that names the expression.
        """
        where = f"in {_short(self.source)}"
        try:
            return _Evaluator(names, budget).visit(self._tree.body)
        except ExpressionError as exc:
            raise ExpressionError(f"{where}: {exc}") from None
        except (TypeError, ValueError, LookupError, ArithmeticError) as exc:
            raise ExpressionError(f"{where}: {type(exc).__name__}: {_line(exc)}") from None
        except (RecursionError, MemoryError) as exc:
            raise ExpressionError(f"{where}: {type(exc).__name__}: too costly") from None

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


def _parse(source: str) -> ast.Expression:
    """The syntax tree of ``source``, if it is not too long or too deeply nested."""
    shown = _short(source)
    too_deep = ExpressionError(f"expression {shown} is nested more than {MAX_DEPTH} deep")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"expression {shown} is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        if "nested" in str(exc.msg):  # the parser's own limit on parentheses
            raise too_deep from None
        raise ExpressionError(f"expression {shown} does not parse: {exc.msg}") from None
    except (RecursionError, MemoryError):  # what the parser does with very deep nesting
        raise too_deep from None
    if _depth(tree) > MAX_DEPTH:
        raise too_deep
    return tree


def _depth(tree: ast.AST) -> int:
    """The deepest nesting of ``tree`` (without recursion: the tree may be very deep)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack += [(child, depth + 1) for child in ast.iter_child_nodes(node)]
    return deepest


def _short(source: str) -> str:
    return repr(source if len(source) <= 80 else source[:77] + "...")


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def _check_identifier(name: str, source: str) -> None:
    if name.startswith("_"):
        raise ExpressionError(f"expression {source!r}: names starting with '_' are not allowed")


class _Evaluator(ast.NodeVisitor):
    def __init__(self, names: Mapping[str, Any], budget: Budget) -> None:
        self.names = names
        self.budget = budget
        self.steps = 0
        self.deadline = time.monotonic() + budget.seconds
        self.sizes: _Sizes = {}  # each value measured once

    def visit(self, node: ast.AST) -> Any:
        self.steps += 1
        if self.steps > self.budget.steps:
            raise ExpressionError(f"more than {self.budget.steps} steps")
        if time.monotonic() > self.deadline:
            raise ExpressionError(f"more than {self.budget.seconds:g} seconds")
        value = super().visit(node)
        if isinstance(node, _BUILDS):  # values read from outputs are not ours to measure
            _check_value(value, self.budget.size, self.sizes)
        return value

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
        _check_operands(node.op, left, right, self.budget.size, self.sizes)
        value = _BINARY[type(node.op)](left, right)
        if isinstance(value, list):  # `+` or `*` of lists: its size is known without a look
            self.sizes[id(value)] = (_combined_size(left, right, self.sizes), value)
        return value

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


#: The nodes that build new values (the others read or pass on values built already).
_BUILDS = (ast.BinOp, ast.UnaryOp, ast.Call, ast.List, ast.Tuple, ast.Dict)


def _range(*args: int) -> list[int]:
    r = range(*args)
    if len(r) > MAX_ITEMS:
        raise ExpressionError(f"range of {len(r)} items is more than {MAX_ITEMS}")
    return list(r)


def _sum(items: Any, start: Any = 0) -> Any:
    """``sum``, in linear time for lists (the builtin copies the total at every item)."""
    if not isinstance(start, list):
        return sum(items, start)
    sizes: _Sizes = {}
    total, size = list(start), _size(start, sizes)
    for item in items:
        size += _size(item, sizes)
        if size > MAX_ITEMS:
            raise ExpressionError(f"a result longer than {MAX_ITEMS} is not allowed")
        total += item
    return total


def _check_operands(op: ast.operator, left: Any, right: Any, limit: int, sizes: _Sizes) -> None:
    """Refuse an operation whose result would be over ``limit``, before computing it."""
    if isinstance(op, ast.Pow) and isinstance(left, int) and isinstance(right, int):
        if right > 0 and abs(left) > 1 and (abs(left).bit_length() - 1) * right > limit:
            raise ExpressionError(f"the exponent {right} makes a number of more than {limit} bits")
    if isinstance(op, ast.Mult):
        seq, n = (left, right) if isinstance(left, str | list) else (right, left)
        if isinstance(seq, str | list) and isinstance(n, int) and _size(seq, sizes) * n > limit:
            raise ExpressionError(f"a result longer than {limit} is not allowed")
    if isinstance(op, ast.Mod) and isinstance(left, str):
        args = right if isinstance(right, list | tuple) else [right]
        for width in _widths(left, args):
            if width > limit:
                raise ExpressionError(f"a '%' width or precision of {width} is over {limit}")


def _combined_size(left: Any, right: Any, sizes: _Sizes) -> int:
    if isinstance(right, int):
        return _size(left, sizes) * right
    if isinstance(left, int):
        return _size(right, sizes) * left
    return _size(left, sizes) + _size(right, sizes)


def _widths(text: str, args: Sequence[Any]) -> list[int]:
    """The widths and precisions of the ``%`` conversions in ``text`` (``*`` takes an arg)."""
    found: list[int] = []
    stars = iter(a for a in args if isinstance(a, int))
    for match in _CONVERSION.finditer(text):
        for part in match.groups():
            if part == "*":
                found.append(abs(next(stars, 0)))
            elif part:
                found.append(int(part))
    return found


def _check_value(value: Any, limit: int, sizes: _Sizes) -> None:
    if isinstance(value, int) and value.bit_length() > limit:
        raise ExpressionError(f"a number of more than {limit} bits is not allowed")
    if isinstance(value, str | list | tuple | dict) and _size(value, sizes) > limit:
        raise ExpressionError(f"a result longer than {limit} is not allowed")


_SIZED = (str, list, tuple, dict)
#: Sizes measured, by the id of the value (kept with it, so that the id is not reused).
_Sizes = dict[int, tuple[int, Any]]


def _size(value: Any, sizes: _Sizes) -> int:
    """Items in ``value``, nested ones included (a list repeated by reference counts each
    time, but is measured once)."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, list | tuple | dict):
        return 1
    if id(value) not in sizes:
        items = list(value.values()) if isinstance(value, dict) else value
        nested = itertools.compress(items, map(isinstance, items, itertools.repeat(_SIZED)))
        sizes[id(value)] = (len(value) + sum(_size(v, sizes) for v in nested), value)
    return sizes[id(value)][0]


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
