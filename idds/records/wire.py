"""The records' views as JSON, and back: what the HTTP API sends and its client reads."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import TypeAdapter

T = TypeVar("T")


_adapters: dict[Any, TypeAdapter[Any]] = {}


def _adapter(cls: Any) -> TypeAdapter[Any]:
    if cls not in _adapters:
        _adapters[cls] = TypeAdapter(cls)
    return _adapters[cls]


def dump(view: Any) -> Any:
    """``view`` (a view, or a list or dict of views) as JSON-able data."""
    if isinstance(view, list):
        return [dump(v) for v in view]
    if isinstance(view, dict):
        return {str(k): dump(v) for k, v in view.items()}
    if hasattr(view, "__dataclass_fields__"):
        return _adapter(type(view)).dump_python(view, mode="json")
    return view


def load(cls: type[T], data: Any) -> T:
    """A view of class ``cls`` from what :func:`dump` made of one."""
    value: T = _adapter(cls).validate_python(data)
    return value
