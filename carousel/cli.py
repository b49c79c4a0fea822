"""``idds carousel ...``: simulate a campaign under each policy, plan its buffer, run it live."""

from __future__ import annotations

from pathlib import Path

import click

from carousel.catalog import build_catalog
from carousel.planner import PlanRow, buffer_ladder, plan
from carousel.policies import make_policy
from carousel.simulate import HOUR, TB, CampaignResult, Simulation
from carousel.sizes import format_size, parse_size, parse_size_list
from carousel.spec import CampaignSpec, load_campaign_file
from idds.cli import format_table
from idds.config import Settings
from idds.errors import SpecError

#: The words that go on with a carousel (``idds serve`` runs active carousels with them).
RESUME = ["carousel", "resume"]


@click.group("carousel")
def carousel() -> None:
    """Data carousels: staging from tape, file by file, under a disk buffer."""


def _load(
    path: str, files: int | None, buffer: str | None, policies: list[str] | None = None
) -> CampaignSpec:
    """The campaign, scaled and with its buffer overridden, checked under ``policies``
    (those it lists by default)."""
    spec = load_campaign_file(path)
    if files is not None:
        if files < 1:
            raise SpecError(f"--files must be >= 1, got {files}")
        spec = spec.scaled(files)
    if buffer is not None:
        size = None if buffer == "unbounded" else parse_size(buffer, "--buffer")
        spec = spec.replace(buffer=size)
    catalog = build_catalog(spec)
    chosen = [spec.policy(n) for n in policies] if policies else spec.policies
    for policy in chosen:
        make_policy(spec, policy, catalog)  # the campaign must fit its buffer under each
    return spec


_files_option = click.option("--files", type=int, help="Scale the campaign to this many files.")


@carousel.command("simulate")
@click.argument("campaign", type=click.Path(dir_okay=False))
@click.option("--policy", "policies", multiple=True, help="Only these policies (repeatable).")
@click.option("--buffer", help="Disk-buffer budget, e.g. 6TB (overrides the campaign's).")
@_files_option
@click.option("--png", type=click.Path(dir_okay=False), help="Occupancy plot [NAME-occupancy.png].")
@click.option(
    "--save",
    "save_as",
    metavar="NAME",
    help="Record each policy's run as carousel NAME-POLICY (list, show, dashboard).",
)
@click.pass_obj
def simulate_cmd(
    settings: Settings, campaign: str, policies: tuple[str, ...], buffer: str | None,
    files: int | None, png: str | None, save_as: str | None,
) -> None:  # fmt: skip
    """Simulate CAMPAIGN under each policy: disk, makespan, latency, drives."""
    spec = _load(campaign, files, buffer, list(policies))
    names = list(policies) or [p.name for p in spec.policies]
    if save_as:
        _free_names(settings, [f"{save_as}-{p}" for p in names])
    catalog = build_catalog(spec)
    runs = [Simulation(spec, name, catalog) for name in names]
    results = [sim.run() for sim in runs]
    if save_as:
        for sim, r in zip(runs, results, strict=True):
            _save(settings, spec, sim, r, f"{save_as}-{r.policy}")
    click.echo(format_table(_HEADERS, [_row(r) for r in results]))
    for r in results:
        if r.policy == "dataset-level" and spec.buffer is not None and r.peak_bytes > spec.buffer:
            click.echo(
                f"dataset-level: requests every dataset at once, so it does not keep to the "
                f"buffer of {format_size(spec.buffer)}: it needs {format_size(r.peak_bytes)}"
            )
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
    spec = _load(campaign, files, None, [policy])
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

    spec = _load(campaign, files, buffer, [policy])
    if name:
        spec = spec.replace(name=name)
    base = Path(campaign).resolve().parent
    result = run_live(
        spec, settings, policy=policy, speedup=speedup, base_dir=base, progress=not no_progress
    )
    _ran(spec.name, spec.processing.slots, result)


@carousel.command("resume")
@click.argument("name")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_obj
def resume_cmd(settings: Settings, name: str, no_progress: bool) -> None:
    """Go on with live carousel NAME whose head stopped: no file is asked for twice, none is
    lost (its staging log is replayed; `idds serve` does this for every active carousel)."""
    from carousel.live import resume_live

    _ran(name, 0, resume_live(name, settings, progress=not no_progress))


