"""``idds dag ...``: launch, list, show, logs, cancel, suspend, resume and retry workflows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click

from dag.graph import text_graph, write_png
from dag.spec import WorkflowSpec
from dag.workflow import NodeInfo, Workflow, list_workflows, load_workflow
from idds.config import Settings, parse_spec_text
from idds.errors import NotFound, SpecError
from idds.lifecycle import Lifecycle, add_commands
from idds.output import View, emit, render, select, view_options


@click.group("dag")
def dag() -> None:
    """Workflows: DAGs, templates, fan-out, conditions and loops."""


#: The words of the command that resumes a workflow (what `idds serve` runs).
RESUME = ["dag", "resume"]


def _build(settings: Settings, spec_file: str, options: dict[str, Any]) -> Workflow:
    workflow = Workflow.from_file(spec_file, params=_parse_sets(options["sets"]), settings=settings)
    if options.get("name"):
        data = {**workflow.spec.to_mapping(), "name": options["name"]}
        workflow = Workflow(WorkflowSpec.from_mapping(data, source="--name"), settings=settings)
    return workflow


@dag.command()
@click.argument("name")
@click.argument("nodes", nargs=-1)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_obj
def retry(settings: Settings, name: str, nodes: tuple[str, ...], no_progress: bool) -> None:
    """Run failed NODES (all failed nodes by default) of workflow NAME again, and go on."""
    workflow = load_workflow(name, settings=settings)
    again = workflow.retry(list(nodes) or None)
    click.echo(f"retrying {len(again)} node(s): {', '.join(again) or '-'}")
    _run(workflow, not no_progress)


def _run(workflow: Workflow, progress: bool) -> None:
    state = workflow.run(progress=progress)
    nodes = workflow.nodes()
    causes = _failure_causes(nodes)
    counts: dict[str, int] = {}
    for n in nodes:
        if n.number is not None or n.state in ("skipped", "blocked") or n in causes:
            counts[n.state] = counts.get(n.state, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    click.echo(f"workflow {workflow.name!r} {state}: {summary}")
    if state == "finished":
        output = workflow.output()
        if output is not None:
            click.echo(f"output: {json.dumps(output, default=str)[:2000]}")
    elif state == "failed":
        for n in causes:
            reason = _first_line(n.error) or "no reason was recorded"
            click.echo(f"  {n.path} failed: {reason}", err=True)
        click.echo(f"fix the cause, then `idds dag retry {workflow.name}`", err=True)
        raise SystemExit(1)


def _failure_causes(nodes: list[NodeInfo]) -> list[NodeInfo]:
    """The failed nodes whose failure is their own: task nodes, and nodes whose expression
    failed (not the composites that failed because a part did)."""
    failed = [n for n in nodes if n.state == "failed"]

    def has_failed_part(n: NodeInfo) -> bool:
        return any(p.path.startswith((f"{n.path}.", f"{n.path}[")) for p in failed)

    return [n for n in failed if n.number is not None or not has_failed_part(n)]


def _table(settings: Settings) -> tuple[list[str], list[list[object]]]:
    rows: list[list[object]] = [
        [w["name"], w["user"], w["state"], sum(w["tasks"].values()),
         *(w["tasks"].get(s, 0) for s in ("running", "succeeded", "failed"))]
        for w in list_workflows(settings)
    ]  # fmt: skip
    return ["workflow", "user", "state", "tasks", "running", "succeeded", "failed"], rows


@dag.command()
@click.argument("name")
@click.option("--png", type=click.Path(dir_okay=False), help="Also draw the graph (graphviz).")
@click.option("--all", "show_all", is_flag=True, help="Every node (default: at most 200 rows).")
@view_options
@click.pass_obj
def show(settings: Settings, name: str, png: str | None, show_all: bool, view: View) -> None:
    """Nodes of workflow NAME: state, attempts, duration, output; the graph as text.

    With --format json or csv, only the nodes are printed (all of them unless --limit).
    """
    workflow = load_workflow(name, settings=settings)
    nodes = workflow.nodes()
    record = workflow.record()
    shown = workflow.records.shown([record])[record.id]
    headers = ["node", "kind", "state", "attempt", "duration", "output / detail"]
    rows = [_row(n, shown.task_state(n.state)) for n in nodes]
    if not view.table:
        emit(headers, rows, view)
        return
    click.echo(f"workflow {name!r}: {shown.state}\n")
    click.echo(text_graph(workflow.spec))
    click.echo()
    default = None if show_all or view.limit is not None else 200
    kept = select(headers, rows, view)
    click.echo(render(headers, kept[:default]))
    if default and len(kept) > default:
        click.echo(f"... {len(kept) - default} more (--all shows them)")
    for n in nodes:
        if n.state == "failed" and n.error:
            click.echo(f"\n{n.path} failed:\n{n.error.rstrip()}")
    if png:
        click.echo(write_png(workflow.spec, nodes, Path(png)))


def _row(n: NodeInfo, state: str) -> list[Any]:
    """A node's line in `idds dag show`; ``state`` as shown (lost where its head is gone)."""
    duration = f"{n.duration_s:.2f}s" if n.duration_s is not None else ""
    shown = n.detail
    if n.state == "succeeded" and n.number is not None:
        shown = json.dumps(n.output, default=str)
    elif n.state == "failed":
        shown = _first_line(n.error)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ["  " * n.depth + n.path, n.kind, state, n.attempt or "",
            duration, shown]  # fmt: skip


