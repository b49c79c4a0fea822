"""The study manager: a study's points as tasks of the scheduling core.

Each point (trial) is a task of the study's owner row; its attempts are the core's attempts.
While a study runs, its head keeps an in-memory Optuna study as the sampler's working set;
the database is the source of truth, and :meth:`Study.optimize` rebuilds the working set from
it when a study resumes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import sqlalchemy as sa

from hpo.proposers import distributions, make_sampler
from hpo.spec import StudySpec
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
    """One point of a study as recorded: its state, attempts, where it ran, its value."""

    number: int
    state: str
    params: dict[str, Any]
    value: float | None
    attempt: int
    site: str | None
    node: str | None
    duration_s: float | None
    error: str | None


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
        load_callable(spec.objective, self.pythonpath)  # fail now, not on a worker
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
        stored = {**self.spec.to_json(), "pythonpath": self.pythonpath}
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
        return [_trial(r) for r in rows]

    @property
    def best(self) -> Trial | None:
        """The succeeded trial with the best value (None before any succeeded)."""
        done = [t for t in self.trials if t.state == TaskState.SUCCEEDED and t.value is not None]
        if not done:
            return None
        pick = max if self.spec.direction == "maximize" else min
        return pick(done, key=lambda t: t.value)  # type: ignore[arg-type, return-value]


def _trial(row: Any) -> Trial:
    duration = row.finished - row.started if row.finished and row.started else None
    value = row.result if row.state == TaskState.SUCCEEDED else None
    return Trial(
        number=row.number,
        state=row.state,
        params=row.payload["args"][0],
        value=value,
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
    pythonpath = stored.pop("pythonpath", [])
    spec = StudySpec.from_mapping({**stored, "pythonpath": pythonpath}, source=f"study {name}")
    study = Study(spec, settings=settings)
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
        self._payload_base = {"callable": spec.objective, "pythonpath": study.pythonpath}
        self._dists = distributions(spec.space)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._pending: dict[int, optuna.trial.Trial] = {}
        self._created = 0
        self._final = 0
        self._best: float | None = None
        trials = study.trials
        # A resumed study must not replay the seeded sequence it started with: offset the
        # seed by the points already proposed (the same spec still gives the same run).
        seed = None if spec.seed is None else spec.seed + len(trials)
        self._optuna = optuna.create_study(
            direction=spec.direction, sampler=make_sampler(spec.proposer, seed)
        )
        self._rebuild(trials)
        self._bar = _progress_bar(spec, self._final, self._best) if progress else None

    def _rebuild(self, trials: list[Trial]) -> None:
        """The working set from the database: finished points told, open ones pending."""
        for t in trials:
            self._created = max(self._created, t.number + 1)
            if t.state in tq.FINAL:
                self._final += 1
                self._tell_final(t.params, t.value if t.state == TaskState.SUCCEEDED else None)
            else:
                self._optuna.enqueue_trial(t.params)
                self._pending[t.number] = self._optuna.ask(self._dists)

    def _tell_final(self, params: dict[str, Any], value: float | None) -> None:
        state = optuna.trial.TrialState.COMPLETE if value is not None else TrialFail
        trial = optuna.trial.create_trial(
            params=params, distributions=self._dists, value=value, state=state
        )
        self._optuna.add_trial(trial)
        self._note_best(value)

    def _note_best(self, value: float | None) -> None:
        if value is None:
            return
        better = self._best is None or (
            value > self._best if self.spec.direction == "maximize" else value < self._best
        )
        if better:
            self._best = value

    def new_tasks(self, free: int) -> list[TaskSpec]:
        n = 0 if self.cancelled else min(free, self.spec.max_points - self._created)
        specs = []
        for _ in range(max(n, 0)):
            trial = self._optuna.ask(self._dists)
            number = self._created
            self._created += 1
            self._pending[number] = trial
            specs.append(self._task(number, trial.params))
        return specs

    def _task(self, number: int, params: dict[str, Any]) -> TaskSpec:
        res = self.spec.resources
        return TaskSpec(
            number=number,
            kind="hpo.trial",
            payload={**self._payload_base, "args": [params]},
            resources=res.model_dump(exclude_none=True),
            max_attempts=self.spec.max_attempts,
            retry_errors=self.spec.retry_errors,
            timeout_s=self.spec.timeout,
        )

    def validate(self, result: Any) -> str | None:
        if isinstance(result, bool) or not isinstance(result, int | float):
            return f"objective returned {type(result).__name__}, not a number: {result!r:.80}"
        if not math.isfinite(result):
            return f"objective returned {result}"
        return None

    def on_final(self, number: int, state: TaskState, result: Any, error: str | None) -> None:
        trial = self._pending.pop(number)
        self._final += 1
        if state is TaskState.SUCCEEDED:
            self._optuna.tell(trial, float(result))
            self._note_best(float(result))
        else:
            self._optuna.tell(trial, state=TrialFail)
        if self._bar is not None:
            self._bar.update(1)
            if self._best is not None:
                self._bar.set_postfix(best=f"{self._best:.6g}", refresh=False)

    def done(self) -> bool:
        return self.cancelled or self._final >= self.spec.max_points

    def on_cancel(self) -> None:
        self.cancelled = True

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


TrialFail = optuna.trial.TrialState.FAIL


def _progress_bar(spec: StudySpec, done: int, best: float | None) -> Any:
    from tqdm.auto import tqdm

    bar = tqdm(total=spec.max_points, initial=done, desc=spec.name, unit="eval", leave=True)
    if best is not None:
        bar.set_postfix(best=f"{best:.6g}", refresh=False)
    return bar
