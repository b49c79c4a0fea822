"""Two `idds serve` heads race for the same studies and workflow on one PostgreSQL database
for 60 s: a new study arrives every 5 s and both heads start a child for it at once (one
wins the lease, the other gives up), each head takes fewer owners than there are, leases
are short (3 s), and one head is stopped with SIGTERM (its children record what came in and
give their leases up) and started again halfway.

"Exactly once", counted in side effects (each execution appends a line naming its attempt's
token), not rows:

- every task ends succeeded, with exactly one succeeded attempt (nothing lost);
- no attempt executes twice (each token appears in the logs at most once);
- every recorded result comes from exactly one execution (each succeeded attempt's token
  appears exactly once);
- a task executes more than once only where an earlier attempt was cut off by a change of
  head after its side effect (that attempt is recorded ``lost: head gone``); those are the
  duplicates counted, and with handovers by SIGTERM and leases renewed in time there are none.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from idds import owners as owners_mod
from idds import tasks as tq
from idds.db import connect

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.pg]
HERE = Path(__file__).parent
RACE_S = 60  # studies keep arriving for this long; both heads race for each one
EVERY_S = 5  # a new study this often
POINTS = 12
NODES = 24
MAX_OWNERS = 2  # each head wants more than it may take
SLEEP_S = 0.3
RESTART_AFTER_S = 30


def _head(settings, log: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "idds", "--db", settings.db_url, "--ray-address",
            settings.ray_address, "serve", "--poll", "0.3", "--max-owners", str(MAX_OWNERS)]  # fmt: skip
    env = {**os.environ, "IDDS_LEASE_SECONDS": "3"}
    with log.open("a") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _stop(head: subprocess.Popen) -> None:
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()


def _study(settings, logs: Path, i: int) -> str:
    from hpo import Study

    log = str(logs / f"study-{i}.jsonl")
    Study(settings=settings, name=f"race-{i}", objective="racing_objectives:evaluate",
          max_points=POINTS, parallel=2, proposer="optuna:random", seed=i,
          pythonpath=[str(HERE)], resources={"cpus": 0.25},
          space={"x": {"type": "float", "low": -3.0, "high": 3.0},
                 "sleep": {"type": "categorical", "choices": [SLEEP_S]},
                 "log": {"type": "categorical", "choices": [log]}}).create()  # fmt: skip
    return f"race-{i}"


def _workflow(settings, logs: Path) -> str:
    from dag import Workflow

    Workflow({
        "name": "race-wf", "pythonpath": [str(HERE)], "parallel": 2,
        "defaults": {"resources": {"cpus": 0.25}},
        "nodes": [{"name": "n", "callable": "racing_objectives:node", "foreach": f"range({NODES})",
                   "args": {"i": "${item}", "log": str(logs / "workflow.jsonl"),
                            "sleep": SLEEP_S}}],
    }, settings=settings).create()  # fmt: skip
    return "race-wf"


def _children(head: subprocess.Popen) -> set[str]:
    """The processes ``head`` runs owners in, as their attempts name their head."""
    return {f"{socket.gethostname()}:{p.pid}" for p in psutil.Process(head.pid).children()}


def _process(head: str | None) -> str:
    """The host:pid part of a head's name."""
    return (head or "").rpartition(":")[0]


def _running(engine, head: subprocess.Popen) -> bool:
    """Whether a child of ``head`` has attempts in flight."""
    children = _children(head)
    a = tq.attempts.c
    with engine.begin() as conn:
        heads = conn.execute(sa.select(a.head).where(a.state.in_(tq.IN_FLIGHT))).scalars()
        return any(_process(h) in children for h in heads)


