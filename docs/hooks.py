"""MkDocs hook: the benchmarks' figures (bench/results/*.png) become part of the site, so the
benchmarks page shows the files the benchmarks write, never a copy that could go stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files


def on_files(files: Files, config: Any) -> Files:
    """Add every PNG of bench/results under ``benchmarks/``."""
    results = Path(config.config_file_path).parent / "bench" / "results"
    for png in sorted(results.glob("*.png")):
        files.append(File.generated(config, f"benchmarks/{png.name}", abs_src_path=str(png)))
    return files
