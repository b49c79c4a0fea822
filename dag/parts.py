"""A workflow's study and toy-scan nodes, run by its head: the node's worker only waits.

When a study (or scan) node runs, its worker asks the workflow's head (through the head's
channel, :func:`dag.nodes.await_part`). The head creates the study as a part of the workflow
(its parent recorded, its user the workflow's), runs it in a child head process of its own
(``python -m idds.serve``, which gets the database URL from the head, never from a payload),
and answers with its state, and once it finished with its result. So a payload never holds a
database URL or a token, and no worker opens the database.
"""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from idds.owners import OwnerState

if TYPE_CHECKING:
    from dag.workflow import Workflow

log = logging.getLogger("dag.parts")
#: A part whose head stopped this many times with an error is failed.
MAX_STARTS = 3


@dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    starts: int = 1
    started: float = field(default_factory=time.monotonic)


class Parts:
    """The parts (study and scan nodes) of one running workflow, and their child heads.

    Args:
        workflow: the workflow (its settings hold the database; its record, the parts' user).
    """

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.children: dict[str, _Child] = {}
        self._handles: dict[str, Any] = {}

    def answer(self, question: dict[str, Any]) -> dict[str, Any]:
        """The state of the part a node's worker waits for (created and started on the first
        question): ``{"state": ..., "result": ...}``.

        Raises:
            ValueError: not a question about a part (the worker gets the message).
        """
        kind, name = question.get("part"), question.get("name")
        if kind not in ("study", "toys") or not isinstance(name, str):
            raise ValueError("a node may ask only about its study or toy scan")
        handle = self._handle(kind, name, question)
        record = handle.record()
        if record.state != OwnerState.ACTIVE:
            return self._ended(kind, handle, str(record.state))
        return self._keep_running(handle, record)

    def _handle(self, kind: str, name: str, question: dict[str, Any]) -> Any:
        if name not in self._handles:
            from dag import nodes

            owner = self.workflow.record()
            open_part = nodes.open_study if kind == "study" else nodes.open_scan
            self._handles[name] = open_part(
                question["spec"], name, self.workflow.settings, str(question.get("spec_dir", ".")),
                user=owner.user, parent_id=owner.id,
            )  # fmt: skip
        return self._handles[name]

    def _ended(self, kind: str, handle: Any, state: str) -> dict[str, Any]:
        from dag import nodes

        self._reap(handle.name)
        if state != "finished":
            return {"state": state}
        result = nodes.study_result(handle) if kind == "study" else nodes.scan_result(handle)
        return {"state": "finished", "result": result}

    def _keep_running(self, handle: Any, record: Any) -> dict[str, Any]:
        """Start a head for the part where none runs it; a part whose head keeps failing is
        failed."""
        child = self.children.get(handle.name)
        if child is not None and child.proc.poll() is None:
            return {"state": "active"}
        if handle.records.held(record):
            return {"state": "active"}  # a head of an earlier run of the workflow holds it
        starts = child.starts + 1 if child else 1
        if starts > MAX_STARTS:
            return {"state": "failed", "why": f"its head stopped {MAX_STARTS} times with an error"}
        self.children[handle.name] = _Child(self._spawn(handle, record.id), starts)
        return {"state": "active"}

    def _spawn(self, handle: Any, owner_id: int) -> subprocess.Popen[bytes]:
        import ray

        from idds.serve import spawn_head

        settings = self.workflow.settings
        address = settings.ray_address or ray.get_runtime_context().gcs_address
        log.info("running %s %r for workflow %r", handle.noun, handle.name, self.workflow.name)
        return spawn_head(settings, owner_id, handle.owner_kind, handle.name, address)

    def _reap(self, name: str) -> None:
        child = self.children.get(name)
        if child is not None and child.proc.poll() is not None:
            del self.children[name]

    def cancel(self) -> None:
        """Cancel the parts still running (the workflow was cancelled)."""
        for name, handle in self._handles.items():
            if handle.record().state == OwnerState.ACTIVE:
                handle.records.cancel(handle.owner_id, f"workflow {self.workflow.name!r} cancelled")
            self._reap(name)

    def close(self) -> None:
        """Interrupt the child heads still running (they record what they hold)."""
        import signal

        for child in self.children.values():
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGINT)
        for child in self.children.values():
            try:
                child.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.proc.kill()
        self.children.clear()
