"""Coverage: how many patients, studies or images fall in each cell of chosen dimensions.

The CLI's `coverage` command and the pages call the same function, so a number on a page and
in `python -m dashboard coverage` output are the same number.

Counts are read from the marts built at publish time (queries/schema/060_marts.sql, built by
dashboard/ingest/writer.py) whenever a cube answers the query exactly, and from the base
queries over every study otherwise, so results are the same either way (tests/test_marts.py):

- A cube is grouped by a few dimensions, usually with the institution; it holds exact distinct
  patients per cell. A query by dims D under the shared filters is served by a cube K ⊇ D that
  holds a column for every active filter; the cube's rows are selected by the filters and summed
  over the extra columns K − D. Studies and images always add up. Patients add up only over a
  column no patient has two values of (the institution always; others as measured at publish,
  `mart_fact`) or a column the filter narrows to one value.
- A date filter is served when it runs from the first of a month to the last day of a month:
  studies by summing months, patients (from a month cube's ``new_patients``, the patients first
  seen in the cell that month) only when the range starts at the beginning of the data.
- Age filters, several conditions at once, and dimensions no cube holds run the base query.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    Patients are exact distinct (institution, patient id) pairs: read from a mart cube when one
    answers the query exactly, else counted over the studies with bitmaps of dense patient keys
    when there are few cells and with count(DISTINCT) otherwise.
    """
    dims = check_dimensions(dims)
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
    served = _serve(con, dims, filters, unit)
    if served is not None:
        counts = served.filter(pl.col("studies") > 0).select(*dims, pl.col("n").alias(unit))
    elif unit == "patients":
        counts = _patients(con, dims, filters)
    else:
        counts = sql.query(con, "coverage", dims=dims, **filters.params())
    return with_shares(counts.select(*dims, n=pl.col(unit)), dims)


# --------------------------------------------------------------------------- marts

# Filters field → the column it narrows.
FILTER_COLUMNS: dict[str, str] = {
    "states": "state",
    "institutions": "institution",
    "modalities": "modality",
    "sexes": "sex",
    "area_types": "area_type",
    "facility_types": "facility_type",
    "conditions": "condition",
}
# The order in which the base queries' COLUMNS(...) lists the dimensions (coverage_facts).
FACT_ORDER: tuple[str, ...] = (
    "institution",
    "state",
    "sex",
    "age_band",
    "area_type",
    "facility_type",
    "modality",
    "body_part",
    "manufacturer",
    "device_model",
    "month",
    "condition",
)
# Measures a cube can give: a coverage unit, patients first seen in a cell that month
# (accrual), or patients counted at their first study (first-study cubes).
MEASURES: tuple[str, ...] = (*UNITS, "new_patients", "first", "quality")
# dq_missing_by_institution's columns → the cube column counting them ("quality" measure).
QUALITY_COLUMNS: dict[str, str] = {
    "sex": "missing_sex",
    "age": "missing_age",
    "state": "missing_state",
    "area_type": "missing_area_type",
    "diagnosis": "missing_diagnosis",
    "body_part": "missing_body_part",
    "manufacturer": "missing_manufacturer",
    "n_images": "missing_n_images",
    "facility_type": "missing_facility_type",
}


@dataclass(frozen=True)
class Cube:
    """One cube of the marts."""

    name: str
    dims: frozenset[str]
    kind: str
    """'cells' (every study) or 'first' (each patient's first study)."""
    cells: int


@dataclass(frozen=True)
class Marts:
    """The cubes of one snapshot and the facts that decide which sums over them are exact."""

    cubes: tuple[Cube, ...]
    constant: frozenset[str]
    """Dimensions no patient has two known values of (summing patients over them is exact)."""
    repeated_conditions: bool
    """Some study lists a condition twice (then a condition filter is not served)."""
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    """The first and last study dates: a date filter beyond them filters nothing."""
    recent_from: dt.date | None = None
    """mart_recent holds every study from this day on."""


