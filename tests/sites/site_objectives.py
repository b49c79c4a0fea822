"""Objectives the sites tests evaluate on pilots (imported on their Ray workers)."""

from __future__ import annotations

import os
import time

#: Seconds one evaluation takes.
EVAL_S = float(os.environ.get("IDDS_TEST_EVAL_S", "0.5"))


def on_gpu(params: dict) -> float:
    """Needs the GPU Ray gave it; fails on a site whose pilots are marked broken."""
    import ray

    if os.environ.get("IDDS_TEST_BROKEN_SITE"):
        raise RuntimeError("this site's GPUs are broken")
    if not ray.get_gpu_ids():
        raise RuntimeError("no GPU was given to this evaluation")
    time.sleep(params.get("sleep", EVAL_S))
    return (params["x"] - 1.0) ** 2
