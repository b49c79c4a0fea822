"""A workflow's graph: as text for the terminal, and as a PNG through graphviz."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dag.spec import FlowSpec, NodeSpec, WorkflowSpec

if TYPE_CHECKING:
    from dag.workflow import NodeInfo

_COLOURS = {
    "succeeded": "palegreen", "failed": "salmon", "running": "lightblue",
    "dispatched": "lightblue", "pending": "lightyellow", "ready": "lightyellow",
    "skipped": "lightgrey", "blocked": "orange", "cancelled": "grey",
}  # fmt: skip


def text_graph(spec: WorkflowSpec) -> str:
    """The spec's nodes in dependency order, each with what it waits for and what it is."""
    return "\n".join(_flow_lines(spec, spec.flow, 0))


def _flow_lines(spec: WorkflowSpec, flow: FlowSpec, depth: int) -> list[str]:
    from dag.engine import Engine

    deps = Engine(spec).deps
    lines = []
    for node in flow.nodes:
        after = sorted(deps.get(id(node), set()) | set(node.after))
        arrow = f" <- {', '.join(after)}" if after else ""
        lines.append(f"{'  ' * depth}{node.name} [{_describe(node)}]{arrow}")
        for label, sub in _subs(spec, node):
            lines.append(f"{'  ' * (depth + 1)}{label}:")
            lines += _flow_lines(spec, sub, depth + 2)
    return lines


def _describe(node: NodeSpec) -> str:
    what = node.kind if node.kind != "template" else f"template {node.template}"
    if node.foreach is not None:
        what += f", foreach {node.foreach if isinstance(node.foreach, str) else len(node.foreach)}"
    if node.when:
        what += f", when {node.when}"
    if node.if_:
        what = f"if {node.if_}"
    if node.loop:
        what = f"loop max {node.loop.max}" + (
            f" until {node.loop.until}" if node.loop.until else ""
        )
    return what


def _subs(spec: WorkflowSpec, node: NodeSpec) -> list[tuple[str, FlowSpec]]:
    subs = [("then", node.then), ("else", node.else_), ("workflow", node.workflow)]
    if node.loop:
        subs.append(("body", node.loop.body))
    if node.template:
        subs.append((f"template {node.template}", spec.templates[node.template].flow))
    return [(label, f) for label, f in subs if f is not None]


def write_png(spec: WorkflowSpec, nodes: Sequence[NodeInfo], path: Path) -> str:
    """Draw the node instances, coloured by state, to ``path``; says what it did.

    Large workflows are drawn by node spec (instances counted), not instance by instance.
    """
    dot = _digraph(spec, nodes)
    if isinstance(dot, str):
        return f"no PNG: {dot}"
    dot.render(outfile=str(path), format="png", cleanup=True)
    return f"graph written to {path}"


def svg_graph(spec: WorkflowSpec, nodes: Sequence[NodeInfo]) -> str | None:
    """The node instances, coloured by state, as SVG text (None without graphviz)."""
    dot = _digraph(spec, nodes)
    return None if isinstance(dot, str) else dot.pipe(format="svg", encoding="utf-8")


def _digraph(spec: WorkflowSpec, nodes: Sequence[NodeInfo]) -> Any:
    """The graphviz graph of the first 500 instances, or why there is none."""
    try:
        import graphviz
    except ImportError:
        return "the graphviz Python package is not installed (pip install graphviz)"
    if shutil.which("dot") is None:
        return "graphviz's `dot` program is not installed (apt-get install graphviz)"
    dot = graphviz.Digraph(spec.name, graph_attr={"rankdir": "LR"})
    for node in nodes[:500]:
        colour = _COLOURS.get(node.state, "white")
        dot.node(node.path, f"{node.path}\n{node.state}", style="filled", fillcolor=colour)
        parent = _parent(node.path)
        if parent:
            dot.edge(parent, node.path, style="dashed")
    return dot


def _parent(path: str) -> str | None:
    cut = max(path.rfind("."), path.rfind("["))
    if cut <= 0:
        return None
    parent = path[:cut]
    return parent.removesuffix(".then").removesuffix(".else").removesuffix(".workflow")
