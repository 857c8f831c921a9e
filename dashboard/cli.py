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


ReferenceOption = Annotated[
    str,
    typer.Option(
        "--reference",
        help="population (2026 projection), population:census2011, burden:CONDITION "
        "or targets:FILE (a CSV with the dimension columns and 'target').",
    ),
]
UnitOption = Annotated[str, typer.Option("--unit", help="patients, studies or images")]
ByOption = Annotated[
    str, typer.Option("--by", help="Comma-separated dimensions, e.g. state,sex,age_band.")
]


def _summary_line(text: str) -> None:
    err.print(text, highlight=False)


def _jsd(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


@app.command()
def gaps(
    by: ByOption,
    reference: ReferenceOption = "population",
    unit: UnitOption = "patients",
    fmt: FormatOption = "table",
    db: DbOption = None,
    sort: Annotated[str, typer.Option(help="shortfall or rr")] = "shortfall",
) -> None:
    """Representation ratio, 95% interval, flag and shortfall of every reference cell."""
    from dashboard import gaps as gap_analysis

    try:
        dims = gap_analysis.parse_dims(by)
        with connect_readonly(_db(db)) as con:
            result = gap_analysis.gaps(con, dims, reference, unit=unit)
        table = gap_analysis.sort_gaps(result.table, sort)
    except (IndexMissingError, ValueError) as problem:
        raise _fail(str(problem)) from None
    _print_frame(table, fmt)
    rate = result.missing_rate
    _summary_line(
        f"{result.reference}; N = {result.total:,} {unit} with known {', '.join(dims)}, "
        f"{result.unknown:,} unknown left out"
        + (f" ({rate:.1%})" if rate is not None else "")
        + f"; JSD {_jsd(result.jsd)}; τ = {result.tau:g}, n_min = {result.n_min}"
    )


@app.command()
def plan(
    budget: Annotated[int, typer.Option("--budget", help="New patients (or studies) to plan.")],
    by: ByOption,
    reference: ReferenceOption = "population",
    unit: UnitOption = "patients",
    fmt: FormatOption = "table",
    db: DbOption = None,
    capacity: Annotated[
        Path | None,
        typer.Option(help="CSV of institution_id, capacity: new patients each partner can add."),
    ] = None,
) -> None:
    """Allocate a budget over the cells (minimum JSD) and split it across partners."""
    from dashboard import gaps as gap_analysis
    from dashboard import sql as named

    try:
        dims = gap_analysis.parse_dims(by)
        with connect_readonly(_db(db)) as con:
            caps, notes = (None, [])
            if capacity is not None:
                registry = named.query(con, "partner_registry")
                caps, notes = gap_analysis.read_capacity(capacity, registry)
            outcome = gap_analysis.plan_collection(
                con, dims, budget, reference, unit=unit, capacity=caps, notes=notes
            )
    except (IndexMissingError, ValueError) as problem:
        raise _fail(str(problem)) from None
    _print_frame(outcome.rows(), fmt)
    summary = outcome.summary()
    _summary_line(
        f"budget {budget:,} {unit}: {summary['allocated']:,} allocated, "
        f"{summary['unallocated']:,} unallocated; JSD {_jsd(summary['jsd_before'])} now, "
        f"{_jsd(summary['jsd_after'])} after this plan, "
        f"{_jsd(summary['jsd_after_proportional'])} after a proportional plan; "
        f"accrual {summary['accrual_months'] or '–'}; {summary['reference']}"
    )
    for note in outcome.notes:
        _summary_line(f"note: {note}")


@app.command()
def score(
    by: ByOption,
    reference: ReferenceOption = "population",
    unit: UnitOption = "patients",
    fmt: FormatOption = "json",
    db: DbOption = None,
) -> None:
    """Jensen–Shannon distance from the reference, representativeness, N and unknowns."""
    from dashboard import gaps as gap_analysis

    try:
        dims = gap_analysis.parse_dims(by)
        with connect_readonly(_db(db)) as con:
            result = gap_analysis.gaps(con, dims, reference, unit=unit)
    except (IndexMissingError, ValueError) as problem:
        raise _fail(str(problem)) from None
    if fmt == "json":
        sys.stdout.write(json.dumps(result.score()) + "\n")
    else:
        _print_frame(pl.DataFrame([result.score()]), fmt)


def _print_scan_summary(summary: dict[str, Any]) -> None:
    seen, indexed, skipped = (summary[k] for k in ("files_seen", "files_indexed", "files_skipped"))
    out.print(
        f"{seen:,} files: {indexed:,} indexed, {skipped:,} skipped; {summary['studies']:,} "
        f"studies, {summary['series']:,} series, {summary['instances']:,} instances",
        highlight=False,
    )
    for reason, n in summary["skipped_by_reason"].items():
        out.print(f"  skipped {n:,} × {reason}", highlight=False)
    if summary["phi_flagged_files"]:
        tags = ", ".join(f"{tag} {n:,}" for tag, n in summary["phi_tag_files"].items())
        out.print(
            f"  [yellow]{summary['phi_flagged_files']:,} files carry identifying header "
            f"values[/yellow] ({tags}); the values were not stored",
            highlight=False,
        )


@ingest_app.command("dicom")
def ingest_dicom_command(
    paths: Annotated[
        list[Path], typer.Argument(exists=True, help="DICOM folders (walked recursively) or files.")
    ],
    db: DbOption = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="CSV, TSV or Parquet joined on study_uid: institution_id, state, district, "
            "area_type, diagnosis_icd10, facility_type."
        ),
    ] = None,
    institution: Annotated[
        str | None,
        typer.Option(help="Registered institution id (required unless the manifest gives it)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes reading headers (default: every core).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (no progress bar).")
    ] = False,
) -> None:
    """Index DICOM headers (never pixel data): each file is indexed or skipped with a reason."""
    import os

    from dashboard.ingest.dicom_index import ingest_dicom
    from dashboard.progress import file_progress

    try:
        with file_progress(err, disable=as_json) as progress:
            result = ingest_dicom(
                _db(db),
                paths,
                institution=institution,
                manifest=manifest,
                workers=workers or os.cpu_count() or 1,
                progress=progress,
            )
    except (ValueError, FileNotFoundError) as problem:  # refused input; IndexMissingError too
        raise _fail(str(problem)) from None
    if as_json:
        sys.stdout.write(json.dumps(result.to_report()) + "\n")
    else:
        _print_scan_summary(result.to_report())
        _print_ingest_report(result.ingest)


