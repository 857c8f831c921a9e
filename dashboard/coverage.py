"""Coverage: how many patients, studies or images fall in each cell of chosen dimensions.

The CLI's `coverage` command and the pages call the same function, so a number on a page and
in `python -m dashboard coverage` output are the same number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import duckdb
import polars as pl

from dashboard import sql
from dashboard.filters import NO_FILTERS, Filters

# Dimension → the stored value that means "unknown" (None: SQL NULL). Unknowns are left out
# of the share's denominator and reported as the missing rate (METRICS.md).
DIMENSIONS: dict[str, str | None] = {
    "state": None,
    "sex": "U",
    "age_band": None,
    "area_type": "unknown",
    "facility_type": None,
    "modality": None,
    "body_part": None,
    "condition": None,
    "manufacturer": None,
    "device_model": None,
    "institution": None,
    "month": None,
}
UNITS: tuple[str, ...] = ("patients", "studies", "images")


def check_dimensions(dims: Sequence[str]) -> list[str]:
    """The dimensions, validated; an unknown name is a clear error listing the valid ones."""
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension(s) {unknown}; choose from {', '.join(DIMENSIONS)}")
    if len(set(dims)) != len(dims):
        raise ValueError(f"dimension repeated in {list(dims)}")
    return list(dims)


def known_mask(dims: Sequence[str]) -> pl.Expr:
    """True for cells whose every dimension value is known."""
    conditions = [
        pl.col(d).is_not_null() & (pl.col(d) != marker if marker else pl.lit(True))
        for d in dims
        for marker in [DIMENSIONS[d]]
    ]
    return pl.all_horizontal(conditions) if conditions else pl.lit(True)


def with_shares(counts: pl.DataFrame, dims: Sequence[str]) -> pl.DataFrame:
    """Add ``share`` = n / N over known cells (null for cells with an unknown value)."""
    known = known_mask(dims)
    total = counts.filter(known)["n"].sum()
    return counts.with_columns(
        share=pl.when(known & (pl.lit(total) > 0)).then(pl.col("n") / pl.lit(total)).otherwise(None)
    )


# Most cells a coverage query may have before patient bitmaps (one bit per patient per cell,
# ~1 MB per cell at 8 million patients) give way to count(DISTINCT).
BITMAP_MAX_CELLS = 128
# Upper bounds of distinct values per dimension (institution and month are read off the index).
CELL_BOUNDS: dict[str, int] = {
    "state": 37,
    "sex": 4,
    "age_band": 18,
    "area_type": 3,
    "facility_type": 8,
    "modality": 16,
    "condition": 20,
    "body_part": 64,
    "manufacturer": 64,
    "device_model": 256,
}


def estimated_cells(dims: Sequence[str], shape: dict[str, int]) -> int:
    """An upper bound on the number of cells a query by ``dims`` can return."""
    bounds = CELL_BOUNDS | {
        "institution": shape["institutions"] + 1,
        "month": shape.get("months", 0),
    }
    return math.prod(bounds[d] for d in dims)


def _patients(con: duckdb.DuckDBPyConnection, dims: list[str], filters: Filters) -> pl.DataFrame:
    shape = sql.query(con, "index_shape").row(0, named=True)
    # a scan of every study: only when month is one of the dimensions
    shape["months"] = int(sql.query(con, "index_months")["months"][0]) if "month" in dims else 0
    if estimated_cells(dims, shape) <= BITMAP_MAX_CELLS:
        return sql.query(
            con,
            "coverage_patients_bitmap",
            dims=dims,
            max_patient_key=shape["max_patient_key"],
            **filters.params(),
        )
    return sql.query(con, "coverage_patients_distinct", dims=dims, **filters.params())


def coverage(
    con: duckdb.DuckDBPyConnection,
    dims: Sequence[str],
    unit: str,
    filters: Filters = NO_FILTERS,
) -> pl.DataFrame:
    """Counts (``n``) and shares per cell of ``dims`` in ``unit``: patients, studies or images.

    Patients are exact distinct (institution, patient id) pairs, counted with bitmaps of dense
    patient keys when there are few cells and with count(DISTINCT) otherwise.
    """
    dims = check_dimensions(dims)
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
    if unit == "patients":
        counts = _patients(con, dims, filters)
    else:
        counts = sql.query(con, "coverage", dims=dims, **filters.params())
    return with_shares(counts.select(*dims, n=pl.col(unit)), dims)
