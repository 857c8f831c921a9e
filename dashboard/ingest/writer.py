"""The one way to write the index: a published snapshot with fresh reference tables and marts.

Marts (queries/schema/060_marts.sql) are small cubes of exact counts that the pages read instead
of scanning every study: coverage by a few dimensions with exact distinct patients per cell,
accrual by month with the month each patient was first seen in a cell, and each patient's first
study. They are brought up to date before every publish, so a snapshot's marts always describe
its own studies: a patient belongs to one institution, so every count is a sum over
institutions, and only the rows of the institutions whose studies changed (found by a
fingerprint of each institution's studies) are rebuilt; the two cubes without the institution
are summed again from per-institution parts. A change of the marts' SQL or layout, or
refresh_marts, rebuilds them whole. The studies to build from are staged once per publish with
every dimension as an integer code (grouping ~40 cubes on integers instead of text takes ~40 %
off the build), and a patient with a single study, being in one cell of every cube, is counted
without a distinct. An index gets marts once it holds MART_MIN_STUDIES studies.
dashboard.coverage decides per query whether a cube can answer it exactly and otherwise runs
the base query.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard import reference, sql
from dashboard.ingest.publish import publishing
from dashboard.reference import GEOJSON_PATH, REFERENCE_DIR, load_reference


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


@functools.cache
def reference_digest() -> str:
    """A digest of everything the reference tables are made from: the shipped files, the code
    reading them (dashboard/reference.py, this module) and the statement loading them."""
    digest = hashlib.sha256(sql.catalogue()["refresh_reference"].sql.encode())
    for path in (
        *sorted(REFERENCE_DIR.glob("*.csv")),
        GEOJSON_PATH,
        Path(reference.__file__),
        Path(__file__),
    ):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def refresh_reference_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Load data/reference and data/geo into the ref_* tables, replacing what was there, unless
    they were loaded from the same files and code (parsing the outlines alone costs ~50 ms, a
    good part of a small DICOM ingest's publish)."""
    digest = reference_digest()
    if sql.query(con, "stored_digest", subject="reference")["digest"][0] == digest:
        return
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
    sql.execute(con, "record_digest", subject="reference", digest=digest)


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
    # a state clicked on the map filters every page: its views read these
    ("institution", "state", "age_band"),
    ("institution", "state", "area_type"),
    ("institution", "state", "facility_type"),
    ("institution", "state", "modality"),
    ("institution", "state", "modality", "condition"),
    ("institution", "state", "modality", "manufacturer"),
    ("institution", "state", "modality", "device_model"),
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
    ("institution", "month", "state", "age_band"),
    ("institution", "month", "state", "area_type"),
    ("month", "state", "sex", "age_band", "area_type"),
)
FIRST_CUBES: tuple[tuple[str, ...], ...] = (
    ("month", "institution", "modality"),
    ("month", "state", "sex", "age_band", "area_type"),
)
# Cubes summed from an unlisted per-institution "part" cube instead of the studies, so that a
# publish rebuilds only the changed institutions' rows of the part, then sums it again. Both
# first-study cubes come from one part, built in one pass; the month cube without institution
# is built from the studies by a full build (see _build_cubes).
PART_MONTH = ("institution", "month", "state", "sex", "age_band", "area_type")
PART_FIRST = ("institution", "month", "modality", "state", "sex", "age_band", "area_type")
ROLLUPS: dict[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...]]] = {
    ("cells", ("month", "state", "sex", "age_band", "area_type")): ("cells", PART_MONTH),
    ("first", ("month", "institution", "modality")): ("first", PART_FIRST),
    ("first", ("month", "state", "sex", "age_band", "area_type")): ("first", PART_FIRST),
}
# The marts' SQL: a change to any of it (or to the mart tables' columns) rebuilds them whole.
MART_QUERIES: tuple[str, ...] = (
    "schema_views",
    "schema_marts",
    "build_mart_cells",
    "build_mart_month_cells",
    "build_mart_first_cells",
    "build_mart_rollup",
    "build_mart_facts",
    "stage_mart_values",
    "stage_mart_source",
    "build_mart_recent",
    "stage_mart_institutions",
)


