"""Pilot scaling: between each site's ``min_pilots`` and ``max_pilots`` with the work queued
for it, idle pilots drained after ``idle_s``, a drained site's pilots all stopped."""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpu_sites.capacity import NodeView, site_nodes
from gpu_sites.errors import SiteError

if TYPE_CHECKING:
    from gpu_sites.site import Site
    from gpu_sites.spec import SiteSpec

log = logging.getLogger("gpu_sites")


def scale(spec: SiteSpec, *, known: int, pending: int, queued: int, idle: list[str]) -> tuple[
    int, list[str]
]:  # fmt: skip
    """How many pilots to start, and which idle ones to stop.

    Args:
        spec: the site.
        known: its pilots now (pending or joined).
        pending: those not joined yet.
        queued: tasks placed on it that wait for a slot.
        idle: refs of joined pilots idle for longer than ``idle_s`` (oldest first).

    Returns:
        ``(start, stop)``.
    """
    want = known
    if queued > 0:
        want = known + max(math.ceil(queued / spec.slots) - pending, 0)
    want = max(min(want, spec.max_pilots), spec.min_pilots)
    start = max(want - known, 0)
    stop: list[str] = []
    if queued == 0 and start == 0:
        stop = idle[: max(known - spec.min_pilots, 0)]
    return start, stop


@dataclass
class SiteCount:
    """A site's pilots as last seen: joined nodes and pilots not joined yet."""

    nodes: list[NodeView] = field(default_factory=list)
    pending: int = 0


class PilotManager:
    """Scales each site's pilots in a thread of its own.

    Args:
        sites: the adapters, by site name.
        queued: the broker's count of tasks waiting for a slot, by site name; ``None`` once
            the broker is gone, which ends scaling (and stops this manager's pilots).
        drained: the names of the drained sites (read from the database).
        period_s: seconds between two rounds.
    """

    def __init__(
        self,
        sites: dict[str, Site],
        *,
        queued: Callable[[], dict[str, int] | None],
        drained: Callable[[], set[str]],
        period_s: float = 2.0,
    ) -> None:
        self.sites = sites
        self._queued = queued
        self._drained = drained
        self.period_s = period_s
        self.counts: dict[str, SiteCount] = {name: SiteCount() for name in sites}
        self.mine: dict[str, set[str]] = {name: set() for name in sites}
        self._idle_since: dict[str, float] = {}
        self._errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._round = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start scaling (a daemon thread); pilots this manager started stop at exit."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="gpu-sites", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def close(self) -> None:
        """Stop scaling and stop the pilots this manager started."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        for name, refs in self.mine.items():
            if not refs:
                continue
            live = {p.ref for p in self._safe_pilots(name)} & refs
            if live:
                self.sites[name].cancel(sorted(live))
            refs.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.step():
                    self.close()
                    return
            except Exception:  # a round that fails must not end scaling
                log.exception("pilot scaling round failed")
            self._stop.wait(self.period_s)

    def step(self) -> bool:
        """One round over every site. Returns False once the broker or Ray is gone."""
        import ray

        if not ray.is_initialized():
            return False
        with self._round:
            queued = self._queued()
            if queued is None:
                return False
            self._step_all(queued)
            return True

    def _step_all(self, queued: dict[str, int]) -> None:
        nodes = site_nodes()
        drained = self._drained()
        for name, site in self.sites.items():
            self._step_site(site, nodes.get(name, []), queued.get(name, 0), name in drained)

    def _step_site(self, site: Site, nodes: list[NodeView], queued: int, drained: bool) -> None:
        pilots = self._safe_pilots(site.name)
        joined = {n.pilot for n in nodes if n.pilot is not None}
        pending = [p.ref for p in pilots if p.ref not in joined]
        self.counts[site.name] = SiteCount(nodes=nodes, pending=len(pending))
        if drained:
            refs = sorted({p.ref for p in pilots} | joined)
            if refs:
                log.warning("site %s is drained: stopping pilots %s", site.name, ", ".join(refs))
                site.cancel(refs)
            return
        known = len({p.ref for p in pilots} | joined) or len(nodes)
        start, stop = scale(
            site.spec, known=known, pending=len(pending), queued=queued, idle=self._idle(nodes)
        )
        if start:
            refs = site.submit(start)
            self.mine[site.name].update(refs)
            log.info("site %s: started pilots %s", site.name, ", ".join(refs))
        if stop:
            log.info("site %s: draining idle pilots %s", site.name, ", ".join(stop))
            site.cancel(stop)

    def _idle(self, nodes: list[NodeView]) -> list[str]:
        """Joined pilots idle for longer than their site's ``idle_s``, oldest first."""
        now = time.monotonic()
        out = []
        for node in nodes:
            if node.pilot is None:
                continue
            if node.running:
                self._idle_since.pop(node.pilot, None)
                continue
            since = self._idle_since.setdefault(node.pilot, now)
            if now - since >= self.sites[node.site].spec.idle_s:
                out.append((since, node.pilot))
        return [ref for _, ref in sorted(out)]

    def _safe_pilots(self, name: str) -> list:
        try:
            pilots = self.sites[name].pilots()
        except SiteError as exc:
            if self._errors.get(name) != str(exc):  # once per new error, not every round
                log.warning("site %s: cannot list pilots: %s", name, exc)
            self._errors[name] = str(exc)
            return []
        self._errors.pop(name, None)
        return pilots
