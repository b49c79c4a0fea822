"""A tape library emulated on a clock: drives, robots, cartridges, mounts, positioning,
throughput, recall failures and retries, a staging queue per cartridge, and mount rules.

Defaults are the published figures of the reference campaign (README: Data carousel):
LTO-9 load 16 s, unload 56 s, locate 65 s mean from the load point (so 130 s end to end,
proportional to distance), rewind 62/124/186 s by bytes read in the mount, 360 MB/s per
drive (CTA), CTA's mount criteria.
"""

from __future__ import annotations

import bisect
import heapq
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from carousel.catalog import Catalog
from carousel.clock import SimClock
from carousel.dm import DataManagement, FileState, StagingListener
from carousel.spec import TapeSpec


@dataclass
class _Drive:
    number: int
    cartridge: int = -1
    head: float = 0.0
    read_in_mount: float = 0.0
    deferred: list[int] = field(default_factory=list)  # failed reads, retried on a later mount


@dataclass
class TapeStats:
    """What the library did: mounts, reads, failures, and drive time."""

    mounts: int = 0
    reads: int = 0
    read_failures: int = 0
    lost: int = 0
    drive_busy_s: float = 0.0  # robot fetch to unload end, summed over drives
    bytes_read: float = 0.0


class TapeEmulator(DataManagement):
    """A tape library on ``clock`` serving staging requests for the files of ``catalog``.

    A cartridge is mounted on a free drive when its queue holds at least
    ``mount_min_bytes`` or ``mount_min_files``, or its oldest request has waited
    ``mount_max_age_s`` (oldest request first). A mounted drive reads its cartridge's queue in
    position order (forward, then back to the lowest position left), taking newly arrived
    requests for it as it goes, and unmounts when the queue is empty. A failed read is
    retried on a later mount; after ``max_read_attempts`` failures the file is lost.

    Args:
        catalog: the files and their places on tape.
        spec: the library's figures.
        clock: the clock it runs on (simulated or accelerated wall clock).
        seed: for recall failures.
    """

    def __init__(self, catalog: Catalog, spec: TapeSpec, clock: SimClock, *, seed: int) -> None:
        self.catalog = catalog
        self.spec = spec
        self.clock = clock
        self.stats = TapeStats()
        self._rng = random.Random(seed)
        self._state = [FileState.ON_TAPE] * len(catalog)
        self._attempts = [0] * len(catalog)
        self._queue: dict[int, list[tuple[float, int]]] = {}  # cartridge -> (position, file)
        self._queued_bytes: dict[int, float] = {}
        self._since: dict[int, float] = {}  # when the cartridge's queue last became non-empty
        self._busy: set[int] = set()  # cartridges mounted or on their way
        self._free = [_Drive(n) for n in range(spec.drives)]
        self._robots = [0.0] * spec.robots  # when each robot is next free (a heap)
        self._wakes: set[int] = set()
        self._locate_per_byte = 2 * spec.locate_mean_s / spec.cartridge_capacity
        self._log = os.environ.get("IDDS_CAROUSEL_TAPE_LOG")

    # --- the interface ----------------------------------------------------------------------

    def request_staging(self, files: Sequence[int]) -> None:
        state, cat = self._state, self.catalog
        for f in files:
            if state[f] is not FileState.ON_TAPE:
                raise ValueError(f"{cat.names[f]} is already {state[f]}")
            state[f] = FileState.REQUESTED
            self._enqueue(f)
        self._journal("request", files)
        self._mount_what_may()

    def reattach(self, requested: Sequence[int], staged: Sequence[int]) -> None:
        """The library outlived the carousel's head (it stands for a remote one): the files
        on disk are still there, the requests still queued. Nothing is read twice for the
        carousel's asking; a read the head's death cut short is made again. Where the library
        keeps a journal, a request it never received (the head died between recording it and
        making it) is made now, as Rucio's rules are looked up and a missing one asked for."""
        heard = self._journaled("request")
        for f in staged:
            self._state[f] = FileState.STAGED
        for f in requested:
            self._state[f] = FileState.REQUESTED
            self._enqueue(f)
        self._journal("reattach", [f for f in requested if heard is None or f in heard])
        if heard is not None:
            self._journal("request", [f for f in requested if f not in heard])
        self._mount_what_may()

    def _journaled(self, event: str) -> set[int] | None:
        """The files the journal records ``event`` for; None where there is no journal."""
        if not self._log:
            return None
        if not os.path.exists(self._log):
            return set()
        index = self.catalog.index
        with open(self._log) as lines:
            entries = [json.loads(line) for line in lines]
        return {index[e["file"]] for e in entries if e["event"] == event and e["file"] in index}

    def _journal(self, event: str, files: Sequence[int]) -> None:
        """Append one line per file to the file ``IDDS_CAROUSEL_TAPE_LOG`` names, where it
        is set: an audit of what the library was asked, across the carousel's heads."""
        if not self._log or not files:
            return
        with open(self._log, "a") as out:
            out.writelines(
                json.dumps({"event": event, "file": self.catalog.names[f]}) + "\n" for f in files
            )

    def release(self, file: int) -> None:
        if self._state[file] is not FileState.STAGED:
            raise ValueError(f"{self.catalog.names[file]} is {self._state[file]}, not staged")
        self._state[file] = FileState.RELEASED

    def state(self, file: int) -> FileState:
        return self._state[file]

    def queued_files(self) -> int:
        """Requests waiting in cartridge queues (not being read)."""
        return sum(len(q) for q in self._queue.values())

    # --- queues and mounts -----------------------------------------------------------------

    def _enqueue(self, f: int) -> None:
        cart = self.catalog.cartridges[f]
        queue = self._queue.setdefault(cart, [])
        if not queue:
            self._since[cart] = self.clock.now
        bisect.insort(queue, (self.catalog.positions[f], f))
        self._queued_bytes[cart] = self._queued_bytes.get(cart, 0.0) + self.catalog.sizes[f]

    def _eligible(self, cart: int, now: float) -> bool:
        spec = self.spec
        return (
            self._queued_bytes[cart] >= spec.mount_min_bytes
            or len(self._queue[cart]) >= spec.mount_min_files
            or now >= self._since[cart] + spec.mount_max_age_s  # the wake-up's own sum
        )

    def _mount_what_may(self, _: object = None) -> None:
        """Mount eligible cartridges (oldest request first) on free drives; wake up later
        for those that are not eligible yet."""
        if not self._free:
            return  # called again when a drive frees
        now = self.clock.now
        waiting = [c for c, q in self._queue.items() if q and c not in self._busy]
        waiting.sort(key=lambda c: (self._since[c], c))
        for cart in waiting:
            if not self._free:
                return
            if self._eligible(cart, now):
                self._mount(cart, self._free.pop())
            elif cart not in self._wakes:
                self._wakes.add(cart)
                self.clock.at(self._since[cart] + self.spec.mount_max_age_s, self._wake, cart)

    def _wake(self, cart: int) -> None:
        self._wakes.discard(cart)
        self._mount_what_may()

    def _robot(self, at: float) -> float:
        """Reserve the first free robot for one move starting no earlier than ``at``;
        returns when the move ends."""
        start = max(at, heapq.heappop(self._robots))
        end = start + self.spec.robot_move_s
        heapq.heappush(self._robots, end)
        return end

    def _mount(self, cart: int, drive: _Drive) -> None:
        self._busy.add(cart)
        self.stats.mounts += 1
        drive.cartridge, drive.head, drive.read_in_mount = cart, 0.0, 0.0
        loaded = self._robot(self.clock.now) + self.spec.load_s
        self.stats.drive_busy_s -= self.clock.now
        self.clock.at(loaded, self._read_next, drive)

    # --- reading ---------------------------------------------------------------------------

    def _read_next(self, drive: _Drive) -> None:
        queue = self._queue[drive.cartridge]
        if not queue:
            self._unmount(drive)
            return
        i = bisect.bisect_left(queue, (drive.head - 1.0, -1))  # 1 byte: float sums
        position, f = queue.pop(i if i < len(queue) else 0)
        size = self.catalog.sizes[f]
        self._queued_bytes[drive.cartridge] -= size
        spec = self.spec
        seconds = (
            abs(position - drive.head) * self._locate_per_byte
            + size / spec.drive_rate
            + spec.file_overhead_s
        )
        drive.head = position + size
        drive.read_in_mount += size
        self.stats.bytes_read += size
        self.clock.at(self.clock.now + seconds, self._read_done, (drive, f))

    def _read_done(self, arg: tuple[_Drive, int]) -> None:
        drive, f = arg
        self.stats.reads += 1
        if self._rng.random() < self.spec.read_failure:
            self._read_failed(drive, f)
        else:
            self._state[f] = FileState.STAGED
            if self.listener is not None:
                self.listener.on_staged(f)
        self._read_next(drive)

    def _read_failed(self, drive: _Drive, f: int) -> None:
        self.stats.read_failures += 1
        self._attempts[f] += 1
        lost = self._attempts[f] >= self.spec.max_read_attempts
        if lost:
            self.stats.lost += 1
            self._state[f] = FileState.LOST
        else:
            drive.deferred.append(f)
        if self.listener is not None:
            self.listener.on_staging_failed(f, lost)

    def _unmount(self, drive: _Drive) -> None:
        spec = self.spec
        low, high = spec.rewind_thresholds
        read = drive.read_in_mount
        rewind = spec.rewind_s[0] if read < low else spec.rewind_s[1 if read < high else 2]
        unloaded = self.clock.now + rewind + spec.unload_s
        back = self._robot(unloaded)
        self.stats.drive_busy_s += unloaded
        self.clock.at(unloaded, self._drive_free, drive)
        self.clock.at(back, self._cartridge_back, (drive.cartridge, drive.deferred))
        drive.deferred = []

    def _drive_free(self, drive: _Drive) -> None:
        drive.cartridge = -1
        self._free.append(drive)
        self._mount_what_may()

    def _cartridge_back(self, arg: tuple[int, list[int]]) -> None:
        cart, deferred = arg
        self._busy.discard(cart)
        for f in deferred:
            self._enqueue(f)
        self._mount_what_may()


