"""What a task runs, and the Ray function that runs it on a worker.

A payload is a JSON object of one of two forms:

- ``{"callable": "module:function", "args": [...], "kwargs": {...}, "pythonpath": [...],
  "workdir": DIR}``: the function is imported on the worker (``pythonpath`` entries first on
  ``sys.path``) and called in ``DIR`` (if given, its prints go to ``attempt-N.out/.err``
  there); its return value is the result.
- ``{"command": [...], ...}``: a program, run as :mod:`idds.commands` describes.

Capability packages build their payloads on these forms.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from idds import secrets
from idds.commands import log_paths, run_command
from idds.errors import SpecError


def load_callable(path: str, pythonpath: list[str] | tuple[str, ...] = ()) -> Callable[..., Any]:
    """Import ``module:function`` (``pythonpath`` entries first on ``sys.path``).

    Raises:
        SpecError: the reference is malformed, the module does not import or has no such
            callable. The message is one line.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise SpecError(f"{path!r} is not of the form module:function")
    for entry in reversed(pythonpath):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code
        raise SpecError(f"module {module_name!r} does not import: {_one_line(exc)}") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if not callable(obj):
        raise SpecError(f"module {module_name!r} has no callable {attr!r}")
    return obj  # type: ignore[no-any-return]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class HeadChannel:
    """The mailbox between a head and its running attempts (one Ray actor per head).

    Workers post without waiting: that an attempt started (if it runs long enough to be seen
    running) and its progress reports. They may also ask their owner a question and wait for
    the answer (:meth:`ask`: an Optuna-style objective's ``suggest_*`` calls). The head drains
    it every fraction of a second, answers, and posts back which attempts should stop early
    (pruning). An async actor, so that a waiting question blocks no one else.
    """

    def __init__(self) -> None:
        self._started: list[tuple[str, str, float]] = []
        self._reports: list[tuple[str, int, float]] = []
        self._questions: list[tuple[int, str, Any]] = []
        self._answers: dict[int, asyncio.Future[Any]] = {}
        self._prune: set[str] = set()
        self._next = 0

    async def started(self, token: str, node: str, when: float) -> None:
        self._started.append((token, node, when))

    async def report(self, token: str, step: int, value: float) -> None:
        self._reports.append((token, step, value))

    async def should_prune(self, token: str) -> bool:
        return token in self._prune

    async def prune(self, tokens: list[str]) -> None:
        self._prune.update(tokens)

    async def ask(self, token: str, question: Any) -> Any:
        """Wait for the owner's answer to ``question`` (an ``{"error": ...}`` if it has none)."""
        self._next += 1
        future = asyncio.get_running_loop().create_future()
        self._answers[self._next] = future
        self._questions.append((self._next, token, question))
        return await future

    async def answer(self, answers: list[tuple[int, Any]]) -> None:
        for key, value in answers:
            future = self._answers.pop(key, None)
            if future is not None and not future.done():
                future.set_result(value)

    async def drain(self) -> tuple[list[Any], list[Any], list[Any]]:
        started, self._started = self._started, []
        reports, self._reports = self._reports, []
        questions, self._questions = self._questions, []
        return started, reports, questions


#: The name of the head's :class:`HeadChannel` in its Ray namespace (one per driver).
CHANNEL_NAME = "idds-head-channel"

_channels: dict[str, Any] = {}


def channel(name: str = CHANNEL_NAME) -> Any:
    """The head's :class:`HeadChannel` actor, looked up once per worker process."""
    if name not in _channels:
        import ray

        _channels[name] = ray.get_actor(name)
    return _channels[name]


#: Seconds after which a running payload's start is reported to its head.
START_NOTICE_AFTER_S = 0.5


class _StartWatcher:
    """One thread per worker process: tells the head about payloads that run long enough to
    be seen running. Short evaluations cost one assignment and no message."""

    def __init__(self) -> None:
        self.current: tuple[str, str, float] | None = None
        self._told: str | None = None
        threading.Thread(target=self._watch, daemon=True, name="idds-start-watcher").start()

    def _watch(self) -> None:
        while True:
            time.sleep(START_NOTICE_AFTER_S / 2)
            current = self.current
            if (
                current
                and current[0] != self._told
                and time.time() - current[2] > START_NOTICE_AFTER_S
            ):
                self._told = current[0]
                _tell_started(*current)