@app.command()
def scan(
    paths: Annotated[
        list[Path], typer.Argument(exists=True, help="DICOM folders (walked recursively) or files.")
    ],
    package: Annotated[Path, typer.Option("--out", help="Package folder to create.")],
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="CSV, TSV or Parquet joined on study_uid: institution_id, state, district, "
            "area_type, diagnosis_icd10, facility_type."
        ),
    ] = None,
    institution: Annotated[
        str | None,
        typer.Option(help="Registered institution id (required unless the manifest gives it)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes reading headers (default: every core).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the package manifest as JSON (no progress bar).")
    ] = False,
) -> None:
    """Scan DICOM on the partner's premises into a de-identified package to submit."""
    import os

    from dashboard.ingest.package import scan_to_package
    from dashboard.progress import file_progress

    try:
        with file_progress(err, disable=as_json) as progress:
            _scan, written = scan_to_package(
                paths,
                package,
                institution=institution,
                manifest=manifest,
                workers=workers or os.cpu_count() or 1,
                progress=progress,
            )
    except (ValueError, FileExistsError) as problem:
        raise _fail(str(problem)) from None
    if as_json:
        sys.stdout.write(json.dumps(written) + "\n")
        return
    _print_scan_summary(written["scan"])
    rows = {name: f["rows"] for name, f in written["files"].items()}
    out.print(
        f"package written to {package}: {', '.join(f'{n} ({r:,} rows)' for n, r in rows.items())}"
        " and manifest.json; submit the folder as it is",
        highlight=False,
    )


@ingest_app.command("package")
def ingest_package_command(
    package: Annotated[Path, typer.Argument(help="Package folder written by `scan`.")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Verify a scan package's checksums and counts, then ingest it like a local scan."""
    from dashboard.ingest.package import ingest_package

    try:
        verified, report = ingest_package(_db(db), package)
    except (ValueError, FileNotFoundError) as problem:
        raise _fail(str(problem)) from None
    meta = verified.manifest
    summary = {k: meta.get(k) for k in ("institution", "created_at", "tool_version")}
    if as_json:
        sys.stdout.write(json.dumps(meta["scan"] | summary | report.to_dict()) + "\n")
        return
    out.print(
        f"package {package} verified (created {summary['created_at']} by version "
        f"{summary['tool_version']})",
        highlight=False,
    )
    _print_scan_summary(meta["scan"])
    _print_ingest_report(report)


@ingest_app.command("dicomweb")
def ingest_dicomweb_command(
    url: Annotated[str, typer.Argument(help="DICOMweb root, e.g. http://pacs:8042/dicom-web")],
    db: DbOption = None,
    institution: Annotated[
        str | None,
        typer.Option(help="Registered institution id (required unless the manifest gives it)."),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="CSV, TSV or Parquet joined on study_uid: institution_id, state, district, "
            "area_type, diagnosis_icd10, facility_type."
        ),
    ] = None,
    since: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Only studies dated on or after this day."),
    ] = None,
    page_size: Annotated[
        int, typer.Option(min=1, help="Studies asked for per QIDO-RS request.")
    ] = 500,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (no progress bar).")
    ] = False,
) -> None:
    """Index study metadata from a PACS (QIDO-RS to find studies, WADO-RS metadata to read)."""
    from dashboard.ingest.dicomweb import ingest_dicomweb
    from dashboard.progress import file_progress

    try:
        with file_progress(
            err, disable=as_json, description="Reading study metadata", unit="studies"
        ) as progress:
            result = ingest_dicomweb(
                _db(db),
                url,
                institution=institution,
                manifest=manifest,
                since=since.date() if since else None,
                page_size=page_size,
                progress=progress,
            )
    except (ValueError, FileNotFoundError) as problem:
        raise _fail(str(problem)) from None
    except OSError as problem:  # connection refused, DNS: the class only, never a message
        raise _fail(f"cannot reach the DICOMweb service ({type(problem).__name__})") from None
    if as_json:
        sys.stdout.write(json.dumps(result.to_report()) + "\n")
    else:
        _print_scan_summary(result.to_report())
        _print_ingest_report(result.ingest)


def main() -> None:
    """Entry point for `python -m dashboard`."""
    app()
