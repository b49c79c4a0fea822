"""``idds sites``: list the sites, start their pilots, show their pilots, slots and GPU-hours,
drain one."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from gpu_sites import accounting
from gpu_sites.errors import SiteError, SiteSpecError
from gpu_sites.registry import drained_sites, set_drained
from gpu_sites.site import make_site
from gpu_sites.spec import SitesSpec, load_sites
from gpu_sites.stats import read_stats
from idds.cli import format_table
from idds.client import records_for

if TYPE_CHECKING:
    from idds.config import Settings

_SITES = click.option(
    "--sites", "sites_file", envvar="IDDS_SITES", callback=lambda ctx, p, v: _declared(v),
    type=click.Path(dir_okay=False), help="The sites.yaml (default: $IDDS_SITES).",
)  # fmt: skip


def _declared(sites_file: str | None) -> str:
    """The sites file given, or a usage error that says how to give one."""
    if not sites_file:
        raise click.UsageError(
            "no sites declared: give --sites sites.yaml or set IDDS_SITES=sites.yaml "
            "(examples/sites/sites.yaml is one; without sites, work runs on the Ray cluster "
            "a head joined)"
        )
    return sites_file


@click.group()
def sites() -> None:
    """GPU sites: Ray pilots on local, Slurm, HTCondor and cloud resources."""


@sites.command("list")
@_SITES
@click.pass_obj
def list_sites(settings: Settings, sites_file: str) -> None:
    """The declared sites and whether each takes work."""
    spec = load_sites(sites_file)
    drained = drained_sites(records_for(settings))
    rows = [
        (
            s.name, s.kind, s.slots, s.gpus_per_pilot, s.gpu_type or "-",
            f"{s.min_pilots}-{s.max_pilots}", f"{s.idle_s:g}", f"{s.cost_weight:g}",
            "drained" if s.name in drained else "active",
        )
        for s in spec.sites
    ]  # fmt: skip
    headers = ["site", "kind", "slots", "gpus", "gpu type", "pilots", "idle s", "cost", "state"]
    click.echo(format_table(headers, rows))


@sites.command()
@_SITES
@click.option("--by-owner/--no-by-owner", default=True, help="GPU-hours per study/workflow.")
@click.pass_obj
def status(settings: Settings, sites_file: str, by_owner: bool) -> None:
    """Each site's pilots, slots busy and free, exclusion and GPU-hours."""
    spec = load_sites(sites_file)
    if settings.ray_address:  # a cloud site's pilots are Ray's nodes
        from idds.runtime import ensure_ray

        ensure_ray(settings.ray_address)
    records = records_for(settings)
    stats, now = read_stats(records, [s.name for s in spec.sites], spec.broker)
    drained = drained_sites(records)
    used = accounting.usage(records)
    hours = {r.key: r for r in accounting.rollup(used, "site")}
    rows = []
    for s in spec.sites:
        pending, running = _pilots(spec, s.name, settings)
        st = stats[s.name]
        busy = st.in_flight
        state = "drained" if s.name in drained else "active"
        if running == "?":
            state = "unreachable"  # its batch system did not answer (the warning says why)
        elif st.excluded_until is not None:
            state = f"excluded {st.excluded_until - now:.0f} s ({st.streak} failed)"
        roll = hours.get(s.name)
        rows.append((
            s.name, state, f"{running}+{pending}" if pending != "?" else "?",
            busy, max(running * s.slots - busy, 0) if running != "?" else "?",
            f"{roll.gpu_hours:.4f}" if roll else "0", f"{roll.wall_s:.1f}" if roll else "0",
        ))  # fmt: skip
    headers = ["site", "state", "pilots run+wait", "busy", "free", "gpu-h", "wall s"]
    click.echo(format_table(headers, rows))
    if by_owner and used:
        click.echo("")
        owner_rows = [
            (r.key, r.attempts, r.failed, f"{r.wall_s:.1f}", f"{r.gpu_hours:.4f}")
            for r in accounting.rollup(used, "owner")
        ]
        click.echo(format_table(["owner", "attempts", "failed", "wall s", "gpu-h"], owner_rows))


def _pilots(spec: SitesSpec, name: str, settings: Settings) -> tuple[Any, Any]:
    """``(pending, running)`` pilots of a site as its batch system says (``?`` if it cannot)."""
    site = make_site(spec.site(name), head_address=None, work_dir=settings.work_dir)
    try:
        pilots = site.pilots()
    except SiteError as exc:
        click.echo(f"warning: site {name}: {exc}", err=True)
        return "?", "?"
    return (
        sum(1 for p in pilots if p.state == "pending"),
        sum(1 for p in pilots if p.state == "running"),
    )


@sites.command()
@_SITES
@click.argument("names", nargs=-1)
@click.option("--pilots", "count", type=int, default=None, help="Pilots per site (min_pilots).")
@click.option("--timeout", type=float, default=300.0, show_default=True)
@click.pass_obj
def up(settings: Settings, sites_file: str, names: tuple[str, ...], count: int | None,
       timeout: float) -> None:  # fmt: skip
    """Start pilots now (each named site, or all) and wait until they join Ray.

    Pilots join the cluster at --ray-address; they stay until drained (``idds sites drain``)
    or, above min_pilots, until a head's broker finds them idle.
    """
    import ray

    from gpu_sites.capacity import site_nodes
    from idds.runtime import ensure_ray

    spec = load_sites(sites_file)
    chosen = [spec.site(n) for n in names] if names else list(spec.sites)
    ensure_ray(settings.ray_address)
    head = ray.get_runtime_context().gcs_address
    want = {}
    for s in chosen:
        site = make_site(s, head_address=head, work_dir=settings.work_dir)
        target = s.min_pilots if count is None else count
        have = len(site.pilots())
        if target > have:
            site.submit(target - have)
        want[s.name] = target
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        joined = {n: len(site_nodes().get(n, [])) for n in want}
        if all(joined[n] >= w for n, w in want.items()):
            break
        time.sleep(0.5)
    for name, target in want.items():
        click.echo(f"site {name}: {joined[name]} of {target} pilot(s) joined")
    if any(joined[n] < w for n, w in want.items()):
        raise SiteError(f"pilots did not all join in {timeout:g} s")


@sites.command()
@_SITES
@click.argument("name")
@click.option("--resume", is_flag=True, help="Take work again (pilots scale back up).")
@click.pass_obj
def drain(settings: Settings, sites_file: str, name: str, resume: bool) -> None:
    """Stop placing work on site NAME and stop its pilots (their tasks move elsewhere)."""
    spec = load_sites(sites_file)
    if name not in {s.name for s in spec.sites}:
        raise SiteSpecError(f"no site named {name!r} in {sites_file}")
    set_drained(records_for(settings), name, not resume)
    if resume:
        click.echo(f"site {name}: takes work again")
        return
    site = make_site(spec.site(name), head_address=None, work_dir=settings.work_dir)
    stopped = site.drain()
    click.echo(f"site {name}: drained; {stopped} pilot(s) asked to stop")
