"""Policies: what to stage next, when a staged file may be processed, when to release it.

- ``file-level`` (ours): stage in tape order, a few cartridges at a time, within the buffer;
  process each file as soon as it is on disk; release it as soon as its processing succeeds.
- ``dataset-level`` (the baseline): request every dataset at once, whatever the buffer (its
  peak is the buffer it needs); process a dataset's files when all of them are on disk;
  release them when all of them are processed.
- ``sliding-window``: the baseline with at most ``window`` datasets staged at a time (and
  within the buffer): the next dataset is requested when one is released.
"""

from __future__ import annotations

import abc
from collections import deque

from carousel.catalog import Catalog
from carousel.sizes import format_size
from carousel.spec import CampaignSpec, PolicySpec
from idds.errors import SpecError


class Policy(abc.ABC):
    """The decisions of one policy. The orchestrator keeps the books; the policy chooses.

    Each method is called from the orchestrator's thread only.
    """

    name: str
    uses_buffer = True  # False: the policy requests regardless of the buffer budget

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    @abc.abstractmethod
    def next_requests(self, free: float | None) -> list[int]:
        """Files to request now, whose bytes add up to at most ``free`` (``None``: no limit)."""

    @abc.abstractmethod
    def on_staged(self, file: int) -> list[int]:
        """``file`` is on disk: the files that may be processed now."""

    @abc.abstractmethod
    def on_lost(self, file: int) -> list[int]:
        """``file`` will never arrive: the files that may be processed now."""

    @abc.abstractmethod
    def on_processed(self, file: int) -> list[int]:
        """``file``'s processing is over: the files to release now."""

    def check_buffer(self, buffer: float | None) -> None:
        """Raise :class:`SpecError` if the campaign cannot run within ``buffer`` bytes."""
        if buffer is not None and max(self.catalog.sizes) > buffer:
            f = max(range(len(self.catalog)), key=self.catalog.sizes.__getitem__)
            raise SpecError(
                f"file {self.catalog.names[f]} ({format_size(self.catalog.sizes[f])}) cannot "
                f"fit in the buffer of {format_size(buffer)}"
            )


class FileLevel(Policy):
    """Stage ``active`` cartridges at a time, in position order, round-robin between them,
    so that mounted drives keep streaming while released bytes come back as new requests.
    Process on arrival; release on success."""

    name = "file-level"

    def __init__(self, catalog: Catalog, active: int) -> None:
        super().__init__(catalog)
        by_cart: dict[int, deque[int]] = {}
        for f in catalog.tape_order():
            by_cart.setdefault(catalog.cartridges[f], deque()).append(f)
        self._todo = deque(by_cart[c] for c in sorted(by_cart))
        self._active: deque[deque[int]] = deque()
        self._width = active

    def next_requests(self, free: float | None) -> list[int]:
        if free is None:
            out = [f for files in self._active for f in files]
            out += [f for files in self._todo for f in files]
            self._active.clear()
            self._todo.clear()
            return out
        out = []
        sizes = self.catalog.sizes
        while True:
            while len(self._active) < self._width and self._todo:
                self._active.append(self._todo.popleft())
            if not self._active:
                return out
            files = self._active[0]
            if sizes[files[0]] > free:
                return out
            f = files.popleft()
            free -= sizes[f]
            out.append(f)
            self._active.rotate(-1)
            if not files:
                self._active.remove(files)

    def on_staged(self, file: int) -> list[int]:
        return [file]

    def on_lost(self, file: int) -> list[int]:
        return []

    def on_processed(self, file: int) -> list[int]:
        return [file]


