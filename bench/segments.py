"""Many studies on one head: the time per evaluation of a segmented study (each segment a
study of its own, run side by side by one head) against one study of as many points.

Two rows of pairs, in one run: on SQLite, S segments x K points (default 300 x 20) against one
study of S*K points; on PostgreSQL, 100 studies at once (the segments of one submission: each
its own owner, lease and proposer) against one study. A trivial objective, the random
proposer; each segment keeps 1 evaluation in flight and the one study as many as all the
segments together, so that both keep Ray equally busy. Metric: ``ms_per_eval``.

    python -m bench segments [--quick] [--segments S] [--points K] [--pg URL] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench._report import RESULTS, markdown_table, row, save
from bench.overhead import PG_URL, _fresh_pg

SPACE = {"x": {"type": "float", "low": -1.0, "high": 1.0}}


def _study(db_url: str, name: str, points: int, parallel: int, segments: int = 0):  # noqa: ANN202
    import hpo
    from idds.config import Settings

    here = str(Path(__file__).parents[1])
    extra = {"segments": {f"s{i:03d}": {} for i in range(segments)}} if segments else {}
    return hpo.Study(
        settings=Settings(db_url=db_url), name=name, objective="bench.objectives:trivial",
        space=SPACE, max_points=points, parallel=parallel, proposer="optuna:random", seed=0,
        pythonpath=[here], **extra,
    )  # fmt: skip


def run(db_url: str, name: str, points: int, parallel: int, segments: int = 0) -> float:
    """ms per evaluation of one study (``segments`` = 0) or of a segmented one."""
    study = _study(db_url, name, points, parallel, segments)
    study.create()
    start = time.perf_counter()
    study.optimize(progress=False)
    n = points * max(segments, 1)
    done = sum(len(s.trials) for s in study._segments_here()) if segments else len(study.trials)
    assert done == n, (done, n)
    return (time.perf_counter() - start) / n * 1000.0


def pair(db_url: str, tag: str, segments: int, points: int) -> list[dict]:
    """Segmented (``segments`` x ``points``) and one study of as many points, side by side."""
    total = segments * points
    many = run(db_url, f"{tag}-many", points, 1, segments)
    one = run(db_url, f"{tag}-one", total, segments)
    database = db_url.split(":")[0].split("+")[0]
    return [
        row("idds", f"{database}, {segments} segments x {points} points", "ms_per_eval",
            round(many, 4), "ms"),
        row("idds", f"{database}, one study of {total} points", "ms_per_eval", round(one, 4),
            "ms"),
    ]  # fmt: skip


def measure(segments: int, points: int, owners: int, owner_points: int, pg_url: str | None,
            tmp: Path) -> list[dict]:  # fmt: skip
    from idds.runtime import ensure_ray

    ensure_ray()
    run(f"sqlite:///{tmp / 'warm.db'}", "warm-up", 10, 2)  # Ray workers and imports ready
    rows = pair(f"sqlite:///{tmp / 'idds.db'}", "seg", segments, points)
    if pg_url and _fresh_pg(pg_url):
        rows += pair(pg_url, "owners", owners, owner_points)
    for r in rows:
        print(f"{r['config']:48s} {r['value']:9.3f} ms/eval")
    return rows


def report(rows: list[dict]) -> str:
    table = []
    for many, one in zip(rows[::2], rows[1::2], strict=True):
        for r in (many, one):
            ratio = f"{r['value'] / one['value']:.3g}x"
            table.append([r["system"], r["config"], f"{r['value']:.3f}", ratio])
    headers = ["system", "config", "ms per evaluation", "ratio to one study"]
    return "# Many studies on one head\n\n" + markdown_table(headers, table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench segments", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (for the tests)")
    parser.add_argument("--segments", type=int, help="segments on SQLite (default 300)")
    parser.add_argument("--points", type=int, help="points per segment (default 20)")
    parser.add_argument("--owners", type=int, help="studies at once on PostgreSQL (default 100)")
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL ('' to leave it out)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    args = parser.parse_args(argv)
    segments, points, owners = (6, 4, 5) if args.quick else (300, 20, 100)
    segments, points = args.segments or segments, args.points or points
    owners = args.owners or owners
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(segments, points, owners, points, args.pg or None, Path(tmp))
    md = report(rows)
    print("\n" + md)
    print(f"\nsaved {save('segments', rows, md, args.out)}")


if __name__ == "__main__":
    main()
