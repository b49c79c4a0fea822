"""How list and show commands print rows: formats, sorting, filtering, limits, colour."""

from __future__ import annotations

import csv
import io
import json

import click
import pytest

from idds.errors import SpecError
from idds.output import View, render, select, use_colour

HEADERS = ["name", "state", "done", "best"]
ROWS = [
    ["a", "finished", "30/30", "0.5"],
    ["b", "running", "13/40", ""],
    ["c", "stopped (no live head; resume it)", "2/40", "0.9"],
    ["d", "running", "22/40", "0.7"],
]


def test_sort_reads_numbers_and_puts_blanks_last_either_way():
    names = [r[0] for r in select(HEADERS, ROWS, View(sort="best"))]
    assert names == ["a", "d", "c", "b"]
    assert [r[0] for r in select(HEADERS, ROWS, View(sort="-best"))] == ["c", "d", "a", "b"]
    assert [r[0] for r in select(HEADERS, ROWS, View(sort="-done"))] == ["a", "d", "b", "c"]


def test_state_filter_and_limit():
    assert [r[0] for r in select(HEADERS, ROWS, View(states=("running",)))] == ["b", "d"]
    assert [r[0] for r in select(HEADERS, ROWS, View(states=("stopped", "finished")))] == ["a", "c"]
    assert [r[0] for r in select(HEADERS, ROWS, View(sort="name", limit=2))] == ["a", "b"]


def test_bad_sort_column_is_one_line_naming_the_columns():
    with pytest.raises(SpecError, match="--sort: no column 'bst' \\(one of: name, state, done"):
        select(HEADERS, ROWS, View(sort="bst"))


def test_json_keeps_numbers_as_numbers_and_blanks_as_null():
    items = json.loads(render(HEADERS, ROWS, "json"))
    assert items[0] == {"name": "a", "state": "finished", "done": "30/30", "best": 0.5}
    assert items[1]["best"] is None


def test_csv_has_a_header_line_and_quotes_where_needed():
    rows = list(csv.reader(io.StringIO(render(HEADERS, ROWS, "csv"))))
    assert rows[0] == HEADERS and rows[3][1] == "stopped (no live head; resume it)"


def test_colour_only_where_asked_and_the_columns_still_line_up():
    plain = render(HEADERS, ROWS, colour=False)
    assert "\x1b[" not in plain
    coloured = render(HEADERS, ROWS, colour=True)
    assert "\x1b[" in coloured and click.unstyle(coloured) == plain


def test_no_colour_when_piped_or_no_color(monkeypatch):
    assert not use_colour()  # pytest captures stdout: not a terminal
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert use_colour()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour()
