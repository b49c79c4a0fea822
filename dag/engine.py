"""The workflow engine: expands a workflow into node instances as their inputs arrive.

It is pure logic, with no database and no Ray: :class:`Engine` hands out the task nodes that
are ready (:meth:`Engine.take`) and is told how each ended (:meth:`Engine.finished`); fan-outs,
templates, conditions and loops expand as the outputs they read arrive. Given the same spec
and the same outputs it builds the same node instances with the same paths, which is how a
workflow is rebuilt from its recorded tasks after a restart.

Paths name instances: ``train``, ``process[3]`` (a fan-out's fourth item),
``visit[2].calibrate`` (a node of a template's or sub-workflow's instance),
``learn[4].step`` (a loop's fifth iteration), ``decide.then.deploy`` (a condition's branch).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from dag.expr import Expression, ExpressionError, render
from dag.spec import FlowSpec, NodeSpec, WorkflowSpec


class NodeState(enum.StrEnum):
    WAITING = "waiting"  # for its inputs
    READY = "ready"  # a task node handed out, or to be
    RUNNING = "running"  # a composite node whose parts run
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # its `when` was false, or it depends on a skipped node
    BLOCKED = "blocked"  # a node it depends on failed
    CANCELLED = "cancelled"


FINAL = frozenset(
    {NodeState.SUCCEEDED, NodeState.FAILED, NodeState.SKIPPED, NodeState.BLOCKED,
     NodeState.CANCELLED}
)  # fmt: skip
TASK_KINDS = ("callable", "command", "study", "toys")


class Node:
    """One instance of a node spec: its path, state, output and, for a composite, its parts.

    Attributes:
        inputs: for a task node that is ready, its rendered arguments (callables) or
            ``{"command": [...], "input": {...}}``.
        detail: what a composite did (``"iteration 3 of 10"``, ``"branch then"``, ...).
    """

    __slots__ = ("path", "spec", "group", "env", "state", "output", "error", "parts", "inputs",
                 "detail", "waiting_on", "dependants")  # fmt: skip  # a workflow makes many

    def __init__(self, path: str, spec: NodeSpec, group: Group, env: Mapping[str, Any]) -> None:
        self.path = path
        self.spec = spec
        self.group = group
        self.env = env
        self.state = NodeState.WAITING
        self.output: Any = None
        self.error: str | None = None
        self.parts: list[Node | Group] = []
        self.inputs: dict[str, Any] = {}
        self.detail = ""
        self.waiting_on = 0
        self.dependants: list[Node] = []

    @property
    def kind(self) -> str:
        return "foreach" if self._fans_out else self.spec.kind

    @property
    def _fans_out(self) -> bool:
        return self.spec.foreach is not None and not isinstance(self, _Part)

    def __repr__(self) -> str:
        return f"Node({self.path!r}, {self.state})"


class Group:
    """One instance of a flow (the workflow, a template use, a branch, a loop iteration)."""

    def __init__(
        self, engine: Engine, flow: FlowSpec, prefix: str, env: Mapping[str, Any],
        on_done: Callable[[Group], None],
    ) -> None:  # fmt: skip
        self.engine = engine
        self.flow = flow
        self.prefix = prefix
        self.scope = _Scope(self, env)
        self.on_done = on_done
        self.nodes: dict[str, Node] = {}
        self.open = len(flow.nodes)

    def start(self) -> None:
        for spec in self.flow.nodes:
            path = f"{self.prefix}.{spec.name}" if self.prefix else spec.name
            self.nodes[spec.name] = Node(path, spec, self, self.scope)
        for node in self.nodes.values():
            for dep in self.engine.deps[id(node.spec)]:
                self.nodes[dep].dependants.append(node)
                node.waiting_on += 1
        for node in [n for n in self.nodes.values() if n.waiting_on == 0]:
            self.engine.activate(node)  # may finish nodes, and activate their dependants

    def part_done(self, node: Node) -> None:
        self.open -= 1
        for dependant in node.dependants:
            dependant.waiting_on -= 1
            if dependant.waiting_on == 0:
                self.engine.activate(dependant)
        if self.open == 0:
            self.on_done(self)

    @property
    def failed(self) -> list[Node]:
        bad = (NodeState.FAILED, NodeState.BLOCKED, NodeState.CANCELLED)
        return [n for n in self.nodes.values() if n.state in bad]

    def output(self) -> Any:
        if self.flow.output:
            return Expression(self.flow.output).evaluate(self.scope)
        if len(self.nodes) == 1:
            return next(iter(self.nodes.values())).output
        return {name: node.output for name, node in self.nodes.items()}


class _Scope(Mapping[str, Any]):
    """What an expression in a group reads: its nodes' outputs, then the enclosing names."""

    def __init__(self, group: Group, outer: Mapping[str, Any]) -> None:
        self.group = group
        self.outer = outer

    def __getitem__(self, name: str) -> Any:
        node = self.group.nodes.get(name)
        if node is not None:
            if node.state not in (NodeState.SUCCEEDED, NodeState.SKIPPED):
                raise KeyError(name)
            return node.output
        return self.outer[name]

    def __iter__(self) -> Iterator[str]:
        yield from self.group.nodes
        yield from self.outer

    def __len__(self) -> int:
        return len(self.group.nodes) + len(self.outer)


