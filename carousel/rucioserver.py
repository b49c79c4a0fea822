"""A Rucio server for tests and benchmarks: the ``rucio`` package's Flask application under
gunicorn on a free loopback port, on its own PostgreSQL database, bootstrapped with a root
account (userpass identity), the campaign's scope, a tape RSE and a disk buffer RSE.

The server lives in its own virtual environment (``IDDS_RUCIO_VENV``, by default
``~/.cache/idds/rucio-server``; ``.ci/run`` creates it): its pins (SQLAlchemy 2.0, an older
alembic, urllib3 1.26) conflict with this project's. The tests talk to it through
``rucio-clients`` only. What cannot run here is the part that moves bytes (FTS and Rucio's
conveyor daemons); :class:`carousel.tapeplayer.TapePlayer` plays it.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carousel.catalog import Catalog

VENV = Path(os.environ.get("IDDS_RUCIO_VENV", Path.home() / ".cache/idds/rucio-server"))
PG = os.environ.get("IDDS_TEST_RUCIO_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
USER, PASSWORD = "ddmlab", "secret"
TAPE, BUFFER = "CAROUSEL_TAPE", "CAROUSEL_BUFFER"

_CFG = """\
[common]
logdir = {d}
loglevel = WARNING
[client]
rucio_host = http://127.0.0.1:{port}
auth_host = http://127.0.0.1:{port}
auth_type = userpass
username = {user}
password = {password}
account = root
request_retries = 1
[database]
default = {db}
pool_size = 5
[bootstrap]
userpass_identity = {user}
userpass_pwd = {password}
[alembic]
cfg = {d}/alembic.ini
[policy]
permission = generic
schema = generic
lfn2pfn_algorithm_default = hash
"""

_ALEMBIC = """\
[alembic]
script_location = rucio.db.sqla:migrate_repo
sqlalchemy.url = {db}
[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = plain
[logger_root]
level = WARN
handlers = console
[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = plain
[formatter_plain]
format = %%(levelname)s %%(message)s
"""

_BOOT = (
    "from rucio.db.sqla.util import build_database, create_base_vo, create_root_account\n"
    "build_database()\n"
    "create_base_vo()\n"
    "create_root_account()\n"
)


@dataclass
class RucioServer:
    """A running server: its config (for ``RUCIO_CONFIG``), URL and process."""

    config: Path
    url: str
    process: subprocess.Popen[bytes]
    database: str

    def client(self) -> Any:
        """A client logged in as root with the userpass identity."""
        from rucio.client import Client

        return Client(
            rucio_host=self.url, auth_host=self.url, account="root", auth_type="userpass",
            creds={"username": USER, "password": PASSWORD},
        )  # fmt: skip


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing() -> str | None:
    """Why a Rucio server cannot be started here, or None."""
    python = VENV / "bin" / "python"
    if not python.exists():
        return f"no Rucio server environment at {VENV} (.ci/run creates it; see tests/README.md)"
    code = "import rucio.web.rest.flaskapi.v1.main, gunicorn"
    env = {**os.environ, "RUCIO_CONFIG": "/dev/null", "PYTHONPATH": ""}
    probe = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    if probe.returncode and "ModuleNotFoundError" in probe.stderr:
        why = probe.stderr.splitlines()[-1]
        return f"the rucio server package is not installed in {VENV}: {why}"
    try:
        import rucio.client  # noqa: F401
    except ImportError:
        return "rucio-clients is not installed (pip install -e '.[rucio]')"
    return None


def _sql(db: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(PG.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(statement.replace("{db}", db))


_starts = itertools.count()


def start(root: Path) -> RucioServer:
    """Create a fresh database, bootstrap it and start the server under ``root``.

    Raises:
        RuntimeError: a step failed (its output is in the message).
    """
    database = f"rucio_test_{os.getpid()}_{next(_starts)}"
    _sql(database, 'DROP DATABASE IF EXISTS "{db}"')
    _sql(database, 'CREATE DATABASE "{db}"')
    db, port = f"{PG}/{database}", free_port()
    cfg = root / "rucio.cfg"
    fields = {"d": root, "port": port, "user": USER, "password": PASSWORD, "db": db}
    cfg.write_text(_CFG.format(**fields))
    (root / "alembic.ini").write_text(_ALEMBIC.format(db=db))
    env = {**os.environ, "RUCIO_CONFIG": str(cfg), "PYTHONPATH": ""}
    boot = subprocess.run([VENV / "bin/python", "-c", _BOOT], env=env, capture_output=True,
                          text=True, cwd=root)  # fmt: skip
    if boot.returncode:
        raise RuntimeError(f"Rucio bootstrap failed: {boot.stderr[-2000:]}")
    with open(root / "server.log", "w") as log:  # the server keeps its own copy of the fd
        process = _gunicorn(port, env, log, root)
    url = f"http://127.0.0.1:{port}"
    server = RucioServer(cfg, url, process, database)
    _wait(server, root / "server.log")
    return server


def _gunicorn(port: int, env: dict[str, str], log: Any, root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [VENV / "bin/gunicorn", "-b", f"127.0.0.1:{port}", "-w", "2", "--threads", "4",
         "--no-control-socket", "rucio.web.rest.flaskapi.v1.main:application"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True,
    )  # fmt: skip


def _wait(server: RucioServer, log: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the Rucio server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(server.url + "/ping", timeout=2) as reply:  # noqa: S310
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    stop(server)
    raise RuntimeError(f"the Rucio server did not answer within {timeout_s:g} s")


def stop(server: RucioServer) -> None:
    """Stop the server (its process group) and drop its database."""
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.process.pid, signal.SIGKILL)
    _sql(server.database, 'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def bootstrap(client: Any, scope: str, *, buffer_bytes: float = 1e18) -> None:
    """The campaign's Rucio side: its scope, a tape RSE and a disk buffer RSE, and root's
    quota on the buffer. Idempotent per scope."""
    from rucio.common.exception import Duplicate

    for rse, kind in ((TAPE, "TAPE"), (BUFFER, "DISK")):
        try:
            client.add_rse(rse, rse_type=kind, deterministic=True)
        except Duplicate:
            continue
    client.set_local_account_limit("root", BUFFER, int(buffer_bytes))
    try:
        client.add_scope("root", scope)
    except Duplicate:
        pass


def register(client: Any, catalog: Catalog, *, chunk: int = 1000) -> None:
    """Register ``catalog``'s files and datasets: each dataset holds its files; each file
    has an available replica on the tape RSE."""
    by_dataset = catalog.dataset_files()
    for d, files in enumerate(by_dataset):
        scope, _, name = catalog.dataset_names[d].partition(":")
        client.add_dataset(scope, name)
        for i in range(0, len(files), chunk):
            dids = [_file(catalog, f) for f in files[i : i + chunk]]
            client.add_replicas(TAPE, dids)
            client.add_files_to_dataset(
                scope, name, [{"scope": x["scope"], "name": x["name"]} for x in dids]
            )


def _file(catalog: Catalog, f: int) -> dict[str, Any]:
    scope, _, name = catalog.names[f].partition(":")
    return {"scope": scope, "name": name, "bytes": int(catalog.sizes[f]), "adler32": "00000001"}


_names = iter(range(1, 10**6))


def unique_scope(prefix: str = "c") -> str:
    """A scope no earlier campaign of this process used (Rucio refuses a second rule of one
    account on one DID and RSE, so each test stages its own files)."""
    return f"{prefix}{os.getpid() % 10000}x{next(_names)}"
