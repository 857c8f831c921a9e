"""Benchmark: ingest a 1,000,000-row manifest against DuckDB's plain read_csv of the same file.

Prints rows/s for both and their ratio, measured in the same run on the same file. The target
(issue 2) is full normalisation + validation + upsert + publish within 4x of the plain load.
Every write into an empty index builds the marts whole (every institution is new), so this
measures the full mart build too. CPU seconds (this process and DuckDB's threads) are printed
beside the wall-clock ones, with the load average, since a shared machine makes wall time noisy.

    python benchmarks/ingest.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard.db import DUCKDB_CONFIG
from dashboard.ingest.demo import generate_demo
from dashboard.ingest.institutions import ingest_institutions
from dashboard.ingest.manifest import ingest_manifest
from dashboard.ingest.writer import index_writer

TODAY = dt.date(2026, 11, 30)


def plain_load(csv: Path, scratch: Path) -> tuple[float, float]:
    """Wall and CPU seconds for DuckDB to read the CSV into a plain table of a fresh file."""
    scratch.unlink(missing_ok=True)
    start, cpu = time.perf_counter(), time.process_time()
    with duckdb.connect(str(scratch), config=DUCKDB_CONFIG) as con:
        con.execute("CREATE TABLE plain AS SELECT * FROM read_csv($path)", {"path": str(csv)})
        con.execute("CHECKPOINT")
    return time.perf_counter() - start, time.process_time() - cpu


def full_ingest(csv: Path, registry: Path, db: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds to ingest the manifest into an index holding only the registry."""
    db.unlink(missing_ok=True)
    with index_writer(db) as con:
        ingest_institutions(con, registry)
    start, cpu = time.perf_counter(), time.process_time()
    with index_writer(db) as con:
        report = ingest_manifest(con, csv, today=TODAY)
    return time.perf_counter() - start, time.process_time() - cpu, report.rows_read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = generate_demo(args.rows, seed=1, today=TODAY)
        csv, registry = work / "manifest.csv", work / "registry.csv"
        data.manifest.write_csv(csv)
        data.registry.write_csv(registry)
        plain = [plain_load(csv, work / "plain.duckdb") for _ in range(args.repeat)]
        runs = [full_ingest(csv, registry, work / "index.duckdb") for _ in range(args.repeat)]
        ingest_s = statistics.median(seconds for seconds, _, _ in runs)
        ingest_cpu = statistics.median(cpu for _, cpu, _ in runs)
        plain_s = statistics.median(seconds for seconds, _ in plain)
        plain_cpu = statistics.median(cpu for _, cpu in plain)
        rows = runs[0][2]
        size_mb = csv.stat().st_size / 1e6
        print(f"manifest: {rows:,} rows, {size_mb:.0f} MB CSV, median of {args.repeat} runs")
        print(
            f"duckdb read_csv → table : {plain_s:6.2f} s  {rows / plain_s:>12,.0f} rows/s"
            f"  ({plain_cpu:.2f} CPU s)"
        )
        print(
            f"full ingest (validated) : {ingest_s:6.2f} s  {rows / ingest_s:>12,.0f} rows/s"
            f"  ({ingest_cpu:.2f} CPU s)"
        )
        print(
            f"ratio ingest / plain    : {ingest_s / plain_s:6.2f}x  (target ≤ 4x; CPU time"
            f" {ingest_cpu / plain_cpu:.2f}x)"
        )
        print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
