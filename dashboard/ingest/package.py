"""Federated submission: a de-identified scan package, written on the partner's premises.

``python -m dashboard scan DIR --out PACKAGE`` reads DICOM headers where the images are and
writes only what the index would ingest, so images and identifying header values never leave:

- ``studies.parquet``: one row per study, the contract's text columns exactly as the index
  would ingest them from a local scan (:data:`~dashboard.ingest.dicom_index.ROW_SCHEMA`) and the
  DICOM counts (modalities, body parts, series, instances, files flagged for PHI);
- ``phi_flags.parquet``: per study, the DICOM keyword of each identifying element found and how
  many files carried it (:data:`~dashboard.ingest.dicom_index.PHI_SCHEMA`), never a value;
- ``manifest.json``: format and version, the tool and reader versions, created_at, the
  institution, the scan's file counts (no paths: folder names can carry names), and for each
  Parquet file its row count, size and SHA-256.

``ingest package`` verifies all of it before anything is written (:func:`read_package`): a
package whose files do not match their recorded checksums or counts, or that holds files or
columns a scan never writes, is refused with a message naming the file and the mismatch.
Checksums catch corruption and edits after the scan; they are not a signature, so they cannot
prove who wrote the package.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pydicom

from dashboard.config import REPO_ROOT
from dashboard.ingest.dicom import PHI_TAGS, Progress, ScanResult, scan_files
from dashboard.ingest.dicom_index import (
    PHI_SCHEMA,
    ROW_SCHEMA,
    ingest_rows,
    normalise_institution,
    phi_rows,
    read_join_manifest,
    require_institution_source,
    scan_summary,
    study_rows,
)
from dashboard.ingest.manifest import IngestReport
from dashboard.ingest.reader import FileRefusedError
from dashboard.ingest.writer import index_writer

FORMAT = "imaging-diversity-dicom-scan"
FORMAT_VERSION = 1
STUDIES_FILE = "studies.parquet"
PHI_FILE = "phi_flags.parquet"
MANIFEST_FILE = "manifest.json"
SCHEMAS: dict[str, dict[str, Any]] = {STUDIES_FILE: ROW_SCHEMA, PHI_FILE: PHI_SCHEMA}


class PackageRefusedError(FileRefusedError):
    """The package is incomplete, altered or not a scan package; nothing was written."""


def tool_version() -> str:
    """This tool's version, from the installed distribution or else pyproject.toml."""
    try:
        return importlib.metadata.version("imaging-diversity-dashboard")
    except importlib.metadata.PackageNotFoundError:
        with (REPO_ROOT / "pyproject.toml").open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_new_folder(out: Path) -> None:
    """Refuse to write a package over anything: `out` must not exist or be an empty folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; choose a new --out")


def write_package(
    out: Path,
    rows: pl.DataFrame,
    phi: pl.DataFrame,
    scan: ScanResult,
    *,
    institution: str | None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Write the package folder (which must not exist or be empty); returns its manifest."""
    out = Path(out)
    check_new_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}
    for name, frame in ((STUDIES_FILE, rows), (PHI_FILE, phi)):
        path = out / name
        frame.select(list(SCHEMAS[name])).cast(SCHEMAS[name]).write_parquet(path)
        files[name] = {
            "rows": frame.height,
            "bytes": path.stat().st_size,
            "sha256": file_sha256(path),
        }
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool": "imaging-diversity-dashboard",
        "tool_version": tool_version(),
        # scan reads with the default reader, "auto": the compiled reader where it reads a
        # file exactly, pydicom for the rest (the same rows either way)
        "reader": (
            f"dicomsdl {importlib.metadata.version('dicomsdl')} where it reads a file exactly, "
            f"pydicom {pydicom.__version__} for the rest"
        ),
        "created_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "institution": institution,
        "scan": scan_summary(scan, with_paths=False),
        "files": files,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


@dataclass(frozen=True)
class Package:
    """A verified package: its rows, audit rows and manifest."""

    path: Path
    rows: pl.DataFrame
    phi: pl.DataFrame
    manifest: dict[str, Any]

    @property
    def label(self) -> str:
        """The name the package goes by in the ingest log and the quarantine."""
        return f"package:{self.path.resolve().name}/{STUDIES_FILE}"

    @property
    def sha256(self) -> str:
        return str(self.manifest["files"][STUDIES_FILE]["sha256"])


def _refuse(package: Path, name: str, message: str) -> PackageRefusedError:
    return PackageRefusedError(
        f"{package.name}/{name}", f"{message}; the package was refused and nothing was written"
    )


