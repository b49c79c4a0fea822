"""The HTTP API that ``idds serve`` serves (FastAPI): the records API with authorization per
request, and identities (the server's tokens, OIDC bearer tokens). See :mod:`idds.api.app`."""

from __future__ import annotations

from idds.api.app import make_app

__all__ = ["make_app"]
