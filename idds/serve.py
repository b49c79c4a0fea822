"""``idds serve``: a long-lived head that runs every active owner no live head holds.

Several heads may serve one database (PostgreSQL): each takes free owners up to its limit,
and an owner whose head died (its lease ran out, or its process on this host is gone) is
taken by the next head that looks. Each owner runs in a child process of its own, as the
capability's ``resume`` command; capability packages name that command for their owner kinds
through the ``idds.resume`` entry-point group (``study = "hpo.cli:RESUME"``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from idds.db import connect, reason
from idds.owners import OwnerState, lease_alive
from idds.records import OwnerRecord, Records

if TYPE_CHECKING:
    from idds.config import Settings

log = logging.getLogger("idds.serve")


def resumers() -> dict[str, list[str]]:
    """Owner kind -> the ``idds`` words that resume one (its name follows)."""
    return {ep.name: list(ep.load()) for ep in entry_points(group="idds.resume")}


@dataclass
class _Child:
    owner_id: int
    name: str
    kind: str
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


class Server:
    """Runs free owners in child processes until stopped.

    Args:
        settings: the database and Ray cluster (children join this head's Ray).
        max_owners: owners run at once by this head.
        poll_s: how often it looks for free owners and reaps finished children.
    """

    def __init__(self, settings: Settings, *, max_owners: int = 8, poll_s: float = 2.0) -> None:
        self.settings = settings
        self.max_owners = max_owners
        self.poll_s = poll_s
        self.kinds = resumers()
        self.children: dict[int, _Child] = {}
        self._not_before: dict[int, float] = {}
        self._stop = False
        self.engine = connect(settings.db_url)

    def serve(self, *, until_idle: bool = False, api: ApiServer | None = None) -> None:
        """Serve until SIGTERM/SIGINT (or, with ``until_idle``, until nothing is left to run),
        and the HTTP API with it where ``api`` is given."""
        from idds.runtime import ensure_ray

        ensure_ray(self.settings.ray_address)
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        if api is not None:
            api.start(self.settings, frozenset(self.kinds))
        log.info("serving %s, at most %d at once", ", ".join(sorted(self.kinds)), self.max_owners)
        try:
            while not self._stop:
                if api is not None:
                    api.keep_up()
                self._reap()
                try:
                    started = self._start_free()
                except sa.exc.DBAPIError as exc:  # the database is away: look again later
                    log.warning("database: %s", reason(exc))
                    started = 0
                if until_idle and not self.children and not started:
                    break
                time.sleep(self.poll_s)
        except KeyboardInterrupt:
            pass
        finally:
            if api is not None:
                api.stop()
            self._stop_children()

    def stop(self) -> None:
        self._stop = True

    def free_owners(self) -> list[OwnerRecord]:
        """Active owners of a kind this head can run, that no live head holds, oldest first.

        An owner that is part of another (a segmented study's segment, a workflow's study
        node) is run by that other owner, not on its own.
        """
        records = Records(self.engine)
        now = records.now()
        return [
            r for r in records.owners(list(self.kinds), state=OwnerState.ACTIVE, parent_id=None)
            if r.id not in self.children
            and not lease_alive(r.lease_holder, r.lease_expires, now)
        ]  # fmt: skip

    def _start_free(self) -> int:
        started = 0
        for row in self.free_owners():
            if len(self.children) >= self.max_owners:
                break
            if self._not_before.get(row.id, 0.0) > time.monotonic():
                continue
            try:
                self._spawn(row)
            except (sa.exc.DBAPIError, OSError):
                raise
            except Exception as exc:  # the owner's own data: fail it, go on with the others
                why = fail_owner(self.engine, row.id, exc)
                log.error("%s %r failed: %s", row.kind, row.name, why)
                continue
            started += 1
        return started

    def _spawn(self, row: OwnerRecord) -> None:
        import ray

        address = self.settings.ray_address or ray.get_runtime_context().gcs_address
        log.info("running %s %r", row.kind, row.name)
        proc = spawn_head(self.settings, row.id, row.kind, row.name, address, self.kinds)
        self.children[row.id] = _Child(row.id, row.name, row.kind, proc)

    def _reap(self) -> None:
        for owner_id, child in list(self.children.items()):
            code = child.proc.poll()
            if code is None:
                continue
            del self.children[owner_id]
            if code != 0:  # give it a rest before trying it again
                wait = min(60.0, 5.0 * (1 + (time.monotonic() - child.started < 10)))
                self._not_before[owner_id] = time.monotonic() + wait
                log.warning("%s %r stopped with exit code %s", child.kind, child.name, code)

    def _stop_children(self) -> None:
        """Interrupt the children (they record what they hold and give their leases up)."""
        for child in self.children.values():
            child.proc.send_signal(signal.SIGINT)
        for child in self.children.values():
            try:
                child.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.proc.kill()
        self.children.clear()


def spawn_head(
    settings: Settings, owner_id: int, kind: str, name: str, ray_address: str,
    kinds: dict[str, list[str]] | None = None,
) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start a child head that runs owner ``name`` (its capability's ``resume`` command, found
    in ``kinds`` or the ``idds.resume`` entry points), joined to the Ray at ``ray_address``.

    The database URL (it may hold a password) and the token go in its environment, from
    ``settings``: a command line is public, and a payload goes to workers.
    """
    words = (kinds or resumers())[kind]
    argv = [
        sys.executable, "-m", "idds.serve", str(owner_id), "--ray-address", ray_address,
        *words, name, "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "IDDS_DB_URL": settings.db_url,
           "IDDS_WORK_DIR": str(settings.work_dir)}  # fmt: skip
    if settings.token:
        env["IDDS_TOKEN"] = settings.token
    return subprocess.Popen(argv, env=env)  # its output is this head's output


@dataclass
class ApiServer:
    """The HTTP API (:mod:`idds.api`) on uvicorn, in a child process of the head
    (:mod:`idds.api.process`): started and stopped with it, started again where it dies
    while the head runs (:meth:`keep_up`), and gone when the head is.

    Attributes:
        host: the address to listen on (loopback by default).
        port: the port (0: a free one; :attr:`port` is set once it listens).
        tls_cert: the server's certificate (PEM) for HTTPS; plain HTTP without.
        tls_key: its private key (PEM).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Whether a port in use is an error (an address asked for) or a warning (the default
    #: address, which another head on this host may serve already).
    required: bool = True
    #: Seconds to wait for it to listen (it opens the database first).
    start_s: float = 120.0
    #: Seconds between two starts of a process that died while the head runs.
    restart_s: float = 5.0
    _proc: subprocess.Popen[bytes] | None = None
    _listen: dict[str, Any] | None = None  # where and how it serves, once it did
    _settings: Settings | None = None
    _started_at: float = 0.0
    _down: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_cert else 'http'}://{self.host}:{self.port}"

    def start(self, settings: Settings, kinds: frozenset[str]) -> None:
        """Start serving; returns once it listens.

        Raises:
            IddsError: it did not start (the port is taken, a bad certificate ...).
        """
        from idds.errors import IddsError

        self._settings = settings
        listen = {"host": self.host, "port": self.port, "tls_cert": self.tls_cert,
                  "tls_key": self.tls_key, "kinds": sorted(kinds)}  # fmt: skip
        if self._launch(settings, listen):
            self._listen = listen
            log.info("HTTP API on %s (docs: %s/docs)", self.url, self.url)
            return
        where = f"{self.host}:{self.port}"
        if self.required:
            raise IddsError(f"the HTTP API did not start on {where}")
        log.warning("the HTTP API is not served: %s is in use (give --api)", where)

    def keep_up(self) -> None:
        """Start the API's process again where it died while the head runs (a crash, the
        kernel's out-of-memory killer), on the port it had, at most every :attr:`restart_s`;
        a start that fails is logged and tried again later, never the head's end."""
        proc, settings, listen = self._proc, self._settings, self._listen
        if listen is None or settings is None or proc is None or proc.poll() is None:
            return
        if not self._down:
            self._down = True
            log.warning(
                "the HTTP API's process stopped (exit code %s): starting it again on %s",
                proc.returncode, self.url,
            )  # fmt: skip
        if time.monotonic() - self._started_at < self.restart_s:
            return
        if self._launch(settings, listen):
            self._down = False
            log.info("HTTP API on %s again", self.url)
        else:
            log.warning("the HTTP API did not start again on %s; trying again", self.url)

    def _launch(self, settings: Settings, listen: dict[str, Any]) -> bool:
        """Start the process; True once it listens (its port in :attr:`port`)."""
        from idds.api.process import child_env

        listen = {**listen, "port": self.port}
        read, write = os.pipe()
        self._started_at = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "idds.api.process"], stdin=subprocess.PIPE,
                env=child_env(settings, listen, write), pass_fds=(write,),
            )  # fmt: skip
        finally:
            os.close(write)
        port = _read_line(read, self.start_s)
        if port.isdigit():
            self.port = int(port)
            return True
        _end(self._proc)
        return False

    def stop(self) -> None:
        """Stop it (requests in flight end first, for up to 10 s)."""
        proc, self._proc, self._listen = self._proc, None, None
        if proc is not None:
            _end(proc)


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Stop the API's process ``proc`` and reap it."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdin is not None:
        proc.stdin.close()


