"""Gaps and the collection plan: observed coverage against a reference, for pages and CLI alike.

The Gaps and Planner pages and `python -m dashboard gaps | plan | score` call these functions,
so a number on a page and in the command's output are the same number. Nothing here draws or
reads Streamlit state; the functions that take a connection only run named queries and hand the
frames to the pure ones (which the pages call with their cached frames).

- :func:`resolve_reference` turns a reference spec (``population``, ``population:census2011``,
  ``burden:CONDITION``, ``targets:FILE``) and the shared filters into reference cells that match
  what is counted: a state filter keeps those states' population, a sex, urban/rural or age
  filter keeps the matching cells (through a finer census cross when the dimension is not shown),
  a burden reference counts only studies recording that condition.
- :func:`representation` is METRICS.md's table (RR, Wilson interval, flag, shortfall) plus the
  expected count q·N, the JS distance and the unknowns left out of N.
- :func:`build_plan` is the collection planner: the optimal allocation, its split across the
  partners that reach each cell, optional capacity caps, and the month each cell's target is
  reached at the current accrual.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard import metrics, planner
from dashboard.baselines import (
    Baseline,
    ReferenceUnavailableError,
    burden_metric,
    parse_reference,
    population,
)
from dashboard.config import load_settings
from dashboard.contract import AGE_BANDS
from dashboard.coverage import DIMENSIONS, check_dimensions, coverage, known_mask, read_query
from dashboard.filters import NO_FILTERS, Filters
from dashboard.formatting import (
    MISSING,
    format_indian,
    format_interval,
    format_percent,
    format_ratio,
)
from dashboard.reference import alias_key, load_reference

MAX_DIMS = 3
# Dimensions a reference can be crossed by: everything coverage counts except the two that
# describe the programme itself rather than the people in it.
CELL_DIMENSIONS: tuple[str, ...] = tuple(d for d in DIMENSIONS if d not in {"institution", "month"})
POPULATION_CELL_DIMS: tuple[str, ...] = ("state", "sex", "age_band", "area_type")
SORTS: tuple[str, ...] = ("shortfall", "rr")
REFERENCE_KINDS: tuple[str, ...] = ("population", "population:census2011", "burden", "targets")
ACCRUAL_MONTHS = 3

DIM_TITLES: dict[str, str] = {
    "state": "State/UT",
    "sex": "Sex",
    "age_band": "Age band",
    "area_type": "Urban/rural",
    "facility_type": "Facility type",
    "modality": "Modality",
    "body_part": "Body part",
    "condition": "Condition",
    "manufacturer": "Manufacturer",
    "device_model": "Scanner model",
}
SEX_LABELS: dict[str, str] = {"M": "Male", "F": "Female", "O": "Other", "U": "Unknown"}
FLAG_LABELS: dict[str, str] = {
    "under": "under",
    "over": "over",
    "uncertain": "uncertain",
    "ok": "ok",
    "insufficient": "insufficient",
    "no_reference": "not in reference",
}
_SEX_CODES = {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O"}


# --------------------------------------------------------------------------- dimensions


def parse_dims(text: str) -> list[str]:
    """``"state,sex"`` → ``["state", "sex"]``, checked by :func:`check_dims`."""
    return check_dims([d.strip() for d in text.split(",") if d.strip()])


def check_dims(dims: Sequence[str]) -> list[str]:
    """One to three distinct dimensions that a reference can describe; a clear error otherwise."""
    dims = list(dims)
    if not dims:
        raise ValueError("choose at least one dimension")
    if len(dims) > MAX_DIMS:
        raise ValueError(f"cross at most {MAX_DIMS} dimensions, got {len(dims)}")
    check_dimensions(dims)
    odd = [d for d in dims if d not in CELL_DIMENSIONS]
    if odd:
        raise ValueError(
            f"{', '.join(odd)} cannot be compared with a reference; "
            f"choose from {', '.join(CELL_DIMENSIONS)}"
        )
    return dims


# --------------------------------------------------------------------------- reference


@dataclass(frozen=True)
class ResolvedReference:
    """Reference cells for one view, and the filters under which the data is to be counted."""

    spec: str
    dims: tuple[str, ...]
    frame: pl.DataFrame
    """dims… and ref_weight."""
    description: str
    filters: Filters
    """The shared filters, plus the condition of a burden reference."""
    notes: tuple[str, ...] = ()
    """How the reference was matched to the filters, and what could not be matched."""


def _band_bounds(band: str) -> tuple[float, float]:
    """Census age band → [low, high) in years."""
    if band.endswith("+"):
        return float(band[:-1]), math.inf
    low, high = band.split("-")
    return float(low), float(high) + 1


def bands_in_range(age_min: float | None, age_max: float | None) -> list[str]:
    """The census age bands that overlap the filter's age range [age_min, age_max]."""
    low = -math.inf if age_min is None else age_min
    high = math.inf if age_max is None else age_max
    return [
        band for band in AGE_BANDS for lo, hi in [_band_bounds(band)] if lo <= high and hi > low
    ]


