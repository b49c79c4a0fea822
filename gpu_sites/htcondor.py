"""HTCondor site: pilots are vanilla-universe jobs, submitted through the ``htcondor2``
bindings, that run ``ray start ... --block``; the job ad ``IddsSite`` finds them again."""

from __future__ import annotations

import shlex
from typing import Any

from pydantic import Field

from gpu_sites.errors import SiteError
from gpu_sites.site import Pilot, PilotSettings, Site

#: HTCondor's JobStatus codes of a job that still holds (or waits for) a slot.
_LIVE = {1: "pending", 2: "running", 5: "pending"}  # idle, running, held


class HTCondorSettings(PilotSettings):
    """HTCondor settings.

    Attributes:
        schedd: the schedd's name (the local one by default).
        collector: the collector to find it through (the configured one by default).
        requirements: a ClassAd expression the pilot's machine must meet.
        request_memory_mb: the pilot's ``request_memory``.
        submit: more submit-description commands, verbatim.
    """

    schedd: str | None = None
    collector: str | None = None
    requirements: str | None = None
    request_memory_mb: int = Field(default=4096, gt=0)
    submit: dict[str, str] = Field(default_factory=dict)


def bindings() -> Any:
    """The ``htcondor2`` module.

    Raises:
        SiteError: the bindings are not installed.
    """
    try:
        import htcondor2
    except ImportError:
        raise SiteError("htcondor2 is not installed (pip install htcondor)") from None
    return htcondor2


class HTCondorSite(Site):
    """Pilots as HTCondor jobs."""

    kind = "htcondor"
    Settings = HTCondorSettings

    def description(self) -> dict[str, str]:
        """The pilot's submit description (one job; ``$(ClusterId).$(ProcId)`` is its ref)."""
        s, spec = self.settings, self.spec
        argv = self.pilot_argv("$(ClusterId).$(ProcId)")
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in s.env.items())
        logs = self.work_dir / "pilot-$(ClusterId).$(ProcId)"
        desc = {
            "universe": "vanilla",
            "executable": argv[0],
            "arguments": '"' + " ".join(_condor_quote(a) for a in argv[1:]) + '"',
            "request_cpus": str(max(int(spec.slots * spec.cpus_per_slot), 1)),
            "request_gpus": str(spec.gpus_per_pilot),
            "request_memory": str(s.request_memory_mb),
            "output": f"{logs}.out",
            "error": f"{logs}.err",
            "log": str(self.work_dir / "pilots.log"),
            "getenv": "True",
            "+IddsSite": f'"{spec.name}"',
        }
        if env:
            desc["environment"] = f'"{env}"'
        if s.requirements:
            desc["requirements"] = s.requirements
        return {**desc, **s.submit}

    def _schedd(self) -> Any:
        htcondor2 = bindings()
        s = self.settings
        try:
            if not s.schedd:
                return htcondor2.Schedd()
            ad = htcondor2.Collector(s.collector).locate(htcondor2.DaemonType.Schedd, s.schedd)
            return htcondor2.Schedd(ad)
        except Exception as exc:  # the bindings raise plain errors when no schedd answers
            raise SiteError(f"site {self.name!r}: no schedd answers: {exc}") from None

    def submit(self, count: int) -> list[str]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        htcondor2 = bindings()
        schedd = self._schedd()
        try:
            result = schedd.submit(htcondor2.Submit(self.description()), count=count)
        except Exception as exc:
            raise SiteError(f"site {self.name!r}: submit refused: {exc}") from None
        first = result.first_proc()
        return [f"{result.cluster()}.{first + i}" for i in range(count)]

    def pilots(self) -> list[Pilot]:
        ads = self._schedd().query(
            constraint=f'IddsSite == "{self.name}"',
            projection=["ClusterId", "ProcId", "JobStatus"],
        )
        return [
            Pilot(self.name, f"{ad['ClusterId']}.{ad['ProcId']}", _LIVE[int(ad["JobStatus"])])
            for ad in ads
            if int(ad["JobStatus"]) in _LIVE
        ]

    def cancel(self, refs: list[str]) -> None:
        if refs:
            htcondor2 = bindings()
            self._schedd().act(htcondor2.JobAction.Remove, refs)


def _condor_quote(arg: str) -> str:
    """One argument in the new-style ``arguments`` syntax (single quotes, doubled inside)."""
    if arg and not any(c in arg for c in " '\"\t"):
        return arg
    return "'" + arg.replace("'", "''").replace('"', '""') + "'"