def _read_manifest(package: Path) -> dict[str, Any]:
    path = package / MANIFEST_FILE
    if not path.is_file():
        raise _refuse(package, MANIFEST_FILE, "is missing: this is not a scan package")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _refuse(package, MANIFEST_FILE, f"is not valid JSON ({type(err).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _refuse(package, MANIFEST_FILE, f"does not describe a {FORMAT!r} package")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise _refuse(
            package,
            MANIFEST_FILE,
            f"has format_version {manifest.get('format_version')!r}; this tool reads "
            f"{FORMAT_VERSION}",
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != set(SCHEMAS):
        raise _refuse(package, MANIFEST_FILE, f"must list exactly {', '.join(SCHEMAS)}")
    return manifest


def _verified_frame(package: Path, name: str, recorded: dict[str, Any]) -> pl.DataFrame:
    path = package / name
    if not path.is_file():
        raise _refuse(package, name, "is missing")
    actual = file_sha256(path)
    if actual != recorded.get("sha256"):
        raise _refuse(
            package,
            name,
            f"has SHA-256 {actual} but {MANIFEST_FILE} records {recorded.get('sha256')}: "
            "the file changed after the scan wrote it",
        )
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # polars raises several unrelated types for a corrupt file
        raise _refuse(package, name, f"is not readable Parquet ({type(err).__name__})") from None
    if frame.height != recorded.get("rows"):
        raise _refuse(
            package,
            name,
            f"has {frame.height:,} rows but {MANIFEST_FILE} records {recorded.get('rows')}",
        )
    schema = SCHEMAS[name]
    if dict(frame.schema) != schema:
        extra = [c for c in frame.columns if c not in schema]
        missing = [c for c in schema if c not in frame.columns]
        detail = (
            f"columns a scan never writes: {', '.join(extra)}"
            if extra
            else f"missing columns: {', '.join(missing)}"
            if missing
            else "columns of the wrong type"
        )
        raise _refuse(package, name, f"has {detail}")
    return frame


def read_package(package: Path) -> Package:
    """Verify a package (manifest, checksums, row counts, columns, audit keywords) and read it."""
    package = Path(package)
    if not package.is_dir():
        raise PackageRefusedError(str(package), "is not a folder; give the package folder")
    manifest = _read_manifest(package)
    unexpected = sorted(
        p.name
        for p in package.iterdir()
        if p.name not in (*SCHEMAS, MANIFEST_FILE) and not p.name.startswith(".")
    )
    if unexpected:
        raise _refuse(package, unexpected[0], "is not part of a scan package")
    rows = _verified_frame(package, STUDIES_FILE, manifest["files"][STUDIES_FILE])
    phi = _verified_frame(package, PHI_FILE, manifest["files"][PHI_FILE])
    unknown = set(phi["tag"].to_list()) - PHI_TAGS.keys()
    if unknown:
        raise _refuse(package, PHI_FILE, f"names {len(unknown)} element(s) that are not audited")
    orphans = phi.join(rows, on="study_uid", how="anti").height
    if orphans:
        raise _refuse(package, PHI_FILE, f"has {orphans} row(s) for studies not in {STUDIES_FILE}")
    return Package(path=package, rows=rows, phi=phi, manifest=manifest)


def scan_to_package(
    paths: list[Path],
    out: Path,
    *,
    institution: str | None = None,
    manifest: Path | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    scanner: Callable[..., ScanResult] | None = None,
) -> tuple[ScanResult, dict[str, Any]]:
    """Scan `paths` and write the package to `out`: the rows a local ``ingest dicom`` would use.

    The institution is not checked against a registry here (the partner has none); the index
    checks it when the package is ingested. `scanner` replaces :func:`scan_files` with one
    called the same way, as in :func:`~dashboard.ingest.dicom_index.ingest_dicom` (e.g. the
    Dask engine, :class:`dashboard.ingest.dicom_dask.DaskScanner`): the package is the same.
    """
    out = Path(out)
    check_new_folder(out)
    institution = normalise_institution(institution)
    joined = read_join_manifest(manifest) if manifest is not None else None
    require_institution_source(institution, joined)
    scan = (scanner or scan_files)(paths, workers=workers, progress=progress)
    rows = study_rows(scan.studies, institution=institution, manifest=joined)
    phi = phi_rows(rows, scan.phi_flags)
    return scan, write_package(out, rows, phi, scan, institution=institution)


def ingest_package(
    db: Path, package: Path, *, today: dt.date | None = None
) -> tuple[Package, IngestReport]:
    """Verify a package, then ingest its studies and audit rows like a local scan's."""
    verified = read_package(package)
    with index_writer(db) as con:
        report = ingest_rows(
            con,
            verified.rows,
            verified.phi,
            label=verified.label,
            sha256=verified.sha256,
            today=today,
        )
    return verified, report
