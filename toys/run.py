"""A toy scan as the dispatcher drives it: one task per batch of toys, step after step.

Every batch is a task of the scan's owner row, and its result (the toys' test statistics)
is the task's result: the database holds the whole scan.

Steps overlap: once a step's batches are all handed in, a free batch slot plans the next
step from the results in so far, and that step adds toys only at POI values with no batch
still running; the scan stops once nothing runs and the plan is empty. With the spec's
``barrier`` a step is planned only from complete steps: step ``k``'s plan is then a pure
function of the results of steps ``< k``, so a resumed scan rebuilds it and hands in only
the batches an earlier head did not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from idds.dispatch import TaskOwner
from idds.tasks import FINAL, TaskSpec, TaskState
from toys import scan as scan_mod

if TYPE_CHECKING:
    from idds.records import TaskRecord
    from toys.spec import ToyScanSpec

#: The payload every batch runs on a worker.
BATCH_CALLABLE = "toys.stats:run_batch"


class ToyScanRun(TaskOwner):
    """Hands in each step's batches (see the module's docstring for when).

    Args:
        spec: the scan's spec (its POI named).
        owner_id: the scan's owner row.
        rows: its tasks as recorded.
        parallel: batches in flight at once.
        progress: print a line per step.
    """

    def __init__(
        self,
        spec: ToyScanSpec,
        owner_id: int,
        rows: list[TaskRecord],
        *,
        parallel: int,
        progress: bool,
    ) -> None:
        self.spec = spec
        self.owner_id = owner_id
        self.parallel = parallel
        self.progress = progress
        self.cancelled = False
        self.stopped_because: str | None = None
        self._results: list[tuple[int, dict[str, Any]]] = []  # (step, result)
        self._made: set[tuple[int, float, int]] = set()  # (step, mu, batch) handed in
        self._open: dict[int, tuple[int, float]] = {}  # number: (step, mu) still running
        self._fresh = False  # results came in since the last plan
        self._queue: list[TaskSpec] = []
        self._created = 0
        self._step = -1
        self._failed = 0
        self._bar: Any = None  # the current step's batches, on a terminal
        self._rebuild(rows)

    def _rebuild(self, rows: list[TaskRecord]) -> None:
        """The scan so far from its tasks; the last step's missing batches queued again."""
        for row in rows:
            task = row.payload["args"][0]
            self._made.add((task["step"], task["mu"], task["batch"]))
            self._created = max(self._created, row.number + 1)
            self._step = max(self._step, task["step"])
            if row.state == TaskState.SUCCEEDED:
                self._results.append((task["step"], row.result))
            elif row.state in FINAL:
                self._failed += 1
            else:
                self._open[row.number] = (task["step"], task["mu"])
        if self._step >= 0 and not self._failed and self.spec.barrier:
            self._queue = self._batches(self._step, resuming=True)
        self._fresh = True

    # --- planning -------------------------------------------------------------------------

    def _points(self, before: int) -> dict[float, scan_mod.Point]:
        """The points from the steps before ``before``, their batches in a fixed order (not the
        order they came back in), so that a plan depends on the toys alone."""
        done = sorted((s, float(r["mu"]), int(r["batch"]), i)
                      for i, (s, r) in enumerate(self._results) if s < before)  # fmt: skip
        return scan_mod.collect(self._results[i][1] for *_, i in done)

    def _batches(self, step: int, resuming: bool = False) -> list[TaskSpec]:
        """Step ``step``'s batches not handed in yet (all of them, unless resuming), none at a
        POI value where a batch is still running (resuming, the step's own batches at such a
        value that were planned but not yet recorded are made too)."""
        points = self._points(step)
        want = scan_mod.next_step(points, self.spec)
        busy = set() if resuming else {mu for _, mu in self._open.values()}
        specs = []
        for mu in sorted(set(want) - busy):
            first = points[mu].batches if mu in points else 0
            for batch in range(first, first + want[mu]):
                if (step, mu, batch) not in self._made:
                    specs.append(self._task(step, mu, batch))
        return specs

    def _task(self, step: int, mu: float, batch: int) -> TaskSpec:
        spec = self.spec
        self._made.add((step, mu, batch))
        number, self._created = self._created, self._created + 1
        task = {
            "workspace": spec.workspace, "poi": spec.poi, "mu": mu, "toys": spec.batch_toys,
            "test_stat": spec.test_stat, "seed": spec.seed, "batch": batch, "step": step,
        }  # fmt: skip
        return TaskSpec(
            number=number,
            kind="toys.batch",
            payload={"callable": BATCH_CALLABLE, "args": [task]},
            resources={"cpus": 1},
            max_attempts=spec.max_attempts,
            timeout_s=spec.timeout,
        )

    def _next_step(self) -> None:
        """Plan the next step, or say why the scan stops (only once nothing runs: a running
        batch's toys may change the plan)."""
        step = self._step + 1
        points = self._points(step)
        self._fresh = False
        if self._failed:
            self.stopped_because = f"{self._failed} batch(es) failed: see `idds toys show`"
            return
        final = not self._open
        if step >= self.spec.max_steps:
            if final:
                self.stopped_because = f"max_steps ({self.spec.max_steps}) reached"
            return
        batches = self._batches(step)
        if not batches:
            if final:
                self.stopped_because = "every limit is known to the tolerance"
            return
        toys = scan_mod.total_toys(points) + 2 * self.spec.batch_toys * len(batches)
        toys += 2 * self.spec.batch_toys * len(self._open)
        if toys > self.spec.max_toys:
            if final:
                self.stopped_because = f"the next step would pass max_toys ({self.spec.max_toys})"
            return
        self._step, self._queue = step, batches
        self._say(step, points, len(batches))

    def _say(self, step: int, points: dict[float, scan_mod.Point], batches: int) -> None:
        if not self.progress:
            return
        line = f"step {step}: {batches} batch(es) of {self.spec.batch_toys} toys"
        if points:
            obs = scan_mod.limit(points, "obs", 1 - self.spec.cl)
            known = f"{obs.value:.4g} +- {obs.error:.2g}" if obs.value is not None else obs.status
            line += f"; {scan_mod.total_toys(points)} toys so far, observed limit {known}"
        click.echo(line)
        self.close()
        from tqdm.auto import tqdm

        self._bar = tqdm(desc=f"step {step}", total=batches, unit="batch", dynamic_ncols=True)

    def close(self) -> None:
        """Close the current step's progress bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # --- the dispatcher's callbacks -------------------------------------------------------

    def new_tasks(self, free: int) -> list[TaskSpec]:
        if self.cancelled or self.stopped_because:
            return []
        overlap = not self.spec.barrier and self._fresh and free > 0
        if not self._queue and (not self._open or overlap):
            self._next_step()
        taken, self._queue = self._queue[:free], self._queue[free:]
        for t in taken:
            task = t.payload["args"][0]
            self._open[t.number] = (task["step"], task["mu"])
        return taken

    def accept(self, result: Any) -> dict[str, Any]:
        keys = {"mu", "batch", "q_obs", "q_sb", "q_b"}
        if not isinstance(result, dict) or not keys <= set(result):
            raise ValueError(f"a toy batch returns {sorted(keys)}, not {type(result).__name__}")
        return result

    def on_final(self, number: int, state: TaskState, result: Any, error: str | None) -> None:
        step, _ = self._open.pop(number, (self._step, 0.0))
        if state is TaskState.SUCCEEDED:
            self._results.append((step, result))
            self._fresh = True
        else:
            self._failed += 1
        if self._bar is not None:
            self._bar.update(1)
            if self._failed:
                self._bar.set_postfix(failed=self._failed, refresh=False)

    def done(self) -> bool:
        return self.cancelled or (self.stopped_because is not None and not self._open)

    def on_cancel(self) -> None:
        self.cancelled = True
        self._queue = []
