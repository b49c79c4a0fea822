"""A study as the dispatcher drives it: the proposer's working set, new points, results.

The head keeps one :class:`StudyRun` per study it runs; it is rebuilt from the database when
a study resumes (finished points told to the proposer, open ones pending again).
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

from hpo.ahead import INLINE_ASK_S, Asker
from hpo.proposers import Point, make_proposer
from hpo.spec import StudySpec, check_point
from hpo.study import Study, Trial, load_study, trial_workdir
from idds.dispatch import TaskOwner
from idds.errors import SpecError
from idds.records import best_index, counts_for_best
from idds.tasks import FINAL, TaskSpec, TaskState

if TYPE_CHECKING:
    from pathlib import Path

#: The most points asked of a proposer at once, whatever ``parallel`` says: a batch lives in
#: memory (and in the proposer's working set) until it is handed in.
MAX_ASK = 1000


class StudyRun(TaskOwner):
    """A study as the dispatcher drives it: proposes points, hears their values."""

    def __init__(self, study: Study, owner_id: int, *, progress: bool, position: int = 0) -> None:
        spec = study.spec
        self.owner_id = owner_id
        sites = getattr(study.settings, "sites", None)
        self.parallel = runnable_at_once(spec, sites)
        if self.parallel < spec.parallel:
            print(capacity_note(spec, self.parallel, sites), file=sys.stderr)
        self.spec = spec
        self.cancelled = False
        self.stopped_because: str | None = None
        self.study = study
        self._pending: dict[int, Point] = {}
        self._created = 0
        self._final = 0
        self._best: float | None = None
        self._since_best = 0
        self._started = time.monotonic()
        self._exhausted = False
        trials = study.trials
        # A resumed study must not replay the seeded sequence it started with: offset the
        # seed by the points already proposed (the same spec still gives the same run).
        seed = None if spec.seed is None else spec.seed + len(trials)
        self.proposer = make_proposer(spec, seed)
        #: Seeded parallel studies whose proposer learns propose in batches of what runs at
        #: once (``parallel`` where the cluster has room) and tell the results in point
        #: order, so that their points do not depend on timing.
        self.batched = (
            spec.deterministic
            and spec.seed is not None
            and spec.parallel > 1
            and self.proposer.learns
        )
        #: A proposer whose points do not depend on results has its next points claimed
        #: ahead, so that a freed worker starts one at once; not where a rule may stop the
        #: study before them (patience, a time budget).
        stops = spec.patience or spec.max_time
        self.ahead = 0 if self.proposer.learns or stops else self.parallel
        self._held: dict[int, tuple[Point, TaskState, Any]] = {}
        self._warm_start(study)
        self._taken = study._queued_indices()  # initial/enqueued points already made trials
        self._queue: list[tuple[int, dict[str, Any]]] = []
        self.on_spec({"initial_points": [dict(p) for p in spec.initial_points]})
        self._rebuild(trials)
        # Asks in processes of their own where they hold the workers up (not for batches,
        # whose points must not depend on timing).
        self.asker = Asker(self.proposer, parallel=0 if self.batched else self.parallel)
        self._bar = _progress_bar(spec, self._final, self._best, position) if progress else None

    def _rebuild(self, trials: list[Trial]) -> None:
        """The working set from the database: finished points told, open ones pending."""
        for t in trials:
            self._created = max(self._created, t.number + 1)
            if t.state in FINAL:
                self._final += 1
                self.proposer.restore(
                    t.params, t.values, t.constraints, pruned=t.pruned,
                    intermediate=t.intermediate_values, distributions=t.distributions,
                )  # fmt: skip
                self._note(t.state, _result_of(t))
            else:
                point = self.proposer.restore(
                    t.params, None, pending=True, intermediate=t.intermediate_values
                )
                self._pending[t.number] = point  # type: ignore[assignment]

    def _warm_start(self, study: Study) -> None:
        """Tell the proposer the results of earlier studies (what fits this space)."""
        for name in self.spec.warm_start:
            earlier = load_study(name, settings=study.settings)
            for t in earlier.trials:
                if t.state != TaskState.SUCCEEDED or len(t.values or ()) != len(
                    self.spec.directions
                ):
                    continue
                try:
                    params = check_point(self.spec, t.params)
                except SpecError:
                    continue  # outside this study's space
                self.proposer.restore(params, t.values, t.constraints)

    def on_spec(self, spec: dict[str, Any]) -> None:
        """Points enqueued (``initial_points`` grown) are evaluated next."""
        queued = {i for i, _ in self._queue}
        for i, params in enumerate(spec.get("initial_points", [])):
            if i not in self._taken and i not in queued:
                self._queue.append((i, params))

    def _note(self, state: str, result: Any) -> None:
        """Track the best value, and the points since it last improved (for ``patience``)."""
        self._since_best += 1
        if len(self.spec.directions) > 1 or not counts_for_best(state, result):
            return
        values = result["values"]
        if self._best is None or best_index([[self._best], values], self.spec.directions[0]):
            self._best = values[0]
            self._since_best = 0

    def new_tasks(self, free: int) -> list[TaskSpec]:
        n = self._how_many(free)
        points: list[tuple[Point, int | None]] = []
        while self._queue and len(points) < n:
            index, params = self._queue.pop(0)
            self._taken.add(index)
            point = self.asker.call(self.proposer.restore, params, None, pending=True)
            points.append((point, index))
        points += [(p, None) for p in self._proposed(n - len(points))]
        specs = []
        for point, queued in points:
            number = self._created
            self._created += 1
            self._pending[number] = point
            specs.append(self._task(number, point, queued))
        self._ask_ahead()
        return specs

    def _proposed(self, n: int) -> list[Point]:
        """Up to ``n`` points from the proposer: made ahead, or made now where asks are cheap
        (a batched study asks for its next batch once the last one is told)."""
        asker = self.asker
        points = asker.take(n)
        if len(points) < n and (not self.batched or self._batch_told()):
            want = n - len(points)
            if self.batched:
                want = min(self.parallel, self.spec.max_points - self._created)
            asker.request(want, now=not self._pending)  # no evaluation runs: ask at once
            points += asker.take(n - len(points))
        if asker.exhausted and not asker.ready and not asker.asking:
            self._exhausted = True
        return points

    def _batch_told(self) -> bool:
        return not self._pending and not self._held and not self.asker.ready

    def _ask_ahead(self) -> None:
        """Where asks are slow, have the points made that the ones in flight will need."""
        asker = self.asker
        slow = asker.ask_s is not None and asker.ask_s >= INLINE_ASK_S
        if self.batched or not (slow or asker.replicas) or self._how_many(1) == 0:
            return
        left = self.spec.max_points - self._created
        ahead = asker.ready + asker.in_flight
        if ahead < 2 * self.parallel:  # two rounds ahead: one ready, one being made
            asker.request(min(2 * self.parallel, left, MAX_ASK) - asker.ready)

    def _how_many(self, free: int) -> int:
        spec = self.spec
        if self.cancelled or self._exhausted or self._stop_reason():
            return 0
        left = spec.max_points - self._created
        if spec.points_per_iteration is None:
            return max(min(free, left, MAX_ASK), 0)
        open_points = len(self._pending)
        floor = spec.min_unevaluated_points if spec.min_unevaluated_points is not None else 0
        if open_points > floor:
            return 0
        return max(min(spec.points_per_iteration, left, MAX_ASK), 0)

    def _stop_reason(self) -> str | None:
        spec = self.spec
        if spec.patience and self._since_best >= spec.patience and self._best is not None:
            self.stopped_because = f"no improvement in {spec.patience} points"
        elif spec.max_time and time.monotonic() - self._started > spec.max_time:
            self.stopped_because = f"wall-clock budget of {spec.max_time:g} s spent"
        return self.stopped_because

    def _task(self, number: int, point: Point, queued: int | None) -> TaskSpec:
        res = self.spec.resources
        payload = self._payload(number, point.params)
        payload["proposer"] = "enqueued" if queued is not None else point.by or self.spec.proposer
        if point.note:
            payload["proposer_note"] = point.note  # why the proposer changed here
        if queued is not None:
            payload["queued"] = queued  # which enqueued point this is, so it is made once
        return TaskSpec(
            number=number,
            kind="hpo.trial",
            payload=payload,
            resources=res.model_dump(exclude_none=True),
            max_attempts=self.spec.max_attempts,
            retry_errors=self.spec.retry_errors,
            timeout_s=self.spec.timeout,
        )

    def _payload(self, number: int, params: dict[str, Any]) -> dict[str, Any]:
        return payload_for(self.study, number, params)

    def accept(self, result: Any) -> dict[str, Any]:
        asked = {
            k: result[k]
            for k in ("params", "distributions")
            if isinstance(result, dict) and k in result
        }
        if isinstance(result, dict) and result.get("pruned"):
            if "value" not in result:
                raise ValueError("pruned before it reported any value")
            value = _number(result["value"], "value")
            out = {"values": [value], "pruned": True, "step": result.get("step")}
        else:
            out = normalise_result(result, len(self.spec.directions), self.spec.constraints)
        return {**out, **asked, **_run_time(result)}

    def on_question(self, number: int, question: Any) -> Any:
        point = self._pending.get(number)
        if point is None or not hasattr(self.proposer, "suggest"):
            raise ValueError("no pending Optuna trial for this point")
        return self.asker.call(
            self.proposer.suggest, point, question["suggest"], question["distribution"]
        )

    def on_report(self, number: int, step: int, value: float) -> bool:
        point = self._pending.get(number)
        return point is not None and bool(self.asker.call(self.proposer.report, point, step, value))

    def on_final(self, number: int, state: TaskState, result: Any, error: str | None) -> None:
        point = self._pending.pop(number)
        self._final += 1
        run_s = result.get("run_s") if state is TaskState.SUCCEEDED else None
        if run_s is not None:
            self.proposer.observe(run_s)
            self.asker.observe(run_s)
        if not self.batched:
            self._tell(point, state, result)
            return
        self._held[number] = (point, state, result)
        if not self._pending and not self.asker.ready:  # the batch is in: told in order
            for key in sorted(self._held):
                self._tell(*self._held.pop(key))

    def _tell(self, point: Point, state: TaskState, result: Any) -> None:
        values = result["values"] if state is TaskState.SUCCEEDED else None
        constraints = result.get("constraints") if values is not None else None
        pruned = bool(values is not None and result.get("pruned"))
        self.asker.tell(point, values, constraints, pruned=pruned)
        self._note(state, result)
        if self._bar is not None:
            self._bar.update(1)
            if self._best is not None:
                self._bar.set_postfix(best=f"{self._best:.6g}", refresh=False)

    def done(self) -> bool:
        if self.cancelled or self._final >= self.spec.max_points:
            return True
        stopping = self._exhausted or self._stop_reason() is not None
        return stopping and not self._pending

    def on_cancel(self) -> None:
        self.cancelled = True

    def close(self) -> None:
        self.asker.drop()
        self.asker.close()
        if self._bar is not None:
            self._bar.close()


def runnable_at_once(spec: StudySpec, sites: str | Path | None = None) -> int:
    """How many evaluations of ``spec`` to keep in flight: ``parallel``, bounded by what can
    run at once: the slots of the sites an evaluation may use where a sites file is given
    (their pilots start on demand), else what the Ray cluster this process joined has for
    the evaluation's CPUs and GPUs; :data:`MAX_ASK` where neither bounds it.
    """
    room = _sites_room(spec, sites) if sites else _cluster_room(spec)
    return max(1, min(spec.parallel, room))


def capacity_note(spec: StudySpec, room: int, sites: str | Path | None = None) -> str:
    """One line saying that ``parallel`` exceeds what can run at once, and why."""
    if sites:
        where = f"the sites in {sites} have {room} slot(s) for it"
    else:
        import ray

        have = ray.cluster_resources()
        where = f"the Ray cluster has {have.get('CPU', 0):g} CPU and {have.get('GPU', 0):g} GPU"
    res = spec.resources
    return (
        f"study {spec.name!r}: parallel {spec.parallel}, but {where} and each evaluation asks "
        f"for {res.cpus:g} CPU and {res.gpus:g} GPU: {room} will run at once (lower "
        "resources.cpus to run more)"
    )


def _sites_room(spec: StudySpec, sites: str | Path) -> int:
    from gpu_sites import load_sites

    allowed = spec.resources.sites
    declared = load_sites(sites).sites
    return sum(s.slots * s.max_pilots for s in declared if allowed is None or s.name in allowed)


def _cluster_room(spec: StudySpec) -> int:
    import ray

    if not ray.is_initialized():
        return MAX_ASK
    have = ray.cluster_resources()
    needs = {"CPU": spec.resources.cpus, "GPU": spec.resources.gpus}
    rooms = [int(have.get(key, 0.0) / need) for key, need in needs.items() if need > 0]
    return min(rooms) if rooms else MAX_ASK


def payload_for(study: Study, number: int, params: dict[str, Any]) -> dict[str, Any]:
    """What the core runs for point ``number`` of ``study``: its objective or its command.
    A segment's objective learns its segment's name (``hpo.segment()``; a command finds it as
    ``segment`` in ``input.json``, beside the point, as PanDA's segmented HPO passes it)."""
    spec = study.spec
    workdir = trial_workdir(study.workdir, number)
    segment = {"segment": spec.segment} if spec.segment is not None else {}
    if spec.objective and study.define_by_run:
        args = [params, spec.objective, study.pythonpath, number]
        return {"callable": "hpo.remote_trial:run_optuna_objective", "args": args,
                "pythonpath": study.pythonpath, "workdir": workdir, **segment}  # fmt: skip
    if spec.objective:
        args = [params, spec.objective, study.pythonpath]
        return {"callable": "hpo.remote_trial:run_objective", "args": args,
                "pythonpath": study.pythonpath, "workdir": workdir, **segment}  # fmt: skip
    argv = [a.replace("%SPEC_DIR", study.spec_dir) for a in spec.argv]
    point = {**params, **segment}
    # timed: the worker measures the command's run time (``run_s``, as a callable's)
    payload: dict[str, Any] = {"command": argv, "input": point, "workdir": workdir, "timed": True}
    if spec.container:
        payload["container"] = spec.container.model_dump()
    if spec.input_ds is not None:
        payload["input_ds"] = spec.input_ds
    if spec.timeout:
        payload["timeout_s"] = spec.timeout
    return payload


def _run_time(result: Any) -> dict[str, float]:
    """The objective's own run time as measured on the worker, where it was."""
    run_s = result.get("run_s") if isinstance(result, dict) else None
    if isinstance(run_s, int | float) and not isinstance(run_s, bool) and run_s >= 0:
        return {"run_s": float(run_s)}
    return {}


def _result_of(t: Trial) -> dict[str, Any]:
    return {"values": t.values, "constraints": t.constraints, "pruned": t.pruned}


def normalise_result(result: Any, n_objectives: int, n_constraints: int) -> dict[str, Any]:
    """What an objective returned, as ``{"values": [...], "constraints": [...]}``.

    An objective returns a number, a list of numbers (one per objective), or a mapping with
    ``values`` (or ``value``, or ``loss`` as in a command's ``output.json``),
    ``constraints`` (a point is feasible when each is <= 0) and ``user_attrs`` (kept, and
    exported to Optuna).

    Raises:
        ValueError: the result has the wrong shape or a value that is not a finite number.
    """
    constraints = None
    if isinstance(result, dict):
        values = result.get("values", result.get("value", result.get("loss")))
        constraints = result.get("constraints")
    else:
        values = result
    values = list(values) if isinstance(values, list | tuple) else [values]
    if len(values) != n_objectives:
        raise ValueError(f"objective returned {len(values)} value(s), expected {n_objectives}")
    out: dict[str, Any] = {"values": [_number(v, "value") for v in values]}
    if n_constraints:
        if not isinstance(constraints, list | tuple) or len(constraints) != n_constraints:
            raise ValueError(f"objective must return {n_constraints} constraint value(s)")
        out["constraints"] = [_number(c, "constraint") for c in constraints]
    if isinstance(result, dict) and isinstance(result.get("user_attrs"), dict):
        out["user_attrs"] = result["user_attrs"]
    return out


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) and not hasattr(v, "__float__"):
        raise ValueError(f"objective returned {type(v).__name__}, not a number: {v!r:.80}")
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"objective returned {what} {f}")
    return f


def _progress_bar(spec: StudySpec, done: int, best: float | None, position: int) -> Any:
    from tqdm.auto import tqdm

    bar = tqdm(
        total=spec.max_points, initial=done, desc=spec.name, unit="eval", leave=True,
        position=position,
    )  # fmt: skip
    if best is not None:
        bar.set_postfix(best=f"{best:.6g}", refresh=False)
    return bar