def load_marts(con: duckdb.DuckDBPyConnection) -> Marts | None:
    """The snapshot's marts, or None for an index published before marts existed.

    Read once per published file: a publish replaces the file (new inode and mtime), so its
    identity is the cache key; an in-memory database is read every time.
    """
    path = sql.query(con, "database_file")["path"][0]
    if path is None or not Path(path).exists():
        return _read_marts(con)
    stat = Path(path).stat()
    key = (path, stat.st_ino, stat.st_mtime_ns, stat.st_size)
    with _MARTS_LOCK:
        if key in _MARTS_CACHE:
            return _MARTS_CACHE[key]
    marts = _read_marts(con)
    with _MARTS_LOCK:
        _MARTS_CACHE[key] = marts
        while len(_MARTS_CACHE) > 8:
            _MARTS_CACHE.pop(next(iter(_MARTS_CACHE)))
    return marts


_MARTS_CACHE: dict[tuple[str, int, int, int], Marts | None] = {}
_MARTS_LOCK = threading.Lock()


def _read_marts(con: duckdb.DuckDBPyConnection) -> Marts | None:
    try:
        frame = sql.query(con, "mart_cubes")
    except duckdb.CatalogException:
        return None
    if frame.height == 0:
        return None
    names, values = frame.select("fact_names", "fact_values").row(0)
    facts = dict(zip(names or [], values or [], strict=True))
    return Marts(
        cubes=tuple(
            Cube(name, frozenset(dims), kind, cells)
            for name, dims, kind, cells in frame.select("cube", "dims", "kind", "cells").iter_rows()
        ),
        constant=frozenset(d for d, v in facts.items() if d in DIMENSIONS and v == 0),
        repeated_conditions=facts.get("repeated_conditions", 1) != 0,
        first_day=_day(facts.get("first_day")),
        last_day=_day(facts.get("last_day")),
        recent_from=_day(facts.get("recent_from_day")),
    )


def _day(days: int | None) -> dt.date | None:
    return None if days is None else dt.date(1970, 1, 1) + dt.timedelta(days=int(days))


@dataclass(frozen=True)
class Scope:
    """The shared filters as a cube sees them: values per column and a month range."""

    lists: dict[str, tuple[str, ...]]
    month_from: str | None
    month_to: str | None

    @property
    def one_month(self) -> bool:
        """The dates are one calendar month (then patients are that month's row, no sum)."""
        return self.month_from is not None and self.month_from == self.month_to


def cube_scope(filters: Filters, marts: Marts | None = None) -> Scope | None:
    """The filters as cube selections, or None when no cube can apply them (an age range, or
    dates that do not start on the first or end on the last day of a month). A date bound
    beyond the first or last study filters nothing and is dropped."""
    if filters.age_min is not None or filters.age_max is not None:
        return None
    first = None if marts is None else marts.first_day
    last = None if marts is None else marts.last_day
    if filters.date_from is not None and first is not None and filters.date_from <= first:
        filters = dataclasses.replace(filters, date_from=None)
    if filters.date_to is not None and last is not None and filters.date_to >= last:
        filters = dataclasses.replace(filters, date_to=None)
    if filters.date_from is not None and filters.date_from.day != 1:
        return None
    if filters.date_to is not None and (filters.date_to + dt.timedelta(days=1)).day != 1:
        return None
    lists = {
        column: tuple(getattr(filters, field))
        for field, column in FILTER_COLUMNS.items()
        if getattr(filters, field)
    }
    if filters.date_from is not None and filters.date_to is None and last is not None:
        filters = dataclasses.replace(filters, date_to=last)  # so that one month is one month
    return Scope(
        lists=lists,
        month_from=None if filters.date_from is None else f"{filters.date_from:%Y-%m}",
        month_to=None if filters.date_to is None else f"{filters.date_to:%Y-%m}",
    )


