"""Command payloads: a program run in a work dir, the PanDA/iDDS HPO container convention.

The payload ``{"command": [...], "workdir": DIR, "input": {...}, "input_ds": [...],
"container": {"engine": "apptainer" | "docker", "image": IMAGE}, "timeout_s": N,
"output_required": true, "timed": true}`` runs the
command in ``DIR`` with the point in ``input.json`` (and the list of training files in
``input_ds.json``); the command writes ``output.json``, ``{"status": 0, "loss": <float>,
"message": "..."}``; a non-zero status, a non-zero exit or a missing/unreadable output is a
failed attempt. ``%IN`` and ``%OUT`` in the arguments become the two files' paths. Its
stdout and stderr go to ``attempt-N.out`` / ``attempt-N.err`` in ``DIR``; other files there
(checkpoints) are kept between attempts. A ``timed`` payload's result gets ``run_s``, the
command's run time (start to exit) measured here, beside what ``output.json`` holds.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol

INPUT, INPUT_DS, OUTPUT = "input.json", "input_ds.json", "output.json"


def log_paths(workdir: str | Path, attempt: int) -> tuple[Path, Path]:
    """Where an attempt's stdout and stderr are kept."""
    base = Path(workdir)
    return base / f"attempt-{attempt}.out", base / f"attempt-{attempt}.err"


