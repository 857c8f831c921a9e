"""Index DICOM scans: scanned studies go through the manifest path, plus the PHI audit.

A scan (:func:`dashboard.ingest.dicom.scan_files`) gives one row per study under contract
column names. :func:`study_rows` adds the institution (``--institution``) and the manifest
fields joined on study_uid, giving the text rows a partner manifest would hold. Those rows are
validated, quarantined and upserted by the manifest code itself (``prepare_rows`` and
``ingest_prepared``), so a study indexed from DICOM is exactly the row a manifest with the same
values gives, with source "dicom".

The PHI audit (table ``phi_flag``) keeps, per study, the DICOM keyword of each identifying
element found and how many files carried it, never a value. :func:`record_phi_flags` writes it
in its own transaction inside the same ``index_writer`` block, right after ``ingest_prepared``.
The block publishes its private copy of the index only when every statement in it succeeded, so
readers see the studies and their audit together or neither; ``ingest_prepared`` stays the
manifest path, untouched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard import sql
from dashboard.contract import COLUMN_SYNONYMS, canonical_column, is_identifier_header
from dashboard.db import connect_readonly
from dashboard.ingest.dicom import (
    MANIFEST_JOIN_COLUMNS,
    PHI_TAGS,
    Progress,
    ScanResult,
    join_manifest,
    scan_files,
)
from dashboard.ingest.manifest import (
    IngestReport,
    ingest_prepared,
    prepare_rows,
    registered_institutions,
)
from dashboard.ingest.reader import FileRefusedError, read_table
from dashboard.ingest.writer import index_writer
from dashboard.reference import load_reference

SOURCE = "dicom"
# What the index ingests from a scan, as text (the columns prepare_rows reads).
INDEX_COLUMNS: tuple[str, ...] = (
    "study_uid", "patient_id", "institution_id", "study_date", "modality", "sex", "age",
    "body_part", "manufacturer", "device_model", "n_images", "state", "district", "area_type",
    "diagnosis_icd10", "facility_type",
)  # fmt: skip
# What else a scan knows per study, kept in a scan package (never an identifying value).
COUNT_COLUMNS: dict[str, Any] = {
    "modalities": pl.String,
    "body_parts": pl.String,
    "n_series": pl.Int64,
    "n_instances": pl.Int64,
    "phi_files": pl.Int64,
}
ROW_SCHEMA: dict[str, Any] = dict.fromkeys(INDEX_COLUMNS, pl.String) | COUNT_COLUMNS
PHI_SCHEMA: dict[str, Any] = {
    "institution_id": pl.String,
    "study_uid": pl.String,
    "tag": pl.String,
    "files": pl.Int64,
    "study_flagged_files": pl.Int64,
}


class InstitutionError(ValueError):
    """The studies' institution is not given, or not registered; nothing was written."""


# --- rows -------------------------------------------------------------------------------------


def normalise_institution(value: str | None) -> str | None:
    """An institution id as the index keys it: trimmed, upper-case; blank is None."""
    return (value or "").strip().upper() or None


def read_join_manifest(path: Path) -> pl.DataFrame:
    """A manifest to join on study_uid, with canonical column names (text, trimmed).

    Refused like any manifest when a header looks like a direct identifier or two headers name
    the same column; it needs a study_uid column but none of the other required ones.
    """
    path = Path(path)
    raw = read_table(path)
    identifiers = [h for h in raw.columns if is_identifier_header(h) and not canonical_column(h)]
    if identifiers:
        raise FileRefusedError(
            path.name,
            "has columns that look like direct identifiers, which must never be submitted: "
            + ", ".join(repr(h) for h in identifiers)
            + ". Remove them and submit again; nothing was written.",
        )
    mapping: dict[str, str] = {}
    for header in raw.columns:
        column = canonical_column(header)
        if column is None:
            continue
        if column in mapping.values():
            first = next(h for h, c in mapping.items() if c == column)
            raise FileRefusedError(
                path.name, f"columns {first!r} and {header!r} both give {column}"
            )
        mapping[header] = column
    if "study_uid" not in mapping.values():
        synonyms = ", ".join(COLUMN_SYNONYMS["study_uid"])
        raise FileRefusedError(path.name, f"has no study_uid column (or {synonyms}) to join on")
    return raw.select(pl.col(h).alias(c) for h, c in mapping.items())


