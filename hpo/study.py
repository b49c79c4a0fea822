"""The study manager: a study's points as tasks of the scheduling core.

Each point (trial) is a task of the study's owner row; its attempts are the core's attempts.
While a study runs, its head keeps an in-memory Optuna study as the sampler's working set;
the database is the source of truth, and :meth:`Study.optimize` rebuilds the working set from
it when a study resumes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from hpo.proposers import Point, make_proposer
from hpo.spec import StudySpec, check_point
from idds import owners as owners_mod
from idds import tasks as tq
from idds.config import Settings
from idds.db import connect, reading
from idds.dispatcher import Dispatcher, TaskOwner
from idds.errors import IddsError, SpecError
from idds.owners import OwnerState
from idds.payloads import load_callable
from idds.tasks import TaskSpec, TaskState

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Engine

KIND = "study"


@dataclass(frozen=True)
class Trial:
    """One point of a study as recorded: its state, attempts, where it ran, its values.

    ``value`` is the first objective's value (the only one in a single-objective study);
    ``values`` holds them all. ``feasible`` is False when a constraint is above zero.
    """

    number: int
    state: str
    params: dict[str, Any]
    values: list[float] | None
    constraints: list[float] | None
    attempt: int
    site: str | None
    node: str | None
    duration_s: float | None
    error: str | None
    pruned: bool = False
    intermediate_values: dict[int, float] = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        return self.values[0] if self.values else None

    @property
    def feasible(self) -> bool:
        return self.constraints is None or all(c <= 0 for c in self.constraints)


class Study:
    """A hyperparameter study, defined in Python or loaded from a spec file.

    Args:
        spec: a :class:`StudySpec`, or ``None`` to build one from ``fields``.
        settings: database and Ray settings (``IDDS_*`` environment variables by default).
        base_dir: the directory relative ``pythonpath`` entries are taken from (the spec
            file's directory; the current directory by default).
        **fields: the spec's fields (``name``, ``objective``, ``space``, ...) when ``spec``
            is not given. ``objective`` may be a function defined at the top level of an
            importable module (or of the script being run).

    Raises:
        SpecError: the spec does not validate, or its objective does not import.
    """

    def __init__(
        self,
        spec: StudySpec | None = None,
        *,
        settings: Settings | None = None,
        base_dir: str | Path | None = None,
        **fields: Any,
    ) -> None:
        base = Path(base_dir or Path.cwd()).resolve()
        if spec is None:
            extra_path: list[str] = []
            if callable(fields.get("objective")):
                fields["objective"], extra_path = _reference(fields["objective"])
            fields["pythonpath"] = [*fields.get("pythonpath", []), *extra_path]
            spec = StudySpec.from_mapping(fields, source="study")
        self.spec = spec
        self.settings = settings or Settings.from_env()
        self.pythonpath = _resolve_path(spec.pythonpath, base)
        if spec.objective:
            load_callable(spec.objective, self.pythonpath)  # fail now, not on a worker
        self.workdir = str((Path(self.settings.work_dir) / spec.name).resolve())
        self.spec_dir = str(base)
        self._engine: Engine | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = connect(self.settings.db_url)
        return self._engine

    # --- running ----------------------------------------------------------------------------

    def create(self) -> int:
        """Record the study in the database; returns its id.

        Raises:
            SpecError: a study of that name exists already.
        """
        stored = {
            **self.spec.to_json(),
            "pythonpath": self.pythonpath,
            "workdir": self.workdir,
            "spec_dir": self.spec_dir,
        }
        try:
            with self.engine.begin() as conn:
                return owners_mod.create(conn, KIND, self.name, stored)
        except sa.exc.IntegrityError:
            raise SpecError(
                f"a study named {self.name!r} exists already: resume it with "
                f"`idds hpo resume {self.name}`, or choose another name"
            ) from None

    def optimize(self, *, progress: bool = True) -> None:
        """Run the study until ``max_points`` points are evaluated (or it is cancelled).

        Creates the study on its first call and resumes it afterwards, in this or a new
        process: evaluations recorded are never run again; those in flight when an earlier
        head stopped run again.

        Raises:
            IddsError: another live head is running this study.
        """
        from idds.runtime import ensure_ray

        owner_id = self._owner_id_or_create()
        dispatcher = Dispatcher(self.engine, lease_seconds=self.settings.lease_seconds)
        self._hold(dispatcher, owner_id)
        try:
            ensure_ray(self.settings.ray_address)
            run = _StudyRun(self, owner_id, progress=progress)
            dispatcher.run([run])
            run.close()
            if not run.cancelled:
                with self.engine.begin() as conn:
                    owners_mod.set_state(conn, owner_id, OwnerState.FINISHED)
        finally:
            dispatcher.release(owner_id)

    def _owner_id_or_create(self) -> int:
        with reading(self.engine) as conn:
            row = conn.execute(
                sa.select(owners_mod.owners.c.id).where(
                    owners_mod.owners.c.kind == KIND, owners_mod.owners.c.name == self.name
                )
            ).first()
        return row.id if row else self.create()

    def _hold(self, dispatcher: Dispatcher, owner_id: int) -> None:
        deadline = time.monotonic() + self.settings.lease_seconds + 2
        while not dispatcher.hold(owner_id):
            if time.monotonic() > deadline:
                raise IddsError(f"study {self.name!r} is being run by another live head")
            time.sleep(0.5)

    def enqueue(self, point: dict[str, Any]) -> dict[str, Any]:
        """Add a point to evaluate next (a head running the study picks it up in seconds).

        Returns:
            The point as checked against the space.

        Raises:
            SpecError: the point does not fit the space.
        """
        point = check_point(self.spec, point)
        owner_id = self._owner_id()

        def add(spec: dict[str, Any]) -> dict[str, Any]:
            return {**spec, "initial_points": [*spec.get("initial_points", []), point]}

        with self.engine.begin() as conn:
            owners_mod.update_spec(conn, owner_id, add)
        self.spec = self.spec.model_copy(
            update={"initial_points": [*self.spec.initial_points, point]}
        )
        return point

    def _queued_indices(self) -> set[int]:
        with reading(self.engine) as conn:
            owner_id = owners_mod.find(conn, KIND, self.name).id
            payloads = conn.execute(
                sa.select(tq.tasks.c.payload).where(tq.tasks.c.owner_id == owner_id)
            ).scalars()
            return {p["queued"] for p in payloads if p.get("queued") is not None}

    def cancel(self) -> int:
        """Cancel the study; a head running it stops within seconds. Returns tasks cancelled."""
        owner_id = self._owner_id()
        with self.engine.begin() as conn:
            owners_mod.set_state(conn, owner_id, OwnerState.CANCELLED)
            return tq.cancel_owner_tasks(conn, owner_id, "study cancelled")

    # --- reading ----------------------------------------------------------------------------

    def _owner_id(self) -> int:
        with reading(self.engine) as conn:
            return int(owners_mod.find(conn, KIND, self.name).id)

    @property
    def state(self) -> str:
        """``active``, ``finished`` or ``cancelled``."""
        with reading(self.engine) as conn:
            return str(owners_mod.find(conn, KIND, self.name).state)

    @property
    def trials(self) -> list[Trial]:
        """Every point of the study, in order."""
        with reading(self.engine) as conn:
            owner_id = owners_mod.find(conn, KIND, self.name).id
            rows = conn.execute(
                sa.select(tq.tasks)
                .where(tq.tasks.c.owner_id == owner_id)
                .order_by(tq.tasks.c.number)
            ).all()
            reports = tq.reports_of(conn, owner_id)
        return [_trial(r, reports.get(r.number)) for r in rows]

    @property
    def best(self) -> Trial | None:
        """The feasible succeeded trial with the best value (None before there is one).

        Raises:
            SpecError: the study has several objectives (see :attr:`best_trials`).
        """
        if len(self.spec.directions) > 1:
            raise SpecError(f"study {self.name!r} has several objectives: use best_trials")
        return best_of(self.trials, self.spec.directions[0])

    @property
    def best_trials(self) -> list[Trial]:
        """The Pareto front: feasible succeeded trials that no other one dominates."""
        return pareto_front(self.trials, self.spec.directions)


def _done(trials: list[Trial]) -> list[Trial]:
    return [
        t
        for t in trials
        if t.state == TaskState.SUCCEEDED and t.values and t.feasible and not t.pruned
    ]


def best_of(trials: list[Trial], direction: str) -> Trial | None:
    """The feasible succeeded trial with the best value."""
    done = _done(trials)
    if not done:
        return None
    pick = max if direction == "maximize" else min
    return pick(done, key=lambda t: t.values[0])  # type: ignore[index]


def pareto_front(trials: list[Trial], directions: tuple[str, ...]) -> list[Trial]:
    """Feasible succeeded trials not dominated by another one."""
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    done = _done(trials)
    keyed = [(t, [s * v for s, v in zip(signs, t.values, strict=True)]) for t in done]  # type: ignore[arg-type]

    def dominated(a: list[float]) -> bool:
        return any(all(x <= y for x, y in zip(b, a, strict=True)) and b != a for _, b in keyed)

    return [t for t, k in keyed if not dominated(k)]


def _trial(row: Any, intermediate: dict[int, float] | None = None) -> Trial:
    duration = row.finished - row.started if row.finished and row.started else None
    result = row.result if row.state == TaskState.SUCCEEDED else None
    return Trial(
        pruned=bool(result and result.get("pruned")),
        intermediate_values=intermediate or {},
        number=row.number,
        state=row.state,
        params=row.payload["input"] if "command" in row.payload else row.payload["args"][0],
        values=result["values"] if result else None,
        constraints=result.get("constraints") if result else None,
        attempt=row.attempt,
        site=row.site,
        node=row.node,
        duration_s=duration,
        error=row.error,
    )


def load_study(name: str, *, settings: Settings | None = None) -> Study:
    """The study ``name`` as recorded in the database.

    Raises:
        NotFound: no study of that name.
    """
    settings = settings or Settings.from_env()
    engine = connect(settings.db_url)
    with reading(engine) as conn:
        row = owners_mod.find(conn, KIND, name)
    stored = dict(row.spec)
    workdir = stored.pop("workdir", None)
    spec_dir = stored.pop("spec_dir", None)
    spec = StudySpec.from_mapping(stored, source=f"study {name}")
    study = Study(spec, settings=settings, base_dir=spec_dir)
    study.workdir = workdir or study.workdir
    study._engine = engine
    return study


def _reference(fn: Callable[..., Any]) -> tuple[str, list[str]]:
    """``module:qualname`` of a function, and the directory to import it from."""
    import sys

    module = fn.__module__
    extra: list[str] = []
    if module == "__main__":
        main_file = getattr(sys.modules["__main__"], "__file__", None)
        if not main_file:
            raise SpecError("objective: define it in a module (not in an interactive session)")
        module = Path(main_file).stem
        extra = [str(Path(main_file).resolve().parent)]
    if "<locals>" in fn.__qualname__ or "<lambda>" in fn.__qualname__:
        raise SpecError("objective: must be a function defined at the top level of a module")
    return f"{module}:{fn.__qualname__}", extra


def trial_workdir(study_workdir: str, number: int) -> str:
    """A trial's work dir: its logs, and its checkpoints kept between attempts."""
    return str(Path(study_workdir) / f"trial-{number:05d}")


def _resolve_path(entries: list[str], base: Path) -> list[str]:
    resolved = [str((base / e).resolve()) for e in entries]
    return list(dict.fromkeys([*resolved, str(base)]))


class _StudyRun(TaskOwner):
    """A study as the dispatcher drives it: proposes points, hears their values."""

    def __init__(self, study: Study, owner_id: int, *, progress: bool) -> None:
        spec = study.spec
        self.owner_id = owner_id
        self.parallel = spec.parallel
        self.spec = spec
        self.cancelled = False
        self.stopped_because: str | None = None
        self._workdir = study.workdir
        self._pythonpath = study.pythonpath
        self._argv = [a.replace("%SPEC_DIR", study.spec_dir) for a in spec.argv]
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
        self._warm_start(study)
        self._taken = study._queued_indices()  # initial/enqueued points already made trials
        self._queue: list[tuple[int, dict[str, Any]]] = []
        self.on_spec({"initial_points": [dict(p) for p in spec.initial_points]})
        self._rebuild(trials)
        self._bar = _progress_bar(spec, self._final, self._best) if progress else None

    def _rebuild(self, trials: list[Trial]) -> None:
        """The working set from the database: finished points told, open ones pending."""
        for t in trials:
            self._created = max(self._created, t.number + 1)
            if t.state in tq.FINAL:
                self._final += 1
                self.proposer.restore(
                    t.params, t.values, t.constraints, pruned=t.pruned,
                    intermediate=t.intermediate_values,
                )  # fmt: skip
                self._note(None if t.pruned else t.values, t.constraints)
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

    def _note(self, values: list[float] | None, constraints: list[float] | None) -> None:
        """Track the best value, and the points since it last improved (for ``patience``)."""
        self._since_best += 1
        if values is None or len(values) > 1 or not _feasible(constraints):
            return
        value = values[0]
        better = self._best is None or (
            value > self._best if self.spec.directions[0] == "maximize" else value < self._best
        )
        if better:
            self._best = value
            self._since_best = 0

    def new_tasks(self, free: int) -> list[TaskSpec]:
        n = self._how_many(free)
        points: list[tuple[Point, int | None]] = []
        while self._queue and len(points) < n:
            index, params = self._queue.pop(0)
            self._taken.add(index)
            points.append((self.proposer.restore(params, None, pending=True), index))  # type: ignore[arg-type]
        points += [(p, None) for p in self.proposer.ask(n - len(points))]
        if len(points) < n:
            self._exhausted = True
        specs = []
        for point, index in points:
            number = self._created
            self._created += 1
            self._pending[number] = point
            specs.append(self._task(number, point.params, index))
        return specs

    def _how_many(self, free: int) -> int:
        spec = self.spec
        if self.cancelled or self._exhausted or self._stop_reason():
            return 0
        left = spec.max_points - self._created
        if spec.points_per_iteration is None:
            return max(min(free, left), 0)
        open_points = len(self._pending)
        floor = spec.min_unevaluated_points if spec.min_unevaluated_points is not None else 0
        if open_points > floor:
            return 0
        return max(min(spec.points_per_iteration, left), 0)

    def _stop_reason(self) -> str | None:
        spec = self.spec
        if spec.patience and self._since_best >= spec.patience and self._best is not None:
            self.stopped_because = f"no improvement in {spec.patience} points"
        elif spec.max_time and time.monotonic() - self._started > spec.max_time:
            self.stopped_because = f"wall-clock budget of {spec.max_time:g} s spent"
        return self.stopped_because

    def _task(self, number: int, params: dict[str, Any], queued: int | None) -> TaskSpec:
        res = self.spec.resources
        payload = self._payload(number, params)
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
        spec = self.spec
        workdir = trial_workdir(self._workdir, number)
        if spec.objective:
            return {"callable": spec.objective, "args": [params], "pythonpath": self._pythonpath,
                    "workdir": workdir}  # fmt: skip
        payload: dict[str, Any] = {"command": self._argv, "input": params, "workdir": workdir}
        if spec.container:
            payload["container"] = spec.container.model_dump()
        if spec.input_ds is not None:
            payload["input_ds"] = spec.input_ds
        if spec.timeout:
            payload["timeout_s"] = spec.timeout
        return payload

    def accept(self, result: Any) -> dict[str, Any]:
        if isinstance(result, dict) and result.get("pruned"):
            if "value" not in result:
                raise ValueError("pruned before it reported any value")
            value = _number(result["value"], "value")
            return {"values": [value], "pruned": True, "step": result.get("step")}
        return normalise_result(result, len(self.spec.directions), self.spec.constraints)

    def on_report(self, number: int, step: int, value: float) -> bool:
        point = self._pending.get(number)
        return point is not None and self.proposer.report(point, step, value)

    def on_final(self, number: int, state: TaskState, result: Any, error: str | None) -> None:
        point = self._pending.pop(number)
        self._final += 1
        values = result["values"] if state is TaskState.SUCCEEDED else None
        constraints = result.get("constraints") if values is not None else None
        pruned = bool(values is not None and result.get("pruned"))
        self.proposer.tell(point, values, constraints, pruned=pruned)
        self._note(None if pruned else values, constraints)
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
        if self._bar is not None:
            self._bar.close()


def _feasible(constraints: list[float] | None) -> bool:
    return constraints is None or all(c <= 0 for c in constraints)


def normalise_result(result: Any, n_objectives: int, n_constraints: int) -> dict[str, Any]:
    """What an objective returned, as ``{"values": [...], "constraints": [...]}``.

    An objective returns a number, a list of numbers (one per objective), or a mapping with
    ``values`` (or ``value``, or ``loss`` as in a command's ``output.json``), and
    ``constraints`` (a point is feasible when each is <= 0).

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
    return out


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) and not hasattr(v, "__float__"):
        raise ValueError(f"objective returned {type(v).__name__}, not a number: {v!r:.80}")
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"objective returned {what} {f}")
    return f


def _progress_bar(spec: StudySpec, done: int, best: float | None) -> Any:
    from tqdm.auto import tqdm

    bar = tqdm(total=spec.max_points, initial=done, desc=spec.name, unit="eval", leave=True)
    if best is not None:
        bar.set_postfix(best=f"{best:.6g}", refresh=False)
    return bar
