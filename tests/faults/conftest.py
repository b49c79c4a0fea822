"""The fault suite's figures: each test records what it survived, and the suite prints them
as one table at the end (kills survived, results lost, duplicates)."""

from __future__ import annotations

import pytest
from throwaway_pg import PG_BIN, ThrowawayPostgres

_FIGURES: list[dict[str, object]] = []


@pytest.fixture
def fault_figures(request: pytest.FixtureRequest):
    """Call with the figures of this test: ``fault_figures(kills=20, lost=0, duplicates=0)``."""

    def record(**figures: object) -> None:
        _FIGURES.append({"test": request.node.name, **figures})

    return record


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's hook
    if not _FIGURES:
        return
    # Every figure any test recorded: these first, then others as they first appear.
    columns = ["test", "kills", "lost", "duplicates", "failed_attempts"]
    columns += list(dict.fromkeys(k for f in _FIGURES for k in f if k not in columns))
    rows = [[str(f.get(c, "")) for c in columns] for f in _FIGURES]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    terminalreporter.section("fault injection: what each test survived")
    terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


@pytest.fixture
def throwaway_pg():
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"no initdb in {PG_BIN}: cannot make a PostgreSQL cluster to stop")
    cluster = ThrowawayPostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
