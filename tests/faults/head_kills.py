"""Heads killed with kill -9 again and again: how the fault tests start them, kill them, and
what they note at each kill (the results recorded, the side effects logged, the attempts the
killed head had in flight)."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import yaml

from idds import tasks as tq

TESTS = Path(__file__).parents[1]
#: How long a head may take to make the progress a kill waits for.
PROGRESS_TIMEOUT_S = 120.0


def head_env() -> dict[str, str]:
    """The environment of the heads: this process's as it is now (Ray's settings for joining
    the session's cluster, which it sets when it starts one), and a short lease (a head killed
    on this host is taken over at once anyway)."""
    return {**os.environ, "IDDS_LEASE_SECONDS": "10"}


@dataclass(frozen=True)
class Kill:
    """What stood when a head was killed.

    Attributes:
        recorded: the results recorded by then (points, node paths).
        executions: the side effects logged by then, counted per key.
        in_flight: the attempts the killed head had dispatched or running.
    """

    recorded: frozenset[Hashable]
    executions: collections.Counter[Hashable]
    in_flight: int


def idds_argv(settings, *words: str) -> list[str]:  # noqa: ANN001 - the tests' Settings
    """An ``idds`` command line on the test's database and Ray cluster."""
    return [sys.executable, "-m", "idds", "--db", settings.db_url,
            "--ray-address", settings.ray_address, *words]  # fmt: skip


def serve_argv(settings) -> list[str]:  # noqa: ANN001
    """An ``idds serve`` head that runs one owner at a time and looks for work often."""
    return idds_argv(settings, "serve", "--poll", "0.3", "--max-owners", "1")


def heads_until_each_kill(settings, group: str, spec: Path, name: str) -> list[list[str]]:  # noqa: ANN001
    """Who runs an owner until each of five kills: its launch (``idds GROUP launch SPEC``),
    then ``resume`` and ``idds serve`` heads in turn."""
    resume = idds_argv(settings, group, "resume", name, "--no-progress")
    return [idds_argv(settings, group, "launch", str(spec), "--no-progress"),
            resume, serve_argv(settings), resume, serve_argv(settings)]  # fmt: skip


def start(argv: list[str], output: Path) -> subprocess.Popen[bytes]:
    """Start a head in a process group of its own (so that the children of an ``idds serve``
    head die with it), its output going to ``output``."""
    with output.open("ab") as out:
        return subprocess.Popen(
            argv, env=head_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def recorded_study(path: Path, log: Path, *, sleep: float, **fields: object) -> Path:
    """Write to ``path`` a study whose objective (``objectives:recorded``) sleeps ``sleep`` s
    and logs each execution (its point ``x``) to ``log``; ``fields`` give the rest of the spec
    (name, max_points, parallel, seed...). Returns ``path``."""
    path.write_text(yaml.safe_dump({
        "objective": "objectives:recorded",
        "space": {"x": {"type": "float", "low": -3.0, "high": 3.0},
                  "sleep": {"type": "categorical", "choices": [sleep]},
                  "log": {"type": "categorical", "choices": [str(log)]}},
        "proposer": "optuna:random", "pythonpath": [str(TESTS)], **fields,
    }))  # fmt: skip
    return path


def point(execution: dict) -> float:
    """The key of a logged execution (or a payload's arguments) of a recorded study."""
    return round(execution["x"], 12)


def succeeded_points(engine: sa.Engine) -> set[float]:
    """The points of the recorded study in ``engine`` whose task succeeded."""
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(tq.tasks.c.payload).where(tq.tasks.c.state == tq.TaskState.SUCCEEDED)
        ).scalars()
        return {point(p["args"][0]) for p in rows}


def wait_for_points(engine: sa.Engine, head: subprocess.Popen, count: int) -> None:
    """Wait (up to 120 s) until ``count`` points of the recorded study succeeded (its tables
    may not be made yet); the head must not stop meanwhile."""
    deadline = time.monotonic() + 120
    while True:
        try:
            if len(succeeded_points(engine)) >= count:
                return
        except sa.exc.ProgrammingError:  # the head has not made its tables yet
            pass
        assert head.poll() is None, f"the head stopped with exit code {head.returncode}"
        assert time.monotonic() < deadline, f"fewer than {count} points succeeded in 120 s"
        time.sleep(0.1)


def study_counts(engine: sa.Engine) -> tuple[dict[tq.TaskState, int], int]:
    """The one study's tasks by state, and its succeeded attempts (each result recorded
    once: as many as its succeeded tasks)."""
    with engine.begin() as conn:
        counts = tq.counts(conn, conn.execute(sa.text("SELECT id FROM owners")).scalar_one())
        ok_attempts = conn.execute(
            sa.select(sa.func.count()).where(tq.attempts.c.state == "succeeded")
        ).scalar_one()
    return counts, ok_attempts


def executions(log: Path, key: Callable[[str], Hashable]) -> collections.Counter[Hashable]:
    """The side effects in ``log`` (one JSON line per execution), counted by ``key``."""
    try:
        lines = log.read_text().splitlines()
    except FileNotFoundError:
        return collections.Counter()
    return collections.Counter(key(json.loads(line)) for line in lines)


def in_flight(engine: sa.Engine) -> int:
    """Tasks dispatched or running (a dead head's are lost when the next head takes over)."""
    with engine.begin() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(tq.tasks.c.state.in_(tq.IN_FLIGHT))
        ).scalar_one()


def kill_when(
    head: subprocess.Popen[bytes],
    recorded: Callable[[], set[Hashable]],
    at: int,
    note: Callable[[], collections.Counter[Hashable]],
    engine: sa.Engine,
) -> Kill:
    """SIGKILL ``head`` (and its process group) once ``at`` results are recorded.

    Args:
        head: the head, started by :func:`start`.
        recorded: reads the results recorded so far.
        at: how many results to wait for.
        note: reads the side effects logged so far.
        engine: the test's database.

    Returns:
        What stood at the kill.
    """
    deadline = time.monotonic() + PROGRESS_TIMEOUT_S
    while len(recorded()) < at:
        assert head.poll() is None, f"the head ended (code {head.returncode}) before its kill"
        assert time.monotonic() < deadline, f"no {at} results in {PROGRESS_TIMEOUT_S:g} s"
        time.sleep(0.05)
    os.killpg(head.pid, signal.SIGKILL)  # no cleanup of any kind
    head.wait()
    time.sleep(0.3)  # a commit the server had received before the kill lands now or never
    return Kill(frozenset(recorded()), note(), in_flight(engine))


def lost_attempts(engine: sa.Engine) -> int:
    """Attempts recorded as lost (their head died; the next head queued their tasks again)."""
    with engine.begin() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(tq.attempts.c.error.like("lost:%"))
        ).scalar_one()


def succeeded_attempts(engine: sa.Engine) -> int:
    with engine.begin() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(tq.attempts.c.state == tq.TaskState.SUCCEEDED)
        ).scalar_one()


def assert_nothing_recorded_ran_again(
    kills: list[Kill], final: collections.Counter[Hashable]
) -> None:
    """Whatever was recorded before a kill has run no more times since that kill."""
    for i, kill in enumerate(kills, 1):
        for key in kill.recorded:
            assert final[key] == kill.executions[key], (
                f"{key} was recorded before kill {i} yet ran again "
                f"({kill.executions[key]} executions then, {final[key]} in the end)"
            )