def prepare(payload: dict[str, Any]) -> Path:
    """Create the work dir and write the inputs; remove an old output."""
    workdir = Path(payload["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / INPUT).write_text(json.dumps(payload.get("input", {})))
    if payload.get("input_ds") is not None:
        (workdir / INPUT_DS).write_text(json.dumps(payload["input_ds"]))
    (workdir / OUTPUT).unlink(missing_ok=True)
    return workdir


def container_command(container: dict[str, Any], workdir: Path, argv: list[str]) -> list[str]:
    """``argv`` wrapped to run in a container with the work dir mounted at the same path."""
    engine, image = container.get("engine", "apptainer"), container["image"]
    wd = str(workdir)
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if engine in ("apptainer", "singularity"):
        extra = ["--nv"] if gpus else []
        return [engine, "exec", *extra, "--bind", f"{wd}:{wd}", "--pwd", wd, image, *argv]
    if engine == "docker":
        extra = ["--gpus", f'"device={gpus}"'] if gpus else []
        user = f"{os.getuid()}:{os.getgid()}"
        return ["docker", "run", "--rm", *extra, "--user", user, "-v", f"{wd}:{wd}", "-w", wd,
                image, *argv]  # fmt: skip
    raise ValueError(f"unknown container engine {engine!r} (apptainer, singularity, docker)")


class Relay(Protocol):
    """Carries a command's progress reports to its head, and the head's advice back."""

    def report(self, step: int, value: float) -> None: ...

    def should_prune(self) -> bool: ...


def run_command(
    payload: dict[str, Any], attempt: int, relay: Relay | None = None
) -> dict[str, Any]:
    """Run a command payload; ``{"ok": True, "value": output}`` or ``{"ok": False, ...}``.

    While it runs, the reports it appends to ``reports.jsonl`` in its work dir (what
    ``hpo.report`` does in a script) are relayed to the head, and a ``PRUNE`` file is made
    there when the head advises stopping (what ``hpo.should_prune`` looks for). A command that
    then exits, with or without an error, is recorded as pruned at its last report.
    """
    workdir = prepare(payload)
    argv = [_substitute(a, workdir) for a in payload["command"]]
    if payload.get("container"):
        argv = container_command(payload["container"], workdir, argv)
    out_path, err_path = log_paths(workdir, attempt)
    env = {**os.environ, "IDDS_TASK_DIR": str(workdir), "IDDS_INPUT": str(workdir / INPUT)}
    with out_path.open("wb") as out, err_path.open("wb") as err:
        try:
            proc = subprocess.Popen(
                argv, cwd=workdir, stdout=out, stderr=err, env=env,
                start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
        except OSError as exc:
            return {"ok": False, "error": f"cannot run {argv[0]!r}: {exc.strerror}"}
        watch = _Watch(workdir, relay)
        start = time.perf_counter()
        code = watch.wait(proc, payload.get("timeout_s"))
        run_s = time.perf_counter() - start
        if code is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            limit = payload["timeout_s"]
            return {"ok": False, "kind": "timeout", "error": f"timed out after {limit:g} s",
                    **watch.reports()}  # fmt: skip
    if watch.pruned and watch.last is not None:
        outcome = {"ok": True, "value": {"pruned": True, **watch.last}}
    elif code != 0:
        outcome = {"ok": False, "error": f"command exited with {code}: {_tail(err_path)}"}
    else:
        outcome = _read_output(workdir, payload.get("output_required", True))
    if payload.get("timed") and outcome["ok"]:
        outcome["value"] = _with_run_time(outcome["value"], run_s)
    return {**outcome, **watch.reports()}


def _with_run_time(value: Any, run_s: float) -> dict[str, Any]:
    """A command's output with its measured run time (a bare value becomes ``values``); the
    measurement replaces any ``run_s`` the command wrote itself."""
    output = value if isinstance(value, dict) else {"values": value}
    return {**output, "run_s": run_s}


REPORTS, PRUNE = "reports.jsonl", "PRUNE"


class _Watch:
    """Follows a running command's reports file; relays reports and pruning advice."""

    def __init__(self, workdir: Path, relay: Relay | None) -> None:
        self.path = workdir / REPORTS
        self.prune_flag = workdir / PRUNE
        self.path.unlink(missing_ok=True)
        self.prune_flag.unlink(missing_ok=True)
        self.relay = relay
        self.seen: list[tuple[int, float]] = []
        self.last: dict[str, Any] | None = None
        self.pruned = False
        self._offset = 0

    def wait(self, proc: subprocess.Popen[bytes], timeout: float | None) -> int | None:
        """The exit code, or None past the timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                code = proc.wait(timeout=0.25)
            except subprocess.TimeoutExpired:
                self._follow()
                if deadline is not None and time.monotonic() > deadline:
                    return None
                continue
            self._follow()
            return code

    def _follow(self) -> None:
        if not self.path.exists():
            return
        with self.path.open() as f:
            f.seek(self._offset)
            lines = f.readlines()
            self._offset = f.tell()
        for line in lines:
            try:
                item = json.loads(line)
                step, value = int(item["step"]), float(item["value"])
            except (ValueError, KeyError, TypeError):
                continue  # a partial or foreign line
            self.seen.append((step, value))
            self.last = {"step": step, "value": value}
            if self.relay is not None:
                self.relay.report(step, value)
        if self.relay is not None and self.seen and not self.pruned and self.relay.should_prune():
            self.pruned = True
            self.prune_flag.touch()

    def reports(self) -> dict[str, Any]:
        return {"reports": self.seen} if self.seen else {}


def _substitute(arg: str, workdir: Path) -> str:
    return arg.replace("%IN", str(workdir / INPUT)).replace("%OUT", str(workdir / OUTPUT))


def _read_output(workdir: Path, required: bool) -> dict[str, Any]:
    path = workdir / OUTPUT
    try:
        output = json.loads(path.read_text())
    except FileNotFoundError:
        if not required:  # a workflow step that succeeds by its exit code alone
            return {"ok": True, "value": None}
        return {"ok": False, "error": f"the command wrote no {OUTPUT}"}
    except json.JSONDecodeError as exc:
        return {"ok": False, "error": f"{OUTPUT} is not JSON: {exc}"}
    if isinstance(output, dict) and output.get("status", 0) != 0:
        message = output.get("message", "")
        return {"ok": False, "error": f"{OUTPUT} says status {output['status']}: {message}"}
    return {"ok": True, "value": output}


def _tail(path: Path, lines: int = 5) -> str:
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) if text else "(no stderr)"


def _die_with_parent() -> None:
    """In the child: be killed if the worker running us dies (Linux), so a cancelled or
    timed-out attempt leaves no orphan behind."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
