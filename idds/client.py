"""The records API over HTTP: what the CLI, the SDK and notebooks use in service mode.

With ``IDDS_URL`` (or ``idds --url``) set, :func:`records_for` gives a
:class:`RemoteRecords`, which reads and changes records through ``idds serve``'s HTTP API
with the user's token (``IDDS_TOKEN``, or an OIDC bearer token), and never opens the
database. The server decides what the user may do; its refusals come back as the same
errors the embedded mode raises (:class:`~idds.errors.AccessDenied`,
:class:`~idds.errors.NotFound`, :class:`~idds.errors.Exists` ...).
"""

from __future__ import annotations

import getpass
import ssl
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import httpx

from idds.errors import (
    AccessDenied,
    Exists,
    IddsError,
    IllegalTransition,
    NotFound,
    NotSignedIn,
    ServiceError,
    SpecError,
)
from idds.owners import OwnerState
from idds.records import ANY, AttemptRecord, Failure, NewOwner, OwnerRecord, Records, TaskRecord
from idds.records.wire import dump, load

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from idds.auth import Actor
    from idds.config import Settings
    from idds.records.views import Shown
    from idds.tasks import AttemptKind, TaskSpec, TaskState

#: Page size of the lists read in full.
PAGE = 1000
ERRORS: dict[int, type[IddsError]] = {
    400: SpecError, 401: NotSignedIn, 403: AccessDenied, 404: NotFound, 409: Exists,
    411: SpecError, 413: SpecError,
}  # fmt: skip


def records_for(settings: Settings) -> Records:
    """The records of ``settings``: through the HTTP API where ``settings.url`` is set, else
    the database's."""
    if settings.url:
        return RemoteRecords(settings)
    from idds.db import connect

    return Records(connect(settings.db_url))


class Api:
    """Requests to the HTTP API as the settings' user (one line per refusal)."""

    def __init__(self, settings: Settings) -> None:
        headers = {"X-Idds-User": settings.user or getpass.getuser()}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        self.url = str(settings.url).rstrip("/")
        verify: ssl.SSLContext | bool = True
        if settings.ca_bundle:  # a server whose certificate no system CA signed
            verify = ssl.create_default_context(cafile=settings.ca_bundle)
        self.http = httpx.Client(
            base_url=self.url + "/api/v1", headers=headers, timeout=60, verify=verify
        )

    def get(self, path: str, **params: Any) -> Any:
        return self._send("GET", path, params=_params(params))

    def post(self, path: str, body: Any) -> Any:
        return self._send("POST", path, json=body)

    def delete(self, path: str) -> Any:
        return self._send("DELETE", path)

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceError(f"the iDDS server at {self.url} does not answer: {exc}") from None
        if response.status_code >= 400:
            _raise(response)
        return response.json()


