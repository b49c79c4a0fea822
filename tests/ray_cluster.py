"""A Ray cluster of several nodes on this machine, each started with ``ray start`` (a head and
worker nodes), for ``pytest --ray-cluster N``.

Each ``ray start`` is a node of its own (a raylet with its object store and workers), as on
separate machines; on one machine they differ by their ports, all chosen free here (never
Ray's default 6379). Every node runs with ``--block`` in a session (``setsid``) of its own, and
all of them share one temporary directory made for this cluster, so that:

- nothing is written to Ray's default ``/tmp/ray``, whose ``ray_current_cluster`` would make
  a plain ``ray.init()`` elsewhere on this host join this cluster;
- stopping it touches only its own processes: SIGTERM to each ``ray start --block`` (which stops
  the processes it started), then SIGKILL to whatever is left in those sessions. ``ray stop``
  is never used: it stops every Ray on the machine, other people's test runs included.

The cluster takes a token of its own (:func:`cluster_auth_env`), never the shared
``~/.ray/auth_token``: the nodes and every process that joins them need ``RAY_AUTH_MODE=token``
and ``RAY_AUTH_TOKEN`` in their environment before they import Ray, which reads them once.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from gpu_sites.pilot import free_port, free_port_options

#: What ``ray start --block`` prints once its node is up.
_STARTED = "will now block forever"
#: How long one node may take to start (Ray gives a node 30 s to register).
NODE_START_S = 60.0


def cluster_auth_env() -> dict[str, str]:
    """Environment variables for Ray's token authentication with a new token."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


class LocalCluster:
    """A head node and ``nodes - 1`` worker nodes started with ``ray start`` on this machine,
    in this process's environment.

    Args:
        nodes: how many nodes in all (at least 1).
        cpus_per_node: the CPUs each node declares.
        object_store_mb: each node's object store.
    """

    def __init__(self, nodes: int, *, cpus_per_node: int = 1, object_store_mb: int = 200) -> None:
        self.nodes = nodes
        self.cpus_per_node = cpus_per_node
        self.object_store_mb = object_store_mb
        # Short: Ray's Unix sockets live under it, and their paths may not pass 107 bytes.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="idds-rc-"))
        self.port = free_port()
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def address(self) -> str:
        """The head's GCS address, as ``--ray-address`` takes it (Ray puts this host's address
        for ``127.0.0.1``)."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the head, then the worker nodes one after the other (nodes starting together
        in one temporary directory could take the same socket names).

        Raises:
            RuntimeError: a node did not start (with the end of its output).
        """
        self._start_node(["--head", "--port", str(self.port), "--include-dashboard=false"])
        for _ in range(self.nodes - 1):
            try:
                self._start_node(["--address", self.address])
            except RuntimeError:  # a loaded machine may miss Ray's time to register: again
                self._start_node(["--address", self.address])

    def _start_node(self, role: list[str]) -> None:
        argv = [
            shutil.which("ray") or "ray", "start", *role, "--block", "--disable-usage-stats",
            "--num-cpus", str(self.cpus_per_node), "--temp-dir", str(self.temp_dir),
            "--object-store-memory", str(self.object_store_mb * 2**20),
            "--min-worker-port", "0", "--max-worker-port", "0", *free_port_options(),
        ]  # fmt: skip
        output = self.temp_dir / f"node-{len(self._procs)}.out"
        with output.open("wb") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self._procs.append(proc)
        deadline = time.monotonic() + NODE_START_S
        while _STARTED not in output.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(output.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"ray start {role[0]} did not start a node:\n{tail}")
            time.sleep(0.2)

    def wait_alive(self, timeout_s: float = NODE_START_S) -> None:
        """Wait until this process, connected to the cluster, sees every node alive.

        Raises:
            TimeoutError: fewer nodes are alive after ``timeout_s``.
        """
        import ray

        deadline = time.monotonic() + timeout_s
        while (alive := sum(n["Alive"] for n in ray.nodes())) < self.nodes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{alive} of {self.nodes} Ray nodes alive after {timeout_s:g} s")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop this cluster's processes (and only them), worker nodes first, and remove its
        temporary directory."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    pass
            for pid in _session_members(proc.pid):  # anything that outlived it
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
        self._procs.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _session_members(sid: int) -> list[int]:
    """The processes of session ``sid`` (a ``ray start`` and what it started)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    members.append(int(entry.name))
            except OSError:
                pass
    return members
