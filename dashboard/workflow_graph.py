"""A large workflow's graph, readable: node instances grouped by the spec node they come from
(a fan-out's items, a loop's iterations, a template's uses are one box, with their count and
states), laid out in layers that follow the dependencies."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

if TYPE_CHECKING:
    from dag import NodeInfo, WorkflowSpec

#: A box's colour: the first of these states any of its instances is in.
WORST = ("failed", "blocked", "running", "dispatched", "pending", "ready", "waiting",
         "cancelled", "skipped", "succeeded")  # fmt: skip
_INDEX = re.compile(r"\[\d+\]")
_PSEUDO = re.compile(r"\.(workflow|then|else)$")


@dataclass
class Box:
    """The instances of one spec node: its key (``visit.isr``) and their states."""

    key: str
    states: dict[str, int] = field(default_factory=dict)
    tasks: int = 0
    deps: set[str] = field(default_factory=set)
    owner: str | None = None

    @property
    def state(self) -> str:
        return next((s for s in WORST if self.states.get(s)), "waiting")

    @property
    def label(self) -> str:
        count = f"{self.tasks} task{'s' if self.tasks != 1 else ''}" if self.tasks else "group"
        return f"{self.key.rsplit('.', 1)[-1]} ({count})"


def boxes(spec: WorkflowSpec, nodes: list[NodeInfo]) -> dict[str, Box]:
    """The instances grouped by spec node, with each box's dependencies (siblings it waits
    for) and owner (the box it is part of)."""
    found: dict[str, Box] = {}
    for n in nodes:
        key = _INDEX.sub("", n.path)
        box = found.setdefault(key, Box(key))
        box.states[n.state] = box.states.get(n.state, 0) + 1
        box.tasks += n.number is not None
    for key, (node, prefix) in _spec_nodes(spec).items():
        if key not in found:
            continue
        siblings = {f"{prefix}.{d}" if prefix else d for d in _waits_for(node)}
        found[key].deps = siblings & found.keys()
        owner = _PSEUDO.sub("", prefix) if prefix else None
        found[key].owner = owner if owner in found else None
    return found


def _spec_nodes(spec: WorkflowSpec) -> dict[str, tuple[Any, str]]:
    """Every spec node by its key, with the key prefix of the flow it is in."""
    out: dict[str, tuple[Any, str]] = {}

    def walk(flow_nodes: list[Any], prefix: str, depth: int) -> None:
        if depth > 20:  # a template that uses itself
            return
        for n in flow_nodes:
            key = f"{prefix}.{n.name}" if prefix else n.name
            out[key] = (n, prefix)
            inner = [(n.workflow, f"{key}.workflow"), (n.then, f"{key}.then"),
                     (n.else_, f"{key}.else"), (n.loop.body if n.loop else None, key)]  # fmt: skip
            if n.template in spec.templates:
                inner.append((spec.templates[n.template], key))
            for flow, sub in inner:
                if flow is not None:
                    walk(flow.nodes, sub, depth + 1)

    walk(spec.nodes, "", 0)
    return out


def _waits_for(node: Any) -> set[str]:
    from dashboard.workflows import _names_used

    return (set(node.after) | _names_used(node)) - {node.name}


def layers(found: dict[str, Box]) -> dict[str, int]:
    """Each box's layer: after its owner, and after everything inside what it waits for."""
    level: dict[str, int] = {}

    def end(key: str) -> int:
        inside = [k for k in found if k == key or k.startswith(f"{key}.")]
        return max(place(k) for k in inside)

    def place(key: str) -> int:
        if key not in level:
            level[key] = 0  # a guard against a cycle (specs have none)
            box = found[key]
            after = [end(d) + 1 for d in box.deps]
            if box.owner is not None:
                after.append(place(box.owner) + 1)
            level[key] = max(after, default=0)
        return level[key]

    for key in found:
        place(key)
    return level


def grouped_figure(spec: WorkflowSpec, nodes: list[NodeInfo], colours: dict[str, str]) -> go.Figure:
    """The graph of boxes: one per spec node, in layers left to right, solid lines to what a
    box waits for, dotted lines to the box it is part of; hover shows its states."""
    found = boxes(spec, nodes)
    level = layers(found)
    rows: dict[int, int] = {}
    pos: dict[str, tuple[float, float]] = {}
    for key in sorted(found, key=lambda k: (level[k], k)):
        rows[level[key]] = rows.get(level[key], 0) + 1
        pos[key] = (float(level[key]), -float(rows[level[key]]))
    fig = go.Figure()
    solid = [(d, k) for k, b in found.items() for d in b.deps]
    dotted = [(b.owner, k) for k, b in found.items() if b.owner]
    for edges, dash in ((solid, "solid"), (dotted, "dot")):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for a, b in edges:
            xs += [pos[a][0], pos[b][0], None]
            ys += [pos[a][1], pos[b][1], None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                                 line={"color": "#888", "dash": dash, "width": 1}))  # fmt: skip
    for state in WORST:
        group = [b for b in found.values() if b.state == state]
        if group:
            fig.add_trace(go.Scatter(
                x=[pos[b.key][0] for b in group], y=[pos[b.key][1] for b in group],
                mode="markers+text", text=[b.label for b in group], textposition="bottom center",
                marker={"size": 26, "symbol": "square", "color": colours.get(state, "#444")},
                name=state, hovertext=[_hover(b) for b in group], hoverinfo="text",
            ))  # fmt: skip
    total = sum(b.tasks for b in found.values())
    fig.update_layout(
        title=f"Graph: {len(nodes):,} nodes ({total:,} tasks) in {len(found)} groups",
        xaxis={"visible": False, "range": [-0.5, max(level.values(), default=0) + 0.5]},
        yaxis={"visible": False, "range": [-max(rows.values(), default=1) - 0.7, -0.3]},
        height=max(320, 110 * max(rows.values(), default=1)),
    )
    return fig


def _hover(box: Box) -> str:
    states = ", ".join(f"{n} {s}" for s, n in sorted(box.states.items(), key=lambda kv: -kv[1]))
    return f"{box.key}: {states}"
