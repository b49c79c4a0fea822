"""Time to render the dashboard's study page with 1,000 and 10,000 trials, beside Optuna's own
plot functions on the same trials.

A study is written to an Optuna journal storage (4 parameters: float, log float, int,
categorical; a third of the trials report 5 intermediate values; one in twenty fails) and
imported into idds (``hpo.interop.import_study``). Then:

- ``idds``: Streamlit's AppTest renders the Studies page with ``?study=NAME`` from a cold cache
  in a process that has imported its modules, as a running server has (read the trials, draw
  every figure, build the trials table, serialise it all);
- ``idds-refresh``: the same page again, as a refresh does while nothing changed;
- ``idds-every-figure``: the cold page, then each of its other figures chosen once (the page
  draws the history and one chosen figure at a time), i.e. every figure drawn;
- ``optuna``: ``optuna.load_study`` from the journal, then ``optuna.visualization``'s history,
  parallel coordinates, importance, slice, contour and intermediate values at their defaults,
  each serialised with ``to_json()`` (what a page sends to the browser);
- ``optuna-best``: the same with Optuna's fast importance evaluator (PED-ANOVA) and the
  contour of the 3 most important parameters.

Metric ``render_s``, config = trials. ``python -m bench dashboard [--quick] [--out DIR]``
"""

from __future__ import annotations

import argparse
import math
import os
import random
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from bench._report import RESULTS, markdown_table, row, save

ROOT = Path(__file__).parents[1]
APP = str(ROOT / "dashboard" / "app.py")


def _distributions() -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    return {
        "x": FloatDistribution(-5.0, 5.0), "lr": FloatDistribution(1e-4, 1.0, log=True),
        "layers": IntDistribution(1, 8), "kind": CategoricalDistribution(["a", "b", "c"]),
    }  # fmt: skip


def _trial(i: int, rng: random.Random, dists: dict[str, Any]) -> Any:
    import optuna

    p = {"x": rng.uniform(-5, 5), "lr": 10 ** rng.uniform(-4, 0), "layers": rng.randint(1, 8),
         "kind": rng.choice("abc")}  # fmt: skip
    value = p["x"] ** 2 + abs(math.log10(p["lr"]) + 2) + p["layers"] / 4 + "abc".index(p["kind"])
    steps = {s: value * (1 + 1 / (s + 1)) for s in range(5)} if i % 3 == 0 else None
    if i % 20 == 19:
        return optuna.trial.create_trial(params=p, distributions=dists,
                                         state=optuna.trial.TrialState.FAIL)  # fmt: skip
    return optuna.trial.create_trial(params=p, distributions=dists, value=value,
                                     intermediate_values=steps)  # fmt: skip


def seed(n: int, tmp: Path) -> tuple[str, str]:
    """An Optuna study of ``n`` trials in a journal file, imported into an idds SQLite file.

    Returns:
        The journal storage URL and the idds database URL.
    """
    import optuna

    from hpo.interop import import_study, storage
    from idds.config import Settings

    journal = f"journal:{tmp / f'optuna-{n}.log'}"
    dists, rng = _distributions(), random.Random(n)
    study = optuna.create_study(storage=storage(journal), study_name=f"bench-{n}")
    study.add_trials([_trial(i, rng, dists) for i in range(n)])
    db_url = f"sqlite:///{tmp / f'idds-{n}.db'}"
    spec = {"name": f"bench-{n}", "objective": "bench.objectives:trivial",
            "pythonpath": [str(ROOT)]}  # fmt: skip
    import_study(journal, f"bench-{n}", spec, settings=Settings(db_url=db_url))
    return journal, db_url


