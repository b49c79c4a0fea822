"""Live mode: the orchestrator with real processing tasks run through the scheduling core
(one task per file, on Ray) and the tape emulator on an accelerated wall clock.

A carousel is an owner of kind ``carousel`` (:class:`Carousel`); :class:`CarouselRun` is the
:class:`~idds.dispatch.TaskOwner` the dispatcher drives. A file's processing is task number
``file``; its retries are the core's attempts, so a failed attempt is retried while the file
stays on disk (it is never staged again).

Its staging is logged on its record (:mod:`carousel.journal`), so that when its head stops,
:func:`resume_live` (``idds carousel resume NAME``, or an ``idds serve`` head) goes on with it:
no file is asked for twice, none is lost.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from carousel.catalog import Catalog, build_catalog
from carousel.clock import WallClock
from carousel.journal import KEY, Journal, JournalledDM, JournalledOrchestrator, outstanding, replay
from carousel.orchestrator import Processing
from carousel.policies import make_policy
from carousel.rucio import RucioDM, RucioSite
from carousel.simulate import CampaignResult, collect
from carousel.sizes import format_size
from carousel.spec import CampaignSpec
from carousel.tape import TapeEmulator, TapeLibraries, make_tape
from carousel.tapeplayer import TapePlayer
from idds.config import Settings
from idds.dispatch import Dispatcher, TaskOwner
from idds.errors import Exists, IddsError, SpecError
from idds.handle import OwnerHandle
from idds.owners import OwnerState
from idds.tasks import FINAL, TaskSpec, TaskState

KIND = "carousel"
DEFAULT_CALLABLE = "carousel.live:process_file"
#: What a carousel's record keeps beside its campaign's fields.
RUN_KEYS = frozenset({"policy", "mode", "speedup", "pythonpath", "result", "curve", KEY})


def process_file(name: str, size: float, seconds: float, failure: float = 0.0) -> dict[str, Any]:
    """The built-in processing of one staged file: works ``seconds`` of wall time; fails
    with probability ``failure`` (the campaign's processing failure rate).

    Raises:
        RuntimeError: the attempt failed (the core retries it).
    """
    time.sleep(seconds)
    if random.random() < failure:
        raise RuntimeError(f"processing of {name} failed")
    return {"file": name, "bytes": size}


class Carousel(OwnerHandle):
    """A carousel's record: created for one live run, which holds it to its end.

    Args:
        name: the carousel's name (its campaign's).
        settings: database and Ray.
    """

    kind = KIND
    noun = "carousel"
    command = "carousel"

    def __init__(self, name: str, *, settings: Settings) -> None:
        self._name = name
        self.settings = settings
        self._engine = None

    @property
    def name(self) -> str:
        return self._name

    def create(self, spec: CampaignSpec, policy: str, mode: str = "live", **run: Any) -> int:
        """Record the carousel, its campaign, policy and mode (``live``, ``simulated``), and
        what a live run needs to go on (``run``: its speedup and pythonpath); returns its id.

        Raises:
            Exists: a carousel of that name exists already.
        """
        staging: dict[str, Any] = {KEY: []} if mode == "live" else {}
        try:
            return self.create_owner(
                {**spec.to_json(), "policy": policy, "mode": mode, **run, **staging}
            )
        except Exists:
            raise Exists(
                f"a carousel named {self.name!r} exists; resume it with `idds carousel resume "
                f"{self.name}`, or choose another name"
            ) from None

    def recorded(self) -> tuple[int, CampaignSpec, dict[str, Any]]:
        """A live carousel to go on with: its id, campaign and record.

        Raises:
            NotFound: no carousel of that name.
            SpecError: it is over, or was not run live with a staging log.
            IddsError: it is a simulation, being recorded (``simulate --save``).
        """
        record = self.record()
        stored = record.spec
        if record.state is not OwnerState.ACTIVE:
            raise SpecError(f"carousel {self.name!r} is {record.state}: nothing to resume")
        if stored.get("mode") == "simulated":  # being recorded by `simulate --save` right now
            raise IddsError(f"carousel {self.name!r} is a simulation being recorded")
        if stored.get("mode") != "live" or KEY not in stored:
            raise SpecError(f"carousel {self.name!r} was not run live with a staging log: "
                            "it cannot be resumed")  # fmt: skip
        campaign = {k: v for k, v in stored.items() if k not in RUN_KEYS}
        return record.id, CampaignSpec.from_mapping(campaign, source=self.name), stored

    def record_result(
        self, result: CampaignResult, *, cancelled: bool, curve: dict[str, Any] | None = None
    ) -> CampaignResult:
        """Record how its run ended: the metrics (with the processing retries the core
        counted, attempts beyond the first), its disk curve and file timeline
        (:func:`carousel.store.curve`) and its final state. Returns the metrics."""
        owner_id = self.owner_id
        if self.records.tasks(owner_id):  # live: the core counted the processing retries
            result = replace(result, processing_retries=self.records.retries(owner_id))
        summary = result.summary()
        state = OwnerState.CANCELLED if cancelled else OwnerState.FINISHED
        extra = {"result": summary, "curve": curve or {}}
        self.records.update_spec(owner_id, lambda s: {**s, **extra}, state=state)
        return result


class _Queue(Processing):
    """Processing through the core: files wait here until the dispatcher asks for tasks."""

    def __init__(self) -> None:
        self.ready: deque[int] = deque()

    def submit(self, files: list[int]) -> None:
        self.ready.extend(files)


class CarouselRun(TaskOwner):
    """A carousel as the dispatcher drives it.

    Args:
        spec: the campaign.
        policy: the policy's name.
        owner_id: the carousel's owner row.
        speedup: simulated seconds per wall-clock second for the tape and processing times.
        pythonpath: where a user's processing callable is imported from.
        progress: show a progress bar of files processed (with the bytes on disk).
        rucio: stage through this Rucio (the tape emulator plays its transfers where
            ``rucio.player`` says so); ``None``: the tape emulator is the data management.
        snapshot: called with the run's disk curve and file timeline
            (:func:`carousel.store.curve`) every ``snapshot_s`` wall-clock seconds, to record
            them while it runs.
        journal: log its staging there (:mod:`carousel.journal`); with events in it, go
            on from where they leave it.
        tasks: the core's tasks of a run that goes on, by number (file), with their states.
    """

    def __init__(
        self,
        spec: CampaignSpec,
        policy: str,
        owner_id: int,
        *,
        speedup: float,
        catalog: Catalog | None = None,
        pythonpath: list[str] | None = None,
        progress: bool = False,
        rucio: RucioSite | None = None,
        snapshot: Callable[[dict[str, Any]], None] | None = None,
        snapshot_s: float = 2.0,
        journal: Journal | None = None,
        tasks: dict[int, TaskState] | None = None,
    ) -> None:
        self.spec, self.owner_id, self.speedup = spec, owner_id, speedup
        self.snapshot, self.snapshot_s = snapshot, snapshot_s
        self._next_snapshot = time.monotonic() + snapshot_s
        self.parallel = spec.processing.slots
        self.catalog = catalog or build_catalog(spec)
        self.clock = WallClock(speedup)
        self.tape = make_tape(self.catalog, spec.tape_libraries, self.clock, seed=spec.seed + 1)
        self.queue = _Queue()
        chosen = make_policy(spec, spec.policy(policy), self.catalog)
        buffer = spec.buffer if chosen.uses_buffer else None
        self.rucio, self.dm, self.player = rucio, self._dm(rucio, chosen.name), None
        if rucio is not None and rucio.player:
            self.player = TapePlayer(self.tape, self.catalog, rucio.client, rse=rucio.rse)
        self._next_poll = self._put_off_until = 0.0
        self._handed = self._heard = 0  # tasks handed to the core, and heard back
        self._cpus: int | None = None
        self.journal = journal
        dm = self.dm if journal is None else JournalledDM(self.dm, journal, self.clock)
        self.orchestrator = JournalledOrchestrator(
            self.catalog, dm, chosen, self.queue, self.clock, buffer
        )
        self.pythonpath = pythonpath or []
        self.cancelled = False
        self._rng = random.Random(spec.seed + 2)
        self._bar = _progress_bar(spec.name, len(self.catalog)) if progress else None
        if journal is None:
            self.orchestrator.start()
        else:
            self._go_on(journal, tasks or {})

    def _go_on(self, journal: Journal, tasks: dict[int, TaskState]) -> None:
        """Replay the log, take up what the data management holds, and hear the outcomes of
        processing the core recorded after the log's last event."""
        orch = self.orchestrator
        orch.journal = journal
        unmade = replay(orch, journal.events)
        for f in sorted(tasks):  # a file with a task was staged, logged or not
            if math.isnan(orch.staged_at[f]):
                orch.on_staged(f)
        requested, staged = outstanding(orch)
        never_made = {f for files in unmade for f in files}
        requested = [f for f in requested if f not in never_made]
        self.clock.restart(orch.clock.now)
        orch.dm.attach(orch)
        if requested or staged:
            self.dm.reattach(requested, staged)
        for files in unmade:
            orch.dm.request_staging(files)
        self.queue.ready = deque(f for f in self.queue.ready if f not in tasks)
        self._handed = sum(state not in FINAL for state in tasks.values())
        for f, state in sorted(tasks.items()):
            if state in FINAL and math.isnan(orch.processed_at[f]):
                orch.on_processed(f, state is TaskState.SUCCEEDED)
        if self._bar is not None:
            self._bar.update(sum(not math.isnan(t) for t in orch.processed_at))
        journal.commit()

    def _dm(self, rucio: RucioSite | None, policy: str) -> TapeEmulator | TapeLibraries | RucioDM:
        if rucio is None:
            return self.tape
        return RucioDM(self.catalog, rucio.client, rse=rucio.rse, source=rucio.source,
                       account=rucio.account, max_stuck=1 if rucio.player else 3,
                       dataset_rules=policy != "file-level")  # fmt: skip

    def _tick(self) -> None:
        """Run the emulator's events due; record a snapshot, and poll Rucio, when their
        intervals have passed."""
        self.clock.catch_up()
        if self.journal is not None:
            self.journal.commit()
        if self.snapshot is not None and time.monotonic() >= self._next_snapshot:
            from carousel.store import curve

            self._next_snapshot = time.monotonic() + self.snapshot_s
            self.snapshot(curve(self.orchestrator))
        if self.rucio is None or time.monotonic() < self._next_poll:
            return
        self._next_poll = time.monotonic() + self.rucio.poll_s
        if self.player is not None:
            self.player.pump()
        if self._waiting() >= 2 * self._width() and time.monotonic() < self._put_off_until:
            return  # processing has a round of work waiting: what Rucio would say can wait
        self._put_off_until = time.monotonic() + self.rucio.poll_s * self.rucio.put_off
        self.dm.poll()
        if self.journal is not None:
            self.journal.commit()

    def _waiting(self) -> int:
        """Staged files whose processing is not over (queued here, or tasks in the core)."""
        return len(self.queue.ready) + self._handed - self._heard

    def _width(self) -> int:
        """How many files are processed at once: the slots, or the Ray cluster's CPUs."""
        if self._cpus is None:
            import ray

            cpus = ray.cluster_resources().get("CPU") if ray.is_initialized() else None
            self._cpus = int(cpus or self.parallel)
        return max(1, min(self.parallel, self._cpus))

    def new_tasks(self, free: int) -> list[TaskSpec]:
        self._tick()
        ready = self.queue.ready
        out: list[TaskSpec] = []
        while ready and len(out) < free and not self.cancelled:
            out.append(self._task(ready.popleft()))
        self._handed += len(out)
        return out

    def _task(self, f: int) -> TaskSpec:
        proc = self.spec.processing
        name, size = self.catalog.names[f], self.catalog.sizes[f]
        if proc.callable:
            payload = {"callable": proc.callable, "args": [name, size]}
        else:
            low, high = proc.jitter
            seconds = proc.time_s * size / proc.time_per * self._rng.uniform(low, high)
            args = [name, size, seconds / self.speedup, proc.failure]
            payload = {"callable": DEFAULT_CALLABLE, "args": args}
        payload["pythonpath"] = self.pythonpath
        return TaskSpec(
            number=f, kind="carousel.process", payload=payload, max_attempts=proc.max_attempts
        )

    def on_final(self, number: int, state: TaskState, result: Any, error: str | None) -> None:
        self._heard += 1
        self._tick()
        self.orchestrator.on_processed(number, state is TaskState.SUCCEEDED)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(disk=format_size(self.orchestrator.on_disk), refresh=False)

    def done(self) -> bool:
        self._tick()
        return self.cancelled or self.orchestrator.finished

    def on_cancel(self) -> None:
        self.cancelled = True

    def close(self) -> None:
        """Close the progress bar."""
        if self._bar is not None:
            self._bar.close()


