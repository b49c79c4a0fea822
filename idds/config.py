"""Settings from flags, environment variables and defaults (in that order of precedence)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from idds.errors import SpecError

DEFAULT_DB_URL = "sqlite:///idds.db"
#: The database file's name where no URL is given, and the work dir's name beside it.
DB_FILE, WORK_DIR = "idds.db", "idds-work"


def default_home(cwd: Path | None = None) -> Path | None:
    """Where the default database and work dir live: ``IDDS_HOME``, else the nearest directory
    from ``cwd`` upwards that holds an ``idds.db`` (as git finds ``.git``); ``None`` where
    neither is there (the current directory is used, and a read says it found nothing)."""
    if os.environ.get("IDDS_HOME"):
        return Path(os.environ["IDDS_HOME"]).expanduser().absolute()
    here = (cwd or Path.cwd()).absolute()
    for directory in (here, *here.parents):
        if (directory / DB_FILE).is_file():
            return None if directory == here else directory
    return None


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where the platform keeps its state and where it runs work.

    Attributes:
        db_url: SQLAlchemy URL of the database (``IDDS_DB_URL``); by default the SQLite file
            ``idds.db`` in :func:`default_home`, else in the current directory;
            ``postgresql+psycopg://user@host/db`` for many heads.
        ray_address: address of an existing Ray cluster to join (``IDDS_RAY_ADDRESS``);
            ``None`` starts a local Ray on demand.
        work_dir: directory for per-task work dirs and logs (``IDDS_WORK_DIR``); by default
            ``idds-work`` beside the default database.
        lease_seconds: how long an owner lease lasts without renewal (``IDDS_LEASE_SECONDS``);
            another head may take an owner over once it has expired.
        user: the user to act as where the database has no registered users (``IDDS_USER``;
            the login name by default). See :mod:`idds.auth`.
        token: the token to act with where it has (``IDDS_TOKEN``); never shown.
        db_outage_s: how long a head waits for a database that went away before it gives up
            (``IDDS_DB_OUTAGE_S``).
        sites: the ``sites.yaml`` that declares the GPU sites tasks are placed on
            (``IDDS_SITES``); ``None`` runs every task on the Ray cluster this head joined.
        url: the ``idds serve`` HTTP API to act through (``IDDS_URL``): the CLI, the SDK and
            notebooks are then its clients, with ``token``, and never open the database.
            ``None`` (embedded mode) opens ``db_url`` directly.
        ca_bundle: a CA certificate file (PEM) that the server's TLS certificate is checked
            against (``IDDS_CA_BUNDLE``); the system's CAs by default.
        strip_env: more environment variables, comma-separated, that an evaluation's
            environment is stripped of (``IDDS_STRIP_ENV``), besides the platform's, Ray's
            and the database's credentials (:data:`idds.secrets.SECRET_NAMES`).
        oidc_issuer: the OIDC issuer whose bearer tokens (JWT) the server accepts besides
            its own tokens (``IDDS_OIDC_ISSUER``); ``None`` accepts only its own.
        oidc_audience: the audience those tokens must be for (``IDDS_OIDC_AUDIENCE``).
        oidc_jwks_url: where the issuer's signing keys are (``IDDS_OIDC_JWKS_URL``; found
            through the issuer's discovery document by default).
        oidc_user_claim: the claim that names the user (``IDDS_OIDC_USER_CLAIM``).
        oidc_admin_group: members of this group (the ``groups`` claim) are admins
            (``IDDS_OIDC_ADMIN_GROUP``).
        open_logs: whether the server shows everyone the logs, tracebacks and errors of
            others' work (``IDDS_OPEN_LOGS=1``); only their owner and admins by default.
    """

    db_url: str = DEFAULT_DB_URL
    ray_address: str | None = None
    work_dir: Path = field(default_factory=lambda: Path("idds-work"))
    lease_seconds: float = 30.0
    user: str | None = None
    token: str | None = field(default=None, repr=False)
    db_outage_s: float = 600.0
    sites: Path | None = None
    url: str | None = None
    ca_bundle: str | None = None
    strip_env: str = ""
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_user_claim: str = "preferred_username"
    oidc_admin_group: str | None = None
    open_logs: bool = False

    @property
    def db_url_safe(self) -> str:
        """The database URL with its password masked, for messages and logs."""
        from idds.db import redact

        return redact(self.db_url)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Build settings from ``IDDS_*`` variables, then apply the non-None ``overrides``."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"IDDS_{f.name.upper()}")
            if raw:
                values[f.name] = _convert(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        home = default_home()
        if home is not None:
            values.setdefault("db_url", f"sqlite:///{home / DB_FILE}")
            values.setdefault("work_dir", home / WORK_DIR)
        return replace(cls(), **values)  # type: ignore[arg-type]


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``IDDS_*`` variables :meth:`Settings.from_env` reads back: how a
    process started by this one (a head's API, an owner's child) gets them, since a command
    line is public and a database URL may hold a password.

    Returns:
        One variable per setting that is set (``None`` and ``False`` ones are left out).
    """
    out: dict[str, str] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if value is None or value is False:
            continue
        out[f"IDDS_{f.name.upper()}"] = "1" if value is True else str(value)
    return out


def _convert(name: str, raw: str) -> object:
    if name in ("work_dir", "sites"):
        return Path(raw)
    if name in ("lease_seconds", "db_outage_s"):
        variable = f"IDDS_{name.upper()}"
        try:
            value = float(raw)
        except ValueError:
            raise SpecError(f"{variable}: not a number: {raw!r}") from None
        if not value > 0:
            raise SpecError(f"{variable}: must be > 0, got {raw}")
        return value
    if name == "open_logs":
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return raw


def path_inside(base: str | Path, *parts: str) -> Path:
    """``base / parts...``, resolved, where it stays inside ``base`` (paths built from names
    a user chose: a study's, a node's declared file).

    Raises:
        SpecError: the result would leave ``base`` (``..``, an absolute path, a link out).
    """
    root = Path(base).resolve()
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root):
        raise SpecError(f"{'/'.join(parts)!r} leads out of {root}")
    return path


#: The most values a spec file may hold once its YAML aliases are expanded, and the deepest
#: it may nest: far above any real spec, far below what would exhaust memory or the stack.
MAX_SPEC_VALUES = 100_000
MAX_SPEC_DEPTH = 100


def read_spec_file(path: Path, error: type[SpecError] = SpecError) -> object:
    """The data of a YAML or JSON spec file (JSON by its ``.json`` suffix).

    A YAML file's node graph is measured before it is built: aliases count for the size of
    what they point at, so an alias bomb is refused in milliseconds rather than expanded.

    Raises:
        SpecError: (or ``error``) the file cannot be read, does not parse, refers to itself,
            nests deeper than ``MAX_SPEC_DEPTH`` or holds more than ``MAX_SPEC_VALUES``
            values; one line naming the file.
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: cannot read: not UTF-8 text") from None
    return parse_spec_text(text, f"{path}", json=Path(path).suffix == ".json", error=error)


def parse_spec_text(
    text: str, source: str, *, json: bool = False, error: type[SpecError] = SpecError
) -> object:
    """The data of YAML (or JSON) text, bounded as :func:`read_spec_file` says.

    Raises:
        SpecError: (or ``error``) one line starting with ``source``.
    """
    import json as json_module

    import yaml

    try:
        if json:
            data = json_module.loads(text)
            _measure_data(data, 0)
            return data
        return _load_yaml(text)
    except _TooLarge as exc:
        raise error(f"{source}: refused: {exc}") from None
    except RecursionError:
        raise error(f"{source}: refused: nested deeper than {MAX_SPEC_DEPTH} levels") from None
    except (yaml.YAMLError, json_module.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise error(f"{source}: does not parse: {first}") from None


class _TooLarge(Exception):
    pass


def _load_yaml(text: str) -> object:
    import yaml

    _check_flow_depth(text)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node, {}, 0)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_flow_depth(text: str) -> None:
    """Refuse deeply nested ``[`` and ``{`` before PyYAML's scanner, whose time grows with
    the square of their depth, reads them (quoted strings and comments aside; a stray
    bracket in a plain scalar counts, which ordinary specs are far from noticing)."""
    if text.count("[") + text.count("{") <= MAX_SPEC_DEPTH:
        return
    depth = 0
    for match in _FLOW.finditer(text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > MAX_SPEC_DEPTH:
                raise _TooLarge(f"nested deeper than {MAX_SPEC_DEPTH} levels")
        elif bracket in "]}":
            depth = max(depth - 1, 0)


#: Brackets outside quoted strings and comments (those are matched and skipped): a quote
#: opens a string, and ``#`` a comment, only where YAML says (not inside a plain word).
_FLOW = re.compile(
    r"""(?<![^\s\[{,:])(?:"(?:[^"\\]|\\.)*"|'(?:[^']|'')*')|(?<!\S)#[^\n]*|[\[\]{}]"""
)


def _measure(node: object, seen: dict[int, tuple[int, int] | None], depth: int) -> tuple[int, int]:
    """(values, height) of ``node`` expanded; a node met again (an alias) is looked up."""
    import yaml

    key = id(node)
    if key in seen:
        known = seen[key]
        if known is None:
            raise _TooLarge("an alias refers to itself (a recursive structure)")
        size, height = known
    else:
        if depth > MAX_SPEC_DEPTH:
            raise _TooLarge(f"nested deeper than {MAX_SPEC_DEPTH} levels")
        seen[key] = None
        size, height = 1, 0
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            child_size, child_height = _measure(child, seen, depth + 1)
            size, height = size + child_size, max(height, child_height + 1)
            _check(size, depth + height)
        seen[key] = (size, height)
    _check(size, depth + height)
    return size, height


def _measure_data(data: object, depth: int) -> None:
    """JSON holds no aliases (its size is the file's), but may nest past what is sane."""
    if depth > MAX_SPEC_DEPTH:
        raise _TooLarge(f"nested deeper than {MAX_SPEC_DEPTH} levels")
    children = data.values() if isinstance(data, dict) else data if isinstance(data, list) else ()
    for child in children:
        _measure_data(child, depth + 1)


def _check(size: int, depth: int) -> None:
    if size > MAX_SPEC_VALUES:
        raise _TooLarge(f"more than {MAX_SPEC_VALUES:,} values once its aliases are expanded")
    if depth > MAX_SPEC_DEPTH:
        raise _TooLarge(f"nested deeper than {MAX_SPEC_DEPTH} levels")