class TapeLibraries(DataManagement):
    """Several tape libraries, one :class:`TapeEmulator` each, on one clock: a file is
    staged by its own library (``catalog.libraries``).

    Attributes:
        stats: the libraries' figures summed.
        spec: the first library's figures, with the drives of all of them.
    """

    def __init__(self, catalog: Catalog, specs: Sequence[TapeSpec], clock: SimClock, *,
                 seed: int) -> None:  # fmt: skip
        self.catalog, self.clock = catalog, clock
        self.libraries = [TapeEmulator(catalog, s, clock, seed=seed + k) for k, s in
                          enumerate(specs)]  # fmt: skip
        self.spec = specs[0].model_copy(update={"drives": sum(s.drives for s in specs)})

    @property
    def stats(self) -> TapeStats:
        out = TapeStats()
        for lib in self.libraries:
            for name in vars(out):
                setattr(out, name, getattr(out, name) + getattr(lib.stats, name))
        return out

    def attach(self, listener: StagingListener) -> None:
        super().attach(listener)
        for lib in self.libraries:
            lib.attach(listener)

    def _of(self, f: int) -> TapeEmulator:
        return self.libraries[self.catalog.libraries[f]]

    def request_staging(self, files: Sequence[int]) -> None:
        for f in files:
            if self._of(f).state(f) is not FileState.ON_TAPE:
                raise ValueError(f"{self.catalog.names[f]} is already {self._of(f).state(f)}")
        by_library: dict[int, list[int]] = {}
        for f in files:
            by_library.setdefault(self.catalog.libraries[f], []).append(f)
        for k, fs in by_library.items():
            self.libraries[k].request_staging(fs)

    def release(self, file: int) -> None:
        self._of(file).release(file)

    def reattach(self, requested: Sequence[int], staged: Sequence[int]) -> None:
        for k, lib in enumerate(self.libraries):
            lib.reattach([f for f in requested if self.catalog.libraries[f] == k],
                         [f for f in staged if self.catalog.libraries[f] == k])  # fmt: skip

    def state(self, file: int) -> FileState:
        return self._of(file).state(file)


def make_tape(
    catalog: Catalog, specs: Sequence[TapeSpec], clock: SimClock, *, seed: int
) -> TapeEmulator | TapeLibraries:
    """The campaign's tape: one emulator, or one per library."""
    if len(specs) == 1:
        return TapeEmulator(catalog, specs[0], clock, seed=seed)
    return TapeLibraries(catalog, specs, clock, seed=seed)
