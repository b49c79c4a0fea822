"""Workflows from Python: create, run (and resume), inspect, cancel, suspend, retry.

from dag import Workflow
wf = Workflow.from_file("wf.yaml")        # or Workflow({"name": ..., "nodes": [...]})
wf.run()                                  # until every node is final (resumes if recorded)
for node in wf.nodes(): print(node.path, node.state, node.output)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dag.engine import Engine, Node, NodeState
from dag.run import KIND, Record, WorkflowRun, records, replay
from dag.spec import WorkflowSpec, load_spec_file
from idds import auth
from idds import owners as owners_mod
from idds import tasks as tq
from idds.config import Settings, path_inside
from idds.db import connect, reading
from idds.dispatch import Dispatcher
from idds.errors import IddsError, NotFound, SpecError
from idds.owners import OwnerState
from idds.tasks import FINAL, TaskSpec

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine as DbEngine

OWNER_KIND = "workflow"


@dataclass(frozen=True)
class NodeInfo:
    """A node instance as recorded: what ``idds dag show`` prints."""

    path: str
    kind: str
    state: str
    output: Any
    error: str | None
    detail: str
    attempt: int | None
    duration_s: float | None
    number: int | None
    depth: int


class Workflow:
    """A workflow spec bound to a database.

    Args:
        spec: a :class:`WorkflowSpec`, or a mapping to validate into one.
        settings: database, Ray and work dir (from the environment by default).

    Raises:
        SpecError: the spec does not validate.
    """

    def __init__(self, spec: WorkflowSpec | dict[str, Any], *, settings: Settings | None = None):
        if not isinstance(spec, WorkflowSpec):
            spec = WorkflowSpec.from_mapping(spec)
        self.spec = spec
        self.settings = settings or Settings.from_env()
        self._db: DbEngine | None = None

    @classmethod
    def from_file(
        cls, path: str | Path, *, params: dict[str, Any] | None = None,
        settings: Settings | None = None,
    ) -> Workflow:  # fmt: skip
        """Read a YAML/JSON workflow; ``params`` override its parameters."""
        return cls(load_spec_file(path, params), settings=settings)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def db(self) -> DbEngine:
        if self._db is None:
            self._db = connect(self.settings.db_url)
        return self._db

    @property
    def workdir(self) -> Path:
        return path_inside(self.settings.work_dir, "dag", self.name)

    # --- running ----------------------------------------------------------------------------

    def create(self) -> int:
        """Record the workflow; returns its id.

        Raises:
            SpecError: a workflow of that name exists already.
        """
        user = auth.acting_user(self.db, self.settings).name
        try:
            with self.db.begin() as conn:
                return owners_mod.create(
                    conn, OWNER_KIND, self.name, self.spec.to_mapping(), user=user
                )
        except sa.exc.IntegrityError:
            raise SpecError(
                f"a workflow named {self.name!r} exists already: resume it with "
                f"`idds dag resume {self.name}`, or choose another name"
            ) from None

    def run(self, *, progress: bool = False) -> str:
        """Run until every node is final, the workflow is cancelled or suspended; creates it
        the first time, resumes it afterwards (recorded results are not run again).

        Returns:
            The workflow's state: ``finished``, ``failed``, ``suspended`` or ``cancelled``.

        Raises:
            IddsError: another live head runs it.
            AccessDenied: it is another user's suspended workflow.
        """
        owner_id = self._owner_id(create=True)
        with reading(self.db) as conn:
            row = owners_mod.find(conn, OWNER_KIND, self.name)
        if row.state == OwnerState.SUSPENDED:
            auth.require(self.db, self.settings, row, "resume")
        with self.db.begin() as conn:
            if owners_mod.find(conn, OWNER_KIND, self.name).state == OwnerState.CANCELLED:
                return OwnerState.CANCELLED
            owners_mod.update_spec(conn, owner_id, lambda s: {**s, "suspended": False})
            owners_mod.set_state(conn, owner_id, OwnerState.ACTIVE)
        from idds.runtime import ensure_ray

        ensure_ray(self.settings.ray_address)  # the cluster asked for (--ray-address)
        dispatcher = Dispatcher(self.db, settings=self.settings)
        dispatcher.hold_waiting(owner_id, f"workflow {self.name!r}")
        try:
            with reading(self.db) as conn:
                run = WorkflowRun(self, owner_id, records(conn, owner_id), progress=progress)
            try:
                dispatcher.run([run])
            finally:
                run.close()
            state = self._final_state(run)
            with self.db.begin() as conn:
                owners_mod.set_state(conn, owner_id, state)
            return state
        finally:
            dispatcher.release(owner_id)

    def _final_state(self, run: WorkflowRun) -> OwnerState:
        if run.cancelled:
            return OwnerState.CANCELLED
        if run.suspended and not run.engine.done:
            return OwnerState.SUSPENDED
        if run.engine.state == NodeState.SUCCEEDED:
            return OwnerState.FINISHED
        return OwnerState.FAILED

    def task_for(self, number: int, node: Node) -> TaskSpec:
        """The task that runs a ready node."""
        spec, defaults = node.spec, self.spec.defaults
        workdir = str(self.workdir / _dir_name(node.path))
        resources = dict(spec.resources or defaults.resources)
        if spec.sites or defaults.sites:
            resources["sites"] = spec.sites or defaults.sites
        payload = _payload(self, node, workdir)
        if spec.kind in ("study", "toys") and spec.resources is None:
            resources = {"cpus": 0}  # its evaluations (toy batches) take the slots
        return TaskSpec(
            number=number, kind=KIND, payload={**payload, "node": node.path},
            resources=resources,
            max_attempts=spec.max_attempts or defaults.max_attempts,
            timeout_s=spec.timeout or defaults.timeout,
        )  # fmt: skip

    # --- control from another process -------------------------------------------------------

    def cancel(self) -> int:
        """Cancel; a head running it stops its nodes within seconds. Returns tasks cancelled.

        Raises:
            AccessDenied: the workflow is another user's.
        """
        owner_id = self._owner_id()
        auth.require_named(self.db, self.settings, OWNER_KIND, self.name, "cancel")
        with self.db.begin() as conn:
            owners_mod.set_state(conn, owner_id, OwnerState.CANCELLED)
            return tq.cancel_owner_tasks(conn, owner_id, "workflow cancelled")

    def suspend(self) -> None:
        """Release no new node; the nodes running finish and the head stops. :meth:`run`
        resumes it.

        Raises:
            AccessDenied: the workflow is another user's.
        """
        owner_id = self._owner_id()
        auth.require_named(self.db, self.settings, OWNER_KIND, self.name, "suspend")
        with self.db.begin() as conn:
            owners_mod.update_spec(conn, owner_id, lambda s: {**s, "suspended": True})
            owners_mod.set_state(conn, owner_id, OwnerState.SUSPENDED)

    def retry(self, paths: list[str] | None = None) -> list[str]:
        """Queue failed task nodes again (all of them, or those named); :meth:`run` goes on.

        Returns:
            The paths queued again.

        Raises:
            SpecError: a named node is not a failed task node.
            IddsError: a head is running the workflow now.
            AccessDenied: the workflow is another user's.
        """
        owner_id = self._owner_id()
        auth.require_named(self.db, self.settings, OWNER_KIND, self.name, "retry")
        with self.db.begin() as conn:
            row = owners_mod.find(conn, OWNER_KIND, self.name)
            if row.lease_holder and not owners_mod.holder_is_dead(row.lease_holder):
                if (row.lease_expires or 0) > _db_now(conn):
                    raise IddsError(f"workflow {self.name!r} is running; retry it once it stops")
            recorded = records(conn, owner_id)
            failed = {p for p, r in recorded.items() if r.state in FINAL and r.state != "succeeded"}
            chosen = sorted(failed) if not paths else paths
            wrong = [p for p in chosen if p not in failed]
            if wrong:
                raise SpecError(f"not a failed task node: {', '.join(wrong)}")
            _resubmit(conn, owner_id, [recorded[p] for p in chosen])
        return chosen

    # --- reading ----------------------------------------------------------------------------

    def _owner_id(self, create: bool = False) -> int:
        try:
            with reading(self.db) as conn:
                return int(owners_mod.find(conn, OWNER_KIND, self.name).id)
        except NotFound:
            if not create:
                raise NotFound(f"no workflow named {self.name!r}") from None
            return self.create()

    @property
    def state(self) -> str:
        with reading(self.db) as conn:
            return str(owners_mod.find(conn, OWNER_KIND, self.name).state)

    @property
    def user(self) -> str | None:
        """The user who created the workflow (None: recorded before owners were)."""
        with reading(self.db) as conn:
            return owners_mod.find(conn, OWNER_KIND, self.name).user_name

    def nodes(self) -> list[NodeInfo]:
        """Every node instance so far, parents before their parts, with its record."""
        owner_id = self._owner_id()
        with reading(self.db) as conn:
            recorded = records(conn, owner_id)
        engine = Engine(self.spec)
        replay(engine, recorded)
        return [_info(node, recorded.get(node.path)) for node in engine.walk()]

    def output(self) -> Any:
        """The workflow's output (its ``output`` expression), once it succeeded."""
        with reading(self.db) as conn:
            recorded = records(conn, self._owner_id())
        engine = Engine(self.spec)
        replay(engine, recorded)
        return engine.output

    def log_paths(self, path: str, attempt: int | None = None) -> tuple[Path, Path, int]:
        """stdout and stderr files of a node's attempt (the last by default).

        Raises:
            NotFound: no such task node.
            AccessDenied: the workflow is another user's.
        """
        from idds.commands import log_paths

        auth.require_named(self.db, self.settings, OWNER_KIND, self.name, "read the logs of")
        with reading(self.db) as conn:
            record = records(conn, self._owner_id()).get(path)
        if record is None:
            raise NotFound(f"workflow {self.name!r} has no task node {path!r}")
        attempt = attempt or max(record.attempt, 1)
        out, err = log_paths(self.workdir / _dir_name(path), attempt)
        return out, err, attempt


