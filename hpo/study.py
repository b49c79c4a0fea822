"""The study manager: a study's points as tasks of the scheduling core.

Each point (trial) is a task of the study's owner row; its attempts are the core's attempts.
While a study runs, its head keeps an in-memory Optuna study as the sampler's working set;
the database is the source of truth, and :meth:`Study.optimize` rebuilds the working set from
it when a study resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.spec import StudySpec, check_point
from idds.config import Settings, path_inside
from idds.dispatch import Dispatcher
from idds.errors import NotFound, SpecError
from idds.handle import OwnerHandle
from idds.payloads import load_callable
from idds.records import NewOwner, TaskRecord, best_index, counts_for_best, feasible
from idds.records import pareto_indices as _pareto_indices
from idds.tasks import TaskState

if TYPE_CHECKING:
    from collections.abc import Callable

KIND = "study"
GROUP_KIND = "study-group"  # a segmented study: its segments are studies of their own


@dataclass(frozen=True)
class Trial:
    """One point of a study as recorded: its state, attempts, where it ran, its values.

    ``value`` is the first objective's value (the only one in a single-objective study);
    ``values`` holds them all. ``feasible`` is False when a constraint is above zero.
    A pruned trial (stopped early) is ``succeeded`` with ``pruned`` True and the last value
    it reported. ``run_s`` is the objective's own run time, measured on its worker;
    ``duration_s`` runs from its start on the worker until the head recorded its result.
    ``proposer`` names what proposed the point (under ``proposer: auto``, the one chosen).
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
    user_attrs: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, Any] = field(default_factory=dict)  # define-by-run: as asked
    run_s: float | None = None
    proposer: str | None = None
    proposer_note: str | None = None  # why ``proposer: auto`` chose a new one here

    @property
    def value(self) -> float | None:
        return self.values[0] if self.values else None

    @property
    def feasible(self) -> bool:
        return feasible(self.constraints)

    @property
    def counts_for_best(self) -> bool:
        """Whether it competes for the best: succeeded, feasible, not pruned."""
        result = {"values": self.values, "constraints": self.constraints, "pruned": self.pruned}
        return counts_for_best(self.state, result)


