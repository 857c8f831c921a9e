"""Coverage: how many patients, studies or images fall in each cell of chosen dimensions.

The CLI's `coverage` command and the pages call the same function, so a number on a page and
in `python -m dashboard coverage` output are the same number.
"""

from __future__ import annotations

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


def coverage(
    con: duckdb.DuckDBPyConnection,
    dims: Sequence[str],
    unit: str,
    filters: Filters = NO_FILTERS,
) -> pl.DataFrame:
    """Counts and shares per cell of ``dims`` in ``unit`` (patients, studies or images)."""
    dims = check_dimensions(dims)
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
    counts = sql.query(con, "coverage", dims=dims, unit=unit, **filters.params())
    return with_shares(counts.select(*dims, "n"), dims)
