"""Proposer quality: best value reached versus evaluations, ours in parallel against Optuna's
sequential TPE loop and random search, in one run.

Branin, Hartmann-6, Rosenbrock-5D and the digits SVC; 60 evaluations, 4 in parallel, 5 seeds,
each of our proposers (``optuna:grid`` needs a stepped space and is left out). Metric
``median_final_regret``: the median over seeds of (best value - known optimum), or of the best
error rate for the SVC. Curves of the median best-so-far go to ``bench/results/quality.png``.

    python -m bench quality [--quick] [--problems a,b] [--proposers p,q] [--seeds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

from bench import problems
from bench._report import RESULTS, markdown_table, row, save

ALL_PROPOSERS = [
    "optuna:tpe", "optuna:gp", "optuna:cmaes", "optuna:nsga2", "optuna:nsga3", "optuna:qmc",
    "optuna:random", "skopt:gp", "skopt:rf", "skopt:et", "skopt:gbrt",
]  # fmt: skip
DEFAULT = "optuna:tpe"


def _curve(values: list[float]) -> list[float]:
    best, out = float("inf"), []
    for v in values:
        best = min(best, v)
        out.append(best)
    return out


def run_ours(problem: str, proposer: str, seed: int, n: int, parallel: int, db: str) -> list[float]:
    import hpo
    from idds.config import Settings

    space, _ = problems.SPACES[problem]
    study = hpo.Study(
        settings=Settings(db_url=db), name=f"{problem}-{proposer.replace(':', '-')}-{seed}",
        objective=f"bench.problems:{problem}", space=space, max_points=n, parallel=parallel,
        proposer=proposer, seed=seed, pythonpath=[str(Path(__file__).parents[1])],
    )  # fmt: skip
    study.optimize(progress=False)
    return _curve([t.value if t.value is not None else float("inf") for t in study.trials])


def run_optuna(problem: str, sampler: str, seed: int, n: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, _ = problems.SPACES[problem]
    fn = getattr(problems, problem)

    def objective(trial: optuna.Trial) -> float:
        params = {
            k: trial.suggest_float(k, p["low"], p["high"], log=p.get("log", False))
            for k, p in space.items()
        }
        return fn(params)

    s = optuna.samplers.TPESampler(seed=seed) if sampler == "tpe" else (
        optuna.samplers.RandomSampler(seed=seed))  # fmt: skip
    study = optuna.create_study(sampler=s)
    study.optimize(objective, n_trials=n)
    return _curve([t.value for t in study.trials])


def regret(problem: str, curve: list[float]) -> float:
    _, optimum = problems.SPACES[problem]
    return curve[-1] - (optimum or 0.0)


def measure(args: argparse.Namespace, db: str) -> tuple[list[dict], dict]:
    rows, curves = [], {}
    for problem in args.problems:
        contenders = [
            ("optuna-tpe-sequential", "tpe", partial(run_optuna, problem, "tpe", n=args.n)),
            ("random", "random", partial(run_optuna, problem, "random", n=args.n)),
        ] + [
            ("idds", p, partial(run_ours, problem, p, n=args.n, parallel=args.parallel, db=db))
            for p in args.proposers
        ]
        for system, label, run in contenders:
            started = time.perf_counter()
            runs = [run(seed=seed) for seed in range(args.seeds)]
            value = statistics.median(regret(problem, c) for c in runs)
            config = f"{problem}/{label}" if system == "idds" else problem
            rows.append(row(system, config, "median_final_regret", round(value, 6), "regret"))
            curves[(problem, f"{system}:{label}" if system == "idds" else system)] = [
                statistics.median(c[i] for c in runs) for i in range(args.n)
            ]
            took = time.perf_counter() - started
            print(f"{problem:12s} {system:22s} {label:14s} {value:12.6f}   ({took:.0f} s)")
    return rows, curves


def report(rows: list[dict], problems_: list[str]) -> tuple[str, str]:
    table = [[r["system"], r["config"], f"{r['value']:.6g}"] for r in rows]
    md = "# Proposer quality (median final regret; lower is better)\n\n"
    md += markdown_table(["system", "config", "median final regret"], table)
    wins = _wins(rows, problems_)
    lines = [f"- {p}: at or below Optuna's sequential TPE on {n} of {len(problems_)} problems"
             for p, n in sorted(wins.items(), key=lambda kv: -kv[1])]  # fmt: skip
    best = max(wins, key=lambda p: (wins[p], p == DEFAULT)) if wins else DEFAULT
    verdict = (f"best proposer at its defaults: {best}, at or below Optuna's sequential TPE "
               f"on {wins.get(best, 0)} of {len(problems_)} problems")  # fmt: skip
    md += "\n\nWith parallel evaluations, each proposer against Optuna's sequential TPE:\n\n"
    md += "\n".join(lines)
    return md + "\n\n" + verdict + "\n", verdict


def _wins(rows: list[dict], problems_: list[str]) -> dict[str, int]:
    """Per proposer: on how many problems its median final regret is at most sequential TPE's."""
    tpe = {r["config"]: r["value"] for r in rows if r["system"] == "optuna-tpe-sequential"}
    wins: dict[str, int] = {}
    for r in rows:
        if r["system"] == "idds":
            problem, proposer = r["config"].split("/", 1)
            if problem in problems_:
                wins[proposer] = wins.get(proposer, 0) + (r["value"] <= tpe[problem])
    return wins


def plot(curves: dict, problems_: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(problems_), figsize=(5 * len(problems_), 4), squeeze=False)
    for ax, problem in zip(axes[0], problems_, strict=True):
        _, optimum = problems.SPACES[problem]
        for (p, label), curve in curves.items():
            if p == problem:
                ax.plot(range(1, len(curve) + 1), [v - (optimum or 0.0) for v in curve],
                        label=label, lw=2 if "tpe" in label else 1)  # fmt: skip
        ax.set(title=problem, xlabel="evaluations", ylabel="median best regret", yscale="log")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench quality", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (for the tests)")
    parser.add_argument("--problems", default="branin,hartmann6,rosenbrock5,svc")
    parser.add_argument("--proposers", default=",".join(ALL_PROPOSERS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n", type=int, default=60, help="evaluations per run")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.problems = args.problems.split(",")
    args.proposers = args.proposers.split(",")
    if args.quick:
        args.problems, args.proposers, args.seeds, args.n = (
            ["branin"], ["optuna:tpe", "skopt:et"], 2, 12)  # fmt: skip
    from idds.runtime import ensure_ray

    ensure_ray()
    with tempfile.TemporaryDirectory() as tmp:
        rows, curves = measure(args, f"sqlite:///{os.path.join(tmp, 'quality.db')}")
    md, verdict = report(rows, args.problems)
    print("\n" + md)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(curves, args.problems, args.out / "quality.png")
    print(f"saved {save('quality', rows, md, args.out)} and {args.out / 'quality.png'}")


if __name__ == "__main__":
    main()
