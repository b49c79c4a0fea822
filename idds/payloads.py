"""What a task runs, and the Ray function that runs it on a worker.

A payload is a JSON object. The core knows one form: ``{"callable": "module:function",
"args": [...], "kwargs": {...}, "pythonpath": [...]}``: the function is imported on the
worker (after the ``pythonpath`` entries are put first on ``sys.path``) and called; its return
value is the result. Capability packages build their payloads on this form.
"""

from __future__ import annotations

import importlib
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from idds.errors import SpecError


def load_callable(path: str, pythonpath: list[str] | tuple[str, ...] = ()) -> Callable[..., Any]:
    """Import ``module:function`` (``pythonpath`` entries first on ``sys.path``).

    Raises:
        SpecError: the reference is malformed, the module does not import or has no such
            callable. The message is one line.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise SpecError(f"{path!r} is not of the form module:function")
    for entry in reversed(pythonpath):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code
        raise SpecError(f"module {module_name!r} does not import: {_one_line(exc)}") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if not callable(obj):
        raise SpecError(f"module {module_name!r} has no callable {attr!r}")
    return obj  # type: ignore[no-any-return]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class StartBoard:
    """Collects the notices of attempts that started on workers (one Ray actor per head).

    Workers post to it without waiting; the head drains it when it has time, and marks those
    attempts ``running``.
    """

    def __init__(self) -> None:
        self._notes: list[tuple[str, str, float]] = []

    def started(self, token: str, node: str, when: float) -> None:
        self._notes.append((token, node, when))

    def drain(self) -> list[tuple[str, str, float]]:
        notes, self._notes = self._notes, []
        return notes


def run_payload(
    payload: dict[str, Any], board: Any = None, token: str | None = None
) -> dict[str, Any]:
    """Run a payload here and say how it went; never raises for the payload's own errors.

    Args:
        payload: what to run.
        board: a :class:`StartBoard` actor to tell that the attempt ``token`` has started.

    Returns:
        ``{"ok": True, "value": ...}`` or ``{"ok": False, "error": traceback}``, with the
        node's host name and the start time.
    """
    started = time.time()
    node = socket.gethostname()
    if board is not None:
        board.started.remote(token, node, started)
    report: dict[str, Any] = {"node": node, "started": started}
    try:
        fn = load_callable(payload["callable"], payload.get("pythonpath", ()))
        value = fn(*payload.get("args", ()), **payload.get("kwargs", {}))
    except Exception:  # the payload's failure is a result to record, not ours to raise
        report.update(ok=False, error=traceback.format_exc())
    else:
        report.update(ok=True, value=value)
    return report