def _read_line(fd: int, timeout: float) -> str:
    """The first line written to the pipe ``fd`` (closed after), or what came before its
    writer closed it or ``timeout`` passed."""
    import select

    got = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in got:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 64)
            if not chunk:
                break
            got += chunk
    finally:
        os.close(fd)
    return got.decode(errors="replace").strip()


def fail_owner(engine: sa.Engine, owner_id: int, exc: BaseException) -> str:
    """Record an owner failed, for an error running it raised that is its own (its recorded
    spec refused, a bug its data runs into), so that no head runs it again and again.

    Returns:
        The reason, one line.
    """
    from idds.errors import IllegalTransition

    lines = str(exc).strip().splitlines()
    why = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    try:
        Records(engine).set_state(owner_id, OwnerState.FAILED)
    except IllegalTransition:  # cancelled or suspended meanwhile: it stays so
        pass
    return why


def run_owner(owner_id: int, argv: list[str]) -> int:
    """A child's main: run the owner's resume command (``argv``: ``idds`` arguments).

    Errors of the platform (the database away, a lease lost, Ray not starting) end the
    child, and the head tries the owner again later; any other error is the owner's own, and
    the owner is recorded failed, with the reason as one line on stderr.

    Returns:
        The exit code.
    """
    import click

    from idds.cli import cli
    from idds.config import Settings
    from idds.errors import IddsError, NotFound, SpecError

    try:
        cli.main(args=argv, standalone_mode=False)
        return 0
    except click.exceptions.Abort:
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except (sa.exc.DBAPIError, NotFound) as exc:
        click.echo(f"error: {reason(exc) if isinstance(exc, sa.exc.DBAPIError) else exc}", err=True)
        return 1
    except IddsError as exc:
        if not isinstance(exc, SpecError):
            click.echo(f"error: {exc}", err=True)
            return 1
        error: Exception = exc
    except Exception as exc:
        error = exc
    why = fail_owner(connect(Settings.from_env().db_url), owner_id, error)
    click.echo(f"error: {why} (recorded failed: no head runs it again)", err=True)
    return 1


if __name__ == "__main__":  # what a head runs each owner in: python -m idds.serve ID ARGS...
    sys.exit(run_owner(int(sys.argv[1]), sys.argv[2:]))