def require_institution_source(institution: str | None, manifest: pl.DataFrame | None) -> None:
    """Refuse, before any scanning, a run where nothing could name the studies' institution."""
    if institution is None and (manifest is None or "institution_id" not in manifest.columns):
        raise InstitutionError(
            "--institution is required: name the registered institution these studies belong "
            "to (e.g. --institution TEST-KA-01), or give a --manifest with an institution_id "
            "column for every study"
        )


def check_registered(db: Path, institution: str | None) -> None:
    """Refuse an --institution the index's registry does not know (before a long scan)."""
    if institution is None:
        return
    with connect_readonly(db) as con:
        known = registered_institutions(con)
    if institution not in known:
        raise InstitutionError(
            f"institution {institution!r} is not in the registry of {db}; load the registry "
            "first with `python -m dashboard ingest institutions REGISTRY.csv`"
        )


def study_rows(
    studies: pl.DataFrame, *, institution: str | None, manifest: pl.DataFrame | None
) -> pl.DataFrame:
    """The rows the index ingests from a scan (:data:`ROW_SCHEMA`), one per study.

    ``institution`` fills institution_id where the manifest gives none (the manifest wins).
    Every study must end up with an institution, else :class:`InstitutionError`.
    """
    frame = studies.with_columns(institution_id=pl.lit(institution, pl.String))
    if manifest is not None:
        frame = join_manifest(frame, manifest)
    frame = frame.with_columns(
        pl.lit(None, pl.String).alias(c) for c in MANIFEST_JOIN_COLUMNS if c not in frame.columns
    )
    missing = frame.filter(pl.col("institution_id").str.strip_chars().fill_null("") == "")
    if missing.height:
        raise InstitutionError(
            f"{missing.height:,} scanned stud{'y has' if missing.height == 1 else 'ies have'} no "
            f"institution_id in the manifest (e.g. study_uid {missing['study_uid'][0]!r}); add "
            "them to the manifest or pass --institution for the rest. Nothing was written."
        )
    return frame.select(pl.col(c).cast(t) for c, t in ROW_SCHEMA.items())


def phi_rows(rows: pl.DataFrame, flags: pl.DataFrame) -> pl.DataFrame:
    """The PHI audit rows (:data:`PHI_SCHEMA`): per study and keyword, the files flagged."""
    studies = rows.select(
        "study_uid",
        pl.col("institution_id").str.strip_chars().str.to_uppercase(),
        pl.col("phi_files").alias("study_flagged_files"),
    )
    return (
        flags.join(studies, on="study_uid", how="inner")
        .select(list(PHI_SCHEMA))
        .cast(PHI_SCHEMA)
        .sort("institution_id", "study_uid", "tag")
    )


def frame_sha256(frame: pl.DataFrame) -> str:
    """A content hash of a frame's rows (for the ingest log of a scan, which has no file)."""
    return hashlib.sha256(frame.write_csv().encode()).hexdigest()


def scan_label(paths: Iterable[str | os.PathLike[str]]) -> str:
    """The name a scan goes by in the ingest log and quarantine: stable for the same roots.

    Up to three roots are named in full; beyond that, the first three, how many more, and a
    hash of them all (so a re-scan of the same roots still supersedes its own quarantine).
    """
    roots = [str(Path(p).resolve()) for p in paths]
    if len(roots) <= 3:
        return "dicom:" + ";".join(roots)
    digest = hashlib.sha256("\n".join(roots).encode()).hexdigest()[:12]
    return f"dicom:{';'.join(roots[:3])} and {len(roots) - 3:,} more ({digest})"


# --- writing ----------------------------------------------------------------------------------


def record_phi_flags(
    con: duckdb.DuckDBPyConnection,
    rows: pl.DataFrame,
    phi: pl.DataFrame,
    *,
    source: str,
    now: dt.datetime | None = None,
) -> int:
    """Replace the audit rows of the studies in ``rows`` with ``phi``, as one transaction.

    Only DICOM keywords of :data:`PHI_TAGS` are accepted in the tag column (a tampered package
    could otherwise smuggle a value in). Returns the number of audit rows written.
    """
    unknown = sorted(set(phi["tag"].to_list()) - PHI_TAGS.keys())
    if unknown:
        raise ValueError(f"PHI audit rows name {len(unknown)} element(s) that are not audited")
    keys = rows.select(
        pl.col("institution_id").str.strip_chars().str.to_uppercase(), "study_uid"
    ).unique()
    con.begin()
    try:
        con.register("incoming_keys", keys)
        con.register("incoming_phi", phi.select(list(PHI_SCHEMA)))
        sql.execute(con, "delete_phi_flags")
        sql.execute(con, "insert_phi_flags", source=source, now=now or dt.datetime.now())
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        for view in ("incoming_keys", "incoming_phi"):
            con.unregister(view)
    return phi.height


