"""The exceptions of the scheduling core.

::

    IddsError                    root of every error the platform raises on purpose
    ├── SpecError (ValueError)   a spec, flag or argument that does not validate
    │   └── Exists               an owner of that kind and name exists already
    ├── DatabaseError            the database does not answer, or its schema is not ours
    ├── NotFound (KeyError)      no owner (study, workflow, ...) of that name
    ├── IllegalTransition        a state change that the transition table forbids
    ├── LeaseLost                another head took over an owner this head held
    ├── AccessDenied             the acting user may not do that (or is not known)
    │   └── NotSignedIn          no identity, or one the server does not accept
    └── ServiceError             the HTTP API did not answer, or answered what it should not
"""

from __future__ import annotations


class IddsError(Exception):
    """Root of the errors raised by idds and its capability packages."""


class SpecError(IddsError, ValueError):
    """A spec, flag or argument does not validate; nothing was written.

    Its message is one line: line breaks that came with the user's input are shown as
    ``\\n``.
    """

    def __str__(self) -> str:
        return super().__str__().replace("\r", "\\r").replace("\n", "\\n")


class Exists(SpecError):
    """An owner (a study, a workflow, ...) of that kind and name exists already; nothing was
    written."""


class DatabaseError(IddsError):
    """The database does not answer or cannot be used."""


class NotFound(IddsError, KeyError):
    """No owner of that kind and name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IllegalTransition(IddsError):
    """A task state change that the transition table does not allow."""


class LeaseLost(IddsError):
    """Another head holds the owner now; this head must stand down."""


class AccessDenied(IddsError):
    """The acting user may not do that to another user's work, or their token is unknown."""


class NotSignedIn(AccessDenied):
    """The request names no user, or its token (or OIDC bearer token) is not accepted."""


class ServiceError(IddsError):
    """The ``idds serve`` HTTP API (``IDDS_URL``) does not answer, or failed a request."""


class IddsWarning(UserWarning):
    """Warnings of the platform (the test suite turns them into errors)."""