def _ran(name: str, slots: int, result: CampaignResult) -> None:
    """Print how a live run ended (and where Ray has fewer CPUs than ``slots``, that its
    makespan is not the campaign's)."""
    if slots and _cluster_cpus() < slots:
        cpus = _cluster_cpus()
        click.echo(
            f"live run at Ray's {cpus:g} CPUs, not the campaign's {slots} "
            f"processing slots: its makespan is not comparable with simulate's"
        )
    click.echo(format_table(_HEADERS, [_row(result)]))
    click.echo(f"carousel {name!r}: {result.files} files in {result.wall_s:.1f} s wall")


def _free_names(settings: Settings, names: list[str]) -> None:
    from carousel.store import list_carousels

    taken = sorted({c.name for c in list_carousels(settings)} & set(names))
    if taken:
        raise SpecError(f"a carousel named {taken[0]!r} exists; choose another --save name")


def _save(settings: Settings, spec: CampaignSpec, sim: Simulation, r: CampaignResult,
          name: str) -> None:  # fmt: skip
    from carousel.live import Carousel
    from carousel.store import curve

    carousel = Carousel(name, settings=settings)
    carousel.create(spec.replace(name=name), r.policy, mode="simulated")
    carousel.record_result(r, cancelled=False, curve=curve(sim.orchestrator))
    click.echo(f"saved: carousel {name!r} (idds carousel show {name})")


def _cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))


_format = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                       show_default=True)  # fmt: skip


@carousel.command("list")
@_format
@click.pass_obj
def list_cmd(settings: Settings, fmt: str) -> None:
    """The carousels recorded: state, policy, buffer and their metrics."""
    import json

    from carousel.store import list_carousels

    rows = list_carousels(settings)
    if fmt == "json":
        click.echo(json.dumps([{k: v for k, v in r.to_json().items() if k != "timeline"}
                               for r in rows], indent=1))  # fmt: skip
        return
    table = [[r.name, r.state, r.policy, _buffer(r.buffer), r.files,
              _metric(r.result, "peak_disk_tb"), _metric(r.result, "makespan_h"),
              r.result.get("lost", "")] for r in rows]  # fmt: skip
    click.echo(format_table(["name", "state", "policy", "buffer", "files", "peak TB",
                             "makespan h", "lost"], table))  # fmt: skip


@carousel.command("show")
@click.argument("name")
@_format
@click.pass_obj
def show_cmd(settings: Settings, name: str, fmt: str) -> None:
    """Carousel NAME: its metrics, disk curve and per-file timeline."""
    import json

    from carousel.store import load_carousel

    info = load_carousel(name, settings)
    if fmt == "json":
        click.echo(json.dumps(info.to_json(), indent=1))
        return
    click.echo(f"carousel {info.name!r}: {info.state}, {info.policy}, buffer "
               f"{_buffer(info.buffer)}, {info.files} files")  # fmt: skip
    for key, value in info.result.items():
        click.echo(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}")
    if info.disk_bytes:
        peak = max(info.disk_bytes)
        click.echo(f"disk curve: {len(info.disk_t)} samples, peak {format_size(peak)}")
    rows = [[n, *(_hours(t.get(k)) for k in ("requested", "staged", "processed", "released"))]
            for n, t in list(info.timeline.items())[:20]]  # fmt: skip
    if rows:
        click.echo(format_table(["file", "requested h", "staged h", "processed h",
                                 "released h"], rows))  # fmt: skip
        if len(info.timeline) > 20:
            click.echo(f"... {len(info.timeline) - 20} more files (--format json)")


def _buffer(b: float | None) -> str:
    return "unbounded" if b is None else format_size(b)


def _metric(result: dict[str, object], key: str) -> str:
    value = result.get(key)
    return f"{value:.3g}" if isinstance(value, int | float) else ""


def _hours(t: float | None) -> str:
    return "" if t is None else f"{t / HOUR:.3g}"