def cube_name(kind: str, dims: Sequence[str]) -> str:
    """'cells:institution+state'."""
    return f"{kind}:{'+'.join(dims)}"


def part_name(kind: str, dims: Sequence[str]) -> str:
    """'part:cells:institution+month+…': a cube the reader does not see."""
    return f"part:{cube_name(kind, dims)}"


@dataclass(frozen=True)
class MartUpdate:
    """What a publish did to the marts."""

    full: bool
    """Rebuilt whole (else only the changed institutions' rows)."""
    changed: tuple[str, ...]
    """The institutions whose studies differ from those the marts were built from (every
    institution when there were no marts)."""
    seconds: float


def _layout(columns: str | None) -> int:
    """A 63-bit digest of the marts' SQL, the mart tables' columns and the cubes built: marts
    built to another plan are rebuilt whole (an incremental publish would otherwise build a
    new cube for the changed institutions only)."""
    digest = hashlib.sha256((columns or "").encode())
    digest.update(repr((CELL_CUBES, MONTH_CUBES, FIRST_CUBES, ROLLUPS)).encode())
    for name in MART_QUERIES:
        digest.update(sql.catalogue()[name].sql.encode())
    return int.from_bytes(digest.digest()[:8], "big") >> 1


def build_marts(
    con: duckdb.DuckDBPyConnection, *, full: bool = False, verbose: bool = False
) -> MartUpdate:
    """Bring the marts up to date with the studies in ``con`` (inside the writer, before
    publishing): rebuild the rows of the institutions whose studies changed since the marts were
    built, or everything when ``full``, when the marts' layout or SQL changed, when they were
    never built, or when every institution changed. Either way the marts equal a full rebuild's
    (tests/test_marts_incremental.py)."""
    start = time.perf_counter()
    sql.execute(con, "schema_marts")
    state = sql.query(con, "mart_state").row(0, named=True)
    if state["layout"] is None or state["layout"] != _layout(state["columns"]):
        full = True
    _step(con, verbose, "fingerprint institutions", "stage_mart_institutions")
    changes = sql.query(con, "mart_changed_institutions").row(0, named=True)
    changed = list(changes["changed"])
    if not full and not changed:
        return MartUpdate(full=False, changed=(), seconds=time.perf_counter() - start)
    if len(changed) >= changes["institutions"]:
        full = True  # nothing to keep
    institutions: list[str] | None = None if full else changed
    if full:
        sql.execute(con, "clear_marts")  # keeps mart_institution_now
        sql.execute(con, "schema_marts")
    else:
        rolled = [cube_name(kind, dims) for kind, dims in ROLLUPS]
        sql.execute(con, "delete_mart_institutions", institutions=changed, cubes=rolled)
    _build_cubes(con, institutions, verbose)
    sql.execute(con, "replace_mart_institutions")
    recent_from = sql.query(con, "mart_recent_from")["recent_from"][0]
    if recent_from is not None and state["recent_from_day"] != _days(recent_from):
        institutions = None  # the window moved: every institution's recent studies
    sql.execute(con, "delete_mart_recent", institutions=institutions)
    if recent_from is not None:
        _step(
            con,
            verbose,
            "recent",
            "build_mart_recent",
            institutions=institutions,
            recent_from=recent_from,
        )
    columns = sql.query(con, "mart_state")["columns"][0]
    sql.execute(con, "build_mart_facts", layout=_layout(columns))
    seconds = time.perf_counter() - start
    if verbose:
        what = "full rebuild" if full else f"{len(changed)} institution(s) rebuilt"
        print(f"  marts: {what} in {seconds:.1f} s", flush=True)
    return MartUpdate(full=full, changed=tuple(changed), seconds=seconds)


