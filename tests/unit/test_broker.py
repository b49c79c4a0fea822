"""The local broker turns a task's resources into Ray options (GPUs, fractional ones too)."""

from __future__ import annotations

from idds.dispatch import LocalBroker
from idds.tasks import Claim


def _claim(resources):
    return Claim(
        task_id=1, owner_id=1, number=0, attempt=1, token="t", payload={}, resources=resources,
        site=None, timeout_s=None, max_attempts=1, retry_errors=False,
    )  # fmt: skip


def test_gpus_and_memory_become_ray_options():
    placement = LocalBroker().place(_claim({"cpus": 2, "gpus": 0.5, "memory_gb": 1}))
    assert placement.site == "local"
    assert placement.ray_options == {"num_cpus": 2.0, "num_gpus": 0.5, "memory": 2**30}


def test_no_gpu_asked_means_no_gpu_option():
    assert LocalBroker().place(_claim({})).ray_options == {"num_cpus": 1.0}
