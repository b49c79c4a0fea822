"""A workflow in Jupyter: its state, its graph (SVG, through graphviz) and its nodes.

``Workflow`` and :func:`~dag.load_workflow`'s result show themselves this way as a cell's
value::

    wf = Workflow.from_file("wf.yaml")
    wf.run()
    wf          # state, counts by node state, the graph, the nodes
"""

from __future__ import annotations

import html
from collections import Counter
from typing import TYPE_CHECKING

from dag.graph import svg_graph, text_graph
from idds.errors import NotFound

if TYPE_CHECKING:
    from dag.workflow import NodeInfo, Workflow

__all__ = ["workflow_html"]

_STYLE = "border-collapse:collapse;font-size:90%"
#: Up to this many node instances the graph is drawn instance by instance (SVG); above it,
#: the spec's structure is shown as text (graphviz would take long and draw a wall of boxes).
GRAPH_NODES = 100


def workflow_html(workflow: Workflow, *, rows: int = 30) -> str:
    """An HTML summary of a workflow: state, node counts by state, graph and first nodes.

    Args:
        workflow: the workflow (created or not yet).
        rows: how many node instances to list.

    Returns:
        The HTML, every recorded text escaped.
    """
    head = f"<b>Workflow {_e(workflow.name)}</b>"
    try:
        state = workflow.state
    except NotFound:
        graph = f"<pre>{_e(text_graph(workflow.spec))}</pre>"
        return f"<div>{head} · not created yet<br>{graph}</div>"
    nodes = workflow.nodes()
    counts = ", ".join(f"{n} {s}" for s, n in sorted(Counter(n.state for n in nodes).items()))
    svg = svg_graph(workflow.spec, nodes) if len(nodes) <= GRAPH_NODES else None
    graph = svg if svg is not None else f"<pre>{_e(text_graph(workflow.spec))}</pre>"
    return (f"<div>{head} · {_e(state)} · {len(nodes)} nodes: {_e(counts)}<br>{graph}"
            f"{_table(nodes, rows)}</div>")  # fmt: skip


def _table(nodes: list[NodeInfo], rows: int) -> str:
    cells = "".join(
        f"<tr><td><code>{_e(n.path)}</code></td><td>{_e(n.kind)}</td><td>{_e(n.state)}</td>"
        f"<td>{'' if n.attempt is None else n.attempt}</td><td>{_duration(n)}</td>"
        f"<td><code>{_e(_short(n.error or n.output))}</code></td></tr>"
        for n in nodes[:rows]
    )
    more = f"<br>… and {len(nodes) - rows} more nodes" if len(nodes) > rows else ""
    head = ("<tr><th>node</th><th>kind</th><th>state</th><th>attempt</th><th>time</th>"
            "<th>output or error</th></tr>")  # fmt: skip
    return f"<table style='{_STYLE}'>{head}{cells}</table>{more}"


def _duration(node: NodeInfo) -> str:
    return "" if node.duration_s is None else f"{node.duration_s:.3g} s"


def _short(value: object, limit: int = 80) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _e(text: object) -> str:
    return html.escape(str(text))
