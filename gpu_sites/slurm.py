"""Slurm site: pilots are ``sbatch`` jobs that run ``ray start ... --block``.

``scancel`` drains them, ``squeue`` lists them, ``sacct`` says how an ended one ended (where
Slurm keeps accounting).
"""

from __future__ import annotations

import shlex
import subprocess

from pydantic import Field

from gpu_sites.errors import SiteError
from gpu_sites.site import Pilot, PilotSettings, Site

#: squeue's job states that still hold (or wait for) a node.
_LIVE = {"PENDING": "pending", "CONFIGURING": "pending", "RUNNING": "running"}


class SlurmSettings(PilotSettings):
    """Slurm settings.

    Attributes:
        partition: ``sbatch --partition``.
        time_limit: ``sbatch --time`` (a pilot's longest life).
        cpus_per_task: cores the job asks Slurm for (Ray is told the site's slots).
        sbatch_args: more ``sbatch`` options, verbatim.
        job_name: the jobs' name (``idds-pilot-SITE`` by default); pilots are found by it.
    """

    partition: str | None = None
    time_limit: str | None = None
    cpus_per_task: int = Field(default=1, ge=1)
    sbatch_args: list[str] = Field(default_factory=list)
    job_name: str | None = None


class SlurmSite(Site):
    """Pilots as Slurm batch jobs."""

    kind = "slurm"
    Settings = SlurmSettings

    @property
    def job_name(self) -> str:
        return str(self.settings.job_name or f"idds-pilot-{self.name}")

    def script(self) -> str:
        """The batch script of a pilot."""
        s = self.settings
        lines = ["#!/bin/sh", f"#SBATCH --job-name={self.job_name}"]
        lines.append(f"#SBATCH --output={self.work_dir / 'pilot-%j.log'}")
        lines.append(f"#SBATCH --cpus-per-task={s.cpus_per_task}")
        if s.partition:
            lines.append(f"#SBATCH --partition={s.partition}")
        if s.time_limit:
            lines.append(f"#SBATCH --time={s.time_limit}")
        lines += [f"#SBATCH {arg}" for arg in s.sbatch_args]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in s.env.items()]
        argv = " ".join(shlex.quote(a) for a in self.pilot_argv("SLURM_REF"))
        lines.append("exec " + argv.replace("SLURM_REF", '"$SLURM_JOB_ID"'))
        return "\n".join(lines) + "\n"

    def submit(self, count: int) -> list[str]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / "pilot.sbatch"
        path.write_text(self.script())
        out = [_run(["sbatch", "--parsable", str(path)]) for _ in range(count)]
        return [o.strip().split(";")[0] for o in out]

    def pilots(self) -> list[Pilot]:
        out = _run(["squeue", "--noheader", "--name", self.job_name, "--format", "%i %T"])
        found = []
        for line in out.splitlines():
            ref, _, state = line.strip().partition(" ")
            if state in _LIVE:
                found.append(Pilot(self.name, ref, _LIVE[state]))
        return found

    def cancel(self, refs: list[str]) -> None:
        if refs:
            _run(["scancel", *refs])

    def ended(self, refs: list[str]) -> dict[str, str]:
        """How ended pilots ended, by ``sacct`` (``{}`` where Slurm keeps no accounting)."""
        if not refs:
            return {}
        try:
            out = _run(["sacct", "--noheader", "--parsable2", "-X", "-o", "JobID,State",
                        "-j", ",".join(refs)])  # fmt: skip
        except SiteError:
            return {}
        return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)


def _run(argv: list[str]) -> str:
    """Run a Slurm command; its stdout.

    Raises:
        SiteError: it is not installed, fails, or takes over 30 s.
    """
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise SiteError(f"{argv[0]}: not found (is Slurm installed here?)") from None
    except subprocess.TimeoutExpired:
        raise SiteError(f"{argv[0]}: no answer in 30 s") from None
    if done.returncode != 0:
        first = (done.stderr.strip() or done.stdout.strip()).splitlines()[:1]
        raise SiteError(f"{argv[0]} failed: {first[0] if first else done.returncode}")
    return done.stdout
