"""The result format every benchmark writes (see DESIGN.md: Conventions)."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    import optuna
    import ray

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "optuna": optuna.__version__,
        "ray": ray.__version__,
        "sqlalchemy": version("sqlalchemy"),
    }


def row(system: str, config: str, metric: str, value: float, unit: str) -> dict[str, Any]:
    return {"system": system, "config": config, "metric": metric, "value": value, "unit": unit}


def save(name: str, rows: list[dict[str, Any]], markdown: str, out_dir: Path = RESULTS) -> Path:
    """Write ``NAME.json`` and ``NAME.md``; returns the JSON path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "rows": rows,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / f"{name}.md").write_text(markdown + "\n")
    return path


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
