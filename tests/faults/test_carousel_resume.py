"""kill -9 the head running a live carousel four times while files are on their way from tape
and in processing; each time `idds carousel resume` or an `idds serve` head goes on with it,
and a last `idds carousel resume` finishes it.

What must hold: the carousel asked the tape system for each file exactly once over all its
heads, each file's processing is recorded exactly once (it runs again only where a killed head
had it in flight), no file is lost, and `idds carousel show` shows it finished with every
file requested, staged, processed and released.

The tape emulator lives in its head, so it dies with it. A resumed emulator stands for a tape
system that outlived the head: it holds again the requests the carousel had recorded as
outstanding (journalled ``reattach``, not ``request``), and the files recorded on disk are on
its disk still. Its journal (``IDDS_CAROUSEL_TAPE_LOG``) is what this test counts.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess

import pytest
import yaml
from head_kills import executions, head_env, idds_argv, kill_when, lost_attempts, serve_argv, start

from idds.db import connect
from idds.records import Records
from idds.tasks import TaskState

pytestmark = [pytest.mark.faults, pytest.mark.slow]
FILES = 40
KILLS = 4
NAME = "carousel-crashy"

PROCESSING = """
import json, pathlib, time

LOG = pathlib.Path(__file__).with_name("processed.jsonl")


def work(name, size):
    time.sleep(0.4)
    with LOG.open("a") as out:
        out.write(json.dumps({"file": name}) + "\\n")
    return {"file": name}
"""


def _campaign(tmp_path):
    (tmp_path / "recorder.py").write_text(PROCESSING)
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump({
        "name": NAME, "seed": 5,
        "files": {"count": FILES, "datasets": 4, "size_median": "2GB"},
        "tape": {"cartridges": 4, "cartridges_per_dataset": 2, "drives": 2, "read_failure": 0},
        "processing": {"slots": 2, "failure": 0.0, "callable": "recorder:work"},
        "buffer": "12GB",  # a few files at a time: requests go on through the whole run
    }))  # fmt: skip
    return path


def _succeeded(records: Records):
    def read() -> set[int]:
        try:
            owner = records.owner("carousel", NAME)
        except Exception:  # noqa: BLE001 - not created yet
            return set()
        return {t.number for t in records.tasks(owner.id) if t.state == TaskState.SUCCEEDED}

    return read


def test_kill_9_a_live_carousel_four_times_then_resume_stages_each_file_once(
    settings, tmp_path, fault_figures, monkeypatch
):
    tape_log = tmp_path / "tape.jsonl"
    monkeypatch.setenv("IDDS_CAROUSEL_TAPE_LOG", str(tape_log))
    campaign = _campaign(tmp_path)
    engine = connect(settings.db_url)
    records = Records(engine)
    resume = idds_argv(settings, "carousel", "resume", NAME, "--no-progress")
    heads = [idds_argv(settings, "carousel", "run", str(campaign), "--speedup", "6000",
                       "--no-progress"), resume, serve_argv(settings), resume]  # fmt: skip
    processed = tmp_path / "processed.jsonl"
    kills = []
    for k, argv in enumerate(heads, 1):
        head = start(argv, tmp_path / "heads.out")
        note = lambda: executions(processed, lambda e: e["file"])  # noqa: E731
        kills.append(kill_when(head, _succeeded(records), k * FILES // (KILLS + 1), note, engine))
    assert len(kills[-1].recorded) < FILES

    final = subprocess.run(resume, env={**head_env(), **os.environ}, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert final.returncode == 0, final.stdout + final.stderr

    tape = [json.loads(line) for line in tape_log.read_text().splitlines()]
    requests = collections.Counter(e["file"] for e in tape if e["event"] == "request")
    owner = records.owner("carousel", NAME)
    tasks = records.tasks(owner.id)
    lost = lost_attempts(engine)
    engine.dispose()
    runs = executions(processed, lambda e: e["file"])
    shown = subprocess.run(idds_argv(settings, "carousel", "show", NAME, "--format", "json"),
                           env=head_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    files = sorted(info["timeline"])
    reruns = sum(n - 1 for n in runs.values())
    fault_figures(kills=len(kills), lost=FILES - len(runs), duplicates=max(requests.values()) - 1,
                  failed_attempts=lost)  # fmt: skip

    assert len(files) == FILES
    assert requests == collections.Counter(dict.fromkeys(files, 1))  # each asked for once
    assert sorted(runs) == files  # every file processed ...
    assert [t.number for t in tasks] == list(range(FILES))  # ... as one task each
    assert all(t.state == TaskState.SUCCEEDED for t in tasks)
    assert reruns <= lost  # run again only where a killed head had it in flight
    assert info["state"] == "finished"
    assert info["result"]["lost"] == 0 and info["files"] == FILES
    for key in ("requested", "staged", "released", "processed"):
        assert info["counts"][key] == FILES, key
    assert all(t["released"] is not None for t in info["timeline"].values())
