"""Simulation mode: a whole campaign (tape and processing) on the simulated clock, and the
metrics an operator plans with."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from carousel.catalog import Catalog, build_catalog
from carousel.clock import SimClock
from carousel.orchestrator import Orchestrator, SimProcessing
from carousel.policies import make_policy
from carousel.spec import CampaignSpec
from carousel.tape import TapeEmulator, TapeLibraries, make_tape

HOUR = 3600.0
TB = 1e12


@dataclass(frozen=True)
class CampaignResult:
    """The metrics of one campaign under one policy (times in seconds, sizes in bytes).

    ``latency_*`` is the time from a file's arrival on disk to the end of its (successful)
    processing; ``mean_residence_s`` the byte-weighted mean time a file spends on disk;
    ``drive_util`` the share of drive time spent mounted (fetch, load, locate, read, rewind,
    unload) over the makespan.
    """

    policy: str
    buffer: float | None
    files: int
    total_bytes: float
    peak_bytes: float
    byte_seconds: float
    makespan_s: float
    latency_mean_s: float
    latency_p95_s: float
    mean_residence_s: float
    released_bytes: float
    mounts: int
    drive_util: float
    staging_retries: int
    processing_retries: int
    lost: list[str]
    failed: list[str]
    wall_s: float
    trace_t: list[float] = field(repr=False, default_factory=list)
    trace_bytes: list[float] = field(repr=False, default_factory=list)
    dm_stats: dict[str, float] = field(default_factory=dict)  # the data management's calls

    def _repr_html_(self) -> str:
        from carousel.notebook import campaign_html

        return campaign_html(self)

    def summary(self) -> dict[str, float | int | str]:
        """The figures a person reads, in TB and hours."""
        return {
            "policy": self.policy,
            "peak_disk_tb": self.peak_bytes / TB,
            "disk_tb_hours": self.byte_seconds / TB / HOUR,
            "makespan_h": self.makespan_s / HOUR,
            "staged_to_processed_mean_h": self.latency_mean_s / HOUR,
            "staged_to_processed_p95_h": self.latency_p95_s / HOUR,
            "mounts": self.mounts,
            "drive_util": self.drive_util,
            "staging_retries": self.staging_retries,
            "processing_retries": self.processing_retries,
            "lost": len(self.lost),
        }


class Simulation:
    """One campaign under one policy on a simulated clock.

    Args:
        spec: the campaign.
        policy: a policy name (its parameters come from the campaign).
        catalog: the files (built from the spec when not given).

    Raises:
        SpecError: the campaign cannot run within its buffer under this policy.
    """

    def __init__(self, spec: CampaignSpec, policy: str, catalog: Catalog | None = None) -> None:
        self.spec = spec
        self.catalog = catalog or build_catalog(spec)
        self.policy = make_policy(spec, spec.policy(policy), self.catalog)
        self.clock = SimClock()
        self.tape = make_tape(self.catalog, spec.tape_libraries, self.clock, seed=spec.seed + 1)
        processing = SimProcessing(spec.processing, self.catalog, self.clock, seed=spec.seed + 2)
        buffer = spec.buffer if self.policy.uses_buffer else None
        self.orchestrator = Orchestrator(
            self.catalog, self.tape, self.policy, processing, self.clock, buffer
        )

    def run(self) -> CampaignResult:
        """Run the campaign to its end; returns its metrics."""
        started = time.perf_counter()
        self.orchestrator.start()
        self.clock.run()
        return collect(self.orchestrator, self.tape, time.perf_counter() - started)


def collect(
    orch: Orchestrator, tape: TapeEmulator | TapeLibraries, wall_s: float
) -> CampaignResult:
    """The metrics of a finished campaign (simulated or live)."""
    cat = orch.catalog
    ends = [t for t in orch.processed_at if not math.isnan(t)]
    makespan = max(ends + [orch.clock.now if orch.lost else 0.0])
    failed = set(orch.failed)
    latencies = sorted(
        orch.processed_at[f] - orch.staged_at[f]
        for f in range(len(cat))
        if not math.isnan(orch.processed_at[f]) and f not in failed
    )
    released = [f for f in range(len(cat)) if not math.isnan(orch.released_at[f])]
    released_bytes = sum(cat.sizes[f] for f in released)
    held = sum(cat.sizes[f] * (orch.released_at[f] - orch.staged_at[f]) for f in released)
    return CampaignResult(
        policy=orch.policy.name,
        buffer=orch.buffer,
        files=len(cat),
        total_bytes=cat.total_bytes,
        peak_bytes=max(orch.trace_bytes),
        byte_seconds=_integral(orch.trace_t, orch.trace_bytes),
        makespan_s=makespan,
        latency_mean_s=sum(latencies) / len(latencies) if latencies else math.nan,
        latency_p95_s=percentile(latencies, 95),
        mean_residence_s=held / released_bytes if released_bytes else math.nan,
        released_bytes=released_bytes,
        mounts=tape.stats.mounts,
        drive_util=tape.stats.drive_busy_s / (tape.spec.drives * makespan) if makespan else 0.0,
        staging_retries=orch.staging_retries,
        processing_retries=orch.processing_retries,
        lost=[cat.names[f] for f in orch.lost],
        failed=[cat.names[f] for f in orch.failed],
        wall_s=wall_s,
        trace_t=orch.trace_t,
        trace_bytes=orch.trace_bytes,
    )


def _integral(times: list[float], values: list[float]) -> float:
    """The integral of a step function that takes ``values[i]`` from ``times[i]`` on."""
    return sum(values[i] * (times[i + 1] - times[i]) for i in range(len(times) - 1))


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of an ascending list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(math.ceil(q / 100 * len(sorted_values)) - 1, 0)
    return sorted_values[rank]


def simulate(spec: CampaignSpec, policies: list[str] | None = None) -> list[CampaignResult]:
    """Run the campaign under each of ``policies`` (the campaign's own by default).

    Raises:
        SpecError: the campaign cannot run within its buffer under one of them (checked for
            all before any runs).
    """
    names = policies or [p.name for p in spec.policies]
    catalog = build_catalog(spec)
    sims = [Simulation(spec, name, catalog) for name in names]
    return [s.run() for s in sims]