def _restrictions(filters: Filters) -> dict[str, list[str]]:
    """Reference cells allowed by the shared filters, per population dimension."""
    allowed: dict[str, list[str]] = {}
    if filters.states:
        allowed["state"] = list(filters.states)
    if filters.sexes:
        allowed["sex"] = [s for s in filters.sexes if s in ("M", "F")]
    if filters.area_types:
        allowed["area_type"] = [a for a in filters.area_types if a in ("urban", "rural")]
    if filters.age_min is not None or filters.age_max is not None:
        allowed["age_band"] = bands_in_range(filters.age_min, filters.age_max)
    return allowed


def _keep(frame: pl.DataFrame, allowed: Mapping[str, list[str]]) -> pl.DataFrame:
    for dim, values in allowed.items():
        if dim in frame.columns:
            frame = frame.filter(pl.col(dim).is_in(values))
    return frame


def _words(dim: str, values: Sequence[str]) -> str:
    names = load_reference().state_names
    label = {"state": names, "sex": SEX_LABELS}.get(dim, {})
    return ", ".join(label.get(v, v) for v in values) or "none"


def _population(
    source: str, dims: list[str], filters: Filters
) -> tuple[Baseline, pl.DataFrame, list[str]]:
    allowed = _restrictions(filters)
    notes: list[str] = []
    finer: list[str] = []
    for dim in (d for d in ("sex", "age_band", "area_type") if d in allowed and d not in dims):
        try:
            population([*dims, *finer, dim], source=source)
        except ReferenceUnavailableError:
            notes.append(
                f"not restricted to the {DIM_TITLES[dim].lower()} filter: the census tables do "
                f"not cross {DIM_TITLES[dim].lower()} with {', '.join(dims)}"
            )
        else:
            finer.append(dim)
    base = population([*dims, *finer], source=source, states=filters.states or None)
    frame = _keep(base.frame, allowed)
    for dim in (d for d in allowed if d in [*dims, *finer] and d != "state"):
        notes.append(f"restricted to {DIM_TITLES[dim].lower()} {_words(dim, allowed[dim])}")
    if "age_band" in allowed and "age_band" in [*dims, *finer]:
        notes.append("age bands partly inside the age filter are counted whole")
    frame = frame.group_by(dims).agg(pl.col("ref_weight").sum()).sort(dims)
    return base, frame, notes


