"""`python -m dashboard …`: ingest, demo, quarantine export and the read commands.

Every command takes --db (default: $DIVERSITY_DB, else var/diversity.duckdb) and calls the same
functions as the pages. Errors in input files are reported by file, row, column and value, and
exit with status 1; a traceback is never the answer to bad input.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from dashboard import audit, privacy
from dashboard.config import load_settings
from dashboard.coverage import coverage as coverage_counts
from dashboard.db import IndexMissingError, connect_readonly
from dashboard.export import defuse_formulas
from dashboard.ingest.demo_index import build_demo_index
from dashboard.ingest.institutions import ingest_institutions
from dashboard.ingest.manifest import IngestReport, ingest_manifest
from dashboard.ingest.reader import FileRefusedError
from dashboard.ingest.writer import index_writer
from dashboard.quarantine import open_quarantine
from dashboard.roles import CLI_OUTPUT_IS_EXPORT, Role, RoleError, suppression_for

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
DicomPaths = Annotated[
    list[Path], typer.Argument(exists=True, help="DICOM folders (walked recursively) or files.")
]
DicomManifestOption = Annotated[
    Path | None,
    typer.Option(
        help="CSV, TSV or Parquet joined on study_uid: institution_id, state, district, "
        "area_type, diagnosis_icd10, facility_type."
    ),
]
InstitutionOption = Annotated[
    str | None,
    typer.Option(help="Registered institution id (required unless the manifest gives it)."),
]
WorkersOption = Annotated[
    int | None, typer.Option(min=1, help="Processes reading headers (default: every core).")
]
ReaderOption = Annotated[
    str,
    typer.Option(
        "--reader",
        help="auto: the compiled reader (dicomsdl) for every file it reads exactly as pydicom "
        "does, pydicom for the rest; pydicom: pydicom only. The rows are the same.",
    ),
]
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="local (a process pool here) or dask (a Dask cluster: a LocalCluster of --workers "
        "processes, or the one at --scheduler); both give the same index (or package).",
    ),
]
SchedulerOption = Annotated[
    str | None,
    typer.Option(help="Address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786."),
]
ShardsOption = Annotated[
    Path | None,
    typer.Option(
        "--shards",
        help="Folder for the Dask run's Parquet shards, reachable by the workers and this "
        "machine (default: dask-shards/ beside the index, or beside the package for scan).",
    ),
]
KeepShardsOption = Annotated[
    bool, typer.Option("--keep-shards", help="Keep the Parquet shards after loading them.")
]


def _db(db: Path | None) -> Path:
    return db or load_settings().db_path


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)


def _print_frame(frame: pl.DataFrame, fmt: str) -> None:
    if fmt == "csv":
        sys.stdout.write(defuse_formulas(frame).write_csv())
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


RoleOption = Annotated[
    str,
    typer.Option(
        "--role",
        help="Whom the output is for: admin (the default: the local operator sees everything), "
        "programme, partner:INSTITUTION_ID (its own institution in full) or public. Counts the "
        "role may not see in full are suppressed (< k, and complements 'withheld'; null with "
        '"suppressed": true in JSON). Every read command is an export and is audit-logged.',
    ),
]


def _viewer(text: str, con: Any) -> Role:
    """The --role, checked; a partner must be a registered institution."""
    from dashboard import sql as named

    try:
        role = Role.parse(text)
    except RoleError as problem:
        raise _fail(str(problem)) from None
    if role.institution is not None:
        known = named.query(con, "partner_registry")["institution_id"].to_list()
        if role.institution not in known:
            raise _fail(
                f"no registered institution {role.institution!r}; registered: "
                + (", ".join(sorted(known)) or "none")
            )
    return role


def _pattern(role: Role, counts: pl.DataFrame, dims: list[str]) -> privacy.Suppression | None:
    """What ``role`` may not see of ``counts`` (None: everything may be seen)."""
    k = load_settings().small_cell_k
    return suppression_for(role, counts, dims, k=k, export=CLI_OUTPUT_IS_EXPORT)


def _export(db: Path, role: Role, what: str, **detail: Any) -> None:
    """Log the output as an export before it is printed; no log, no output."""
    try:
        audit.record(
            _db(db),
            actor=audit.current_user(),
            role=str(role),
            action="export",
            what=what,
            channel="cli",
            detail=detail,
        )
    except audit.AuditError as problem:
        raise _fail(f"{problem}; nothing was exported") from None


def _print_protected(frame: pl.DataFrame, fmt: str, columns: tuple[str, ...] = ("n",)) -> None:
    """A table that may carry suppressed cells: "< k"/"withheld" in table and CSV output."""
    if fmt != "json":
        frame = privacy.shown_counts(frame, load_settings().small_cell_k, columns)
    _print_frame(frame, fmt)


def _withheld_note(pattern: privacy.Suppression | None) -> None:
    if pattern is not None and pattern.totals_withheld:
        _summary_line(
            "note: N and the count of unknowns are withheld (published, they would reveal a "
            "suppressed cell): shares and what derives from N are not shown"
        )
    elif pattern is not None and pattern.unknown_withheld:
        _summary_line(
            "note: the count of unknowns and totals including them are withheld (they would "
            "reveal a suppressed cell)"
        )


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
    role: RoleOption = "admin",
) -> None:
    """Export quarantined rows with their reasons, to fix and resubmit.

    These are rows as submitted, so only the admin and a partner (its own rows) may export them.
    """
    try:
        con = connect_readonly(_db(db))
    except IndexMissingError as missing:
        raise _fail(str(missing)) from None
    with con:
        viewer = _viewer(role, con)
        if viewer.name not in ("admin", "partner"):
            raise _fail(f"the {viewer.name} role may not export submitted rows")
        if viewer.institution is not None:
            if institution is not None and institution.upper() != viewer.institution.upper():
                raise _fail(f"partner {viewer.institution} may export only its own rows")
            institution = viewer.institution
        rows = open_quarantine(con, institution)
    _export(db, viewer, f"quarantine --format {fmt}", institution=institution, rows=rows.height)
    _print_frame(rows, fmt)


@app.command()
def coverage(
    by: Annotated[str, typer.Option("--by", help="Comma-separated dimensions.")],
    db: DbOption = None,
    unit: Annotated[str, typer.Option(help="patients, studies or images")] = "patients",
    fmt: FormatOption = "table",
    role: RoleOption = "admin",
) -> None:
    """Counts and shares per cell of the chosen dimensions."""
    dims = [d.strip() for d in by.split(",") if d.strip()]
    try:
        con = connect_readonly(_db(db))
        with con:
            viewer = _viewer(role, con)
            frame = coverage_counts(con, dims, unit)
    except (IndexMissingError, ValueError) as problem:
        raise _fail(str(problem)) from None
    pattern = _pattern(viewer, frame, dims)
    if pattern is not None:
        frame = privacy.apply(frame, pattern, privacy.COVERAGE)
    _export(
        db,
        viewer,
        f"coverage --by {','.join(dims)} --unit {unit} --format {fmt}",
        rows=frame.height,
        suppressed=pattern.suppressed if pattern else 0,
    )
    _withheld_note(pattern)
    _print_protected(frame, fmt)


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


def _gap_counts(con: Any, dims: list[str], spec: str, unit: str) -> pl.DataFrame:
    """The coverage counts (unknown cells included) under a gaps or plan table: the pattern
    is computed on them, so the same cells hide in coverage, gaps and plan."""
    from dashboard import gaps as gap_analysis

    reference = gap_analysis.resolve_reference(spec, dims)
    return coverage_counts(con, list(reference.dims), unit, reference.filters)


def _gap_pattern(
    con: Any, viewer: Role, dims: list[str], spec: str, unit: str
) -> privacy.Suppression | None:
    """What ``viewer`` may not see of a gaps, plan or score table (None: everything); the
    counts under it are read only when something may be hidden."""
    if viewer.sees_all(export=CLI_OUTPUT_IS_EXPORT):
        return None
    return _pattern(viewer, _gap_counts(con, dims, spec, unit), dims)


def _jsd_for(value: float | None, pattern: privacy.Suppression | None) -> str:
    if pattern is None:
        return _jsd(value)
    if pattern.totals_withheld:
        return "withheld"
    return "–" if value is None else f"{privacy.coarse(value):.2f}"


@app.command()
def gaps(
    by: ByOption,
    reference: ReferenceOption = "population",
    unit: UnitOption = "patients",
    fmt: FormatOption = "table",
    db: DbOption = None,
    sort: Annotated[str, typer.Option(help="shortfall or rr")] = "shortfall",
    role: RoleOption = "admin",
) -> None:
    """Representation ratio, 95% interval, flag and shortfall of every reference cell."""
    from dashboard import gaps as gap_analysis

    try:
        dims = gap_analysis.parse_dims(by)
        with connect_readonly(_db(db)) as con:
            viewer = _viewer(role, con)
            result = gap_analysis.gaps(con, dims, reference, unit=unit)
            pattern = _gap_pattern(con, viewer, dims, reference, unit)
        rows = result.table
        if pattern is not None:  # before sorting: a hidden cell's place would reveal it
            rows = privacy.apply(rows, pattern, privacy.GAPS)
        table = gap_analysis.sort_gaps(rows, sort)
    except (IndexMissingError, ValueError) as problem:
        raise _fail(str(problem)) from None
    _export(
        db,
        viewer,
        f"gaps --by {','.join(dims)} --reference {reference} --unit {unit} --format {fmt}",
        rows=table.height,
        suppressed=pattern.suppressed if pattern else 0,
    )
    _print_protected(table, fmt)
    rate = result.missing_rate
    if pattern is None:
        total, unknown = f"{result.total:,}", f"{result.unknown:,}"
    else:
        k = pattern.k
        total = _count_text(privacy.shown_total(result.total, k, withheld=pattern.totals_withheld))
        shown = privacy.shown_total(result.unknown, k, withheld=pattern.unknown_withheld)
        unknown = _count_text(shown)
        rate = rate if shown == result.unknown else None  # the rate would reveal a hidden count
    _summary_line(
        f"{result.reference}; N = {total} {unit} with known {', '.join(dims)}, "
        f"{unknown} unknown left out"
        + (f" ({rate:.1%})" if rate is not None else "")
        + f"; JSD {_jsd_for(result.jsd, pattern)}; τ = {result.tau:g}, n_min = {result.n_min}"
    )
    _withheld_note(pattern)


def _count_text(value: int | str | None) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


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
    role: RoleOption = "admin",
) -> None:
    """Allocate a budget over the cells (minimum JSD) and split it across partners."""
    from dashboard import gaps as gap_analysis
    from dashboard import sql as named

    try:
        dims = gap_analysis.parse_dims(by)
        with connect_readonly(_db(db)) as con:
            viewer = _viewer(role, con)
            caps, notes = (None, [])
            if capacity is not None:
                registry = named.query(con, "partner_registry")
                caps, notes = gap_analysis.read_capacity(capacity, registry)
            outcome = gap_analysis.plan_collection(
                con, dims, budget, reference, unit=unit, capacity=caps, notes=notes
            )
            pattern = _gap_pattern(con, viewer, dims, reference, unit)
    except (IndexMissingError, ValueError) as problem:
        raise _fail(str(problem)) from None
    rows = outcome.rows()
    if pattern is not None:
        rows = privacy.merge_partners(
            rows,
            dims,
            viewer.institutions_shown(),
            k=pattern.k,
            months=gap_analysis.ACCRUAL_MONTHS,
        )
        rows = privacy.apply(rows, pattern, privacy.PLAN_ROWS).sort(
            [pl.col("cell_allocated"), *dims, "institution"],
            descending=[True, *([False] * (len(dims) + 1))],
            nulls_last=True,
        )
    _export(
        db,
        viewer,
        f"plan --budget {budget} --by {','.join(dims)} --reference {reference} --unit {unit} "
        f"--format {fmt}",
        rows=rows.height,
        suppressed=pattern.suppressed if pattern else 0,
    )
    _print_protected(rows, fmt)
    summary = outcome.summary()
    _summary_line(
        f"budget {budget:,} {unit}: {summary['allocated']:,} allocated, "
        f"{summary['unallocated']:,} unallocated; JSD {_jsd_for(summary['jsd_before'], pattern)} "
        f"now, {_jsd_for(summary['jsd_after'], pattern)} after this plan, "
        f"{_jsd_for(summary['jsd_after_proportional'], pattern)} after a proportional plan; "
        f"accrual {summary['accrual_months'] or '–'}; {summary['reference']}"
    )
    for note in outcome.notes:
        _summary_line(f"note: {note}")
    _withheld_note(pattern)


@app.command()
def score(
    by: ByOption,
    reference: ReferenceOption = "population",
    unit: UnitOption = "patients",
    fmt: FormatOption = "json",
    db: DbOption = None,
    role: RoleOption = "admin",
) -> None:
    """Jensen–Shannon distance from the reference, representativeness, N and unknowns."""
    from dashboard import gaps as gap_analysis

    try:
        dims = gap_analysis.parse_dims(by)
        with connect_readonly(_db(db)) as con:
            viewer = _viewer(role, con)
            result = gap_analysis.gaps(con, dims, reference, unit=unit)
            pattern = _gap_pattern(con, viewer, dims, reference, unit)
    except (IndexMissingError, ValueError) as problem:
        raise _fail(str(problem)) from None
    score, reasons = _protected_score(result.score(), pattern)
    _export(
        db,
        viewer,
        f"score --by {','.join(dims)} --reference {reference} --unit {unit} --format {fmt}",
        suppressed=pattern.suppressed if pattern else 0,
    )
    if fmt == "json":
        sys.stdout.write(json.dumps(score) + "\n")
    else:
        k = pattern.k if pattern else 0
        text = {key: privacy.label(reason, k) for key, reason in reasons.items()}
        _print_frame(pl.DataFrame([score | text]), fmt)
    _withheld_note(pattern)


def _protected_score(
    score: dict[str, Any], pattern: privacy.Suppression | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """`score`'s numbers as a viewer with this pattern may see them: N and the unknowns null
    (with ``"suppressed": true``) when small or withheld, the divergence coarse, or null when
    N is withheld (privacy.coarse)."""
    if pattern is None:
        return score, {}
    k, reasons = pattern.k, {}
    out = dict(score)
    for key, withheld in (("n", pattern.totals_withheld), ("unknown", pattern.unknown_withheld)):
        shown = privacy.shown_total(score[key], k, withheld=withheld)
        if not isinstance(shown, int):
            out[key] = None
            reasons[key] = privacy.SECONDARY if withheld else privacy.SMALL
    for key in ("jsd", "representativeness"):
        out[key] = None if pattern.totals_withheld else privacy.coarse(score[key])
    out["suppressed"] = bool(reasons) or pattern.totals_withheld
    return out, reasons


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


def _workers(workers: int | None) -> int:
    """The --workers given, or every core."""
    return workers or os.cpu_count() or 1


@ingest_app.command("dicom")
def ingest_dicom_command(
    paths: DicomPaths,
    db: DbOption = None,
    manifest: DicomManifestOption = None,
    institution: InstitutionOption = None,
    workers: WorkersOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (no progress bar).")
    ] = False,
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    shards: ShardsOption = None,
    keep_shards: KeepShardsOption = False,
    reader: ReaderOption = "auto",
) -> None:
    """Index DICOM headers (never pixel data): each file is indexed or skipped with a reason."""
    from dashboard.ingest.dicom_dask import SHARD_FOLDER, make_scanner
    from dashboard.ingest.dicom_index import ingest_dicom
    from dashboard.progress import file_progress

    try:
        scanner = make_scanner(
            engine,
            scheduler=scheduler,
            shard_root=shards or _db(db).parent / SHARD_FOLDER,
            keep_shards=keep_shards,
            reader=reader,
        )
        with file_progress(err, disable=as_json) as progress:
            result = ingest_dicom(
                _db(db),
                paths,
                institution=institution,
                manifest=manifest,
                workers=_workers(workers),
                progress=progress,
                scanner=scanner,
                reader=reader,
            )
    except (ValueError, FileNotFoundError) as problem:  # refused input; IndexMissingError too
        raise _fail(str(problem)) from None
    if scanner is not None and scanner.last_shards is not None:
        err.print(f"Parquet shards kept in {scanner.last_shards}", highlight=False, soft_wrap=True)
    if as_json:
        sys.stdout.write(json.dumps(result.to_report()) + "\n")
    else:
        _print_scan_summary(result.to_report())
        _print_ingest_report(result.ingest)


@app.command()
def scan(
    paths: DicomPaths,
    package: Annotated[Path, typer.Option("--out", help="Package folder to create.")],
    manifest: DicomManifestOption = None,
    institution: InstitutionOption = None,
    workers: WorkersOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the package manifest as JSON (no progress bar).")
    ] = False,
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    shards: ShardsOption = None,
    keep_shards: KeepShardsOption = False,
) -> None:
    """Scan DICOM on the partner's premises into a de-identified package to submit."""
    from dashboard.ingest.dicom_dask import SHARD_FOLDER, make_scanner
    from dashboard.ingest.package import scan_to_package
    from dashboard.progress import file_progress

    try:
        scanner = make_scanner(
            engine,
            scheduler=scheduler,
            shard_root=shards or package.resolve().parent / SHARD_FOLDER,
            keep_shards=keep_shards,
        )
        with file_progress(err, disable=as_json) as progress:
            _scan, written = scan_to_package(
                paths,
                package,
                institution=institution,
                manifest=manifest,
                workers=_workers(workers),
                progress=progress,
                scanner=scanner,
            )
    except (ValueError, FileExistsError) as problem:
        raise _fail(str(problem)) from None
    if scanner is not None and scanner.last_shards is not None:
        err.print(f"Parquet shards kept in {scanner.last_shards}", highlight=False, soft_wrap=True)
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
    institution: InstitutionOption = None,
    manifest: DicomManifestOption = None,
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


