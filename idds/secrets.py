"""Credentials that never reach an evaluation.

A worker runs other people's code: an evaluation must not find the head's token or the
database's URL in its environment. The names below (and those ``IDDS_STRIP_ENV`` lists) are
removed from the environment a local Ray is started with (so its workers never inherit them)
and again on the worker before each payload runs (a cluster whose nodes were started with
them set).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, MutableMapping

#: The platform's, Ray's and the databases' credentials.
SECRET_NAMES = frozenset({
    "IDDS_TOKEN", "IDDS_DB_URL",
    "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_REDIS_PASSWORD",
    "PGPASSWORD", "PGPASSFILE", "PGSERVICEFILE", "DATABASE_URL",
    "MYSQL_PWD", "REDIS_PASSWORD",
})  # fmt: skip


def secret_names(environ: MutableMapping[str, str] | None = None) -> set[str]:
    """The names to strip: :data:`SECRET_NAMES` and those ``IDDS_STRIP_ENV`` lists
    (comma-separated)."""
    environ = os.environ if environ is None else environ
    extra = {n.strip() for n in environ.get("IDDS_STRIP_ENV", "").split(",") if n.strip()}
    return set(SECRET_NAMES) | extra


def strip(environ: MutableMapping[str, str] | None = None, *, keep_ray: bool = False) -> None:
    """Remove the secret names from ``environ`` (this process's environment by default);
    with ``keep_ray``, Ray's own (a head joins its cluster with them)."""
    environ = os.environ if environ is None else environ
    for name in secret_names(environ):
        if not (keep_ray and name.startswith("RAY_")):
            environ.pop(name, None)


@contextlib.contextmanager
def hidden() -> Iterator[None]:
    """This process's environment without the secret names while the block runs (what a
    local Ray started inside it hands its workers), as it was after. Ray's own are kept:
    Ray needs them to start; each worker strips them before it runs a payload."""
    names = {n for n in secret_names() if not n.startswith("RAY_")}
    kept = {n: os.environ[n] for n in names if n in os.environ}
    for name in kept:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(kept)
