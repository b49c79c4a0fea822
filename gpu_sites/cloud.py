"""Cloud site: an autoscaled Ray worker group (Ray cluster launcher or KubeRay) whose nodes
carry the site's label.

The adapter writes the worker group's configuration for the operator to apply (``ray up`` or
``kubectl apply``); the autoscaler then starts and stops the nodes. :meth:`CloudSite.submit`
asks the autoscaler for nodes through :func:`ray.autoscaler.sdk.request_resources`, and the
pilots are read from Ray's state: the site's alive nodes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from gpu_sites.capacity import site_nodes
from gpu_sites.errors import SiteError
from gpu_sites.site import Pilot, PilotSettings, Site


class CloudSettings(PilotSettings):
    """Cloud settings.

    Attributes:
        launcher: ``cluster-launcher`` (a ``ray up`` YAML) or ``kuberay`` (a RayCluster).
        cluster: the cluster launcher's top-level settings (``provider``, ``auth``,
            ``cluster_name`` ...), which the worker group is merged into.
        node_config: the provider's node settings (an instance type, an image ...).
        image: the container image of a KubeRay worker.
        output: where the configuration is written (the site's work dir by default).
    """

    launcher: Literal["cluster-launcher", "kuberay"] = "cluster-launcher"
    cluster: dict[str, Any] = Field(default_factory=dict)
    node_config: dict[str, Any] = Field(default_factory=dict)
    image: str = "rayproject/ray:latest-gpu"
    output: str | None = None


class CloudSite(Site):
    """An autoscaled worker group as a site."""

    kind = "cloud"
    Settings = CloudSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requested = 0

    def _resources(self) -> dict[str, float]:
        spec = self.spec
        return {
            "CPU": spec.slots * spec.cpus_per_slot,
            "GPU": spec.gpus_per_pilot,
            f"site:{spec.name}": spec.slots,
        }

    def node_type(self) -> dict[str, Any]:
        """The cluster launcher's entry for this site under ``available_node_types``."""
        spec = self.spec
        return {
            "resources": {k: v for k, v in self._resources().items() if v},
            "node_config": dict(self.settings.node_config),
            "min_workers": spec.min_pilots,
            "max_workers": spec.max_pilots,
        }

    def cluster_config(self) -> dict[str, Any]:
        """A whole ``ray up`` configuration: the ``cluster`` settings with this site's node
        type added (idle nodes are removed after the site's ``idle_s``)."""
        config = json.loads(json.dumps(self.settings.cluster))
        types = config.setdefault("available_node_types", {})
        types[f"site-{self.spec.name}"] = self.node_type()
        config["max_workers"] = max(config.get("max_workers", 0), self.spec.max_pilots)
        config["idle_timeout_minutes"] = max(math.ceil(self.spec.idle_s / 60), 1)
        return config

    def worker_group(self) -> dict[str, Any]:
        """A KubeRay ``workerGroupSpecs`` entry for this site."""
        spec = self.spec
        limits: dict[str, Any] = {"cpu": f"{spec.slots * spec.cpus_per_slot:g}"}
        if spec.gpus_per_pilot:
            limits["nvidia.com/gpu"] = spec.gpus_per_pilot
        start = {
            "resources": json.dumps({f"site:{spec.name}": spec.slots}),
            "num-cpus": f"{spec.slots * spec.cpus_per_slot:g}",
            "num-gpus": str(spec.gpus_per_pilot),
        }
        container = {"name": "ray-worker", "image": self.settings.image,
                     "resources": {"limits": limits, "requests": dict(limits)}}  # fmt: skip
        return {
            "groupName": f"site-{spec.name}",
            "replicas": spec.min_pilots,
            "minReplicas": spec.min_pilots,
            "maxReplicas": spec.max_pilots,
            "rayStartParams": start,
            "template": {"spec": {"containers": [container]}},
        }

    def write_config(self) -> Path:
        """Write the configuration the operator applies; returns its path."""
        kuberay = self.settings.launcher == "kuberay"
        default = self.work_dir / ("worker-group.yaml" if kuberay else "cluster.yaml")
        path = Path(self.settings.output) if self.settings.output else default
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"workerGroupSpecs": [self.worker_group()]} if kuberay else self.cluster_config()
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def submit(self, count: int) -> list[str]:
        """Ask the autoscaler for ``count`` more of this site's nodes."""
        from ray.autoscaler.sdk import request_resources

        first = self._requested
        self._requested += count
        request_resources(bundles=[self._resources()] * self._requested)
        return [f"request-{i}" for i in range(first, self._requested)]

    def pilots(self) -> list[Pilot]:
        import ray

        if not ray.is_initialized():
            raise SiteError(f"site {self.name!r}: its pilots are Ray nodes: give --ray-address")
        nodes = site_nodes().get(self.name, [])
        joined = [Pilot(self.name, n.node_id, "running") for n in nodes]
        waiting = max(self._requested - len(nodes), 0)
        return joined + [Pilot(self.name, f"request-{i}", "pending") for i in range(waiting)]

    def cancel(self, refs: list[str]) -> None:
        """Lower the request; the autoscaler removes the nodes once idle."""
        from ray.autoscaler.sdk import request_resources

        self._requested = max(len(self.pilots()) - len(refs), 0)
        request_resources(bundles=[self._resources()] * self._requested)