def _params(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None or value == []:
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        out[key] = [str(v) for v in value] if isinstance(value, list | tuple | set) else value
    return out


def _raise(response: httpx.Response) -> NoReturn:
    try:
        detail = str(response.json().get("detail"))
    except ValueError:
        detail = response.text.strip()[:300] or response.reason_phrase
    if "the spec changed meanwhile" in detail:
        raise IllegalTransition(detail)
    error = ERRORS.get(response.status_code, ServiceError)
    raise error(detail if error is not ServiceError else f"{response.status_code}: {detail}")


class RemoteRecords(Records):
    """:class:`~idds.records.Records` through the HTTP API (see the module's description).

    Heads' commands (handing tasks in, recording results) are not a client's: they raise
    :class:`~idds.errors.AccessDenied`.
    """

    def __init__(self, settings: Settings) -> None:
        self.api = Api(settings)

    @property
    def engine(self) -> Engine:  # type: ignore[override]
        raise IddsError(f"service mode (IDDS_URL={self.api.url}): no database is opened here")

    # --- reads -------------------------------------------------------------------------------

    def owners(
        self,
        kind: str | Sequence[str] | None = None,
        *,
        state: OwnerState | str | None = None,
        user: str | None = None,
        parent_id: int | None | object = ANY,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[OwnerRecord]:
        query: dict[str, Any] = {
            "kind": [kind] if isinstance(kind, str) else list(kind or []),
            "state": state, "user": user,
            "top": parent_id is None, "parent_id": None if parent_id is ANY else parent_id,
        }  # fmt: skip
        return self._pages("/owners", OwnerRecord, query, offset, limit)

    def _pages(
        self, path: str, cls: type[Any], query: dict[str, Any], offset: int, limit: int | None
    ) -> list[Any]:
        out: list[Any] = []
        while limit is None or len(out) < limit:
            size = PAGE if limit is None else min(PAGE, limit - len(out))
            page = self.api.get(path, **query, offset=offset + len(out), limit=size)
            out += [load(cls, item) for item in page]
            if len(page) < size:
                break
        return out

    def owner(self, kind: str | Sequence[str], name: str) -> OwnerRecord:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        return load(OwnerRecord, self.api.get("/owners/named", kind=kinds, name=name))

    def owner_by_id(self, owner_id: int) -> OwnerRecord:
        return load(OwnerRecord, self.api.get(f"/owners/{owner_id}"))

    def kind_counts(self) -> dict[str, dict[str, int]]:
        return dict(self.api.get("/kind-counts"))

    def now(self) -> float:
        return float(self.api.get("/now"))

    def shown(self, owners_: Sequence[OwnerRecord]) -> dict[int, Shown]:
        return super().shown(owners_)  # the one rule, on the server's clock (now())

    def tasks(
        self,
        owner_id: int,
        *,
        states: Sequence[TaskState | str] | None = None,
        numbers: Sequence[int] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[TaskRecord]:
        if (states is not None and not states) or (numbers is not None and not numbers):
            return []  # none asked for
        query = {"state": [str(s) for s in states or []], "number": list(numbers or [])}
        return self._pages(f"/owners/{owner_id}/tasks", TaskRecord, query, offset, limit)

    def task(self, owner_id: int, number: int) -> TaskRecord:
        return load(TaskRecord, self.api.get(f"/owners/{owner_id}/tasks/{number}"))

    def reports(self, owner_id: int) -> dict[int, dict[int, float]]:
        got = self.api.get(f"/owners/{owner_id}/reports")
        return {int(n): {int(s): float(v) for s, v in r.items()} for n, r in got.items()}

    def best(self, owners_: Sequence[OwnerRecord]) -> dict[int, TaskRecord]:
        single = [o.id for o in owners_ if len(o.directions) == 1]
        if not single:
            return {}
        got = self.api.get("/best", owner_id=single)
        return {int(k): load(TaskRecord, v) for k, v in got.items()}

    def failures(self, limit: int = 20) -> list[Failure]:
        return [load(Failure, f) for f in self.api.get("/failures", limit=limit)]

    def tasks_by_site(self) -> dict[str, dict[str, int]]:
        return dict(self.api.get("/tasks-by-site"))

    def retries(self, owner_id: int) -> int:
        return int(self.api.get(f"/owners/{owner_id}/retries"))

    def attempts(
        self,
        *,
        owner_id: int | None = None,
        owner_kind: str | None = None,
        sites: Sequence[str] | None = None,
        started: bool | None = None,
        finished: bool | None = None,
        exclude_kinds: Sequence[AttemptKind] = (),
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[AttemptRecord]:
        if sites is not None and not sites:
            return []
        got = self.api.get(
            "/attempts", owner_id=owner_id, owner_kind=owner_kind, site=list(sites or []),
            started=started, finished=finished, exclude_kind=[str(k) for k in exclude_kinds],
            newest_first=newest_first, limit=limit,
        )  # fmt: skip
        return [load(AttemptRecord, a) for a in got]

    def in_flight_by_site(self, sites: Sequence[str]) -> dict[str, int]:
        return dict(self.api.get("/in-flight-by-site", site=list(sites))) if sites else {}

    def stamp(self, owner_id: int | None = None) -> tuple[Any, ...]:
        return tuple(self.api.get("/stamp", owner_id=owner_id))

    # --- commands ----------------------------------------------------------------------------

    def create(self, new: NewOwner, *, user: str | None, parent_id: int | None = None) -> int:
        """Record an owner as the acting user's (``user`` is the server's to decide)."""
        body = {
            "kind": new.kind, "name": new.name, "spec": new.spec, "parent_id": parent_id,
            "parts": [{"kind": p.kind, "name": p.name, "spec": p.spec} for p in new.parts],
        }  # fmt: skip
        return int(self.api.post("/owners", body)["id"])

    def set_state(self, owner_id: int, state: OwnerState) -> bool:
        return bool(self.api.post(f"/owners/{owner_id}/state", {"state": str(state)})["changed"])

    def update_spec(
        self,
        owner_id: int,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        state: OwnerState | None = None,
    ) -> dict[str, Any]:
        """Change an owner's spec: read it, change it here, and write it where nobody changed
        it meanwhile (tried again a few times)."""
        for _ in range(5):
            spec = self.owner_by_id(owner_id).spec
            body = {"expected": spec, "spec": dump(change(dict(spec)))}
            if state is not None:
                body["state"] = str(state)
            try:
                return dict(self.api.post(f"/owners/{owner_id}/spec", body)["spec"])
            except IllegalTransition:
                continue
        raise IddsError(f"owner {owner_id}'s spec kept changing; try again")

    def cancel(self, owner_id: int, reason: str) -> int:
        return int(self.api.post(f"/owners/{owner_id}/cancel", {"reason": reason})["cancelled"])

    def resubmit(
        self, owner_id: int, numbers: Sequence[int], *, continue_attempts: bool = False
    ) -> list[int]:
        body = {"numbers": list(numbers), "continue_attempts": continue_attempts}
        return list(self.api.post(f"/owners/{owner_id}/resubmit", body)["numbers"])

    def submit(self, owner_id: int, specs: Sequence[TaskSpec]) -> NoReturn:
        raise AccessDenied("handing tasks in is a head's (idds serve), not a client's")

    def record_imported(self, owner_id: int, done: Sequence[Any]) -> NoReturn:
        raise AccessDenied(
            "importing runs is done on the server's database (embedded mode), not through IDDS_URL"
        )

    def ensure(self, kind: str, name: str, state: OwnerState) -> NoReturn:
        raise AccessDenied("ensure is a head's command, not a client's")

    # --- users -------------------------------------------------------------------------------

    def logs(self, owner_id: int, number: int, attempt: int | None = None) -> dict[str, Any]:
        """The end of a task's attempt's stdout and stderr: ``{attempt, stdout, stderr}``."""
        return dict(self.api.get(f"/owners/{owner_id}/tasks/{number}/logs", attempt=attempt))

    def whoami(self) -> Actor:
        from idds.auth import Actor

        got = self.api.get("/whoami")
        return Actor(got["name"], bool(got["admin"]))
