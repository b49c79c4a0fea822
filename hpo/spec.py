"""The study spec: what a YAML/JSON file or ``hpo.Study(...)`` declares, validated once.

Validation errors are :class:`idds.errors.SpecError` with one line that names the field.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from idds.config import read_spec_file
from idds.errors import SpecError

#: Pydantic matches ``Field(pattern=...)`` with Rust's regex, where ``$`` is the end of the
#: text (not before a trailing newline, as Python's ``re`` has it).
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$"


#: Bounds on counts: far above any real study, below what a database column or a
#: sampler's arithmetic breaks on. ``parallel`` is bounded again, when a study runs, by
#: what the cluster and the sites can run at once (:func:`hpo.run.runnable_at_once`).
MOST_POINTS = 10**9
MOST_PARALLEL = 10**6
_MOST_INT = 2**53  # integers exact as floats, as samplers handle them
_MOST_STEPS = 10**15
MOST_GRID = 10**7  # a grid's points are listed in memory


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Choice = str | int | float | bool | None


class _Param(_Strict):
    #: The parameter exists only where each named parameter (defined before it) takes one of
    #: the listed values: ``when: {model: [svm]}``.
    when: dict[str, list[Choice]] = Field(default_factory=dict)

    @field_validator("when", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value


class FloatParam(_Param):
    """A real parameter in ``[low, high]``, optionally on a log scale or a step grid."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        _check_range(self.low, self.high, self.log)
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be used together")
        if self.step is not None and not (self.high - self.low) / self.step <= _MOST_STEPS:
            raise ValueError(f"step: more than {_MOST_STEPS:.0e} steps from low to high")
        return self


