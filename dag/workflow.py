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
from typing import Any

from dag.engine import Engine, Node, NodeState
from dag.run import KIND, Record, WorkflowRun, records, replay
from dag.spec import WorkflowSpec, gc_paused, load_spec_file
from idds.client import records_for
from idds.config import Settings, path_inside
from idds.db import require
from idds.dispatch import Dispatcher
from idds.errors import IddsError, IllegalTransition, NotFound, SpecError
from idds.handle import OwnerHandle
from idds.owners import OwnerState
from idds.tasks import FINAL, TaskSpec, TaskState

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


class Workflow(OwnerHandle):
    """A workflow spec bound to a database.

    Args:
        spec: a :class:`WorkflowSpec`, or a mapping to validate into one.
        settings: database, Ray and work dir (from the environment by default).

    Raises:
        SpecError: the spec does not validate.
    """

    kind = OWNER_KIND
    noun = "workflow"
    command = "dag"

    def __init__(self, spec: WorkflowSpec | dict[str, Any], *, settings: Settings | None = None):
        if not isinstance(spec, WorkflowSpec):
            spec = WorkflowSpec.from_mapping(spec)
        self.spec = spec
        self.settings = settings or Settings.from_env()
        self._engine = None

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
    def workdir(self) -> Path:
        key = (str(self.settings.work_dir), self.name)
        cached = getattr(self, "_workdir", None)
        if cached is None or cached[0] != key:  # resolved once, not once per node
            cached = self._workdir = (key, path_inside(self.settings.work_dir, "dag", self.name))
        return cached[1]

    # --- running ----------------------------------------------------------------------------

    def create(self) -> int:
        """Record the workflow; returns its id.

        Raises:
            Exists: a workflow of that name exists already.
        """
        return self.create_owner(self.spec.to_mapping())

    def run(self, *, progress: bool = False) -> str:
        """Run until every node is final, the workflow is cancelled or suspended; creates it
        the first time, resumes it afterwards (recorded results are not run again).

        Returns:
            The workflow's state: ``finished``, ``failed``, ``suspended`` or ``cancelled``.

        Raises:
            IddsError: another live head runs it.
            AccessDenied: it is another user's suspended workflow.
        """
        if self.remote:  # a head of the server runs it
            owner_id = self.start_or_resume(self.create, self.spec.to_mapping())
            if self._reactivate(owner_id):
                return str(self.follow(progress=progress))
            return OwnerState.CANCELLED
        with gc_paused():  # a large workflow's spec and engine are built here
            created_before = self._created
            owner_id = self.start_or_resume(self.create, self.spec.to_mapping())
            fresh = self._created and not created_before  # active: its spec is not read back
            if not fresh and not self._reactivate(owner_id):
                return OwnerState.CANCELLED
        from idds.runtime import ensure_ray

        ensure_ray(self.settings.ray_address)  # the cluster asked for (--ray-address)
        dispatcher = Dispatcher(self.engine, settings=self.settings)
        with self.held(dispatcher, [owner_id]):
            with gc_paused():
                recorded = records(self.records, owner_id)
                run = WorkflowRun(self, owner_id, recorded, progress=progress)
            try:
                dispatcher.run([run])
            finally:
                run.close()
            state = self._final_state(run)
            if state != OwnerState.SUSPENDED and self.record().state == OwnerState.SUSPENDED:
                self.records.set_state(owner_id, OwnerState.ACTIVE)  # it ended while suspended
            self.finish(state)
            return state

    def _reactivate(self, owner_id: int) -> bool:
        """Make the workflow active again (a suspended one: if the acting user may resume it);
        False if it is cancelled."""
        record = self.record()
        if record.state == OwnerState.SUSPENDED:
            self.require("resume")
        if record.state == OwnerState.CANCELLED:
            return False
        if record.state == OwnerState.ACTIVE and not record.spec.get("suspended"):
            return True  # nothing to change: a spec of 100,000 nodes is not rewritten
        try:
            self.records.update_spec(
                owner_id, lambda s: {**s, "suspended": False}, state=OwnerState.ACTIVE
            )
        except IllegalTransition:  # cancelled meanwhile
            return False
        return True

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

    def suspend(self) -> None:
        """Release no new node; the nodes running finish and the head stops. :meth:`run`
        resumes it.

        Raises:
            NotFound: no workflow of that name.
            AccessDenied: the workflow is another user's.
        """
        self.require("suspend")
        self.records.update_spec(
            self.owner_id, lambda s: {**s, "suspended": True}, state=OwnerState.SUSPENDED
        )

    def retry(self, paths: list[str] | None = None) -> list[str]:
        """Queue failed task nodes again (all of them, or those named); :meth:`run` goes on.

        Returns:
            The paths queued again.

        Raises:
            SpecError: a named node is not a failed task node.
            IddsError: a head is running the workflow now.
            AccessDenied: the workflow is another user's.
        """
        self.require("retry")
        record = self.record()
        if self.records.held(record):
            raise IddsError(f"workflow {self.name!r} is running; retry it once it stops")
        recorded = records(self.records, record.id)
        failed = {
            p for p, r in recorded.items() if r.state in FINAL and r.state != TaskState.SUCCEEDED
        }
        chosen = sorted(failed) if not paths else paths
        wrong = [p for p in chosen if p not in failed]
        if wrong:
            raise SpecError(f"not a failed task node: {', '.join(wrong)}")
        numbers = [recorded[p].number for p in chosen]
        self.records.resubmit(record.id, numbers, continue_attempts=True)  # logs not reused
        return chosen

    # --- reading ----------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        from dag.notebook import workflow_html

        return workflow_html(self)

    def nodes(self) -> list[NodeInfo]:
        """Every node instance so far, parents before their parts, with its record."""
        recorded = records(self.records, self.owner_id)
        engine = Engine(self.spec)
        replay(engine, recorded)
        return [_info(node, recorded.get(node.path)) for node in engine.walk()]

    def output(self) -> Any:
        """The workflow's output (its ``output`` expression), once it succeeded."""
        recorded = records(self.records, self.owner_id)
        engine = Engine(self.spec)
        replay(engine, recorded)
        return engine.output

    def _node_record(self, path: str) -> Record:
        record = records(self.records, self.owner_id).get(path)
        if record is None:
            raise NotFound(f"workflow {self.name!r} has no task node {path!r}")
        return record

    def node_number(self, path: str) -> int:
        """The task number of task node ``path``.

        Raises:
            NotFound: it has no task node of that path.
        """
        return self._node_record(path).number

    def log_paths(self, path: str, attempt: int | None = None) -> tuple[Path, Path, int]:
        """stdout and stderr files of a node's attempt (the last by default).

        Raises:
            NotFound: no such task node.
            AccessDenied: the workflow is another user's.
        """
        from idds.commands import log_paths

        self.require("read the logs of")
        record = self._node_record(path)
        attempt = attempt or max(record.attempt, 1)
        out, err = log_paths(self.workdir / _dir_name(path), attempt)
        return out, err, attempt


