"""The commands every kind of owner shares: ``launch``, ``resume``, ``cancel`` and ``list``.

A capability's command group (``idds hpo``, ``idds toys``, ``idds dag``) describes how to
build, load and run its owners in a :class:`Lifecycle` and gets the four commands, which
behave alike in every group: ``launch`` checks that the name is free, then (unless
``--detach``) that the Ray cluster can run one task, then records and runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from idds.config import Settings
    from idds.handle import OwnerHandle


@dataclass(frozen=True, kw_only=True)
class Lifecycle:
    """How a command group makes, finds and runs its owners.

    Attributes:
        noun: what one is called (``study``).
        plural: what several are called (``studies``).
        build: the owner described by a spec file: ``(settings, path, options)``, where
            ``options`` are the values of ``launch_options`` by name (``name`` included).
        load: the recorded owner of a name: ``(name, settings)``.
        run: runs one and prints how it ended: ``(owner, progress)``.
        print_done: prints what one that has nothing left to run holds (its best, its
            limits ...).
        table: the ``list`` table: ``settings -> (headers, rows)``.
        resumable: the states in which ``resume`` runs it.
        launch_options: more options of ``launch`` (``--name`` and the common ones are
            always there).
    """

    noun: str
    plural: str
    build: Callable[[Settings, str, dict[str, Any]], OwnerHandle]
    load: Callable[[str, Settings], OwnerHandle]
    run: Callable[[Any, bool], None]
    print_done: Callable[[Any], None]
    table: Callable[[Settings], tuple[Sequence[str], Sequence[Sequence[object]]]]
    resumable: frozenset[str] = frozenset({"active"})
    launch_options: Sequence[Callable[[Any], Any]] = field(default_factory=tuple)


def add_commands(group: click.Group, life: Lifecycle) -> None:
    """Add ``launch``, ``resume``, ``cancel`` and ``list`` to ``group``."""
    from idds.db import require
    from idds.errors import NotFound
    from idds.output import View, emit, view_options

    def launch(
        settings: Settings, spec_file: str, no_progress: bool, detach: bool, **options: Any
    ) -> None:
        owner = life.build(settings, spec_file, options)
        owner.check_new()
        if not detach:
            owner.check_capacity()
        owner.create()  # type: ignore[attr-defined]
        if detach:
            click.echo(f"{life.noun} {owner.name!r} recorded; an `idds serve` head will run it")
            return
        life.run(owner, not no_progress)

    def resume(settings: Settings, name: str, no_progress: bool) -> None:
        owner = life.load(name, settings)
        owner.actor()  # a known user (a token where users are registered) runs it on
        if owner.state not in life.resumable:
            click.echo(f"{life.noun} {name!r} is {owner.state}; nothing to resume")
            life.print_done(owner)
            return
        life.run(owner, not no_progress)

    def cancel(settings: Settings, name: str) -> None:
        n = life.load(name, settings).cancel()
        click.echo(f"{life.noun} {name!r} cancelled ({n} task(s) not run to the end)")

    def list_(settings: Settings, view: View) -> None:
        try:
            if not settings.url:  # through the server, there is no database here to look for
                require(settings.db_url)
        except NotFound as exc:
            click.echo(f"no {life.plural}: {exc}", err=not view.table)
            if not view.table:
                emit([], [], view)  # an empty list, for a program
            return
        headers, rows = life.table(settings)
        if rows or not view.table:
            emit(headers, rows, view)
        else:
            click.echo(f"no {life.plural}")

    launch.__doc__ = f"Create the {life.noun} in SPEC_FILE (YAML or JSON) and run it."
    resume.__doc__ = f"Run {life.noun} NAME on from where it stopped."
    cancel.__doc__ = f"Cancel {life.noun} NAME; a head running it stops within seconds."
    list_.__doc__ = f"The {life.plural} recorded, with their state and progress."
    progress = click.option("--no-progress", is_flag=True, help="No progress output.")
    command = _launch_command(launch, life, progress)
    group.add_command(command, "launch")
    name = click.argument("name")
    group.add_command(click.command("resume")(name(progress(click.pass_obj(resume)))))
    group.add_command(click.command("cancel")(name(click.pass_obj(cancel))))
    group.add_command(click.command("list")(view_options(click.pass_obj(list_))))


def _launch_command(launch: Callable[..., None], life: Lifecycle, progress: Any) -> click.Command:
    fn: Any = click.pass_obj(launch)
    for option in reversed(life.launch_options):
        fn = option(fn)
    fn = click.option(
        "--detach", is_flag=True, help="Only record it: an `idds serve` head runs it."
    )(fn)
    fn = progress(fn)
    fn = click.option("--name", help=f"The {life.noun}'s name (overrides the spec's).")(fn)
    fn = click.argument("spec_file", type=click.Path(dir_okay=False))(fn)
    return click.command("launch")(fn)