def _days(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


def _step(
    con: duckdb.DuckDBPyConnection, verbose: bool, label: str, statement: str, **params: Any
) -> None:
    start = time.perf_counter()
    sql.execute(con, statement, **params)
    if verbose:
        print(f"  {label}: {time.perf_counter() - start:.1f} s", flush=True)


def _build_cubes(
    con: duckdb.DuckDBPyConnection, institutions: list[str] | None, verbose: bool
) -> None:
    """Insert the cube rows of ``institutions`` (None: all), then the roll-ups and register.

    The studies are staged once (stage_mart_source: every dimension as an integer code) and
    every cube is grouped from that. A full build sums the month cube without the institution
    straight from the studies, as cheap as building its part, and leaves the part out (the
    ingest of a whole index pays nothing for incremental updates it may never have); the first
    incremental update then builds the part for every institution, and later ones for the
    changed institutions only.
    """
    month = ("cells", ("month", "state", "sex", "age_band", "area_type"))
    month_part = part_name("cells", PART_MONTH)
    month_builds: list[tuple[str, tuple[str, ...]]] = []
    if institutions is None:
        month_builds.append((cube_name(*month), month[1]))
        rollups = {k: v for k, v in ROLLUPS.items() if k != month}
    else:
        rollups = ROLLUPS
        if sql.query(con, "mart_part_built", cube=month_part)["built"][0]:
            month_builds.append((month_part, PART_MONTH))
        else:
            _stage_source(con, None, verbose)
            _step(
                con,
                verbose,
                month_part,
                "build_mart_month_cells",
                cube=month_part,
                dims=list(PART_MONTH),
            )
    _stage_source(con, institutions, verbose)
    builds = [
        *((cube_name("cells", d), "build_mart_cells", d) for d in CELL_CUBES),
        *(
            (cube_name("cells", d), "build_mart_month_cells", d)
            for d in MONTH_CUBES
            if ("cells", d) not in ROLLUPS
        ),
        *((name, "build_mart_month_cells", dims) for name, dims in month_builds),
        (part_name("first", PART_FIRST), "build_mart_first_cells", PART_FIRST),
    ]
    for name, statement, dims in builds:
        _step(con, verbose, name, statement, cube=name, dims=list(dims))
    sql.execute(con, "drop_mart_source")
    for (kind, dims), (part_kind, part_dims) in rollups.items():
        name = cube_name(kind, dims)
        _step(
            con,
            verbose,
            name,
            "build_mart_rollup",
            cube=name,
            dims=list(dims),
            part=part_name(part_kind, part_dims),
        )
    for kind, cubes in (("cells", CELL_CUBES), ("cells", MONTH_CUBES), ("first", FIRST_CUBES)):
        for dims in cubes:
            name = cube_name(kind, dims)
            sql.execute(con, "record_mart_cube", cube=name, dims=list(dims), cube_kind=kind)


def _stage_source(
    con: duckdb.DuckDBPyConnection, institutions: list[str] | None, verbose: bool
) -> None:
    """Stage the studies of ``institutions`` (None: all) as the cube builds read them."""
    _step(con, verbose, "code values", "stage_mart_values", institutions=institutions)
    _step(con, verbose, "stage studies", "stage_mart_source", institutions=institutions)


# Below this many studies every base query answers in a few milliseconds and the ~40 cube
# statements would cost more than they save (most of a small DICOM ingest's publish): an index
# gets marts once it holds this many studies, and keeps them up to date from then on, so they
# never go stale (a reader finding none runs the base queries).
MART_MIN_STUDIES = 10_000


@contextlib.contextmanager
def index_writer(db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writable connection whose work is published atomically when the block ends.

    The marts are brought up to date with the studies as they are at the end of the block
    (only the rows of the institutions whose studies changed are rebuilt), once the index is
    large enough to need them (MART_MIN_STUDIES).
    """
    with publishing(db) as con:
        refresh_reference_tables(con)
        yield con
        if sql.query(con, "marts_wanted", min_studies=MART_MIN_STUDIES)["wanted"][0]:
            build_marts(con)


def refresh_marts(db: Path, *, verbose: bool = False, full: bool = True) -> MartUpdate:
    """Republish ``db`` with its marts rebuilt whole (``full``, e.g. an index from before marts
    existed) or brought up to date with its studies."""
    with publishing(db) as con:
        return build_marts(con, full=full, verbose=verbose)
