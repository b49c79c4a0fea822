"""The API's endpoints: the records API's reads and the commands a client may give."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam

from idds import auth
from idds.api.app import (
    HIDDEN,
    Actor,
    Recs,
    new_owner,
    open_logs,
    owner_page,
    shown_failure,
    shown_task,
)
from idds.api.models import (
    KIND,
    NAME,
    OWNER_ID,
    OWNER_NAME,
    CancelBody,
    NewOwnerBody,
    OwnerPage,
    ResubmitBody,
    SpecChange,
    StateChange,
    UserBody,
)
from idds.errors import AccessDenied, Exists, SpecError
from idds.owners import OwnerState
from idds.records import OwnerRecord, Records
from idds.records.wire import dump
from idds.tasks import AttemptKind, TaskState

router = APIRouter()
UserName = Annotated[str, PathParam(pattern=NAME)]
OwnerId = Annotated[int, PathParam(ge=1, le=OWNER_ID)]
Number = Annotated[int, PathParam(ge=0, le=OWNER_ID)]
#: The most bytes of a log file sent (its end).
LOG_TAIL = 2**20


def _owner(records: Records, owner_id: int) -> OwnerRecord:
    return records.owner_by_id(owner_id)


def _changing(records: Records, who: auth.Actor, owner_id: int, action: str) -> OwnerRecord:
    owner = records.owner_by_id(owner_id)
    auth.check(who, owner, action)
    return owner


# --- who ---------------------------------------------------------------------------------------


@router.get("/whoami", tags=["users"])
def whoami(who: Actor) -> dict[str, Any]:
    """The user the request acts as."""
    return {"name": who.name, "admin": who.admin}


@router.get("/users", tags=["users"])
def users_list(request: Request, who: Actor) -> list[dict[str, Any]]:
    """Registered users (names and who is an admin)."""
    rows = auth.list_users(request.app.state.records.engine)
    return [{"name": r.name, "admin": bool(r.admin)} for r in rows]


@router.post("/users", tags=["users"])
def users_add(request: Request, body: UserBody, who: Actor) -> dict[str, str]:
    """Register a user (by an admin; the first user registered is an admin): their token,
    shown only now."""
    token = auth.add_user(request.app.state.records.engine, who, body.name, admin=body.admin)
    return {"name": body.name, "token": token}


@router.post("/users/{name}/token", tags=["users"])
def users_token(request: Request, name: UserName, who: Actor) -> dict[str, str]:
    """A new token for a user (by an admin or that user); the old one stops working."""
    return {"name": name, "token": auth.renew_token(request.app.state.records.engine, who, name)}


@router.delete("/users/{name}", tags=["users"])
def users_remove(request: Request, name: UserName, who: Actor) -> dict[str, str]:
    """Unregister a user (by an admin); their work stays theirs."""
    auth.remove_user(request.app.state.records.engine, who, name)
    return {"removed": name}


# --- owners ------------------------------------------------------------------------------------


@router.get("/owners", tags=["owners"])
def owners(records: Recs, who: Actor, page: Annotated[OwnerPage, Depends(owner_page)]) -> Any:
    """Owners (studies, workflows, scans, carousels), oldest first, with their tasks counted
    by state; paged (``offset``, ``limit``)."""
    return dump(records.owners(
        page.kind, state=page.state, user=page.user, parent_id=page.parent_id,
        offset=page.offset, limit=page.limit,
    ))  # fmt: skip


@router.get("/owners/named", tags=["owners"])
def owner_named(
    records: Recs,
    who: Actor,
    kind: Annotated[list[Annotated[str, Query(pattern=KIND)]], Query(max_length=8)],
    name: Annotated[str, Query(pattern=OWNER_NAME)],
) -> Any:
    """The owner of one of these kinds and this name."""
    return dump(records.owner(kind, name))


@router.get("/owners/{owner_id}", tags=["owners"])
def owner(records: Recs, who: Actor, owner_id: OwnerId) -> Any:
    return dump(records.owner_by_id(owner_id))


@router.post("/owners", tags=["owners"])
def create(request: Request, records: Recs, who: Actor, body: NewOwnerBody) -> dict[str, int]:
    """Record an owner (and its parts) as the acting user's; a head runs it. Refused (409)
    where its name is taken, whoever asks, with whose it is."""
    kinds = request.app.state.kinds
    for kind in {body.kind, *(p.kind for p in body.parts)}:
        if kinds is not None and kind not in kinds:
            raise SpecError(f"kind: no head of this server runs {kind!r} ({', '.join(kinds)})")
    if body.parent_id is not None:
        _changing(records, who, body.parent_id, "add a part to")
    return {"id": records.create(new_owner(body), user=who.name, parent_id=body.parent_id)}


@router.post("/owners/{owner_id}/state", tags=["owners"])
def set_state(records: Recs, who: Actor, owner_id: OwnerId, body: StateChange) -> Any:
    """Suspend or resume an owner (its owner or an admin)."""
    if body.state not in (OwnerState.ACTIVE, OwnerState.SUSPENDED):
        raise SpecError("state: a client may only make an owner active or suspended")
    _changing(records, who, owner_id, "resume" if body.state == OwnerState.ACTIVE else "suspend")
    if body.spec is None:
        return {"changed": records.set_state(owner_id, body.state)}
    return {"spec": _update(records, owner_id, body.expected or {}, body.spec, body.state)}


@router.post("/owners/{owner_id}/spec", tags=["owners"])
def update_spec(records: Recs, who: Actor, owner_id: OwnerId, body: SpecChange) -> dict[str, Any]:
    """Change an owner's spec (enqueue points, ...): its owner or an admin; refused (409)
    where the spec changed since the client read it."""
    _changing(records, who, owner_id, "change")
    return {"spec": _update(records, owner_id, body.expected, body.spec, body.state)}


def _update(
    records: Records, owner_id: int, expected: dict[str, Any], new: dict[str, Any],
    state: OwnerState | None,
) -> dict[str, Any]:  # fmt: skip
    def change(spec: dict[str, Any]) -> dict[str, Any]:
        if spec != expected:
            raise Exists("the spec changed meanwhile: read it again and retry")
        return new

    return records.update_spec(owner_id, change, state=state)


@router.post("/owners/{owner_id}/cancel", tags=["owners"])
def cancel(records: Recs, who: Actor, owner_id: OwnerId, body: CancelBody) -> dict[str, int]:
    """Cancel an owner and its tasks not final yet (its owner or an admin)."""
    _changing(records, who, owner_id, "cancel")
    return {"cancelled": records.cancel(owner_id, body.reason)}


@router.post("/owners/{owner_id}/resubmit", tags=["owners"])
def resubmit(
    records: Recs, who: Actor, owner_id: OwnerId, body: ResubmitBody
) -> dict[str, list[int]]:
    """Queue tasks again as new ones (its owner or an admin)."""
    _changing(records, who, owner_id, "retry")
    known = {t.number for t in records.tasks(owner_id, numbers=body.numbers)}
    missing = sorted(set(body.numbers) - known)
    if missing:
        raise SpecError(f"numbers: owner {owner_id} has no task {missing[0]}")
    return {"numbers": records.resubmit(owner_id, body.numbers,
                                        continue_attempts=body.continue_attempts)}  # fmt: skip


# --- tasks -------------------------------------------------------------------------------------


@router.get("/owners/{owner_id}/tasks", tags=["tasks"])
def tasks(
    request: Request,
    records: Recs,
    who: Actor,
    owner_id: OwnerId,
    state: Annotated[list[TaskState] | None, Query(max_length=10)] = None,
    number: Annotated[
        list[Annotated[int, Query(ge=0, le=OWNER_ID)]] | None, Query(max_length=1000)
    ] = None,  # fmt: skip
    offset: Annotated[int, Query(ge=0, le=OWNER_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Any:
    """An owner's tasks in number order, paged; errors only for its owner or an admin."""
    owner = _owner(records, owner_id)
    may = open_logs(request, who, owner)
    found = records.tasks(owner_id, states=state, numbers=number, offset=offset, limit=limit)
    return [shown_task(t, may) for t in found]


