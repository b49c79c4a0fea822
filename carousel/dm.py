"""The data-management interface: what the orchestrator asks of a tape/disk system.

Implementations: :class:`carousel.tape.TapeEmulator` (a tape library on a simulated clock)
and :class:`carousel.rucio.RucioDM` (a Rucio server through its client).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from typing import Protocol


class FileState(enum.StrEnum):
    """Where a file stands in the data-management system."""

    ON_TAPE = "on_tape"  # not requested
    REQUESTED = "requested"  # staging requested, not on disk yet (retries included)
    STAGED = "staged"  # on disk and pinned
    LOST = "lost"  # staging failed for good
    RELEASED = "released"  # unpinned; the disk copy may go


class StagingListener(Protocol):
    """Who hears about staging: the orchestrator."""

    def on_staged(self, file: int) -> None:
        """``file`` is on disk and pinned."""

    def on_staging_failed(self, file: int, lost: bool) -> None:
        """A staging attempt of ``file`` failed; ``lost``: no attempt is left."""


class DataManagement(abc.ABC):
    """A system that stages files from tape to a disk buffer and releases them.

    Contract:

    - Files are the campaign catalogue's numbers (:class:`carousel.catalog.Catalog`);
      an implementation maps them to its own names.
    - :meth:`request_staging` returns at once; the outcome arrives later as a call to the
      listener's ``on_staged`` or ``on_staging_failed``, always from the caller's thread:
      inside the clock's event loop (emulator) or inside :meth:`poll` (a remote system).
    - Each requested file ends in exactly one ``on_staged`` or one ``on_staging_failed``
      with ``lost=True``; failed attempts that will be retried may be reported with
      ``lost=False`` before that.
    - :meth:`release` is called once per staged file; afterwards the system may delete the
      disk copy. Releasing a file that is not staged raises ``ValueError``.
    - Not thread-safe: one orchestrator drives one instance.
    """

    listener: StagingListener | None = None

    def attach(self, listener: StagingListener) -> None:
        """Send staging outcomes to ``listener`` from now on."""
        self.listener = listener

    @abc.abstractmethod
    def request_staging(self, files: Sequence[int]) -> None:
        """Ask for ``files`` to be brought to disk, in this order where the system allows.

        Raises:
            ValueError: a file is already requested or staged.
        """

    @abc.abstractmethod
    def release(self, file: int) -> None:
        """Unpin ``file`` (its processing is over); its disk copy may be deleted.

        Raises:
            ValueError: the file is not staged.
        """

    @abc.abstractmethod
    def state(self, file: int) -> FileState:
        """Where ``file`` stands now."""

    def reattach(self, requested: Sequence[int], staged: Sequence[int]) -> None:
        """Take up, in a new process, what an earlier one of this carousel left behind:
        ``requested`` files were asked for and their outcome was not heard, ``staged`` files
        are on disk and not released. Outcomes of the former arrive as after
        :meth:`request_staging` (none is asked for again); the latter may be released.

        Raises:
            NotImplementedError: this system cannot be taken up again.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot be taken up again")

    def poll(self) -> None:  # noqa: B027 - systems that push events need no polling
        """Deliver the outcomes that have arrived since the last call (remote systems)."""
