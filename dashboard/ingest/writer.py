"""The one way to write the index: a published snapshot with fresh reference tables and marts.

Marts (queries/schema/060_marts.sql) are small cubes of exact counts that the pages read instead
of scanning every study: coverage by a few dimensions with exact distinct patients per cell,
accrual by month with the month each patient was first seen in a cell, and each patient's first
study. They are rebuilt from scratch before every publish, so a snapshot's marts always describe
its own studies; dashboard.coverage decides per query whether a cube can answer it exactly and
otherwise runs the base query.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
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


# The cubes built at every publish. Each is grouped by its dimensions; "cells" cubes count every
# study, "month" cubes add the month and the patients first seen in each cell that month, "first"
# cubes count each patient once, in the cell of their first study. Most include the institution:
# a patient belongs to one institution, so summing over it stays exact, and the same cube serves
# the institution filter and the Institution page. dashboard.coverage picks the smallest cube
# that answers a query exactly.
CELL_CUBES: tuple[tuple[str, ...], ...] = (
    ("institution",),
    ("institution", "state"),
    ("institution", "sex"),
    ("institution", "age_band"),
    ("institution", "area_type"),
    ("institution", "facility_type"),
    ("institution", "modality"),
    ("institution", "body_part"),
    ("institution", "condition"),
    ("institution", "manufacturer"),
    ("institution", "device_model"),
    ("institution", "state", "sex"),
    ("institution", "sex", "age_band"),
    ("institution", "state", "sex", "age_band"),
    ("institution", "state", "condition"),
    ("institution", "modality", "condition"),
    ("institution", "modality", "manufacturer"),
    ("institution", "modality", "device_model"),
)
MONTH_CUBES: tuple[tuple[str, ...], ...] = (
    ("institution", "month"),
    ("institution", "month", "state"),
    ("institution", "month", "sex"),
    ("institution", "month", "age_band"),
    ("institution", "month", "area_type"),
    ("institution", "month", "modality"),
    ("institution", "month", "state", "sex"),
    ("month", "state", "sex", "age_band", "area_type"),
)
FIRST_CUBES: tuple[tuple[str, ...], ...] = (
    ("month", "institution", "modality"),
    ("month", "state", "sex", "age_band", "area_type"),
)


def cube_name(kind: str, dims: Sequence[str]) -> str:
    """'cells:institution+state'."""
    return f"{kind}:{'+'.join(dims)}"


def build_marts(con: duckdb.DuckDBPyConnection, *, verbose: bool = False) -> None:
    """Rebuild every mart from the studies in ``con`` (inside the writer, before publishing)."""
    sql.execute(con, "clear_marts")
    sql.execute(con, "schema_marts")
    plan = [
        *(("cells", "build_mart_cells", dims) for dims in CELL_CUBES),
        *(("cells", "build_mart_month_cells", dims) for dims in MONTH_CUBES),
        *(("first", "build_mart_first_cells", dims) for dims in FIRST_CUBES),
    ]
    for kind, statement, dims in plan:
        start = time.perf_counter()
        name = cube_name(kind, dims)
        sql.execute(con, statement, cube=name, dims=list(dims))
        sql.execute(con, "record_mart_cube", cube=name, dims=list(dims), cube_kind=kind)
        if verbose:
            print(f"  {name}: {time.perf_counter() - start:.1f} s", flush=True)
    sql.execute(con, "build_mart_facts")  # reads the cubes
    sql.execute(con, "build_mart_recent")


@contextlib.contextmanager
def index_writer(db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writable connection whose work is published atomically when the block ends.

    The marts are rebuilt from the studies as they are at the end of the block.
    """
    with publishing(db) as con:
        refresh_reference_tables(con)
        yield con
        build_marts(con)


def refresh_marts(db: Path, *, verbose: bool = False) -> None:
    """Republish ``db`` with its views and marts rebuilt (an index from before marts existed)."""
    with publishing(db) as con:
        build_marts(con, verbose=verbose)
