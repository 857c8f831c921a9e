"""`python -m dashboard …`: ingest, demo, quarantine export and the read commands.

Every command takes --db (default: $DIVERSITY_DB, else var/diversity.duckdb) and calls the same
functions as the pages. Errors in input files are reported by file, row, column and value, and
exit with status 1; a traceback is never the answer to bad input.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from dashboard.config import load_settings
from dashboard.coverage import coverage as coverage_counts
from dashboard.db import IndexMissingError, connect_readonly
from dashboard.ingest.demo_index import build_demo_index
from dashboard.ingest.institutions import ingest_institutions
from dashboard.ingest.manifest import IngestReport, ingest_manifest
from dashboard.ingest.reader import FileRefusedError
from dashboard.ingest.writer import index_writer
from dashboard.quarantine import open_quarantine

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
ingest_app = typer.Typer(no_args_is_help=True, help="Add data to the index.")
app.add_typer(ingest_app, name="ingest")
err = Console(stderr=True)
out = Console(soft_wrap=True)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Index file (default: $DIVERSITY_DB, else var/diversity.duckdb)."),
]
FormatOption = Annotated[str, typer.Option("--format", help="table, csv or json")]


def _db(db: Path | None) -> Path:
    return db or load_settings().db_path


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)


def _print_frame(frame: pl.DataFrame, fmt: str) -> None:
    if fmt == "csv":
        sys.stdout.write(frame.write_csv())
    elif fmt == "json":
        sys.stdout.write(json.dumps(frame.to_dicts(), default=str) + "\n")
    elif fmt == "table":
        table = Table(*frame.columns)
        for row in frame.iter_rows():
            table.add_row(
                *("" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v) for v in row)
            )
        out.print(table)
    else:
        raise _fail(f"unknown format {fmt!r}; use table, csv or json")


def _print_ingest_report(report: IngestReport) -> None:
    out.print(
        f"[bold]{report.file}[/bold]: {report.rows_read:,} read, {report.accepted:,} accepted "
        f"({report.inserted:,} inserted, {report.updated:,} updated, {report.unchanged:,} "
        f"unchanged, {report.duplicates:,} duplicate), {report.quarantined:,} quarantined",
        highlight=False,
    )
    for n, reason in report.reason_summary():
        out.print(f"  {n:,} × {reason}", highlight=False)
    if report.ignored_columns:
        out.print(f"  ignored columns: {', '.join(report.ignored_columns)}", highlight=False)


@ingest_app.command("manifest")
def ingest_manifest_command(
    files: Annotated[list[Path], typer.Argument(help="CSV, TSV or Parquet manifests.")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Validate and ingest study manifests; each file is one transaction."""
    reports: list[dict[str, Any]] = []
    refused = False
    with index_writer(_db(db)) as con:
        for path in files:
            try:
                report = ingest_manifest(con, path)
            except (FileRefusedError, FileNotFoundError) as problem:
                refused = True
                err.print(f"[red]refused:[/red] {problem}", highlight=False)
                reports.append({"file": str(path), "error": str(problem)})
                continue
            reports.append(report.to_dict())
            if not as_json:
                _print_ingest_report(report)
    if as_json:
        sys.stdout.write(json.dumps(reports[0] if len(reports) == 1 else reports) + "\n")
    if refused:
        raise typer.Exit(1)


@ingest_app.command("institutions")
def ingest_institutions_command(
    file: Annotated[Path, typer.Argument(help="Registry CSV.")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Load or update the institution registry."""
    try:
        with index_writer(_db(db)) as con:
            report = ingest_institutions(con, file)
    except (FileRefusedError, FileNotFoundError) as problem:
        raise _fail(str(problem)) from None
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
    else:
        out.print(
            f"{report.file}: {report.rows_read} institutions ({report.inserted} new, "
            f"{report.updated} updated, {report.unchanged} unchanged)"
        )


@app.command()
def demo(
    db: DbOption = None,
    studies: Annotated[int, typer.Option(help="Number of synthetic studies.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 2026,
    replace: Annotated[bool, typer.Option(help="Replace an existing index.")] = False,
) -> None:
    """Build a synthetic demo index through the same ingestion as real manifests."""
    path = _db(db)
    if path.exists() and not replace:
        raise _fail(f"{path} exists; pass --replace to rebuild it")
    for report in build_demo_index(path, studies=studies, seed=seed, today=dt.date.today()):
        _print_ingest_report(report)
    out.print(f"demo index written to {path}")


@app.command()
def quarantine(
    db: DbOption = None,
    fmt: FormatOption = "csv",
    institution: Annotated[str | None, typer.Option(help="Only this institution's rows.")] = None,
) -> None:
    """Export quarantined rows with their reasons, to fix and resubmit."""
    try:
        con = connect_readonly(_db(db))
    except IndexMissingError as missing:
        raise _fail(str(missing)) from None
    with con:
        _print_frame(open_quarantine(con, institution), fmt)


@app.command()
def coverage(
    by: Annotated[str, typer.Option("--by", help="Comma-separated dimensions.")],
    db: DbOption = None,
    unit: Annotated[str, typer.Option(help="patients, studies or images")] = "patients",
    fmt: FormatOption = "table",
) -> None:
    """Counts and shares per cell of the chosen dimensions."""
    dims = [d.strip() for d in by.split(",") if d.strip()]
    try:
        con = connect_readonly(_db(db))
        with con:
            frame = coverage_counts(con, dims, unit)
    except (IndexMissingError, ValueError) as problem:
        raise _fail(str(problem)) from None
    _print_frame(frame, fmt)


def main() -> None:
    """Entry point for `python -m dashboard`."""
    app()