def _layer(outer: Mapping[str, Any], **names: Any) -> Mapping[str, Any]:
    from collections import ChainMap

    return ChainMap(names, outer)  # type: ignore[arg-type]


class Engine:
    """Runs a workflow's logic. Not thread-safe: one caller drives it.

    Args:
        spec: the workflow.
    """

    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self.deps = spec.dependencies()  # found by the spec's check, not again here
        self.ready: deque[Node] = deque()
        self.tasks: dict[str, Node] = {}
        params = {k: v for k, v in spec.params.items() if k != "spec_dir"}
        env = {"params": params, "spec_dir": spec.params.get("spec_dir", ".")}
        self.root = Group(self, spec.flow, "", env, self._root_done)
        self.state = NodeState.WAITING
        self.output: Any = None
        self.error: str | None = None

    def start(self) -> None:
        self.state = NodeState.RUNNING
        self.root.start()

    def take(self, n: int) -> list[Node]:
        """Up to ``n`` task nodes that are ready to run, oldest first."""
        out: list[Node] = []
        while self.ready and len(out) < n:
            out.append(self.ready.popleft())
        return out

    def finished(
        self, path: str, state: NodeState, output: Any = None, error: str | None = None
    ) -> None:
        """A task node ended; its dependants may become ready."""
        node = self.tasks[path]
        self._finish(node, state, output, error)

    @property
    def done(self) -> bool:
        return self.state in FINAL

    def walk(self) -> Iterator[Node]:
        """Every node instance made so far, parents before their parts."""
        yield from _walk(self.root)

    # --- expansion ------------------------------------------------------------------------

    def activate(self, node: Node) -> None:
        """Its inputs are in: skip, block, expand or hand it out."""
        deps = [node.group.nodes[d] for d in self.deps[id(node.spec)]]
        if any(d.state in (NodeState.FAILED, NodeState.BLOCKED, NodeState.CANCELLED) for d in deps):
            failed = next(d.path for d in deps if d.state != NodeState.SUCCEEDED)
            return self._finish(node, NodeState.BLOCKED, error=f"{failed} did not succeed")
        if any(d.state == NodeState.SKIPPED for d in deps):
            return self._finish(node, NodeState.SKIPPED, detail="an input was skipped")
        try:
            if (
                node.spec.when
                and not node._fans_out
                and not Expression(node.spec.when).evaluate(node.env)
            ):
                return self._finish(node, NodeState.SKIPPED, detail=f"when: {node.spec.when}")
            self._expand(node, deps)
        except ExpressionError as exc:
            self._finish(node, NodeState.FAILED, error=str(exc))

    def _expand(self, node: Node, deps: list[Node]) -> None:
        spec = node.spec
        if node._fans_out:
            return self._fan_out(node)
        node.state = NodeState.RUNNING
        if spec.kind in TASK_KINDS:
            node.inputs = self._inputs(node, deps)
            node.state = NodeState.READY
            self.tasks[node.path] = node
            self.ready.append(node)
        elif spec.kind == "template":
            template = self.spec.templates[str(spec.template)]
            params = {**template.params, **render(spec.params, node.env)}
            env = {"params": params, "spec_dir": node.env["spec_dir"]}
            self._open_group(node, template.flow, node.path, env)
        elif spec.kind == "workflow":
            self._open_group(node, spec.workflow, f"{node.path}.workflow", node.env)  # type: ignore[arg-type]
        elif spec.kind == "if":
            self._branch(node)
        elif spec.kind == "loop":
            self._iterate(node, 0, render(spec.loop.initial, node.env))  # type: ignore[union-attr]

    def _inputs(self, node: Node, deps: list[Node]) -> dict[str, Any]:
        spec = node.spec
        after = {d.path.rsplit(".", 1)[-1]: d.output for d in deps if d.spec.name in spec.after}
        args = {**after, **render(spec.args, node.env)}
        if spec.kind == "command":
            return {"command": [str(a) for a in render(spec.command, node.env)], "input": args}
        if spec.kind in ("study", "toys"):
            return {spec.kind: render(getattr(spec, spec.kind), node.env), "args": args}
        return args

    def _fan_out(self, node: Node) -> None:
        spec = node.spec
        items = (
            Expression(spec.foreach).evaluate(node.env)
            if isinstance(spec.foreach, str)
            else render(spec.foreach, node.env)
        )
        if isinstance(items, int):
            items = list(range(items))
        if not isinstance(items, list):
            raise ExpressionError(f"foreach gave a {type(items).__name__}, not a list")
        node.state = NodeState.RUNNING
        node.detail = f"{len(items)} items"
        node.waiting_on = len(items)
        if not items:
            return self._finish(node, NodeState.SUCCEEDED, [])
        node.parts = [
            _Part(f"{node.path}[{i}]", spec, node, _layer(node.env, item=item, index=i))
            for i, item in enumerate(items)
        ]
        for part in list(node.parts):
            self.activate(part)  # type: ignore[arg-type]

    def _branch(self, node: Node) -> None:
        spec = node.spec
        take = bool(Expression(str(spec.if_)).evaluate(node.env))
        branch = spec.then if take else spec.else_
        node.detail = f"branch {'then' if take else 'else'}"
        if branch is None:
            return self._finish(node, NodeState.SKIPPED)
        self._open_group(node, branch, f"{node.path}.{'then' if take else 'else'}", node.env)

    def _iterate(self, node: Node, i: int, previous: Any) -> None:
        loop = node.spec.loop
        assert loop is not None
        env = _layer(node.env, iteration=i, previous=previous)
        node.detail = f"iteration {i + 1} (max {loop.max})"

        def on_done(group: Group) -> None:
            if group.failed:
                return self._finish(node, NodeState.FAILED, error=_why(group))
            try:
                output = group.output()
                stop = bool(loop.until and Expression(loop.until).evaluate(group.scope))
            except ExpressionError as exc:
                return self._finish(node, NodeState.FAILED, error=str(exc))
            if stop or i + 1 >= loop.max:
                node.detail = f"{i + 1} iteration(s), " + ("until held" if stop else "max reached")
                return self._finish(node, NodeState.SUCCEEDED, output)
            self._iterate(node, i + 1, output)

        group = Group(self, loop.body, f"{node.path}[{i}]", env, on_done)
        node.parts.append(group)
        group.start()

    def _open_group(self, node: Node, flow: FlowSpec, prefix: str, env: Mapping[str, Any]) -> None:
        def on_done(group: Group) -> None:
            if group.failed:
                return self._finish(node, NodeState.FAILED, error=_why(group))
            try:
                self._finish(node, NodeState.SUCCEEDED, group.output())
            except ExpressionError as exc:
                self._finish(node, NodeState.FAILED, error=str(exc))

        group = Group(self, flow, prefix, env, on_done)
        node.parts.append(group)
        group.start()

    # --- completion -----------------------------------------------------------------------

    def _finish(
        self, node: Node, state: NodeState, output: Any = None, error: str | None = None,
        detail: str | None = None,
    ) -> None:  # fmt: skip
        node.state, node.output, node.error = state, output, error
        if detail is not None:
            node.detail = detail
        if isinstance(node, _Part):
            node.parent.waiting_on -= 1
            if node.parent.waiting_on == 0:
                self._fan_in(node.parent)
        else:
            node.group.part_done(node)

    def _fan_in(self, node: Node) -> None:
        parts = [p for p in node.parts if isinstance(p, Node)]
        bad = [p for p in parts if p.state in (NodeState.FAILED, NodeState.BLOCKED)]
        if bad:
            error = f"{len(bad)} of {len(parts)} failed, first {bad[0].path}: {bad[0].error}"
            return self._finish(node, NodeState.FAILED, error=error)
        self._finish(node, NodeState.SUCCEEDED, [p.output for p in parts])

    def _root_done(self, group: Group) -> None:
        if group.failed:
            self.state, self.error = NodeState.FAILED, _why(group)
            return
        self.state = NodeState.SUCCEEDED
        try:
            self.output = group.output()
        except ExpressionError as exc:
            self.state, self.error = NodeState.FAILED, str(exc)


class _Part(Node):
    """One item of a fan-out."""

    __slots__ = ("parent",)

    def __init__(self, path: str, spec: NodeSpec, parent: Node, env: Mapping[str, Any]) -> None:
        super().__init__(path, spec, parent.group, env)
        self.parent = parent


def _why(group: Group) -> str:
    first = group.failed[0]
    return f"{first.path}: {first.error or first.state}"


def _walk(group: Group) -> Iterator[Node]:
    for node in group.nodes.values():
        yield from _walk_node(node)


def _walk_node(node: Node) -> Iterator[Node]:
    yield node
    for part in node.parts:
        if isinstance(part, Group):
            yield from _walk(part)
        else:
            yield from _walk_node(part)
