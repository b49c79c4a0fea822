"""A toy-MC limit scan: create it, run (or resume) it, read its limits, cancel it.

The scan is an owner row of kind ``toyscan`` whose tasks are its toy batches; see
:mod:`toys.run` for how the dispatcher drives it and :mod:`toys.scan` for the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from idds import auth
from idds import owners as owners_mod
from idds import tasks as tq
from idds.config import Settings
from idds.db import connect, reading
from idds.dispatch import Dispatcher
from idds.errors import NotFound
from idds.owners import OwnerState
from idds.tasks import TaskState
from toys import scan as scan_mod
from toys.spec import ToyScanError, ToyScanSpec, check_model, check_range

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

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
    """

    points: dict[float, scan_mod.Point]
    limits: dict[str, scan_mod.Limit]
    tolerance: float
    toys: int
    batches: dict[str, int]
    steps: int

    @property
    def converged(self) -> bool:
        """Every limit found in the range and known to the tolerance."""
        return all(
            lim.status == "ok" and lim.error <= self.tolerance for lim in self.limits.values()
        )


class ToyScan:
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
        self._engine: Engine | None = None
        #: Why the last :meth:`run` stopped (None before one ran here).
        self.stopped_because: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = connect(self.settings.db_url)
        return self._engine

    # --- running --------------------------------------------------------------------------

    def create(self, *, user: str | None = None) -> int:
        """Record the scan; returns its id.

        Args:
            user: the user to record as its owner (the acting user by default).

        Raises:
            ToyScanError: a scan of that name exists already.
            AccessDenied: no user can be named (see :mod:`idds.auth`).
        """
        user = user or auth.acting_user(self.engine, self.settings).name
        try:
            with self.engine.begin() as conn:
                return owners_mod.create(conn, KIND, self.name, self.spec.to_json(), user=user)
        except sa.exc.IntegrityError:
            raise ToyScanError(
                f"a toy scan named {self.name!r} exists already: resume it with "
                f"`idds toys resume {self.name}`, or choose another name"
            ) from None

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

        ensure_ray(self.settings.ray_address)
        owner_id = self._owner_id(create=True)
        parallel = self.spec.parallel or max(int(ray.cluster_resources().get("CPU", 1)), 1)
        dispatcher = Dispatcher(self.engine, settings=self.settings)
        dispatcher.hold_waiting(owner_id, f"toy scan {self.name!r}")
        try:
            run = ToyScanRun(self.spec, owner_id, self._rows(owner_id), parallel=parallel,
                             progress=progress)  # fmt: skip
            dispatcher.run([run])
            if not run.cancelled:
                with self.engine.begin() as conn:
                    owners_mod.set_state(conn, owner_id, OwnerState.FINISHED)
            self.stopped_because = run.stopped_because
        finally:
            dispatcher.release(owner_id)
        return self.result()

    def cancel(self) -> int:
        """Cancel the scan; a head running it stops within seconds. Returns batches cancelled.

        Raises:
            AccessDenied: the scan is another user's.
        """
        auth.require_named(self.engine, self.settings, KIND, self.name, "cancel")
        owner_id = self._owner_id()
        with self.engine.begin() as conn:
            owners_mod.set_state(conn, owner_id, OwnerState.CANCELLED)
            return tq.cancel_owner_tasks(conn, owner_id, "toy scan cancelled")

    # --- reading --------------------------------------------------------------------------

    def _owner_id(self, *, create: bool = False) -> int:
        with reading(self.engine) as conn:
            try:
                return int(owners_mod.find(conn, KIND, self.name).id)
            except NotFound:
                if not create:
                    raise NotFound(f"no toy scan named {self.name!r}") from None
        return self.create()

    def _rows(self, owner_id: int) -> list[Any]:
        t = tq.tasks
        with reading(self.engine) as conn:
            return list(
                conn.execute(
                    sa.select(t.c.number, t.c.state, t.c.payload, t.c.result)
                    .where(t.c.owner_id == owner_id)
                    .order_by(t.c.number)
                )
            )

    @property
    def state(self) -> str:
        """``active``, ``finished`` or ``cancelled``."""
        with reading(self.engine) as conn:
            return str(owners_mod.find(conn, KIND, self.name).state)

    def result(self) -> ScanResult:
        """The points, limits and counts recorded so far."""
        rows = self._rows(self._owner_id())
        points = scan_mod.collect(r.result for r in rows if r.state == TaskState.SUCCEEDED)
        batches: dict[str, int] = {}
        for r in rows:
            batches[r.state] = batches.get(r.state, 0) + 1
        steps = 1 + max((r.payload["args"][0]["step"] for r in rows), default=-1)
        return ScanResult(
            points=points,
            limits=scan_mod.limits(points, 1 - self.spec.cl),
            tolerance=self.spec.tolerance_or_default,
            toys=scan_mod.total_toys(points),
            batches=batches,
            steps=steps,
        )


def load_scan(name: str, *, settings: Settings | None = None) -> ToyScan:
    """The toy scan ``name`` as recorded.

    Raises:
        NotFound: no toy scan of that name.
    """
    settings = settings or Settings.from_env()
    engine = connect(settings.db_url)
    with reading(engine) as conn:
        try:
            row = owners_mod.find(conn, KIND, name)
        except NotFound:
            raise NotFound(f"no toy scan named {name!r}") from None
    spec = ToyScanSpec.from_mapping(dict(row.spec), source=f"toy scan {name}")
    scan = ToyScan(spec, settings=settings, check=False)
    scan._engine = engine
    return scan
