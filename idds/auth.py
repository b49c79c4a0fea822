"""Who acts, and what they may do with other users' work.

Every study, workflow, toy scan and carousel records the user who created it. The CLI, the
SDK and the dashboard act as a user:

* Once users are registered in the database (``idds users add NAME``; the first one is an
  admin), every command needs a token (``IDDS_TOKEN``, or the dashboard's login): the token
  names the user. Only a hash of each token is stored.
* Until then (a personal or trusted setup), the user is ``IDDS_USER`` or the login name, as
  declared: ownership then guards against mistakes, not against impostors.

Anyone may list work and follow its progress. Only its owner or an admin may change it
(cancel, suspend, resume a suspended workflow, enqueue points) or read its logs. Work
recorded before owners were recorded (it has no user) is open to everyone. A head
(``idds serve``, ``resume``) runs anyone's work as it was submitted: running it changes
nothing that its owner asked for.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from idds import owners as owners_mod
from idds.db import db_now, reading
from idds.errors import AccessDenied, NotFound, SpecError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from idds.config import Settings
    from idds.records import OwnerRecord

_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,63}$")
users = owners_mod.users


@dataclass(frozen=True)
class Actor:
    """The user a command acts as."""

    name: str
    admin: bool = False

    def may_change(self, owner_user: str | None) -> bool:
        """Whether this user may change (or read the logs of) work created by ``owner_user``."""
        return self.admin or owner_user is None or owner_user == self.name


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_user_name(name: str) -> str:
    """``name`` if it is a valid user name.

    Raises:
        SpecError: it is not (letters, digits and ``_.@+-``, up to 64).
    """
    if not _USER_NAME.fullmatch(name):
        raise SpecError(
            f"not a user name: {name!r} (letters, digits and _.@+-, starting with a letter or "
            "digit, up to 64)"
        )
    return name


def registered(conn: Connection) -> bool:
    """Whether the database has registered users (tokens are then required)."""
    return conn.execute(sa.select(users.c.id).limit(1)).first() is not None


def has_users(engine: Engine) -> bool:
    """Whether the database has registered users (tokens are then required): what a client
    asks before it offers a sign-in."""
    with reading(engine) as conn:
        return registered(conn)


def acting_user(engine: Engine, settings: Settings) -> Actor:
    """The user that ``settings`` act as (see the module's description).

    Raises:
        AccessDenied: the token names no user, or users are registered and there is no token.
    """
    with reading(engine) as conn:
        if settings.token:
            row = conn.execute(
                sa.select(users.c.name, users.c.admin).where(
                    users.c.token_hash == hash_token(settings.token)
                )
            ).first()
            if row is None:
                raise AccessDenied("the token (IDDS_TOKEN) is not that of a user of this database")
            return Actor(row.name, bool(row.admin))
        if registered(conn):
            raise AccessDenied(
                "this database has registered users: set IDDS_TOKEN to your token "
                "(an admin gives one with `idds users add NAME`)"
            )
    return Actor(check_user_name(settings.user or getpass.getuser()))


def token_user(engine: Engine, token: str) -> Actor | None:
    """The user whose token ``token`` is (None: no user's)."""
    with reading(engine) as conn:
        row = conn.execute(
            sa.select(users.c.name, users.c.admin).where(users.c.token_hash == hash_token(token))
        ).first()
    return None if row is None else Actor(row.name, bool(row.admin))


def require(engine: Engine, settings: Settings, owner: OwnerRecord, action: str) -> Actor:
    """The acting user, where they may ``action`` the ``owner`` (its user, or an admin).

    Raises:
        AccessDenied: the owner is another user's and the acting user is no admin.
    """
    return check(acting_user(engine, settings), owner, action)


def check(actor: Actor, owner: OwnerRecord, action: str) -> Actor:
    """``actor``, where they may ``action`` the ``owner`` (its user, or an admin).

    Raises:
        AccessDenied: the owner is another user's and ``actor`` is no admin.
    """
    if not actor.may_change(owner.user):
        raise AccessDenied(
            f"user {actor.name!r} may not {action} {owner.kind} {owner.name!r} of user "
            f"{owner.user!r} (only its owner or an admin may)"
        )
    return actor


# --- managing users ---------------------------------------------------------------------------


def add_user(engine: Engine, settings: Settings | Actor, name: str, *, admin: bool = False) -> str:
    """Register user ``name``; returns their token (shown once: only its hash is kept).

    The first user registered is an admin; later ones are added by an admin.

    Raises:
        SpecError: a bad name, or a user of that name exists.
        AccessDenied: users exist and the acting user is no admin.
    """
    check_user_name(name)
    with engine.begin() as conn:
        first = not registered(conn)
    if not first:
        _require_admin(engine, settings, f"add user {name!r}")
    token = new_token_text()
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(users).values(
                name=name, token_hash=hash_token(token), admin=admin or first, created=db_now()
            ))  # fmt: skip
    except sa.exc.IntegrityError:
        raise SpecError(f"a user named {name!r} exists already") from None
    return token


def renew_token(engine: Engine, settings: Settings | Actor, name: str) -> str:
    """A new token for ``name`` (their old one stops working); by an admin or that user.

    Raises:
        NotFound: no such user.
        AccessDenied: the acting user is neither.
    """
    actor = _acting(engine, settings)
    if not (actor.admin or actor.name == name):
        raise AccessDenied(f"user {actor.name!r} may not renew the token of user {name!r}")
    token = new_token_text()
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(users).where(users.c.name == name).values(token_hash=hash_token(token))
        ).rowcount
    if not done:
        raise NotFound(f"no user named {name!r}")
    return token


def remove_user(engine: Engine, settings: Settings | Actor, name: str) -> None:
    """Unregister ``name`` (their work stays, theirs); by an admin, who cannot remove the
    last admin.

    Raises:
        NotFound: no such user.
        AccessDenied: the acting user is no admin, or ``name`` is the last admin.
    """
    _require_admin(engine, settings, f"remove user {name!r}")
    with engine.begin() as conn:
        row = conn.execute(sa.select(users.c.admin).where(users.c.name == name)).first()
        if row is None:
            raise NotFound(f"no user named {name!r}")
        admins = conn.execute(
            sa.select(sa.func.count()).where(users.c.admin.is_(True))
        ).scalar_one()
        if row.admin and admins == 1:
            raise AccessDenied(f"{name!r} is the last admin: add another admin first")
        conn.execute(sa.delete(users).where(users.c.name == name))


def list_users(engine: Engine) -> list[Any]:
    """The registered users (name, admin, created), by name."""
    with reading(engine) as conn:
        return list(conn.execute(
            sa.select(users.c.name, users.c.admin, users.c.created).order_by(users.c.name)
        ))  # fmt: skip


def new_token_text() -> str:
    return "idds_" + secrets.token_urlsafe(32)


def _acting(engine: Engine, who: Settings | Actor) -> Actor:
    """``who`` where it is an actor already (the server's request), else the user that
    settings act as."""
    return who if isinstance(who, Actor) else acting_user(engine, who)


def _require_admin(engine: Engine, settings: Settings | Actor, what: str) -> Actor:
    actor = _acting(engine, settings)
    if not actor.admin:
        raise AccessDenied(f"user {actor.name!r} may not {what}: only an admin may")
    return actor
