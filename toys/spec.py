"""The toy-scan spec: what ``scan.yaml`` (or ``ToyScan(...)``) declares, validated once.

Bad input raises :class:`ToyScanError` (a :class:`idds.errors.SpecError`) with one line that
names the field; nothing is written before a spec validates, pyhf accepts its workspace, the
POI exists and the range brackets the asymptotic limits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from idds.config import read_spec_file
from idds.errors import SpecError

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$"


class ToyScanError(SpecError):
    """A toy-scan spec that does not validate (or a workspace pyhf rejects)."""


class ToyScanSpec(BaseModel):
    """A toy-MC upper-limit scan of one parameter of interest.

    Attributes:
        name: the scan's name (unique among scans).
        workspace: the pyhf workspace (JSON object; a spec file may give a path to it).
        poi: the parameter of interest (the measurement's by default).
        range: the POI range ``[low, high]`` to scan; it must bracket the limits.
        test_stat: ``qtilde`` (q~mu, default) or ``q`` (qmu).
        cl: the confidence level of the CLs upper limit.
        toys: toys per hypothesis that each new point gets (and the unit of extra toys).
        batch_size: toys per hypothesis in one task (big enough that Ray's overhead is small).
        points: POI values of the first, coarse step.
        tolerance: the error (POI units) to which every limit is wanted; ``range`` / 50 by
            default.
        max_steps: at most this many steps.
        max_toys: at most this many toys in all (both hypotheses).
        seed: the seed every batch's seed derives from (with its POI value and index).
        parallel: batches in flight at once (the Ray cluster's CPUs by default).
        timeout: seconds a batch may run; max_attempts: tries per batch.
        barrier: plan each step only once every batch of the previous one is in, so that
            the scan depends on its spec alone (two runs give the same points); by default a
            step is planned from the results in as soon as a batch slot is free, and adds
            toys only where no batch is still running, so that one slow batch holds no
            other point back.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    workspace: dict[str, Any]
    poi: str | None = None
    range: tuple[float, float]
    test_stat: Literal["qtilde", "q"] = "qtilde"
    cl: float = Field(default=0.95, gt=0.0, lt=1.0)
    toys: int = 1000
    batch_size: int = Field(default=500, ge=1)
    points: int = Field(default=6, ge=2, le=200)
    tolerance: float | None = Field(default=None, gt=0.0)
    max_steps: int = Field(default=12, ge=1)
    max_toys: int = Field(default=2_000_000, ge=1)
    seed: int = Field(default=0, ge=0)
    parallel: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0.0)
    max_attempts: int = Field(default=3, ge=1)
    barrier: bool = False

    @field_validator("toys")
    @classmethod
    def _some_toys(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1 (got {value}): a point needs toys")
        return value

    @model_validator(mode="after")
    def _check(self) -> ToyScanSpec:
        lo, hi = self.range
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise ValueError(f"range: [{lo:g}, {hi:g}] must be [low, high] with low < high")
        if self.test_stat == "qtilde" and lo < 0:
            raise ValueError("range: qtilde tests a POI >= 0; start the range at 0 or above")
        return self

    @property
    def batch_toys(self) -> int:
        """Toys per hypothesis in one batch."""
        return min(self.batch_size, self.toys)

    @property
    def batches_per_point(self) -> int:
        """Batches a new point gets."""
        return math.ceil(self.toys / self.batch_toys)

    @property
    def tolerance_or_default(self) -> float:
        lo, hi = self.range
        return self.tolerance if self.tolerance is not None else (hi - lo) / 50

    def to_json(self) -> dict[str, Any]:
        """The spec as plain JSON (round-trips through :meth:`from_mapping`)."""
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_mapping(
        cls, data: Any, *, source: str = "spec", base_dir: Path | None = None
    ) -> ToyScanSpec:
        """Validate a mapping; a ``workspace`` given as a path is read (relative to
        ``base_dir``).

        Raises:
            ToyScanError: one line naming the first field that is wrong.
        """
        if not isinstance(data, dict):
            raise ToyScanError(f"{source}: a toy-scan spec must be a mapping")
        data = dict(data)
        if isinstance(data.get("workspace"), str | Path):
            data["workspace"] = _read_workspace(Path(base_dir or ".") / data["workspace"])
        try:
            spec = cls.model_validate(data)
        except ValidationError as exc:
            raise ToyScanError(f"{source}: {_first_error(exc)}") from None
        if spec.tolerance is None:
            spec = spec.model_copy(update={"tolerance": spec.tolerance_or_default})
        return spec


def _read_workspace(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ToyScanError(f"workspace: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} (line {exc.lineno})"
        raise ToyScanError(f"workspace: {path} is not JSON: {where}") from None
    except RecursionError:
        raise ToyScanError(f"workspace: {path} nests too deeply") from None
    if not isinstance(data, dict):
        raise ToyScanError(f"workspace: {path} holds no JSON object")
    return data


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "spec"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return msg if not err["loc"] else f"{where}: {msg}"


def load_scan_file(path: str | Path) -> ToyScanSpec:
    """Read and validate a toy-scan spec file (YAML or JSON).

    Raises:
        ToyScanError: the file is missing, does not parse or does not validate.
    """
    path = Path(path)
    data = read_spec_file(path, ToyScanError)
    return ToyScanSpec.from_mapping(data, source=str(path), base_dir=path.resolve().parent)


def check_model(spec: ToyScanSpec) -> ToyScanSpec:
    """Check the workspace with pyhf, the POI and the range against its bounds.

    Returns:
        The spec with its POI named (the measurement's, when it named none).

    Raises:
        ToyScanError: pyhf rejects the workspace, the POI does not exist, or the range lies
            outside the POI's bounds.
    """
    import pyhf

    pyhf.set_backend("numpy")
    try:
        workspace = pyhf.Workspace(spec.workspace)
        poi = spec.poi or workspace.get_measurement()["config"]["poi"]
    except _pyhf_errors() as exc:
        raise ToyScanError(f"workspace: pyhf rejects it: {_one_line(exc)}") from None
    try:
        config = workspace.model(poi_name=None).config
    except _pyhf_errors() as exc:
        raise ToyScanError(f"workspace: pyhf rejects it: {_one_line(exc)}") from None
    names = sorted(config.parameters)
    if poi not in names:
        raise ToyScanError(_no_poi(spec.poi, poi, names, _normfactors(spec.workspace)))
    try:
        model = workspace.model(poi_name=poi)
    except _pyhf_errors() as exc:
        raise ToyScanError(f"poi: pyhf cannot use {poi!r}: {_one_line(exc)}") from None
    low, high = model.config.suggested_bounds()[model.config.poi_index]
    lo, hi = spec.range
    if lo < low or hi > high:
        raise ToyScanError(
            f"range: [{lo:g}, {hi:g}] leaves the bounds of {poi!r}, [{low:g}, {high:g}]"
        )
    return spec.model_copy(update={"poi": poi})


def _normfactors(workspace: dict[str, Any]) -> list[str]:
    """The names of the workspace's normfactors (the parameters a POI can be)."""
    return sorted(
        {
            modifier["name"]
            for channel in workspace.get("channels", [])
            for sample in channel.get("samples", [])
            for modifier in sample.get("modifiers", [])
            if modifier.get("type") == "normfactor"
        }
    )


def _no_poi(named: str | None, poi: str, names: list[str], normfactors: list[str]) -> str:
    """The one line saying that ``poi`` is not a parameter, and what could be."""
    who = f"poi: {poi!r} is" if named else f"poi: the measurement's POI {poi!r} is"
    could = (
        f"normfactors that could be: {', '.join(normfactors)}"
        if normfactors
        else "the workspace has no normfactor to scan"
    )
    return f"{who} not a parameter of the workspace ({', '.join(names)}); {could}"


def check_range(spec: ToyScanSpec) -> None:
    """Check cheaply (asymptotic CLs at both ends) that the range brackets every limit.

    Raises:
        ToyScanError: a band's CLs is below ``1 - CL`` at the low end or above it at the high
            end; the message suggests a range from the asymptotic limits.
    """
    from toys.stats import BANDS, asymptotic_cls

    assert spec.poi is not None  # noqa: S101 - check_model named it
    alpha, (lo, hi) = 1 - spec.cl, spec.range
    at_hi = asymptotic_cls(spec.workspace, spec.poi, hi, spec.test_stat)
    above = [b for b in BANDS if not at_hi[b] < alpha]
    if above:
        raise ToyScanError(
            f"range: [{lo:g}, {hi:g}] does not bracket the limit: asymptotic CLs at {hi:g} is "
            f"{at_hi[above[0]]:.3g} >= {alpha:g} ({_band(above[0])}); {_suggest(spec)}"
        )
    if lo > 0:
        at_lo = asymptotic_cls(spec.workspace, spec.poi, lo, spec.test_stat)
        below = [b for b in BANDS if at_lo[b] <= alpha]  # NaN (0 / 0) says nothing
        if below:
            raise ToyScanError(
                f"range: [{lo:g}, {hi:g}] does not bracket the limit: asymptotic CLs at {lo:g} "
                f"is {at_lo[below[0]]:.3g} <= {alpha:g} ({_band(below[0])}); {_suggest(spec)}"
            )


def _band(band: str) -> str:
    return "observed" if band == "obs" else f"expected {band} sigma"


def _suggest(spec: ToyScanSpec) -> str:
    """A range that brackets the asymptotic limits with room for the toys' to differ."""
    from toys.stats import asymptotic_limits

    assert spec.poi is not None  # noqa: S101
    try:
        found = asymptotic_limits(spec.workspace, spec.poi, spec.cl, spec.test_stat)
    except Exception:  # noqa: BLE001 - the root finder found no limit within the bounds
        return "no limit within the POI's bounds: widen them in the workspace"
    top = max(found.values()) * 1.5
    return f"try range: [0, {float(f'{top:.2g}'):g}]"


def _pyhf_errors() -> tuple[type[Exception], ...]:
    """Every exception pyhf raises on purpose (they share no base class)."""
    import pyhf.exceptions

    found = (getattr(pyhf.exceptions, n) for n in dir(pyhf.exceptions))
    return tuple(e for e in found if isinstance(e, type) and issubclass(e, Exception))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
