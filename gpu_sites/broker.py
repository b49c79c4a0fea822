"""The sites broker: matches each task to the sites that can run it, then picks the one
expected to finish it first (free slots, queued work, measured run times, recent failures,
cost weight). A site that keeps failing is excluded for a while, visibly."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu_sites.capacity import site_nodes
from gpu_sites.errors import SiteError
from gpu_sites.registry import drained_sites
from gpu_sites.site import PIN
from gpu_sites.spec import SiteSpec, SitesSpec, load_sites
from gpu_sites.stats import SiteStats, read_stats
from idds.dispatch import Broker, Placement
from idds.records import Records

if TYPE_CHECKING:
    from gpu_sites.pilots import PilotManager
    from idds.db import Engine
    from idds.tasks import Claim

log = logging.getLogger("gpu_sites")


@dataclass(frozen=True)
class Need:
    """What a task asks of a site (read from its ``resources``)."""

    cpus: float = 1.0
    gpus: float = 0.0
    gpu_type: str | None = None
    sites: tuple[str, ...] | None = None

    @classmethod
    def of(cls, claim: Claim) -> Need:
        """A claimed task's needs. Its ``site`` column, where set on a first attempt, is a
        constraint (a workflow node's ``site:``); on a retry it is where the last attempt ran."""
        res = claim.resources or {}
        sites = res.get("sites")
        if not sites and claim.site and claim.attempt <= 1:
            sites = [claim.site]
        return cls(
            cpus=float(res.get("cpus", 1.0)),
            gpus=float(res.get("gpus", 0.0)),
            gpu_type=res.get("gpu_type"),
            sites=tuple(sites) if sites else None,
        )


def mismatch(spec: SiteSpec, need: Need) -> str | None:
    """Why a site cannot run a task, or ``None`` when it can."""
    if need.sites is not None and spec.name not in need.sites:
        return "not among the task's sites"
    if need.gpus > spec.gpus_per_pilot:
        return f"{spec.gpus_per_pilot} GPU(s) per pilot"
    if need.gpu_type and need.gpu_type != spec.gpu_type:
        return f"GPU type {spec.gpu_type or 'none'}"
    if need.cpus > spec.slots * spec.cpus_per_slot:
        return f"{spec.slots * spec.cpus_per_slot:g} CPU(s) per pilot"
    return None


@dataclass
class SiteState:
    """What the broker knows of a site now.

    Attributes:
        spec: the site.
        pilots: its pilots joined to Ray.
        pending_pilots: its pilots asked for and not joined yet.
        stats: its record (in flight, run times, failures, exclusion).
        drained: drained by hand (``idds sites drain``): it gets no work.
        placed: tasks placed since the statistics were read (not in them yet).
    """

    spec: SiteSpec
    pilots: int = 0
    pending_pilots: int = 0
    stats: SiteStats = field(default_factory=SiteStats)
    drained: bool = False
    placed: int = 0

    @property
    def slots(self) -> int:
        return self.pilots * self.spec.slots

    @property
    def in_flight(self) -> int:
        return self.stats.in_flight + self.placed

    @property
    def free(self) -> int:
        return max(self.slots - self.in_flight, 0)

    @property
    def queued(self) -> int:
        return max(self.in_flight - self.slots, 0)

    def expected_s(self, default_run_s: float) -> float:
        """Seconds until a task placed here now would end, before weights."""
        run_s = self.stats.mean_s if self.stats.mean_s is not None else default_run_s
        spec = self.spec
        if self.free > 0:
            wait = 0.0
        elif self.pilots + self.pending_pilots < spec.max_pilots or self.slots == 0:
            wait = spec.startup_s + (self.queued // spec.slots) * run_s
        else:
            wait = (self.queued // self.slots + 1) * run_s
        return wait + run_s


def choose(
    states: dict[str, SiteState], need: Need, *, now: float, previous: str | None = None
) -> str:
    """The site for a task: among the sites that match it and are neither drained nor
    excluded, the one with the least expected time to its end, weighted by cost and by
    its recent failure rate; a retry avoids the site of its last attempt where it can.

    When every matching site is excluded, the one whose exclusion ends first is taken
    (work is never held back for good).

    Raises:
        SiteError: no site can run the task.
    """
    why = {name: mismatch(s.spec, need) for name, s in states.items()}
    fits = [s for name, s in states.items() if why[name] is None and not s.drained]
    if not fits:
        detail = "; ".join(f"{n}: {w or 'drained'}" for n, w in why.items())
        raise SiteError(f"no site can run a task needing {_describe(need)} ({detail})")
    open_ = [s for s in fits if s.stats.excluded_until is None]
    if not open_:
        return min(fits, key=lambda s: (s.stats.excluded_until or now, s.spec.name)).spec.name
    known = [s.stats.mean_s for s in states.values() if s.stats.mean_s is not None]
    default_run_s = sum(known) / len(known) if known else 1.0

    def cost(s: SiteState) -> tuple[float, int, str]:
        done = s.stats.succeeded + s.stats.failed
        failing = 1.0 + (s.stats.failed / done if done else 0.0)
        again = 2.0 if s.spec.name == previous and len(open_) > 1 else 1.0
        value = s.expected_s(default_run_s) * s.spec.cost_weight * failing * again
        return (value, -s.free, s.spec.name)

    return min(open_, key=cost).spec.name


def _describe(need: Need) -> str:
    parts = [f"{need.cpus:g} CPU", f"{need.gpus:g} GPU"]
    if need.gpu_type:
        parts.append(f"GPU type {need.gpu_type}")
    if need.sites:
        parts.append(f"sites {', '.join(need.sites)}")
    return ", ".join(parts)


class SiteBroker(Broker):
    """Places tasks on sites and scales their pilots.

    Args:
        spec: the sites.
        engine: the database (its attempts give each site's record).
        manager: makes the pilot manager, on the first placement; ``None`` for none.
        observe: returns ``{site: (pilots joined, pilots pending)}``; Ray's state read
            through ``manager`` by default.
        clock: seconds, for how often to refresh (monotonic).
    """

    def __init__(
        self,
        spec: SitesSpec,
        engine: Engine,
        *,
        manager: Callable[[], PilotManager] | None = None,
        observe: Callable[[], dict[str, tuple[int, int]]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.records = Records(engine)
        self.manager: PilotManager | None = None
        self._make_manager = manager
        self._observe = observe  # (not a bound method of self: no cycle keeps it alive)
        self._clock = clock
        self.states = {s.name: SiteState(spec=s) for s in spec.sites}
        self._now = 0.0
        self._next_refresh = 0.0
        self._ledger: dict[str, str] = {}  # token -> site, placed and not yet seen
        self._lock = threading.Lock()
        self._excluded: dict[str, float] = {}

    # --- the Broker interface --------------------------------------------------------------

    def place(self, claim: Claim) -> Placement:
        if self.manager is None and self._make_manager is not None:
            self.manager = self._make_manager()
            self._make_manager = None  # the factory refers to this broker: no cycle kept
            self.manager.step()  # the pilots as they are now, before the first choice
            self.manager.start()
        self.refresh()
        need = Need.of(claim)
        previous = claim.site if claim.attempt > 1 else None
        with self._lock:
            name = choose(self.states, need, now=self._now, previous=previous)
            self.states[name].placed += 1
            self._ledger[claim.token] = name
        return Placement(name, self.ray_options(claim, name))

    @staticmethod
    def ray_options(claim: Claim, site: str) -> dict[str, Any]:
        """Ray options that run a task on ``site`` with the resources it asks for."""
        res = claim.resources or {}
        options: dict[str, Any] = {
            "num_cpus": float(res.get("cpus", 1)),
            "resources": {f"site:{site}": PIN},
        }
        if res.get("gpus"):
            options["num_gpus"] = float(res["gpus"])
        if res.get("memory_gb"):
            options["memory"] = int(float(res["memory_gb"]) * 2**30)
        return options

    # --- what it knows ---------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> None:
        """Read the sites' records and pilots again (at most every ``refresh_s``)."""
        if not force and self._clock() < self._next_refresh:
            return
        self._next_refresh = self._clock() + self.spec.broker.refresh_s
        names = list(self.states)
        stats, now = read_stats(self.records, names, self.spec.broker)
        drained = drained_sites(self.records)
        seen = self._seen_tokens()
        pilots = self._observe() if self._observe else self._observe_manager()
        with self._lock:
            self._now = now
            for token in seen:
                self._ledger.pop(token, None)
            unseen = Counter(self._ledger.values())
            for name, state in self.states.items():
                state.stats = stats[name]
                state.drained = name in drained
                state.pilots, state.pending_pilots = pilots.get(name, (0, 0))
                state.placed = unseen.get(name, 0)
            self._note_exclusions()

    def _seen_tokens(self) -> set[str]:
        """The tokens of the placements whose attempts are recorded by now."""
        with self._lock:
            tokens = list(self._ledger)
        return self.records.known_tokens(tokens)

    def _note_exclusions(self) -> None:
        for name, state in self.states.items():
            until = state.stats.excluded_until
            if until is not None and name not in self._excluded:
                log.warning(
                    "site %s excluded for %.0f s: its last %d attempts failed",
                    name, until - self._now, state.stats.streak,
                )  # fmt: skip
            if until is None:
                self._excluded.pop(name, None)
            else:
                self._excluded[name] = until

    def exclusions(self) -> dict[str, float]:
        """The excluded sites and the seconds left of their exclusion."""
        with self._lock:
            return {n: round(u - self._now, 1) for n, u in self._excluded.items()}

    def queued(self) -> dict[str, int]:
        """Tasks placed on each site that wait for a slot (what the pilots scale with)."""
        self.refresh()
        with self._lock:
            return {n: s.queued for n, s in self.states.items()}

    def _observe_manager(self) -> dict[str, tuple[int, int]]:
        """Pilots joined and pending, as the manager last saw them (Ray's nodes without one)."""
        if self.manager is not None:
            counts = self.manager.counts
            return {n: (len(c.nodes), c.pending) for n, c in counts.items()}
        import ray

        if not ray.is_initialized():
            return {}
        return {name: (len(nodes), 0) for name, nodes in site_nodes().items()}

    def close(self) -> None:
        """Stop scaling, and the pilots this broker started."""
        if self.manager is not None:
            self.manager.close()


def from_settings(path: str | Path, engine: Engine) -> SiteBroker:
    """The broker of a ``sites.yaml`` (what ``IDDS_SITES`` names), with pilot scaling.

    Pilots join the Ray cluster this process is connected to when the first task is placed.

    Raises:
        SiteSpecError: the file does not validate.
    """
    spec = load_sites(path)
    return build(spec, engine)


def build(spec: SitesSpec, engine: Engine, *, work_dir: Path | None = None) -> SiteBroker:
    """A broker for ``spec`` whose pilot manager starts with the first placement (pilots
    join the Ray cluster this process is connected to by then)."""
    from gpu_sites.pilots import PilotManager
    from gpu_sites.site import make_site
    from idds.config import Settings

    work = work_dir or Settings.from_env().work_dir

    def drained() -> set[str]:
        return drained_sites(Records(engine))

    def manager() -> PilotManager:
        import ray

        head = ray.get_runtime_context().gcs_address
        sites = {s.name: make_site(s, head_address=head, work_dir=work) for s in spec.sites}
        period = spec.broker.scale_period_s
        return PilotManager(sites, queued=queued, drained=drained, period_s=period)

    def queued() -> dict[str, int] | None:
        """The broker's queue; None once the broker is gone (its dispatcher finished)."""
        method = alive()
        return None if method is None else method()

    broker = SiteBroker(spec, engine, manager=manager if spec.broker.scale_period_s else None)
    alive = weakref.WeakMethod(broker.queued)
    return broker
