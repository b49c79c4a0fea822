"""One owner lifecycle for every kind: create, load, state, user, cancel, hold and run.

A study, a workflow, a toy scan and a carousel are each an :class:`OwnerHandle`: they keep
their own logic (what tasks to hand in, what a result means) and share this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from idds import auth
from idds.db import connect, made
from idds.errors import Exists, NotFound, SpecError
from idds.owners import OwnerState
from idds.records import NewOwner, OwnerRecord, Records

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from idds.config import Settings
    from idds.dispatch import Dispatcher


class OwnerHandle:
    """The lifecycle of an owner of :attr:`kind`, found by its :attr:`name`.

    Subclasses set the class attributes, ``settings`` and ``name``; the rest is here.

    Attributes:
        kind: the owner kind recorded (``study``, ``workflow`` ...).
        noun: what a user calls it, in messages (``study``, ``toy scan`` ...).
        command: the ``idds`` words of its command group (``hpo``, ``dag`` ...).
    """

    kind: ClassVar[str]
    noun: ClassVar[str]
    command: ClassVar[str]
    #: What one of its tasks is called in messages.
    task_noun: ClassVar[str] = "a task"
    settings: Settings
    _engine: Engine | None = None
    _records: Records | None = None

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def owner_kind(self) -> str:
        """The kind this owner is recorded as (a segmented study: ``study-group``)."""
        return self.kind

    @property
    def remote(self) -> bool:
        """Whether it is reached through the HTTP API (``IDDS_URL``: service mode)."""
        return bool(self.settings.url)

    @property
    def engine(self) -> Engine:
        """The database (one engine per handle, made on first use).

        Raises:
            IddsError: in service mode, where no database is opened.
        """
        if self.remote:
            return self.records.engine
        if self._engine is None:
            self._engine = connect(self.settings.db_url)
        return self._engine

    @property
    def records(self) -> Records:
        """Its records: the database's, or in service mode the HTTP API's."""
        if self.remote:
            if self._records is None:
                from idds.client import RemoteRecords

                self._records = RemoteRecords(self.settings)
            return self._records
        return Records(self.engine)

    # --- reading -----------------------------------------------------------------------------

    def record(self) -> OwnerRecord:
        """The owner as recorded now.

        Raises:
            NotFound: it is not recorded.
        """
        try:
            return self.records.owner(self.owner_kind, self.name)
        except NotFound:
            raise NotFound(f"no {self.noun} named {self.name!r}") from None

    @property
    def owner_id(self) -> int:
        return self.record().id

    @property
    def state(self) -> str:
        """Its state: ``active``, ``suspended``, ``finished``, ``failed`` or ``cancelled``."""
        return str(self.record().state)

    @property
    def user(self) -> str | None:
        """The user who created it (None: recorded before owners had users)."""
        return self.record().user

    def attach(self, records: Records) -> None:
        """Read and change it through ``records`` (a loaded owner shares its loader's)."""
        if self.remote:
            self._records = records
        else:
            self._engine = records.engine
        self._loaded = True

    def start_or_resume(self, create: Callable[[], int], given: dict[str, Any]) -> int:
        """Its id: created with ``create`` where it is not recorded; where it is, and this
        handle was built from a spec (not loaded), it must be the same one and the acting
        user's (:meth:`check_resumable`), so that two owners of one name never merge."""
        try:
            record = self.record()
        except NotFound:
            self._created = True
            return create()
        if not (self._loaded or self._created):
            self.check_resumable(record.spec, given)
        return record.id

    #: Whether it was loaded as recorded (``load_*``), or created through this handle.
    _loaded: bool = False
    _created: bool = False

    def exists(self) -> bool:
        try:
            self.record()
        except NotFound:
            return False
        return True

    # --- commands ----------------------------------------------------------------------------

    def create_owner(
        self,
        spec: dict[str, Any],
        *,
        user: str | None = None,
        parts: list[NewOwner] | None = None,
        parent_id: int | None = None,
    ) -> int:
        """Record the owner (and its parts, in the same transaction); returns its id.

        Args:
            spec: what to record as its spec.
            user: its owner: the acting user by default.
            parts: owners that are part of it (a segmented study's segments).
            parent_id: the owner it is part of.

        Raises:
            Exists: one of that kind and name exists already.
            AccessDenied: no user can be named (see :mod:`idds.auth`).
        """
        if not self.remote:  # the server names the user in service mode
            user = user or auth.acting_user(self.engine, self.settings).name
        new = NewOwner(kind=self.owner_kind, name=self.name, spec=spec, parts=parts or [])
        try:
            return self.records.create(new, user=user, parent_id=parent_id)
        except Exists as exc:
            if "exists already" not in str(exc):  # a name kept for another owner's parts
                raise
            raise Exists(self._exists_message(str(exc))) from None

    def check_new(self) -> None:
        """Check, before any slower check, that its name is free.

        Raises:
            Exists: one of that kind and name exists already.
        """
        if (self.remote or made(self.settings.db_url)) and self.exists():
            raise Exists(self._exists_message())

    def _exists_message(self, found: str | None = None) -> str:
        user = self.user if found is None else None
        whose = f" (user {user!r}'s)" if user else ""
        first = found or f"a {self.noun} named {self.name!r} exists already{whose}"
        hint = f"resume it with `idds {self.command} resume {self.name}`, or choose another name"
        return f"{first}: {hint}"

    def check_resumable(self, stored: dict[str, Any], given: dict[str, Any]) -> None:
        """Check that running it again (its name recorded already) resumes the same thing:
        the acting user may change it, and the spec given is the one recorded.

        Args:
            stored: the spec recorded.
            given: the spec this run was given (keys that change as it runs, such as points
                enqueued, are not compared: :attr:`RUNTIME_KEYS`).

        Raises:
            AccessDenied: it is another user's (who is no admin).
            SpecError: a field differs (named, with both values).
        """
        self.require("resume")
        for key in sorted(set(stored) | set(given)):
            if key in self.RUNTIME_KEYS or stored.get(key) == given.get(key):
                continue
            raise SpecError(
                f"a {self.noun} named {self.name!r} is recorded with another {key}: "
                f"{_short(stored.get(key))} recorded, {_short(given.get(key))} given (choose "
                f"another name, or resume it with `idds {self.command} resume {self.name}`)"
            )

    #: Spec keys that change while it runs, and are not compared on resuming.
    RUNTIME_KEYS: ClassVar[frozenset[str]] = frozenset({"suspended", "result"})

    def task_needs(self) -> dict[str, float]:
        """What one of its tasks asks of the Ray cluster (``{"CPU": 1.0, "GPU": 0.0}``)."""
        return {}

    def check_capacity(self) -> None:
        """Join Ray and check that one task's resources exist in the cluster at all (unless
        sites are declared, whose pilots start on demand).

        Raises:
            SpecError: the cluster has fewer CPUs or GPUs than one task asks for (it would
                wait forever).
        """
        if self.remote:
            return  # the server's heads run it, on the server's cluster
        import ray

        from idds.runtime import ensure_ray

        ensure_ray(self.settings.ray_address)
        if getattr(self.settings, "sites", None):
            return  # the sites' pilots start on demand: the cluster grows to what is asked
        have = ray.cluster_resources()
        for key, need in self.task_needs().items():
            if need > have.get(key, 0.0):
                raise SpecError(
                    f"resources.{key.lower()}s: {self.task_noun} asks for {need:g} {key}, and "
                    f"the Ray cluster has {have.get(key, 0.0):g} (join one that has them with "
                    "--ray-address)"
                )

    def actor(self) -> auth.Actor:
        """The user acting on it (a known one: a token where users are registered).

        Raises:
            AccessDenied: no user can be named.
        """
        if self.remote:
            from idds.client import RemoteRecords

            records = self.records
            assert isinstance(records, RemoteRecords)
            return records.whoami()
        return auth.acting_user(self.engine, self.settings)

    def require(self, action: str) -> auth.Actor:
        """The acting user, where they may ``action`` this owner (its user, or an admin).

        Raises:
            NotFound: it is not recorded.
            AccessDenied: they may not.
        """
        if self.remote:
            from idds.client import RemoteRecords

            records = self.records
            assert isinstance(records, RemoteRecords)
            return auth.check(records.whoami(), self.record(), action)  # the server checks too
        return auth.require(self.engine, self.settings, self.record(), action)

    def expected_tasks(self) -> int | None:
        """How many tasks it will have run when it ends, where known (a progress bar's total)."""
        return None

    def served_logs(self, number: int, attempt: int | None) -> tuple[int, str | None, str | None]:
        """In service mode: a task's attempt's stdout and stderr, as the server keeps them
        (its owner or an admin): ``(attempt, stdout, stderr)``, None for a file not written.

        Raises:
            AccessDenied: the acting user may not read them.
        """
        from idds.client import RemoteRecords

        records = self.records
        assert isinstance(records, RemoteRecords)
        got = records.logs(self.owner_id, number, attempt)
        return int(got["attempt"]), got["stdout"], got["stderr"]

    def follow(self, *, progress: bool = True, poll_s: float = 1.0) -> OwnerState:
        """In service mode: wait while a head of the server runs it (showing its tasks done),
        and return the state it ended in.

        Raises:
            NotFound: it is not recorded.
        """
        import time

        from tqdm.auto import tqdm

        bar = tqdm(desc=self.name, unit="task", disable=not progress, leave=True)
        try:
            while True:
                record = self.record()
                known = sum(record.tasks.values())
                bar.total = max(self.expected_tasks() or 0, known, record.done) or None
                bar.n = record.done
                bar.set_postfix_str(str(record.state), refresh=True)
                if record.state != OwnerState.ACTIVE:
                    return record.state
                time.sleep(poll_s)
        finally:
            bar.close()

    def cancel(self) -> int:
        """Cancel it: a head running it stops within seconds. Returns the tasks cancelled.

        Raises:
            NotFound: it is not recorded.
            AccessDenied: it is another user's.
        """
        self.require("cancel")
        return self.records.cancel(self.owner_id, f"{self.noun} cancelled")

    def finish(self, state: OwnerState = OwnerState.FINISHED) -> None:
        """Record that its run ended in ``state``."""
        self.records.set_state(self.owner_id, state)

    @contextmanager
    def held(self, dispatcher: Dispatcher, owner_ids: list[int] | None = None) -> Iterator[None]:
        """Hold it (or these owners, its parts) for ``dispatcher`` while the block runs:
        wait for a head that stopped to let go, raise if a live one holds it; release after.

        Raises:
            IddsError: another live head holds it.
        """
        ids = owner_ids or [self.owner_id]
        held: list[int] = []
        try:
            for owner_id in ids:
                dispatcher.hold_waiting(owner_id, f"{self.noun} {self.name!r}")
                held.append(owner_id)
            yield
        finally:
            for owner_id in held:
                dispatcher.release(owner_id)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