def _normalise_targets(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """Targets written with state names or sex words, brought to the index's codes."""
    if "state" in frame.columns:
        aliases = load_reference().aliases
        keyed = frame.with_columns(_key=alias_key(pl.col("state"))).join(
            aliases, left_on="_key", right_on="alias_key", how="left"
        )
        unknown = keyed.filter(pl.col("iso_code").is_null())["state"].unique().to_list()
        if unknown:
            raise ReferenceUnavailableError(
                f"{name}: unknown state/UT name(s) {', '.join(map(str, unknown[:5]))}"
            )
        frame = keyed.with_columns(state=pl.col("iso_code")).drop("_key", "iso_code")
    if "sex" in frame.columns:
        frame = frame.with_columns(
            sex=pl.col("sex").str.to_lowercase().replace_strict(_SEX_CODES, default=pl.col("sex"))
        )
    for dim in ("area_type", "facility_type"):
        if dim in frame.columns:
            frame = frame.with_columns(pl.col(dim).str.to_lowercase().str.replace_all(" ", "_"))
    return frame


def resolve_reference(
    spec: str, dims: Sequence[str], filters: Filters = NO_FILTERS
) -> ResolvedReference:
    """The reference cells of ``dims`` for ``spec``, matched to the shared filters.

    Raises :class:`ReferenceUnavailableError` (a ValueError) with a readable message when the
    sources have no figures for this cross, condition or filter.
    """
    dims = check_dims(dims)
    kind, _, arg = spec.partition(":")
    notes: list[str] = []
    observed_filters = filters
    if kind == "population":
        base, frame, notes = _population(arg or "proj2026", dims, filters)
        description = base.description
    elif kind == "burden":
        if not arg:
            raise ReferenceUnavailableError("name a condition: burden:CONDITION")
        base = parse_reference(spec, dims)
        frame = _keep(base.frame, {k: v for k, v in _restrictions(filters).items() if k == "state"})
        description = base.description
        observed_filters = dataclasses.replace(filters, conditions=(arg,))
        notes.append(f"counted: only studies recording {arg}")
        if filters.conditions and filters.conditions != (arg,):
            notes.append("the condition filter is replaced by the burden's condition")
    elif kind == "targets":
        if not arg:
            raise ReferenceUnavailableError("name a targets file: targets:FILE")
        path = Path(arg)
        if not path.is_file():
            raise ReferenceUnavailableError(f"targets file {arg} not found")
        try:
            base = parse_reference(spec, dims)
        except (pl.exceptions.PolarsError, UnicodeDecodeError) as problem:
            raise ReferenceUnavailableError(
                f"{path.name}: not a readable CSV ({problem})"
            ) from None
        allowed = _restrictions(filters)
        frame = _keep(_normalise_targets(base.frame, path.name), allowed)
        notes.extend(
            f"targets not restricted to the {DIM_TITLES[d].lower()} filter: no such column"
            for d in allowed
            if d not in dims
        )
        description = base.description
    else:
        base = parse_reference(spec, dims)  # raises the catalogue of valid specs
        frame, description = base.frame, base.description
    frame = frame.filter(pl.col("ref_weight") > 0) if frame.height else frame
    if frame.height == 0 or frame.select(pl.all_horizontal(pl.col(dims).is_null()).any()).item():
        raise ReferenceUnavailableError(
            f"{description}: no reference cells match the chosen dimensions and filters"
        )
    return ResolvedReference(
        spec=spec,
        dims=tuple(dims),
        frame=frame,
        description=description,
        filters=observed_filters,
        notes=tuple(notes),
    )


@functools.cache
def burden_conditions() -> tuple[str, ...]:
    """Conditions with state-wise burden figures (for the pages' pickers). The reference data
    is fixed for the life of the process, so this is worked out once."""
    names = load_reference().disease_burden["condition"].unique().sort().to_list()
    usable = []
    for name in names:
        try:
            burden_metric(name)
        except ReferenceUnavailableError:
            continue
        usable.append(name)
    return tuple(usable)


# --------------------------------------------------------------------------- observed


def split_known(counts: pl.DataFrame, dims: Sequence[str]) -> tuple[pl.DataFrame, int]:
    """Coverage counts → (cells with every value known: dims…, n; count with an unknown)."""
    known = known_mask(dims)
    observed = counts.filter(known).select(*dims, pl.col("n").cast(pl.Int64))
    unknown = int(counts.filter(~known)["n"].sum() or 0)
    return observed, unknown


# --------------------------------------------------------------------------- representation


@dataclass(frozen=True)
class GapsResult:
    """METRICS.md's representation table for one cross, with its summary numbers."""

    dims: tuple[str, ...]
    table: pl.DataFrame
    """dims…, n, share, ref_share, expected, rr, rr_low, rr_high, flag, shortfall."""
    total: int
    """N: counted with every value known."""
    unknown: int
    """Left out of N because a value is unknown."""
    jsd: float | None
    representativeness: float | None
    tau: float
    n_min: int
    reference: str
    notes: tuple[str, ...] = ()

    @property
    def missing_rate(self) -> float | None:
        """Share of what was counted that has an unknown value in a chosen dimension."""
        whole = self.total + self.unknown
        return self.unknown / whole if whole else None

    def score(self) -> dict[str, Any]:
        """The divergence summary printed by `python -m dashboard score`."""
        return {
            "jsd": self.jsd,
            "representativeness": self.representativeness,
            "n": self.total,
            "unknown": self.unknown,
        }

    def counts_by_flag(self) -> dict[str, int]:
        """Number of cells per flag."""
        return dict(self.table.group_by("flag").len().iter_rows())

    @property
    def reference_cells(self) -> int:
        """Cells the reference lists (the table adds observed cells it lacks, last)."""
        return self.table.filter(pl.col("ref_share").is_not_null()).height

    @property
    def outside_cells(self) -> int:
        """Observed cells the reference does not list: counted in N, flagged no_reference."""
        return self.table.height - self.reference_cells

    @property
    def small_cells(self) -> int:
        """Reference cells with fewer than n_min (flag insufficient)."""
        listed = self.table.filter(pl.col("ref_share").is_not_null())
        return listed.filter(pl.col("n") < self.n_min).height

    @property
    def empty_cells(self) -> int:
        """Reference cells with nothing observed."""
        return self.table.filter((pl.col("n") == 0) & pl.col("ref_share").is_not_null()).height


def representation(
    counts: pl.DataFrame,
    reference: ResolvedReference,
    *,
    tau: float | None = None,
    n_min: int | None = None,
) -> GapsResult:
    """Representation table of coverage ``counts`` (dims…, n, with unknowns) against a reference.

    Every reference cell appears, unseen ones with n = 0; ``expected`` = ref_share × N. τ and
    n_min default to the settings (DIVERSITY_TAU, DIVERSITY_N_MIN).
    """
    settings = load_settings()
    tau = settings.tau if tau is None else tau
    n_min = settings.n_min if n_min is None else n_min
    dims = list(reference.dims)
    observed, unknown = split_known(counts, dims)
    table = metrics.representation_table(observed, reference.frame, dims, tau=tau, n_min=n_min)
    total = int(table["n"].sum())
    table = table.with_columns(expected=pl.col("ref_share") * total).select(
        *dims,
        "n",
        "share",
        "ref_share",
        "expected",
        "rr",
        "rr_low",
        "rr_high",
        "flag",
        "shortfall",
    )
    divergence = metrics.divergence(observed, reference.frame, dims)
    return GapsResult(
        dims=tuple(dims),
        table=table,
        total=total,
        unknown=unknown,
        jsd=divergence["jsd"],
        representativeness=divergence["representativeness"],
        tau=tau,
        n_min=n_min,
        reference=reference.description,
        notes=reference.notes,
    )


def sort_gaps(table: pl.DataFrame, by: str = "shortfall") -> pl.DataFrame:
    """Largest shortfall first (``shortfall``) or most under-represented first (``rr``)."""
    if by == "shortfall":
        keys, descending = ["shortfall", "rr"], [True, False]
    elif by == "rr":
        keys, descending = ["rr", "shortfall"], [False, True]
    else:
        raise ValueError(f"sort by {by!r}? use {' or '.join(SORTS)}")
    return table.sort(keys, descending=descending, nulls_last=True, maintain_order=True)


def gaps(
    con: duckdb.DuckDBPyConnection,
    dims: Sequence[str],
    spec: str = "population",
    *,
    unit: str = "patients",
    filters: Filters = NO_FILTERS,
    tau: float | None = None,
    n_min: int | None = None,
) -> GapsResult:
    """Count the index and compare it with the reference: what `gaps` and `score` print."""
    reference = resolve_reference(spec, dims, filters)
    counts = coverage(con, list(reference.dims), unit, reference.filters)
    return representation(counts, reference, tau=tau, n_min=n_min)


# --------------------------------------------------------------------------- labels


def value_labels(frame: pl.DataFrame, dims: Sequence[str]) -> pl.DataFrame:
    """Each dimension column as readers know it (state names, Female/Male, Urban/Rural)."""
    names = load_reference().state_names
    mapping: dict[str, Mapping[str, str]] = {"state": names, "sex": SEX_LABELS}
    columns = []
    for dim in dims:
        values = frame[dim].cast(pl.String).to_list()
        if dim in mapping:
            labels = [mapping[dim].get(v, v) if v is not None else MISSING for v in values]
        elif dim in ("area_type", "facility_type", "condition"):
            labels = [v.replace("_", " ").capitalize() if v else MISSING for v in values]
        elif dim == "age_band":
            labels = [v.replace("-", "–") if v else MISSING for v in values]
        else:
            labels = [v if v else MISSING for v in values]
        columns.append(pl.Series(DIM_TITLES[dim], labels, dtype=pl.String))
    return pl.DataFrame(columns) if columns else pl.DataFrame()


def cell_labels(frame: pl.DataFrame, dims: Sequence[str]) -> list[str]:
    """One readable name per cell: "Bihar · Female · 60–64"."""
    labels = value_labels(frame, dims)
    return [" · ".join(row) for row in labels.iter_rows()]


# --------------------------------------------------------------------------- gaps tables


def gaps_display(result: GapsResult, unit: str = "patients") -> pl.DataFrame:
    """The page table: labels and pre-formatted numbers (Indian grouping), in table order."""
    t = result.table
    noun = unit.capitalize()
    return pl.concat(
        [
            value_labels(t, result.dims),
            pl.DataFrame(
                {
                    noun: [format_indian(v) for v in t["n"]],
                    "Expected": [format_indian(v) for v in t["expected"]],
                    "Share": [format_percent(v, 2) for v in t["share"]],
                    "Reference share": [format_percent(v, 2) for v in t["ref_share"]],
                    "RR (95% CI)": [
                        f"{format_ratio(r)} ({format_interval(lo, hi)})"
                        if r is not None
                        else MISSING
                        for r, lo, hi in t.select("rr", "rr_low", "rr_high").iter_rows()
                    ],
                    "Flag": [
                        FLAG_LABELS["no_reference"] if q is None else FLAG_LABELS.get(f, f)
                        for f, q in t.select("flag", "ref_share").iter_rows()
                    ],
                    "Shortfall": [format_indian(v) for v in t["shortfall"]],
                },
                schema={
                    c: pl.String
                    for c in (
                        noun,
                        "Expected",
                        "Share",
                        "Reference share",
                        "RR (95% CI)",
                        "Flag",
                        "Shortfall",
                    )
                },
            ),
        ],
        how="horizontal",
    )


def gaps_export(result: GapsResult) -> pl.DataFrame:
    """The downloadable table: codes, readable labels and raw numbers."""
    return pl.concat(
        [
            result.table.select(*result.dims),
            value_labels(result.table, result.dims).rename(
                {DIM_TITLES[d]: f"{d}_label" for d in result.dims}
            ),
            result.table.drop(*result.dims),
        ],
        how="horizontal",
    )


def chart_frame(table: pl.DataFrame, dims: Sequence[str], limit: int = 30) -> pl.DataFrame:
    """The first ``limit`` rows that have a ratio, labelled, for the RR chart."""
    rows = table.filter(pl.col("rr").is_not_null() & (pl.col("flag") != "no_reference")).head(limit)
    return rows.with_columns(
        label=pl.Series(cell_labels(rows, dims), dtype=pl.String),
        n_label=pl.Series([format_indian(v) for v in rows["n"]], dtype=pl.String),
        expected_label=pl.Series([format_indian(v) for v in rows["expected"]], dtype=pl.String),
        shortfall_label=pl.Series([format_indian(v) for v in rows["shortfall"]], dtype=pl.String),
    )


# --------------------------------------------------------------------------- planner


@dataclass(frozen=True)
class PlanOutcome:
    """A collection plan per cell and per partner, with its effect on the divergence."""

    dims: tuple[str, ...]
    cells: pl.DataFrame
    """dims…, n, ref_share, allocated, proportional, target, share_after, monthly_rate,
    forecast_month (YYYY-MM, null when accrual is 0 or nothing is allocated), partners."""
    partners: pl.DataFrame
    """dims…, institution, institution_name, allocated, monthly_rate, delivery_month; a null
    institution holds what no partner reaches."""
    budget: int
    allocated: int
    jsd_before: float | None
    jsd_after: float | None
    jsd_after_proportional: float | None
    as_of: dt.date | None
    """First day of the last full month: accrual is the mean of it and the two before."""
    reference: str
    unknown: int
    notes: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Budget, allocation and JSD before/after, as one flat record."""

        def minus(value: float | None) -> float | None:
            return None if value is None else 1.0 - value

        return {
            "budget": self.budget,
            "allocated": self.allocated,
            "unallocated": self.budget - self.allocated,
            "jsd_before": self.jsd_before,
            "jsd_after": self.jsd_after,
            "jsd_after_proportional": self.jsd_after_proportional,
            "representativeness_before": minus(self.jsd_before),
            "representativeness_after": minus(self.jsd_after),
            "accrual_months": (
                f"{_shift_month(self.as_of, 1 - ACCRUAL_MONTHS):%Y-%m} to {self.as_of:%Y-%m}"
                if self.as_of
                else None
            ),
            "reference": self.reference,
            "unknown_left_out": self.unknown,
        }

    def rows(self) -> pl.DataFrame:
        """One row per (cell, partner) for the CLI; cells given nothing have one row, 0."""
        dims = list(self.dims)
        cells = self.cells.select(
            *dims,
            "n",
            "ref_share",
            pl.col("allocated").alias("cell_allocated"),
            "target",
            "forecast_month",
        ).with_row_index("_cell")
        parts = self.partners.select(
            *dims, "institution", "institution_name", "allocated", "monthly_rate", "delivery_month"
        )
        joined = cells.join(parts, on=dims, how="left", nulls_equal=True)
        return (
            joined.with_columns(pl.col("allocated").fill_null(0))
            .sort(["cell_allocated", "_cell", "allocated"], descending=[True, False, True])
            .drop("_cell")
        )


def _shift_month(month: dt.date, by: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + by
    return dt.date(index // 12, index % 12 + 1, 1)


def last_full_month(last_date: dt.date | None) -> dt.date | None:
    """First day of the last calendar month that the data covers to its end."""
    if last_date is None:
        return None
    start = last_date.replace(day=1)
    if (last_date + dt.timedelta(days=1)).month != last_date.month:
        return start
    return _shift_month(start, -1)


def monthly_rates(
    accrual: pl.DataFrame, dims: Sequence[str], as_of: dt.date | None
) -> pl.DataFrame:
    """institution_id, dims…, monthly_rate: mean accrual over the last full months."""
    dims = list(dims)
    schema = {
        "institution_id": pl.String,
        **{d: pl.String for d in dims},
        "monthly_rate": pl.Float64,
    }
    if as_of is None or accrual.height == 0:
        return pl.DataFrame(schema=schema)
    window = [f"{_shift_month(as_of, -k):%Y-%m}" for k in range(ACCRUAL_MONTHS)]
    known = accrual.filter(known_mask(dims) & pl.col("month").is_in(window))
    return (
        known.group_by("institution_id", *dims)
        .agg((pl.col("n").sum() / ACCRUAL_MONTHS).cast(pl.Float64).alias("monthly_rate"))
        .select(*schema)
    )


def partners_in_scope(registry: pl.DataFrame, filters: Filters) -> pl.DataFrame:
    """Registered partners the shared filters leave in (institution and facility filters)."""
    scope = registry
    if filters.institutions:
        scope = scope.filter(pl.col("institution_id").is_in(list(filters.institutions)))
    if filters.facility_types:
        scope = scope.filter(pl.col("facility_type").is_in(list(filters.facility_types)))
    return scope


def reach_weights(
    contributions: pl.DataFrame,
    registry: pl.DataFrame,
    cells: pl.DataFrame,
    dims: Sequence[str],
    states: Sequence[str] = (),
) -> pl.DataFrame:
    """Who can collect in which cell, and with what weight (institution_id, dims…, n > 0).

    METRICS.md: a partner reaches its own state and the states it has contributed from.

    - A cell someone has contributed to is split among its contributors, weighted by their past
      contribution to it (the rule of :func:`planner.split_across_institutions`).
    - A cell nobody has contributed to is reached by every partner whose registry state or a
      contributed-from state is the cell's state (every partner in scope when the cross has no
      state), weighted by what the partner would have collected there had its collection in that
      state followed the reference: its count in the state × the cell's reference share within
      the state, at least 1.

    ``states``: the state filter, so that without a state dimension a partner of another state
    with nothing in scope does not reach the cells.
    """
    dims = list(dims)
    contributed = (
        contributions.filter(pl.col("n") > 0)
        .group_by("institution_id", *dims)
        .agg(pl.col("n").sum().cast(pl.Int64))
    )
    weighted_cells = cells.filter(pl.col("ref_share") > 0).select(*dims, "ref_share")
    empty = weighted_cells.join(contributed.select(dims).unique(), on=dims, how="anti")
    registry_ids = registry.filter(
        pl.col("state").is_in(list(states)) if states else pl.lit(True)
    ).select("institution_id", "state")
    if "state" in dims:
        group = ["state"]
        homes = pl.concat([registry_ids, contributed.select("institution_id", "state")])
        pairs = empty.join(homes.unique().drop_nulls(), on="state", how="inner")
    else:
        group = []
        ids = pl.concat(
            [registry_ids.select("institution_id"), contributed.select("institution_id")]
        ).unique()
        pairs = empty.join(ids, how="cross")
    if pairs.height == 0:
        return contributed.select("institution_id", *dims, "n")
    volume = contributed.group_by("institution_id", *group).agg(pl.col("n").sum().alias("_vol"))
    within = weighted_cells.select(
        *dims,
        (
            pl.col("ref_share")
            / (pl.col("ref_share").sum().over(group) if group else pl.col("ref_share").sum())
        ).alias("_q"),
    )
    added = (
        pairs.join(volume, on=["institution_id", *group], how="left")
        .join(within, on=dims, how="left")
        .select(
            "institution_id",
            *dims,
            pl.max_horizontal(
                (pl.col("_vol").fill_null(0) * pl.col("_q")).floor().cast(pl.Int64), pl.lit(1)
            ).alias("n"),
        )
    )
    return pl.concat([contributed.select("institution_id", *dims, "n"), added]).sort(
        "institution_id", *dims
    )


def read_capacity(
    path: Path | str, registry: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, list[str]]:
    """A capacity CSV (institution_id, capacity) checked; returns it and notes on unknown ids."""
    name = Path(path).name
    try:
        frame = pl.read_csv(path, infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, UnicodeDecodeError, OSError) as problem:
        raise ValueError(f"{name}: not a readable CSV ({problem})") from None
    missing = {"institution_id", "capacity"} - set(frame.columns)
    if missing:
        raise ValueError(f"{name}: capacity file needs columns institution_id, capacity")
    capacity = frame.select(
        pl.col("institution_id").cast(pl.String).str.strip_chars().str.to_uppercase(),
        pl.col("capacity").cast(pl.Float64, strict=False),
    )
    bad = capacity.filter(
        pl.col("capacity").is_null()
        | (pl.col("capacity") < 0)
        | (pl.col("capacity") != pl.col("capacity").floor())
    )
    if bad.height:
        raise ValueError(
            f"{name}: capacity must be a whole number ≥ 0 (row {bad.row(0, named=True)})"
        )
    if capacity["institution_id"].is_duplicated().any():
        raise ValueError(f"{name}: an institution is listed twice")
    notes = []
    if registry is not None:
        unknown = capacity.filter(
            ~pl.col("institution_id").is_in(registry["institution_id"].to_list())
        )
        if unknown.height:
            notes.append(
                "capacity for unregistered institution(s) ignored: "
                + ", ".join(unknown["institution_id"])
            )
    return capacity.with_columns(pl.col("capacity").cast(pl.Int64)), notes


def _month_label(value: dt.date | None) -> str | None:
    return None if value is None else f"{value:%Y-%m}"


def build_plan(
    counts: pl.DataFrame,
    contributions: pl.DataFrame,
    accrual: pl.DataFrame,
    registry: pl.DataFrame,
    reference: ResolvedReference,
    budget: int,
    *,
    capacity: pl.DataFrame | None = None,
    last_date: dt.date | None = None,
    notes: Sequence[str] = (),
) -> PlanOutcome:
    """The plan for ``budget`` new patients (or studies/images) over the reference's cells.

    ``counts``: coverage by dims (unknowns included); ``contributions``: coverage by
    institution + dims; ``accrual``: the accrual_by_institution query; ``registry``: partners in
    scope (institution_id, name, state); ``capacity``: institution_id, capacity or None.
    """
    dims = list(reference.dims)
    observed, unknown = split_known(counts, dims)
    contrib = contributions.rename({"institution": "institution_id"}).filter(known_mask(dims))
    contrib = contrib.select("institution_id", *dims, pl.col("n").cast(pl.Int64))
    cells = metrics.align_cells(observed, reference.frame, dims)
    weights = reach_weights(contrib, registry, cells, dims, states=reference.filters.states)
    caps = None if capacity is None else planner.capacity_by_cell(weights, capacity, dims)
    result = planner.plan(observed, reference.frame, dims, budget, caps)
    split = planner.split_across_institutions(
        result.cells.select(*dims, "x"), weights, dims, capacity
    )

    as_of = last_full_month(last_date)
    rates = monthly_rates(accrual, dims, as_of)
    cell_rates = rates.group_by(dims).agg(pl.col("monthly_rate").sum())
    names = registry.select("institution_id", institution_name="name")
    partners = (
        split.join(rates, on=["institution_id", *dims], how="left", nulls_equal=True)
        .join(names, on="institution_id", how="left")
        .with_columns(pl.col("monthly_rate").fill_null(0.0))
    )
    partners = partners.with_columns(
        delivery_month=pl.Series(
            [
                _month_label(planner.forecast_month(0, x, rate, as_of))
                if inst is not None and as_of is not None
                else None
                for inst, x, rate in partners.select(
                    "institution_id", "x", "monthly_rate"
                ).iter_rows()
            ],
            dtype=pl.String,
        )
    ).select(
        *dims,
        pl.col("institution_id").alias("institution"),
        "institution_name",
        pl.col("x").alias("allocated"),
        "monthly_rate",
        "delivery_month",
    )
    counted = (
        partners.filter(pl.col("institution").is_not_null())
        .group_by(dims)
        .agg(pl.len().cast(pl.Int64).alias("partners"))
    )
    table = (
        result.cells.join(cell_rates, on=dims, how="left", nulls_equal=True, maintain_order="left")
        .join(counted, on=dims, how="left", nulls_equal=True, maintain_order="left")
        .with_columns(pl.col("monthly_rate").fill_null(0.0), pl.col("partners").fill_null(0))
    )
    table = table.with_columns(
        forecast_month=pl.Series(
            [
                _month_label(planner.forecast_month(n, target, rate, as_of))
                if x > 0 and as_of is not None
                else None
                for n, target, rate, x in table.select(
                    "n", "target", "monthly_rate", "x"
                ).iter_rows()
            ],
            dtype=pl.String,
        )
    ).select(
        *dims,
        "n",
        "ref_share",
        pl.col("x").alias("allocated"),
        pl.col("x_proportional").alias("proportional"),
        "target",
        "share_after",
        "monthly_rate",
        "forecast_month",
        "partners",
    )
    return PlanOutcome(
        dims=tuple(dims),
        cells=table,
        partners=partners.sort(pl.col("allocated"), descending=True, maintain_order=True),
        budget=result.budget,
        allocated=result.allocated,
        jsd_before=result.jsd_before,
        jsd_after=result.jsd_after,
        jsd_after_proportional=result.jsd_after_proportional,
        as_of=as_of,
        reference=reference.description,
        unknown=unknown,
        notes=(*reference.notes, *notes),
    )


QueryFn = Callable[..., pl.DataFrame]
"""Runs a named query: ``query(name, **params)``."""
CoverageFn = Callable[[Sequence[str], str, Filters], pl.DataFrame]
"""Counts coverage: ``count(dims, unit, filters)``."""


def plan_inputs(
    query: QueryFn, count: CoverageFn, reference: ResolvedReference, unit: str
) -> dict[str, Any]:
    """The frames :func:`build_plan` needs, read with the named queries.

    The CLI passes plain query functions over its connection, the page its cached ones, so both
    read the same queries with the same parameters.
    """
    dims = list(reference.dims)
    filters = reference.filters
    return {
        "counts": count(dims, unit, filters),
        "contributions": count(["institution", *dims], unit, filters),
        "accrual": query("accrual_by_institution", dims=dims, unit=unit, **filters.params()),
        "registry": partners_in_scope(query("partner_registry"), filters),
        "last_date": _last_date(query("filter_options"), filters),
    }


def _last_date(options: pl.DataFrame, filters: Filters) -> dt.date | None:
    last = options["last_date"][0]
    if last is not None and filters.date_to is not None:
        last = min(last, filters.date_to)
    return last


def plan_collection(
    con: duckdb.DuckDBPyConnection,
    dims: Sequence[str],
    budget: int,
    spec: str = "population",
    *,
    unit: str = "patients",
    filters: Filters = NO_FILTERS,
    capacity: pl.DataFrame | None = None,
    notes: Sequence[str] = (),
) -> PlanOutcome:
    """Read the index and plan: what `python -m dashboard plan` prints."""
    reference = resolve_reference(spec, dims, filters)
    return build_plan(
        reference=reference,
        budget=budget,
        capacity=capacity,
        notes=notes,
        **plan_inputs(
            lambda name, **params: read_query(con, name, **params),
            lambda dims, unit, filters: coverage(con, list(dims), unit, filters),
            reference,
            unit,
        ),
    )


# --------------------------------------------------------------------------- plan tables


FORECAST_HORIZON_MONTHS = 120


def when_label(month: str | None, as_of: dt.date | None) -> str:
    """A forecast month for people: "2027-09", "after 2036-11" (beyond ten years) or never."""
    if month is None or as_of is None:
        return "not at current accrual"
    horizon = _shift_month(as_of, FORECAST_HORIZON_MONTHS)
    return f"after {horizon:%Y-%m}" if month > f"{horizon:%Y-%m}" else month


def _rate(value: float | None) -> str:
    return format_indian(value, 1) if value else "0"


def plan_cells_display(outcome: PlanOutcome, unit: str = "patients") -> pl.DataFrame:
    """Cells given new collection, largest first, labelled and formatted."""
    cells = outcome.cells.filter(pl.col("allocated") > 0).sort(
        "allocated", descending=True, maintain_order=True
    )
    noun = unit.capitalize()
    values = {
        f"{noun} now": [format_indian(v) for v in cells["n"]],
        "Reference share": [format_percent(v, 2) for v in cells["ref_share"]],
        "New (this plan)": [format_indian(v) for v in cells["allocated"]],
        "Target": [format_indian(v) for v in cells["target"]],
        "Proportional plan": [format_indian(v) for v in cells["proportional"]],
        "Accrual per month now": [_rate(v) for v in cells["monthly_rate"]],
        "Target reached": [when_label(m, outcome.as_of) for m in cells["forecast_month"]],
        "Partners": [format_indian(v) for v in cells["partners"]],
    }
    return pl.concat(
        [
            value_labels(cells, outcome.dims),
            pl.DataFrame(values, schema={k: pl.String for k in values}),
        ],
        how="horizontal",
    )


def plan_partner_totals(outcome: PlanOutcome) -> pl.DataFrame:
    """institution, institution_name, allocated, cells, last_delivery_month, cells_no_accrual."""
    return (
        outcome.partners.group_by("institution", "institution_name")
        .agg(
            pl.col("allocated").sum(),
            pl.len().alias("cells"),
            pl.col("delivery_month").max().alias("last_delivery_month"),
            pl.col("delivery_month").null_count().alias("cells_no_accrual"),
        )
        .with_columns(
            institution_name=pl.when(pl.col("institution").is_null())
            .then(pl.lit("Unassigned: no partner reaches these cells"))
            .otherwise(pl.col("institution_name"))
        )
        .sort(["allocated", "institution"], descending=[True, False], nulls_last=True)
    )


def plan_partners_display(outcome: PlanOutcome) -> pl.DataFrame:
    """Per-partner totals, formatted."""
    totals = plan_partner_totals(outcome)
    values = {
        "Partner": [
            f"{name} ({inst})" if inst else name
            for inst, name in totals.select("institution", "institution_name").iter_rows()
        ],
        "New (this plan)": [format_indian(v) for v in totals["allocated"]],
        "Cells": [format_indian(v) for v in totals["cells"]],
        "Delivered by (where accruing now)": [
            MISSING if last is None else when_label(last, outcome.as_of)
            for last in totals["last_delivery_month"]
        ],
        "Cells with no accrual now": [
            MISSING if inst is None else format_indian(never)
            for inst, never in totals.select("institution", "cells_no_accrual").iter_rows()
        ],
    }
    return pl.DataFrame(values, schema={k: pl.String for k in values})


def plan_exports(outcome: PlanOutcome) -> dict[str, pl.DataFrame]:
    """The tables leaving the product: cells, per partner (cell × partner) and the summary."""
    dims = list(outcome.dims)

    def labelled(frame: pl.DataFrame) -> pl.DataFrame:
        labels = value_labels(frame, dims).rename({DIM_TITLES[d]: f"{d}_label" for d in dims})
        return pl.concat([frame.select(dims), labels, frame.drop(dims)], how="horizontal")

    summary = pl.DataFrame(
        {
            "item": list(outcome.summary()),
            "value": ["" if v is None else str(v) for v in outcome.summary().values()],
        }
    )
    if outcome.notes:
        summary = pl.concat(
            [
                summary,
                pl.DataFrame({"item": ["note"] * len(outcome.notes), "value": list(outcome.notes)}),
            ]
        )
    return {
        "cells": labelled(outcome.cells),
        "per-partner": labelled(outcome.partners),
        "summary": summary,
    }
