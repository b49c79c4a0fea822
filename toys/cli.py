"""``idds toys ...``: launch, show, list, resume and cancel toy-MC limit scans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from idds.cli import format_table
from idds.client import records_for
from idds.config import Settings
from idds.lifecycle import Lifecycle, add_commands
from idds.output import View, emit, view_options
from toys.spec import load_scan_file
from toys.toyscan import KIND, ScanResult, ToyScan, load_scan

_LABELS = {"obs": "observed", "-2": "expected -2s", "-1": "expected -1s", "0": "expected",
           "+1": "expected +1s", "+2": "expected +2s"}  # fmt: skip


@click.group("toys")
def toys() -> None:
    """Toy-MC CLs upper limits of pyhf workspaces."""


#: The words of the command that resumes a scan (what `idds serve` runs).
RESUME = ["toys", "resume"]


def _build(settings: Settings, spec_file: str, options: dict[str, Any]) -> ToyScan:
    spec = load_scan_file(spec_file)
    if options.get("name"):
        spec = type(spec).from_mapping({**spec.to_json(), "name": options["name"]}, source="--name")
    return ToyScan(spec, settings=settings)


def _print_done(scan: ToyScan) -> None:
    _print(scan, scan.result())


def _run(scan: ToyScan, progress: bool) -> None:
    result = scan.run(progress=progress)
    if scan.state == "cancelled":
        click.echo(f"toy scan {scan.name!r} was cancelled")
    elif scan.stopped_because:
        click.echo(f"stopped: {scan.stopped_because}")
    _print(scan, result)


@toys.command()
@click.argument("name")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Where to write the CLs plot (NAME-cls.png by default).")  # fmt: skip
@click.option("--no-plot", is_flag=True, help="Print only.")
@click.option("--points", "show_points", is_flag=True, help="Also print CLs at each point.")
@click.option("--log", is_flag=True, help="Plot CLs on a log axis.")
@click.option("--no-asymptotic", is_flag=True, help="Leave pyhf's asymptotic curves out.")
@view_options
@click.pass_obj
def show(
    settings: Settings, name: str, plot_path: str | None, no_plot: bool, show_points: bool,
    log: bool, no_asymptotic: bool, view: View,
) -> None:  # fmt: skip
    """Print scan NAME's observed and expected limits and write its CLs-vs-POI plot (the
    toys' curves, pyhf's asymptotic ones dashed).

    With --format json or csv, only the limits (with --points, the points) are printed.
    """
    scan = load_scan(name, settings=settings)
    result = scan.result()
    if not view.table:
        emit(*(_points_table(result) if show_points else _limits_table(result)), view)
        return
    _print(scan, result)
    if show_points:
        _print_points(result)
    if not no_plot and result.points:
        from toys.plot import asymptotic_curves, plot_cls

        path = Path(plot_path or f"{name}-cls.png")
        curves = None if no_asymptotic else asymptotic_curves(scan.spec)
        plot_cls(result, path, cl=scan.spec.cl, poi=scan.spec.poi or "POI", title=name,
                 asymptotic=curves, log=log)  # fmt: skip
        click.echo(f"plot: {path}")


@toys.command()
@click.argument("name")
@click.option("--max-steps", type=click.IntRange(min=1), help="The new cap on steps (in all).")
@click.option("--tolerance", type=float, help="The new error every limit is wanted to.")
@click.option("--max-toys", type=click.IntRange(min=1), help="The new cap on toys (in all).")
@click.option("--no-progress", is_flag=True, help="No progress output.")
@click.pass_obj
def extend(
    settings: Settings,
    name: str,
    max_steps: int | None,
    tolerance: float | None,
    max_toys: int | None,
    no_progress: bool,
) -> None:
    """Run scan NAME on with more steps, a tighter tolerance or more toys, keeping its toys."""
    scan = load_scan(name, settings=settings)
    scan.extend(max_steps=max_steps, tolerance=tolerance, max_toys=max_toys)
    _run(scan, not no_progress)


def _print(scan: ToyScan, result: ScanResult) -> None:
    spec = scan.spec
    state = "converged" if result.converged else "not converged"
    click.echo(
        f"toy scan {scan.name!r} ({scan.state}, {state} to {result.tolerance:g}): "
        f"{len(result.points)} points, {result.toys} toys in {result.steps} step(s), "
        f"{spec.test_stat}, {spec.cl:.0%} CLs upper limits on {spec.poi}"
    )
    failed = result.batches.get("failed", 0)
    if failed:
        click.echo(f"{failed} batch(es) failed")
    click.echo(format_table(*_limits_table(result)))


def _limits_table(result: ScanResult) -> tuple[list[str], list[list[object]]]:
    rows: list[list[object]] = []
    for band, lim in result.limits.items():
        if lim.value is None:
            where = "above the range" if lim.status == "above" else "below the range"
            rows.append([_LABELS[band], where, "", "", ""])
            continue
        rows.append([_LABELS[band], f"{lim.value:.4g}", f"{lim.error:.2g}", f"{lim.stat:.2g}",
                     f"{lim.interp:.2g}"])  # fmt: skip
    return ["limit", "value", "error", "stat", "interp"], rows


def _points_table(result: ScanResult) -> tuple[list[str], list[list[object]]]:
    rows: list[list[object]] = []
    for mu in sorted(result.points):
        point = result.points[mu]
        cls = point.cls()
        rows.append([f"{mu:.4g}", point.toys, *(f"{cls[b][0]:.3g}+-{cls[b][1]:.1g}"
                     for b in ("obs", "-2", "-1", "0", "+1", "+2"))])  # fmt: skip
    return ["poi", "toys", "obs", "-2s", "-1s", "exp", "+1s", "+2s"], rows


def _print_points(result: ScanResult) -> None:
    click.echo(format_table(*_points_table(result)))


def _table(settings: Settings) -> tuple[list[str], list[list[object]]]:
    table: list[list[object]] = []
    records = records_for(settings)
    scans = records.owners(KIND)
    shown = records.shown(scans)
    for scan in scans:
        result = load_scan(scan.name, settings=settings).result()
        obs = result.limits["obs"]
        known = f"{obs.value:.4g} +- {obs.error:.2g}" if obs.value is not None else obs.status
        row = [len(result.points), result.toys, result.steps, known]
        table.append([scan.name, scan.user, shown[scan.id].state, *row])
    headers = ["name", "user", "state", "points", "toys", "steps", "observed"]
    return headers, table


add_commands(
    toys,
    Lifecycle(
        noun="toy scan",
        plural="toy scans",
        build=_build,
        load=lambda name, settings: load_scan(name, settings=settings),
        run=_run,
        print_done=_print_done,
        table=_table,
    ),
)
