"""Objectives that break the database under the head that runs them (imported on Ray workers)."""

from __future__ import annotations

import contextlib
import os
import time


def deletes_db_after(params: dict) -> float:
    """Counts its executions in ``params['log']``; the ``params['after']``-th one deletes the
    SQLite file ``params['db']`` (with its WAL and shared-memory files), as ``rm`` would, and
    notes when in ``params['log'] + '.deleted'``."""
    with open(params["log"], "a") as f:
        f.write("x\n")
    with open(params["log"]) as f:
        runs = len(f.read().splitlines())
    if runs == params["after"]:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(params["db"] + suffix)
        with open(params["log"] + ".deleted", "w") as f:
            f.write(str(time.time()))
    return (params["x"] - 1.0) ** 2
