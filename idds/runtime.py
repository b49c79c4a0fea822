"""Ray, started on demand: a local instance by default, or an existing cluster joined."""

from __future__ import annotations

import logging

from idds.errors import IddsError


def ensure_ray(address: str | None = None) -> None:
    """Connect this process to Ray once.

    Args:
        address: a cluster to join (``host:port`` or ``auto``); ``None`` starts a local Ray on
            free ports (never the default port 6379, which other services may hold).

    Raises:
        IddsError: the cluster at ``address`` does not answer.
    """
    import ray

    if ray.is_initialized():
        return
    options = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **options)  # type: ignore[arg-type]
        else:
            # "local": a new instance, never a cluster `ray start` left on this host
            ray.init(address="local", _node_ip_address="127.0.0.1", **options)  # type: ignore[arg-type]
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IddsError(f"cannot start or join Ray at {address or 'local'}: {first}") from None
