"""``python -m bench NAME [--quick]``: run one benchmark and save bench/results/NAME.{json,md}."""

from __future__ import annotations

import importlib
import sys


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        sys.exit("usage: python -m bench NAME [--quick]   (benchmarks: overhead)")
    try:
        module = importlib.import_module(f"bench.{argv[0]}")
    except ModuleNotFoundError:
        sys.exit(f"error: no benchmark named {argv[0]!r}")
    module.main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
