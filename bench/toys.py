"""Toy-MC limit scans: throughput through the platform, and the toys an adaptive scan saves.

1. ``toys_per_s``: one step of toy batches through the platform (Ray on this machine's CPUs,
   SQLite) against a single-process loop of the same pyhf calls (fit, ``make_pdf(...).sample``,
   ``qmu_tilde`` per toy) on the same model, in the same run; the loop is timed before and
   after the platform and the two averaged (other processes share the machine).
2. ``toys_needed``: toys (both hypotheses) the adaptive scan needed to know every limit
   (observed, expected median, +-1 and +-2 sigma) to the tolerance, against the cheapest
   fixed uniform grid (points x toys per point) that reaches the same tolerance by the same
   error estimate. Batches are seeded by (seed, POI value, index), so every grid reuses the
   batches of the others and of the adaptive scan; each is computed once, on Ray.

3. ``coverage``: the fraction of converged scans whose reported +-1 sigma interval contains
   the true limit, per band (target 0.68 +- 0.07), over independent scans of a model whose
   toy limits are known exactly (:mod:`toys.coverage`: the scan's own plan and limits, toys
   drawn without Ray), each run until every limit is known to +-0.1: 200 scans (20 to +-0.2
   with ``--quick``); ``toys_needed_gaussian``: the toys those scans needed, and on the first
   seeds the adaptive scan against the cheapest uniform grid reaching the same errors.

``--parts`` runs some of the three (``throughput,needed,coverage``); their results go to
``toys-PARTS.md`` and ``.json`` (``toys-throughput.md``), beside the full run's.

    python -m bench toys [--quick] [--scans N] [--parts P,Q] [--out DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._report import RESULTS, markdown_table, row, save

EXAMPLES = Path(__file__).parents[1] / "examples" / "toys"
#: Ray starts its worker processes at this niceness ("Adjusted worker niceness to 15").
RAY_WORKER_NICENESS = 15


def _scan(settings: Any, name: str, model: str, **fields: Any) -> Any:
    from toys import ToyScan

    lo_hi = [0, 5] if model == "high_count" else [0, 4]
    return ToyScan(settings=settings, name=name, workspace=str(EXAMPLES / f"{model}.json"),
                   range=lo_hi, **fields)  # fmt: skip


def loop_rate(model: str, mus: Sequence[float], toys: int) -> tuple[float, float]:
    """Toys per second of a plain pyhf loop in this process, ``toys`` per hypothesis at each
    POI value of ``mus`` (a toy's fit costs more at some values than at others: the loop
    does the work the scan's step did), per second of wall-clock time and per CPU second."""
    import numpy as np
    import pyhf
    from pyhf.infer import mle, test_statistics

    pyhf.set_backend("numpy")
    workspace = pyhf.Workspace(json.loads((EXAMPLES / f"{model}.json").read_text()))
    pdf = workspace.model()
    data = workspace.data(pdf)
    init, bounds = pdf.config.suggested_init(), pdf.config.suggested_bounds()
    fixed = pdf.config.suggested_fixed()
    start, cpu = time.perf_counter(), time.process_time()
    np.random.seed(0)
    for mu in mus:
        for poi in (mu, 0.0):
            pars = mle.fixed_poi_fit(poi, data, pdf, init, bounds, fixed)
            for toy in pdf.make_pdf(pyhf.tensorlib.astensor(pars)).sample((toys,)):
                test_statistics.qmu_tilde(mu, toy, pdf, init, bounds, fixed)
    done = 2 * toys * len(mus)
    return done / (time.perf_counter() - start), done / (time.process_time() - cpu)


def _niced_loop(model: str, mus: Sequence[float], toys: int) -> tuple[float, float]:
    os.nice(RAY_WORKER_NICENESS)
    return loop_rate(model, mus, toys)


def niced_loop_rate(model: str, mus: Sequence[float], toys: int) -> tuple[float, float]:
    """:func:`loop_rate` in a child process at the niceness Ray gives its workers (on a busy
    machine the scheduler favours a process at niceness 0 over them)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_niced_loop, (model, mus, toys))


def parallel_loop_rate(model: str, mus: Sequence[float], toys: int, processes: int) -> float:
    """Toys per second of ``processes`` plain loops at once, one per process: what this
    machine's CPUs give together, the ceiling for any scheduler."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        rates = pool.starmap(loop_rate, [(model, mus, toys)] * processes)
    return sum(rate for rate, _ in rates)


def platform_rate(
    settings: Any, model: str, points: int, batches: int, batch: int
) -> tuple[float, float, list[float]]:
    """Toys per second of one step of ``points`` x ``batches`` batches through the platform,
    per second of wall-clock time and per CPU second of the workers' batches, and the POI
    values the step threw toys at."""
    _scan(settings, "warm-up", model, points=2, toys=20, max_steps=1).run(progress=False)
    scan = _scan(settings, "rate", model, points=points, toys=batches * batch, batch_size=batch,
                 max_steps=1)  # fmt: skip
    start = time.perf_counter()
    result = scan.run(progress=False)
    wall = time.perf_counter() - start
    if not result.converged and result.batches.get("failed"):
        raise SystemExit(f"the timed scan lost batches ({result.batches}): run it again")
    results = _results(scan)
    cpu = sum(r.get("cpu_s", 0.0) for r in results)
    return result.toys / wall, result.toys / cpu, sorted({float(r["mu"]) for r in results})


class Batches:
    """Toy batches by (POI value, index), computed once on Ray, seeded as the scan seeds them."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.done: dict[tuple[float, int], dict[str, Any]] = {}

    def add(self, results: list[dict[str, Any]]) -> None:
        for r in results:
            self.done[(float(r["mu"]), int(r["batch"]))] = r

    def get(self, keys: list[tuple[float, int]]) -> list[dict[str, Any]]:
        import ray

        from toys.stats import run_batch

        remote = ray.remote(num_cpus=1, max_retries=0)(run_batch)
        missing = [k for k in keys if k not in self.done]
        spec = self.spec
        refs = [remote.remote({"workspace": spec.workspace, "poi": spec.poi, "mu": mu,
                               "toys": spec.batch_toys, "test_stat": spec.test_stat,
                               "seed": spec.seed, "batch": b}) for mu, b in missing]  # fmt: skip
        self.add(ray.get(refs))
        return [self.done[k] for k in keys]


def uniform_grid(spec: Any, points: int) -> list[float]:
    lo, hi = spec.range
    step = (hi - lo) / (points if lo == 0 else points - 1)
    first = step if lo == 0 else lo
    return [float(f"{first + i * step:.10g}") for i in range(points)]


def uniform_needed(spec: Any, get: Any, cap: int) -> tuple[int | None, str]:
    """Toys of the cheapest uniform grid (points x batches per point, both doubling) whose
    limits are all known to the tolerance, by the scan's own errors; None when none within
    ``cap`` toys is. ``get`` returns the batch results of (POI value, index) keys."""
    from toys import scan

    per_batch = 2 * spec.batch_toys
    configs = [
        (k * m * per_batch, k, m)
        for k, m in itertools.product((5, 10, 20, 40, 80), (1, 2, 4, 8, 16, 32, 64))
        if k * m * per_batch <= cap
    ]
    for toys, k, m in sorted(configs):
        keys = [(mu, b) for mu in uniform_grid(spec, k) for b in range(m)]
        points = scan.collect(get(keys))
        lims = scan.limits(points, 1 - spec.cl)
        if all(lim.status == "ok" and lim.error <= spec.tolerance for lim in lims.values()):
            return toys, f"{k} points x {m * spec.batch_toys} toys"
    return None, f"none within {cap} toys"


PARTS = ("throughput", "needed", "coverage")


def measure(
    quick: bool, tmp: Path, out: Path, scans: int | None = None, parts: tuple[str, ...] = PARTS
) -> list[dict[str, Any]]:
    from idds.config import Settings
    from idds.runtime import ensure_ray

    ensure_ray()
    settings = Settings(db_url=f"sqlite:///{tmp / 'idds.db'}", work_dir=tmp / "work")
    rows = []
    if "throughput" in parts:
        rows += throughput_rows(settings, quick)
    if "needed" in parts:
        rows += needed_rows(settings, quick, out)
    if "coverage" in parts:
        rows += coverage_rows(quick, scans)
    return rows


def throughput_rows(settings: Any, quick: bool) -> list[dict[str, Any]]:
    """One step of toy batches through the platform against the single-process loop."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 0))
    model = "high_count"
    points, batches, batch, loop_toys = (2, 1, 10, 10) if quick else (4, 2, 1000, 1000)
    load = os.getloadavg()[0]
    ours, ours_cpu, mus = platform_rate(settings, model, points, batches, batch)
    per_mu = max(loop_toys // len(mus), 1)  # the scan's POI values, as many toys in all
    before, cpu_before = loop_rate(model, mus, per_mu)
    after, cpu_after = loop_rate(model, mus, per_mu)
    niced, _ = niced_loop_rate(model, mus, per_mu)
    together = parallel_loop_rate(model, mus, per_mu, max(cpus, 1))
    loop, loop_cpu = (before + after) / 2, (cpu_before + cpu_after) / 2
    load = max(load, os.getloadavg()[0])
    config = f"{model}, qtilde, {points * batches} batches of {batch} toys per hypothesis"
    mine = f"{config}, Ray on {cpus} CPUs, load average up to {load:.1f}"
    values = ", ".join(f"{mu:g}" for mu in mus)
    theirs = (f"{model}, qtilde, one process, the step's POI values ({values}), "
              f"{per_mu} toys each (two runs: {before:.0f}, {after:.0f})")  # fmt: skip
    rows = [
        row("idds", mine, "toys_per_s", round(ours, 1), "toys/s"),
        row("pyhf-loop", theirs, "toys_per_s", round(loop, 1), "toys/s"),
        row("pyhf-loop", f"{model}, qtilde, one process at niceness {RAY_WORKER_NICENESS} (as "
            "Ray's workers)", "toys_per_s", round(niced, 1), "toys/s"),
        row("pyhf-loops", f"{model}, qtilde, {max(cpus, 1)} loops at once, one per CPU (the "
            "machine's ceiling)", "toys_per_s", round(together, 1), "toys/s"),
        row("idds", f"{config}, per CPU second of the batches", "toys_per_cpu_s",
            round(ours_cpu, 1), "toys/s"),
        row("pyhf-loop", f"{model}, qtilde, per CPU second", "toys_per_cpu_s",
            round(loop_cpu, 1), "toys/s"),
    ]  # fmt: skip
    print(f"toys/s: idds {ours:.1f} on {cpus} CPUs, pyhf loop {loop:.1f} ({ours / loop:.2f}x)")
    return rows


def needed_rows(settings: Any, quick: bool, out: Path) -> list[dict[str, Any]]:
    """The toys the adaptive scan needed on the low-count example, against a uniform grid."""
    from toys.plot import plot_cls

    rows = []
    fields = (
        {"toys": 20, "batch_size": 20, "points": 3, "tolerance": 1.0, "max_steps": 2}
        if quick
        else {"toys": 200, "batch_size": 100, "points": 5, "tolerance": 0.1, "max_steps": 20}
    )
    scan = _scan(settings, "adaptive", "low_count", seed=3, **fields)
    result = scan.run(progress=True)
    title = f"low_count example: adaptive scan, tolerance {scan.spec.tolerance:g}"
    plot_cls(result, out / "toys.png", cl=scan.spec.cl, poi="mu", title=title)
    pool = Batches(scan.spec)
    pool.add(_results(scan))
    cap = 4 * result.toys
    needed, how = uniform_needed(scan.spec, pool.get, cap)
    tol = f"low_count, all 6 limits to +-{scan.spec.tolerance:g} (errors that cover)"
    status = "converged" if result.converged else "NOT converged"
    rows.append(row("idds", f"{tol}, adaptive: {len(result.points)} points, {result.steps} steps, "
                    f"{status}", "toys_needed", result.toys, "toys"))  # fmt: skip
    rows.append(row("uniform-grid", f"{tol}, cheapest uniform grid: {how}", "toys_needed",
                    needed if needed is not None else cap, "toys"))  # fmt: skip
    print(f"toys needed: adaptive {result.toys}, uniform {needed} ({how})")
    return rows


#: The coverage runs' scans: toys per point, first grid, tolerance and steps of each (they run
#: until every limit is known to the tolerance, as a user's scan does).
COVERAGE_SCAN = {"name": "coverage", "workspace": {}, "range": [0, 5], "toys": 1000,
                 "batch_size": 500, "points": 5, "tolerance": 0.1, "max_steps": 30}  # fmt: skip


def coverage_rows(quick: bool, scans: int | None = None) -> list[dict[str, Any]]:
    """Per band, the fraction of converged scans whose +-1 sigma interval contains the true
    limit; the toys those scans needed; against them, the cheapest uniform grid reaching the
    same errors on the first few seeds."""
    from toys.coverage import GaussianModel, coverage
    from toys.spec import ToyScanSpec

    small = quick and scans is None  # --scans runs the full coverage config
    scans = scans or (20 if quick else 200)
    spec = ToyScanSpec.from_mapping(COVERAGE_SCAN | ({"tolerance": 0.2} if small else {}))
    model = GaussianModel(x_obs=0.3)
    start = time.perf_counter()
    found = coverage(spec, model, range(scans))
    took = time.perf_counter() - start
    config = (f"one Gaussian measurement (exact toy limits), {found.converged} of {scans} scans "
              f"converged to +-{spec.tolerance:g} ({spec.toys} toys per new point)")  # fmt: skip
    rows = [row("idds", f"{config}, band {band}", "coverage", round(hit / n, 3), "fraction")
            for band, (hit, n) in found.counts.items()]  # fmt: skip
    rows.append(row("idds", f"{config}, mean per scan", "toys_needed_gaussian",
                    round(found.mean_toys), "toys"))  # fmt: skip
    print("coverage: " + ", ".join(f"{b} {h / n:.2f}" for b, (h, n) in found.counts.items())
          + f" ({found.converged} of {scans} scans converged, {took:.0f} s)")  # fmt: skip
    return rows + gaussian_uniform_rows(spec, model, 2 if small else 5)


def gaussian_uniform_rows(spec: Any, model: Any, seeds: int) -> list[dict[str, Any]]:
    """Toys of the adaptive scan against the cheapest uniform grid reaching the same
    tolerance by the same (honest) errors, on the Gaussian model's first ``seeds`` seeds."""
    from toys.coverage import simulate

    adaptive, uniform, capped = [], [], 0
    for seed in range(seeds):
        one = spec.model_copy(update={"seed": seed})
        done = simulate(one, model)
        adaptive.append(done.toys)

        def get(keys: list[tuple[float, int]], one: Any = one) -> list[dict[str, Any]]:
            return [model.batch(one.seed, mu, b, one.batch_toys) for mu, b in keys]

        cap = 4 * done.toys
        needed, _ = uniform_needed(one, get, cap)
        uniform.append(needed if needed is not None else cap)
        capped += needed is None
    config = f"one Gaussian measurement, all 6 limits to +-{spec.tolerance:g}, seeds 0-{seeds - 1}"
    note = f" ({capped} of {seeds} reached none within 4x the adaptive toys: the cap counted)"
    print(f"gaussian toys needed: adaptive {sum(adaptive) / seeds:.0f}, uniform "
          f"{sum(uniform) / seeds:.0f}")  # fmt: skip
    return [
        row("idds", f"{config}, adaptive, mean", "toys_needed_gaussian",
            round(sum(adaptive) / seeds), "toys"),
        row("uniform-grid", f"{config}, cheapest uniform grid, mean" + (note if capped else ""),
            "toys_needed_gaussian", round(sum(uniform) / seeds), "toys"),
    ]  # fmt: skip


def _results(scan: Any) -> list[dict[str, Any]]:
    """The adaptive scan's recorded batch results (read from the database)."""
    from idds.records import Records

    records = Records(scan.engine)
    owner = records.owner("toyscan", scan.name)
    return [t.result for t in records.tasks(owner.id, states=["succeeded"])]


def report(rows: list[dict[str, Any]]) -> str:
    table = [[r["system"], r["config"], r["metric"], f"{r['value']:g}"] for r in rows]
    md = "# Toy-MC limit scans\n\n" + markdown_table(["system", "config", "metric", "value"], table)
    lines = []
    rate = {
        r["system"]: r for r in rows if r["metric"] == "toys_per_s" and "nice" not in r["config"]
    }
    ceiling = rate.pop("pyhf-loops", None)
    if rate:
        niced = next(r["value"] for r in rows if "niceness" in r["config"])
        per_cpu = {r["system"]: r["value"] for r in rows if r["metric"] == "toys_per_cpu_s"}
        speed = rate["idds"]["value"] / rate["pyhf-loop"]["value"]
        lines.append(
            f"Throughput: idds / single-process pyhf loop = **{speed:.2f}x** (target 1.8x);"
            f" against the loop at Ray's worker niceness {rate['idds']['value'] / niced:.2f}x;"
            f" per CPU second {per_cpu['idds'] / per_cpu['pyhf-loop']:.2f}x (the batches' own"
            " efficiency, whatever else runs on the machine)."
        )
        if ceiling:
            lines.append(
                f"The machine's ceiling, as many plain loops at once as it has CPUs:"
                f" {ceiling['value'] / rate['pyhf-loop']['value']:.2f}x one loop; idds reaches"
                f" {rate['idds']['value'] / ceiling['value']:.2f} of it."
            )
    need = {r["system"]: r for r in rows if r["metric"] == "toys_needed"}
    if need:
        saved = need["uniform-grid"]["value"] / need["idds"]["value"]
        lower = "none within" in need["uniform-grid"]["config"]
        lines.append(f"Toys needed: uniform grid / adaptive = **{saved:.2f}x** (target 3x)"
                     + (" (no uniform grid within the cap converged: a lower bound)."
                        if lower else "."))  # fmt: skip
    cover = [f"{r['config'].rsplit('band ', 1)[1]} {r['value']:.2f}" for r in rows
             if r["metric"] == "coverage"]  # fmt: skip
    if cover:
        lines.append("Coverage of the reported +-1 sigma intervals (target 0.68 +- 0.07): "
                     + ", ".join(cover) + ".")  # fmt: skip
    gauss = {r["system"]: r["value"] for r in rows
             if r["metric"] == "toys_needed_gaussian" and "seeds" in r["config"]}  # fmt: skip
    if gauss:
        lines.append(f"Toys needed on the Gaussian model: uniform grid / adaptive = "
                     f"**{gauss['uniform-grid'] / gauss['idds']:.2f}x**.")  # fmt: skip
    return md + "\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench toys", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (for the tests)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument("--scans", type=int, default=None,
                        help="coverage scans, run to the full run's tolerance (with --quick: "
                        "the pyhf parts small, the coverage full)")  # fmt: skip
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="some of throughput,needed,coverage (default: all)")  # fmt: skip
    args = parser.parse_args(argv)
    parts = tuple(p for p in PARTS if p in args.parts.split(","))
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown or not parts:
        parser.error(f"--parts: not among {','.join(PARTS)}: {','.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args.quick, Path(tmp), args.out, args.scans, parts)
    md = report(rows)
    print("\n" + md)
    name = "toys" if parts == PARTS else "toys-" + "-".join(parts)
    print(f"\nsaved {save(name, rows, md, args.out)}")


if __name__ == "__main__":
    main()