def load_workflow(name: str, *, settings: Settings | None = None) -> Workflow:
    """The workflow ``name`` as recorded.

    Raises:
        NotFound: no workflow of that name.
    """
    settings = settings or Settings.from_env()
    db = connect(settings.db_url)
    with reading(db) as conn:
        try:
            row = owners_mod.find(conn, OWNER_KIND, name)
        except NotFound:
            raise NotFound(f"no workflow named {name!r}") from None
    stored = {k: v for k, v in row.spec.items() if k != "suspended"}
    workflow = Workflow(WorkflowSpec.from_mapping(stored, source=f"workflow {name}"),
                        settings=settings)  # fmt: skip
    workflow._db = db
    return workflow


def list_workflows(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every workflow: name, state, user, and its task nodes by state."""
    settings = settings or Settings.from_env()
    db = connect(settings.db_url)
    o, t = owners_mod.owners.c, tq.tasks.c
    with reading(db) as conn:
        rows = conn.execute(
            sa.select(o.id, o.name, o.state, o.created, o.user_name)
            .where(o.kind == OWNER_KIND)
            .order_by(o.id)
        ).all()
        counts = conn.execute(
            sa.select(t.owner_id, t.state, sa.func.count())
            .where(t.owner_id.in_([r.id for r in rows]))
            .group_by(t.owner_id, t.state)
        ).all()
    by_owner: dict[int, dict[str, int]] = {}
    for owner_id, state, n in counts:
        by_owner.setdefault(owner_id, {})[state] = n
    return [
        {"name": r.name, "state": r.state, "user": r.user_name, "tasks": by_owner.get(r.id, {})}
        for r in rows
    ]


def _payload(workflow: Workflow, node: Node, workdir: str) -> dict[str, Any]:
    spec = node.spec
    if spec.kind == "command":
        inner: dict[str, Any] = {
            "command": node.inputs["command"], "input": node.inputs["input"],
            "workdir": workdir, "output_required": False,
        }  # fmt: skip
        if spec.container:
            inner["container"] = spec.container
        if spec.timeout or workflow.spec.defaults.timeout:
            inner["timeout_s"] = spec.timeout or workflow.spec.defaults.timeout
    elif spec.kind in ("study", "toys"):
        inner = {
            "callable": f"dag.nodes:run_{spec.kind}", "workdir": workdir,
            "kwargs": {
                "spec": node.inputs[spec.kind], "name": f"{workflow.name}.{node.path}",
                "db_url": workflow.settings.db_url, "work_dir": str(workflow.settings.work_dir),
                "spec_dir": workflow.spec.params.get("spec_dir", "."),
                "user": workflow.user,  # the node's study or scan is the workflow owner's
            },
        }  # fmt: skip
    else:
        inner = {"callable": spec.callable, "kwargs": node.inputs, "workdir": workdir}
    inner["pythonpath"] = workflow.spec.pythonpath
    if spec.files:
        return {
            "callable": "dag.nodes:with_files", "workdir": workdir,
            "pythonpath": workflow.spec.pythonpath,
            "kwargs": {"inner": inner, "files": spec.files},
        }  # fmt: skip
    return inner


def _resubmit(conn: Any, owner_id: int, chosen: list[Record]) -> None:
    t = tq.tasks.c
    start = conn.execute(sa.select(sa.func.max(t.number)).where(t.owner_id == owner_id)).scalar()
    specs = []
    for i, record in enumerate(chosen, start=(start or 0) + 1):
        row = conn.execute(
            sa.select(tq.tasks).where(t.owner_id == owner_id, t.number == record.number)
        ).one()
        specs.append(TaskSpec(
            number=i, kind=row.kind, payload=row.payload, resources=row.resources,
            site=row.site, max_attempts=row.max_attempts, timeout_s=row.timeout_s,
        ))  # fmt: skip
    tq.submit(conn, owner_id, specs)


def _db_now(conn: Any) -> float:
    from idds.db import db_now

    return float(conn.execute(sa.select(db_now())).scalar())


def _info(node: Node, record: Record | None) -> NodeInfo:
    state = str(node.state)
    if record is not None and record.state not in FINAL:
        state = str(record.state)  # pending / dispatched / running
    duration = None
    if record is not None and record.started and record.finished:
        duration = record.finished - record.started
    return NodeInfo(
        path=node.path, kind=node.kind, state=state, output=node.output, error=node.error,
        detail=node.detail, attempt=record.attempt if record else None, duration_s=duration,
        number=record.number if record else None, depth=node.path.count(".") + node.path.count("["),
    )  # fmt: skip


def _dir_name(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-\[\]]", "_", path)