class IntParam(_Param):
    """An integer parameter in ``[low, high]``, optionally on a log scale or with a step."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, gt=0)

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        if not -_MOST_INT <= self.low <= self.high <= _MOST_INT:
            _check_range(self.low, self.high, self.log)
            raise ValueError(f"low and high must lie within ±2**53 ({_MOST_INT})")
        _check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("log and step cannot be used together")
        return self


class CategoricalParam(_Param):
    """A choice among JSON values (strings, numbers, booleans, null)."""

    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1)


def _check_range(low: float, high: float, log: bool) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("low and high must be finite")
    if low > high:
        raise ValueError(f"low ({low:g}) must not be greater than high ({high:g})")
    if log and low <= 0:
        raise ValueError(f"a log-scale parameter needs low > 0, got {low:g}")


Direction = Literal["minimize", "maximize"]

Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Container(_Strict):
    """Run a command payload in a container image."""

    image: str = Field(min_length=1)
    engine: Literal["apptainer", "singularity", "docker"] = "apptainer"


class Resources(_Strict):
    """What one evaluation needs."""

    cpus: float = Field(default=1.0, ge=0)
    gpus: float = Field(default=0.0, ge=0)
    memory_gb: float | None = Field(default=None, gt=0)
    #: The sites an evaluation may run on (see gpu_sites); the broker chooses where unset.
    sites: list[str] | None = Field(default=None, min_length=1)


class StudySpec(_Strict):
    """A study: its space, objective, proposer and stopping rule.

    ``objective`` is ``module:function``; the function takes the point (a dict) and returns a
    float (or one per objective). ``command`` instead runs a program per point with the
    point in ``input.json`` and its result in ``output.json`` (see :mod:`idds.commands`).
    ``pythonpath`` entries are where the module is found (relative entries are taken
    from the spec file's directory; that directory itself is always included).
    """

    name: str = Field(pattern=_NAME)
    objective: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    command: str | list[str] | None = None
    container: Container | None = None
    input_ds: list[str] | None = None
    space: dict[str, Param] = Field(default_factory=dict)
    direction: Direction | list[Direction] = "minimize"
    constraints: int = Field(default=0, ge=0, le=1000)
    max_points: int = Field(default=100, gt=0, le=MOST_POINTS)
    parallel: int = Field(default=1, gt=0, le=MOST_PARALLEL)
    points_per_iteration: int | None = Field(default=None, gt=0, le=MOST_PARALLEL)
    min_unevaluated_points: int | None = Field(default=None, ge=0, le=MOST_POINTS)
    patience: int | None = Field(default=None, gt=0, le=MOST_POINTS)
    max_time: float | None = Field(default=None, gt=0)
    proposer: str = "auto"
    proposer_options: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    #: With a seed and ``parallel`` > 1: propose in batches of ``parallel`` and tell the
    #: results in point order, so the points do not depend on timing (False: propose as
    #: each slot frees, with all results in so far, as they come).
    deterministic: bool = True
    pruner: str = "none"
    pruner_options: dict[str, Any] = Field(default_factory=dict)
    initial_points: list[dict[str, Any]] = Field(default_factory=list)
    warm_start: list[str] = Field(default_factory=list)
    segments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Set on each segment's own spec (:meth:`segment_specs`): the segment's name, which its
    #: objective reads (``hpo.segment()``, ``segment`` in a command's ``input.json``).
    segment: str | None = None
    max_attempts: int = Field(default=3, ge=1, le=1000)
    retry_errors: bool = False
    timeout: float | None = Field(default=None, gt=0)
    resources: Resources = Resources()
    pythonpath: list[str] = Field(default_factory=list)

    @field_validator("proposer")
    @classmethod
    def _known_proposer(cls, value: str) -> str:
        from hpo.proposers import check_proposer

        check_proposer(value)
        return value

    @field_validator("space")
    @classmethod
    def _param_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        seen: list[str] = []
        for key, param in value.items():
            if not re.fullmatch(r"[A-Za-z_][\w.\-]*", key):
                raise ValueError(f"parameter name {key!r} is not an identifier")
            for other in param.when:
                if other not in seen:
                    raise ValueError(f"{key}.when: {other!r} is not a parameter defined before it")
            seen.append(key)
        return value

    @field_validator("direction")
    @classmethod
    def _some_direction(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("give at least one direction")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        from hpo.proposers import make_proposer

        if (self.objective is None) == (self.command is None):
            raise ValueError("give exactly one of objective (module:function) and command")
        if self.command is not None and not self.argv:
            raise ValueError("command: is empty")
        if self.command is not None and not self.space:
            raise ValueError("space: give at least one parameter")
        if self.container is not None and self.command is None:
            raise ValueError("container: needs a command")
        if self.patience and len(self.directions) > 1:
            raise ValueError("patience: needs a single objective")
        for i, point in enumerate(self.initial_points):
            try:
                check_point(self, point)
            except SpecError as exc:
                raise ValueError(f"initial_points[{i}]: {exc}") from None
        if self.segments:
            self.segment_specs()  # each segment validates on its own
            return self
        if self.proposer == "optuna:grid":
            self._check_grid_size()
        make_proposer(self, self.seed)  # the proposer can handle this space and objectives
        self._check_pruner()
        return self

    def segment_specs(self) -> dict[str, StudySpec]:
        """One study spec per segment: this spec with the segment's fields over it, named
        ``NAME.SEGMENT``.

        Raises:
            SpecError: a segment does not validate (the message names it).
        """
        base = self.model_dump(mode="json", exclude={"segments"}, exclude_none=True)
        out = {}
        for seg, fields in self.segments.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", seg):
                raise SpecError(f"segments: {seg!r} is not a segment name (letters, digits, _ -)")
            if not isinstance(fields, dict) or {"name", "segments", "segment"} & set(fields):
                raise SpecError(
                    f"segments.{seg}: a mapping of study fields (not name/segments/segment)"
                )
            merged = {**base, **fields, "name": f"{self.name}.{seg}", "segment": seg}
            if "seed" not in fields and self.seed is not None:
                merged["seed"] = segment_seed(self.seed, seg)
            out[seg] = StudySpec.from_mapping(merged, source=f"segments.{seg}")
            if "segment" in out[seg].space:
                raise SpecError(f"segments.{seg}: space: 'segment' names the segment in a point")
        return out

    def _check_grid_size(self) -> None:
        total = 1
        for name, p in self.space.items():
            if p.type == "categorical":
                total *= len(p.choices)
            elif p.type == "int" and not p.log:
                total *= (p.high - p.low) // p.step + 1
            elif p.type == "float" and p.step is not None:
                total *= math.floor((p.high - p.low) / p.step) + 1
            if total > MOST_GRID:
                raise ValueError(
                    f"proposer optuna:grid: more than {MOST_GRID:,} points (at space.{name})"
                )

    def _check_pruner(self) -> None:
        from hpo.proposers import FOREIGN
        from hpo.pruners import make_pruner

        make_pruner(self.pruner, dict(self.pruner_options))
        if self.pruner == "none":
            return
        if len(self.directions) > 1:
            raise SpecError("pruner: pruning needs a single objective")
        if self.proposer.startswith(FOREIGN):
            raise SpecError(f"pruner: needs an Optuna proposer, not {self.proposer}")

    @property
    def argv(self) -> list[str]:
        """The command as a list of arguments."""
        if self.command is None:
            return []
        return shlex.split(self.command) if isinstance(self.command, str) else list(self.command)

    @property
    def directions(self) -> tuple[str, ...]:
        """One direction per objective."""
        d = self.direction
        return tuple(d) if isinstance(d, list) else (d,)

    def to_json(self) -> dict[str, Any]:
        """The spec as plain JSON (round-trips through :meth:`from_mapping`)."""
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "spec") -> StudySpec:
        """Validate a mapping (from YAML, JSON or keyword arguments).

        Raises:
            SpecError: one line naming the first field that is wrong.
        """
        if not isinstance(data, dict):
            raise SpecError(f"{source}: a study spec must be a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SpecError(f"{source}: {_first_error(exc)}") from None


def segment_seed(seed: int, segment: str) -> int:
    """The seed of a segment: derived from the study's seed and the segment's name, so that
    segments propose different points and a run is repeated exactly."""
    digest = hashlib.sha256(f"{seed}:{segment}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def check_point(spec: StudySpec, point: dict[str, Any]) -> dict[str, Any]:
    """A point given by hand, checked against the space (ints made ints).

    Raises:
        SpecError: an unknown or missing parameter, or a value outside its range or choices.
    """
    unknown = sorted(set(point) - set(spec.space))
    if unknown:
        raise SpecError(f"unknown parameter(s) {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for name, p in spec.space.items():
        if not all(out.get(k) in allowed for k, allowed in p.when.items()):
            if name in point:
                raise SpecError(f"{name}: does not exist for this point (see its `when`)")
            continue
        if name not in point:
            raise SpecError(f"{name}: missing")
        out[name] = _check_value(name, p, point[name])
    return out


def _check_value(name: str, p: Any, value: Any) -> Any:
    if p.type == "categorical":
        if value not in p.choices:
            raise SpecError(f"{name}: {value!r} is not one of {p.choices}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{name}: {value!r} is not a number")
    if p.type == "int":
        if value != int(value):
            raise SpecError(f"{name}: {value!r} is not an integer")
        value = int(value)
    if not p.low <= value <= p.high:
        raise SpecError(f"{name}: {value!r} is outside [{p.low}, {p.high}]")
    return value if p.type == "int" else float(value)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    tags = ("float", "int", "categorical", "str")
    loc = [str(p) for p in err["loc"] if p not in tags and "[" not in str(p)]
    where = ".".join(loc) or "spec"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    if err["type"] == "union_tag_invalid":
        return f"{where}.type: must be one of float, int, categorical"
    if err["type"] == "value_error" and str(err["msg"]).startswith("Value error, ") and not loc:
        return str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "union_tag_not_found":
        return f"{where}.type: missing (one of float, int, categorical)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}"


def load_spec_file(path: str | Path) -> tuple[StudySpec, Path]:
    """Read and validate a study spec file (YAML or JSON); returns it with its directory.

    Raises:
        SpecError: the file is missing, does not parse or does not validate.
    """
    path = Path(path)
    data = read_spec_file(path)
    return StudySpec.from_mapping(data, source=str(path)), path.resolve().parent
