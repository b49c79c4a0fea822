"""The ``idds`` command. Capability packages add their sub-commands through the
``idds.commands`` entry-point group; they are imported only when used."""

from __future__ import annotations

import ast
import sys
from collections.abc import Sequence
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
    "-v",
    "--verbose",
    is_flag=True,
    help="Show Ray's and the migrations' messages (kept in WORK_DIR/idds.log otherwise).",
)
@click.version_option(package_name="idds")
@click.pass_context
def cli(ctx: click.Context, db_url: str | None, ray_address: str | None, verbose: bool) -> None:
    """iDDS: HPO studies, toy scans, workflows and data carousels on Ray.

    The database is --db, else IDDS_HOME/idds.db, else the nearest idds.db from the current
    directory up, else ./idds.db (made by the first command that records work).
    """
    ctx.obj = Settings.from_env(db_url=db_url, ray_address=ray_address)
    if verbose:
        logs.verbose()
    else:
        logs.quiet(ctx.obj.work_dir / logs.LOG_FILE)


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
@click.pass_obj
def serve(settings: Settings, max_owners: int, poll: float, until_idle: bool) -> None:
    """Run, as a long-lived head, every active study, workflow and scan no live head holds
    (those launched with --detach, and those whose head died)."""
    import logging

    from idds.serve import Server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from idds import auth

    server = Server(settings, max_owners=max_owners, poll_s=poll)
    actor = auth.acting_user(server.engine, settings)  # a head, too, needs a known user
    kinds = ", ".join(sorted(server.kinds))
    click.echo(f"serving {settings.db_url_safe} ({kinds}) as user {actor.name!r}")
    server.serve(until_idle=until_idle)


@cli.command()
@click.pass_obj
def whoami(settings: Settings) -> None:
    """The user this command acts as (from IDDS_TOKEN, else IDDS_USER or the login name)."""
    from idds import auth
    from idds.db import connect, require

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

    token = auth.add_user(connect(settings.db_url), settings, name, admin=admin)
    click.echo(f"user {name!r} added; their token (shown only now): {token}")


@users.command("token")
@click.argument("name")
@click.pass_obj
def users_token(settings: Settings, name: str) -> None:
    """Give user NAME a new token (the old one stops working); by an admin or NAME."""
    from idds import auth
    from idds.db import connect

    token = auth.renew_token(connect(settings.db_url), settings, name)
    click.echo(f"new token of {name!r} (shown only now): {token}")


@users.command("remove")
@click.argument("name")
@click.pass_obj
def users_remove(settings: Settings, name: str) -> None:
    """Unregister user NAME (their work stays theirs); by an admin."""
    from idds import auth
    from idds.db import connect

    auth.remove_user(connect(settings.db_url), settings, name)
    click.echo(f"user {name!r} removed")


@users.command("list")
@click.pass_obj
def users_list(settings: Settings) -> None:
    """Registered users."""
    from idds import auth
    from idds.db import connect, require

    require(settings.db_url)
    rows = [[r.name, "yes" if r.admin else ""] for r in auth.list_users(connect(settings.db_url))]
    click.echo(format_table(["user", "admin"], rows) if rows else "no registered users")


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
