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

from gpu_sites.site import Pilot, Site

#: How long a cancelled pilot has to stop before it is killed.
STOP_GRACE_S = 10.0


class LocalSite(Site):
    """Pilots as processes on this host; found again by any process through ``/proc``."""

    kind = "local"

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
        return refs

    def pilots(self) -> list[Pilot]:
        return [Pilot(self.name, str(pid), "running") for pid in _pilot_pids(self.name)]

    def cancel(self, refs: list[str]) -> None:
        pids = [int(r) for r in refs if r.isdigit()]
        for pid in pids:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
        for pid in pids:
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)


def _pilot_pids(site: str) -> list[int]:
    """Processes on this host that are pilots of ``site`` (``ray start`` with its label)."""
    found = []
    mark = f'"pilot:{site}:'
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode(errors="replace") for a in argv)
        if " start " in f" {text} " and "--block" in text and mark in text:
            if _alive(int(entry.name)):
                found.append(int(entry.name))
    return sorted(found)


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
