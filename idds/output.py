"""How list and show commands print rows: a table (its states coloured on a terminal), JSON or
CSV; filtered by state, sorted by a column, limited.

Every such command takes the same options (:func:`view_options`) and prints through
:func:`emit`, so ``idds hpo list -f json --state running --sort -best --limit 5`` reads the
same in every command group.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from idds.errors import SpecError

FORMATS = ("table", "json", "csv")

#: The colour of a state's word in a table on a terminal.
COLOURS = {
    "succeeded": "green", "finished": "green", "converged": "green",
    "failed": "red", "lost": "red", "blocked": "red",
    "running": "yellow", "active": "cyan", "dispatched": "cyan", "pending": "blue",
    "pruned": "magenta", "cancelled": "bright_black", "skipped": "bright_black",
    "suspended": "bright_black", "stopped": "bright_black",
}  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True)
class View:
    """What a list or show command was asked to print.

    Attributes:
        format: ``table``, ``json`` or ``csv``.
        sort: a column's name to sort by, ``-NAME`` for descending; None keeps the order.
        limit: print at most this many rows (after filtering and sorting).
        states: keep only the rows whose state starts with one of these.
    """

    format: str = "table"
    sort: str | None = None
    limit: int | None = None
    states: tuple[str, ...] = ()

    @property
    def table(self) -> bool:
        """Whether the rows are printed for a person (with the command's other lines)."""
        return self.format == "table"


def view_options(fn: F) -> F:
    """Add ``--format/-f``, ``--sort``, ``--limit`` and ``--state`` to a command; it gets them
    as one ``view`` argument (a :class:`View`)."""
    options = [
        click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), default="table",
                     show_default=True, help="How to print the rows."),
        click.option("--sort", metavar="[-]COLUMN", help="Sort by this column (-: descending)."),
        click.option("--limit", type=click.IntRange(min=0), help="Print at most N rows."),
        click.option("--state", "states", multiple=True, metavar="STATE",
                     help="Only rows in this state (repeatable, or comma-separated)."),
    ]  # fmt: skip

    def wrapped(*args: Any, fmt: str, sort: str | None, limit: int | None,
                states: tuple[str, ...], **kwargs: Any) -> Any:  # fmt: skip
        words = tuple(w.strip() for s in states for w in s.split(",") if w.strip())
        view = View(format=fmt, sort=sort, limit=limit, states=words)
        return fn(*args, view=view, **kwargs)

    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped  # type: ignore[return-value]


def select(
    headers: Sequence[str], rows: Sequence[Sequence[object]], view: View, state: str = "state"
) -> list[Sequence[object]]:
    """The rows ``view`` asks for: those in its states, sorted, limited.

    Raises:
        SpecError: ``--sort`` names no column, or ``--state`` is given where no column is
            ``state``.
    """
    kept = list(rows)
    if view.states:
        if state not in headers:
            raise SpecError(f"--state: these rows have no {state!r} column")
        i = list(headers).index(state)
        kept = [r for r in kept if str(r[i]).startswith(view.states)]
    if view.sort:
        column = view.sort.removeprefix("-")
        if column not in headers:
            raise SpecError(f"--sort: no column {column!r} (one of: {', '.join(headers)})")
        i = list(headers).index(column)
        ordered = sorted(kept, key=lambda r: _sort_key(r[i]))
        missing = [r for r in ordered if _blank(r[i])]
        present = [r for r in ordered if not _blank(r[i])]
        kept = (present[::-1] if view.sort.startswith("-") else present) + missing
    return kept if view.limit is None else kept[: view.limit]


def emit(
    headers: Sequence[str], rows: Sequence[Sequence[object]], view: View, state: str = "state"
) -> int:
    """Print the rows ``view`` asks for, in its format; returns how many were printed."""
    kept = select(headers, rows, view, state)
    click.echo(render(headers, kept, view.format, state=state), nl=view.format != "csv")
    return len(kept)


def render(
    headers: Sequence[str], rows: Sequence[Sequence[object]], fmt: str = "table",
    *, state: str = "state", colour: bool | None = None,
) -> str:  # fmt: skip
    """The rows as text: a padded table, a JSON list of objects, or CSV with a header line."""
    if fmt == "json":
        items = [dict(zip(headers, (_value(c) for c in r), strict=True)) for r in rows]
        return json.dumps(items, indent=1, default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows([["" if c is None else c for c in r] for r in rows])
        return out.getvalue()
    paint = use_colour() if colour is None else colour
    return _table(headers, rows, list(headers).index(state) if paint and state in headers else -1)


def use_colour() -> bool:
    """Colour on a terminal only: not when piped, nor where ``NO_COLOR`` is set."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def paint(word: str, text: str | None = None) -> str:
    """``text`` (``word`` by default) in the colour of state ``word``, where colour is used."""
    text = word if text is None else text
    colour = COLOURS.get(word.split(" ")[0])
    return click.style(text, fg=colour) if colour and use_colour() else text


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], coloured: int) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        padded = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        if n and coloured >= 0:
            word = row[coloured].split(" ")[0]
            if word in COLOURS:
                padded[coloured] = click.style(padded[coloured], fg=COLOURS[word])
        lines.append("  ".join(padded).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _number(cell: object) -> float | None:
    if isinstance(cell, bool):
        return None
    if isinstance(cell, int | float):
        return float(cell)
    text = str(cell).split("/")[0].split(" ")[0].rstrip("s")  # "13/40", "2.5s", "1.2 +- 0.1"
    try:
        return float(text)
    except ValueError:
        return None


def _sort_key(cell: object) -> tuple[int, float, str]:
    number = _number(cell)
    return (0, number, "") if number is not None else (1, 0.0, str(cell))


def _blank(cell: object) -> bool:
    return cell is None or cell == ""


def _value(cell: object) -> object:
    """A cell for JSON: numbers as numbers, a blank as null."""
    if cell is None or cell == "":
        return None
    if isinstance(cell, str):
        try:
            return int(cell)
        except ValueError:
            try:
                return float(cell)
            except ValueError:
                return cell
    return cell