def render_idds(db_url: str, name: str) -> tuple[float, float, float]:
    """Seconds to render the study page from a cold cache, again from the cache, and the cold
    page plus each other figure chosen once (every figure drawn, as Optuna's row does)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard.plots import OPTUNA_FIGURES

    os.environ["IDDS_DB_URL"] = db_url
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params["study"] = name
    at.run()  # the Overview page first, as a user arrives
    at.switch_page("views/studies.py").run()  # imports done, as in a running server
    st.cache_resource.clear()
    cold = _seconds(at.run)
    warm = _seconds(at.run)
    if at.exception or len(at.get("plotly_chart")) != 2:
        raise RuntimeError(f"the study page did not render: {[e.message for e in at.exception]}")
    every = cold
    for title in OPTUNA_FIGURES[1:]:  # a user clicking through the other figures, once each
        every += _seconds(at.segmented_control(key="figure").set_value(title).run)
    return cold, warm, every


def render_optuna(journal: str, name: str, *, best: bool) -> float:
    """Seconds for Optuna's figures of the same study, read from its journal storage."""
    import optuna

    from hpo.interop import storage

    def draw() -> None:
        vis = optuna.visualization
        study = optuna.load_study(study_name=name, storage=storage(journal))
        evaluator = optuna.importance.PedAnovaImportanceEvaluator() if best else None
        importance = vis.plot_param_importances(study, evaluator=evaluator)
        params = None
        if best:
            ranked = optuna.importance.get_param_importances(study, evaluator=evaluator)
            params = list(ranked)[:3]
        figures = [vis.plot_optimization_history(study), vis.plot_parallel_coordinate(study),
                   importance, vis.plot_slice(study), vis.plot_contour(study, params=params),
                   vis.plot_intermediate_values(study)]  # fmt: skip
        for fig in figures:
            fig.to_json()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _seconds(draw)


def _seconds(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(sizes: list[int], tmp: Path) -> list[dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for n in sizes:
        start = time.perf_counter()
        journal, db_url = seed(n, tmp)
        print(f"{n} trials written and imported in {time.perf_counter() - start:.1f} s")
        cold, warm, every = render_idds(db_url, f"bench-{n}")
        results = {"idds": cold, "idds-refresh": warm, "idds-every-figure": every,
                   "optuna": render_optuna(journal, f"bench-{n}", best=False),
                   "optuna-best": render_optuna(journal, f"bench-{n}", best=True)}  # fmt: skip
        for system, seconds in results.items():
            print(f"{system:13s} {n:6d} trials {seconds:8.3f} s")
            rows.append(row(system, str(n), "render_s", round(seconds, 4), "s"))
    return rows


SETTINGS = {
    "idds": "study page, cold cache (AppTest)",
    "idds-refresh": "study page again, cached",
    "idds-every-figure": "cold page, then each other figure chosen once",
    "optuna": "optuna.visualization, defaults (fANOVA, contour of all params)",
    "optuna-best": "optuna.visualization, PED-ANOVA, contour of 3 params",
}


def report(rows: list[dict]) -> str:
    base = {r["config"]: r["value"] for r in rows if r["system"] == "idds"}
    table = [
        [r["config"], r["system"], SETTINGS[r["system"]], f"{r['value']:.3f}",
         f"{r['value'] / base[r['config']]:.3g}x"]
        for r in rows
    ]  # fmt: skip
    headers = ["trials", "system", "what", "render (s)", "ratio to idds"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    note = (f"Load average when it finished (1, 5, 15 min; {os.cpu_count()} CPUs): {load}. "
            "Target: the study page renders in under 2 s with 10,000 trials. The page draws "
            "Optuna's figures from at most 1,000 trials (the best tenth and an even sample); "
            "its history shows every trial.")  # fmt: skip
    return (
        "# Dashboard: study page render time\n\n" + markdown_table(headers, table) + "\n\n" + note
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench dashboard", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (for the tests)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    args = parser.parse_args(argv)
    sizes = [200] if args.quick else [1000, 10000]
    old = os.environ.get("IDDS_DB_URL")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            rows = measure(sizes, Path(tmp))
        finally:
            if old is None:
                os.environ.pop("IDDS_DB_URL", None)
            else:
                os.environ["IDDS_DB_URL"] = old
    md = report(rows)
    print("\n" + md)
    print(f"\nsaved {save('dashboard', rows, md, args.out)}")


if __name__ == "__main__":
    main()
