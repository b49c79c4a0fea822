"""Per-node overhead of a workflow as it grows: a layered DAG of no-op nodes, end to end.

Sizes 10,000 / 100,000 / 1,000,000 nodes (``--sizes``), in layers of 100; each node depends
on 1 to 3 random nodes of the layer before (seeded). idds runs it as a workflow with every
node's state persisted (SQLite, PostgreSQL); raw Ray runs the same graph at every size (each
task passed its parents' object refs); Dask's threaded and distributed schedulers run the
smallest size. Metrics: ``ms_per_node`` (wall time / nodes), and for idds ``create_s`` (from
the spec to its first tasks recorded), ``create_cpu_s`` (the head's CPU time from the spec to
its first tasks handed in), ``head_cpu_ms_per_node`` (the head process's CPU time
per node: on a machine shared with other work, the steadier measure of whether the cost per
node stays flat) and ``peak_head_mb_per_100k_nodes`` (the head's peak resident memory above
what it held before, per 100,000 nodes).

    python -m bench dag [--quick] [--sizes 10000,100000] [--pg URL] [--out DIR]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._report import RESULTS, markdown_table, row, save
from bench.overhead import PG_URL, _fresh_pg

Graph = list[list[list[int]]]  # per layer, per node: indices of its parents in the layer before
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (500, 2_000)


def layered(n_nodes: int, width: int, seed: int = 0) -> Graph:
    rng = random.Random(seed)
    layers: Graph = [[[] for _ in range(width)]]
    while sum(len(layer) for layer in layers) < n_nodes:
        layers.append([rng.sample(range(width), rng.randint(1, 3)) for _ in range(width)])
    return layers


def noop(*args: object, **kwargs: object) -> None:
    return None


def _timed(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n * 1000.0


class PeakMemory:
    """The peak resident memory of this process above its level at the start, sampled."""

    def __init__(self, period_s: float = 0.05) -> None:
        import psutil

        self._process = psutil.Process()
        self._period = period_s
        self.base = self._process.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self._period):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def above_mb(self) -> float:
        return (self.peak - self.base) / 2**20


class FirstTasks:
    """The head's CPU time when a workflow first hands tasks in (its spec validated, the
    workflow recorded, its engine started)."""

    def __init__(self) -> None:
        from dag.run import WorkflowRun

        self.cpu: float | None = None
        self._run = WorkflowRun
        self._new_tasks = WorkflowRun.new_tasks

    def __enter__(self) -> FirstTasks:
        new_tasks = self._new_tasks

        def noted(run: Any, free: int) -> Any:
            if self.cpu is None:
                self.cpu = time.process_time()
            return new_tasks(run, free)

        self._run.new_tasks = noted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self._run.new_tasks = self._new_tasks  # type: ignore[method-assign]


def run_idds(graph: Graph, db_url: str, name: str) -> dict[str, float]:
    """ms per node, seconds (wall, and the head's CPU) from the spec to its first tasks
    recorded, and the head's peak memory (MB) per 100,000 nodes."""
    from dag import Workflow
    from idds.config import Settings

    with PeakMemory() as memory, FirstTasks() as first_tasks:
        start, start_cpu = time.time(), time.process_time()  # time: the database's clock
        nodes = [
            {"name": f"n{li}_{i}", "callable": "bench.dag:noop",
             "after": [f"n{li - 1}_{p}" for p in parents]}
            for li, layer in enumerate(graph) for i, parents in enumerate(layer)
        ]  # fmt: skip
        here = str(Path(__file__).parents[1])
        spec = {"name": name, "nodes": nodes, "parallel": 200, "pythonpath": [here],
                "defaults": {"resources": {"cpus": 1}, "max_attempts": 1}}  # fmt: skip
        workflow = Workflow(spec, settings=Settings(db_url=db_url))
        cpu = time.process_time()
        ms = _timed(workflow.run, len(nodes))
        cpu = time.process_time() - cpu
    assert workflow.state == "finished"
    first = workflow.records.tasks(workflow.owner_id, limit=1)[0]
    return {
        "ms_per_node": ms,
        "head_cpu_ms_per_node": cpu / len(nodes) * 1000.0,
        "create_s": first.created - start,
        "create_cpu_s": (first_tasks.cpu or start_cpu) - start_cpu,
        "peak_head_mb_per_100k_nodes": memory.above_mb * 100_000 / len(nodes),
    }


def run_ray(graph: Graph) -> float:
    import ray

    task = ray.remote(max_retries=0)(noop)

    def go() -> None:
        refs: list = []
        for layer in graph:
            refs = [task.remote(*[refs[p] for p in parents]) for parents in layer]
        ray.get(refs)

    return _timed(go, sum(len(layer) for layer in graph))


def _dask_graph(graph: Graph) -> tuple[dict, list[str]]:
    dsk: dict = {}
    for li, layer in enumerate(graph):
        for i, parents in enumerate(layer):
            dsk[f"n{li}_{i}"] = (noop, *[f"n{li - 1}_{p}" for p in parents])
    return dsk, [f"n{len(graph) - 1}_{i}" for i in range(len(graph[-1]))]


def run_dask_threaded(graph: Graph) -> float:
    import dask.threaded

    dsk, keys = _dask_graph(graph)
    return _timed(lambda: dask.threaded.get(dsk, keys), len(dsk))


def run_dask_distributed(graph: Graph) -> float:
    from dask.distributed import Client, LocalCluster

    dsk, keys = _dask_graph(graph)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.get({"w": (noop,)}, "w")  # workers up
            return _timed(lambda: client.get(dsk, keys), len(dsk))


ANCHORS: list[tuple[str, str, Callable[[Graph], float]]] = [
    ("ray", "raw tasks, refs as dependencies", run_ray),
    ("dask", "threaded scheduler (default)", run_dask_threaded),
    ("dask", "distributed, 2 worker processes", run_dask_distributed),
]


def measure(sizes: list[int], width: int, pg_url: str | None, tmp: Path) -> list[dict]:
    from idds.runtime import ensure_ray

    ensure_ray()
    run_idds(layered(200, 20, seed=1), f"sqlite:///{tmp / 'warm.db'}", "warm-up")
    rows = []
    for n_nodes in sizes:
        graph = layered(n_nodes, width)
        n = sum(len(layer) for layer in graph)
        for config, url in _databases(pg_url, tmp, n):
            for metric, value in run_idds(graph, url, f"layered-{n}").items():
                rows.append(
                    row("idds", f"{config}, {n} nodes", metric, round(value, 4), _unit(metric))
                )
            _print(rows[-5:])
        anchors = ANCHORS if n_nodes == sizes[0] else ANCHORS[:1]  # Dask: the smallest only
        for system, config, fn in anchors:
            rows.append(
                row(system, f"{config}, {n} nodes", "ms_per_node", round(fn(graph), 4), "ms")
            )
            _print(rows[-1:])
    return rows


def _databases(pg_url: str | None, tmp: Path, n: int) -> list[tuple[str, str]]:
    out = [("sqlite", f"sqlite:///{tmp / f'idds-{n}.db'}")]
    if pg_url and _fresh_pg(pg_url):
        out.append(("postgresql", pg_url))
    return out


def _unit(metric: str) -> str:
    if metric.startswith("create"):
        return "s"
    return "ms" if metric.endswith("per_node") else "MB"


def _print(rows: list[dict]) -> None:
    for r in rows:
        print(
            f"{r['system']:5s} {r['config']:48s} {r['metric']:28s} {r['value']:10.3f} {r['unit']}"
        )


def report(rows: list[dict], width: int) -> str:
    per_node = [r for r in rows if r["metric"] == "ms_per_node"]
    ray = {_nodes(r): r["value"] for r in per_node if r["system"] == "ray"}
    smallest: dict[str, float] = {}
    table = []
    for r in per_node:
        n, config = _nodes(r), r["config"].rsplit(",", 1)[0]
        base = smallest.setdefault(f"{r['system']} {config}", r["value"])
        extra = {
            x["metric"]: x["value"]
            for x in rows
            if x["config"] == r["config"] and x["system"] == "idds"
        }
        table.append([
            r["system"], config, f"{n:,}", f"{r['value']:.3f}", f"{r['value'] / ray[n]:.3g}x",
            f"{r['value'] / base:.3g}x", _fmt(extra.get("head_cpu_ms_per_node"), "{:.3f}"),
            _fmt(extra.get("create_s")), _fmt(extra.get("create_cpu_s")),
            _fmt(extra.get("peak_head_mb_per_100k_nodes"), "{:.0f}"),
        ])  # fmt: skip
    headers = ["system", "config", "nodes", "ms per node", "ratio to raw Ray",
               "per node vs smallest size", "head CPU ms per node", "spec to first tasks (s)",
               "head CPU to first tasks (s)",
               "peak head MB per 100k nodes"]  # fmt: skip
    title = f"# Workflow overhead as it grows: no-op nodes, layers of {width}, state persisted\n\n"
    return title + markdown_table(headers, table)


def _nodes(r: dict[str, Any]) -> int:
    return int(r["config"].rsplit(",", 1)[1].split()[0])


def _fmt(value: float | None, form: str = "{:.2f}") -> str:
    return "" if value is None else form.format(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench dag", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (for the tests)")
    parser.add_argument(
        "--sizes", help="comma-separated node counts (default 10000,100000,1000000)"
    )
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL ('' to leave it out)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    args = parser.parse_args(argv)
    width = 20 if args.quick else 100
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else list(QUICK_SIZES if args.quick else SIZES)
    )
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(sizes, width, args.pg or None, Path(tmp))
    md = report(rows, width)
    print("\n" + md)
    print(f"\nsaved {save('dag', rows, md, args.out)}")


if __name__ == "__main__":
    main()
