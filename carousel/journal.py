"""A live carousel's staging log, kept on its record, so that another head can go on with it.

What the orchestrator heard and asked, in order, is kept in its owner's spec
(``spec["staging"]``), as short lists:

- ``["r", t, [files]]``: staging requested for these files (recorded *before* the data
  management is asked, so that a request is never made twice: a head that died between the
  two leaves files recorded as requested that the data management never heard of, and the next
  head asks for them, for the first time);
- ``["s", t, file]``: staged (on disk and pinned);
- ``["x", t, file, lost]``: a staging attempt failed (``lost``: no attempt is left);
- ``["p", t, file, ok]``: its processing is over (``ok``: it succeeded); its release follows
  at once where the policy says so.

``t`` is the campaign's simulated time. Events after the last request are written at the next
tick (a fraction of a second); a head that dies loses at most those, and the next head learns
them again: a file staged and not recorded is still requested (the data management reports it
staged again), a processing recorded by the core and not here is taken from the core's task.

A resumed head rebuilds its orchestrator by replaying the log through the same policy
(:func:`replay`): the requests it makes on the way must be the ones recorded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from carousel.dm import DataManagement, FileState
from carousel.orchestrator import Orchestrator
from idds.errors import IddsError

if TYPE_CHECKING:
    from idds.records import Records

KEY = "staging"


class Journal:
    """The staging log of one carousel: events are noted in memory and written to its record
    by :meth:`commit` (a request is written before it is made).

    Args:
        records: the carousel's records.
        owner_id: its owner row.
        events: what was recorded already (a resumed run's).
    """

    def __init__(self, records: Records, owner_id: int, events: Sequence[list[Any]] = ()) -> None:
        self.records, self.owner_id = records, owner_id
        self.events: list[list[Any]] = list(events)
        self._written = len(self.events)

    def note(self, event: list[Any]) -> None:
        self.events.append(event)

    def commit(self) -> None:
        """Write the events noted since the last commit (nothing where there are none)."""
        new = self.events[self._written :]
        if not new:
            return
        self.records.update_spec(self.owner_id, lambda s: {**s, KEY: [*s.get(KEY, []), *new]})
        self._written = len(self.events)


class JournalledDM(DataManagement):
    """Writes each request to the journal before it passes it on to ``inner``.

    Args:
        inner: the data management that stages.
        journal: the log.
        clock: the campaign's clock (an event's time).
    """

    def __init__(self, inner: DataManagement, journal: Journal, clock: Any) -> None:
        self.inner, self.journal, self.clock = inner, journal, clock

    def attach(self, listener: Any) -> None:
        super().attach(listener)
        self.inner.attach(listener)

    def request_staging(self, files: Sequence[int]) -> None:
        self.journal.note(["r", round(self.clock.now, 3), list(files)])
        self.journal.commit()
        self.inner.request_staging(files)

    def release(self, file: int) -> None:
        self.inner.release(file)

    def state(self, file: int) -> FileState:
        return self.inner.state(file)

    def poll(self) -> None:
        self.inner.poll()


class JournalledOrchestrator(Orchestrator):
    """The orchestrator, noting what it hears in ``journal`` (set before :meth:`start`)."""

    journal: Journal | None = None

    def _note(self, *event: Any) -> None:
        if self.journal is not None:
            self.journal.note([event[0], round(self.clock.now, 3), *event[1:]])

    def on_staged(self, file: int) -> None:
        self._note("s", file)
        super().on_staged(file)

    def on_staging_failed(self, file: int, lost: bool) -> None:
        self._note("x", file, int(lost))
        super().on_staging_failed(file, lost)

    def on_processed(self, file: int, ok: bool) -> None:
        self._note("p", file, int(ok))
        super().on_processed(file, ok)


class _Replay(DataManagement):
    """What the orchestrator asks while it replays: noted, not passed on."""

    def __init__(self) -> None:
        self.asked: list[list[int]] = []

    def request_staging(self, files: Sequence[int]) -> None:
        self.asked.append(list(files))

    def release(self, file: int) -> None:
        pass

    def state(self, file: int) -> FileState:
        raise NotImplementedError


class ReplayError(IddsError):
    """The log does not replay: the policy asks for other files than it recorded."""


def replay(orch: JournalledOrchestrator, events: Sequence[list[Any]]) -> list[list[int]]:
    """Bring a new (not started) orchestrator to where ``events`` leave it, asking nothing
    of its data management: afterwards give it the real one (:func:`outstanding`).

    Returns:
        The requests the policy makes after the last event: none was recorded, so none was
        made (the head died before it wrote them); make them now.

    Raises:
        ReplayError: a request made on the way is not the one recorded.
    """
    real, fake = orch.dm, _Replay()
    orch.dm, journal, orch.journal = fake, orch.journal, None
    handlers: dict[str, Callable[..., None]] = {
        "s": orch.on_staged, "x": orch.on_staging_failed, "p": orch.on_processed
    }  # fmt: skip
    try:
        orch.start()
        for event in events:
            orch.clock.now = event[1]
            if event[0] == "r":
                _expect(fake, event[2])
            else:
                handlers[event[0]](*(bool(a) if i else a for i, a in enumerate(event[2:])))
    finally:
        orch.dm, orch.journal = real, journal
    return fake.asked


def _expect(fake: _Replay, recorded: list[int]) -> None:
    asked = fake.asked.pop(0) if fake.asked else None
    if asked != recorded:
        raise ReplayError(
            f"the staging log does not replay: recorded a request for {recorded[:5]}, "
            f"the policy asks for {(asked or [])[:5]}"
        )


def outstanding(orch: Orchestrator) -> tuple[list[int], list[int]]:
    """After a replay: the files requested and not yet staged or lost, and those staged and
    not released (what the data management holds for this carousel)."""
    lost = set(orch.lost)
    requested, staged = [], []
    for f in range(len(orch.catalog)):
        if math.isnan(orch.requested_at[f]) or f in lost:
            continue
        if math.isnan(orch.staged_at[f]):
            requested.append(f)
        elif math.isnan(orch.released_at[f]):
            staged.append(f)
    return requested, staged
