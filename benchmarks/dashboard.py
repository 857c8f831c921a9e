"""Benchmark: every page's queries and a full AppTest run, on demo indexes of 1M and 10M studies.

For each page it records the named queries the page runs (by running the page once under
AppTest), then replays them on a fresh read connection: cold = no Streamlit cache (the time a
first visitor waits for data), warm = the same calls through the app's st.cache_data. The
recorded queries are what reaches DuckDB: reads of the marts where a cube answers, the base
queries where none does. It also times whole AppTest runs, and the bare DuckDB aggregate the
pages rest on (`SELECT state, count(*) FROM study GROUP BY state`) in the same run, and prints
the ratio. An index built before marts existed gets them first (timed: the cost a publish adds).

Warm page runs (``--warm-runs N``, 0 to skip): each page runs once under AppTest to fill the
caches, then N more times (a rerun, as a widget change or a revisit makes). Each run's page
``render()`` and the sidebar's ``render_filters()`` are wrapped and timed with
``time.thread_time()`` inside the script thread, so AppTest's harness (the protobuf tree it
builds, its waiting) is not counted; ``time.process_time()`` over the same render is printed
beside it, since work polars or DuckDB hand to their own thread pools is not the script
thread's. CPU time, not wall-clock: the figures hold on a shared, busy machine.

    python benchmarks/dashboard.py [--sizes 1000000,10000000] [--repeat 5] [--workdir var/bench]
                                   [--warm-runs 10] [--warm-only] [--pages overview,gaps]
                                   [--link state=Kerala]

``--link`` opens every page with those query parameters, as a shared link does, for both the
queries and the warm runs: those of a filtered view.

Indexes are built once per size and seed in --workdir and reused by later runs (a size below
100,000 is the page tests' demo: seed 11, today 2026-11-30).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import resource
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st
from streamlit.logger import set_log_level
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.local_script_runner import LocalScriptRunner
from streamlit.util import calc_hash

from dashboard import sql
from dashboard.coverage import load_marts
from dashboard.db import connect_readonly, reader_cursor
from dashboard.ingest.demo_index import build_demo_index
from dashboard.ingest.writer import refresh_marts
from dashboard.views import pages as pages_module
from dashboard.views import sidebar as sidebar_module
from dashboard.views.pages import PAGES as APP_PAGES

REPO = Path(__file__).resolve().parents[1]
PAGES = tuple(page.url_path for page in APP_PAGES)
BARE = "SELECT state, count(*) FROM study GROUP BY state"
TEST_DEMO = {"seed": 11, "today": dt.date(2026, 11, 30)}  # tests/conftest.py's demo_db


def median_seconds(action: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fresh_app(db: Path, page: str, link: dict[str, list[str]]) -> AppTest:
    """The app on ``db`` with empty caches, opened on ``page`` with the query parameters
    ``link`` (as a shared link opens it), not yet run."""
    st.cache_data.clear()
    st.cache_resource.clear()
    os.environ["DIVERSITY_DB"] = str(db)
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=600)
    at._page_hash = calc_hash(page)
    for name, values in link.items():
        at.query_params[name] = values
    return at


def run_checked(at: AppTest, page: str) -> None:
    """One run of ``at``; a page that shows an exception stops the benchmark."""
    at.run()
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception[0].value}")


def record_queries(
    db: Path, page: str, link: dict[str, list[str]]
) -> tuple[list[tuple[str, dict[str, Any]]], float, float]:
    """Run the page twice under AppTest with the query parameters ``link``; return its queries
    and the cold and warm run times."""
    calls: list[tuple[str, dict[str, Any]]] = []
    real_query = sql.query

    def recording(con, name: str, **params: Any):
        calls.append((name, params))
        return real_query(con, name, **params)

    sql.query = recording
    try:
        at = fresh_app(db, page, link)
        start = time.perf_counter()
        run_checked(at, page)
        cold = time.perf_counter() - start
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


def _timed(part: str, action: Callable[..., Any], samples: list[tuple[str, float, float]]):
    """``action`` recording (part, script-thread CPU s, process CPU s) of each call."""

    @functools.wraps(action)
    def timed(*args: Any, **kwargs: Any) -> Any:
        thread, process = time.thread_time(), time.process_time()
        try:
            return action(*args, **kwargs)
        finally:
            samples.append((part, time.thread_time() - thread, time.process_time() - process))

    return timed


def warm_runs(db: Path, page: str, runs: int, link: dict[str, list[str]]) -> dict[str, list[float]]:
    """CPU seconds of each of ``runs`` warm reruns of ``page`` opened with ``link`` under
    AppTest (the first, cold
    run fills the caches and is not counted): the page's render in the script thread
    ("page"), the same in the whole process ("page_process"), the sidebar ("sidebar"), and
    the script thread's whole run ("script": Streamlit's own per-run work, the entry script,
    the sidebar and the page; AppTest's harness runs in the calling thread)."""
    samples: list[tuple[str, float, float]] = []
    real_pages, real_filters = pages_module.PAGES, sidebar_module.render_filters
    real_run = LocalScriptRunner._run_script
    set_log_level("error")
    # streamlit_app.py imports both names on every run, so each run picks up the wrappers.
    pages_module.PAGES = tuple(
        spec._replace(render=_timed("page", spec.render, samples)) for spec in real_pages
    )
    sidebar_module.render_filters = _timed("sidebar", real_filters, samples)
    LocalScriptRunner._run_script = _timed("script", real_run, samples)  # type: ignore[method-assign]
    try:
        at = fresh_app(db, page, link)
        run_checked(at, page)
        samples.clear()
        for _ in range(runs):
            run_checked(at, page)
    finally:
        pages_module.PAGES, sidebar_module.render_filters = real_pages, real_filters
        LocalScriptRunner._run_script = real_run  # type: ignore[method-assign]
    return {
        "page": [t for part, t, _ in samples if part == "page"],
        "page_process": [p for part, _, p in samples if part == "page"],
        "sidebar": [t for part, t, _ in samples if part == "sidebar"],
        "script": [t for part, t, _ in samples if part == "script"],
    }


