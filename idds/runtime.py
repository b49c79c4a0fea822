"""Ray, started on demand: a local instance by default, or an existing cluster joined."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Any

from idds.errors import IddsError

log = logging.getLogger("idds.runtime")


def ensure_ray(address: str | None = None, *, tries: int = 3, backoff_s: float = 1.0) -> None:
    """Connect this process to Ray once; a start that fails (a busy host: "node timed out
    during startup") is tried again, ``tries`` times in all, with a doubling pause between.

    Args:
        address: a cluster to join (``host:port`` or ``auto``); ``None`` starts a local Ray on
            free ports (never the default port 6379, which other services may hold).
        tries: how many times to try.
        backoff_s: the first pause between tries.

    Raises:
        IddsError: Ray did not start, or the cluster at ``address`` did not answer, at any try
            (one line).
    """
    _quiet_kernel_exit()
    import ray

    from idds import logs

    logs.settle()  # Ray's chatter to the log file, where a command asked for that
    if ray.is_initialized():
        return
    for attempt in range(1, tries + 1):
        try:
            _init(ray, address)
            return
        except Exception as exc:  # Ray raises a plain Exception when its node times out
            lines = str(exc).strip().splitlines()
            why = lines[0] if lines else type(exc).__name__
            _shutdown(ray)  # a half-started Ray would make the next try fail at once
        if attempt < tries:
            log.info("starting Ray failed (%s); trying again", why)
            time.sleep(backoff_s * 2 ** (attempt - 1))
    raise IddsError(f"cannot start or join Ray at {address or 'local'} ({tries} tries): {why}")


def _quiet_kernel_exit() -> None:
    """In a notebook kernel, keep Ray from printing a C++ stack trace when Jupyter stops the
    kernel with SIGTERM (as it does with one that does not exit at once); Ray reads this
    when it is imported."""
    if "ipykernel" in sys.modules:
        os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")


def _init(ray: Any, address: str | None) -> None:
    options = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        ray.init(address=address, **options)
    else:
        from idds import secrets

        # "local": a new instance, never a cluster `ray start` left on this host; its
        # workers inherit the environment it starts with, which holds no credentials
        with secrets.hidden():
            ray.init(address="local", _node_ip_address="127.0.0.1", **options)


def _shutdown(ray: Any) -> None:
    with contextlib.suppress(Exception):
        ray.shutdown()
