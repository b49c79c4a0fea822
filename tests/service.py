"""``idds serve`` with its HTTP API, started for a test on a free loopback port.

The server is a real ``idds serve`` process (uvicorn, the heads, the session's Ray); the
tests act as its clients through ``IDDS_URL`` and tokens, and never open its database.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from idds import auth
from idds.config import Settings
from idds.db import connect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """A running ``idds serve``: its URL, the users' tokens, and settings to act as them."""

    url: str
    proc: subprocess.Popen[bytes]
    tokens: dict[str, str]
    base: Settings
    log: Path

    def settings(self, user: str | None) -> Settings:
        """Client settings acting as ``user`` (None: no token)."""
        token = self.tokens[user] if user else None
        return dataclasses.replace(self.base, url=self.url, token=token, db_url="sqlite:///nowhere")

    def http(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(
            base_url=self.url + "/api/v1", headers=headers, timeout=30, verify=False
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_service(
    settings: Settings, log: Path, users: tuple[str, ...] = ("alice", "bob"),
    tls: tuple[str, str] | None = None, env: dict[str, str] | None = None,
) -> Service:  # fmt: skip
    """Register ``users`` (the first an admin) and start ``idds serve`` on ``settings``'
    database and Ray; returns once its API answers."""
    engine = connect(settings.db_url)
    tokens = {}
    for i, name in enumerate(users):  # the first is an admin, who adds the others
        tokens[name] = auth.add_user(engine, auth.Actor(users[0], admin=True), name, admin=i == 0)
    engine.dispose()
    port = free_port()
    argv = [sys.executable, "-m", "idds", "--ray-address", str(settings.ray_address), "serve",
            "--api", f"127.0.0.1:{port}", "--poll", "0.3"]  # fmt: skip
    if tls:
        argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    full_env = {
        **os.environ, "IDDS_DB_URL": settings.db_url, "IDDS_WORK_DIR": str(settings.work_dir),
        "IDDS_TOKEN": tokens[users[0]] if users else "", "IDDS_LEASE_SECONDS": "6",
        **(env or {}),
    }  # fmt: skip
    out = log.open("wb")
    proc = subprocess.Popen(argv, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"idds serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            httpx.get(url + "/openapi.json", timeout=2, verify=False)
            break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError(f"idds serve did not answer: {log.read_text()[-2000:]}")
    return Service(url, proc, tokens, settings, log)
