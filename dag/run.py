"""A workflow as the dispatcher drives it: ready nodes become tasks, results feed the engine.

A workflow's tasks carry their node's path in their payload. To resume, the engine is run
again from the start and every node it hands out that has a recorded task is answered from
the record (a result, a failure, or: still in flight), so that only what never ran is
handed in again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dag.engine import TASK_KINDS, Engine, Node, NodeState
from dag.parts import Parts
from idds.dispatch import TaskOwner
from idds.tasks import FINAL, TaskSpec, TaskState

if TYPE_CHECKING:
    from dag.workflow import Workflow
    from idds.records import Records

KIND = "dag-node"
_NODE_STATE = {
    TaskState.SUCCEEDED: NodeState.SUCCEEDED,
    TaskState.FAILED: NodeState.FAILED,
    TaskState.CANCELLED: NodeState.CANCELLED,
}


@dataclass(frozen=True)
class Record:
    """The latest task of a node (a retry by hand adds a later one)."""

    number: int
    state: TaskState
    result: Any
    error: str | None
    attempt: int
    started: float | None
    finished: float | None
    site: str | None


def records(store: Records, owner_id: int) -> dict[str, Record]:
    """Each node path's latest task."""
    out: dict[str, Record] = {}
    for t in store.tasks(owner_id):
        out[t.payload["node"]] = Record(
            t.number, t.state, t.result, t.error, t.attempt, t.started, t.finished, t.site
        )
    return out


def replay(engine: Engine, recorded: dict[str, Record]) -> list[Node]:
    """Start ``engine`` and answer every node it hands out from ``recorded``.

    Returns:
        The nodes handed out that have no final record: in flight (their record says which
        task) or never run.
    """
    engine.start()
    open_nodes: list[Node] = []
    while engine.ready:
        for node in engine.take(len(engine.ready)):
            record = recorded.get(node.path)
            if record is not None and record.state in FINAL:
                output = _output(record.result) if record.state is TaskState.SUCCEEDED else None
                engine.finished(node.path, _NODE_STATE[record.state], output, record.error)
            else:
                open_nodes.append(node)
    return open_nodes


def _output(result: Any) -> Any:
    return result


class WorkflowRun(TaskOwner):
    """Hands the engine's ready nodes to the dispatcher as tasks and tells it their results."""

    def __init__(
        self, workflow: Workflow, owner_id: int, recorded: dict[str, Record], *,
        progress: bool = False,
    ) -> None:  # fmt: skip
        self.workflow = workflow
        self.owner_id = owner_id
        self.parallel = workflow.spec.parallel
        self.ahead = self.parallel  # ready nodes wait on nothing in flight: claim them ahead
        self.engine = Engine(workflow.spec)
        self.cancelled = False
        self.suspended = False
        self.parts = Parts(workflow)
        self._failed = 0
        self._path_of: dict[int, str] = {}
        self._queue: list[Node] = []
        self._next = max((r.number for r in recorded.values()), default=-1) + 1
        for node in replay(self.engine, recorded):
            record = recorded.get(node.path)
            if record is None:
                self._queue.append(node)
            else:
                self._path_of[record.number] = node.path
        self._bar = _progress_bar(workflow.name, recorded, self._open()) if progress else None
        self._counted = time.monotonic()

    def new_tasks(self, free: int) -> list[TaskSpec]:
        if self.suspended or self.cancelled:
            return []
        self._queue += self.engine.take(max(free - len(self._queue), 0))
        batch, self._queue = self._queue[:free], self._queue[free:]
        specs = []
        for node in batch:
            number, self._next = self._next, self._next + 1
            self._path_of[number] = node.path
            specs.append(self.workflow.task_for(number, node))
        return specs

    def on_final(self, number: int, state: TaskState, result: Any, error: str | None) -> None:
        path = self._path_of.pop(number)
        self.engine.finished(path, _NODE_STATE[state], result, error)
        if self._bar is not None:
            self._bar.update(1)
            if state is not TaskState.SUCCEEDED:
                self._failed += 1
                self._bar.set_postfix(failed=self._failed, refresh=False)
            self._count_tasks()

    def _count_tasks(self, every_s: float = 0.5) -> None:
        """Set the bar's total to the task nodes known: those done and those not yet run
        (a fan-out or a loop makes more as it goes); at most every ``every_s`` seconds."""
        if self._bar is None or time.monotonic() - self._counted < every_s:
            return
        self._counted = time.monotonic()
        self._bar.total = self._bar.n + self._open()
        self._bar.refresh()

    def _open(self) -> int:
        """The task nodes known that have not ended yet."""
        open_states = (NodeState.WAITING, NodeState.READY, NodeState.RUNNING)
        return sum(1 for n in self.engine.walk() if n.kind in TASK_KINDS and n.state in open_states)

    def done(self) -> bool:
        if self.cancelled or self.engine.done:
            return True
        return self.suspended and not self._path_of

    def on_cancel(self) -> None:
        self.cancelled = True
        self.parts.cancel()

    def on_question(self, number: int, question: Any) -> Any:
        """A study or toy-scan node's worker asks about its part (:mod:`dag.parts`)."""
        return self.parts.answer(question)

    def on_spec(self, spec: dict[str, Any]) -> None:
        self.suspended = bool(spec.get("suspended"))

    def close(self) -> None:
        self.parts.close()
        if self._bar is not None:
            self._count_tasks(every_s=0.0)
            self._bar.close()


def _progress_bar(name: str, recorded: dict[str, Record], left: int) -> Any:
    from tqdm.auto import tqdm

    done = sum(1 for r in recorded.values() if r.state in FINAL)
    return tqdm(desc=name, initial=done, total=done + left, unit="node", dynamic_ncols=True)
