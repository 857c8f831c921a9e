"""The one way to write the index: a published snapshot with fresh reference tables."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb

from dashboard import sql
from dashboard.ingest.publish import publishing
from dashboard.reference import load_reference


def refresh_reference_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Load data/reference into the ref_* tables, replacing what was there."""
    ref = load_reference()
    frames = {
        "frame_state": ref.states,
        "frame_alias": ref.aliases,
        "frame_age_sex": ref.age_sex,
        "frame_burden": ref.disease_burden,
        "frame_condition": ref.conditions,
    }
    for name, frame in frames.items():
        con.register(name, frame)
    try:
        sql.execute(con, "refresh_reference")
    finally:
        for name in frames:
            con.unregister(name)


@contextlib.contextmanager
def index_writer(db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writable connection whose work is published atomically when the block ends."""
    with publishing(db) as con:
        refresh_reference_tables(con)
        yield con
