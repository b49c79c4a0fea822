"""The records API: THE way to read and change owners, tasks, attempts and reports.

Capability packages, the dashboard and the service never touch the core's tables: they call
:class:`Records`, so that each rule (what "best" means, which state changes are legal) lives
in one place. Reads return frozen views (:mod:`idds.records.views`); commands are each one
transaction.

    from idds.records import Records
    records = Records(engine)
    study = records.owner("study", "svc-digits")
    best = records.best([study]).get(study.id)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from idds.records.commands import Commands, Imported, NewOwner
from idds.records.reads import ANY, Reads
from idds.records.views import (
    AttemptRecord,
    Failure,
    OwnerRecord,
    TaskRecord,
    best_index,
    counts_for_best,
    feasible,
    pareto_indices,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class Records(Reads, Commands):
    """Reads and commands on the records of one database.

    Args:
        engine: the database (:func:`idds.connect`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine


__all__ = [
    "ANY",
    "AttemptRecord",
    "Failure",
    "Imported",
    "NewOwner",
    "OwnerRecord",
    "Records",
    "TaskRecord",
    "best_index",
    "counts_for_best",
    "feasible",
    "pareto_indices",
]
