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

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def owner_kind(self) -> str:
        """The kind this owner is recorded as (a segmented study: ``study-group``)."""
        return self.kind

    @property
    def engine(self) -> Engine:
        """The database (one engine per handle, made on first use)."""
        if self._engine is None:
            self._engine = connect(self.settings.db_url)
        return self._engine

    @property
    def records(self) -> Records:
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

    def owner_id_or(self, create: Callable[[], int]) -> int:
        """Its id, recording it first with ``create`` where it is not recorded yet (a run
        creates its owner the first time and resumes it afterwards)."""
        try:
            return self.owner_id
        except NotFound:
            return create()

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
        user = user or auth.acting_user(self.engine, self.settings).name
        new = NewOwner(kind=self.owner_kind, name=self.name, spec=spec, parts=parts or [])
        try:
            return self.records.create(new, user=user, parent_id=parent_id)
        except Exists:
            raise Exists(self._exists_message()) from None

    def check_new(self) -> None:
        """Check, before any slower check, that its name is free.

        Raises:
            Exists: one of that kind and name exists already.
        """
        if made(self.settings.db_url) and self.exists():
            raise Exists(self._exists_message())

    def _exists_message(self) -> str:
        return (
            f"a {self.noun} named {self.name!r} exists already: resume it with "
            f"`idds {self.command} resume {self.name}`, or choose another name"
        )

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

    def require(self, action: str) -> auth.Actor:
        """The acting user, where they may ``action`` this owner (its user, or an admin).

        Raises:
            NotFound: it is not recorded.
            AccessDenied: they may not.
        """
        return auth.require(self.engine, self.settings, self.record(), action)

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