@app.command()
def report(
    html_file: Annotated[Path, typer.Option("--out", help="HTML file to write.")],
    db: DbOption = None,
    pdf: Annotated[
        Path | None, typer.Option("--pdf", help="Also write the datasheet as an A4 PDF here.")
    ] = None,
    role: RoleOption = "admin",
) -> None:
    """Write the diversity datasheet: one self-contained HTML file for this index snapshot.

    For every role but admin the datasheet is the suppressed edition (it is an export)."""
    from dashboard.report import Datasheet, ReportError, write_report

    try:
        with connect_readonly(_db(db)) as con:
            viewer = _viewer(role, con)
    except IndexMissingError as problem:
        raise _fail(str(problem)) from None

    def log(sheet: Datasheet) -> None:
        _export(
            db,
            viewer,
            f"report --out {html_file.name}" + (f" --pdf {pdf.name}" if pdf else ""),
            snapshot=sheet.snapshot.id,
            suppressed=not sheet.viewer.full,
            withheld=sheet.viewer.withheld,
        )

    try:
        sheet = write_report(_db(db), html_file, pdf, role=viewer, before_write=log)
    except (IndexMissingError, ReportError, OSError) as problem:
        raise _fail(str(problem)) from None
    size = html_file.stat().st_size
    out.print(
        f"datasheet of snapshot {sheet.snapshot.id} written to {html_file} "
        f"({size / 1e6:.1f} MB; {sheet.shown_totals['studies']} studies)"
        + (f" and {pdf}" if pdf else "")
        + ("" if sheet.viewer.full else f"; suppressed edition for {viewer}"),
        highlight=False,
    )


def main() -> None:
    """Entry point for `python -m dashboard`."""
    app()
