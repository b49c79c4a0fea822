"""``idds dashboard``: serve the Streamlit app on a port, reading the given database."""

from __future__ import annotations

import dataclasses
import os
import socket
import sys

import click

from dashboard import APP
from idds.config import Settings
from idds.db import connect, redact
from idds.errors import IddsError


@click.command("dashboard")
@click.option("--db", "db_url", help="Database URL (the global --db or IDDS_DB_URL otherwise).")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True,
              help="Port to serve on.")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")  # fmt: skip
@click.pass_obj
def dashboard(settings: Settings | None, db_url: str | None, port: int, host: str) -> None:
    """Serve the dashboard: studies (and each capability that exists) in a browser."""
    settings = settings or Settings.from_env()
    if db_url:
        settings = dataclasses.replace(settings, db_url=db_url)
    connect(settings.db_url).dispose()  # a database that does not answer: one line, exit 1
    _check_port(host, port)
    env = {**os.environ, "IDDS_DB_URL": settings.db_url,
           "IDDS_WORK_DIR": str(settings.work_dir.resolve())}  # fmt: skip
    if settings.ray_address:  # the Sites page reads a cloud site's pilots from Ray
        env["IDDS_RAY_ADDRESS"] = settings.ray_address
    click.echo(f"dashboard: http://{host}:{port} (database {redact(settings.db_url)})")
    sys.stdout.flush()
    # This process becomes Streamlit's, so a signal to it (Ctrl-C, a service manager's
    # SIGTERM) stops the server itself.
    os.execve(sys.executable, _argv(host, port), env)  # noqa: S606 - fixed argv, no shell


def _argv(host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
    ]  # fmt: skip


def _check_port(host: str, port: int) -> None:
    """Raises:
    IddsError: something listens on that port already (Streamlit would pick another one).
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise IddsError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