@router.get("/owners/{owner_id}/tasks/{number}", tags=["tasks"])
def task(
    request: Request, records: Recs, who: Actor, owner_id: OwnerId,
    number: Number,
) -> Any:  # fmt: skip
    owner = _owner(records, owner_id)
    return shown_task(records.task(owner_id, number), open_logs(request, who, owner))


@router.get("/owners/{owner_id}/tasks/{number}/logs", tags=["tasks"])
def logs(
    request: Request, records: Recs, who: Actor, owner_id: OwnerId,
    number: Number, attempt: Annotated[int | None, Query(ge=1, le=10**6)] = None,
) -> dict[str, Any]:  # fmt: skip
    """The end of a task's attempt's stdout and stderr (the last attempt by default): its
    owner or an admin."""
    from idds.commands import log_paths
    from idds.errors import NotFound

    owner = _owner(records, owner_id)
    if not open_logs(request, who, owner):
        raise AccessDenied(
            f"user {who.name!r} may not read the logs of {owner.kind} {owner.name!r} of user "
            f"{owner.user!r} (only its owner or an admin may)"
        )
    found = records.task(owner_id, number)
    workdir = found.payload.get("workdir")
    if not workdir:
        raise NotFound(f"task {number} of {owner.kind} {owner.name!r} keeps no logs")
    attempt = attempt or max(found.attempt, 1)
    out, err = log_paths(workdir, attempt)
    return {"attempt": attempt, "stdout": _tail(out), "stderr": _tail(err)}


