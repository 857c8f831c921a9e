"""The quarantine as a partner needs it: each rejected row as submitted, with its reasons."""

from __future__ import annotations

import duckdb
import polars as pl

from dashboard import sql


def open_quarantine(con: duckdb.DuckDBPyConnection, institution: str | None = None) -> pl.DataFrame:
    """One row per quarantined submitted row: file, row, reasons, then the submitted columns.

    The submitted columns are the union of the headers of the files involved, in first-seen
    order, so the export can be fixed in a spreadsheet and submitted again as it is.
    """
    rows = sql.query(con, "open_quarantine", institution=institution)
    headers: dict[str, None] = {}
    for original in rows["original"].to_list():
        headers.update(dict.fromkeys(original or {}))
    originals = [original or {} for original in rows["original"].to_list()]
    submitted = pl.DataFrame(
        {h: [o.get(h) for o in originals] for h in headers},
        schema=dict.fromkeys(headers, pl.String),
    )
    return pl.concat([rows.select("file", "row", "reasons"), submitted], how="horizontal")
