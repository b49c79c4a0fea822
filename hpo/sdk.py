"""The training-script SDK: what an evaluation asks of the study it belongs to.

Works in a Python objective run by the platform and in a script run as a command payload
(which finds its point in ``input.json``, named by ``IDDS_INPUT``, in its work dir, named by
``IDDS_TASK_DIR``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from idds.commands import PRUNE, REPORTS
from idds.errors import IddsError
from idds.payloads import Stopped as Pruned
from idds.payloads import channel, current

__all__ = ["Pruned", "checkpoint_dir", "params", "report", "segment", "should_prune"]


def params() -> dict[str, Any]:
    """The point this evaluation runs.

    Raises:
        IddsError: not called from an evaluation run by the platform.
    """
    payload = current.get("payload")
    if payload is not None:
        return dict(payload["args"][0]) if "args" in payload else dict(payload["input"])
    path = os.environ.get("IDDS_INPUT")
    if path:
        return dict(json.loads(Path(path).read_text()))
    raise IddsError("hpo.params(): not inside an evaluation run by idds")


def segment() -> str | None:
    """The name of the segment this evaluation serves (a segmented study's segment, e.g.
    ``"net7"`` of segments ``net0`` ... ``net299``), or None for a study without segments.

    A script run as a command reads the same from ``segment`` in its ``input.json``.

    Raises:
        IddsError: not called from an evaluation run by the platform.
    """
    payload = current.get("payload")
    if payload is not None:
        name = payload.get("segment", (payload.get("input") or {}).get("segment"))
        return None if name is None else str(name)
    path = os.environ.get("IDDS_INPUT")
    if path:
        name = json.loads(Path(path).read_text()).get("segment")
        return None if name is None else str(name)
    raise IddsError("hpo.segment(): not inside an evaluation run by idds")


def checkpoint_dir() -> Path:
    """A directory kept between the attempts of this point (for a pre-empted job to resume).

    Raises:
        IddsError: not called from an evaluation run by the platform.
    """
    payload = current.get("payload")
    workdir = payload.get("workdir") if payload else _task_dir()
    if not workdir:
        raise IddsError("hpo.checkpoint_dir(): not inside an evaluation run by idds")
    path = Path(workdir) / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def report(step: int, value: float) -> None:
    """Report the value reached at ``step`` (an intermediate value, used by the pruner).

    Raises:
        IddsError: not called from a Python objective run by the platform.
    """
    step, value = int(step), float(value)
    if _in_command():  # the runner relays the file's lines to the head
        with (Path(_task_dir() or ".") / REPORTS).open("a") as f:
            f.write(json.dumps({"step": step, "value": value}) + "\n")
        return
    token = _token("report")
    current["last_report"] = {"step": step, "value": value}
    current.setdefault("reports", []).append((step, value))
    channel().report.remote(token, step, value)


def should_prune() -> bool:
    """Whether the study's pruner advises this evaluation to stop now; if so, ``raise
    hpo.Pruned()`` (the last reported value is recorded, and the slot is freed at once). A
    script run as a command may simply exit.

    The advice follows the reports by a fraction of a second.
    """
    if _in_command():
        return (Path(_task_dir() or ".") / PRUNE).exists()
    import ray

    token = _token("should_prune")
    try:
        return bool(ray.get(channel().should_prune.remote(token), timeout=30))
    except (ray.exceptions.RayError, ValueError):  # no advice to be had: train on
        return False


def _in_command() -> bool:
    """Whether this is a script run as a command payload (not a Python objective)."""
    return not current.get("token") and bool(_task_dir())


def _task_dir() -> str | None:
    """The work dir of the command this script runs in (``IDDS_TASK_DIR``), or None.

    ``IDDS_WORKDIR``, its name before, is read too, so that a script started by an earlier
    release keeps working.
    """
    return os.environ.get("IDDS_TASK_DIR") or os.environ.get("IDDS_WORKDIR")


def _token(what: str) -> str:
    token = current.get("token")
    if not token:
        raise IddsError(f"hpo.{what}(): only inside a Python objective run by idds")
    return str(token)
