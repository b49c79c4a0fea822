"""The scheduling core of iDDS: tasks, owners and leases, the dispatcher on Ray, the database.

Capability packages (``hpo``, and those to come) build on these names; the core imports none
of them. The names are imported on first use, so that ``idds --help`` and the commands that
need no database start without loading SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from idds.config import Settings
    from idds.db import connect
    from idds.dispatch import Broker, Dispatcher, LocalBroker, Placement, TaskOwner
    from idds.errors import (
        DatabaseError,
        IddsError,
        IllegalTransition,
        LeaseLost,
        NotFound,
        SpecError,
    )
    from idds.tasks import TRANSITIONS, Outcome, TaskSpec, TaskState

#: Where each public name lives.
_WHERE = {
    "Settings": "idds.config", "connect": "idds.db",
    **dict.fromkeys(("Broker", "Dispatcher", "LocalBroker", "Placement", "TaskOwner"),
                    "idds.dispatch"),
    **dict.fromkeys(("DatabaseError", "IddsError", "IllegalTransition", "LeaseLost",
                     "NotFound", "SpecError"), "idds.errors"),
    **dict.fromkeys(("TRANSITIONS", "Outcome", "TaskSpec", "TaskState"), "idds.tasks"),
}  # fmt: skip

__all__ = [
    "TRANSITIONS",
    "Broker",
    "DatabaseError",
    "Dispatcher",
    "IddsError",
    "IllegalTransition",
    "LeaseLost",
    "LocalBroker",
    "NotFound",
    "Outcome",
    "Placement",
    "Settings",
    "SpecError",
    "TaskOwner",
    "TaskSpec",
    "TaskState",
    "connect",
]


def __getattr__(name: str) -> Any:
    """A public name, or a submodule, imported on first use."""
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    else:
        try:
            value = importlib.import_module(f"idds.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'idds' has no attribute {name!r}") from None
    globals()[name] = value
    return value
