"""Node callables the workflow tests run on Ray workers; each appends to a log what it did,
so that tests count executions (side effects), not rows."""

from __future__ import annotations

import json
import time
from pathlib import Path


def _note(log: str, what: str) -> None:
    with open(log, "a") as f:
        f.write(json.dumps(what) + "\n")


def make(n: int, log: str) -> list[int]:
    _note(log, "make")
    return list(range(n))


def square(x: int, log: str, sleep: float = 0.0) -> int:
    time.sleep(sleep)
    _note(log, f"square{x}")
    return x * x


def total(square: list[int], log: str) -> int:
    _note(log, "total")
    return sum(square)


def needs_flag(flag: str, log: str) -> str:
    """Fails until the file ``flag`` exists (a bug fixed by hand)."""
    _note(log, "needs_flag")
    if not Path(flag).exists():
        raise RuntimeError(f"{flag} is missing")
    return "fixed"


def write_model(log: str) -> float:
    _note(log, "write_model")
    Path("model.txt").write_text("weights")
    return 0.5


def uses(fragile: str, log: str) -> str:
    """Gets its upstream node's output by that node's name."""
    _note(log, "uses")
    return f"used {fragile}"
