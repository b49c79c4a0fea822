"""Nothing outside ``idds/`` touches the core's tables: it goes through ``idds.records``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
OUTSIDE = ["hpo", "toys", "dag", "carousel", "gpu_sites", "dashboard", "bench"]
TABLES = {"owners", "users", "tasks", "attempts", "reports"}
#: The core modules whose table objects (and the helpers that read them raw) stay inside.
CORE_TABLE_MODULES = {"idds.owners", "idds.tasks", "idds.db"}
RAW = {"reading", "Base", *TABLES}
SQL_TEXT = re.compile(
    r"\b(select\b.*\bfrom|insert\s+into|update|delete\s+from)\s+.*\b(" + "|".join(TABLES) + r")\b",
    re.IGNORECASE | re.DOTALL,
)


def _modules() -> list[Path]:
    return sorted(p for d in OUTSIDE for p in (ROOT / d).rglob("*.py"))


def offences(path: Path) -> list[str]:
    """What in ``path`` reaches the core's tables: a SQLAlchemy import (its exceptions
    excepted), a table or raw connection imported from the core, a table reached as a
    module attribute, or SQL text naming a table."""
    tree = ast.parse(path.read_text())
    found: list[str] = []
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("sqlalchemy") and a.name != "sqlalchemy.exc":
                    found.append(f"line {node.lineno}: import {a.name}")
                if a.name in CORE_TABLE_MODULES:
                    aliases.add(a.asname or a.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {a.name for a in node.names}
            if node.module.startswith("sqlalchemy") and node.module != "sqlalchemy.exc":
                found.append(f"line {node.lineno}: from {node.module} import ...")
            if node.module in CORE_TABLE_MODULES and names & RAW:
                found.append(f"line {node.lineno}: from {node.module} import {names & RAW}")
            if node.module == "idds":
                aliases |= {
                    a.asname or a.name for a in node.names if a.name in {"owners", "tasks", "db"}
                }
        elif isinstance(node, ast.Attribute) and node.attr in RAW:
            if isinstance(node.value, ast.Name) and node.value.id in aliases:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if SQL_TEXT.search(node.value) and len(node.value) < 2000:
                found.append(f"line {node.lineno}: SQL text {node.value[:40]!r}")
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_outside_the_core_reaches_its_tables(path):
    assert offences(path) == []


def test_the_check_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import sqlalchemy as sa\n"
        "from idds import tasks as tq\n"
        "from idds.owners import owners\n"
        "rows = tq.tasks\n"
        "q = 'SELECT id FROM tasks WHERE state = 1'\n"
    )
    assert len(offences(bad)) == 4
