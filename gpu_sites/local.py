"""Local site: pilots are ``ray start ... --block`` processes on this host.

Logical GPUs may be declared on a machine without any (``gpus_per_pilot``); Ray then hands
them out as it would real ones.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from gpu_sites.site import Pilot, Site

#: How long a cancelled pilot has to stop before it is killed.
STOP_GRACE_S = 10.0


class LocalSite(Site):
    """Pilots as processes on this host; found again by any process through ``/proc``."""

    kind = "local"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._started: list[subprocess.Popen[bytes]] = []

    def submit(self, count: int) -> list[str]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        refs = []
        for _ in range(count):
            log = (self.work_dir / f"pilot-{time.time_ns()}.log").open("w")
            with log:
                proc = subprocess.Popen(
                    self.pilot_argv(None), env=self.pilot_env(), stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            refs.append(str(proc.pid))
            self._started.append(proc)
        return refs

    def pilots(self) -> list[Pilot]:
        # Pilots started here are known before they show in /proc under their command line.
        self._started = [p for p in self._started if p.poll() is None]
        pids = set(_pilot_pids(self.name)) | {p.pid for p in self._started}
        return [Pilot(self.name, str(pid), "running") for pid in sorted(pids)]

    def cancel(self, refs: list[str]) -> None:
        pids = [int(r) for r in refs if r.isdigit()]
        for pid in pids:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
        for pid in pids:
            if _alive(pid):
                kill_tree(pid)
        while any(_alive(p) for p in pids):  # SIGKILL is not instant either
            time.sleep(0.05)


def _pilot_pids(site: str) -> list[int]:
    """Processes on this host that are pilots of ``site`` (``ray start`` with its label, or
    :mod:`gpu_sites.pilot` about to become it).

    A process forked by a pilot shows the pilot's command line too: only the topmost of
    such a family counts.
    """
    mark = f'"pilot:{site}:'
    found: dict[int, int] = {}  # pid -> parent pid
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        starting = "gpu_sites.pilot" in text and f" --site {site} " in text  # before its exec
        running = " start " in text and "--block" in text and mark in text
        if (starting or running) and _alive(int(entry.name)):
            found[int(entry.name)] = parent
    return sorted(pid for pid, parent in found.items() if parent not in found)


def kill_tree(pid: int) -> list[int]:
    """SIGKILL a pilot and every process under it, as a lost node would go (Ray's workers
    run in process groups of their own). Returns the pids signalled."""
    family = [pid, *_descendants(pid)]
    for member in family:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return family


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (ended, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)
