"""A carousel campaign: its files, its tape library, its processing and its policies.

Loaded from YAML or JSON (:func:`load_campaign_file`) or built in Python
(:meth:`CampaignSpec.from_mapping`); sizes are written as ``"2GB"`` or ``"50TB"``. Every field
has the default of the reference campaign (``examples/carousel/reference.yaml``), whose
figures are published ones where they exist.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from carousel.sizes import format_size, parse_size
from idds.config import read_spec_file
from idds.errors import SpecError

Size = Annotated[
    float,
    BeforeValidator(lambda v: parse_size(v)),
    PlainSerializer(lambda v: format_size(v, 12), return_type=str),
]
POLICY_NAMES = ("file-level", "dataset-level", "sliding-window")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SizePopulation(_Model):
    """A population of file sizes: ``share`` of the datasets have log-normal sizes of median
    ``size_median`` and sigma ``size_sigma``."""

    share: float = Field(gt=0, le=1)
    size_median: Size
    size_sigma: float = Field(0.5, ge=0)


class FilesSpec(_Model):
    """The campaign's files: how many, in how many datasets, and their size distribution
    (log-normal: ``size_median`` times ``exp(size_sigma * N(0, 1))``), or a mix of
    ``populations`` (each dataset drawn from one; their shares add up to 1)."""

    count: int = Field(20_000, ge=1)
    datasets: int = Field(20, ge=1)
    size_median: Size = 2.0e9
    size_sigma: float = Field(0.5, ge=0)
    populations: tuple[SizePopulation, ...] = ()

    @pydantic.model_validator(mode="after")
    def _shares(self) -> FilesSpec:
        total = sum(p.share for p in self.populations)
        if self.populations and abs(total - 1.0) > 1e-6:
            raise ValueError(f"the populations' shares add up to {total:g}, not 1")
        return self


class TapeSpec(_Model):
    """One tape library and how the campaign's files lie on its cartridges.

    ``cartridges`` is the pool the campaign's datasets are scattered over (each dataset over
    ``cartridges_per_dataset`` of them, other data between the segments).
    """

    cartridge_capacity: Size = 18e12
    cartridges: int = Field(40, ge=1)
    cartridges_per_dataset: int = Field(8, ge=1)
    drives: int = Field(10, ge=1)
    robots: int = Field(2, ge=1)
    robot_move_s: float = Field(20.0, ge=0)
    drive_rate: Size = 360e6  # bytes per second
    load_s: float = Field(16.0, ge=0)
    unload_s: float = Field(56.0, ge=0)
    locate_mean_s: float = Field(65.0, ge=0)
    rewind_s: tuple[float, float, float] = (62.0, 124.0, 186.0)
    rewind_thresholds: tuple[Size, Size] = (5e9, 50e9)
    file_overhead_s: float = Field(2.0, ge=0)
    mount_min_bytes: Size = 500e9
    mount_min_files: int = Field(10_000, ge=1)
    mount_max_age_s: float = Field(300.0, ge=0)
    read_failure: float = Field(0.005, ge=0, lt=1)
    max_read_attempts: int = Field(3, ge=1)


class ProcessingSpec(_Model):
    """Processing: ``slots`` in parallel; one file takes ``time_s * (size / time_per) *
    U(jitter)``; ``failure`` of attempts fail and are retried up to ``max_attempts``."""

    slots: int = Field(2000, ge=1)
    time_s: float = Field(1800.0, gt=0)
    time_per: Size = 2e9
    jitter: tuple[float, float] = (0.8, 1.2)
    failure: float = Field(0.01, ge=0, lt=1)
    max_attempts: int = Field(5, ge=1)
    callable: str | None = None  # live mode: "module:function" run per file


class PolicySpec(_Model):
    """A staging/processing/release policy and its one parameter.

    ``window``: datasets staged at once by ``sliding-window``.
    ``active_cartridges``: cartridges ``file-level`` feeds at once (default: one per drive,
    whatever the buffer).
    """

    name: Literal["file-level", "dataset-level", "sliding-window"]
    window: int = Field(4, ge=1)
    active_cartridges: int | None = Field(None, ge=1)


class CampaignSpec(_Model):
    """A whole campaign. ``buffer`` is the disk-buffer budget (``None``: unbounded)."""

    #: Letters, digits and ``_.-`` as a study's (pydantic's Rust regex: ``$`` is the very end).
    name: str = Field("campaign", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
    seed: int = 1
    files: FilesSpec = FilesSpec()
    tape: TapeSpec = TapeSpec()
    libraries: tuple[TapeSpec, ...] = ()  # more tape libraries (``tape: [lib, lib, ...]``)
    processing: ProcessingSpec = ProcessingSpec()
    buffer: Size | None = None
    policies: tuple[PolicySpec, ...] = (
        PolicySpec(name="dataset-level"),
        PolicySpec(name="file-level"),
        PolicySpec(name="sliding-window"),
    )

    @pydantic.field_validator("policies", mode="before")
    @classmethod
    def _policy_names(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @pydantic.model_validator(mode="before")
    @classmethod
    def _tape_list(cls, data: Any) -> Any:
        """``tape: [a, b, ...]``: library ``a`` is ``tape``, the others ``libraries``."""
        if isinstance(data, dict) and isinstance(data.get("tape"), list):
            if not data["tape"]:
                raise ValueError("tape: a list of libraries needs at least one")
            first, *rest = data["tape"]
            data = {**data, "tape": first, "libraries": rest}
        return data

    @property
    def tape_libraries(self) -> tuple[TapeSpec, ...]:
        """Every tape library of the campaign, ``tape`` first."""
        return (self.tape, *self.libraries)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> CampaignSpec:
        if self.files.datasets > self.files.count:
            raise ValueError(f"{self.files.datasets} datasets need at least as many files")
        if any(t.cartridges_per_dataset > t.cartridges for t in self.tape_libraries):
            raise ValueError("cartridges_per_dataset is larger than the cartridge pool")
        low, high = self.processing.jitter
        if not 0 < low <= high:
            raise ValueError(f"processing.jitter must be 0 < low <= high, got {low}, {high}")
        return self

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "campaign") -> CampaignSpec:
        """Validate a mapping (from YAML/JSON).

        Raises:
            SpecError: the mapping does not validate (one line naming the field).
        """
        if not isinstance(data, dict):
            raise SpecError(f"{source}: a campaign is a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from None
        except pydantic.ValidationError as exc:
            raise SpecError(f"{source}: {_first_error(exc)}") from None

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON-compatible data; ``from_mapping`` reads it back."""
        return self.model_dump(mode="json")

    def policy(self, name: str) -> PolicySpec:
        """The campaign's entry for policy ``name`` (its defaults where the campaign has none).

        Raises:
            SpecError: no such policy.
        """
        if name not in POLICY_NAMES:
            raise SpecError(f"unknown policy {name!r}; choose from {', '.join(POLICY_NAMES)}")
        return next((p for p in self.policies if p.name == name), PolicySpec(name=name))  # type: ignore[arg-type]

    def scaled(self, count: int) -> CampaignSpec:
        """The same campaign with ``count`` files: datasets and the cartridge pool scale in
        proportion (the library, its drives and the processing slots stay as they are)."""
        factor = count / self.files.count
        datasets = max(1, round(self.files.datasets * factor))

        def pool(t: TapeSpec) -> TapeSpec:
            n = max(t.cartridges_per_dataset, math.ceil(t.cartridges * factor))
            return t.model_copy(update={"cartridges": n})

        return self.model_copy(
            update={
                "files": self.files.model_copy(update={"count": count, "datasets": datasets}),
                "tape": pool(self.tape),
                "libraries": tuple(pool(t) for t in self.libraries),
            }
        )

    def replace(self, **changes: Any) -> CampaignSpec:
        """A validated copy with top-level fields or dotted ones (``processing.slots``) changed.

        Raises:
            SpecError: the result does not validate.
        """
        data = self.to_json()
        for key, value in changes.items():
            *parents, leaf = key.split(".")
            node = data
            for p in parents:
                node = node[p]
            node[leaf] = value
        return CampaignSpec.from_mapping(data, source="campaign")


def _first_error(exc: pydantic.ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "campaign"
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def load_campaign_file(path: str | Path) -> CampaignSpec:
    """Read a campaign from a YAML or JSON file.

    Raises:
        SpecError: the file is missing, does not parse, or does not validate.
    """
    path = Path(path)
    data = read_spec_file(path)
    return CampaignSpec.from_mapping(data or {}, source=str(path))
