"""Per-evaluation platform overhead: a trivial objective, the random proposer, 2 in parallel.

idds on SQLite and PostgreSQL (every result committed before it is reported) beside Optuna's
own ``study.optimize`` loop (in memory, SQLite RDB storage, JournalStorage), Ray Tune
(default, and ``reuse_actors=True``) and the floor: raw Ray tasks of the same objective at the
same parallelism (a ``ray.wait`` loop keeping 2 in flight), all in one run. Metric:
``ms_per_eval``.

    python -m bench overhead [--quick] [--evals N] [--pg URL] [--out DIR]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from bench._report import RESULTS, markdown_table, row, save

PG_URL = os.environ.get("IDDS_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _timed(fn: Callable[[], None], n: int) -> float:
    """ms per evaluation of ``fn`` (``n`` evaluations); its CPU times go to :data:`_last_cpu`."""
    own, busy = _own_cpu_ms(), _machine_busy_ms()
    start = time.perf_counter()
    fn()
    ms = (time.perf_counter() - start) / n * 1000.0
    _last_cpu[:] = [(_own_cpu_ms() - own) / n, (_machine_busy_ms() - busy) / n]
    return ms


def _machine_busy_ms() -> float:
    """CPU time the whole machine has spent busy, in ms (Linux's ``/proc/stat``; 0 elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields) - idle) * 1000.0 / os.sysconf("SC_CLK_TCK")


def _own_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000.0


_last_cpu: list[float] = []  # the last timed run's own and machine CPU ms per evaluation
#: config -> per round: own and machine CPU ms per evaluation, Ray round trip and turnaround ms
_profile: dict[str, list[tuple[float, ...]]] = {}


class _Slots:
    """Where a slot's time goes: the Ray round trip (an attempt launched to its end seen by
    the head) and the head's turnaround (an end seen to the next launch, which the freed slot
    waits for). The medians of the last timed run go to :data:`_last_slots`."""

    def __init__(self) -> None:
        self.launched: dict[Any, float] = {}
        self.launches: list[float] = []
        self.ends: list[float] = []
        self.round_trips: list[float] = []

    def launch(self, key: Any) -> None:
        self.launches.append(time.perf_counter())
        self.launched[key] = self.launches[-1]

    def ended(self, key: Any) -> None:
        self.ends.append(time.perf_counter())
        self.round_trips.append(self.ends[-1] - self.launched.pop(key))

    def figures(self) -> tuple[float, float]:
        turnarounds = []
        for end in self.ends:
            i = bisect.bisect_left(self.launches, end)
            if i < len(self.launches):
                turnarounds.append(self.launches[i] - end)
        median = lambda v: statistics.median(v) * 1000.0 if v else 0.0  # noqa: E731
        return median(self.round_trips), median(turnarounds)


_last_slots: list[float] = []


def run_idds(db_url: str, n: int) -> float:
    import hpo
    from idds.config import Settings

    settings = Settings(db_url=db_url)
    space = {"x": {"type": "float", "low": -1.0, "high": 1.0}}
    here = str(Path(__file__).parents[1])

    def study(name: str, points: int) -> hpo.Study:
        return hpo.Study(
            settings=settings, name=name, objective="bench.objectives:trivial", space=space,
            max_points=points, parallel=2, proposer="optuna:random", seed=0, pythonpath=[here],
        )  # fmt: skip

    study("warm-up", 20).optimize(progress=False)  # Ray workers and imports ready
    timed = study("overhead", n)
    timed.create()
    with _slots_of_the_head() as slots:
        ms = _timed(lambda: timed.optimize(progress=False), n)
    _last_slots[:] = slots.figures()
    assert sum(t.state == "succeeded" for t in timed.trials) == n
    return ms


@contextlib.contextmanager
def _slots_of_the_head() -> Any:
    """:class:`_Slots` fed by the head's launches and collections while the block runs."""
    from idds.dispatch.ray_side import RaySide

    slots = _Slots()
    launch, collect = RaySide.launch, RaySide.collect

    def launched(self: RaySide, claim: Any, placement: Any) -> None:
        launch(self, claim, placement)
        slots.launch(claim.token)

    def collected(self: RaySide, *args: Any, **kwargs: Any) -> Any:
        ended = collect(self, *args, **kwargs)
        for flight, _ in ended:
            slots.ended(flight.claim.token)
        return ended

    with (
        mock.patch.object(RaySide, "launch", launched),
        mock.patch.object(RaySide, "collect", collected),
    ):
        yield slots


def run_ray_floor(n: int) -> float:
    """Raw Ray tasks of the same objective, 2 in flight: what any head on Ray costs at least."""
    import random

    import ray

    from bench.objectives import trivial

    task = ray.remote(max_retries=0)(trivial)
    rng = random.Random(0)

    slots = _Slots()

    def submit() -> Any:
        ref = task.remote({"x": rng.uniform(-1, 1)})
        slots.launch(ref)
        return ref

    def loop(count: int) -> None:
        flying = [submit() for _ in range(min(2, count))]
        submitted = len(flying)
        while flying:
            ready, flying = ray.wait(flying, num_returns=1)
            ray.get(ready)
            slots.ended(ready[0])
            if submitted < count:
                flying.append(submit())
                submitted += 1

    loop(20)  # workers up
    slots = _Slots()
    ms = _timed(lambda: loop(n), n)
    _last_slots[:] = slots.figures()
    return ms


def _optuna_objective(trial: object) -> float:
    return trial.suggest_float("x", -1.0, 1.0) ** 2  # type: ignore[attr-defined]


def run_optuna(storage: object, n: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    return _timed(lambda: study.optimize(_optuna_objective, n_trials=n), n)


def _tune_trainable(config: dict) -> dict:
    return {"value": config["x"] ** 2}


def run_ray_tune(n: int, reuse_actors: bool, storage: str) -> float:
    from ray import tune

    tuner = tune.Tuner(
        _tune_trainable,
        param_space={"x": tune.uniform(-1.0, 1.0)},
        tune_config=tune.TuneConfig(
            num_samples=n, max_concurrent_trials=2, reuse_actors=reuse_actors
        ),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    )
    return _timed(tuner.fit, n)


def _fresh_pg(url: str) -> str | None:
    from idds.db import drop_all

    try:
        drop_all(url)
    except Exception as exc:  # no server: the row is left out and the table says so
        print(f"PostgreSQL at {url} not used: {str(exc).splitlines()[0]}")
        return None
    return url


def _platform_rounds(
    n: int, rounds: int, pg_url: str | None, tmp: Path
) -> list[tuple[str, str, list[float]]]:
    """idds on SQLite and PostgreSQL and the floor, alternating, ``rounds`` times each."""
    systems: list[tuple[str, str, Callable[[int], float]]] = [
        ("idds", "sqlite", lambda r: run_idds(f"sqlite:///{tmp / f'idds-{r}.db'}", n)),
    ]
    if pg_url and _fresh_pg(pg_url):
        systems.append(("idds", "postgresql", lambda r: _fresh_pg(pg_url) and run_idds(pg_url, n)))
    systems.append(("ray", "floor: raw tasks, 2 in flight", lambda r: run_ray_floor(n)))
    times: dict[str, list[float]] = {config: [] for _, config, _ in systems}
    for r in range(rounds):
        for system, config, fn in systems:
            ms = fn(r)
            times[config].append(ms)
            _profile.setdefault(config, []).append((*_last_cpu, *_last_slots))
            print(f"round {r + 1}: {system:5s} {config:30s} {ms:8.3f} ms/eval")
    return [(system, config, times[config]) for system, config, _ in systems]


def measure(n: int, n_tune: int, rounds: int, pg_url: str | None, tmp: Path) -> list[dict]:
    import optuna

    from idds.runtime import ensure_ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ensure_ray()
    rows = []
    for system, config, times in _platform_rounds(n, rounds, pg_url, tmp):
        ms = statistics.median(times)
        rows.append(row(system, f"{config}, {n} evals", "ms_per_eval", round(ms, 4), "ms"))
        rows[-1].update(rounds=[round(t, 4) for t in times], **_where_it_goes(config))
    journal = optuna.storages.journal.JournalFileBackend(str(tmp / "journal.log"))
    configs: list[tuple[str, str, Callable[[], float], int]] = [
        ("optuna", "in-memory", lambda: run_optuna(None, n), n),
        ("optuna", "sqlite RDB storage", lambda: run_optuna(f"sqlite:///{tmp / 'o.db'}", n), n),
        ("optuna", "JournalStorage (file)",
         lambda: run_optuna(optuna.storages.JournalStorage(journal), n), n),
        ("ray-tune", "default", lambda: run_ray_tune(n_tune, False, str(tmp / "t1")), n_tune),
        ("ray-tune", "reuse_actors=True",
         lambda: run_ray_tune(n_tune, True, str(tmp / "t2")), n_tune),
    ]  # fmt: skip
    for system, config, fn, count in configs:
        ms = fn()
        print(f"{system:9s} {config:24s} {ms:10.3f} ms/eval  ({count} evaluations)")
        rows.append(row(system, f"{config}, {count} evals", "ms_per_eval", round(ms, 4), "ms"))
    return rows


def _where_it_goes(config: str) -> dict[str, dict[str, float]]:
    """Medians over rounds: the CPU time per evaluation, own (the head or the floor's loop)
    and the whole machine's; a slot's Ray round trip and the head's turnaround, in ms."""
    spent = _profile.get(config, [])
    median = lambda i: round(statistics.median(s[i] for s in spent), 3)  # noqa: E731
    return {
        "cpu_ms_per_eval": {"own": median(0), "machine": median(1)},
        "slot_ms": {"round_trip": median(2), "turnaround": median(3)},
    }


def report(rows: list[dict]) -> str:
    base = next(r["value"] for r in rows if r["system"] == "idds")
    floor = next(r["value"] for r in rows if r["system"] == "ray")
    table = [
        [r["system"], r["config"], f"{r['value']:.3f}", _range(r), f"{r['value'] / base:.3g}x",
         f"{r['value'] / floor:.3g}x", _cpu_cells(r), _slot_cells(r)]
        for r in rows
    ]  # fmt: skip
    headers = ["system", "config", "ms per evaluation (median)", "range over rounds",
               "ratio to idds on SQLite", "ratio to the floor (raw Ray)",
               "CPU ms per evaluation: own / machine",
               "a slot's ms: Ray round trip / head turnaround"]  # fmt: skip
    return "# Per-evaluation overhead\n\n" + markdown_table(headers, table)


def _range(r: dict) -> str:
    times = r.get("rounds")
    return f"{min(times):.3f} - {max(times):.3f} ({len(times)} rounds)" if times else ""


def _slot_cells(r: dict) -> str:
    slot = r.get("slot_ms")
    return f"{slot['round_trip']:.2f} / {slot['turnaround']:.2f}" if slot else ""


def _cpu_cells(r: dict) -> str:
    cpu = r.get("cpu_ms_per_eval")
    return f"{cpu['own']:.2f} / {cpu['machine']:.2f}" if cpu else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench overhead", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (for the tests)")
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL ('' to leave it out)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument("--evals", type=int, help="evaluations per system (default 1000)")
    parser.add_argument("--rounds", type=int, help="rounds of idds and the floor (default 5)")
    args = parser.parse_args(argv)
    n, n_tune, rounds = (100, 4, 1) if args.quick else (1000, 200, 5)
    rounds = args.rounds or rounds
    if args.evals:
        n, n_tune = args.evals, min(n_tune, max(args.evals // 10, 4))
    cwd = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # Ray Tune and the SQLite files write here
        try:
            rows = measure(n, n_tune, rounds, args.pg or None, Path(tmp))
        finally:
            os.chdir(cwd)
    md = report(rows)
    print("\n" + md)
    print(f"\nsaved {save('overhead', rows, md, args.out)}")


if __name__ == "__main__":
    main()