def _progress_bar(name: str, total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="file", leave=True)


def run_live(
    spec: CampaignSpec,
    settings: Settings,
    *,
    policy: str = "file-level",
    speedup: float = 3600.0,
    base_dir: Path | None = None,
    backoff_s: float = 1.0,
    progress: bool = False,
    rucio: RucioSite | None = None,
) -> CampaignResult:
    """Create carousel ``spec.name`` and run it through the core to its end.

    Args:
        spec: the campaign.
        settings: database and Ray.
        policy: the policy's name.
        speedup: simulated seconds per wall-clock second.
        base_dir: the campaign file's directory (a user's callable is imported from there).
        backoff_s: the core's delay before a failed processing attempt's retry.
        progress: show a progress bar.
        rucio: stage through this Rucio instead of the tape emulator alone.

    Returns:
        Its metrics (times in simulated seconds); the processing retries are the core's.

    Raises:
        SpecError: the campaign does not validate, its name is taken, or this is service
            mode (``IDDS_URL``); nothing is written.
        IddsError: another head holds the carousel.
    """
    from idds.runtime import ensure_ray

    if speedup <= 0:
        raise SpecError(f"speedup must be > 0, got {speedup}")
    catalog = build_catalog(spec)
    make_policy(spec, spec.policy(policy), catalog)  # bad input fails before anything is written
    carousel = Carousel(spec.name, settings=settings)
    if carousel.remote:
        raise SpecError("a live carousel runs in this process, on a database: unset IDDS_URL")
    ensure_ray(settings.ray_address)
    pythonpath = [str(base_dir)] if base_dir else []
    owner_id = carousel.create(spec, policy, speedup=speedup, pythonpath=pythonpath)
    run = dict(policy=policy, speedup=speedup, catalog=catalog, pythonpath=pythonpath,
               progress=progress, rucio=rucio)  # fmt: skip
    return _drive(carousel, owner_id, spec, run, backoff_s, events=None)


