"""The data carousel on the reference campaign (examples/carousel/reference.yaml): each
policy in one run, the simulator's speed at 100,000 files, and a processing-slots sweep
with the planner.

Systems: ``idds`` is the file-level policy (unbounded, and at the buffer the planner picks:
the smallest buffer of its ladder whose makespan is no longer than the baseline's); the
anchors are the ``dataset-level`` baseline and the ``sliding-window`` policy (4 datasets).
Metrics: ``peak_disk_tb``, ``disk_tb_hours``, ``makespan_h``, ``staged_to_processed_p95_h``,
``sim_s_100k_files``, and for the sweep the same per slot count.

The live row runs the campaign (scaled down) through the core on Ray, staging through a real
Rucio server (``carousel.rucioserver``; the tape emulator plays FTS and the conveyor):
``files_per_s`` handled by the orchestrator and ``rucio_calls_per_file_poll`` (target at most
0.1); skipped, saying why, where the server cannot be started.

    python -m bench carousel [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench._report import RESULTS, markdown_table, row, save
from carousel.catalog import Catalog, build_catalog
from carousel.planner import buffer_ladder, plan, recommend
from carousel.plot import plot_occupancy
from carousel.simulate import HOUR, TB, CampaignResult, Simulation
from carousel.sizes import format_size
from carousel.spec import CampaignSpec, load_campaign_file

REFERENCE = Path(__file__).parents[1] / "examples" / "carousel" / "reference.yaml"
METRICS = ("peak_disk_tb", "disk_tb_hours", "makespan_h", "staged_to_processed_p95_h")
UNITS = {"peak_disk_tb": "TB", "disk_tb_hours": "TB*h", "makespan_h": "h",
         "staged_to_processed_p95_h": "h", "sim_s_100k_files": "s"}  # fmt: skip
TARGETS = {"peak_disk_tb": 0.15, "disk_tb_hours": 0.25, "makespan_h": 1.0}


def _system(policy: str) -> str:
    return "idds" if policy == "file-level" else policy


def _config(r: CampaignResult, extra: str = "") -> str:
    buffer = "unbounded" if r.buffer is None else format_size(r.buffer)
    return f"{r.policy}, buffer={buffer}{extra}"


def policies(spec: CampaignSpec, catalog: Catalog) -> tuple[list[CampaignResult], float | None]:
    """Each policy on the campaign, and file-level at the planner's buffer (returned too)."""
    baseline = Simulation(spec, "dataset-level", catalog).run()
    unbounded = Simulation(spec, "file-level", catalog).run()
    window = Simulation(spec, "sliding-window", catalog).run()
    pick = recommend(plan(spec, buffer_ladder(spec, catalog), catalog=catalog), baseline.makespan_s)
    results = [baseline, window, unbounded]
    if pick is not None:
        results.append(pick.result)
    return results, pick.buffer if pick else None


def speed(spec: CampaignSpec, files: int, buffer: float | None) -> list[tuple[str, float]]:
    """Seconds to build and simulate the campaign scaled to ``files`` files, per policy."""
    scaled = spec.scaled(files)
    out = []
    for policy, b in (("dataset-level", None), ("file-level", buffer), ("sliding-window", None)):
        started = time.perf_counter()
        Simulation(scaled.replace(buffer=b), policy).run()
        out.append((f"{policy}, buffer={'unbounded' if b is None else format_size(b)}",
                    time.perf_counter() - started))  # fmt: skip
    return out


def sweep(spec: CampaignSpec, catalog: Catalog, slots: list[int]) -> list[dict]:
    """Per slot count: the baseline, file-level at the planner's buffer, and unbounded."""
    out = []
    for n in slots:
        s = spec.replace(**{"processing.slots": n})
        baseline = Simulation(s, "dataset-level", catalog).run()
        rows = plan(s, buffer_ladder(s, catalog), catalog=catalog)
        pick = recommend(rows, baseline.makespan_s) or rows[-1]
        mean_size = catalog.total_bytes / len(catalog)
        processing_rate = n * mean_size / (s.processing.time_s * mean_size / s.processing.time_per)
        staging = rows[-1].result  # unbounded: staging as fast as the library goes
        out.append({"slots": n, "baseline": baseline, "idds": pick.result,
                    "unbounded": rows[-1].result,
                    "processing_gbs": processing_rate / 1e9,
                    "staging_gbs": staging_rate(staging) / 1e9})  # fmt: skip
    return out


def staging_rate(r: CampaignResult) -> float:
    """Bytes per second the library delivered while it staged (first to last arrival)."""
    b = r.trace_bytes
    rises = [t for i, t in enumerate(r.trace_t) if i and b[i] > b[i - 1]]
    return r.total_bytes / (max(rises) - min(rises))


