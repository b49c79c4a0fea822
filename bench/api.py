"""The HTTP API under load: concurrent clients listing, showing and enqueuing while studies run
on the same server.

One ``idds serve`` (a local Ray of its own, SQLite by default) runs 4 studies twice: alone,
then with ``--clients`` client threads on loopback, each looping (with a short pause) over
list owners, show a study's trials and enqueue a point into a study of its own (suspended, so
that its points never run), until the studies end or ``--max-s`` passes. Reported: p50 / p99
latency per endpoint, requests and errors, and the studies' time per evaluation with and
without the clients (target: at most 1.3x).

    python -m bench api [--quick] [--clients N] [--pg URL] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench._report import RESULTS, markdown_table, row, save

HERE = str(Path(__file__).parents[1])
SPACE = {"x": {"type": "float", "low": -1.0, "high": 1.0}}
#: A client's pause between rounds (a dashboard or a `watch` refreshes every second or so).
THINK_S = 1.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(db_url: str, work: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """``idds serve`` with a registered admin; returns (process, URL, token)."""
    from idds import auth
    from idds.db import connect

    token = auth.add_user(connect(db_url), auth.Actor("bench", admin=True), "bench")
    port = _free_port()
    env = {**os.environ, "IDDS_DB_URL": db_url, "IDDS_TOKEN": token,
           "IDDS_WORK_DIR": str(work / "work")}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "idds", "serve", "--api", f"127.0.0.1:{port}", "--poll", "0.5"],
        env=env, stdout=(work / "serve.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(url + "/openapi.json", timeout=1)
            return proc, url, token
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("idds serve did not answer")


def _studies(url: str, token: str, tag: str, points: int) -> list[Any]:
    import hpo
    from idds.config import Settings

    settings = Settings(url=url, token=token)
    studies = [
        hpo.Study(
            settings=settings,
            name=f"{tag}-{i}",
            objective="bench.objectives:trivial",
            space=SPACE,
            max_points=points,
            parallel=2,
            proposer="optuna:random",
            seed=i,
            resources={"cpus": 0.5},
            pythonpath=[HERE],
        )  # fmt: skip
        for i in range(4)
    ]
    for study in studies:
        study.create()
    return studies


def _wait(studies: list[Any], max_s: float) -> float:
    """Seconds per evaluation of the studies, from the first start to the last end of an
    evaluation (the heads' own start is left out), once they ended or ``max_s`` passed."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_s:
        if all(s.state != "active" for s in studies):
            break
        time.sleep(0.5)
    tasks = [t for s in studies for t in s.records.tasks(s.owner_id) if t.finished]
    span = max(t.finished for t in tasks) - min(t.started or t.dispatched or 0 for t in tasks)
    return span / max(len(tasks), 1)


class Clients:
    """``n`` client threads looping over list, show and enqueue, with their latencies."""

    def __init__(self, url: str, token: str, n: int, study_ids: list[int]) -> None:
        self.url, self.token, self.n, self.study_ids = url, token, n, study_ids
        self.latency: dict[str, list[float]] = {"list": [], "show": [], "enqueue": []}
        self.errors: dict[str, int] = {"list": 0, "show": 0, "enqueue": 0}
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self, targets: list[int]) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, args=(t,), daemon=True) for t in targets]
        for t in threads:
            t.start()
        return threads

    def _client(self, own_study: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=60) as http:
            i = 0
            while not self.stop.is_set():
                study = self.study_ids[i % len(self.study_ids)]
                self._call("list", lambda: http.get("/owners", params={"limit": 50}))
                self._call("show", lambda s=study: http.get(f"/owners/{s}/tasks",
                                                           params={"limit": 100}))  # fmt: skip
                self._call("enqueue", lambda n=i: self._enqueue(http, own_study, n))
                i += 1
                self.stop.wait(THINK_S)

    def _enqueue(self, http: httpx.Client, owner_id: int, i: int) -> httpx.Response:
        spec = http.get(f"/owners/{owner_id}").json()["spec"]
        new = {**spec, "initial_points": [*spec.get("initial_points", []), {"x": i % 7 / 10}]}
        return http.post(f"/owners/{owner_id}/spec", json={"expected": spec, "spec": new})

    def _call(self, name: str, fn: Any) -> None:
        start = time.perf_counter()
        try:
            ok = fn().status_code < 400
        except httpx.HTTPError:
            ok = False
        ms = (time.perf_counter() - start) * 1000
        with self.lock:
            self.latency[name].append(ms)
            self.errors[name] += not ok


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if len(values) > 1
        else values[0]
    )


