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
@click.option("--url", help="Read through this `idds serve` HTTP API, with each visitor's token, "
              "and open no database (the global --url or IDDS_URL otherwise).")  # fmt: skip
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True,
              help="Port to serve on.")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")  # fmt: skip
@click.pass_obj
def dashboard(
    settings: Settings | None, db_url: str | None, url: str | None, port: int, host: str
) -> None:
    """Serve the dashboard: studies (and each capability that exists) in a browser."""
    settings = settings or Settings.from_env()
    if db_url:
        settings = dataclasses.replace(settings, db_url=db_url)
    if url:
        settings = dataclasses.replace(settings, url=url)
    _check_source(settings)
    _check_port(host, port)
    env = _env(settings)
    where = f"server {settings.url}" if settings.url else f"database {redact(settings.db_url)}"
    click.echo(f"dashboard: http://{host}:{port} ({where})")
    sys.stdout.flush()
    # This process becomes Streamlit's, so a signal to it (Ctrl-C, a service manager's
    # SIGTERM) stops the server itself.
    os.execve(sys.executable, _argv(host, port), env)  # noqa: S606 - fixed argv, no shell


def _check_source(settings: Settings) -> None:
    """Raises:
    IddsError: the database (embedded mode) or the server (service mode) does not answer.
    """
    if not settings.url:
        connect(settings.db_url).dispose()
        return
    import httpx

    from idds.client import Api

    try:  # any answer will do: each visitor signs in with a token of their own
        Api(dataclasses.replace(settings, token=None)).http.get("/now")
    except httpx.HTTPError as exc:
        raise IddsError(f"the iDDS server at {settings.url} does not answer: {exc}") from None


def _env(settings: Settings) -> dict[str, str]:
    """Streamlit's environment: the settings' database, or in service mode its server and no
    database URL nor token at all (each visitor acts with their own)."""
    env = {**os.environ, "IDDS_WORK_DIR": str(settings.work_dir.resolve())}
    if settings.url:
        env["IDDS_URL"] = settings.url
        for name in ("IDDS_DB_URL", "IDDS_TOKEN"):
            env.pop(name, None)
        if settings.ca_bundle:
            env["IDDS_CA_BUNDLE"] = settings.ca_bundle
    else:
        env["IDDS_DB_URL"] = settings.db_url
    if settings.ray_address:  # the Sites page reads a cloud site's pilots from Ray
        env["IDDS_RAY_ADDRESS"] = settings.ray_address
    return env


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
