"""Build the synthetic demo index through the same files and ingestion as real partners."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from dashboard.ingest.demo import generate_demo
from dashboard.ingest.institutions import ingest_institutions
from dashboard.ingest.manifest import IngestReport, ingest_manifest
from dashboard.ingest.writer import index_writer


def build_demo_index(path: Path, *, studies: int, seed: int, today: dt.date) -> list[IngestReport]:
    """Write a fresh demo index at ``path``: a registry, then one manifest per institution.

    Every third institution submits Parquet, the rest CSV, so both readers are exercised.
    """
    data = generate_demo(studies, seed, today=today)
    Path(path).unlink(missing_ok=True)
    reports: list[IngestReport] = []
    with tempfile.TemporaryDirectory() as tmp, index_writer(path) as con:
        registry = Path(tmp) / "demo_institutions.csv"
        data.registry.write_csv(registry)
        ingest_institutions(con, registry)
        groups = data.manifest.group_by("institution_id", maintain_order=True)
        for i, ((institution,), rows) in enumerate(groups):
            manifest = Path(tmp) / f"{institution}.{'parquet' if i % 3 == 2 else 'csv'}"
            if manifest.suffix == ".parquet":
                rows.write_parquet(manifest)
            else:
                rows.write_csv(manifest)
            reports.append(ingest_manifest(con, manifest, today=today, source="demo"))
    return reports