@dag.command()
@click.argument("name")
@click.argument("node")
@click.option("--attempt", type=int, help="Which attempt (the last one by default).")
@click.pass_obj
def logs(settings: Settings, name: str, node: str, attempt: int | None) -> None:
    """stdout and stderr of NODE (its path, as `idds dag show` prints it) of workflow NAME."""
    workflow = load_workflow(name, settings=settings)
    if workflow.remote:
        attempt, *texts = workflow.served_logs(workflow.node_number(node), attempt)
        for label, text in zip(("stdout", "stderr"), texts, strict=True):
            click.echo(f"--- {label} of {node}, attempt {attempt} (on the server) ---")
            click.echo("(none)" if text is None else text)
        return
    out, err, attempt = workflow.log_paths(node, attempt)
    if not out.exists() and not err.exists():
        raise NotFound(f"no logs for {node}, attempt {attempt} (looked in {out.parent})")
    for label, path in (("stdout", out), ("stderr", err)):
        click.echo(f"--- {label} of {node}, attempt {attempt} ({path}) ---")
        click.echo(path.read_text(errors="replace") if path.exists() else "(none)")


@dag.command()
@click.argument("name")
@click.pass_obj
def suspend(settings: Settings, name: str) -> None:
    """Release no new node of NAME (running ones finish); `idds dag resume` goes on."""
    load_workflow(name, settings=settings).suspend()
    click.echo(f"workflow {name!r} suspended")


def _parse_sets(sets: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"--set {item!r}: expected KEY=VALUE")
        out[key] = parse_spec_text(value, f"--set {key}")
    return out


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""


def graphviz_available() -> bool:
    return shutil.which("dot") is not None


add_commands(
    dag,
    Lifecycle(
        noun="workflow",
        plural="workflows",
        build=_build,
        load=lambda name, settings: load_workflow(name, settings=settings),
        run=_run,
        print_done=lambda workflow: None,
        table=_table,
        # a suspended workflow goes on; a failed one ends again (`idds dag retry` reruns nodes)
        resumable=frozenset({"active", "suspended", "failed"}),
        launch_options=[
            click.option(
                "--set",
                "sets",
                multiple=True,
                metavar="KEY=VALUE",
                help="Override a workflow parameter (VALUE read as YAML); repeatable.",
            )
        ],
    ),
)
