"""Per-node overhead of a workflow: a layered DAG of no-op nodes, end to end.

10,000 nodes in layers of 100; each node depends on 1 to 3 random nodes of the layer before
(seeded). idds runs it as a workflow with every node's state persisted (SQLite, PostgreSQL);
the anchors run the same graph: raw Ray tasks (each passed its parents' object refs), Dask's
default threaded scheduler, and Dask's distributed scheduler (a local cluster of processes).
Metric: ``ms_per_node`` (wall time / nodes).

    python -m bench dag [--quick] [--pg URL] [--out DIR]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._report import RESULTS, markdown_table, row, save
from bench.overhead import PG_URL, _fresh_pg

Graph = list[list[list[int]]]  # per layer, per node: indices of its parents in the layer before


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


def run_idds(graph: Graph, db_url: str, name: str) -> float:
    from dag import Workflow
    from idds.config import Settings

    nodes = [
        {"name": f"n{li}_{i}", "callable": "bench.dag:noop",
         "after": [f"n{li - 1}_{p}" for p in parents]}
        for li, layer in enumerate(graph) for i, parents in enumerate(layer)
    ]  # fmt: skip
    here = str(Path(__file__).parents[1])
    spec = {"name": name, "nodes": nodes, "parallel": 200, "pythonpath": [here],
            "defaults": {"resources": {"cpus": 1}, "max_attempts": 1}}  # fmt: skip
    workflow = Workflow(spec, settings=Settings(db_url=db_url))
    workflow.create()
    ms = _timed(workflow.run, len(nodes))
    assert workflow.state == "finished"
    return ms


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


def measure(n_nodes: int, width: int, pg_url: str | None, tmp: Path) -> list[dict]:
    from idds.runtime import ensure_ray

    ensure_ray()
    graph = layered(n_nodes, width)
    n = sum(len(layer) for layer in graph)
    run_idds(layered(200, 20, seed=1), f"sqlite:///{tmp / 'warm.db'}", "warm-up")
    configs: list[tuple[str, str, Callable[[], float]]] = [
        ("idds", "sqlite", lambda: run_idds(graph, f"sqlite:///{tmp / 'idds.db'}", "layered")),
    ]
    if pg_url and _fresh_pg(pg_url):
        configs.append(("idds", "postgresql", lambda: run_idds(graph, pg_url, "layered")))
    configs += [
        ("ray", "raw tasks, refs as dependencies", lambda: run_ray(graph)),
        ("dask", "threaded scheduler (default)", lambda: run_dask_threaded(graph)),
        ("dask", "distributed, 2 worker processes", lambda: run_dask_distributed(graph)),
    ]
    rows = []
    for system, config, fn in configs:
        ms = fn()
        print(f"{system:5s} {config:34s} {ms:8.3f} ms/node  ({n} nodes, width {width})")
        rows.append(row(system, config, "ms_per_node", round(ms, 4), "ms"))
    return rows


def report(rows: list[dict], n: int, width: int) -> str:
    ray_ms = next(r["value"] for r in rows if r["system"] == "ray")
    table = [
        [r["system"], r["config"], f"{r['value']:.3f}", f"{r['value'] / ray_ms:.3g}x"] for r in rows
    ]
    headers = ["system", "config", "ms per node", "ratio to raw Ray"]
    title = f"# Workflow overhead: {n} no-op nodes, layers of {width}, state persisted\n\n"
    return title + markdown_table(headers, table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench dag", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (for the tests)")
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL ('' to leave it out)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    args = parser.parse_args(argv)
    n, width = (500, 20) if args.quick else (10_000, 100)
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(n, width, args.pg or None, Path(tmp))
    md = report(rows, n, width)
    print("\n" + md)
    print(f"\nsaved {save('dag', rows, md, args.out)}")


if __name__ == "__main__":
    main()