class DatasetLevel(Policy):
    """Request all datasets at once; process a dataset when all its files are on disk
    (or lost); release it when all are processed."""

    name = "dataset-level"
    uses_buffer = False

    def __init__(self, catalog: Catalog) -> None:
        super().__init__(catalog)
        self._files = catalog.dataset_files()
        self._waiting = [len(files) for files in self._files]  # not staged nor lost
        self._open = [0] * len(self._files)  # staged and not processed
        self._staged: list[list[int]] = [[] for _ in self._files]
        self._next = 0

    def next_requests(self, free: float | None) -> list[int]:
        out: list[int] = []
        while self._next < len(self._files) and self._admit(self._next, free):
            files = self._files[self._next]
            if free is not None:
                free -= sum(self.catalog.sizes[f] for f in files)
            out += files
            self._next += 1
        return self.catalog.tape_order(out)

    def _admit(self, dataset: int, free: float | None) -> bool:
        return True  # all at once: the baseline as it ran before file-level staging

    def _fits(self, dataset: int, free: float | None) -> bool:
        return free is None or sum(self.catalog.sizes[f] for f in self._files[dataset]) <= free

    def on_staged(self, file: int) -> list[int]:
        d = self.catalog.datasets[file]
        self._staged[d].append(file)
        return self._arrived(d)

    def on_lost(self, file: int) -> list[int]:
        return self._arrived(self.catalog.datasets[file])

    def _arrived(self, d: int) -> list[int]:
        self._waiting[d] -= 1
        if self._waiting[d]:
            return []
        self._open[d] = len(self._staged[d])
        if not self._open[d]:
            self._closed(d)  # every file lost: nothing to process or release
        return list(self._staged[d])

    def on_processed(self, file: int) -> list[int]:
        d = self.catalog.datasets[file]
        self._open[d] -= 1
        if self._open[d]:
            return []
        self._closed(d)
        return self._staged[d]

    def _closed(self, d: int) -> None:
        """Dataset ``d`` is over (processed and released, or lost)."""


class SlidingWindow(DatasetLevel):
    """The baseline with at most ``window`` datasets requested and not yet released, within
    the buffer."""

    name = "sliding-window"
    uses_buffer = True

    def __init__(self, catalog: Catalog, window: int) -> None:
        super().__init__(catalog)
        self._window = window
        self._in_window = 0

    def _admit(self, dataset: int, free: float | None) -> bool:
        if self._in_window >= self._window or not self._fits(dataset, free):
            return False
        self._in_window += 1
        return True

    def _closed(self, d: int) -> None:
        self._in_window -= 1

    def check_buffer(self, buffer: float | None) -> None:
        super().check_buffer(buffer)
        if buffer is None:
            return
        sizes = sorted((sum(self.catalog.sizes[f] for f in fs) for fs in self._files), reverse=True)
        window = sum(sizes[: self._window])
        if self._window > 1 and window > buffer:
            fits = max(1, sum(1 for i in range(len(sizes)) if sum(sizes[: i + 1]) <= buffer))
            raise SpecError(
                f"a window of {self._window} datasets (up to {format_size(window)}) is larger "
                f"than the buffer of {format_size(buffer)}; use window <= {fits}"
            )
        for d, files in enumerate(self._files):
            size = sum(self.catalog.sizes[f] for f in files)
            if size > buffer:
                raise SpecError(
                    f"dataset {self.catalog.dataset_names[d]} ({format_size(size)}) cannot fit "
                    f"in the buffer of {format_size(buffer)} under the {self.name} policy"
                )


def make_policy(spec: CampaignSpec, policy: PolicySpec, catalog: Catalog) -> Policy:
    """The policy ``policy`` names, set up for ``catalog``.

    Raises:
        SpecError: the campaign cannot run within its buffer under this policy.
    """
    made: Policy
    if policy.name == "file-level":
        made = FileLevel(catalog, policy.active_cartridges or _active(spec))
    elif policy.name == "dataset-level":
        made = DatasetLevel(catalog)
    else:
        made = SlidingWindow(catalog, policy.window)
    made.check_buffer(spec.buffer)
    return made


def _active(spec: CampaignSpec) -> int:
    """Cartridges to feed at once: one per drive, whatever the buffer. A small buffer is
    shared between them (each cartridge is mounted when its oldest request has waited
    ``mount_max_age_s``); feeding fewer cartridges than drives would leave drives idle and
    small files overhead-bound."""
    return sum(t.drives for t in spec.tape_libraries)
