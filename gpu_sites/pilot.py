"""A pilot: becomes ``ray start --address HEAD --resources ... --block`` on free ports.

Run by every kind of site (``python -m gpu_sites.pilot ...``). It picks free ports on the node
it lands on (several pilots may share a host, and Ray's default ports may be taken), then
replaces itself with ``ray start``, so that the batch system's signals reach Ray directly.

Its Ray files go to a temporary directory of its own (one per pilot, under
``<tmp>/idds-pilots``): ``ray start`` records the cluster's
address in ``<temp dir>/ray_current_cluster``, and in Ray's default one that would make every
later ``ray.init()`` on the host join this cluster instead of starting its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence

#: The ports ``ray start`` would otherwise take at fixed defaults.
_PORT_OPTIONS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
)


def free_port() -> int:
    """A TCP port free on this host now."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def free_port_options() -> list[str]:
    """``ray start`` options that put each port it would otherwise take at a fixed default on
    a free one (several Ray nodes may share a host)."""
    return [word for option in _PORT_OPTIONS for word in (option, str(free_port()))]


def ray_start_argv(args: argparse.Namespace, ref: str) -> list[str]:
    """The ``ray start`` command line of a pilot."""
    resources = {f"site:{args.site}": args.slots, f"pilot:{args.site}:{ref}": 1}
    ray = shutil.which("ray") or "ray"
    argv = [
        ray, "start", "--address", args.address, "--resources", json.dumps(resources),
        "--num-cpus", str(int(args.cpus)), "--num-gpus", str(args.gpus), "--block",
        "--disable-usage-stats", "--min-worker-port", "0", "--max-worker-port", "0",
        *free_port_options(),
    ]  # fmt: skip
    # One directory per pilot: pilots sharing a host and a session directory would share
    # log file names and Ray's cached ports.
    argv += ["--temp-dir", os.path.join(args.temp_dir, f"{args.site}-{ref}")]
    if args.object_store_mb:
        argv += ["--object-store-memory", str(args.object_store_mb * 2**20)]
    return argv


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gpu_sites.pilot")
    parser.add_argument("--address", required=True, help="the head's GCS address")
    parser.add_argument("--site", required=True)
    parser.add_argument("--slots", type=int, required=True)
    parser.add_argument("--cpus", type=float, required=True)
    parser.add_argument("--gpus", type=int, default=0)
    parser.add_argument("--ref", default=None, help="this pilot's id (its pid by default)")
    parser.add_argument("--object-store-mb", type=int, default=None)
    parser.add_argument(
        "--temp-dir", default=os.path.join(tempfile.gettempdir(), "idds-pilots"),
        help="Ray's temporary directory on this node (not Ray's default, see above)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    ref = args.ref or str(os.getpid())
    command = ray_start_argv(args, ref)
    print("pilot:", " ".join(command), flush=True)
    os.execvp(command[0], command)  # noqa: S606 - becomes the Ray node, by design


if __name__ == "__main__":
    main()