def bench_warm(
    db: Path, runs: int, pages: tuple[str, ...] = PAGES, link: dict[str, list[str]] | None = None
) -> None:
    """Print each page's warm-run CPU, median and fastest of ``runs``, in ms."""
    print(f"\nwarm page runs on {db.name}: CPU ms per run, median (fastest) of {runs} "
          f"(load average {os.getloadavg()[0]:.1f} at start)")  # fmt: skip
    print(f"{'page':<18}{'script thread':>16}{'page thread':>16}{'page process':>16}"
          f"{'sidebar thread':>16}")  # fmt: skip
    for page in pages:
        cpu = warm_runs(db, page, runs, link or {})
        cells = [
            f"{statistics.median(v) * 1000:.0f} ({min(v) * 1000:.0f})"
            for v in (cpu["script"], cpu["page"], cpu["page_process"], cpu["sidebar"])
        ]
        print(f"{page:<18}" + "".join(f"{c:>16}" for c in cells))
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


def ensure_marts(db: Path) -> None:
    """Build the marts of an index published before they existed (what its next write does)."""
    con = connect_readonly(db)
    missing = load_marts(con) is None
    con.close()
    if missing:
        start = time.perf_counter()
        refresh_marts(db)
        print(f"built the marts of {db.name} in {time.perf_counter() - start:.0f} s")


def bench_size(
    studies: int,
    workdir: Path,
    repeat: int,
    warm: int = 0,
    queries: bool = True,
    pages: tuple[str, ...] = PAGES,
    link: dict[str, list[str]] | None = None,
) -> None:
    db = workdir / f"demo_{studies}.duckdb"
    if not db.exists():
        start = time.perf_counter()
        demo = TEST_DEMO if studies < 100_000 else {"seed": 1, "today": dt.date.today()}
        build_demo_index(db, studies=studies, **demo)
        print(f"built {db} in {time.perf_counter() - start:.0f} s")
    ensure_marts(db)
    if warm:
        bench_warm(db, warm, pages, link)
    if not queries:
        return
    con = connect_readonly(db)
    bare = median_seconds(lambda: con.sql(BARE).fetchall(), repeat)
    con.close()
    shown = "&".join(f"{k}={v}" for k, values in (link or {}).items() for v in values)
    print(f"\n{studies:,} studies — bare aggregate {bare * 1000:.0f} ms"
          + (f" — link ?{shown}" if shown else ""))  # fmt: skip
    print(f"{'page':<18}{'queries':>8}{'cold ms':>10}{'×bare':>8}{'AppTest cold s':>16}"
          f"{'AppTest warm s':>16}")  # fmt: skip
    for page in pages:
        calls, app_cold, app_warm = record_queries(db, page, link or {})
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
    parser.add_argument(
        "--warm-runs", type=int, default=10, help="warm reruns per page (0: skip that section)"
    )
    parser.add_argument(
        "--warm-only", action="store_true", help="only the warm page runs, not the queries"
    )
    parser.add_argument(
        "--pages", default=",".join(PAGES), help="the pages' URL paths, comma-separated"
    )
    parser.add_argument(
        "--link",
        default="",
        help="query parameters the pages open with, as in a shared link (e.g. state=Kerala)",
    )
    args = parser.parse_args()
    link = urllib.parse.parse_qs(args.link)
    pages = tuple(args.pages.split(","))
    if unknown := set(pages) - set(PAGES):
        parser.error(f"no such page: {', '.join(sorted(unknown))} (pages: {', '.join(PAGES)})")
    args.workdir.mkdir(parents=True, exist_ok=True)
    for size in (int(s) for s in args.sizes.split(",")):
        bench_size(size, args.workdir, args.repeat, args.warm_runs, not args.warm_only, pages, link)


if __name__ == "__main__":
    main()
