"""How fast, and in how little memory, the ``idds`` command refuses bad input.

Each case runs the real CLI (``python -m idds --db sqlite:///... ...``) in a fresh process, on
inputs written to a temporary directory, and records the wall time from the start of the
process to its exit (interpreter start and imports included), its exit code, how many lines it
wrote to stderr, and its peak resident memory (``ru_maxrss`` of the child, from ``wait4``).

Cases:

1. a 704-byte YAML alias bomb (10**10 values once expanded) under a study's
   ``proposer_options`` (``idds hpo launch``);
2. the same bomb in a workflow node's ``args`` (``idds dag launch``);
3. a node's ``when:`` of 600 ``1+`` terms (``idds dag launch``: refused at load);
4. a ``when:`` of 10,000 unary minus signs (``idds dag launch``: refused at load);
5. costly expressions in a node's ``when:`` (``((10**1000)**1000)**1000``,
   ``'%1999999999d' % 1``, ``sum([[1]*1000000]*100, [])``): they pass the load-time checks,
   the node fails at run time and ``idds dag launch`` exits 1 (needs Ray);
6. ``idds users add $'alice\\n'``;
7. a database written by a newer release (an unknown ``alembic_version``; ``idds hpo list``);
8. a study with ``parallel: 1000000`` and ``max_points: 1e9``: valid (both are at their
   maxima), so it runs, with as many evaluations in flight as the cluster has CPUs, until its
   ``max_time`` (needs Ray).

There is no other system to compare refusals with, so each case's anchor (system
``valid-input``) is the same command on a valid input of the same kind: ``idds hpo launch
--detach`` of a small valid study, ``idds dag launch --detach`` of a valid workflow, ``idds
dag launch`` of a workflow whose ``when:`` is cheap, ``idds users add alice``, ``idds hpo
list`` of a current database, the same study with ``parallel: 2``.

Cases 5 and 8 join a Ray head this benchmark starts (``ray start --head --block`` on free
ports, 2 CPUs, in a temporary directory of its own) and stops by its own processes only.
``--quick`` runs cases 1-4, 6 and 7, which refuse before Ray is needed, and no head.

Metrics ``refuse_s`` (s, median of the repeats), ``peak_rss_mb`` (MB, the largest),
``exit_code``, ``stderr_lines``; config = the case.
``python -m bench hardening [--quick] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._report import RESULTS, markdown_table, row, save

ROOT = Path(__file__).parents[1]
CHILD_TIMEOUT_S = 300.0
RAY_START_S = 90.0


def bomb(levels: int = 10) -> str:
    """A ``10**levels``-element YAML list in a few hundred bytes (each anchor is ten of the
    last)."""
    rows = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "[" + ", ".join(rows) + "]"


def study(name: str, **over: Any) -> dict[str, Any]:
    return {
        "name": name, "objective": "bench.objectives:trivial", "pythonpath": [str(ROOT)],
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "proposer": "optuna:random", "max_points": 4, "seed": 1, **over,
    }  # fmt: skip


def workflow(name: str, when: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"name": "a", "command": ["sh", "-c", "echo hi"]}
    if when is not None:
        node["when"] = when
    return {"name": name, "nodes": [node, {"name": "b", "command": ["sh", "-c", "echo hi"]}]}


@dataclass
class Case:
    config: str
    bad: list[str]  # the idds words after --db (and --ray-address)
    valid: list[str]
    valid_what: str
    ray: bool = False
    bad_db: str = "fresh"  # "fresh" | "newer"
    valid_db: str = "fresh"


def write_inputs(tmp: Path) -> list[Case]:
    """Write every case's input files to ``tmp``; the cases, in order."""

    def put(name: str, text: str | dict[str, Any]) -> str:
        path = tmp / name
        path.write_text(text if isinstance(text, str) else json.dumps(text))
        return str(path)

    study_bomb = put(
        "study-bomb.yaml",
        "name: bomb\nobjective: objectives:quadratic\n"
        "space: {x: {type: float, low: 0, high: 1}}\nproposer: optuna:tpe\n"
        f"proposer_options: {{consider_endpoints: {bomb()}}}\n",
    )
    flow_bomb = put(
        "flow-bomb.yaml",
        f"name: bomb\nnodes:\n  - {{name: a, callable: 'm:f', args: {{v: {bomb()}}}}}\n",
    )
    hpo_ok = ["hpo", "launch", "--detach", put("study-ok.json", study("ok"))]
    dag_ok = ["dag", "launch", "--detach", "--no-progress", put("flow-ok.json", workflow("ok"))]
    run_ok = ["dag", "launch", "--no-progress", put("flow-run.json", workflow("run", "1 > 0"))]
    dag = ["dag", "launch", "--no-progress"]
    costly = {
        "((10**1000)**1000)**1000": "((10**1000)**1000)**1000 > 0",
        "'%1999999999d' % 1": "'%1999999999d' % 1 != ''",
        "sum([[1]*1000000]*100, [])": "len(sum([[1]*1000000]*100, [])) > 0",
    }
    wide_ok = {"max_points": 10**9, "max_time": 8.0}
    cases = [
        Case(f"1. alias bomb ({Path(study_bomb).stat().st_size} B) in proposer_options: "
             "hpo launch", ["hpo", "launch", study_bomb], hpo_ok,
             "hpo launch --detach of a valid study"),
        Case(f"2. alias bomb ({Path(flow_bomb).stat().st_size} B) in a workflow: dag launch",
             [*dag, flow_bomb], dag_ok, "dag launch --detach of a valid workflow"),
        Case("3. when: of 600 `1+` terms: dag launch",
             [*dag, put("flow-long.json", workflow("long", "1" + "+1" * 599 + " > 0"))],
             dag_ok, "dag launch --detach of a valid workflow"),
        Case("4. when: of 10,000 unary minus signs: dag launch",
             [*dag, put("flow-minus.json", workflow("minus", "-" * 10_000 + "1"))],
             dag_ok, "dag launch --detach of a valid workflow"),
        *[
            Case(f"5{letter}. when: {label}: dag launch (node fails at run time)",
                 [*dag, put(f"flow-costly-{letter}.json", workflow(f"costly{letter}", when))],
                 run_ok, "dag launch of the workflow with when: 1 > 0", ray=True)
            for letter, (label, when) in zip("abc", costly.items(), strict=True)
        ],
        Case("6. users add $'alice\\n'", ["users", "add", "alice\n"], ["users", "add", "alice"],
             "users add alice on a fresh database"),
        Case("7. database of a newer release: hpo list", ["hpo", "list"], ["hpo", "list"],
             "hpo list of a current database", bad_db="newer", valid_db="current"),
        Case("8. parallel: 1000000, max_points: 1e9, max_time: 8: hpo launch (runs)",
             ["hpo", "launch", "--no-progress",
              put("study-wide.json", study("wide", parallel=10**6, **wide_ok))],
             ["hpo", "launch", "--no-progress",
              put("study-two.json", study("two", parallel=2, **wide_ok))],
             "the same study with parallel: 2", ray=True),
    ]  # fmt: skip
    return cases


