"""``python -m bench NAME [--quick]``: run one benchmark and save bench/results/NAME.{json,md}."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        here = Path(__file__).parent.glob("[a-z]*.py")
        names = sorted(p.stem for p in here if "\ndef main(" in p.read_text())
        sys.exit(f"usage: python -m bench NAME [--quick]   (benchmarks: {', '.join(names)})")
    try:
        module = importlib.import_module(f"bench.{argv[0]}")
    except ModuleNotFoundError:
        sys.exit(f"error: no benchmark named {argv[0]!r}")
    module.main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