def _states(engine, names: list[str]) -> dict[str, str]:
    o = owners_mod.owners.c
    with engine.begin() as conn:
        return dict(conn.execute(sa.select(o.name, o.state).where(o.name.in_(names))).all())


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_heads_racing_run_every_task_exactly_once(settings, tmp_path, fault_figures):
    logs = tmp_path / "logs"
    logs.mkdir()
    engine = connect(settings.db_url)
    names, duration, stopped = _race(settings, engine, logs, tmp_path / "heads.log")
    races = (tmp_path / "heads.log").read_text().count("is being run by another live head")

    t, a = tq.tasks.c, tq.attempts.c
    with engine.begin() as conn:
        task_states = collections.Counter(conn.execute(sa.select(t.state)).scalars())
        attempts = {r.token: r for r in conn.execute(
            sa.select(a.token, a.task_id, a.state, a.error, a.head)
        )}  # fmt: skip
    engine.dispose()
    executions = [json.loads(line) for f in logs.iterdir() for line in f.read_text().splitlines()]
    by_token = collections.Counter(e["token"] for e in executions)
    succeeded = [r for r in attempts.values() if r.state == "succeeded"]
    extra = [attempts[k] for k in by_token if attempts[k].state != "succeeded"]
    per_task = collections.Counter(attempts[k].task_id for k in by_token)
    duplicates = sum(n - 1 for n in per_task.values())
    cut_off = [r for r in attempts.values() if (r.error or "").startswith("lost:")]
    tasks_expected = (len(names) - 1) * POINTS + NODES
    fault_figures(duration_s=round(duration), executions=len(executions),
                  lost=tasks_expected - task_states["succeeded"], duplicates=duplicates,
                  failed_attempts=len(cut_off), races=races)  # fmt: skip

    assert task_states == {"succeeded": tasks_expected}  # nothing lost
    assert len(succeeded) == tasks_expected == len({r.task_id for r in succeeded})
    assert max(by_token.values()) == 1  # no attempt executed twice
    assert set(by_token) <= set(attempts)  # every execution belongs to a recorded attempt
    assert all(by_token[r.token] == 1 for r in succeeded)  # each result: one execution
    assert all((r.error or "").startswith("lost: head gone") for r in extra), extra
    assert duplicates == len(extra)  # an extra execution only for an attempt cut off ...
    handed_over = [r for r in extra if _process(r.head) in stopped]
    assert handed_over == []  # ... by a lease that lapsed, never by a graceful handover
    assert any(_process(r.head) in stopped for r in attempts.values())  # (it ran some)
    assert len({r.head for r in attempts.values()}) >= 3  # the work was shared out
    assert races >= 1  # both heads did start the same owner


def _until_serving(heads: list[subprocess.Popen], head_log: Path) -> None:
    deadline = time.monotonic() + 120
    while head_log.read_text().count(" serving ") < len(heads):
        assert all(h.poll() is None for h in heads), head_log.read_text()[-3000:]
        assert time.monotonic() < deadline, head_log.read_text()[-3000:]
        time.sleep(0.2)


def _race(settings, engine, logs: Path, head_log: Path) -> tuple[list[str], float, set[str]]:
    """Two heads serve while studies arrive; after RESTART_AFTER_S, a head whose children
    run attempts is stopped and started again. Returns the owners' names, how long it took until all were
    finished, and the stopped head's children (as attempts name their head)."""
    heads = [_head(settings, head_log), _head(settings, head_log)]
    _until_serving(heads, head_log)  # both look for owners: the first ones are raced for
    names = [_workflow(settings, logs), _study(settings, logs, 0), _study(settings, logs, 1)]
    start = time.monotonic()
    stopped: set[str] = set()
    try:
        while True:
            elapsed = time.monotonic() - start
            if elapsed < RACE_S and len(names) - 1 < 2 + elapsed // EVERY_S:
                names.append(_study(settings, logs, len(names) - 1))
            elif elapsed >= RACE_S and set(_states(engine, names).values()) == {"finished"}:
                break
            assert elapsed < RACE_S + 120, (_states(engine, names), head_log.read_text()[-3000:])
            assert all(h.poll() is None for h in heads), head_log.read_text()[-3000:]
            busy = [i for i, h in enumerate(heads) if _running(engine, h)]
            if not stopped and elapsed > RESTART_AFTER_S and busy:
                stopped = _children(heads[busy[0]])  # whichever head has attempts in flight
                _stop(heads[busy[0]])  # its children record what came in, give leases up
                heads[busy[0]] = _head(settings, head_log)
            time.sleep(0.3)
        duration = time.monotonic() - start
    finally:
        for head in heads:
            _stop(head)
    assert stopped, "no child of either head ran an attempt to hand over"
    return names, duration, stopped
