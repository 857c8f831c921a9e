"""The one way to write the index: a published snapshot with fresh reference tables."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl

from dashboard import sql
from dashboard.ingest.publish import publishing
from dashboard.reference import GEOJSON_PATH, load_reference


def boundary_frame(path: Path = GEOJSON_PATH) -> pl.DataFrame:
    """The state/UT outlines as rows: iso_code, name, type and the geometry as GeoJSON text."""
    features = json.loads(path.read_text(encoding="utf-8"))["features"]
    return pl.DataFrame(
        {
            "iso_code": [f["properties"]["iso_code"] for f in features],
            "name": [f["properties"]["name"] for f in features],
            "type": [f["properties"].get("type") for f in features],
            "geometry_geojson": [json.dumps(f["geometry"]) for f in features],
        }
    )


def refresh_reference_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Load data/reference and data/geo into the ref_* tables, replacing what was there."""
    ref = load_reference()
    frames = {
        "frame_boundary": boundary_frame(),
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
