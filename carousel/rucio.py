"""The data-management interface over a Rucio server, through ``rucio-clients``.

Staging is replication rules from the tape RSE (the source) to the disk buffer's RSE, made
in one call per request batch: one rule per dataset where a batch holds a whole dataset and
the policy releases datasets whole (``dataset-level``, ``sliding-window``), one rule per file
otherwise (``file-level``). Outcomes are read in bulk by :meth:`RucioDM.poll`, never one call
per file: one listing of the account's rules at the buffer (``list_replication_rules``) gives
each file rule's state (``OK``: staged; ``STUCK``: a failed attempt) and each dataset rule's
lock counts; only a dataset rule whose counts moved since the last poll is read further, its
datasets' buffer replicas in one call (``list_replicas``; ``AVAILABLE``: staged), or its locks
where some are stuck (``list_replica_locks``). After ``max_stuck`` failed attempts a file is
lost and its lock let go.

Release lets a processed file's buffer copy go: its own rule is deleted (its lock on the
buffer replica goes with it, and Rucio may delete the replica), so under ``file-level`` each
file leaves the buffer as soon as it is processed; a dataset rule is deleted when its last
file is released (the dataset policies release datasets whole).

A carousel that goes on in a new process takes its rules up again (:meth:`RucioDM.reattach`):
they live in Rucio, not in the process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from carousel.catalog import Catalog
from carousel.dm import DataManagement, FileState


class RuleClient(Protocol):
    """The part of ``rucio.client.Client`` this adapter uses."""

    def add_replication_rule(self, dids: list[dict[str, str]], copies: int,
                             rse_expression: str, **kwargs: Any) -> list[str]: ...  # fmt: skip

    def list_replicas(self, dids: list[dict[str, str]], **kwargs: Any) -> Iterable[dict]: ...

    def list_replication_rules(self, filters: dict[str, Any] | None = None) -> Iterable[dict]: ...

    def list_replica_locks(self, rule_id: str) -> Iterable[dict]: ...

    def delete_replication_rule(self, rule_id: str, purge_replicas: Any = None) -> Any: ...


def _split(did: str) -> dict[str, str]:
    scope, _, name = did.partition(":")
    return {"scope": scope, "name": name}


@dataclass
class RucioSite:
    """Where a live carousel stages through Rucio.

    Attributes:
        client: a Rucio client (``rucio.client.Client``) for the carousel's account.
        rse: the disk buffer's RSE.
        source: the tape RSE expression to stage from.
        account: the client's account.
        poll_s: wall-clock seconds between two polls of Rucio.
        put_off: while processing has a round of work waiting (staged files not processed:
            twice as many as it processes at once), news of more could not be used: a poll
            is put off, for at most this many ``poll_s`` (files staged meanwhile are then
            read in one poll).
        player: FTS, CTA and the conveyor played by the tape emulator
            (:class:`carousel.tapeplayer.TapePlayer`) with this client: where Rucio has no
            transfer system of its own (tests, benchmarks).
    """

    client: Any
    rse: str
    source: str
    account: str = "root"
    poll_s: float = 0.5
    put_off: int = 30
    player: Any = None


class RucioDM(DataManagement):
    """Staging through Rucio rules, polled in bulk.

    Args:
        catalog: the files (their names are ``scope:name`` DIDs, as are its datasets').
        client: a Rucio client (``rucio.client.Client``).
        rse: the disk buffer's RSE (replicas are read there).
        source: the tape RSE expression to stage from.
        account: the account the rules are made by (its stuck rules are listed).
        activity: the transfer activity (Rucio's ``Staging`` by default).
        lifetime_s: the rules' lifetime, a safety net if this process dies.
        max_stuck: a file whose lock was seen ``STUCK`` this many times is lost; 1 where
            the tape system retries recalls itself before reporting a failure (CTA does).
        dataset_rules: a whole dataset in one request batch is one rule (for policies that
            release datasets whole); ``False``: one rule per file, released file by file.
        chunk: datasets per ``list_replicas`` call.
    """

    def __init__(
        self,
        catalog: Catalog,
        client: RuleClient,
        *,
        rse: str,
        source: str,
        account: str = "root",
        activity: str = "Staging",
        lifetime_s: int = 7 * 86400,
        max_stuck: int = 3,
        dataset_rules: bool = True,
        chunk: int = 50,
    ) -> None:
        self.catalog, self.client = catalog, client
        self.rse, self.source, self.account, self.activity = rse, source, account, activity
        self.lifetime_s, self.max_stuck = lifetime_s, max_stuck
        self.dataset_rules, self.chunk = dataset_rules, chunk
        self._state = [FileState.ON_TAPE] * len(catalog)
        self._rule: dict[int, str] = {}  # file -> its rule, while it holds one
        self._members: dict[str, set[int]] = {}  # rule -> files still holding it
        self._dataset_rule: set[str] = set()
        self._in_flight: dict[int, set[int]] = {}  # dataset -> files requested, not over
        self._stuck: dict[int, int] = {}
        self._seen_stuck: set[int] = set()
        self._counts: dict[str, tuple[Any, ...]] = {}  # dataset rule -> its lock counts seen
        self._dataset_size = [len(fs) for fs in catalog.dataset_files()]
        self.polls = 0  # poll cycles with files in flight
        self.poll_calls = 0  # Rucio calls those cycles made
        self.polled_files = 0  # files in flight, summed over those cycles
        self.calls = 0  # every Rucio call: rules made and deleted, polls

    # --- requests --------------------------------------------------------------------------

    def request_staging(self, files: Sequence[int]) -> None:
        for f in files:
            if self._state[f] is not FileState.ON_TAPE:
                raise ValueError(f"{self.catalog.names[f]} is already {self._state[f]}")
        by_dataset: dict[int, list[int]] = {}
        for f in files:
            by_dataset.setdefault(self.catalog.datasets[f], []).append(f)
        whole = [d for d, fs in by_dataset.items() if self._whole(d, fs)]
        single = [f for d, fs in by_dataset.items() if d not in whole for f in fs]
        if whole:
            dids = [_split(self.catalog.dataset_names[d]) for d in whole]
            self._add(dids, [by_dataset[d] for d in whole], grouping="DATASET")
        if single:
            self._add([_split(self.catalog.names[f]) for f in single], [[f] for f in single])

    def _whole(self, d: int, files: list[int]) -> bool:
        return self.dataset_rules and len(files) == self._dataset_size[d] > 1

    def _add(self, dids: list[dict[str, str]], groups: list[list[int]], grouping: str = "NONE"):
        self.calls += 1
        rule_ids = self.client.add_replication_rule(
            dids=dids, copies=1, rse_expression=self.rse, source_replica_expression=self.source,
            activity=self.activity, lifetime=self.lifetime_s, grouping=grouping,
            asynchronous=False,
        )  # fmt: skip
        if len(rule_ids) != len(dids):
            raise RuntimeError(f"Rucio returned {len(rule_ids)} rules for {len(dids)} DIDs")
        for rule, group in zip(rule_ids, groups, strict=True):
            self._members[rule] = set(group)
            if grouping == "DATASET":
                self._dataset_rule.add(rule)
            for f in group:
                self._rule[f] = rule
                self._state[f] = FileState.REQUESTED
                self._in_flight.setdefault(self.catalog.datasets[f], set()).add(f)

    def reattach(self, requested: Sequence[int], staged: Sequence[int]) -> None:
        """Rucio kept the rules: find the account's rules at the buffer (one call) and take
        up those of these files; a requested file without one was never heard of by Rucio
        (its head died between recording the request and making it): ask for it now."""
        files = {*requested, *staged}
        index, by_dataset = self.catalog.index, self.catalog.dataset_files()
        datasets = {name: d for d, name in enumerate(self.catalog.dataset_names)}
        self.calls += 1
        for rule in self.client.list_replication_rules(
            {"account": self.account, "rse_expression": self.rse}
        ):
            did = f"{rule['scope']}:{rule['name']}"
            if did in index:
                group, dataset = [index[did]], False
            elif did in datasets:
                group, dataset = list(by_dataset[datasets[did]]), True
            else:
                continue
            group = [f for f in group if f in files and f not in self._rule]
            if group:
                self._take(rule["id"], group, dataset)
        for f in staged:
            self._state[f] = FileState.STAGED
        for f in requested:
            if f in self._rule:
                self._state[f] = FileState.REQUESTED
                self._in_flight.setdefault(self.catalog.datasets[f], set()).add(f)
        missing = [f for f in requested if f not in self._rule]
        if missing:
            self.request_staging(missing)

    def _take(self, rule: str, group: list[int], dataset: bool) -> None:
        self._members[rule] = set(group)
        if dataset:
            self._dataset_rule.add(rule)
        for f in group:
            self._rule[f] = rule

    # --- outcomes --------------------------------------------------------------------------

    def poll(self) -> None:
        """Read the outcomes in bulk (:meth:`_outcomes`); report what changed."""
        if not self._in_flight:
            return
        self.polls += 1
        self.polled_files += sum(len(fs) for fs in self._in_flight.values())
        before = self.poll_calls
        staged, stuck, looked = self._outcomes()
        for f in sorted(staged):
            if self._state[f] is FileState.REQUESTED:
                self._over(f, FileState.STAGED)
                if self.listener is not None:
                    self.listener.on_staged(f)
        stuck -= staged
        for f in sorted(stuck):
            if self._state[f] is FileState.REQUESTED and f not in self._seen_stuck:
                self._seen_stuck.add(f)  # one failed attempt per STUCK spell
                self._failed(f)
        self._seen_stuck -= looked - stuck
        self.calls += self.poll_calls - before

    def _outcomes(self) -> tuple[set[int], set[int], set[int]]:
        """The files staged and stuck, from one listing of the account's rules at the buffer:
        a file rule's state is its file's; a dataset rule's locks are read only where its
        lock counts changed since the last poll (the buffer's replicas of such datasets in
        one call, or its locks where some are stuck). Returns (staged, stuck, files looked at).
        """
        staged: set[int] = set()
        stuck: set[int] = set()
        looked: set[int] = set()
        changed: list[int] = []
        self.poll_calls += 1
        for rule in self.client.list_replication_rules(
            {"account": self.account, "rse_expression": self.rse}
        ):
            waiting = self._waiting(rule["id"])
            if not waiting:
                continue
            if rule["id"] not in self._dataset_rule:
                looked |= waiting
                if rule["state"] in ("OK", "STUCK"):
                    (staged if rule["state"] == "OK" else stuck).update(waiting)
                continue
            counts = tuple(rule.get(f"locks_{k}_cnt") for k in ("ok", "replicating", "stuck"))
            if self._counts.get(rule["id"]) == counts:
                continue  # no lock of it moved
            self._counts[rule["id"]] = counts
            looked |= waiting
            if counts[2]:
                self._locks(rule["id"], waiting, staged, stuck)
            else:
                changed.append(self.catalog.datasets[next(iter(waiting))])
        if changed:
            staged |= self._available(changed) & looked
        return staged, stuck, looked

    def _waiting(self, rule: str) -> set[int]:
        """The files of ``rule`` whose staging is not over."""
        members = self._members.get(rule, ())
        return {f for f in members if self._state[f] is FileState.REQUESTED}

    def _locks(self, rule: str, waiting: set[int], staged: set[int], stuck: set[int]) -> None:
        index = self.catalog.index
        self.poll_calls += 1
        for lock in self.client.list_replica_locks(rule):
            f = index.get(f"{lock['scope']}:{lock['name']}")
            if f in waiting and lock["state"] in ("OK", "STUCK"):
                (staged if lock["state"] == "OK" else stuck).add(f)

    def _available(self, datasets: list[int]) -> set[int]:
        """The files of ``datasets`` whose buffer replica is available (a chunk of datasets
        per call)."""
        index = self.catalog.index
        out: set[int] = set()
        for i in range(0, len(datasets), self.chunk):
            dids = [_split(self.catalog.dataset_names[d]) for d in datasets[i : i + self.chunk]]
            self.poll_calls += 1
            replicas = self.client.list_replicas(
                dids, rse_expression=self.rse, all_states=True, resolve_archives=False
            )
            for r in replicas:
                if r.get("states", {}).get(self.rse) == "AVAILABLE":
                    f = index.get(f"{r['scope']}:{r['name']}")
                    if f is not None:
                        out.add(f)
        return out

    def _over(self, f: int, state: FileState) -> None:
        self._state[f] = state
        d = self.catalog.datasets[f]
        self._in_flight[d].discard(f)
        if not self._in_flight[d]:
            del self._in_flight[d]

    def _failed(self, f: int) -> None:
        self._stuck[f] = self._stuck.get(f, 0) + 1
        lost = self._stuck[f] >= self.max_stuck
        if lost:
            self._over(f, FileState.LOST)
            self._let_go(f, purge=True)
        if self.listener is not None:
            self.listener.on_staging_failed(f, lost)

    # --- release ---------------------------------------------------------------------------

    def release(self, file: int) -> None:
        if self._state[file] is not FileState.STAGED:
            raise ValueError(f"{self.catalog.names[file]} is {self._state[file]}, not staged")
        self._state[file] = FileState.RELEASED
        self._let_go(file, purge=False)

    def _let_go(self, f: int, *, purge: bool) -> None:
        """``f`` no longer needs its rule; the rule goes when none of its files does."""
        rule = self._rule.pop(f, None)
        if rule is None:  # gone already: released by a head that died before it said so
            return
        members = self._members[rule]
        members.discard(f)
        if not members:
            del self._members[rule]
            self._dataset_rule.discard(rule)
            self._counts.pop(rule, None)
            self.calls += 1
            self.client.delete_replication_rule(rule, purge_replicas=purge)

    def state(self, file: int) -> FileState:
        return self._state[file]

    @property
    def calls_per_file_poll(self) -> float:
        """Rucio calls per file in flight per poll cycle, over the run so far."""
        return self.poll_calls / self.polled_files if self.polled_files else 0.0
