"""``idds serve --api``: the HTTP API runs in a child process of the head, with the settings in
its environment (never on its command line), and goes when the head goes, even killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from service import free_port, start_service

from idds.config import Settings


def _api_child(head_pid: int) -> int:
    """The pid of the head's ``idds.api.process`` child."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == head_pid and b"idds.api.process" in argv:
            return int(entry.name)
    raise AssertionError(f"no API process under head {head_pid}")


def _gone(pid: int, within_s: float = 60.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":  # exited; its parent (killed) will not reap it
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def served(ray_address, tmp_path, monkeypatch):
    for var in ("IDDS_TOKEN", "IDDS_USER", "IDDS_URL", "IDDS_DB_URL"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'idds.db'}", ray_address=ray_address,
                        work_dir=tmp_path / "work")  # fmt: skip
    svc = start_service(settings, tmp_path / "serve.log")
    yield svc, settings
    svc.stop()


def test_the_api_runs_in_a_child_holding_no_secret_on_its_command_line(served):
    svc, settings = served
    child = _api_child(svc.proc.pid)
    argv = Path(f"/proc/{child}/cmdline").read_bytes()
    assert settings.db_url.encode() not in argv and b"idds_" not in argv
    env = dict(
        line.split(b"=", 1) for line in Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if b"=" in line
    )  # fmt: skip
    assert env[b"IDDS_DB_URL"] == settings.db_url.encode()
    assert b"IDDS_TOKEN" not in env  # it acts as each request's user, never as the head's
    assert svc.http("alice").get("/whoami").json() == {"name": "alice", "admin": True}


def test_the_api_goes_when_its_head_is_killed(served):
    svc, _ = served
    child = _api_child(svc.proc.pid)
    os.kill(svc.proc.pid, signal.SIGKILL)
    svc.proc.wait()
    assert _gone(child)
    with pytest.raises(httpx.HTTPError):
        httpx.get(svc.url + "/openapi.json", timeout=5)


def test_a_port_in_use_stops_the_head_with_one_line(ray_address, tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = {**os.environ, "IDDS_DB_URL": f"sqlite:///{tmp_path / 'idds.db'}"}
        done = subprocess.run(
            [sys.executable, "-m", "idds", "--ray-address", ray_address, "serve", "--api",
             f"127.0.0.1:{port}"], env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"error: the HTTP API did not start on 127.0.0.1:{port}" in done.stderr


def test_an_api_process_that_dies_is_started_again_on_its_port(served):
    svc, _ = served
    first = _api_child(svc.proc.pid)
    os.kill(first, signal.SIGKILL)  # a crash, or the kernel's OOM killer
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if svc.http("alice").get("/whoami").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        raise AssertionError("the API did not come back")
    assert _api_child(svc.proc.pid) != first
    assert svc.proc.poll() is None  # the head ran on meanwhile
    assert "HTTP API's process stopped" in Path(svc.log).read_text()
