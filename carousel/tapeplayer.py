"""The part of a Rucio deployment that moves bytes, played by the tape emulator.

In production Rucio's conveyor daemons submit a rule's transfers to FTS, which recalls the
files from tape (CTA) and copies them to the buffer; the conveyor then marks each buffer
replica available, and Rucio moves its lock from ``REPLICATING`` to ``OK`` (or ``STUCK``).
None of FTS, CTA or the conveyor can run without a grid, so :class:`TapePlayer` plays them
against a real Rucio server: it reads the staging rules from Rucio, hands their
``REPLICATING`` locks to a :class:`~carousel.tape.TapeEmulator` (which decides the order and
the times), and reports each outcome through Rucio's own API (``update_replicas_states``):
``AVAILABLE`` when the emulator has staged a file, ``UNAVAILABLE`` (the lock goes ``STUCK``)
when the library gave up on it. A failed read that the library retries is not reported, as
CTA retries a recall before FTS hears of a failure.
"""

from __future__ import annotations

from typing import Any

from carousel.catalog import Catalog
from carousel.clock import SimClock, WallClock
from carousel.tape import TapeEmulator, TapeLibraries


class TapePlayer:
    """FTS, CTA and Rucio's conveyor, played by ``tape`` against a Rucio server.

    Args:
        tape: the emulator (its clock is the campaign's).
        catalog: the campaign's files.
        client: a Rucio client with the right to update replica states (root).
        rse: the disk buffer's RSE.
        activity: the staging rules' activity.
    """

    def __init__(self, tape: TapeEmulator | TapeLibraries, catalog: Catalog, client: Any, *,
                 rse: str, activity: str = "Staging") -> None:  # fmt: skip
        self.tape, self.catalog, self.client = tape, catalog, client
        self.rse, self.activity = rse, activity
        self._rules: set[str] = set()
        self._pending: list[dict[str, str]] = []
        tape.attach(self)

    # --- what the tape library reports -----------------------------------------------------

    def on_staged(self, file: int) -> None:
        self._pending.append(self._did(file, "A"))

    def on_staging_failed(self, file: int, lost: bool) -> None:
        if lost:
            self._pending.append(self._did(file, "U"))

    def _did(self, f: int, state: str) -> dict[str, str]:
        scope, _, name = self.catalog.names[f].partition(":")
        return {"scope": scope, "name": name, "state": state}

    # --- the conveyor's rounds -------------------------------------------------------------

    def submit(self) -> int:
        """Hand the new staging rules' ``REPLICATING`` locks to the library; returns how
        many files it was given."""
        filters = {"activity": self.activity, "rse_expression": self.rse, "state": "R"}
        index, files = self.catalog.index, []
        for rule in self.client.list_replication_rules(filters):
            if rule["id"] in self._rules:
                continue
            self._rules.add(rule["id"])
            for lock in self.client.list_replica_locks(rule["id"]):
                f = index.get(f"{lock['scope']}:{lock['name']}")
                if f is not None and lock["state"] == "REPLICATING":
                    files.append(f)
        if files:
            self.tape.request_staging(self.catalog.tape_order(files))
        return len(files)

    def report(self) -> None:
        """Mark the buffer replicas of what the library did since the last call, in the
        order it did it."""
        if self._pending:
            pending, self._pending = self._pending, []
            self.client.update_replicas_states(self.rse, pending)

    def pump(self, until: float | None = None) -> None:
        """One round: take new rules, run the library (to the wall clock's time on a
        :class:`WallClock`, to ``until`` or to its end on a :class:`SimClock`), report."""
        self.submit()
        clock: SimClock = self.tape.clock
        if isinstance(clock, WallClock):
            clock.catch_up()
        else:
            clock.run(until)
        self.report()
