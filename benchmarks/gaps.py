"""Benchmark: a 3-dimension gap table and a collection plan over a demo index (default 10M).

Prints the median seconds of `gaps --by state,sex,age_band` and `plan --budget 20000 --by
state,sex` (the same functions as the CLI and the pages), the exact patient count they rest
on, and the bare DuckDB aggregate measured in the same run. Counts come from the marts built at
publish time (an index from before marts gets them first, timed); `--no-marts` measures the
base queries instead.
Target (issue 4): ≤ 1 s each on this 2-core machine.

    python benchmarks/gaps.py [--studies 10000000] [--repeat 5] [--workdir var/bench]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard import coverage as coverage_module
from dashboard import gaps
from dashboard.coverage import coverage, load_marts
from dashboard.db import connect_readonly
from dashboard.ingest.demo_index import build_demo_index
from dashboard.ingest.writer import refresh_marts

REPO = Path(__file__).resolve().parents[1]
GAP_DIMS = ["state", "sex", "age_band"]
PLAN_DIMS = ["state", "sex"]


def median_seconds(action: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=REPO / "var" / "bench")
    parser.add_argument("--no-marts", action="store_true", help="count from the studies")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.workdir / f"demo_{args.studies}.duckdb"
    if not db.exists():
        build_demo_index(db, studies=args.studies, seed=1, today=dt.date.today())
    con = connect_readonly(db)
    if load_marts(con) is None:
        con.close()
        start = time.perf_counter()
        refresh_marts(db)
        print(f"built the marts in {time.perf_counter() - start:.0f} s")
        con = connect_readonly(db)
    if args.no_marts:
        coverage_module.load_marts = lambda con: None
    bare = median_seconds(
        lambda: con.sql("SELECT state, sex, age_band, count(*) FROM study GROUP BY ALL").fetchall(),
        args.repeat,
    )
    counting = median_seconds(lambda: coverage(con, GAP_DIMS, "patients"), args.repeat)
    table = median_seconds(lambda: gaps.gaps(con, GAP_DIMS), args.repeat)
    plan = median_seconds(lambda: gaps.plan_collection(con, PLAN_DIMS, 20_000), args.repeat)
    result = gaps.gaps(con, GAP_DIMS)
    con.close()
    print(f"{args.studies:,} studies, median of {args.repeat}")
    print(f"bare count by state×sex×age band        : {bare * 1000:7.0f} ms")
    print(f"patients by state×sex×age band (exact)  : {counting * 1000:7.0f} ms")
    print(f"gap table state×sex×age band ({result.table.height} cells): {table * 1000:7.0f} ms"
          f"  ({table / bare:.1f}x bare; target ≤ 1,000 ms)")  # fmt: skip
    print(f"plan 20,000 patients over state×sex     : {plan * 1000:7.0f} ms  (target ≤ 1,000 ms)")


if __name__ == "__main__":
    main()
