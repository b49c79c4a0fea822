"""What the racing-heads test runs: each execution appends one line to a log, naming what ran
and the attempt that ran it (its token), so that the test counts side effects, not rows."""

from __future__ import annotations

import json
import time

from idds.payloads import current


def _note(log: str, what: object) -> None:
    with open(log, "a") as f:
        f.write(json.dumps({"what": what, "token": current.get("token")}) + "\n")


def evaluate(params: dict) -> float:
    """A study's objective: sleeps, notes its point, returns a value."""
    time.sleep(params["sleep"])
    _note(params["log"], params["x"])
    return params["x"] ** 2


def node(i: int, log: str, sleep: float) -> int:
    """A workflow node: sleeps, notes its index, returns it."""
    time.sleep(sleep)
    _note(log, i)
    return i
