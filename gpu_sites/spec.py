"""The sites declaration (``sites.yaml``): what each site contributes and how it is run.

Validation errors are :class:`~gpu_sites.errors.SiteSpecError` with one line naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gpu_sites.errors import SiteSpecError
from idds.config import read_spec_file

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"

Kind = Literal["local", "slurm", "htcondor", "cloud"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSpec(_Strict):
    """One site: a source of Ray worker nodes (pilots) labelled ``site:NAME``.

    Attributes:
        name: the site's name (the Ray resource ``site:NAME`` pins tasks to it).
        kind: ``local``, ``slurm``, ``htcondor`` or ``cloud``.
        slots: tasks one pilot runs at once.
        cpus_per_slot: CPUs a slot offers (a pilot declares ``slots * cpus_per_slot`` to Ray).
        gpus_per_pilot: GPUs one pilot declares to Ray (logical GPUs on a CPU machine).
        gpu_type: the GPU model (``A100``, ``H100`` ...) a task may ask for.
        min_pilots: pilots kept up even when idle.
        max_pilots: pilots at most (scaled up with queued work).
        idle_s: seconds a pilot stays idle before it is drained (down to ``min_pilots``).
        cost_weight: the broker multiplies a site's expected time by it (cheaper: lower).
        startup_s: expected seconds for a new pilot to join, until one is measured.
        settings: kind-specific settings (see each adapter's ``Settings``).
    """

    name: str = Field(pattern=_NAME)
    kind: Kind
    slots: int = Field(default=1, ge=1)
    cpus_per_slot: float = Field(default=1.0, gt=0)
    gpus_per_pilot: int = Field(default=0, ge=0)
    gpu_type: str | None = None
    min_pilots: int = Field(default=0, ge=0)
    max_pilots: int = Field(default=1, ge=1)
    idle_s: float = Field(default=300.0, gt=0)
    cost_weight: float = Field(default=1.0, gt=0)
    startup_s: float = Field(default=30.0, ge=0)
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> SiteSpec:
        if self.min_pilots > self.max_pilots:
            raise ValueError(
                f"min_pilots ({self.min_pilots}) must not exceed max_pilots ({self.max_pilots})"
            )
        from gpu_sites.site import adapter_class

        adapter_class(self.kind).Settings.model_validate(self.settings)
        return self

    @property
    def label(self) -> str:
        """The Ray resource that marks this site's nodes."""
        return f"site:{self.name}"


class BrokerSpec(_Strict):
    """How the broker weighs sites and when it excludes a failing one.

    Attributes:
        fail_streak: a site whose last ``fail_streak`` attempts all failed is excluded.
        exclude_s: for this many seconds after its last failure.
        window: how many recent finished attempts per site the statistics read.
        refresh_s: how often the broker reads the database and Ray's state.
        scale_period_s: how often pilots are scaled (0 turns scaling off).
    """

    fail_streak: int = Field(default=3, ge=1)
    exclude_s: float = Field(default=120.0, gt=0)
    window: int = Field(default=50, ge=1)
    refresh_s: float = Field(default=0.5, ge=0)
    scale_period_s: float = Field(default=2.0, ge=0)


class SitesSpec(_Strict):
    """A ``sites.yaml``: the sites, and the broker's settings."""

    sites: list[SiteSpec] = Field(min_length=1)
    broker: BrokerSpec = BrokerSpec()

    @model_validator(mode="after")
    def _unique(self) -> SitesSpec:
        names = [s.name for s in self.sites]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"site names must be unique: {', '.join(twice)} given twice")
        return self

    def site(self, name: str) -> SiteSpec:
        """The site named ``name``.

        Raises:
            SiteSpecError: there is none.
        """
        for spec in self.sites:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.sites)
        raise SiteSpecError(f"no site named {name!r} (sites: {known})")


def parse_sites(data: Any, *, source: str = "sites") -> SitesSpec:
    """Validate a sites declaration given as plain data (a dict, as YAML loads it).

    Raises:
        SiteSpecError: one line naming the first field that is wrong.
    """
    try:
        return SitesSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        message = err["msg"].removeprefix("Value error, ")
        raise SiteSpecError(f"{source}: {where}: {message}") from None


def load_sites(path: str | Path) -> SitesSpec:
    """Read and validate a ``sites.yaml``.

    Raises:
        SiteSpecError: the file is missing, not YAML, or does not validate.
    """
    path = Path(path)
    data = read_spec_file(path, SiteSpecError)
    return parse_sites(data, source=str(path))