def load_workflow(name: str, *, settings: Settings | None = None) -> Workflow:
    """The workflow ``name`` as recorded.

    Raises:
        NotFound: no workflow of that name.
    """
    settings = settings or Settings.from_env()
    if not settings.url:
        require(settings.db_url, f"no workflow named {name!r}")
    found = records_for(settings)
    try:
        row = found.owner(OWNER_KIND, name)
    except NotFound:
        raise NotFound(f"no workflow named {name!r}") from None
    stored = {k: v for k, v in row.spec.items() if k != "suspended"}
    workflow = Workflow(WorkflowSpec.from_mapping(stored, source=f"workflow {name}"),
                        settings=settings)  # fmt: skip
    workflow.attach(found)
    return workflow


def list_workflows(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every workflow: name, state, user, and its task nodes by state."""
    settings = settings or Settings.from_env()
    records = records_for(settings)
    found = records.owners(OWNER_KIND, parent_id=None)
    shown = records.shown(found)
    return [
        {"name": w.name, "state": shown[w.id].state, "user": w.user,
         "tasks": {shown[w.id].task_state(s): n for s, n in w.tasks.items() if n}}
        for w in found
    ]  # fmt: skip


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
    elif spec.kind in ("study", "toys"):  # the head runs it; the worker waits (dag.parts)
        inner = {
            "callable": "dag.nodes:await_part", "workdir": workdir,
            "kwargs": {
                "kind": spec.kind, "name": f"{workflow.name}.{node.path}",
                "spec": node.inputs[spec.kind],
                "spec_dir": workflow.spec.params.get("spec_dir", "."),
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