@dataclass
class Outcome:
    seconds: float
    code: int
    stderr_lines: int
    peak_mb: float
    stderr: str


def run_idds(words: list[str], db: Path, cwd: Path, head: RayHead | None) -> Outcome:
    """Run ``python -m idds`` once; its wall time, exit code, stderr and peak RSS."""
    argv = [sys.executable, "-m", "idds", "--db", f"sqlite:///{db}"]
    drop = ("IDDS_DB_URL", "IDDS_RAY_ADDRESS", "IDDS_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if head is not None:
        argv += ["--ray-address", head.address]
        env.update(head.auth_env)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*argv, *words], stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd, env=env
        )
        timer = threading.Timer(CHILD_TIMEOUT_S, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    lines = len(stderr.strip().splitlines())
    return Outcome(seconds, proc.returncode, lines, usage.ru_maxrss / 1024, stderr)


def prepare_db(kind: str, path: Path, cwd: Path) -> Path:
    """A database path: ``fresh`` (none yet), ``current`` (made by this release) or ``newer``
    (its ``alembic_version`` one this release does not know)."""
    if path.exists():
        path.unlink()
    if kind == "fresh":
        return path
    from idds.db import connect

    connect(f"sqlite:///{path}").dispose()  # made and migrated (a read makes none)
    if kind == "newer":
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE alembic_version SET version_num = 'ffff_from_the_future'")
        conn.close()
    return path


def measure_case(case: Case, tmp: Path, head: RayHead | None, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for system, words, db_kind in (
        ("idds", case.bad, case.bad_db),
        ("valid-input", case.valid, case.valid_db),
    ):
        outcomes = []
        for i in range(repeats):
            db = prepare_db(db_kind, tmp / f"run-{i}.db", tmp)
            outcomes.append(run_idds(words, db, tmp, head if case.ray else None))
        last = outcomes[-1]
        if system == "valid-input" and any(o.code != 0 for o in outcomes):
            raise RuntimeError(f"the valid input of {case.config!r} failed: {last.stderr[-2000:]}")
        seconds = statistics.median(o.seconds for o in outcomes)
        peak = max(o.peak_mb for o in outcomes)
        first = last.stderr.strip().splitlines()[:1]
        print(f"{system:11s} {case.config[:60]:60s} {seconds:7.2f} s {peak:7.0f} MB "
              f"exit {last.code} stderr {last.stderr_lines} line(s) {first}")  # fmt: skip
        rows += [
            row(system, case.config, "refuse_s", round(seconds, 3), "s"),
            row(system, case.config, "peak_rss_mb", round(peak, 1), "MB"),
            row(system, case.config, "exit_code", last.code, ""),
            row(system, case.config, "stderr_lines", last.stderr_lines, "lines"),
        ]
    return rows


class RayHead:
    """A Ray head of 2 CPUs started with ``ray start --head --block`` on free ports, in a
    session and temporary directory of its own; :meth:`stop` ends its processes only."""

    def __init__(self) -> None:
        from gpu_sites.pilot import free_port

        self.port = free_port()
        self.temp_dir = Path(tempfile.mkdtemp(prefix="idds-bh-"))  # short: socket paths
        self.proc: subprocess.Popen[bytes] | None = None
        #: a token of its own (never the shared ~/.ray/auth_token), for the head and its clients
        self.auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        from gpu_sites.pilot import free_port_options

        argv = [
            shutil.which("ray") or "ray", "start", "--head", "--port", str(self.port), "--block",
            "--num-cpus", "2", "--disable-usage-stats", "--include-dashboard=false",
            "--temp-dir", str(self.temp_dir), "--object-store-memory", str(200 * 2**20),
            "--min-worker-port", "0", "--max-worker-port", "0", *free_port_options(),
        ]  # fmt: skip
        output = self.temp_dir / "head.out"
        with output.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env={**os.environ, **self.auth_env},
            )  # fmt: skip
        deadline = time.monotonic() + RAY_START_S
        while "will now block forever" not in output.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = output.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"ray start --head did not start:\n{tail}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its own
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    pass
            for pid in _session_members(self.proc.pid):  # whatever outlived it
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
            self.proc = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _session_members(sid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    members.append(int(entry.name))
            except OSError:
                pass
    return members


def measure(quick: bool, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    cases = write_inputs(tmp)
    anchors = {c.config: c.valid_what for c in cases}
    repeats = 1 if quick else 3
    rows: list[dict[str, Any]] = []
    for case in (c for c in cases if not c.ray):
        rows += measure_case(case, tmp, None, repeats)
    if not quick:
        head = RayHead()
        head.start()
        try:
            for case in (c for c in cases if c.ray):
                rows += measure_case(case, tmp, head, 1)
        finally:
            head.stop()
    return rows, anchors


def report(rows: list[dict[str, Any]], anchors: dict[str, str]) -> str:
    values = {(r["system"], r["config"], r["metric"]): r["value"] for r in rows}
    configs = list(dict.fromkeys(r["config"] for r in rows))
    table = []
    for config in configs:
        bad = {m: values[("idds", config, m)] for m in
               ("refuse_s", "peak_rss_mb", "exit_code", "stderr_lines")}  # fmt: skip
        ok_s = values[("valid-input", config, "refuse_s")]
        ok_mb = values[("valid-input", config, "peak_rss_mb")]
        table.append([
            config, str(bad["exit_code"]), str(bad["stderr_lines"]), f"{bad['refuse_s']:.2f}",
            f"{bad['peak_rss_mb']:.0f}", anchors[config], f"{ok_s:.2f}", f"{ok_mb:.0f}",
            f"{bad['refuse_s'] / ok_s:.2f}x",
        ])  # fmt: skip
    headers = ["case (bad input)", "exit", "stderr lines", "time to exit (s)", "peak RSS (MB)",
               "anchor: valid input of the same kind", "anchor time (s)", "anchor RSS (MB)",
               "time ratio bad/valid"]  # fmt: skip
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    ray = any(c.startswith(("5", "8")) for c in configs)
    note = (
        "Each row is a fresh `python -m idds` process (interpreter start and imports included) "
        "on a SQLite file; time is the median of the repeats, peak RSS the child's `ru_maxrss`. "
        "There is no other system that refuses these inputs, so the anchor of each case is the "
        "same command on a valid input of the same kind, and the last column is the ratio "
        "refusal / valid command. "
        + ("Cases 5 and 8 join a Ray head of 2 CPUs this benchmark started (`ray start "
           "--head`); the time of a run includes joining it, and the peak RSS is the `idds` "
           "process's own (the workflow engine there evaluates a `when:`; a study's "
           "evaluations run in Ray's workers). Case 5 writes two lines to stderr: the "
           "workflow's failure and the node's reason. Case 8 is valid (both counts are "
           "at their maxima) and runs until its `max_time`: it keeps as many evaluations in "
           "flight as the cluster has CPUs, so its memory is that of `parallel: 2`. "
           if ray else "This is the quick run: the cases that refuse before Ray is needed. ")
        + f"Load average when it finished (1, 5, 15 min; {os.cpu_count()} CPUs): {load}."
    )  # fmt: skip
    return (
        "# Hardening: time and memory to refuse bad input\n\n"
        + markdown_table(headers, table)
        + "\n\n"
        + note
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench hardening", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="no Ray: cases 1-4, 6, 7 (tests)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idds-hardening-") as tmp:
        rows, anchors = measure(args.quick, Path(tmp))
    md = report(rows, anchors)
    print("\n" + md)
    print(f"\nsaved {save('hardening', rows, md, args.out)}")


if __name__ == "__main__":
    main()
