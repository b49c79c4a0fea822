"""Tasks: the Task record, its state machine (:mod:`idds.tasks.states`) and the queue
operations (:mod:`idds.tasks.queue`).

A task is one unit of work that runs somewhere. Its lifecycle::

    pending -> dispatched -> running -> succeeded | failed | cancelled
       ^           |            |
       +-----------+------------+   a failed attempt with attempts left (after a backoff)

Every transition is one ``UPDATE ... WHERE state = :old AND token = :token``; the row count
says whether this head won. Each attempt has its own row and token in ``attempts``: a result is
accepted only while the attempt's token is the task's current one, so it is recorded once.
"""

from idds.tasks.queue import (
    Claim,
    Outcome,
    TaskSpec,
    add_reports,
    attempt_kind,
    cancel_owner_tasks,
    claim,
    counts,
    finish,
    mark_running,
    record_finished,
    reports_of,
    requeue_in_flight,
    start_attempts,
    submit,
    submit_claimed,
    unclaim,
)
from idds.tasks.states import (
    FINAL,
    IN_FLIGHT,
    NOW,
    TRANSITIONS,
    Attempt,
    AttemptKind,
    DbTime,
    Report,
    Task,
    TaskState,
    attempts,
    reports,
    tasks,
    transition,
)

__all__ = [
    "FINAL",
    "IN_FLIGHT",
    "NOW",
    "TRANSITIONS",
    "Attempt",
    "AttemptKind",
    "Claim",
    "DbTime",
    "Outcome",
    "Report",
    "Task",
    "TaskSpec",
    "TaskState",
    "add_reports",
    "attempt_kind",
    "attempts",
    "cancel_owner_tasks",
    "claim",
    "counts",
    "finish",
    "mark_running",
    "record_finished",
    "reports",
    "reports_of",
    "requeue_in_flight",
    "start_attempts",
    "submit",
    "submit_claimed",
    "tasks",
    "transition",
    "unclaim",
]