def cube_fits(cube: Cube, dims: Sequence[str], scope: Scope, measure: str, marts: Marts) -> bool:
    """Whether selecting ``cube``'s rows by ``scope`` and summing them by ``dims`` gives exactly
    what the base query counts (see the module docstring)."""
    keys, wanted = cube.dims, set(dims)
    if (cube.kind == "first") != (measure == "first") or not wanted <= keys:
        return False
    if measure == "quality" and "month" in keys:
        return False  # missing-value counts are kept in the cubes without month
    dated = scope.month_from is not None or scope.month_to is not None
    if (dated or measure == "new_patients") and "month" not in keys:
        return False
    for column, values in scope.lists.items():
        if column not in keys:
            return False
        if column == "condition" and (
            len(values) != 1 or "condition" in wanted or marts.repeated_conditions
        ):
            return False
    if measure == "first":
        # each patient is in one row, so every sum is exact; but a filter that can drop some of
        # a patient's studies and not others would change which study is their first
        return scope.month_from is None and all(c in marts.constant for c in scope.lists)
    if measure == "new_patients" and scope.month_from is not None:
        return False  # first seen within the dates is not first seen ever
    for extra in keys - wanted:
        if extra == "month":
            if measure == "patients" and scope.month_from is not None and not scope.one_month:
                return False  # new_patients sums to the patients seen by a date, not from one
        elif extra == "condition":
            if "condition" not in scope.lists:
                return False  # a study with two conditions is in two rows
        elif measure in ("patients", "new_patients") and not (
            extra in marts.constant or len(scope.lists.get(extra, ())) == 1
        ):
            return False
    return True


def _serve(
    con: duckdb.DuckDBPyConnection, dims: Sequence[str], filters: Filters, measure: str
) -> pl.DataFrame | None:
    """Sums by ``dims`` from the smallest cube that answers exactly, or None.

    Columns: dims…, n (the measure), studies, images, demo_studies, complete_studies (cells
    with no study in scope are kept with studies = 0: the caller drops them).
    """
    marts = load_marts(con)
    if marts is None:
        return None
    scope = cube_scope(filters, marts)
    if scope is None:
        return None
    cube = next((c for c in marts.cubes if cube_fits(c, dims, scope, measure, marts)), None)
    if cube is None:
        return None
    cells = sql.query(
        con, "mart_cube_cells", cube=cube.name, columns=[d for d in FACT_ORDER if d in cube.dims]
    )
    if measure == "patients" and "month" in cube.dims and "month" not in dims:
        # one month: that month's distinct patients; else new_patients summed up to the last
        # month in scope: the patients seen by then
        value = "patients" if scope.one_month else "new_patients"
    elif measure in ("new_patients", "studies", "images"):
        value = measure
    else:
        value = "patients"
    selected = [pl.col(c).is_in(list(v)) for c, v in scope.lists.items()]
    if scope.month_from is not None:
        selected.append(pl.col("month") >= scope.month_from)
    if scope.month_to is not None:
        selected.append(pl.col("month") <= scope.month_to)
    if selected:
        cells = cells.filter(pl.all_horizontal(selected))
    extra = list(QUALITY_COLUMNS.values()) if measure == "quality" else []
    if measure == "quality":
        value = "studies"
    sums = [
        pl.col(value).sum().cast(pl.Int64).alias("n"),
        *(
            pl.col(c).sum().cast(pl.Int64)
            for c in ("studies", "images", "demo_studies", "complete_studies", *extra)
        ),
    ]
    ordered = [d for d in FACT_ORDER if d in dims]
    if not ordered:
        return cells.select(sums)
    return cells.group_by(ordered).agg(sums).sort(ordered, nulls_last=True)


def filters_from_params(params: Mapping[str, Any]) -> Filters:
    """The Filters whose .params() are the $f_* entries of ``params``."""
    values = {}
    for field in dataclasses.fields(Filters):
        value = params[f"f_{field.name}"]
        values[field.name] = tuple(value or ()) if field.type.startswith("tuple") else value
    return Filters(**values)