def event_queue(n: int) -> list[tuple[str, str, float]]:
    """Seconds to schedule and run ``n`` timed callbacks: our heap (carousel.clock) beside
    SimPy 4 (one process per event, and bare timeouts with a callback), same random times."""
    import random

    import simpy

    from carousel.clock import SimClock

    rng = random.Random(0)
    delays = [rng.random() * 1000 for _ in range(n)]
    out = []
    started = time.perf_counter()
    clock = SimClock()
    for d in delays:
        clock.at(d, _noop)
    clock.run()
    out.append(("idds", "event heap (carousel.clock)", time.perf_counter() - started))

    def process(env: simpy.Environment, delay: float):  # a SimPy process: a generator
        yield env.timeout(delay)

    started = time.perf_counter()
    env = simpy.Environment()
    for d in delays:
        env.process(process(env, d))
    env.run()
    out.append(("simpy", "one process per event", time.perf_counter() - started))
    started = time.perf_counter()
    env = simpy.Environment()
    for d in delays:
        env.timeout(d).callbacks.append(_noop)
    env.run()
    out.append(("simpy", "timeout + callback", time.perf_counter() - started))
    return out


def rucio_live(spec: CampaignSpec, files: int) -> list[dict[str, Any]] | str:
    """The campaign scaled to ``files`` run live under ``dataset-level`` and ``file-level``
    (at a quarter of its bytes), staging through one real Rucio server; their figures, or why
    they did not run."""
    import tempfile

    from carousel import rucioserver as rs
    from carousel.live import run_live
    from carousel.rucio import RucioSite
    from idds.config import Settings

    why = rs.missing()
    if why:
        return why
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            server = rs.start(Path(tmp))
        except RuntimeError as error:
            return str(error).splitlines()[0]
        try:
            for policy in ("dataset-level", "file-level"):
                scaled = spec.scaled(files).replace(name=rs.unique_scope("bench"))
                catalog = build_catalog(scaled)
                scaled = scaled.replace(buffer=catalog.total_bytes / 4)
                client = server.client()
                rs.bootstrap(client, scaled.name)
                rs.register(client, catalog)
                site = RucioSite(client, rse=rs.BUFFER, source=rs.TAPE, poll_s=0.5, player=True)
                settings = Settings(db_url=f"sqlite:///{tmp}/{policy}.db")
                r = run_live(scaled, settings, policy=policy, speedup=3600.0, rucio=site)
                simulated = Simulation(scaled, policy, catalog).run()
                out.append({"policy": policy, "files": files, "files_per_s": files / r.wall_s,
                            "rucio_calls_per_file_poll": r.dm_stats["calls_per_file_poll"],
                            "rucio_calls_per_file": r.dm_stats["calls"] / files,
                            "polls": r.dm_stats["polls"], "lost": len(r.lost),
                            "makespan_h": r.makespan_s / HOUR,
                            "sim_makespan_h": simulated.makespan_s / HOUR})  # fmt: skip
        finally:
            rs.stop(server)
    return out


def _live_md(live: list[dict[str, Any]] | str) -> list[str]:
    if isinstance(live, str):
        return ["## Live, staging through a real Rucio server", "", f"Not run: {live}"]
    headers = ["policy", "files", "files/s handled", "Rucio calls per file in flight per poll",
               "Rucio calls per file", "polls", "makespan h (live / simulated)",
               "lost"]  # fmt: skip
    cells = [[x["policy"], f"{x['files']}", f"{x['files_per_s']:.2f}",
              f"{x['rucio_calls_per_file_poll']:.3f}", f"{x['rucio_calls_per_file']:.2f}",
              f"{x['polls']}", f"{x['makespan_h']:.3g} / {x['sim_makespan_h']:.3g}",
              f"{x['lost']}"] for x in live]  # fmt: skip
    return ["## Live, staging through a real Rucio server (buffer 1/4 of the bytes, speedup 3600)",
            "", markdown_table(headers, cells), "",
            "Target: at most 0.1 Rucio calls per file in flight per poll (polling each file's "
            "rule, as before, costs 1). Processing ran on this machine's Ray CPUs, not the "
            "campaign's slots: the live makespan is not comparable with the simulated one.",
            ]  # fmt: skip


def _noop(_: object) -> None:
    return None


def _values(r: CampaignResult) -> dict[str, float]:
    s = r.summary()
    return {m: float(s[m]) for m in METRICS}


def _targets(results: list[CampaignResult]) -> list[str]:
    base = _values(results[0])
    best = min(results[2:], key=lambda r: r.peak_bytes)
    ours = _values(best)
    lines = [f"Targets, best file-level run ({_config(best)}) against dataset-level:"]
    for metric, limit in TARGETS.items():
        ratio = ours[metric] / base[metric]
        verdict = "met" if ratio <= limit else "MISSED"
        lines.append(f"- {metric}: {ours[metric]:.3g} / {base[metric]:.3g} = {ratio:.1%} "
                     f"(target <= {limit:.0%}): {verdict}")  # fmt: skip
    return lines


