"""Where the chatter of the libraries a command runs goes.

Ray's log records (its token-authentication warning, its start-up notes) and Alembic's
(migration notes) go to ``idds.log`` in the work dir by default, so that a command prints
only what it has to say; ``idds -v`` leaves them on stderr.
"""

from __future__ import annotations

import logging
from pathlib import Path

#: The loggers whose records are kept out of a command's output.
NOISY = ("ray", "alembic")
LOG_FILE = "idds.log"

_quiet: dict[str, logging.Handler] = {}


class _FileHandler(logging.FileHandler):
    """A log file made (with its directory) at its first record, so that a command with
    nothing to log writes nothing."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, delay=True)

    def _open(self):  # type: ignore[no-untyped-def]
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def quiet(path: Path) -> None:
    """Send the records of the :data:`NOISY` loggers (warnings and above) to ``path``."""
    handler = _FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in NOISY:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h is _quiet.get(name)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
        _quiet[name] = handler
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settle()


def verbose() -> None:
    """Leave the :data:`NOISY` loggers on stderr, Alembic's notes included."""
    alembic = logging.getLogger("alembic")
    alembic.setLevel(logging.INFO)
    if not alembic.handlers and not logging.getLogger().handlers:
        alembic.addHandler(logging.StreamHandler())


def settle() -> None:
    """Take off the stderr handler Ray gives its logger when it is imported; called after
    ``import ray`` where :func:`quiet` was called first."""
    handler = _quiet.get("ray")
    if handler is None:
        return
    logger = logging.getLogger("ray")
    for h in list(logger.handlers):
        if h is not handler:
            logger.removeHandler(h)
    if handler not in logger.handlers:
        logger.addHandler(handler)
    logger.propagate = False