def _tail(path: Path) -> str | None:
    if not path.is_file():
        return None
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - LOG_TAIL))
        return f.read().decode(errors="replace")


@router.get("/owners/{owner_id}/reports", tags=["tasks"])
def reports(records: Recs, who: Actor, owner_id: OwnerId) -> Any:
    """Task number -> its progress reports ``{step: value}``."""
    return dump(records.reports(owner_id))


@router.get("/owners/{owner_id}/retries", tags=["tasks"])
def retries(records: Recs, who: Actor, owner_id: OwnerId) -> int:
    return records.retries(owner_id)


@router.get("/best", tags=["tasks"])
def best(
    request: Request, records: Recs, who: Actor,
    owner_id: Annotated[list[Annotated[int, Query(ge=1, le=OWNER_ID)]], Query(max_length=1000)],
) -> Any:  # fmt: skip
    """Each of these single-objective owners' best task, by owner id."""
    found = [records.owner_by_id(i) for i in dict.fromkeys(owner_id)]
    return {str(k): shown_task(v, False) for k, v in records.best(found).items()}


# --- the whole system --------------------------------------------------------------------------


@router.get("/failures", tags=["system"])
def failures(
    request: Request, records: Recs, who: Actor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Any:  # fmt: skip
    """The last tasks that failed, newest first (reasons only for their owner or an admin)."""
    return [shown_failure(f, who, request) for f in records.failures(limit)]


@router.get("/kind-counts", tags=["system"])
def kind_counts(records: Recs, who: Actor) -> dict[str, dict[str, int]]:
    return records.kind_counts()


@router.get("/now", tags=["system"])
def now(records: Recs, who: Actor) -> float:
    """The database clock (seconds), the one clock heads compare times on."""
    return records.now()


@router.get("/stamp", tags=["system"])
def stamp(
    records: Recs, who: Actor, owner_id: Annotated[int | None, Query(ge=1, le=OWNER_ID)] = None
) -> list[Any]:
    """A fingerprint of what is recorded (of everything, or of one owner)."""
    if owner_id is not None:
        records.owner_by_id(owner_id)  # 404 for none
    return [v if v is None or isinstance(v, int | float | str) else str(v)
            for v in records.stamp(owner_id)]  # fmt: skip


@router.get("/tasks-by-site", tags=["system"])
def tasks_by_site(records: Recs, who: Actor) -> dict[str, dict[str, int]]:
    return records.tasks_by_site()


@router.get("/in-flight-by-site", tags=["system"])
def in_flight_by_site(
    records: Recs, who: Actor,
    site: Annotated[list[Annotated[str, Query(max_length=200)]], Query(max_length=1000)],
) -> dict[str, int]:  # fmt: skip
    return records.in_flight_by_site(site)


@router.get("/attempts", tags=["system"])
def attempts(
    request: Request, records: Recs, who: Actor,
    owner_id: Annotated[int | None, Query(ge=1, le=OWNER_ID)] = None,
    owner_kind: Annotated[str | None, Query(pattern=KIND)] = None,
    site: Annotated[list[Annotated[str, Query(max_length=200)]] | None,
                    Query(max_length=1000)] = None,
    started: bool | None = None, finished: bool | None = None,
    exclude_kind: Annotated[list[AttemptKind] | None, Query(max_length=10)] = None,
    newest_first: bool = False, limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Any:  # fmt: skip
    """Attempts (see :meth:`idds.records.Records.attempts`); errors only for their owner's
    user or an admin."""
    found = records.attempts(
        owner_id=owner_id, owner_kind=owner_kind, sites=site, started=started,
        finished=finished, exclude_kinds=exclude_kind or (), newest_first=newest_first,
        limit=limit,
    )  # fmt: skip
    users = {o: records.owner_by_id(o).user for o in {a.owner_id for a in found}}
    open_all = bool(request.app.state.settings.open_logs)
    out = dump(found)
    for a, data in zip(found, out, strict=True):
        if data.get("error") and not (open_all or who.may_change(users[a.owner_id])):
            data["error"] = HIDDEN
    return out
