"""The training-script SDK: what an evaluation asks of the study it belongs to.

Works in a Python objective run by the platform and in a script run as a command payload
(which finds its point in ``input.json``, named by ``IDDS_INPUT``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from idds.errors import IddsError
from idds.payloads import current


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


def checkpoint_dir() -> Path:
    """A directory kept between the attempts of this point (for a pre-empted job to resume).

    Raises:
        IddsError: not called from an evaluation run by the platform.
    """
    payload = current.get("payload")
    workdir = payload.get("workdir") if payload else os.environ.get("IDDS_WORKDIR")
    if not workdir:
        raise IddsError("hpo.checkpoint_dir(): not inside an evaluation run by idds")
    path = Path(workdir) / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path
