"""The HTTP API in a process of its own, beside the head that ``idds serve`` runs.

The head (:class:`idds.serve.ApiServer`) starts ``python -m idds.api.process`` with its
settings in the environment (``IDDS_*``: the database URL may hold a password, and a command
line is public to every user of the host) and where to listen in ``IDDS_API_LISTEN`` (JSON:
host, port, TLS files, the owner kinds clients may create). The child writes the port it
listens on to the pipe ``IDDS_API_READY_FD`` once it does (nothing, and a non-zero exit, where
it cannot), and stops on SIGTERM or SIGINT, or when its standard input closes: the head is
gone, even killed, so the API never outlives it.

Its own process keeps requests from taking the head's interpreter (its GIL) from the loop
that starts and reaps owners, and the other way round; and it runs at a lower CPU priority
(:data:`NICE`), so that on a busy host the heads that run studies, workflows and scans go
first and requests take what CPU is left (on an idle host, all of it).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from idds.config import Settings

LISTEN = "IDDS_API_LISTEN"
READY_FD = "IDDS_API_READY_FD"
#: How much lower than the head's the API's CPU priority is: on a busy host the heads (and
#: Ray's own processes) go first and requests wait; not the lowest, so that requests are
#: still served while other processes of the host keep its CPUs busy.
NICE = 10


def child_env(settings: Settings, listen: dict[str, Any], ready_fd: int) -> dict[str, str]:
    """The environment of the API's process: this one's, with ``settings`` as ``IDDS_*``
    variables (less the head's token: the API acts as each request's user, never as the
    head's), where to listen and the pipe to say it listens on."""
    from idds.config import settings_env

    env = {**os.environ, **settings_env(settings)}
    env.pop("IDDS_TOKEN", None)
    env[LISTEN] = json.dumps(listen)
    env[READY_FD] = str(ready_fd)
    return env


def main() -> int:
    """The API's process: serve until told to stop or the head is gone.

    Returns:
        The exit code: 0 once it served, 1 where it could not start (the port in use ...).
    """
    import uvicorn

    from idds.api import make_app
    from idds.config import Settings

    os.nice(NICE)  # the heads and their evaluations first; requests take what CPU is left
    listen = json.loads(os.environ.pop(LISTEN))
    ready = int(os.environ.pop(READY_FD))
    kinds = listen.get("kinds")
    app = make_app(Settings.from_env(), kinds=None if kinds is None else frozenset(kinds))
    config = uvicorn.Config(
        app, host=listen["host"], port=listen["port"], ssl_certfile=listen.get("tls_cert"),
        ssl_keyfile=listen.get("tls_key"), log_level="warning", access_log=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    threading.Thread(target=_say_ready, args=(server, ready), daemon=True).start()
    threading.Thread(target=_follow_head, args=(server,), daemon=True).start()
    server.run()
    return 0 if server.started else 1


def _say_ready(server: Any, fd: int) -> None:
    """Write the port to ``fd`` once ``server`` listens (the head waits for it)."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    os.write(fd, f"{port}\n".encode())
    os.close(fd)


def _follow_head(server: Any) -> None:
    """Stop when standard input closes (the head, whose pipe it is, is gone)."""
    sys.stdin.buffer.read()
    server.should_exit = True
    time.sleep(10)  # requests in flight end; past that, go anyway
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
