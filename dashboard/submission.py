"""A partner's manifest submission: institution check, preview wording, quarantine table.

The Submit page is thin; what it decides lives here so it can be tested without a browser:
rows naming another institution refuse the whole submission before anything is validated or
written, the grouped reasons read like USERS.md path 5 ("2 × state 'Orisa' … did you mean
Odisha (IN-OD)?"), and the would-be quarantine downloads as row, column, value, reason.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import polars as pl

from dashboard.formatting import format_indian
from dashboard.ingest.manifest import IngestReport, map_headers
from dashboard.ingest.reader import read_table

MAX_UPLOAD_MB = 200
"""Largest file the Submit page takes, in megabytes (larger manifests go through the CLI)."""
UPLOAD_TYPES = ("csv", "tsv", "parquet")
QUARANTINE_COLUMNS = ("row", "column", "value", "reason")


def too_large(size_bytes: int, limit_mb: int = MAX_UPLOAD_MB) -> bool:
    """Whether an upload of ``size_bytes`` exceeds the page's limit of ``limit_mb`` megabytes."""
    return size_bytes > limit_mb * 1024 * 1024


def submission_key(data: bytes, institution: str) -> str:
    """Identity of one submission: the file's content hash and the institution it is for."""
    return f"{hashlib.sha256(data).hexdigest()}:{institution.upper()}"


def safe_file_name(name: str) -> str:
    """The upload's base name (no folders, no odd characters), kept so reports name the file."""
    base = Path(name.replace("\\", "/")).name.strip()
    base = re.sub(r"[^\w.\- ]", "_", base)
    return base if base.strip(". ") else "upload.csv"


def foreign_institutions(raw: pl.DataFrame, file: str, institution: str) -> dict[str, int]:
    """Institution ids other than ``institution`` in a manifest's rows, with their row counts.

    ``raw`` is the file as read (submitter's headers, text values). Ids compare case-blind, as
    the index stores them upper-case; rows without an id are not foreign (they are quarantined
    by the ordinary validation). Refuses the file (FileRefusedError) exactly as ingest would
    when its headers cannot be mapped.
    """
    mapping, _ = map_headers(raw.columns, file)
    header = next(h for h, c in mapping.items() if c == "institution_id")
    counts = (
        raw.select(pl.col(header).str.strip_chars().str.to_uppercase().alias("id"))
        .filter(pl.col("id").is_not_null() & (pl.col("id") != institution.upper()))
        .group_by("id")
        .len()
        .sort(["len", "id"], descending=[True, False])
    )
    return dict(counts.iter_rows())


def check_institution(path: Path, institution: str) -> dict[str, int]:
    """Read the file at ``path`` and return its rows for other institutions (see above)."""
    path = Path(path)
    return foreign_institutions(read_table(path), path.name, institution)


def foreign_message(foreign: dict[str, int], institution: str) -> str:
    """Why a submission naming other institutions is refused, listing each id and count."""
    listed = ", ".join(
        f"{iid} ({format_indian(n)} row{'s' if n != 1 else ''})" for iid, n in foreign.items()
    )
    total = sum(foreign.values())
    return (
        f"This submission is for **{institution}**, but {format_indian(total)} "
        f"row{'s' if total != 1 else ''} name another institution: {listed}. "
        "A submission may only hold its own institution's studies. Remove those rows (or pick "
        "the right institution) and upload again; nothing was written."
    )


def reason_lines(report: IngestReport, limit: int = 10) -> list[str]:
    """The quarantine reasons grouped, most common first: "2 × state 'Orisa' …; did you mean …?".

    Past ``limit`` distinct reasons, one last line counts the rest.
    """
    lines = [f"{format_indian(n)} × {reason}" for n, reason in report.reason_summary(limit)]
    distinct = len({p["reason"] for p in report.quarantine})
    if distinct > limit:
        lines.append(f"… and {format_indian(distinct - limit)} other reasons (see the CSV)")
    return lines


def quarantine_table(report: IngestReport) -> pl.DataFrame:
    """One row per problem: the file's row number, the column, the value given and why."""
    schema = {"row": pl.Int64, "column": pl.String, "value": pl.String, "reason": pl.String}
    rows = [{k: p[k] for k in QUARANTINE_COLUMNS} for p in report.quarantine]
    return pl.DataFrame(rows, schema=schema, orient="row")
