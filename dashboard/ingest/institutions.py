"""Ingest the institution registry: the partners whose studies the index accepts.

The registry is small and every study is checked against it, so a registry file is taken
whole or not at all: any invalid row refuses the file, listing every problem.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard import sql
from dashboard.contract import REGISTRY_COLUMNS, header_key
from dashboard.ingest.normalize import normalize_institutions
from dashboard.ingest.reader import FileRefusedError, read_table
from dashboard.reference import load_reference

REQUIRED = ("institution_id", "name")


@dataclass(frozen=True)
class RegistryReport:
    """Counts of one registry file; rows_read = inserted + updated + unchanged."""

    file: str
    rows_read: int
    inserted: int
    updated: int
    unchanged: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _canonical(raw: pl.DataFrame, file: str) -> pl.DataFrame:
    by_key = {header_key(h): h for h in raw.columns}
    missing = [c for c in REQUIRED if c not in by_key]
    if missing:
        raise FileRefusedError(file, f"has no column {', '.join(missing)}")
    return raw.with_row_index("_row", offset=1).select(
        pl.col("_row").cast(pl.Int64),
        *(pl.col(by_key[c]).alias(c) for c in REGISTRY_COLUMNS if c in by_key),
    )


def ingest_institutions(con: duckdb.DuckDBPyConnection, path: Path) -> RegistryReport:
    """Validate a registry file and upsert it by institution_id, in one transaction."""
    path = Path(path)
    raw = read_table(path)
    normalised = normalize_institutions(_canonical(raw, path.name), load_reference())
    problems = (
        normalised.filter(pl.col("_problems").list.len() > 0)
        .select("_row", "_problems")
        .explode("_problems")
        .unnest("_problems")
    )
    if problems.height:
        lines = [
            f"row {r['_row']}, {r['column']} {r['value']!r}: {r['reason']}"
            for r in problems.head(50).to_dicts()
        ]
        raise FileRefusedError(
            path.name, "has invalid rows; nothing was written:\n" + "\n".join(lines)
        )
    dupes = normalised.filter(pl.col("institution_id").is_duplicated())["institution_id"].unique()
    if dupes.len():
        raise FileRefusedError(path.name, f"lists institution_id more than once: {dupes.to_list()}")
    incoming = normalised.drop("_row", "_problems")
    con.begin()
    try:
        con.register("incoming_institution", incoming)
        counts = dict(sql.query(con, "institution_changes").iter_rows())
        sql.execute(con, "upsert_institutions")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        con.unregister("incoming_institution")
    return RegistryReport(
        file=path.name,
        rows_read=raw.height,
        inserted=int(counts.get("inserted", 0)),
        updated=int(counts.get("updated", 0)),
        unchanged=int(counts.get("unchanged", 0)),
    )