class Study(OwnerHandle):
    """A hyperparameter study, defined in Python or loaded from a spec file.

    Args:
        spec: a :class:`StudySpec`, or ``None`` to build one from ``fields``.
        settings: database and Ray settings (``IDDS_*`` environment variables by default).
        base_dir: the directory relative ``pythonpath`` entries are taken from (the spec
            file's directory; the current directory by default).
        **fields: the spec's fields (``name``, ``objective``, ``space``, ...) when ``spec``
            is not given. ``objective`` may be a function defined at the top level of an
            importable module (or of the script being run).
        check_objective: import the objective now (``load_study`` defers it to
            :meth:`optimize`, so that a study can be read where its code is not installed).

    Raises:
        SpecError: the spec does not validate, or its objective does not import.
    """

    kind = KIND
    noun = "study"
    command = "hpo"
    task_noun = "an evaluation"

    def __init__(
        self,
        spec: StudySpec | None = None,
        *,
        settings: Settings | None = None,
        base_dir: str | Path | None = None,
        check_objective: bool = True,
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
        self.workdir = str(path_inside(self.settings.work_dir, spec.name))
        self.spec_dir = str(base)
        self._engine = None
        #: The segments of a segmented study: independent studies run side by side.
        self.segments = [
            Study(seg, settings=self.settings, base_dir=base, check_objective=check_objective)
            for seg in spec.segment_specs().values()
        ]
        self._define_by_run: bool | None = None
        if check_objective:
            self.check_objective()

    def check_objective(self) -> None:
        """Import the objective here (so a wrong one fails now, not on a worker) and check
        that the spec suits it.

        Raises:
            SpecError: it does not import, or the spec has no space for an objective that
                takes a point (or a skopt proposer for one that takes an Optuna trial).
        """
        spec = self.spec
        self._define_by_run = False
        if spec.objective:
            from hpo.remote_trial import takes_a_trial

            fn = load_callable(spec.objective, self.pythonpath)
            self._define_by_run = takes_a_trial(fn)
        if not spec.space and not self._define_by_run and not self.segments:
            raise SpecError(
                "space: give at least one parameter (or an objective that takes an Optuna trial)"
            )
        if self._define_by_run and spec.proposer.startswith(("skopt:", "nevergrad:", "bayes_opt:")):
            raise SpecError(
                f"proposer {spec.proposer} needs the space in the spec, not suggest calls"
            )

    @property
    def define_by_run(self) -> bool:
        """Whether the objective takes an Optuna trial (its space comes from its suggest calls)."""
        if self._define_by_run is None:
            self.check_objective()
        return bool(self._define_by_run)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def owner_kind(self) -> str:
        return GROUP_KIND if self.segments else KIND

    # --- running ----------------------------------------------------------------------------

    #: Recorded fields that change as it runs or with where it is run from.
    RUNTIME_KEYS = frozenset({"initial_points", "pythonpath", "workdir", "spec_dir"})

    def create(self, *, user: str | None = None, parent_id: int | None = None) -> int:
        """Record the study (and its segments, in the same transaction); returns its id.

        Args:
            user: the user to record as its owner: the acting user by default (a workflow's
                node creates its study for the workflow's owner).
            parent_id: the owner it is part of (the workflow whose node it is).

        Raises:
            Exists: a study of that name (or of a segment's) exists already.
            AccessDenied: no user can be named (see :mod:`idds.auth`).
        """
        parts = [NewOwner(kind=KIND, name=s.name, spec=s._stored()) for s in self.segments]
        return self.create_owner(self._stored(), user=user, parts=parts, parent_id=parent_id)

    def _stored(self) -> dict[str, Any]:
        """The spec as recorded, with where its files and work dirs are."""
        return {
            **self.spec.to_json(),
            "pythonpath": self.pythonpath,
            "workdir": self.workdir,
            "spec_dir": self.spec_dir,
        }

    def optimize(self, *, progress: bool = True) -> None:
        """Run the study until ``max_points`` points are evaluated (or it is cancelled); a
        segmented study runs all its segments side by side.

        Creates the study on its first call and resumes it afterwards, in this or a new
        process: evaluations recorded are never run again; those in flight when an earlier
        head stopped run again.

        Raises:
            IddsError: another live head is running this study.
        """
        from hpo.run import StudyRun

        if self.remote:  # a head of the server runs it
            self.start_or_resume(self.create, self._stored())
            self.follow(progress=progress)
            return
        for study in self.segments or [self]:
            study.check_objective()
        self.check_capacity()
        self.start_or_resume(self.create, self._stored())
        studies = self.segments or [self]
        dispatcher = Dispatcher(self.engine, settings=self.settings)
        for study in studies:
            study._engine = self.engine
        owner_ids = [study.owner_id for study in studies]
        with self.held(dispatcher, owner_ids):
            runs = [
                StudyRun(study, owner_id, progress=progress, position=position)
                for position, (study, owner_id) in enumerate(zip(studies, owner_ids, strict=True))
            ]
            dispatcher.run(runs)
            for study, run in zip(studies, runs, strict=True):
                run.close()
                if not run.cancelled:
                    study.finish()
        if self.segments and self.state == "finished":
            self.finish()  # the group too, once every segment is

    def task_needs(self) -> dict[str, float]:
        return {"CPU": self.spec.resources.cpus, "GPU": self.spec.resources.gpus}

    def expected_tasks(self) -> int | None:
        return None if self.segments else self.spec.max_points

    def enqueue(self, point: dict[str, Any]) -> dict[str, Any]:
        """Add a point to evaluate next (a head running the study picks it up in seconds).

        Returns:
            The point as checked against the space.

        Raises:
            SpecError: the point does not fit the space.
            AccessDenied: the study is another user's.
        """
        if self.segments:
            names = ", ".join(seg.name for seg in self.segments)
            raise SpecError(f"study {self.name!r} is segmented: enqueue into a segment ({names})")
        point = check_point(self.spec, point)
        self.require("enqueue into")

        def add(spec: dict[str, Any]) -> dict[str, Any]:
            return {**spec, "initial_points": [*spec.get("initial_points", []), point]}

        self.records.update_spec(self.owner_id, add)
        self.spec = self.spec.model_copy(
            update={"initial_points": [*self.spec.initial_points, point]}
        )
        return point

    def _queued_indices(self) -> set[int]:
        payloads = [t.payload for t in self.records.tasks(self.owner_id)]
        return {p["queued"] for p in payloads if p.get("queued") is not None}

    def cancel(self) -> int:
        """Cancel the study (a segmented one: each segment); a head running it stops within
        seconds. Returns tasks cancelled.

        Raises:
            AccessDenied: the study is another user's.
        """
        if not self.segments:
            return super().cancel()
        self.require("cancel")
        return sum(segment.cancel() for segment in self._segments_here())

    # --- reading ----------------------------------------------------------------------------

    def log_paths(self, trial: int, attempt: int | None = None) -> tuple[Path, Path, int]:
        """stdout and stderr files of a trial's attempt (the last by default).

        Raises:
            NotFound: no such trial.
            AccessDenied: the study is another user's.
        """
        from idds.commands import log_paths

        self.require("read the logs of")
        found = [t for t in self.trials if t.number == trial]
        if not found:
            raise NotFound(f"study {self.name!r} has no trial {trial}")
        attempt = attempt or max(found[0].attempt, 1)
        out, err = log_paths(trial_workdir(self.workdir, trial), attempt)
        return out, err, attempt

    @property
    def state(self) -> str:
        """``active``, ``finished`` or ``cancelled`` (a segmented study: cancelled if one of
        its segments is, finished when all are)."""
        if self.segments:
            states = {segment.state for segment in self._segments_here()}
            if "cancelled" in states:
                return "cancelled"
            return "finished" if states == {"finished"} else "active"
        return super().state

    def _segments_here(self) -> list[Study]:
        for segment in self.segments:
            segment._engine = self.engine
        return self.segments

    @property
    def trials(self) -> list[Trial]:
        """Every point of the study, in order (a segmented study: see ``segments``)."""
        if self.segments:
            raise SpecError(f"study {self.name!r} is segmented: read its segments' trials")
        owner_id = self.owner_id
        records = self.records
        reports = records.reports(owner_id)
        return [_trial(t, reports.get(t.number)) for t in records.tasks(owner_id)]

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

    def _repr_html_(self) -> str:
        """The study in a Jupyter notebook: a summary table (see :mod:`hpo.jupyter`)."""
        from hpo.jupyter import study_html

        return study_html(self)


def best_of(trials: list[Trial], direction: str) -> Trial | None:
    """The trial with the best value among those that count (see ``idds.records``)."""
    done = [t for t in trials if t.counts_for_best]
    i = best_index([t.values or [] for t in done], direction)
    return None if i is None else done[i]


def pareto_front(trials: list[Trial], directions: tuple[str, ...]) -> list[Trial]:
    """The trials that count for the best and that no other one dominates."""
    done = [t for t in trials if t.counts_for_best]
    return [done[i] for i in _pareto_indices([t.values or [] for t in done], directions)]


def _trial(row: TaskRecord, intermediate: dict[int, float] | None = None) -> Trial:
    result = row.result if row.state == TaskState.SUCCEEDED else None
    if result and "params" in result:
        params = result["params"]
    elif "command" in row.payload:
        params = row.payload["input"]
    else:
        params = row.payload["args"][0]
    return Trial(
        pruned=bool(result and result.get("pruned")),
        distributions=(result or {}).get("distributions", {}),
        user_attrs=(result or {}).get("user_attrs", {}),
        run_s=(result or {}).get("run_s"),
        proposer=row.payload.get("proposer"),
        proposer_note=row.payload.get("proposer_note"),
        intermediate_values=intermediate or {},
        number=row.number,
        state=row.state,
        params=params,
        values=result["values"] if result else None,
        constraints=result.get("constraints") if result else None,
        attempt=row.attempt,
        site=row.site,
        node=row.node,
        duration_s=row.duration_s,
        error=row.error,
    )


def load_study(name: str, *, settings: Settings | None = None) -> Study:
    """The study ``name`` as recorded in the database.

    Raises:
        NotFound: no study of that name.
    """
    from idds.client import records_for
    from idds.db import require

    settings = settings or Settings.from_env()
    if not settings.url:
        require(settings.db_url, f"no study named {name!r}")
    records = records_for(settings)
    try:
        row = records.owner((KIND, GROUP_KIND), name)
    except NotFound:
        raise NotFound(f"no study named {name!r}") from None
    stored = dict(row.spec)
    workdir = stored.pop("workdir", None)
    spec_dir = stored.pop("spec_dir", None)
    spec = StudySpec.from_mapping(stored, source=f"study {name}")
    study = Study(spec, settings=settings, base_dir=spec_dir, check_objective=False)
    study.workdir = workdir or study.workdir
    study.attach(records)
    for segment in study.segments:
        segment.attach(records)
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
