"""Make ``prev_release.db``: a database written by a previous release's ``idds`` command.

Run it with the previous release's code, never the working tree's, e.g.::

    git worktree add /tmp/prev-release 12e4896
    python -m venv --system-site-packages /tmp/prev-venv
    /tmp/prev-venv/bin/pip install --no-deps -e /tmp/prev-release
    /tmp/prev-venv/bin/python tests/data/make_prev_release.py \
        --idds /tmp/prev-venv/bin/idds --release /tmp/prev-release --out tests/data/prev_release.db

Everything runs in ``/tmp/idds-prev-release`` (emptied first): the database records that
directory as its specs' directory and its work dirs, and a resumed study writes its new
trials' work dirs there. Objectives come from the release's ``tests/objectives.py``, found
through ``PYTHONPATH`` (the specs name no path), so that the module ``objectives`` of any
checkout's ``tests/`` runs them again; the toy workspace (recorded inline) and the carousel
campaign are the release's examples. Every owner is recorded as user ``alice`` (no user is
registered). Studies and scans use fixed seeds and a random proposer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

BUILD = Path("/tmp/idds-prev-release")

X = {"type": "float", "low": -2.0, "high": 2.0}
SLEEP = {"type": "categorical", "choices": [0.5]}
OUT = "printf '%s' {} > output.json"


def specs(examples: Path) -> dict[str, dict]:
    """The spec files, by file name."""
    workspace = str(examples / "toys/low_count.json")
    return {
        # a finished study, one objective
        "done.json": {
            "name": "done", "objective": "objectives:quadratic", "proposer": "optuna:random",
            "seed": 3, "max_points": 8, "parallel": 2,
            "space": {"x": X, "y": {"type": "float", "low": -1.0, "high": 1.0}},
        },
        # a segmented study: segs.near and segs.far
        "segs.json": {
            "name": "segs", "objective": "objectives:quadratic", "proposer": "optuna:random",
            "seed": 1, "max_points": 3, "parallel": 1,
            "segments": {
                "near": {"space": {"x": {"type": "float", "low": 0.0, "high": 2.0}}},
                "far": {"space": {"x": {"type": "float", "low": 5.0, "high": 6.0}}, "max_points": 4},
            },
        },
        # interrupted (SIGINT, Ctrl-C) and killed (SIGKILL) after a few of their 10 points
        "interrupted.json": {
            "name": "interrupted", "objective": "objectives:sleepy_value",
            "proposer": "optuna:random", "seed": 5, "max_points": 10, "parallel": 1,
            "space": {"x": X, "sleep": SLEEP},
        },
        "killed.json": {
            "name": "killed", "objective": "objectives:sleepy_value", "proposer": "optuna:random",
            "seed": 6, "max_points": 10, "parallel": 1, "max_attempts": 3,
            "space": {"x": X, "sleep": SLEEP},
        },
        # recorded and never run (`--detach`)
        "queued.json": {
            "name": "queued", "objective": "objectives:quadratic", "proposer": "optuna:random",
            "seed": 9, "max_points": 4, "parallel": 2, "space": {"x": X},
        },
        # two objectives
        "pareto.json": {
            "name": "pareto", "objective": "objectives:two_objectives", "proposer": "optuna:random",
            "seed": 2, "max_points": 6, "parallel": 2, "direction": ["minimize", "minimize"],
            "space": {"x": {"type": "float", "low": -1.0, "high": 2.0}},
        },
        # a workflow with a study node (tuned.search) and command nodes, finished
        "tuned.json": {
            "name": "tuned",
            "nodes": [
                {"name": "prepare", "command": ["sh", "-c", OUT.format("[1, 2]")]},
                {"name": "search", "after": ["prepare"], "study": {
                    "objective": "objectives:quadratic", "proposer": "optuna:random", "seed": 4,
                    "max_points": 4, "parallel": 2, "space": {"x": X}}},
                {"name": "report", "command": ["sh", "-c", OUT.format("${search.n_trials}")]},
            ],
            "output": "{'n': report, 'best': search.best_value}",
        },
        # a workflow with a failed node and a node it blocks
        "broken.json": {
            "name": "broken",
            "nodes": [
                {"name": "fine", "command": ["sh", "-c", OUT.format("1")]},
                {"name": "bad", "command": ["sh", "-c", "echo oops >&2; exit 3"], "max_attempts": 1},
                {"name": "later", "command": ["sh", "-c", OUT.format("2")], "after": ["bad"]},
            ],
        },
        # a workflow interrupted (SIGINT) after its first node
        "halfway.json": {
            "name": "halfway",
            "nodes": [
                {"name": "one", "command": ["sh", "-c", OUT.format("1")]},
                {"name": "two", "command": ["sh", "-c", "sleep 4; " + OUT.format("2")],
                 "after": ["one"]},
                {"name": "three", "command": ["sh", "-c", OUT.format("${two + 1}")]},
            ],
        },
        # a toy scan, finished (one step), and one interrupted after its first step
        "scan.json": {
            "name": "scan", "workspace": workspace, "range": [0, 4],
            "toys": 20, "batch_size": 20, "points": 3, "max_steps": 1, "tolerance": 0.5, "seed": 5,
        },
        "scan-cut.json": {
            "name": "scan-cut", "workspace": workspace,
            "range": [0, 4], "toys": 40, "batch_size": 20, "points": 3, "max_steps": 3,
            "tolerance": 0.05, "seed": 8,
        },
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idds", required=True, help="the previous release's idds command")
    parser.add_argument("--release", required=True, type=Path, help="its checkout")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    shutil.rmtree(BUILD, ignore_errors=True)
    BUILD.mkdir(parents=True)
    examples = args.release.resolve() / "examples"
    for name, spec in specs(examples).items():
        (BUILD / name).write_text(json.dumps(spec, indent=1))
    db = BUILD / "prev.db"
    env = {**os.environ, "IDDS_DB_URL": f"sqlite:///{db}", "IDDS_USER": "alice",
           "IDDS_WORK_DIR": str(BUILD / "idds-work"), "PYTHONPATH": str(args.release.resolve() / "tests")}  # fmt: skip
    env.pop("IDDS_TOKEN", None)
    env.pop("IDDS_RAY_ADDRESS", None)

    def idds(*words: str) -> None:
        print("+ idds", *words, flush=True)
        subprocess.run([args.idds, *words], cwd=BUILD, env=env, check=True)

    def stopped_midway(sig: int, *words: str, kind: str, name: str, at: int) -> None:
        """Run ``idds WORDS`` and send it ``sig`` once ``at`` tasks of the owner succeeded."""
        print("+ idds", *words, f"# {signal.Signals(sig).name} after {at} task(s)", flush=True)
        proc = subprocess.Popen([args.idds, *words], cwd=BUILD, env=env)
        while succeeded(db, kind, name) < at:
            if proc.poll() is not None:
                sys.exit(f"{name} ended before it could be stopped")
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(timeout=60)

    idds("hpo", "launch", "done.json", "--no-progress")
    idds("hpo", "launch", "segs.json", "--no-progress")
    idds("hpo", "launch", "pareto.json", "--no-progress")
    idds("hpo", "launch", "queued.json", "--detach")
    stopped_midway(signal.SIGINT, "hpo", "launch", "interrupted.json", "--no-progress",
                   kind="study", name="interrupted", at=4)  # fmt: skip
    stopped_midway(signal.SIGKILL, "hpo", "launch", "killed.json", "--no-progress",
                   kind="study", name="killed", at=3)  # fmt: skip
    idds("dag", "launch", "tuned.json", "--no-progress")
    subprocess.run([args.idds, "dag", "launch", "broken.json", "--no-progress"], cwd=BUILD,
                   env=env, check=False)  # fmt: skip  # ends 'failed' (exit 1)
    stopped_midway(signal.SIGINT, "dag", "launch", "halfway.json", "--no-progress",
                   kind="workflow", name="halfway", at=1)  # fmt: skip
    idds("toys", "launch", "scan.json", "--no-progress")
    stopped_midway(signal.SIGINT, "toys", "launch", "scan-cut.json", "--no-progress",
                   kind="toyscan", name="scan-cut", at=12)  # fmt: skip
    idds("carousel", "run", str(examples / "carousel/small.yaml"), "--name", "tape",
         "--files", "12", "--speedup", "20000", "--no-progress")  # fmt: skip
    args.out.unlink(missing_ok=True)
    source, out = sqlite3.connect(db, timeout=30), sqlite3.connect(args.out, isolation_level=None)
    source.backup(out)  # a consistent copy, whatever the last heads' processes still hold
    source.close()
    out.execute("PRAGMA journal_mode=DELETE").fetchall()  # one file, no -wal beside it
    out.execute("VACUUM")
    out.close()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


def succeeded(db: Path, kind: str, name: str) -> int:
    """Tasks of owner ``name`` of ``kind`` that succeeded (0 before it is recorded)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute(
                "SELECT count(*) FROM tasks t JOIN owners o ON o.id = t.owner_id "
                "WHERE o.kind = ? AND o.name = ? AND t.state = 'succeeded'",
                (kind, name),
            ).fetchone()
    except sqlite3.OperationalError:  # no tables yet, or locked
        return 0
    return int(row[0])


if __name__ == "__main__":
    main()
