"""Who a request comes from: the server's own tokens, or an OIDC bearer token (a JWT).

* ``Authorization: Bearer idds_...``: a token that ``idds users add`` gave (its SHA-256 is
  looked up).
* ``Authorization: Bearer <JWT>`` where the server has an OIDC issuer (``IDDS_OIDC_ISSUER``):
  the signature is checked against the issuer's keys (JWKS), and the issuer, the audience
  (``IDDS_OIDC_AUDIENCE``) and the expiry; a claim names the user (``IDDS_OIDC_USER_CLAIM``),
  and members of ``IDDS_OIDC_ADMIN_GROUP`` (the ``groups`` claim) are admins.
* No token, where the database has no registered users: the user the client declares
  (``X-Idds-User``), as in embedded mode (``IDDS_USER`` or the login name).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import jwt

from idds import auth
from idds.errors import NotSignedIn, SpecError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from idds.config import Settings

#: The signature algorithms accepted (asymmetric only: a shared secret would be a password).
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class Identities:
    """Turns a request's credentials into the user it acts as.

    Args:
        engine: the database of registered users.
        settings: the OIDC issuer, audience, claims (see :class:`~idds.config.Settings`).
    """

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def actor(self, authorization: str | None, declared: str | None) -> auth.Actor:
        """The user a request acts as.

        Args:
            authorization: the ``Authorization`` header.
            declared: the ``X-Idds-User`` header.

        Raises:
            NotSignedIn: no identity where one is needed, or one not accepted (one line).
        """
        token = _bearer(authorization)
        if token is None:
            if auth.has_users(self.engine):
                raise NotSignedIn(
                    "this server has registered users: send your token "
                    "(Authorization: Bearer ..., IDDS_TOKEN for the CLI and SDK)"
                )
            try:
                return auth.Actor(auth.check_user_name(declared or "anonymous"))
            except SpecError as exc:
                raise NotSignedIn(f"X-Idds-User: {exc}") from None
        if token.count(".") == 2 and self.settings.oidc_issuer:
            return self._oidc(token)
        found = auth.token_user(self.engine, token)
        if found is None:
            raise NotSignedIn("the token is not that of a user of this server")
        return found

    def _oidc(self, token: str) -> auth.Actor:
        s = self.settings
        try:
            key = self._keys.get_signing_key_from_jwt(token).key
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=ALGORITHMS, audience=s.oidc_audience,
                issuer=s.oidc_issuer, options={"require": ["exp", "iss"]},
            )  # fmt: skip
        except jwt.PyJWKClientError as exc:
            raise NotSignedIn(f"OIDC token: the issuer's keys: {_first_line(exc)}") from None
        except jwt.InvalidTokenError as exc:
            raise NotSignedIn(f"OIDC token refused: {_first_line(exc)}") from None
        name = claims.get(s.oidc_user_claim)
        if not isinstance(name, str):
            raise NotSignedIn(f"OIDC token refused: no {s.oidc_user_claim!r} claim")
        groups = claims.get("groups") or []
        admin = bool(s.oidc_admin_group) and s.oidc_admin_group in groups
        try:
            return auth.Actor(auth.check_user_name(name), admin)
        except SpecError as exc:
            raise NotSignedIn(f"OIDC token refused: {exc}") from None

    @cached_property
    def _keys(self) -> jwt.PyJWKClient:
        url = self.settings.oidc_jwks_url or _discover(str(self.settings.oidc_issuer))
        return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=10)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotSignedIn("Authorization: give 'Bearer TOKEN'")
    return token.strip()


def _discover(issuer: str) -> str:
    """The issuer's JWKS URL, from its OpenID discovery document."""
    import httpx

    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        found = httpx.get(url, timeout=10).raise_for_status().json()["jwks_uri"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise NotSignedIn(f"OIDC: cannot read the issuer's {url}: {_first_line(exc)}") from None
    return str(found)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