def read_query(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> pl.DataFrame:
    """A named query's result, from the marts when they answer it exactly (the totals, partner
    and accrual queries), else from the query itself; the frame is the same either way."""
    served = None
    if name in _SERVED and name in sql.catalogue():
        sql.catalogue()[name].check_params(params)
        served = _SERVED[name](con, params)
    return served if served is not None else sql.query(con, name, **params)


def _index_totals(con: duckdb.DuckDBPyConnection, params: Mapping[str, Any]) -> pl.DataFrame | None:
    filters = filters_from_params(params)
    whole = _serve(con, [], filters, "patients")
    states = _serve(con, ["state"], filters, "studies")
    institutions = _serve(con, ["institution"], filters, "studies")
    if whole is None or states is None or institutions is None:
        marts = load_marts(con)
        recent = None if marts is None else marts.recent_from
        if recent is not None and filters.date_from is not None and filters.date_from >= recent:
            return sql.query(con, "index_totals_recent", **params)  # a window of recent days
        return None
    row = whole.row(0, named=True) if whole.height else {}
    return pl.DataFrame(
        {
            "studies": [row.get("studies") or 0],
            "patients": [row.get("n") or 0],
            "images": [row.get("images") or 0],
            "institutions": [institutions.filter(pl.col("studies") > 0).height],
            "states_covered": [
                states.filter((pl.col("studies") > 0) & pl.col("state").is_not_null()).height
            ],
            "states_total": [int(sql.query(con, "states_total")["states_total"][0])],
            "demo_studies": [row.get("demo_studies") or 0],
            "complete_demographics": [row.get("complete_studies") or 0],
        },
        schema={
            c: pl.Int64
            for c in (
                "studies",
                "patients",
                "images",
                "institutions",
                "states_covered",
                "states_total",
                "demo_studies",
                "complete_demographics",
            )
        },
    )


def _partner_monthly(
    con: duckdb.DuckDBPyConnection, params: Mapping[str, Any]
) -> pl.DataFrame | None:
    served = _serve(con, ["institution", "month"], filters_from_params(params), "new_patients")
    if served is None:
        return None
    return served.filter(pl.col("studies") > 0).select(
        "institution", "month", "studies", pl.col("n").alias("patients"), "images"
    )


def _accrual_by_institution(
    con: duckdb.DuckDBPyConnection, params: Mapping[str, Any]
) -> pl.DataFrame | None:
    dims, unit = list(params["dims"]), params["unit"]
    if unit not in UNITS or {"institution", "month"} & set(dims) or set(dims) - set(FACT_ORDER):
        return None
    measure = "new_patients" if unit == "patients" else unit
    served = _serve(con, ["institution", *dims, "month"], filters_from_params(params), measure)
    if served is None:
        return None
    present = pl.col("n") > 0 if unit == "patients" else pl.col("studies") > 0
    ordered = [d for d in FACT_ORDER if d in dims]
    return (
        served.filter(present)
        .select(pl.col("institution").alias("institution_id"), *ordered, "month", "n")
        .sort(["institution_id", *ordered, "month", "n"], nulls_last=True)
    )


def _monthly_accrual(
    con: duckdb.DuckDBPyConnection, params: Mapping[str, Any]
) -> pl.DataFrame | None:
    dims, unit = [d for d in params["dims"] if d != "month"], params["unit"]
    if unit not in UNITS or "condition" in dims or set(dims) - set(FACT_ORDER):
        return None
    measure = "first" if unit == "patients" else unit
    served = _serve(con, [*dims, "month"], filters_from_params(params), measure)
    if served is None:
        return None
    ordered = [d for d in FACT_ORDER if d in dims]
    return (
        served.filter(pl.col("studies") > 0)
        .select("month", *ordered, "n")
        .sort(["month", *ordered, "n"], nulls_last=True)
    )


def _dq_missing_by_institution(
    con: duckdb.DuckDBPyConnection, params: Mapping[str, Any]
) -> pl.DataFrame | None:
    served = _serve(con, ["institution"], filters_from_params(params), "quality")
    if served is None:
        return None
    return served.filter(pl.col("studies") > 0).select(
        "institution", "studies", *(pl.col(c).alias(k) for k, c in QUALITY_COLUMNS.items())
    )


def _filter_options(
    con: duckdb.DuckDBPyConnection, params: Mapping[str, Any]
) -> pl.DataFrame | None:
    marts = load_marts(con)
    if marts is None or marts.first_day is None:
        return None
    lists = sql.query(con, "filter_lists")
    return lists.select(
        "institutions",
        "institution_names",
        pl.lit(marts.first_day, dtype=pl.Date).alias("first_date"),
        pl.lit(marts.last_day, dtype=pl.Date).alias("last_date"),
        "conditions",
    )


_SERVED = {
    "dq_missing_by_institution": _dq_missing_by_institution,
    "filter_options": _filter_options,
    "index_totals": _index_totals,
    "partner_monthly": _partner_monthly,
    "accrual_by_institution": _accrual_by_institution,
    "monthly_accrual": _monthly_accrual,
}
