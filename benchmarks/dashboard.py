"""Benchmark: every page's queries and a full AppTest run, on demo indexes of 1M and 10M studies.

For each page it records the named queries the page runs (by running the page once under
AppTest), then replays them on a fresh read connection: cold = no Streamlit cache (the time a
first visitor waits for data), warm = the same calls through the app's st.cache_data. The
recorded queries are what reaches DuckDB: reads of the marts where a cube answers, the base
queries where none does. It also times whole AppTest runs, and the bare DuckDB aggregate the
pages rest on (`SELECT state, count(*) FROM study GROUP BY state`) in the same run, and prints
the ratio. An index built before marts existed gets them first (timed: the cost a publish adds).

    python benchmarks/dashboard.py [--sizes 1000000,10000000] [--repeat 5] [--workdir var/bench]

Indexes are built once per size and seed in --workdir and reused by later runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st
from streamlit.logger import set_log_level
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from dashboard import sql
from dashboard.coverage import load_marts
from dashboard.db import connect_readonly, reader_cursor
from dashboard.ingest.demo_index import build_demo_index
from dashboard.ingest.writer import refresh_marts
from dashboard.views.pages import PAGES as APP_PAGES

REPO = Path(__file__).resolve().parents[1]
PAGES = tuple(page.url_path for page in APP_PAGES)
BARE = "SELECT state, count(*) FROM study GROUP BY state"


def median_seconds(action: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def record_queries(db: Path, page: str) -> tuple[list[tuple[str, dict[str, Any]]], float, float]:
    """Run the page twice under AppTest; return its queries and the cold and warm run times."""
    calls: list[tuple[str, dict[str, Any]]] = []
    real_query = sql.query

    def recording(con, name: str, **params: Any):
        calls.append((name, params))
        return real_query(con, name, **params)

    st.cache_data.clear()
    st.cache_resource.clear()
    os.environ["DIVERSITY_DB"] = str(db)
    sql.query = recording
    try:
        at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=600)
        at._page_hash = calc_hash(page)
        start = time.perf_counter()
        at.run()
        cold = time.perf_counter() - start
        if at.exception:
            raise RuntimeError(f"{page}: {at.exception[0].value}")
        start = time.perf_counter()
        at.run()
        warm = time.perf_counter() - start
    finally:
        sql.query = real_query
    return calls, cold, warm


def replay(db: Path, calls: list[tuple[str, dict[str, Any]]], repeat: int) -> float:
    """Median seconds to run all of a page's queries once on a fresh read connection."""
    con = connect_readonly(db)
    try:
        cursor = reader_cursor(con)
        return median_seconds(lambda: [sql.query(cursor, n, **p) for n, p in calls], repeat)
    finally:
        con.close()


def ensure_marts(db: Path) -> None:
    """Build the marts of an index published before they existed (what its next write does)."""
    con = connect_readonly(db)
    missing = load_marts(con) is None
    con.close()
    if missing:
        start = time.perf_counter()
        refresh_marts(db)
        print(f"built the marts of {db.name} in {time.perf_counter() - start:.0f} s")


def bench_size(studies: int, workdir: Path, repeat: int) -> None:
    db = workdir / f"demo_{studies}.duckdb"
    if not db.exists():
        start = time.perf_counter()
        build_demo_index(db, studies=studies, seed=1, today=dt.date.today())
        print(f"built {db} in {time.perf_counter() - start:.0f} s")
    ensure_marts(db)
    con = connect_readonly(db)
    bare = median_seconds(lambda: con.sql(BARE).fetchall(), repeat)
    con.close()
    print(f"\n{studies:,} studies — bare aggregate {bare * 1000:.0f} ms")
    print(f"{'page':<18}{'queries':>8}{'cold ms':>10}{'×bare':>8}{'AppTest cold s':>16}"
          f"{'AppTest warm s':>16}")  # fmt: skip
    for page in PAGES:
        calls, app_cold, app_warm = record_queries(db, page)
        cold = replay(db, calls, repeat)
        print(f"{page:<18}{len(calls):>8}{cold * 1000:>10.0f}{cold / bare:>8.1f}"
              f"{app_cold:>16.2f}{app_warm:>16.2f}")  # fmt: skip
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process (app + benchmark): {peak_mb:,.0f} MB")


def main() -> None:
    set_log_level("error")  # AppTest outside a server warns on every run
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=REPO / "var" / "bench")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    for size in (int(s) for s in args.sizes.split(",")):
        bench_size(size, args.workdir, args.repeat)


if __name__ == "__main__":
    main()
