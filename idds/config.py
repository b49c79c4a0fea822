"""Settings from flags, environment variables and defaults (in that order of precedence)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from idds.errors import SpecError

DEFAULT_DB_URL = "sqlite:///idds.db"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where the platform keeps its state and where it runs work.

    Attributes:
        db_url: SQLAlchemy URL of the database (``IDDS_DB_URL``); a SQLite file in the
            current directory by default, ``postgresql+psycopg://user@host/db`` for many heads.
        ray_address: address of an existing Ray cluster to join (``IDDS_RAY_ADDRESS``);
            ``None`` starts a local Ray on demand.
        work_dir: directory for per-task work dirs and logs (``IDDS_WORK_DIR``).
        lease_seconds: how long an owner lease lasts without renewal (``IDDS_LEASE_SECONDS``);
            another head may take an owner over once it has expired.
        user: the user to act as where the database has no registered users (``IDDS_USER``;
            the login name by default). See :mod:`idds.auth`.
        token: the token to act with where it has (``IDDS_TOKEN``); never shown.
        db_outage_s: how long a head waits for a database that went away before it gives up
            (``IDDS_DB_OUTAGE_S``).
        sites: the ``sites.yaml`` that declares the GPU sites tasks are placed on
            (``IDDS_SITES``); ``None`` runs every task on the Ray cluster this head joined.
    """

    db_url: str = DEFAULT_DB_URL
    ray_address: str | None = None
    work_dir: Path = field(default_factory=lambda: Path("idds-work"))
    lease_seconds: float = 30.0
    user: str | None = None
    token: str | None = field(default=None, repr=False)
    db_outage_s: float = 600.0
    sites: Path | None = None

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
        return replace(cls(), **values)  # type: ignore[arg-type]


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


def read_spec_file(path: Path, error: type[SpecError] = SpecError) -> object:
    """The data of a YAML or JSON spec file (JSON by its ``.json`` suffix).

    Raises:
        SpecError: (or ``error``) the file cannot be read or does not parse; one line.
    """
    import json

    import yaml

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise error(f"{path}: does not parse: {first}") from None
