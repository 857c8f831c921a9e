"""Ingest partner study manifests: map headers, validate, quarantine, upsert, report.

The contract's rules, in order: identifier-looking columns refuse the file before anything is
written; each row is normalised and either accepted or quarantined with reasons; identical
repeats inside a file count once; accepted rows are upserted on (institution_id, study_uid);
each file is one transaction; and for every file rows accepted + rows quarantined = rows read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard import sql
from dashboard.contract import (
    COLUMN_SYNONYMS,
    MANIFEST_COLUMNS,
    REQUIRED_COLUMNS,
    canonical_column,
    is_identifier_header,
)
from dashboard.ingest.normalize import normalize_studies
from dashboard.ingest.reader import TABULAR_SUFFIXES, FileRefusedError, read_table
from dashboard.reference import ReferenceData, load_reference

KEY = ("institution_id", "study_uid")
CONTENT_COLUMNS = (
    *(c for c in MANIFEST_COLUMNS if c not in ("age", "birth_year")),
    "age_years",
    "age_band",
    "conditions",
)
PROBLEM_SCHEMA = {
    "_row": pl.Int64,
    "institution_id": pl.String,
    "study_uid": pl.String,
    "column": pl.String,
    "value": pl.String,
    "reason": pl.String,
}


@dataclass
class IngestReport:
    """What one file did to the index; ``rows_read`` = accepted + quarantined, always."""

    file: str
    rows_read: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    written: bool = False

    @property
    def accepted(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.duplicates

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"accepted": self.accepted}

    def reason_summary(self, limit: int = 10) -> list[tuple[int, str]]:
        """Most common problems as (count, "column 'value': reason"), for a one-line summary."""
        counts = Counter(p["reason"] for p in self.quarantine)
        return [(n, reason) for reason, n in counts.most_common(limit)]


@dataclass(frozen=True)
class PreparedManifest:
    """A file read, normalised and checked, before anything touches the index."""

    file: str
    sha256: str
    rows_read: int
    accepted: pl.DataFrame
    duplicates: int
    problems: pl.DataFrame
    originals: pl.DataFrame
    """_row and every column as submitted, one row per row read, in file order (_row 1, 2, …)."""
    keys: pl.DataFrame
    """_row, institution_id (upper-case), study_uid of every row read, valid or not."""
    ignored_columns: list[str]

    @property
    def quarantined_rows(self) -> int:
        return self.problems["_row"].n_unique()


def map_headers(headers: list[str], file: str) -> tuple[dict[str, str], list[str]]:
    """Original header → contract column, and the headers that are not contract columns.

    Refuses the file when a header looks like a direct identifier, when two headers name the
    same column, or when a required column is missing.
    """
    identifiers = [h for h in headers if is_identifier_header(h) and not canonical_column(h)]
    if identifiers:
        raise FileRefusedError(
            file,
            "has columns that look like direct identifiers, which must never be submitted: "
            + ", ".join(repr(h) for h in identifiers)
            + ". Remove them and submit again; nothing was written.",
        )
    mapping: dict[str, str] = {}
    ignored: list[str] = []
    for header in headers:
        column = canonical_column(header)
        if column is None:
            ignored.append(header)
        elif column in mapping.values():
            first = next(h for h, c in mapping.items() if c == column)
            raise FileRefusedError(file, f"columns {first!r} and {header!r} both give {column}")
        else:
            mapping[header] = column
    missing = [c for c in REQUIRED_COLUMNS if c not in mapping.values()]
    if missing:
        names = "; ".join(
            f"{c} (or {', '.join(COLUMN_SYNONYMS[c])})" if COLUMN_SYNONYMS[c] else c
            for c in missing
        )
        raise FileRefusedError(file, f"has no column for required field(s): {names}")
    return mapping, ignored


def _split_duplicates(accepted: pl.DataFrame) -> tuple[pl.DataFrame, int, pl.DataFrame]:
    """Drop identical repeats; quarantine later rows that repeat a key with other values.

    The key is part of the content, so only rows whose key repeats can be repeats of any kind:
    the comparison of every column runs on those rows alone (none, in a typical file).
    """
    repeated = accepted.select(pl.struct(KEY).is_duplicated()).to_series()
    if not repeated.any():
        return accepted, 0, pl.DataFrame(schema=PROBLEM_SCHEMA)
    candidates = accepted.filter(repeated)
    kept, duplicates, conflicts = _split_repeated_keys(candidates)
    dropped = candidates.join(kept.select("_row"), on="_row", how="anti")["_row"]
    return accepted.filter(~pl.col("_row").is_in(dropped.implode())), duplicates, conflicts


def _split_repeated_keys(accepted: pl.DataFrame) -> tuple[pl.DataFrame, int, pl.DataFrame]:
    """_split_duplicates on rows that all share their key with another row."""
    content = [c for c in CONTENT_COLUMNS if c in accepted.columns]
    distinct = accepted.unique(subset=content, keep="first", maintain_order=True)
    duplicates = accepted.height - distinct.height
    first_row = pl.col("_row").first().over(KEY)
    conflicting = distinct.filter(pl.col("_row") != first_row.alias("first"))
    if conflicting.height == 0:
        return distinct, duplicates, pl.DataFrame(schema=PROBLEM_SCHEMA)
    with_first = distinct.with_columns(_first=first_row)
    conflicts = with_first.filter(pl.col("_row") != pl.col("_first")).select(
        "_row",
        "institution_id",
        "study_uid",
        column=pl.lit("study_uid"),
        value=pl.col("study_uid"),
        reason=pl.format(
            "study_uid '{}' of {} appears again with different values (first in row {})",
            "study_uid",
            "institution_id",
            "_first",
        ),
    )
    kept = with_first.filter(pl.col("_row") == pl.col("_first")).drop("_first")
    return kept, duplicates, conflicts


def prepare_manifest(
    path: Path,
    *,
    ref: ReferenceData,
    registered_institutions: set[str],
    today: dt.date,
) -> PreparedManifest:
    """Read and validate one manifest file without touching the index."""
    path = Path(path)
    # a delimited file is read once, for its rows and its digest
    data = path.read_bytes() if path.suffix.lower() in TABULAR_SUFFIXES else None
    raw = read_table(path, data)
    return prepare_rows(
        raw,
        label=path.name,
        sha256=hashlib.sha256(path.read_bytes() if data is None else data).hexdigest(),
        ref=ref,
        registered_institutions=registered_institutions,
        today=today,
    )


def prepare_rows(
    raw: pl.DataFrame,
    *,
    label: str,
    sha256: str,
    ref: ReferenceData,
    registered_institutions: set[str],
    today: dt.date,
) -> PreparedManifest:
    """Validate rows already read as text columns under the submitter's headers.

    ``label`` names the source in reports and the quarantine (a file name, or a DICOM scan).
    """
    mapping, ignored = map_headers(raw.columns, label)
    originals = raw.with_row_index("_row", offset=1).with_columns(pl.col("_row").cast(pl.Int64))
    canonical = originals.select("_row", *(pl.col(h).alias(c) for h, c in mapping.items()))
    normalised = normalize_studies(
        canonical, ref, today=today, registered_institutions=registered_institutions
    )
    keys = canonical.select(
        "_row", pl.col("institution_id").str.to_uppercase(), pl.col("study_uid")
    )
    has_problem = pl.col("_problems").list.len() > 0
    row_problems = (
        normalised.filter(has_problem)
        .select("_row", "_problems")
        .explode("_problems")
        .unnest("_problems")
        .join(keys, on="_row", how="left")
        .select(list(PROBLEM_SCHEMA))
    )
    accepted, duplicates, conflicts = _split_duplicates(
        normalised.filter(~has_problem).drop("_problems")
    )
    problems = pl.concat([row_problems.cast(PROBLEM_SCHEMA), conflicts]).sort("_row")
    return PreparedManifest(
        file=label,
        sha256=sha256,
        rows_read=raw.height,
        accepted=accepted,
        duplicates=duplicates,
        problems=problems,
        originals=originals,
        keys=keys,
        ignored_columns=ignored,
    )


def _quarantine_frame(prepared: PreparedManifest) -> pl.DataFrame:
    """One row per problem with the submitted row as a list of (key, value) entries."""
    # Only the quarantined rows are reshaped (concat_list of structs over every row is
    # pathologically slow in polars 2.1).
    # Row n of the file is originals' row n - 1: gather them rather than join all rows read.
    rows = prepared.problems["_row"].unique().sort()
    quarantined = prepared.originals[(rows - 1).cast(pl.UInt32)]
    original = (
        quarantined.unpivot(index="_row", variable_name="key", value_name="value")
        .group_by("_row", maintain_order=True)
        .agg(original=pl.struct("key", "value"))
    )
    return prepared.problems.join(original, on="_row", how="left").rename({"_row": "row"})


def _stage(
    con: duckdb.DuckDBPyConnection, prepared: PreparedManifest, source: str, now: dt.datetime
) -> dict[str, int]:
    incoming = prepared.accepted.drop("_row").with_columns(source=pl.lit(source))
    con.register("incoming_study", incoming)
    sql.execute(con, "stage_studies", now=now)
    counts = dict(sql.query(con, "count_staged_changes").iter_rows())
    return {k: int(counts.get(k, 0)) for k in ("inserted", "updated", "unchanged")}


def _report(prepared: PreparedManifest, counts: dict[str, int], written: bool) -> IngestReport:
    report = IngestReport(
        file=prepared.file,
        rows_read=prepared.rows_read,
        duplicates=prepared.duplicates,
        quarantined=prepared.quarantined_rows,
        quarantine=[
            {k: r[k] for k in ("row", "column", "value", "reason")}
            for r in prepared.problems.rename({"_row": "row"}).to_dicts()
        ],
        ignored_columns=prepared.ignored_columns,
        written=written,
        **counts,
    )
    if report.accepted + report.quarantined != report.rows_read:
        raise AssertionError(
            f"{prepared.file}: {report.accepted} accepted + {report.quarantined} quarantined "
            f"!= {report.rows_read} read"
        )
    return report


def registered_institutions(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The institution ids in the registry of the index behind ``con``."""
    return set(sql.query(con, "registered_institutions")["institution_id"].to_list())


