"""What each site offers now, read from Ray's state: its joined pilots and their busy slots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpu_sites.site import PIN


@dataclass(frozen=True)
class NodeView:
    """One alive Ray node of a site.

    Attributes:
        node_id: Ray's node id.
        site: the site's name.
        pilot: the pilot's ref (``None`` for a node without one, e.g. a cloud worker).
        running: how many tasks pinned to the site run on it now.
        gpus: GPUs the node declares.
    """

    node_id: str
    site: str
    pilot: str | None
    running: int
    gpus: float


def site_nodes() -> dict[str, list[NodeView]]:
    """The alive nodes of every site, by site name (this process must have joined Ray)."""
    import ray

    available = _available_per_node()
    out: dict[str, list[NodeView]] = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        view = _node_view(node, available.get(node["NodeID"]))
        if view is not None:
            out.setdefault(view.site, []).append(view)
    return out


def _node_view(node: dict[str, Any], available: dict[str, float] | None) -> NodeView | None:
    total = node.get("Resources", {})
    sites = [k.removeprefix("site:") for k in total if k.startswith("site:")]
    if not sites:
        return None
    site = sites[0]
    pilots = [k.rsplit(":", 1)[1] for k in total if k.startswith(f"pilot:{site}:")]
    used = total[f"site:{site}"] - (available or total).get(f"site:{site}", 0.0)
    return NodeView(
        node_id=node["NodeID"],
        site=site,
        pilot=pilots[0] if pilots else None,
        running=max(round(used / PIN), 0),
        gpus=float(total.get("GPU", 0.0)),
    )


def _available_per_node() -> dict[str, dict[str, float]]:
    """Each node's free resources. Ray exposes these only through its state module; where
    that is missing, nodes read as idle."""
    try:
        from ray._private.state import available_resources_per_node

        return dict(available_resources_per_node())
    except (ImportError, AttributeError, RuntimeError):
        return {}
