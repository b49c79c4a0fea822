"""The scheduling core of iDDS: tasks, owners and leases, the dispatcher on Ray, the database.

Capability packages (``hpo``, and those to come) build on these names; the core imports none
of them.
"""

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