def preview_manifest(
    con: duckdb.DuckDBPyConnection, path: Path, *, today: dt.date | None = None
) -> IngestReport:
    """What ingesting ``path`` would do, computed on a read-only connection; writes nothing."""
    prepared = prepare_manifest(
        path,
        ref=load_reference(),
        registered_institutions=registered_institutions(con),
        today=today or dt.date.today(),
    )
    counts = _stage(con, prepared, "manifest", dt.datetime.now())
    return _report(prepared, counts, written=False)


def ingest_manifest(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    today: dt.date | None = None,
    source: str = "manifest",
) -> IngestReport:
    """Ingest one manifest file into the index behind ``con`` as one transaction."""
    prepared = prepare_manifest(
        path,
        ref=load_reference(),
        registered_institutions=registered_institutions(con),
        today=today or dt.date.today(),
    )
    return ingest_prepared(con, prepared, source=source)


def ingest_prepared(
    con: duckdb.DuckDBPyConnection, prepared: PreparedManifest, *, source: str
) -> IngestReport:
    """Write validated rows (from a manifest or a DICOM scan) as one transaction."""
    now = dt.datetime.now()
    con.begin()
    try:
        counts = _stage(con, prepared, source, now)
        sql.execute(con, "insert_new_patients")
        sql.execute(con, "delete_replaced_studies")
        sql.execute(con, "insert_staged_studies")
        con.register("incoming_keys", prepared.keys)
        sql.execute(con, "delete_resolved_quarantine", file=prepared.file)
        ingest_id = int(sql.query(con, "next_ingest_id")["ingest_id"][0])
        con.register("incoming_quarantine", _quarantine_frame(prepared))
        sql.execute(con, "insert_quarantine", ingest_id=ingest_id, file=prepared.file)
        report = _report(prepared, counts, written=True)
        sql.execute(
            con,
            "insert_ingest_log",
            ingest_id=ingest_id,
            file=prepared.file,
            kind=source,
            sha256=prepared.sha256,
            rows_read=report.rows_read,
            inserted=report.inserted,
            updated=report.updated,
            unchanged=report.unchanged,
            duplicates=report.duplicates,
            quarantined=report.quarantined,
            now=now,
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        for view in ("incoming_study", "incoming_keys", "incoming_quarantine"):
            con.unregister(view)
    return report
