"""The request bodies and bounds of the HTTP API (their JSON Schema is in its OpenAPI)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from idds.owners import OwnerState

#: The largest request body accepted (bytes): a spec with its points, not a dataset.
MAX_BODY = 8 * 2**20
#: The largest id or offset (the databases' 32-bit integers).
OWNER_ID = 2**31 - 1
#: A user name (see :func:`idds.auth.check_user_name`).
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,63}$"
#: An owner kind (``study``, ``workflow`` ...).
KIND = r"^[a-z][a-z0-9\-]{0,31}$"
#: An owner's name: printable, no path separators or control characters.
OWNER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-\[\]+@=,]{0,199}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartBody(_Body):
    """A part of a new owner (a segment of a segmented study)."""

    kind: Annotated[str, Field(pattern=KIND)]
    name: Annotated[str, Field(pattern=OWNER_NAME)]
    spec: dict[str, Any]


class NewOwnerBody(_Body):
    """A study, workflow, toy scan or carousel to record; a head (``idds serve``) runs it.

    Its user is the one the request acts as. ``parent_id`` makes it a part of that owner
    (which the user must own).
    """

    kind: Annotated[str, Field(pattern=KIND)]
    name: Annotated[str, Field(pattern=OWNER_NAME)]
    spec: dict[str, Any]
    parts: Annotated[list[PartBody], Field(max_length=10_000)] = []
    parent_id: Annotated[int | None, Field(ge=1, le=OWNER_ID)] = None


class StateChange(_Body):
    """Suspend (``suspended``) or resume (``active``) an owner."""

    state: OwnerState
    spec: dict[str, Any] | None = None  # its spec with it (a workflow's ``suspended`` flag)
    expected: dict[str, Any] | None = None


class SpecChange(_Body):
    """Change an owner's spec (points enqueued, a flag), where it still is ``expected``
    (else 409: read it again and retry)."""

    expected: dict[str, Any]
    spec: dict[str, Any]
    state: OwnerState | None = None


class CancelBody(_Body):
    reason: Annotated[str, Field(max_length=500)] = "cancelled"


class ResubmitBody(_Body):
    """Queue an owner's tasks again as new tasks (a workflow's retry)."""

    numbers: Annotated[list[Annotated[int, Field(ge=0, le=OWNER_ID)]], Field(max_length=100_000)]
    continue_attempts: bool = False


class UserBody(_Body):
    name: Annotated[str, Field(pattern=NAME)]
    admin: bool = False


@dataclass(frozen=True)
class OwnerPage:
    """Filters and the page of an owner list."""

    kind: list[str] | None
    state: OwnerState | None
    user: str | None
    parent_id: int | None | object
    offset: int
    limit: int
