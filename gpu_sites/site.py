"""The site adapter interface: what a kind of site (local, Slurm, HTCondor, cloud) provides.

A *pilot* is one Ray worker node that a site starts and that joins the head's Ray cluster with
the resource ``site:NAME`` (``slots`` of it), ``slots * cpus_per_slot`` CPUs, the site's
GPUs, and a resource ``pilot:NAME:REF`` naming it. The broker pins a task to a site by asking
for a sliver (``0.001``) of ``site:NAME``.
"""

from __future__ import annotations

import abc
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from gpu_sites.errors import SiteSpecError
from idds.config import path_inside

if TYPE_CHECKING:
    from gpu_sites.spec import SiteSpec

#: A task's claim on its site's label: small enough never to limit how many run at once.
PIN = 0.001


class PilotSettings(BaseModel):
    """Settings every kind of site accepts.

    Attributes:
        env: environment variables for the pilot (and so for the tasks it runs).
        python: the Python that runs the pilot (this head's by default).
        object_store_mb: the pilot node's Ray object store size (Ray's default if unset).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: dict[str, str] = Field(default_factory=dict)
    python: str | None = None
    object_store_mb: int | None = Field(default=None, gt=0)


@dataclass(frozen=True)
class Pilot:
    """A pilot as its site knows it.

    Attributes:
        site: the site's name.
        ref: the site's own id for it (a process id, a Slurm job id, an HTCondor job id).
        state: ``pending`` (asked for, not started) or ``running`` (started; whether it has
            joined Ray is Ray's state, see :mod:`gpu_sites.capacity`).
    """

    site: str
    ref: str
    state: str


class Site(abc.ABC):
    """A source of pilots.

    Contract:
        - :meth:`submit` asks for more pilots and returns at once with their refs; it never
          waits for them to start or to join Ray.
        - :meth:`pilots` lists the pilots the site still knows (pending or running); pilots
          that ended are not listed.
        - :meth:`cancel` stops pilots; the tasks they run fail as crashes and the core
          retries them as new attempts (elsewhere if the broker finds room). Cancelling a
          pilot that has already ended is not an error.
        - One thread at a time calls an adapter (the pilot manager's, or a command's). A
          method may block for its batch system's round trip, never longer.
        - Methods raise :class:`~gpu_sites.errors.SiteError` when the batch system refuses
          or does not answer; settings that cannot work raise
          :class:`~gpu_sites.errors.SiteSpecError` when the adapter is made.

    Args:
        spec: the site.
        head_address: the Ray GCS address pilots join (``host:port``); ``None`` where the
            adapter is made only to list or cancel pilots.
        work_dir: where the adapter writes its scripts and the pilots' logs.
    """

    kind: ClassVar[str]
    Settings: ClassVar[type[PilotSettings]] = PilotSettings

    def __init__(self, spec: SiteSpec, *, head_address: str | None, work_dir: Path) -> None:
        self.spec = spec
        self.head_address = head_address
        self.work_dir = path_inside(work_dir, "sites", spec.name)
        self.settings: Any = self.Settings.model_validate(spec.settings)

    @property
    def name(self) -> str:
        return self.spec.name

    @abc.abstractmethod
    def submit(self, count: int) -> list[str]:
        """Ask for ``count`` more pilots; returns their refs."""

    @abc.abstractmethod
    def pilots(self) -> list[Pilot]:
        """The pilots this site still knows (pending or running)."""

    @abc.abstractmethod
    def cancel(self, refs: list[str]) -> None:
        """Stop these pilots (their running tasks fail over)."""

    def drain(self) -> int:
        """Stop every pilot of this site. Returns how many were asked to stop."""
        refs = [p.ref for p in self.pilots()]
        if refs:
            self.cancel(refs)
        return len(refs)

    # --- helpers for the adapters ---------------------------------------------------------

    def _head(self) -> str:
        if not self.head_address:
            raise SiteSpecError(f"site {self.name!r}: no Ray head address to start pilots for")
        return self.head_address

    def pilot_argv(self, ref: str | None) -> list[str]:
        """The command a pilot runs: :mod:`gpu_sites.pilot`, which picks free ports and
        execs ``ray start --address HEAD --resources ... --num-gpus G --block``.

        Args:
            ref: the pilot's ref as the batch system expands it (``$SLURM_JOB_ID`` ...);
                ``None`` uses the pilot's process id.
        """
        spec = self.spec
        argv = [
            self.settings.python or sys.executable, "-m", "gpu_sites.pilot",
            "--address", self._head(), "--site", spec.name, "--slots", str(spec.slots),
            "--cpus", f"{spec.slots * spec.cpus_per_slot:g}", "--gpus", str(spec.gpus_per_pilot),
        ]  # fmt: skip
        if ref is not None:
            argv += ["--ref", ref]
        if self.settings.object_store_mb:
            argv += ["--object-store-mb", str(self.settings.object_store_mb)]
        return argv

    def pilot_env(self) -> dict[str, str]:
        """This process's environment with the site's ``env`` on top (what a pilot gets)."""
        return {**os.environ, **self.settings.env}


_ADAPTERS = {
    "local": "gpu_sites.local:LocalSite",
    "slurm": "gpu_sites.slurm:SlurmSite",
    "htcondor": "gpu_sites.htcondor:HTCondorSite",
    "cloud": "gpu_sites.cloud:CloudSite",
}


def adapter_class(kind: str) -> type[Site]:
    """The adapter class of a kind of site.

    Raises:
        SiteSpecError: no adapter of that kind.
    """
    import importlib

    if kind not in _ADAPTERS:
        raise SiteSpecError(f"kind: {kind!r} is not one of {', '.join(_ADAPTERS)}")
    module, _, name = _ADAPTERS[kind].partition(":")
    cls: type[Site] = getattr(importlib.import_module(module), name)
    return cls


def make_site(spec: SiteSpec, *, head_address: str | None, work_dir: Path) -> Site:
    """The adapter for a site."""
    return adapter_class(spec.kind)(spec, head_address=head_address, work_dir=work_dir)
