"""How a toy scan hands its batches to the scheduling core: one slow batch holds no other
point back. The scan's owner callbacks are driven as the dispatcher drives them, with one
batch left running (a slow batch) while the others' results come in; the toys are the
coverage model's (no Ray or pyhf needed for what is tested: when batches are handed in)."""

from __future__ import annotations

from idds.tasks import TaskState
from toys.coverage import GaussianModel
from toys.run import ToyScanRun
from toys.spec import ToyScanSpec


def _run(**over) -> ToyScanRun:
    fields = {"name": "overlap", "workspace": {}, "range": [0, 5], "toys": 1000,
              "batch_size": 500, "points": 5, "tolerance": 0.05, **over}  # fmt: skip
    return ToyScanRun(ToyScanSpec.from_mapping(fields), 1, [], parallel=4, progress=False)


def _finish(run: ToyScanRun, number: int, task: dict) -> None:
    result = GaussianModel().batch(0, task["mu"], task["batch"], task["toys"])
    run.on_final(number, TaskState.SUCCEEDED, result, None)


def _finish_all_but_one(run: ToyScanRun, slow_mu: float) -> tuple[list, int]:
    """Hand in the first step and finish every batch but the last one at ``slow_mu``;
    returns the first step's tasks and the slow one's number."""
    first = run.new_tasks(100)
    slow = max((t for t in first if t.payload["args"][0]["mu"] == slow_mu), key=lambda t: t.number)
    for task in first:
        if task is not slow:
            _finish(run, task.number, task.payload["args"][0])
    return first, slow.number


def test_the_next_step_starts_while_another_points_batch_still_runs():
    run = _run()
    first, slow = _finish_all_but_one(run, slow_mu=5.0)
    assert {t.payload["args"][0]["step"] for t in first} == {0}
    second = run.new_tasks(1)
    assert len(second) == 1  # handed in while the slow batch is still running
    task = second[0].payload["args"][0]
    assert task["step"] == 1 and task["mu"] != 5.0
    assert not run.done()
    # The slow batch's result, when it comes, counts for the point it was thrown at.
    _finish(run, slow, first[-1].payload["args"][0])
    assert sum(1 for step, r in run._results if step == 0 and r["mu"] == 5.0) == 2


def test_a_barrier_waits_for_the_slowest_batch():
    run = _run(barrier=True)
    first, slow = _finish_all_but_one(run, slow_mu=5.0)
    assert run.new_tasks(1) == []
    _finish(run, slow, first[-1].payload["args"][0])
    assert run.new_tasks(1)[0].payload["args"][0]["step"] == 1


def test_the_scan_stops_only_once_nothing_runs():
    """Every limit known from the results in while a batch still runs: the scan waits for
    it (its toys count) before it says it is done."""
    # Any error will do, and enough toys per point that every tail is full: the first step
    # settles every limit.
    run = _run(tolerance=100.0, toys=20000, batch_size=10000)
    first, slow = _finish_all_but_one(run, slow_mu=5.0)
    assert run.new_tasks(1) == [] and run.stopped_because is None and not run.done()
    _finish(run, slow, first[-1].payload["args"][0])
    assert run.new_tasks(1) == []
    assert run.stopped_because == "every limit is known to the tolerance" and run.done()
