"""Payloads that say which Ray node ran them, for the tests on a multi-node cluster."""

from __future__ import annotations

import time


def ray_node() -> str:
    """The id of the Ray node this runs on."""
    import ray

    return ray.get_runtime_context().get_node_id()


def where(params: dict) -> dict:
    """An objective: x**2, with the Ray node that ran it in the trial's user attributes."""
    time.sleep(params.get("sleep", 0.0))
    return {"value": params["x"] ** 2, "user_attrs": {"ray_node": ray_node()}}


def node_of(index: int, sleep: float = 0.0) -> str:
    """A workflow node's callable: the Ray node that ran it."""
    time.sleep(sleep)
    return ray_node()
