"""The data-management interface over a Rucio server, through its client's replication-rule
and replica-lock API.

Staging a file is a replication rule on its DID to the disk buffer's RSE, with the tape RSE
as the source; the file is on disk when the rule's lock is ``OK``; a ``STUCK`` lock is a failed
attempt (Rucio retries it); releasing a file deletes its rule, after which Rucio's reaper may
delete the disk copy. Outcomes are read by :meth:`RucioDM.poll`.

Tested against a stand-in client only: no Rucio server runs here (tests/unit/
test_carousel_dm.py says so). The ``rucio-clients`` package is not a dependency; pass a
``rucio.client.Client``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from carousel.catalog import Catalog
from carousel.dm import DataManagement, FileState


class RuleClient(Protocol):
    """The part of ``rucio.client.Client`` this adapter uses."""

    def add_replication_rule(self, dids: list[dict[str, str]], copies: int,
                             rse_expression: str, **kwargs: Any) -> list[str]: ...  # fmt: skip

    def list_replica_locks(self, rule_id: str) -> Any: ...

    def delete_replication_rule(self, rule_id: str, purge_replicas: Any = None) -> Any: ...


class RucioDM(DataManagement):
    """Staging through Rucio rules, one per file.

    Args:
        catalog: the files (their names are ``scope:name`` DIDs).
        client: a Rucio client.
        rse: the disk buffer's RSE expression.
        source: the tape RSE expression to stage from.
        activity: the transfer activity (Rucio's ``Staging`` by default).
        lifetime_s: the rules' lifetime, a safety net if this process dies.
        max_stuck: a file whose lock was seen ``STUCK`` this many times is lost.
    """

    def __init__(
        self,
        catalog: Catalog,
        client: RuleClient,
        *,
        rse: str,
        source: str,
        activity: str = "Staging",
        lifetime_s: int = 7 * 86400,
        max_stuck: int = 3,
    ) -> None:
        self.catalog, self.client = catalog, client
        self.rse, self.source, self.activity = rse, source, activity
        self.lifetime_s, self.max_stuck = lifetime_s, max_stuck
        self._state = [FileState.ON_TAPE] * len(catalog)
        self._rules: dict[int, str] = {}  # file -> rule id, while it has one
        self._stuck: dict[int, int] = {}
        self._seen_stuck: set[int] = set()

    def _did(self, f: int) -> dict[str, str]:
        scope, _, name = self.catalog.names[f].partition(":")
        return {"scope": scope, "name": name}

    def request_staging(self, files: Sequence[int]) -> None:
        for f in files:
            if self._state[f] is not FileState.ON_TAPE:
                raise ValueError(f"{self.catalog.names[f]} is already {self._state[f]}")
        if not files:
            return
        rule_ids = self.client.add_replication_rule(
            dids=[self._did(f) for f in files],
            copies=1,
            rse_expression=self.rse,
            source_replica_expression=self.source,
            activity=self.activity,
            lifetime=self.lifetime_s,
            grouping="NONE",
            asynchronous=False,
        )
        if len(rule_ids) != len(files):
            raise RuntimeError(f"Rucio returned {len(rule_ids)} rules for {len(files)} files")
        for f, rule in zip(files, rule_ids, strict=True):
            self._rules[f] = rule
            self._state[f] = FileState.REQUESTED

    def poll(self) -> None:
        """Read each open rule's lock and report files staged, stuck or lost."""
        for f in [f for f, s in enumerate(self._state) if s is FileState.REQUESTED]:
            states = {lock["state"] for lock in self.client.list_replica_locks(self._rules[f])}
            if states == {"OK"}:
                self._state[f] = FileState.STAGED
                if self.listener is not None:
                    self.listener.on_staged(f)
            elif "STUCK" in states and f not in self._seen_stuck:
                self._seen_stuck.add(f)  # one failed attempt per STUCK spell
                self._failed(f)
            elif "STUCK" not in states:
                self._seen_stuck.discard(f)

    def _failed(self, f: int) -> None:
        self._stuck[f] = self._stuck.get(f, 0) + 1
        lost = self._stuck[f] >= self.max_stuck
        if lost:
            self._state[f] = FileState.LOST
            self.client.delete_replication_rule(self._rules.pop(f), purge_replicas=True)
        if self.listener is not None:
            self.listener.on_staging_failed(f, lost)

    def release(self, file: int) -> None:
        if self._state[file] is not FileState.STAGED:
            raise ValueError(f"{self.catalog.names[file]} is {self._state[file]}, not staged")
        self.client.delete_replication_rule(self._rules.pop(file), purge_replicas=False)
        self._state[file] = FileState.RELEASED

    def state(self, file: int) -> FileState:
        return self._state[file]
