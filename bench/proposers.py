"""Proposer throughput: evaluations per second through a long study, and how idle workers are.

A study of a 10 ms objective over 4 floats, 2 workers (``parallel: 2``), each proposer
(Optuna's TPE, Optuna's GP, scikit-optimize's GP) through idds, against Optuna's own
sequential loop with the same sampler (one worker: the loop asks, then evaluates). The
default study has 10,000 points for TPE; the Gaussian processes, whose asks grow with the
cube of the points seen, stop at ``--gp-n`` (500). Metrics: evaluations per second, and the
workers' idle fraction (1 - the objectives' run time / (wall time x workers)). Target:
idds at least 1.5x Optuna's loop for TPE at 10,000 points (where TPE's asks bound both: idds
makes them in ask processes, one per worker up to the CPUs, ``hpo/replicas.py``). TPE also
runs with ``deterministic: true`` (reproducible batches, asked in the head), to show what that
costs.

    python -m bench proposers [--quick] [--n N] [--gp-n N] [--proposers a,b]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench._report import RESULTS, markdown_table, row, save

SPACE = {k: {"type": "float", "low": -5.0, "high": 5.0} for k in "abcd"}
OBJECTIVE_S = 0.01
WORKERS = 2


def run_idds(proposer: str, n: int, db: str, deterministic: bool = False) -> tuple[float, float]:
    """Wall time of the study, and its objectives' run time summed (from the workers)."""
    import hpo
    from idds.config import Settings

    study = hpo.Study(
        settings=Settings(db_url=db),
        name=f"thr-{proposer.replace(':', '-')}-{n}-{int(deterministic)}",
        objective="bench.objectives:ten_ms", space=SPACE, max_points=n, parallel=WORKERS,
        proposer=proposer, seed=1, deterministic=deterministic,
        pythonpath=[str(Path(__file__).parents[1])],
    )  # fmt: skip
    started = time.perf_counter()
    study.optimize(progress=False)
    wall = time.perf_counter() - started
    return wall, sum(t.run_s or 0.0 for t in study.trials)


def run_optuna(proposer: str, n: int) -> tuple[float, float]:
    """Optuna's sequential loop with the same sampler, in memory."""
    import optuna

    from bench.objectives import ten_ms
    from hpo.proposers import make_proposer
    from hpo.spec import StudySpec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = StudySpec.from_mapping(
        {"name": "x", "objective": "m:f", "space": SPACE, "proposer": proposer, "seed": 1}
    )
    busy = 0.0

    def objective(trial: optuna.Trial) -> float:
        nonlocal busy
        params = {k: trial.suggest_float(k, -5.0, 5.0) for k in SPACE}
        start = time.perf_counter()
        value = ten_ms(params)
        busy += time.perf_counter() - start
        return value

    started = time.perf_counter()
    if proposer.startswith("skopt:"):
        _skopt_loop(make_proposer(spec, 1), n, objective_s=OBJECTIVE_S)
        busy = n * OBJECTIVE_S
    else:
        sampler = make_proposer(spec, 1).study.sampler  # type: ignore[attr-defined]
        optuna.create_study(sampler=sampler).optimize(objective, n_trials=n)
    return time.perf_counter() - started, busy


def _skopt_loop(proposer: object, n: int, objective_s: float) -> None:
    """scikit-optimize's own ask/tell loop, one point at a time."""
    from bench.objectives import ten_ms

    for _ in range(n):
        (point,) = proposer.ask(1)  # type: ignore[attr-defined]
        proposer.tell(point, [ten_ms(point.params)])  # type: ignore[attr-defined]


def measure(args: argparse.Namespace, db: str) -> list[dict]:
    rows = []
    for proposer in args.proposers:
        n = args.n if proposer == "optuna:tpe" else min(args.n, args.gp_n)
        systems = [("idds", lambda p=proposer, n=n: run_idds(p, n, db)),
                   ("optuna-loop", lambda p=proposer, n=n: run_optuna(p, n))]  # fmt: skip
        if proposer == "optuna:tpe":  # the price of reproducible batches
            systems.append(("idds-deterministic", lambda n=n: run_idds("optuna:tpe", n, db, True)))
        for system, run in systems:
            wall, busy = run()
            workers = 1 if system == "optuna-loop" else WORKERS
            idle = max(0.0, 1.0 - busy / (wall * workers))
            config = f"{proposer} n={n}"
            rows.append(row(system, config, "evals_per_s", round(n / wall, 2), "1/s"))
            rows.append(row(system, config, "worker_idle_fraction", round(idle, 3), ""))
            print(f"{system:12s} {config:22s} {n / wall:8.1f} evals/s  idle {idle:.2f}")
    return rows


def report(rows: list[dict]) -> str:
    by = {(r["system"], r["config"], r["metric"]): r["value"] for r in rows}
    configs = list(dict.fromkeys(r["config"] for r in rows))
    table = []
    for c in configs:
        ours, theirs = by[("idds", c, "evals_per_s")], by[("optuna-loop", c, "evals_per_s")]
        table.append([c, f"{ours:g}", f"{by[('idds', c, 'worker_idle_fraction')]:.2f}",
                      f"{theirs:g}", f"{by[('optuna-loop', c, 'worker_idle_fraction')]:.2f}",
                      f"{ours / theirs:.2f}x"])  # fmt: skip
    md = (f"# Proposer throughput ({OBJECTIVE_S * 1000:g} ms objective, idds with {WORKERS} "
          "workers vs Optuna's sequential loop)\n\n")  # fmt: skip
    headers = ["proposer, points", "idds evals/s", "idds idle", "Optuna loop evals/s",
               "loop idle", "idds / loop"]  # fmt: skip
    md += markdown_table(headers, table)
    for c in configs:
        det = by.get(("idds-deterministic", c, "evals_per_s"))
        if det is not None:
            idle = by[("idds-deterministic", c, "worker_idle_fraction")]
            md += (f"\n\n{c} with `deterministic: true` (batches of 2, told in order): "
                   f"{det:g} evals/s, idle {idle:.2f}")  # fmt: skip
    return md + "\n\nTarget: idds >= 1.5x the loop for TPE (idds runs `deterministic: false`)."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench proposers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (for the tests)")
    parser.add_argument("--n", type=int, default=10_000, help="points per study (TPE)")
    parser.add_argument("--gp-n", type=int, default=500, help="points per GP study")
    parser.add_argument("--proposers", default="optuna:tpe,optuna:gp,skopt:gp")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.proposers = args.proposers.split(",")
    if args.quick:
        args.n, args.gp_n, args.proposers = 40, 20, ["optuna:tpe"]
    from idds.runtime import ensure_ray

    ensure_ray()
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args, f"sqlite:///{os.path.join(tmp, 'proposers.db')}")
    md = report(rows)
    print("\n" + md)
    print(f"saved {save('proposers', rows, md, args.out)}")


if __name__ == "__main__":
    main()
