"""The Workflows page: each workflow's graph coloured by node state, its node table (loop
iterations and branches in ``detail``), and a task node's logs, read through ``dag``'s API."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import data
from dashboard._common import (
    acting_settings,
    actor,
    back_link,
    link_table,
    live,
    logs_of,
    records,
    service,
    source,
    when,
)
from dashboard.workflow_graph import grouped_figure
from idds.errors import AccessDenied
from idds.tasks import TaskState

if TYPE_CHECKING:
    from dag import NodeInfo, WorkflowSpec

KIND = "workflow"
#: Node instances drawn in the graph (the table lists them all).
GRAPH_LIMIT = 300
#: Above this many node instances, the graph shows one box per spec node (a fan-out's
#: items, a loop's iterations together) instead of one mark per instance.
GROUP_ABOVE = 40
COLOURS = {
    "succeeded": "#2ca02c", "failed": "#d62728", "running": "#1f77b4", "dispatched": "#1f77b4",
    "pending": "#ffbf00", "ready": "#ffbf00", "waiting": "#c7c7c7", "skipped": "#9e9e9e",
    "blocked": "#ff7f0e", "cancelled": "#7f7f7f",
}  # fmt: skip
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TEMPLATE = re.compile(r"\$\{([^}]*)\}")


@st.cache_resource(show_spinner=False, max_entries=8)
def _nodes(url: str, name: str, version: tuple[Any, ...]) -> tuple[Any, list[NodeInfo]]:
    from dag import load_workflow

    workflow = load_workflow(name, settings=acting_settings())
    return workflow, workflow.nodes()


def render() -> None:
    """Draw the page."""
    rows = data.owners_of(records(), KIND)
    name = st.query_params.get("workflow")
    if name:  # a workflow's own page (its name in the list links here)
        back_link("workflows", "All workflows")
        state = next((r.state for r in rows if r.name == name), None)
        if state is None:
            st.warning(f"No workflow named {name!r}.")
            return
        live(lambda: _workflow(name), active=state == "active", key="workflows-refresh")
        return
    st.title("Workflows")
    if not rows:
        st.info("No workflow yet: `idds dag launch workflow.yaml` starts one.")
        return
    live(_list, active=any(r.state == "active" for r in rows), key="workflows-refresh")


def _list() -> None:
    rows = data.owners_of(records(), KIND)
    frame = _list_frame(rows, data.shown_states(records(), rows))
    link_table(frame, page="workflows", param="workflow")
    st.caption("Open a workflow by its name.")


def _list_frame(rows: list[data.OwnerRecord], states: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame([
        {"name": r.name, "user": r.user, "state": states[r.id],
         "nodes in spec": len(r.spec.get("nodes", [])),
         "tasks": sum(r.tasks.values()), "succeeded": r.tasks[TaskState.SUCCEEDED],
         "failed": r.tasks[TaskState.FAILED], "created (UTC)": when(r.created)}
        for r in rows
    ])  # fmt: skip


def _workflow(name: str) -> None:
    version = data.owner_version(records(), (KIND,), name)
    workflow, nodes = _nodes(source(), name, version)
    st.header(f"Workflow {name}")
    states = pd.Series([n.state for n in nodes], dtype="object").value_counts()
    cols = st.columns(5)
    cols[0].metric("State", version[1])
    cols[1].metric("Nodes", len(nodes), help="Every node instance, as `idds dag show` lists.")
    cols[2].metric("Tasks", sum(n.number is not None for n in nodes),
                   help="The nodes that run, as `idds dag list` counts.")  # fmt: skip
    cols[3].metric("Succeeded", int(states.get("succeeded", 0)))
    cols[4].metric("Failed", int(states.get("failed", 0)))
    if len(nodes) > GROUP_ABOVE:
        figure = grouped_figure(workflow.spec, nodes, COLOURS)
    else:
        figure = graph_figure(workflow.spec, nodes)
    st.plotly_chart(figure, key="graph")
    st.subheader("Nodes")
    st.dataframe(_nodes_frame(nodes), hide_index=True)
    _logs(workflow, nodes)


def _parent(path: str) -> str | None:
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else None


def dependencies(spec: WorkflowSpec) -> dict[str, set[str]]:
    """Top-level node -> the top-level nodes it waits for: its ``after`` and the names its
    expressions use (``foreach``, ``when``, ``if``, a loop's ``until`` and every ``${...}``)."""
    names = {n.name for n in spec.nodes}
    return {n.name: (set(n.after) | (_names_used(n) & names)) - {n.name} for n in spec.nodes}


def _names_used(node: Any) -> set[str]:
    loop = node.loop
    values = [node.args, node.params, loop.initial if loop else None]
    templated = _TEMPLATE.findall(json.dumps(values, default=str))
    bare = [node.when, node.if_, loop.until if loop else None]
    if isinstance(node.foreach, str):
        bare.append(node.foreach)
    text = " ".join([*templated, *(b for b in bare if b)])
    return set(_NAME.findall(text))


def _levels(deps: dict[str, set[str]]) -> dict[str, int]:
    level: dict[str, int] = {}

    def depth(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in level:
            ups = [u for u in deps.get(name, ()) if u not in seen]
            level[name] = 1 + max((depth(u, seen | {name}) for u in ups), default=-1)
        return level[name]

    for name in deps:
        depth(name)
    return level


def graph_figure(spec: WorkflowSpec, nodes: list[NodeInfo]) -> go.Figure:
    """The node instances as a graph, coloured by state: dependencies between top-level nodes
    (solid) and each part under the node it belongs to (dotted: fan-out items, loop
    iterations, branches, sub-workflows). Columns follow the dependencies.

    Args:
        spec: the workflow's spec.
        nodes: its node instances (``Workflow.nodes()``).

    Returns:
        The figure (at most :data:`GRAPH_LIMIT` instances drawn).
    """
    shown = nodes[:GRAPH_LIMIT]
    deps = dependencies(spec)
    level = _levels(deps)
    pos: dict[str, tuple[float, float]] = {}
    rows: dict[float, int] = {}
    for n in shown:
        top = re.split(r"[.\[]", n.path, maxsplit=1)[0]
        x = level.get(top, 0) + 0.35 * n.depth
        rows[x] = rows.get(x, 0) + 1
        pos[n.path] = (x, -rows[x])
    fig = go.Figure()
    solid = [(u, d) for d, ups in deps.items() for u in ups if u in pos and d in pos]
    dotted = [(p, n.path) for n in shown if (p := _parent(n.path)) in pos]
    for edges, dash in ((solid, "solid"), (dotted, "dot")):
        xs, ys = _segments(edges, pos)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                                 line={"color": "#888", "dash": dash, "width": 1}))  # fmt: skip
    for state in sorted({n.state for n in shown}):
        group = [n for n in shown if n.state == state]
        fig.add_trace(go.Scatter(
            x=[pos[n.path][0] for n in group], y=[pos[n.path][1] for n in group],
            mode="markers+text", text=[n.path for n in group], textposition="middle right",
            marker={"size": 16, "color": COLOURS.get(state, "#444")}, name=state,
            hovertext=[f"{n.path}: {n.kind}, {n.state} {n.detail}" for n in group],
        ))  # fmt: skip
    title = "Graph" if len(nodes) <= GRAPH_LIMIT else f"Graph (first {GRAPH_LIMIT} nodes)"
    right = max((x for x, _ in pos.values()), default=0.0) + 0.8  # room for the labels
    height = max(300, 28 * max(rows.values(), default=1))
    fig.update_layout(title=title, xaxis={"visible": False, "range": [-0.2, right]},
                      yaxis={"visible": False}, height=height)  # fmt: skip
    return fig


