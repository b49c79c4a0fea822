"""A study whose points are claimed ahead (a random proposer), stopped with Ctrl-C while its
held claims wait: they go back to the queue as if never claimed, so that its resume runs every
point once, on its first attempt, and none is counted lost."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
import yaml

from idds.db import connect
from idds.errors import NotFound
from idds.records import Records

TESTS = Path(__file__).parents[1]


def _tasks(engine: sa.Engine) -> list[tuple[str, int]]:
    """Each task of the study: its state and its current attempt."""
    records = Records(engine)
    return [(t.state, t.attempt) for t in records.tasks(records.owner("study", "ahead").id)]


def test_ctrl_c_gives_held_claims_back_and_resume_spends_no_attempt_on_them(settings, tmp_path):
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "ahead", "objective": "objectives:sleepy_value", "proposer": "optuna:random",
        "space": {"x": {"type": "float", "low": -2.0, "high": 2.0},
                  "y": {"type": "int", "low": 0, "high": 3},
                  "sleep": {"type": "categorical", "choices": [0.3]}},
        "max_points": 16, "parallel": 2, "seed": 4, "pythonpath": [str(TESTS)],
    }))  # fmt: skip
    base = [sys.executable, "-m", "idds", "--db", settings.db_url,
            "--ray-address", settings.ray_address, "hpo"]  # fmt: skip
    head = subprocess.Popen([*base, "launch", str(spec), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    engine = connect(settings.db_url)
    deadline = time.monotonic() + 120
    while sum(s == "succeeded" for s, _ in _tasks_or_none(engine)) < 4:
        assert head.poll() is None and time.monotonic() < deadline, head.stderr
        time.sleep(0.1)
    head.send_signal(signal.SIGINT)
    out, err = head.communicate(timeout=60)
    stopped = _tasks(engine)
    assert head.returncode != 0, out + err
    assert not [s for s, _ in stopped if s in ("dispatched", "running")], stopped
    assert any(s == "pending" for s, _ in stopped), stopped  # held claims went back

    done = subprocess.run([*base, "resume", "ahead", "--no-progress"],
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    final = _tasks(engine)
    engine.dispose()
    assert len(final) == 16
    assert {s for s, _ in final} == {"succeeded"}
    assert {a for _, a in final} == {1}, final  # no attempt lost to a claim never launched


def _tasks_or_none(engine: sa.Engine) -> list[tuple[str, int]]:
    try:
        return _tasks(engine)
    except (sa.exc.DBAPIError, NotFound):  # the launch has not made its tables or study yet
        return []
