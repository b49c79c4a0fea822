"""The carousel's read API: carousels as recorded, with their disk curve and per-file timeline.

A live run records, on its carousel's row (``spec["result"]`` and ``spec["curve"]``), the
metrics, the disk occupancy sampled over time and each file's requested, staged, processed
and released times (simulated seconds): the curve and timeline every few seconds while it
runs, the metrics when it ends. :func:`list_carousels` and :func:`load_carousel`
read them back through :class:`idds.records.Records`; the dashboard's Carousel page and
``idds carousel list/show`` read only these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from carousel.orchestrator import Orchestrator
from carousel.sizes import parse_size
from idds.client import records_for
from idds.config import Settings
from idds.errors import NotFound
from idds.records import OwnerRecord
from idds.tasks import TaskState

KIND = "carousel"
SAMPLES = 400  # disk-curve points kept
TIMELINE_FILES = 5_000  # per-file timelines kept up to this many files


@dataclass(frozen=True)
class CarouselInfo:
    """A carousel as recorded.

    Attributes:
        name: its name.
        state: ``active``, ``finished``, ``cancelled`` ...
        policy: the policy it ran.
        buffer: the campaign's buffer in bytes (``None``: unbounded).
        files: the campaign's file count.
        result: its metrics once over (:meth:`CampaignResult.summary`), else empty.
        disk_t: the disk curve's times (simulated seconds).
        disk_bytes: bytes on disk at those times.
        timeline: per file name, ``requested``/``staged``/``processed``/``released`` times
            (``None``: never).
        counts: files ``requested``, ``staged`` and ``released`` (from the timeline, for
            runs that recorded one), ``submitted`` to processing, ``processed`` and
            ``failed`` (from the core's tasks, one per file).
        user: who ran it.
        created: when it was created (seconds since the epoch).
    """

    name: str
    state: str
    policy: str
    buffer: float | None
    files: int
    result: dict[str, Any]
    disk_t: list[float] = field(default_factory=list)
    disk_bytes: list[float] = field(default_factory=list)
    timeline: dict[str, dict[str, float | None]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    user: str | None = None
    created: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Everything, as JSON-able values."""
        return {
            "name": self.name, "state": self.state, "policy": self.policy,
            "buffer": self.buffer, "files": self.files, "result": self.result,
            "disk": {"t": self.disk_t, "bytes": self.disk_bytes}, "timeline": self.timeline,
            "counts": self.counts, "user": self.user, "created": self.created,
        }  # fmt: skip


def curve(orch: Orchestrator) -> dict[str, Any]:
    """The disk curve (at most :data:`SAMPLES` points, the peak kept) and the per-file
    timeline of a run, to record on its row."""
    t, b = orch.trace_t, orch.trace_bytes
    step = max(1, math.ceil(len(t) / SAMPLES))
    keep = sorted(set(range(0, len(t), step)) | {len(t) - 1, b.index(max(b))})
    out: dict[str, Any] = {"disk": {"t": [t[i] for i in keep], "bytes": [b[i] for i in keep]}}
    if len(orch.catalog) <= TIMELINE_FILES:
        columns = {"requested": orch.requested_at, "staged": orch.staged_at,
                   "processed": orch.processed_at, "released": orch.released_at}  # fmt: skip
        out["names"] = list(orch.catalog.names)
        out["timeline"] = {
            k: [None if math.isnan(x) else round(x, 3) for x in v] for k, v in columns.items()
        }
    return out


def _info(row: OwnerRecord, full: bool) -> CarouselInfo:
    spec = row.spec
    rec = spec.get("curve") or {}
    disk = rec.get("disk", {})
    timeline: dict[str, dict[str, float | None]] = {}
    columns = rec.get("timeline") or {}
    counts = {k: sum(x is not None for x in v) for k, v in columns.items()}
    if any(row.tasks.values()):  # live: the core's tasks, one per file, say what was processed
        counts["submitted"] = sum(row.tasks.values())
        counts["processed"] = row.tasks.get(TaskState.SUCCEEDED, 0)
        counts["failed"] = row.tasks.get(TaskState.FAILED, 0)
    if full:
        for f, name in enumerate(rec.get("names") or []):
            timeline[name] = {k: v[f] for k, v in columns.items()}
    buffer = spec.get("buffer")
    if isinstance(buffer, str):
        buffer = parse_size(buffer, "buffer")
    return CarouselInfo(
        name=row.name, state=str(row.state), policy=str(spec.get("policy", "")),
        buffer=buffer, files=int(spec.get("files", {}).get("count", 0)),
        result=dict(spec.get("result") or {}), disk_t=list(disk.get("t", [])),
        disk_bytes=list(disk.get("bytes", [])), timeline=timeline, counts=counts,
        user=row.user, created=row.created,
    )  # fmt: skip


def list_carousels(settings: Settings | None = None) -> list[CarouselInfo]:
    """Every carousel, oldest first (disk curves included, timelines not)."""
    settings = settings or Settings.from_env()
    return [_info(r, full=False) for r in records_for(settings).owners(KIND)]


def load_carousel(name: str, settings: Settings | None = None) -> CarouselInfo:
    """Carousel ``name`` with its disk curve and per-file timeline.

    Raises:
        NotFound: no carousel of that name.
    """
    settings = settings or Settings.from_env()
    try:
        row = records_for(settings).owner(KIND, name)
    except NotFound:
        raise NotFound(f"no carousel named {name!r}") from None
    return _info(row, full=True)
