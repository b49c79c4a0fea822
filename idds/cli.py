"""The ``idds`` command. Capability packages add their sub-commands through the
``idds.commands`` entry-point group; they are imported only when used."""

from __future__ import annotations

import ast
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import click
from click.utils import make_default_short_help

from idds import logs
from idds.config import Settings
from idds.errors import IddsError, NotFound, SpecError


class _LazyGroup(click.Group):
    """Lists the sub-command groups registered as entry points; imports one when called."""

    def _registered(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group="idds.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._registered()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in self._registered():
            command = self._registered()[name].load()
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their short help; a plugin's is read from its source, so that
        ``idds --help`` imports none of them (nor Ray, Optuna, pyhf or Streamlit)."""
        registered, names = self._registered(), self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in registered and name not in self.commands:
                rows.append((name, make_default_short_help(_docstring(registered[name]), limit)))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _docstring(entry: EntryPoint) -> str:
    """The docstring of the function an entry point names, read without importing it."""
    module, _, attr = entry.value.partition(":")
    top, *rest = module.split(".")
    spec = find_spec(top)  # finds the package; imports nothing
    if spec is None or not spec.submodule_search_locations:
        return ""
    path = Path(next(iter(spec.submodule_search_locations)), *rest)
    path = path / "__init__.py" if not rest else path.with_suffix(".py")
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return ""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attr.strip():
            return ast.get_docstring(node) or ""
    return ""


@click.group(cls=_LazyGroup)
@click.option("--db", "db_url", envvar="IDDS_DB_URL", help="Database URL (SQLite file default).")
@click.option("--ray-address", envvar="IDDS_RAY_ADDRESS", help="Join this Ray cluster.")
@click.option(
    "--url", envvar="IDDS_URL",
    help="Act through this `idds serve` HTTP API (with IDDS_TOKEN), not on a database.",
)  # fmt: skip
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show Ray's and the migrations' messages (kept in WORK_DIR/idds.log otherwise).",
)
@click.version_option(package_name="idds")
@click.pass_context
def cli(
    ctx: click.Context, db_url: str | None, ray_address: str | None, url: str | None,
    verbose: bool,
) -> None:  # fmt: skip
    """iDDS: HPO studies, toy scans, workflows and data carousels on Ray.

    The database is --db, else IDDS_HOME/idds.db, else the nearest idds.db from the current
    directory up, else ./idds.db (made by the first command that records work). With --url
    (IDDS_URL) commands act through that `idds serve` HTTP API and open no database.
    """
    ctx.obj = Settings.from_env(db_url=db_url, ray_address=ray_address, url=url)
    if verbose:
        logs.verbose()
    else:
        logs.quiet(ctx.obj.work_dir / logs.LOG_FILE)


_PEM = click.Path(exists=True, dir_okay=False)


@cli.command()
@click.option(
    "--max-owners",
    type=int,
    default=8,
    show_default=True,
    help="Studies, workflows and scans this head runs at once.",
)
@click.option(
    "--poll",
    type=float,
    default=2.0,
    show_default=True,
    help="Seconds between looks for work no live head holds.",
)
@click.option("--until-idle", is_flag=True, help="Stop when nothing is left to run.")
@click.option(
    "--api", "api_at", metavar="HOST:PORT",
    help="Serve the HTTP API here (127.0.0.1:8000 by default, none with --until-idle; port 0: "
    "a free one; 'none': no API).",
)  # fmt: skip
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False), help="HTTPS certificate (PEM)."
)
@click.option(
    "--tls-key", type=click.Path(exists=True, dir_okay=False), help="Its private key (PEM)."
)
@click.pass_obj
def serve(
    settings: Settings, max_owners: int, poll: float, until_idle: bool,
    api_at: str | None, tls_cert: str | None, tls_key: str | None,
) -> None:  # fmt: skip
    """Run, as a long-lived head, every active study, workflow, scan and carousel no live head holds
    (those launched with --detach or through the API, and those whose head died), and serve
    the HTTP API (docs at /docs) that clients with IDDS_URL use."""
    import logging

    from idds import auth, secrets
    from idds.serve import Server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    api = _api_server(api_at or ("none" if until_idle else "127.0.0.1:8000"), tls_cert, tls_key)
    if api is not None and api_at is None:
        api.required = False  # the default address: another head here may serve it
    secrets.strip(
        keep_ray=True
    )  # what this head starts gets the credentials it needs from it, not by
    # inheriting them: evaluations never see them
    server = Server(settings, max_owners=max_owners, poll_s=poll)
    actor = auth.acting_user(server.engine, settings)  # a head, too, needs a known user
    kinds = ", ".join(sorted(server.kinds))
    click.echo(f"serving {settings.db_url_safe} ({kinds}) as user {actor.name!r}")
    server.serve(until_idle=until_idle, api=api)


def _api_server(api_at: str, tls_cert: str | None, tls_key: str | None) -> Any:
    from idds.serve import ApiServer

    if api_at == "none":
        return None
    host, sep, port = api_at.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise SpecError(f"--api: give HOST:PORT (e.g. 127.0.0.1:8000), not {api_at!r}")
    if bool(tls_cert) != bool(tls_key):
        raise SpecError("--tls-cert and --tls-key go together")
    return ApiServer(host, int(port), tls_cert, tls_key)


@cli.command()
@click.pass_obj
def whoami(settings: Settings) -> None:
    """The user this command acts as (from IDDS_TOKEN, else IDDS_USER or the login name)."""
    from idds import auth
    from idds.client import RemoteRecords
    from idds.db import connect, require

    if settings.url:
        actor = RemoteRecords(settings).whoami()
    else:
        require(settings.db_url)
        actor = auth.acting_user(connect(settings.db_url), settings)
    click.echo(f"{actor.name}{' (admin)' if actor.admin else ''}")


@cli.group()
def users() -> None:
    """Users and their tokens: once one is registered, acting on work needs IDDS_TOKEN."""


@users.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May change and read everyone's work.")
@click.pass_obj
def users_add(settings: Settings, name: str, admin: bool) -> None:
    """Register user NAME and print their token (the first user is an admin)."""
    from idds import auth
    from idds.db import connect

    if settings.url:
        token = _api(settings).post("/users", {"name": name, "admin": admin})["token"]
    else:
        token = auth.add_user(connect(settings.db_url), settings, name, admin=admin)
    click.echo(f"user {name!r} added; their token (shown only now): {token}")


@users.command("token")
@click.argument("name")
@click.pass_obj
def users_token(settings: Settings, name: str) -> None:
    """Give user NAME a new token (the old one stops working); by an admin or NAME."""
    from idds import auth
    from idds.db import connect

    if settings.url:
        token = _api(settings).post(f"/users/{name}/token", {})["token"]
    else:
        token = auth.renew_token(connect(settings.db_url), settings, name)
    click.echo(f"new token of {name!r} (shown only now): {token}")


@users.command("remove")
@click.argument("name")
@click.pass_obj
def users_remove(settings: Settings, name: str) -> None:
    """Unregister user NAME (their work stays theirs); by an admin."""
    from idds import auth
    from idds.db import connect

    if settings.url:
        _api(settings).delete(f"/users/{auth.check_user_name(name)}")
    else:
        auth.remove_user(connect(settings.db_url), settings, name)
    click.echo(f"user {name!r} removed")


@users.command("list")
@click.pass_obj
def users_list(settings: Settings) -> None:
    """Registered users."""
    from idds import auth
    from idds.db import connect, require

    if settings.url:
        found: list[Any] = [_Row(**u) for u in _api(settings).get("/users")]
    else:
        require(settings.db_url)
        found = auth.list_users(connect(settings.db_url))
    rows = [[r.name, "yes" if r.admin else ""] for r in found]
    click.echo(format_table(["user", "admin"], rows) if rows else "no registered users")


@dataclass
class _Row:
    name: str
    admin: bool


def _api(settings: Settings) -> Any:
    from idds.client import Api

    return Api(settings)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: our errors become one line on stderr and an exit code (2: bad input)."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (SpecError, NotFound) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except IddsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
