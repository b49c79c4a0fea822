"""The HTTP API of ``idds serve``: the records API over HTTP, with authorization per request.

Everyone signed in may list work and read its summaries (state, counts, results, the best);
only its owner or an admin may change it (create parts, cancel, suspend, resume, retry,
enqueue, import) or read its logs, tracebacks and errors (``IDDS_OPEN_LOGS=1`` shows those to
everyone). Heads (``idds serve``) run what is recorded; no client writes tasks or results.

Every refusal is a 4xx with one line in ``detail``: 400 bad input, 401 no accepted identity,
403 not allowed, 404 not found, 409 a name taken or a state that forbids it, 413 too large.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from idds import auth
from idds.api.identity import Identities
from idds.api.models import (
    MAX_BODY,
    NAME,
    OWNER_ID,
    NewOwnerBody,
    OwnerPage,
    SpecChange,
    StateChange,
    UserBody,
)
from idds.db import reason
from idds.errors import (
    AccessDenied,
    Exists,
    IddsError,
    IllegalTransition,
    NotFound,
    NotSignedIn,
    SpecError,
)
from idds.owners import OwnerState
from idds.records import ANY, Failure, NewOwner, OwnerRecord, Records, TaskRecord
from idds.records.wire import dump

if TYPE_CHECKING:
    from idds.config import Settings

log = logging.getLogger("idds.api")
HIDDEN = "(hidden: only its owner or an admin reads errors and logs)"
#: Requests handled at once (each in a thread, with a database connection of its own).
THREADS = 8
STATUS = [
    (NotSignedIn, 401), (AccessDenied, 403), (NotFound, 404), (Exists, 409),
    (IllegalTransition, 409), (SpecError, 400), (IddsError, 409),
]  # fmt: skip


def make_app(settings: Settings, *, kinds: frozenset[str] | None = None) -> FastAPI:
    """The API's application, on the database of ``settings``.

    Args:
        settings: the database, the OIDC issuer, ``open_logs``.
        kinds: the owner kinds clients may create (those a head can run); all by default.
    """
    from idds.db import connect

    engine = connect(settings.db_url, pool_size=THREADS)
    app = FastAPI(
        title="iDDS", version="1", docs_url="/docs", openapi_url="/openapi.json",
        description=__doc__, lifespan=_lifespan,
    )  # fmt: skip
    app.state.records = Records(engine)
    app.state.identities = Identities(engine, settings)
    app.state.settings = settings
    app.state.kinds = kinds
    _errors(app)
    _limit_body(app)
    from idds.api import routes

    app.include_router(routes.router, prefix="/api/v1")
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Requests run in this many threads: more would only take turns at the interpreter's lock
    # (and open more database connections), and slow each other and the heads beside them.
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    yield


def _errors(app: FastAPI) -> None:
    @app.exception_handler(IddsError)
    async def idds_error(request: Request, exc: IddsError) -> JSONResponse:
        code = next(code for cls, code in STATUS if isinstance(exc, cls))
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
        return JSONResponse({"detail": _one_line(str(exc))}, code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"detail": _one_line(f"{where}: {first.get('msg', 'invalid')}")}, 400)

    @app.exception_handler(sa.exc.DBAPIError)
    async def database(request: Request, exc: sa.exc.DBAPIError) -> JSONResponse:
        log.warning("database: %s", reason(exc))
        return JSONResponse({"detail": "the database did not answer; try again"}, 503)


def _limit_body(app: FastAPI) -> None:
    app.add_middleware(_BodyLimit)


class _BodyLimit:
    """Refuse a body over :data:`MAX_BODY` bytes (413), or a write without a length (411),
    before it is read. Plain ASGI: a request costs it a header look-up, no extra task."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refused = _refused(scope)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refused(scope: Any) -> JSONResponse | None:
    headers = dict(scope["headers"])
    size = headers.get(b"content-length")
    if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
        return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, 413)
    if scope["method"] in ("POST", "PUT", "PATCH") and size is None:
        return JSONResponse({"detail": "a request body needs a Content-Length"}, 411)
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


# --- the request's context --------------------------------------------------------------------


def records(request: Request) -> Records:
    return request.app.state.records  # type: ignore[no-any-return]


def actor(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_idds_user: Annotated[str | None, Header()] = None,
) -> auth.Actor:
    """The user the request acts as (see :mod:`idds.api.identity`)."""
    return request.app.state.identities.actor(authorization, x_idds_user)  # type: ignore[no-any-return]


Actor = Annotated[auth.Actor, Depends(actor)]
Recs = Annotated[Records, Depends(records)]


def open_logs(request: Request, who: auth.Actor, owner: OwnerRecord) -> bool:
    """Whether ``who`` may read ``owner``'s logs, tracebacks and errors."""
    return bool(request.app.state.settings.open_logs) or who.may_change(owner.user)


def shown_task(task: TaskRecord, may_read: bool) -> Any:
    """A task as sent: its error hidden from those who may not read it."""
    data = dump(task)
    if not may_read and data.get("error"):
        data["error"] = HIDDEN
    return data


def shown_failure(failure: Failure, who: auth.Actor, request: Request) -> Any:
    data = dump(failure)
    if not (request.app.state.settings.open_logs or who.may_change(failure.user)):
        data["reason"] = HIDDEN
    return data


def owner_page(
    kind: Annotated[list[str] | None, Query(max_length=20)] = None,
    state: OwnerState | None = None,
    user: Annotated[str | None, Query(pattern=NAME)] = None,
    parent_id: Annotated[int | None, Query(ge=1, le=OWNER_ID)] = None,
    top: bool = False,
    offset: Annotated[int, Query(ge=0, le=OWNER_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OwnerPage:
    """The filters and page of an owner list (``top``: only owners that are no part)."""
    for k in kind or []:
        if len(k) > 64:
            raise SpecError("kind: at most 64 characters")
    parent: int | None | object = None if top else (parent_id if parent_id else ANY)
    return OwnerPage(kind, state, user, parent, offset, limit)


def new_owner(body: NewOwnerBody) -> NewOwner:
    parts = [NewOwner(kind=p.kind, name=p.name, spec=p.spec) for p in body.parts]
    return NewOwner(kind=body.kind, name=body.name, spec=body.spec, parts=parts)


__all__ = ["SpecChange", "StateChange", "UserBody", "make_app"]