def _segments(
    edges: list[tuple[str, str]], pos: dict[str, tuple[float, float]]
) -> tuple[list[float | None], list[float | None]]:
    xs: list[float | None] = []
    ys: list[float | None] = []
    for a, b in edges:
        xs += [pos[a][0], pos[b][0], None]
        ys += [pos[a][1], pos[b][1], None]
    return xs, ys


def _nodes_frame(nodes: list[NodeInfo]) -> pd.DataFrame:
    return pd.DataFrame([
        {"node": n.path, "kind": n.kind, "state": n.state, "detail": n.detail,
         "attempt": n.attempt, "duration (s)": n.duration_s,
         "output": _short(n.output), "error": data.last_line(n.error)}
        for n in nodes
    ])  # fmt: skip


def _short(value: Any) -> str:
    text = "" if value is None else json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def _logs(workflow: Any, nodes: list[NodeInfo]) -> None:
    tasks = [n for n in nodes if n.number is not None]
    if not tasks:
        return
    st.subheader("A node's logs")
    paths = [n.path for n in tasks]
    failed = [n.path for n in tasks if n.state == "failed"]
    index = paths.index(failed[0]) if failed else 0
    path = st.selectbox("Task node", paths, index=index, key="log-node")
    node = tasks[paths.index(path)]
    if node.error:
        st.code(node.error, language="text")
    owner = workflow.user
    if not service() and not actor().may_change(owner):
        st.caption(f"Logs are shown to the workflow's owner ({owner}) and admins only.")
        return
    from dag import load_workflow

    acting = load_workflow(workflow.name, settings=acting_settings())  # the session's user
    try:
        attempt, texts = logs_of(acting, node.number, None, path=path)
    except AccessDenied:  # the server's answer (in service mode)
        st.caption(f"Logs are shown to the workflow's owner ({owner}) and admins only.")
        return
    for label, text in texts.items():
        with st.expander(f"{label} of {path}, attempt {attempt}", expanded=bool(text)):
            st.code(text, language="text")