def resume_live(
    name: str,
    settings: Settings,
    *,
    backoff_s: float = 1.0,
    progress: bool = False,
    rucio: RucioSite | None = None,
) -> CampaignResult:
    """Go on with live carousel ``name`` whose head stopped, to its end: its staging log is
    replayed, the data management's outstanding requests are taken up (none is made again),
    and the processing the core recorded meanwhile is heard.

    Args:
        name: the carousel.
        settings: database and Ray.
        backoff_s: the core's delay before a failed processing attempt's retry.
        progress: show a progress bar.
        rucio: the Rucio it stages through (``None``: the tape emulator, as it was run).

    Raises:
        NotFound: no carousel of that name.
        SpecError: it is over, or cannot be resumed.
        IddsError: another live head holds it.
    """
    from idds.runtime import ensure_ray

    carousel = Carousel(name, settings=settings)
    owner_id, spec, stored = carousel.recorded()
    ensure_ray(settings.ray_address)
    run = dict(policy=stored["policy"], speedup=float(stored.get("speedup", 3600.0)),
               pythonpath=list(stored.get("pythonpath", [])), progress=progress,
               rucio=rucio)  # fmt: skip
    return _drive(carousel, owner_id, spec, run, backoff_s, events=True)


def _drive(
    carousel: Carousel, owner_id: int, spec: CampaignSpec, run: dict[str, Any],
    backoff_s: float, *, events: bool | None,
) -> CampaignResult:  # fmt: skip
    """Hold the carousel and run it to its end (``events``: go on from its log, read once
    it is held); record how it ended."""
    settings = carousel.settings
    dispatcher = Dispatcher(carousel.engine, settings=settings, backoff_s=backoff_s)
    started = time.perf_counter()
    with carousel.held(dispatcher, [owner_id]):
        records = carousel.records
        recorded = records.owner_by_id(owner_id)
        if recorded.state is not OwnerState.ACTIVE:
            raise SpecError(f"carousel {carousel.name!r} is {recorded.state}: nothing to resume")
        journal = Journal(records, owner_id, recorded.spec.get(KEY, []) if events else [])
        tasks = {t.number: t.state for t in records.tasks(owner_id)} if events else {}

        def snapshot(curve_now: dict[str, Any]) -> None:
            records.update_spec(owner_id, lambda s: {**s, "curve": curve_now})

        live = CarouselRun(spec, owner_id=owner_id, snapshot=snapshot, journal=journal,
                           tasks=tasks, **run)  # fmt: skip
        try:
            dispatcher.run([live])
        finally:
            live.close()
        result = collect(live.orchestrator, live.tape, time.perf_counter() - started)
        if isinstance(live.dm, RucioDM):
            result = replace(result, dm_stats=_rucio_stats(live.dm))
        from carousel.store import curve

        return carousel.record_result(
            result, cancelled=live.cancelled, curve=curve(live.orchestrator)
        )


def _rucio_stats(dm: RucioDM) -> dict[str, float]:
    return {"polls": dm.polls, "poll_calls": dm.poll_calls, "calls": dm.calls,
            "calls_per_file_poll": dm.calls_per_file_poll}  # fmt: skip