def _targets(url: str, token: str, n: int) -> list[int]:
    """One suspended study per client, to enqueue into."""
    http = httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {token}"},
                        timeout=60)  # fmt: skip
    ids = []
    for i in range(n):
        body = {"kind": "study", "name": f"target-{i}", "spec": {"space": SPACE}}
        owner_id = http.post("/owners", json=body).json()["id"]
        http.post(f"/owners/{owner_id}/state", json={"state": "suspended"})
        ids.append(owner_id)
    return ids


def run(db_url: str, work: Path, clients: int, points: int, max_s: float) -> dict[str, Any]:
    proc, url, token = _start(db_url, work)
    try:
        targets = _targets(url, token, clients)  # suspended: no head runs them
        alone = _studies(url, token, "alone", points)
        per_eval = [_wait(alone, max_s)]
        loaded = _studies(url, token, "loaded", points)
        load = Clients(url, token, clients, [s.owner_id for s in loaded])
        threads = load.run(targets)
        per_eval.append(_wait(loaded, max_s))
        load.stop.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return {"per_eval": per_eval, "clients": load}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench api")
    parser.add_argument("--quick", action="store_true", help="10 clients, 20 points a study")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--points", type=int, help="points a study (100; 20 with --quick)")
    parser.add_argument("--pg", help="a PostgreSQL URL (an empty database) instead of SQLite")
    parser.add_argument("--max-s", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    clients = 10 if args.quick else args.clients
    points = args.points or (20 if args.quick else 100)
    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.pg or f"sqlite:///{tmp}/idds.db"
        got = run(db_url, Path(tmp), clients, points, args.max_s)
    load: Clients = got["clients"]
    per_eval = got["per_eval"]
    ratio = per_eval[1] / per_eval[0]
    config = (
        f"{'postgresql' if args.pg else 'sqlite'}, 4 studies x {points} points, {clients} clients"
    )
    rows = [
        row("idds", config, "ms_per_eval_alone", per_eval[0] * 1000, "ms"),
        row("idds", config, "ms_per_eval_with_clients", per_eval[1] * 1000, "ms"),
        row("idds", config, "slowdown_with_clients", ratio, "x"),
    ]
    table = []
    for name, values in load.latency.items():
        p50, p99 = _pct(values, 50), _pct(values, 99)
        rows += [row("idds", config, f"{name}_p50", p50, "ms"),
                 row("idds", config, f"{name}_p99", p99, "ms"),
                 row("idds", config, f"{name}_errors", load.errors[name], "requests")]  # fmt: skip
        table.append([name, str(len(values)), f"{p50:.1f}", f"{p99:.1f}", str(load.errors[name])])
    md = "\n\n".join(
        [
            f"# HTTP API under load\n\n{config}; {os.cpu_count()} CPUs; loopback only.",
            markdown_table(["endpoint", "requests", "p50 ms", "p99 ms", "errors"], table),
            markdown_table(
                ["studies' time per evaluation", "ms"],
                [
                    ["alone", f"{per_eval[0] * 1000:.1f}"],
                    ["with the clients", f"{per_eval[1] * 1000:.1f}"],
                    ["ratio (target <= 1.3)", f"{ratio:.2f}x"],
                ],
            ),  # fmt: skip
        ]
    )
    print(md)
    save("api", rows, md, args.out)