def ingest_rows(
    con: duckdb.DuckDBPyConnection,
    rows: pl.DataFrame,
    phi: pl.DataFrame,
    *,
    label: str,
    sha256: str,
    source: str = SOURCE,
    today: dt.date | None = None,
) -> IngestReport:
    """Validate and upsert scanned study rows like a manifest, then record their PHI audit."""
    prepared = prepare_rows(
        rows.select(INDEX_COLUMNS),
        label=label,
        sha256=sha256,
        ref=load_reference(),
        registered_institutions=registered_institutions(con),
        today=today or dt.date.today(),
    )
    report = ingest_prepared(con, prepared, source=source)
    record_phi_flags(con, rows, phi, source=source)
    return report


@dataclass
class DicomIngest:
    """A scan and what its ingest did to the index."""

    scan: ScanResult
    ingest: IngestReport
    phi_rows: int

    def to_report(self) -> dict[str, Any]:
        """JSON-ready: every file accounted for, then the ingest counts and the quarantine."""
        return scan_summary(self.scan) | self.ingest.to_dict() | {"phi_audit_rows": self.phi_rows}


def scan_summary(scan: ScanResult, *, with_paths: bool = True) -> dict[str, Any]:
    """The scan's counts; ``skipped`` lists every skipped file with its reason unless not wanted.

    No study rows and no values: identifying elements appear only as keywords with file counts.
    """
    summary: dict[str, Any] = {
        "files_seen": scan.files_seen,
        "files_indexed": scan.files_indexed,
        "files_skipped": scan.files_skipped,
        "skipped_by_reason": scan.skipped_by_reason,
        "studies": scan.studies.height,
        "series": scan.series,
        "instances": scan.instances,
        "phi_flagged_files": scan.phi_flagged_files,
        "phi_tag_files": dict(scan.phi_tag_files),
    }
    if with_paths:
        summary["skipped"] = [dict(s) for s in scan.skipped]
    return summary


def index_scan(
    db: Path,
    scan: ScanResult,
    *,
    institution: str | None,
    manifest: pl.DataFrame | None,
    label: str,
    source: str,
    today: dt.date | None = None,
) -> DicomIngest:
    """Join a finished scan to its institution and manifest and write it to `db` in one publish."""
    rows = study_rows(scan.studies, institution=institution, manifest=manifest)
    phi = phi_rows(rows, scan.phi_flags)
    with index_writer(db) as con:
        report = ingest_rows(
            con,
            rows,
            phi,
            label=label,
            sha256=frame_sha256(rows),
            source=source,
            today=today,
        )
    return DicomIngest(scan=scan, ingest=report, phi_rows=phi.height)


def ingest_dicom(
    db: Path,
    paths: list[Path],
    *,
    institution: str | None = None,
    manifest: Path | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    today: dt.date | None = None,
    scanner: Callable[..., ScanResult] | None = None,
    reader: str = "auto",
) -> DicomIngest:
    """Scan `paths`, join the manifest, and upsert the studies and their audit into `db`.

    Input problems (no institution, an unregistered one, a refused manifest) raise before the
    scan starts and nothing is written; the index changes only when everything succeeded.
    `scanner` replaces :func:`scan_files` with one called the same way (e.g. the Dask engine,
    :class:`dashboard.ingest.dicom_dask.DaskScanner`). ``reader`` (local scan: see
    ``dashboard.ingest.dicom.READERS``) changes the speed, never the rows.
    """
    institution = normalise_institution(institution)
    joined = read_join_manifest(manifest) if manifest is not None else None
    require_institution_source(institution, joined)
    check_registered(db, institution)
    if scanner is None:
        scan = scan_files(paths, workers=workers, progress=progress, reader=reader)
    else:
        scan = scanner(paths, workers=workers, progress=progress)
    return index_scan(
        db,
        scan,
        institution=institution,
        manifest=joined,
        label=scan_label(paths),
        source=SOURCE,
        today=today,
    )
