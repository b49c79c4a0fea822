"""``idds carousel ...``: simulate a campaign under each policy, plan its buffer, run it live."""

from __future__ import annotations

from pathlib import Path

import click

from carousel.catalog import build_catalog
from carousel.planner import PlanRow, buffer_ladder, plan
from carousel.policies import make_policy
from carousel.simulate import HOUR, TB, CampaignResult, simulate
from carousel.sizes import format_size, parse_size, parse_size_list
from carousel.spec import CampaignSpec, load_campaign_file
from idds.cli import format_table
from idds.config import Settings
from idds.errors import SpecError


@click.group("carousel")
def carousel() -> None:
    """Data carousels: staging from tape, file by file, under a disk buffer."""


def _load(path: str, files: int | None, buffer: str | None) -> CampaignSpec:
    spec = load_campaign_file(path)
    if files is not None:
        if files < 1:
            raise SpecError(f"--files must be >= 1, got {files}")
        spec = spec.scaled(files)
    if buffer is not None:
        size = None if buffer == "unbounded" else parse_size(buffer, "--buffer")
        spec = spec.replace(buffer=size)
    catalog = build_catalog(spec)
    for policy in spec.policies:
        make_policy(spec, policy, catalog)  # the campaign must fit its own buffer
    return spec


_files_option = click.option("--files", type=int, help="Scale the campaign to this many files.")


@carousel.command("simulate")
@click.argument("campaign", type=click.Path(dir_okay=False))
@click.option("--policy", "policies", multiple=True, help="Only these policies (repeatable).")
@click.option("--buffer", help="Disk-buffer budget, e.g. 6TB (overrides the campaign's).")
@_files_option
@click.option("--png", type=click.Path(dir_okay=False), help="Occupancy plot [NAME-occupancy.png].")
def simulate_cmd(
    campaign: str, policies: tuple[str, ...], buffer: str | None, files: int | None,
    png: str | None,
) -> None:  # fmt: skip
    """Simulate CAMPAIGN under each policy: disk, makespan, latency, drives."""
    spec = _load(campaign, files, buffer)
    for name in policies:
        spec.policy(name)  # an unknown name fails before anything runs
    results = simulate(spec, list(policies) or None)
    click.echo(format_table(_HEADERS, [_row(r) for r in results]))
    for r in results:
        if r.lost:
            click.echo(f"{r.policy}: {len(r.lost)} file(s) lost: {', '.join(r.lost[:5])}")
    from carousel.plot import plot_occupancy

    path = plot_occupancy(results, png or f"{spec.name}-occupancy.png", title=spec.name)
    click.echo(f"occupancy plot: {path}")


_HEADERS = [
    "policy", "buffer", "peak TB", "TB*h", "makespan h", "latency mean h", "latency p95 h",
    "mounts", "drive util", "retried (stage/proc)", "lost",
]  # fmt: skip


def _row(r: CampaignResult) -> list[object]:
    return [
        r.policy,
        "unbounded" if r.buffer is None else format_size(r.buffer),
        f"{r.peak_bytes / TB:.3g}",
        f"{r.byte_seconds / TB / HOUR:.4g}",
        f"{r.makespan_s / HOUR:.3g}",
        f"{r.latency_mean_s / HOUR:.3g}",
        f"{r.latency_p95_s / HOUR:.3g}",
        r.mounts,
        f"{r.drive_util:.0%}",
        f"{r.staging_retries}/{r.processing_retries}",
        len(r.lost),
    ]


@carousel.command("plan")
@click.argument("campaign", type=click.Path(dir_okay=False))
@click.option("--buffer", "buffers", help="Buffers to try, e.g. 50TB,100TB,unbounded.")
@click.option("--policy", default="file-level", show_default=True)
@_files_option
def plan_cmd(campaign: str, buffers: str | None, policy: str, files: int | None) -> None:
    """Makespan, peak disk and disk-hours of CAMPAIGN against buffer size."""
    spec = _load(campaign, files, None)
    spec.policy(policy)
    catalog = build_catalog(spec)
    sizes = parse_size_list(buffers) if buffers else buffer_ladder(spec, catalog)
    rows = plan(spec, sizes, policy=policy, catalog=catalog)
    click.echo(format_table(["buffer", "makespan h", "peak TB", "TB*h", "latency p95 h", "mounts"],
                            [_plan_row(r) for r in rows]))  # fmt: skip


def _plan_row(row: PlanRow) -> list[object]:
    r = row.result
    return [
        "unbounded" if row.buffer is None else format_size(row.buffer),
        f"{r.makespan_s / HOUR:.3g}",
        f"{r.peak_bytes / TB:.3g}",
        f"{r.byte_seconds / TB / HOUR:.4g}",
        f"{r.latency_p95_s / HOUR:.3g}",
        r.mounts,
    ]


@carousel.command("run")
@click.argument("campaign", type=click.Path(dir_okay=False))
@click.option("--policy", default="file-level", show_default=True)
@click.option("--name", help="Carousel name (overrides the campaign's).")
@click.option(
    "--speedup",
    type=float,
    default=3600.0,
    show_default=True,
    help="Simulated seconds per wall-clock second (tape and processing times).",
)
@click.option("--buffer", help="Disk-buffer budget (overrides the campaign's).")
@_files_option
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_obj
def run_cmd(
    settings: Settings, campaign: str, policy: str, name: str | None, speedup: float,
    buffer: str | None, files: int | None, no_progress: bool,
) -> None:  # fmt: skip
    """Run CAMPAIGN live: processing tasks through the core on Ray, tape emulated."""
    from carousel.live import run_live

    spec = _load(campaign, files, buffer)
    if name:
        spec = spec.replace(name=name)
    base = Path(campaign).resolve().parent
    result = run_live(
        spec, settings, policy=policy, speedup=speedup, base_dir=base, progress=not no_progress
    )
    click.echo(format_table(_HEADERS, [_row(result)]))
    click.echo(f"carousel {spec.name!r}: {result.files} files in {result.wall_s:.1f} s wall")
    cpus = _cluster_cpus()
    if cpus < spec.processing.slots:
        click.echo(
            f"note: the Ray cluster has {cpus:g} CPUs, so at most {cpus:g} of the campaign's "
            f"{spec.processing.slots} processing slots ran at once (times are simulated hours)"
        )


def _cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))