_watcher: _StartWatcher | None = None


def run_payload(payload: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    """Run a payload here and say how it went; never raises for the payload's own errors.

    Args:
        payload: what to run.
        token: the attempt; its start is told to the head's :class:`HeadChannel` if the
            payload still runs after :data:`START_NOTICE_AFTER_S`.

    Returns:
        ``{"ok": True, "value": ...}`` or ``{"ok": False, "error": traceback}``, with the
        node's host name and the start time.
    """
    global _watcher
    secrets.strip()  # other people's code runs here: no credentials in its environment
    started = time.time()
    node = socket.gethostname()
    if token is not None:
        if _watcher is None:
            _watcher = _StartWatcher()
        _watcher.current = (token, node, started)
    report: dict[str, Any] = {"node": node, "started": started}
    attempt = int(token.rsplit(":", 1)[1]) if token else 1
    try:
        if "command" in payload:
            report.update(run_command(payload, attempt, _Relay(token) if token else None))
        else:
            report.update(_run_callable(payload, attempt, token))
    finally:
        if _watcher is not None:
            _watcher.current = None
    return report


#: The payload being run by this worker process (what ``hpo.params()`` reads).
current: dict[str, Any] = {}


class Stopped(Exception):  # noqa: N818 - reads as what happened
    """Raised by a payload that stops early when its head advises it (pruning).

    ``last`` holds its last report, ``{"step": s, "value": v}``, recorded as its result.
    """

    def __init__(self, last: dict[str, Any] | None = None) -> None:
        super().__init__("stopped early")
        self.last = last or current.get("last_report", {})


def _run_callable(payload: dict[str, Any], attempt: int, token: str | None) -> dict[str, Any]:
    workdir = payload.get("workdir")
    with contextlib.ExitStack() as stack:
        if workdir:
            Path(workdir).mkdir(parents=True, exist_ok=True)
            out, err = (stack.enter_context(p.open("w")) for p in log_paths(workdir, attempt))
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
            stack.enter_context(contextlib.chdir(workdir))
        current.update(payload=payload, attempt=attempt, token=token)
        stack.callback(current.clear)
        stack.callback(
            lambda: current.get("reports") and outcome.update(reports=current["reports"])
        )
        outcome: dict[str, Any] = {}  # its progress reports go with it (the head may not
        # have read them all from its channel yet)
        try:
            fn = load_callable(payload["callable"], payload.get("pythonpath", ()))
            value = fn(*payload.get("args", ()), **payload.get("kwargs", {}))
        except Stopped as stop:  # stopped early on the head's advice (pruned)
            outcome.update(ok=True, value={"pruned": True, **stop.last})
        except Exception as exc:  # the payload's failure is a result to record, not ours to raise
            if type(exc).__name__ == "TrialPruned":  # Optuna's way to say the same
                last = current.get("last_report", {})
                outcome.update(ok=True, value={"pruned": True, **last})
            else:
                error = traceback.format_exc()
                print(error, file=sys.stderr)
                outcome.update(ok=False, error=error)
        else:
            outcome.update(ok=True, value=value)
        if current.get("reports"):
            outcome["reports"] = current["reports"]
    return outcome


class _Relay:
    """A command's reports to the head's channel, and its pruning advice back."""

    def __init__(self, token: str) -> None:
        self.token = token

    def report(self, step: int, value: float) -> None:
        channel().report.remote(self.token, step, value)

    def should_prune(self) -> bool:
        import ray

        return bool(ray.get(channel().should_prune.remote(self.token), timeout=30))


def _tell_started(token: str, node: str, started: float) -> None:
    try:
        channel().started.remote(token, node, started)
    except ValueError:  # the head is gone; its successor runs this point again anyway
        pass