def _sweep_md(points: list[dict]) -> list[str]:
    headers = ["slots", "processing GB/s", "staging GB/s", "bound", "idds buffer",
               "peak ratio", "TB*h ratio", "makespan idds / baseline (h)",
               "unbounded: peak ratio", "unbounded: makespan (h)"]  # fmt: skip
    table = []
    for p in points:
        ours, base = p["idds"], p["baseline"]
        bound = "processing" if p["processing_gbs"] < p["staging_gbs"] else "staging"
        table.append([
            str(p["slots"]), f"{p['processing_gbs']:.2f}", f"{p['staging_gbs']:.2f}", bound,
            "unbounded" if ours.buffer is None else format_size(ours.buffer),
            f"{ours.peak_bytes / base.peak_bytes:.1%}",
            f"{ours.byte_seconds / base.byte_seconds:.1%}",
            f"{ours.makespan_s / HOUR:.3g} / {base.makespan_s / HOUR:.3g}",
            f"{p['unbounded'].peak_bytes / base.peak_bytes:.1%}",
            f"{p['unbounded'].makespan_s / HOUR:.3g}",
        ])  # fmt: skip
    return ["## Processing slots sweep (planner's buffer per slot count)", "",
            markdown_table(headers, table)]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench carousel")
    parser.add_argument("--quick", action="store_true", help="2,000 files; a short sweep.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-rucio", action="store_true", help="Skip the live Rucio row.")
    args = parser.parse_args(argv)
    events = 20_000 if args.quick else 300_000
    queue = event_queue(events)  # first: nothing else in memory yet
    spec = load_campaign_file(REFERENCE)
    if args.quick:
        spec = spec.scaled(2000)
    catalog = build_catalog(spec)
    results, buffer = policies(spec, catalog)
    timings = speed(spec, 5000 if args.quick else 100_000, buffer)
    points = sweep(spec, catalog, [500, 2000] if args.quick else [500, 1000, 2000, 4000, 8000])
    live = "--no-rucio given" if args.no_rucio else rucio_live(spec, 40 if args.quick else 100)
    rows = []
    for r in results:
        rows += [row(_system(r.policy), _config(r), m, v, UNITS[m]) for m, v in _values(r).items()]
    files = 5000 if args.quick else 100_000
    rows += [row(system, config, f"s_per_{events // 1000}k_events", s, "s")
             for system, config, s in queue]  # fmt: skip
    rows += [row(_system(c.split(",")[0]), f"{c}, files={files}", "sim_s_100k_files", s, "s")
             for c, s in timings]  # fmt: skip
    for p in points:
        for r in (p["baseline"], p["idds"], p["unbounded"]):
            extra = f", slots={p['slots']}"
            rows += [row(_system(r.policy), _config(r, extra), m, v, UNITS[m])
                     for m, v in _values(r).items()]  # fmt: skip
    for x in [] if isinstance(live, str) else live:
        config = f"{x['policy']} live, real Rucio, files={x['files']}"
        rows += [row("idds", config, "files_per_s", x["files_per_s"], "files/s"),
                 row("idds", config, "rucio_calls_per_file_poll",
                     x["rucio_calls_per_file_poll"], "calls")]  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    plot_occupancy(results, args.out / "carousel.png", title=f"{spec.name}: disk occupancy")
    markdown = _markdown(spec, results, timings, points, files, queue, events)
    markdown += "\n\n" + "\n".join(_live_md(live))
    save("carousel", rows, markdown, args.out)
    print(markdown)


def _markdown(spec, results, timings, points, files, queue, events) -> str:
    headers = ["system", "config", *METRICS, "latency mean h", "mounts", "drive util", "lost"]
    table = []
    for r in results:
        s = r.summary()
        table.append([_system(r.policy), _config(r)] + [f"{s[m]:.3g}" for m in METRICS]
                     + [f"{s['staged_to_processed_mean_h']:.3g}", str(r.mounts),
                        f"{r.drive_util:.0%}", str(len(r.lost))])  # fmt: skip
    speed_rows = [[c, f"{s:.2f}"] for c, s in timings]
    lines = [
        f"# Carousel: {spec.name} ({results[0].files:,} files, "
        f"{results[0].total_bytes / TB:.3g} TB, {spec.processing.slots} slots)", "",
        markdown_table(headers, table), "", *_targets(results), "",
        f"## Simulator speed ({files:,} files; target < 60 s each)", "",
        markdown_table(["config", "sim_s_100k_files"], speed_rows), "",
        f"## Event queue: {events:,} timed callbacks", "",
        markdown_table(["system", "config", "s", "ratio to the heap"],
                       [[a, c, f"{v:.2f}", f"{v / queue[0][2]:.2f}x"] for a, c, v in queue]),
        "", *_sweep_md(points),
        "", "Occupancy plot: carousel.png",
    ]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
