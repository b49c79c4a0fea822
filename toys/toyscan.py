"""A toy-MC limit scan: create it, run (or resume) it, read its limits, cancel it.

The scan is an owner row of kind ``toyscan`` whose tasks are its toy batches; see
:mod:`toys.run` for how the dispatcher drives it and :mod:`toys.scan` for the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idds.client import records_for
from idds.config import Settings
from idds.db import require
from idds.dispatch import Dispatcher
from idds.errors import NotFound
from idds.handle import OwnerHandle
from idds.owners import OwnerState
from idds.tasks import TaskState
from toys import scan as scan_mod
from toys.spec import ToyScanError, ToyScanSpec, check_model, check_range

if TYPE_CHECKING:
    from idds.records import TaskRecord

KIND = "toyscan"


@dataclass(frozen=True)
class ScanResult:
    """What a scan knows so far.

    Attributes:
        points: the scanned POI values with their toys (by POI value).
        limits: each band's limit (``obs``, ``-2``, ``-1``, ``0``, ``+1``, ``+2``).
        tolerance: the error every limit is wanted to.
        toys: toys thrown in all (both hypotheses).
        batches: batches by state.
        steps: steps run.
        cl: the confidence level of the limits.
        poi: the parameter of interest's name.
    """

    points: dict[float, scan_mod.Point]
    limits: dict[str, scan_mod.Limit]
    tolerance: float
    toys: int
    batches: dict[str, int]
    steps: int
    cl: float = 0.95
    poi: str = "POI"

    @property
    def converged(self) -> bool:
        """Every limit found in the range and known to the tolerance."""
        return all(
            lim.status == "ok" and lim.error <= self.tolerance for lim in self.limits.values()
        )

    def _repr_html_(self) -> str:
        from toys.notebook import result_html

        return result_html(self)


class ToyScan(OwnerHandle):
    """A toy-MC CLs upper-limit scan of a pyhf workspace.

    Args:
        spec: a :class:`ToyScanSpec`, or ``None`` to build one from ``fields``.
        settings: database and Ray settings (``IDDS_*`` variables by default).
        base_dir: where a ``workspace`` given as a path is read from.
        check: check the workspace, the POI and (asymptotically) the range now.
        **fields: the spec's fields (``name``, ``workspace``, ``range``, ...).

    Raises:
        ToyScanError: the spec does not validate, pyhf rejects the workspace, the POI does
            not exist or the range does not bracket the limits.
    """

    kind = KIND
    noun = "toy scan"
    command = "toys"
    task_noun = "a batch of toys"

    def __init__(
        self,
        spec: ToyScanSpec | None = None,
        *,
        settings: Settings | None = None,
        base_dir: str | Path | None = None,
        check: bool = True,
        **fields: Any,
    ) -> None:
        if spec is None:
            base = Path(base_dir or ".")
            spec = ToyScanSpec.from_mapping(fields, source="toy scan", base_dir=base)
        if check:
            spec = check_model(spec)
            check_range(spec)
        self.spec = spec
        self.settings = settings or Settings.from_env()
        self._engine = None
        #: Why the last :meth:`run` stopped (None before one ran here).
        self.stopped_because: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    # --- running --------------------------------------------------------------------------

    def create(self, *, user: str | None = None, parent_id: int | None = None) -> int:
        """Record the scan; returns its id.

        Args:
            user: the user to record as its owner (the acting user by default; a workflow's
                node records its scan for the workflow's owner).
            parent_id: the owner it is part of (the workflow whose node it is).

        Raises:
            Exists: a scan of that name exists already.
            AccessDenied: no user can be named (see :mod:`idds.auth`).
        """
        return self.create_owner(self.spec.to_json(), user=user, parent_id=parent_id)

    def task_needs(self) -> dict[str, float]:
        return {"CPU": 1.0}  # one batch of toys per CPU

    def run(self, *, progress: bool = True) -> ScanResult:
        """Run the scan step by step until its limits are known to the tolerance (or a cap
        is hit, or it is cancelled). Creates it on the first call; resumes it after.

        Returns:
            The result so far.

        Raises:
            IddsError: another live head is running this scan.
        """
        import ray

        from idds.runtime import ensure_ray
        from toys.run import ToyScanRun

        if self.remote:  # a head of the server runs it
            self.start_or_resume(self.create, self.spec.to_json())
            self.follow(progress=progress)
            return self.result()
        ensure_ray(self.settings.ray_address)
        owner_id = self.start_or_resume(self.create, self.spec.to_json())
        parallel = self.spec.parallel or max(int(ray.cluster_resources().get("CPU", 1)), 1)
        dispatcher = Dispatcher(self.engine, settings=self.settings)
        with self.held(dispatcher, [owner_id]):
            run = ToyScanRun(self.spec, owner_id, self._tasks(owner_id), parallel=parallel,
                             progress=progress)  # fmt: skip
            try:
                dispatcher.run([run])
            finally:
                run.close()
            if not run.cancelled:
                self.finish()
            self.stopped_because = run.stopped_because
        return self.result()

    def extend(
        self,
        *,
        max_steps: int | None = None,
        tolerance: float | None = None,
        max_toys: int | None = None,
    ) -> None:
        """Let a scan run on: more steps, a tighter tolerance or more toys. The toys it has
        are kept; the next :meth:`run` plans from them (a finished scan becomes active).

        Args:
            max_steps: the new cap on steps (counted from the scan's start).
            tolerance: the new error every limit is wanted to.
            max_toys: the new cap on toys.

        Raises:
            ToyScanError: no change given, a value that does not validate, or the scan was
                cancelled.
            NotFound: the scan is not recorded.
            AccessDenied: it is another user's.
        """
        change = {k: v for k, v in (("max_steps", max_steps), ("tolerance", tolerance),
                                    ("max_toys", max_toys)) if v is not None}  # fmt: skip
        if not change:
            raise ToyScanError("extend: give max_steps, tolerance or max_toys")
        if self.state == OwnerState.CANCELLED:
            raise ToyScanError(f"toy scan {self.name!r} was cancelled; it cannot be extended")
        self.require("extend")
        spec = ToyScanSpec.from_mapping({**self.spec.to_json(), **change}, source="extend")
        self.records.update_spec(self.owner_id, lambda _: spec.to_json(), state=OwnerState.ACTIVE)
        self.spec = spec

    # --- reading --------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        from toys.notebook import scan_html

        return scan_html(self)

    def _tasks(self, owner_id: int) -> list[TaskRecord]:
        return self.records.tasks(owner_id)

    def result(self) -> ScanResult:
        """The points, limits and counts recorded so far."""
        rows = self._tasks(self.owner_id)
        points = scan_mod.collect(r.result for r in rows if r.state == TaskState.SUCCEEDED)
        batches: dict[str, int] = {}
        for r in rows:
            batches[str(r.state)] = batches.get(str(r.state), 0) + 1
        steps = 1 + max((r.payload["args"][0]["step"] for r in rows), default=-1)
        return ScanResult(
            points=points,
            limits=scan_mod.limits(points, 1 - self.spec.cl),
            tolerance=self.spec.tolerance_or_default,
            toys=scan_mod.total_toys(points),
            batches=batches,
            steps=steps,
            cl=self.spec.cl,
            poi=self.spec.poi or "POI",
        )


def load_scan(name: str, *, settings: Settings | None = None) -> ToyScan:
    """The toy scan ``name`` as recorded.

    Raises:
        NotFound: no toy scan of that name.
    """
    settings = settings or Settings.from_env()
    if not settings.url:
        require(settings.db_url, f"no toy scan named {name!r}")
    records = records_for(settings)
    try:
        record = records.owner(KIND, name)
    except NotFound:
        raise NotFound(f"no toy scan named {name!r}") from None
    spec = ToyScanSpec.from_mapping(dict(record.spec), source=f"toy scan {name}")
    scan = ToyScan(spec, settings=settings, check=False)
    scan.attach(records)
    return scan
