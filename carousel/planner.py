"""The planner: what a campaign's makespan, peak disk and disk-hours are for each buffer
size (or number of processing slots), from simulations of the file-level policy."""

from __future__ import annotations

from dataclasses import dataclass

from carousel.catalog import Catalog, build_catalog
from carousel.simulate import CampaignResult, Simulation
from carousel.spec import CampaignSpec


@dataclass(frozen=True)
class PlanRow:
    """One point of a sweep: the setting and the campaign's metrics under it."""

    buffer: float | None
    slots: int
    result: CampaignResult


def plan(
    spec: CampaignSpec,
    buffers: list[float | None],
    *,
    policy: str = "file-level",
    catalog: Catalog | None = None,
) -> list[PlanRow]:
    """The campaign under ``policy`` with each buffer budget (``None``: unbounded).

    Raises:
        SpecError: a buffer cannot hold the campaign's largest file (checked for all first).
    """
    catalog = catalog or build_catalog(spec)
    sims = [Simulation(spec.replace(buffer=b), policy, catalog) for b in buffers]
    return [PlanRow(b, spec.processing.slots, s.run()) for b, s in zip(buffers, sims, strict=True)]


def recommend(rows: list[PlanRow], reference_makespan_s: float) -> PlanRow | None:
    """The smallest bounded buffer whose makespan is no longer than ``reference_makespan_s``
    (the baseline's: the least disk that is no slower than staging whole datasets);
    ``None`` if none is."""
    fitting = [
        r for r in rows if r.buffer is not None and r.result.makespan_s <= reference_makespan_s
    ]
    return min(fitting, key=lambda r: r.buffer or 0.0, default=None)


def wip_bytes(spec: CampaignSpec, catalog: Catalog) -> float:
    """The bytes processing holds when every slot is busy (Little's law: slots times the
    mean file size): the least buffer that keeps all slots fed."""
    return spec.processing.slots * catalog.total_bytes / len(catalog)


def buffer_ladder(spec: CampaignSpec, catalog: Catalog) -> list[float | None]:
    """Buffers to sweep when none are given: multiples of :func:`wip_bytes`, and unbounded."""
    wip = wip_bytes(spec, catalog)
    largest = max(catalog.sizes)
    steps = [max(wip * k, largest) for k in (0.5, 1.0, 1.25, 1.5, 2.0, 3.0)]
    return [*sorted(set(steps)), None]
