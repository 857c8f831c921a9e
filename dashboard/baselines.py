"""What each cell *should* hold: population, disease-burden and programme-target references.

Every function returns the reference dimensions plus ``ref_weight`` (people, cases or a target
count/share); metrics.representation_table normalises the weights to shares q_i. Only sums,
and where a table lacks a breakdown, documented proportional scaling, are applied to the
sourced figures in data/reference:

- state, sex, state × sex: the census 2011 or MoHFW 2026 columns of state_population.csv.
- age band (and its crosses with state and sex): Census 2011 C-14 by five-year band; for 2026,
  each state's 2011 age structure (per sex) is scaled to its 2026 male and female totals.
- urban/rural (and × state): Census 2011 PCA; for 2026, each state's 2011 urban/rural split is
  scaled to its 2026 total. No table crosses urban/rural with sex or age, so those crosses are
  refused rather than invented.
- disease burden: a condition's cases by state (ICMR-NCRP estimates, TB notifications); for an
  NFHS-5 prevalence, cases = prevalence × the 2011 population aged 15+ of that sex.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from dashboard.reference import ReferenceData, load_reference

POPULATION_SOURCES: dict[str, str] = {
    "proj2026": "MoHFW projection for 1 March 2026",
    "census2011": "Census of India 2011",
}
POPULATION_DIMS = frozenset({"state", "sex", "age_band", "area_type"})
# Preferred burden metrics, best first; within one, the latest year covering every state wins.
BURDEN_METRICS: tuple[str, ...] = (
    "estimated_incident_cases",
    "notified_cases",
    "notified_cases_rs267",
    "prevalence_pct",
)
ADULT_BANDS = ("0-4", "5-9", "10-14")  # left out for NFHS-5 adults 15+


class ReferenceUnavailableError(ValueError):
    """The sources have no figures for this dimension, cross or condition."""


@dataclass(frozen=True)
class Baseline:
    """A reference frame (dims + ref_weight) and a sentence saying where it comes from."""

    frame: pl.DataFrame
    description: str


def _state_filter(frame: pl.DataFrame, states: Sequence[str] | None) -> pl.DataFrame:
    return frame.filter(pl.col("state").is_in(list(states))) if states else frame


def _state_sex(ref: ReferenceData, source: str) -> pl.DataFrame:
    return ref.states.select(state="iso_code", M=f"{source}_male", F=f"{source}_female").unpivot(
        index="state", variable_name="sex", value_name="ref_weight"
    )


def _state_age_sex(ref: ReferenceData, source: str) -> pl.DataFrame:
    census = ref.age_sex.filter(
        (pl.col("iso_code") != "IN") & (pl.col("age_band") != "age_not_stated")
    ).select(
        state="iso_code",
        sex=pl.col("sex").replace_strict({"male": "M", "female": "F"}),
        age_band="age_band",
        ref_weight=pl.col("population").cast(pl.Float64),
    )
    if source == "census2011":
        return census
    totals = _state_sex(ref, source).rename({"ref_weight": "total"})
    return census.join(totals, on=["state", "sex"]).select(
        "state",
        "sex",
        "age_band",
        ref_weight=pl.col("ref_weight")
        / pl.col("ref_weight").sum().over("state", "sex")
        * pl.col("total"),
    )


def _state_area(ref: ReferenceData, source: str) -> pl.DataFrame:
    split = ref.states.select(
        state="iso_code", urban="census2011_urban", rural="census2011_rural"
    ).unpivot(index="state", variable_name="area_type", value_name="ref_weight")
    if source == "census2011":
        return split.with_columns(pl.col("ref_weight").cast(pl.Float64))
    totals = ref.states.select(state="iso_code", total=f"{source}_total")
    return split.join(totals, on="state").select(
        "state",
        "area_type",
        ref_weight=pl.col("ref_weight")
        / pl.col("ref_weight").sum().over("state")
        * pl.col("total"),
    )


def population(
    dims: Sequence[str],
    *,
    source: str = "proj2026",
    states: Sequence[str] | None = None,
    ref: ReferenceData | None = None,
) -> Baseline:
    """Population by ``dims`` (any of state, sex, age_band, area_type) of the chosen states."""
    ref = ref or load_reference()
    if source not in POPULATION_SOURCES:
        raise ReferenceUnavailableError(f"unknown population source {source!r}")
    wanted = set(dims)
    if not wanted or not wanted <= POPULATION_DIMS:
        raise ReferenceUnavailableError(
            f"no population reference by {', '.join(dims) or 'nothing'}; "
            f"population is known by {', '.join(sorted(POPULATION_DIMS))}"
        )
    if "area_type" in wanted and wanted & {"sex", "age_band"}:
        raise ReferenceUnavailableError(
            "the census tables used here do not cross urban/rural with sex or age"
        )
    if wanted == {"state"}:  # the persons column: M + F can differ from it by rounding
        cube = ref.states.select(state="iso_code", ref_weight=f"{source}_total")
    elif "age_band" in wanted:
        cube = _state_age_sex(ref, source)
    elif "area_type" in wanted:
        cube = _state_area(ref, source)
    else:
        cube = _state_sex(ref, source)
    frame = (
        _state_filter(cube, states)
        .group_by(list(dims))
        .agg(pl.col("ref_weight").sum().cast(pl.Float64))
        .sort(list(dims))
    )
    scope = f" of {len(states)} selected state(s)/UT(s)" if states else " of India"
    note = ""
    if source == "proj2026" and wanted & {"age_band", "area_type"}:
        note = " (2011 age and urban/rural structure scaled to the 2026 totals)"
    return Baseline(frame, f"Population{scope}, {POPULATION_SOURCES[source]}{note}")


def _metric_rank(metric: str) -> int:
    base = "prevalence_pct" if metric.startswith("prevalence_pct") else metric
    return BURDEN_METRICS.index(base) if base in BURDEN_METRICS else len(BURDEN_METRICS)


def burden_metric(condition: str, ref: ReferenceData | None = None) -> tuple[str, str]:
    """The (metric, year) used for a condition: preferred metric, latest year with every state."""
    ref = ref or load_reference()
    rows = ref.disease_burden.filter(
        (pl.col("condition") == condition) & (pl.col("iso_code") != "IN")
    )
    if rows.height == 0:
        known = sorted(ref.disease_burden["condition"].unique().to_list())
        raise ReferenceUnavailableError(
            f"no state-wise burden figures for {condition!r}; available: {', '.join(known)}"
        )
    coverage = rows.group_by("metric", "year").agg(states=pl.col("iso_code").n_unique())
    complete = coverage.filter(pl.col("states") == coverage["states"].max())
    ranks = {metric: _metric_rank(metric) for metric in complete["metric"].unique().to_list()}
    best = complete.with_columns(
        rank=pl.col("metric").replace_strict(ranks, return_dtype=pl.Int64)
    ).sort(["rank", "year"], descending=[False, True])
    metric, year = best.row(0)[:2]
    return metric, year


def burden(condition: str, *, ref: ReferenceData | None = None) -> Baseline:
    """Cases of ``condition`` by state from the sourced burden table."""
    ref = ref or load_reference()
    metric, year = burden_metric(condition, ref)
    prevalence = metric.startswith("prevalence_pct")
    rows = ref.disease_burden.filter(
        (pl.col("condition") == condition)
        & (pl.col("year") == year)
        & (pl.col("iso_code") != "IN")
        & (
            pl.col("metric").str.starts_with("prevalence_pct")
            if prevalence
            else pl.col("metric") == metric
        )
    )
    if prevalence:
        adults = (
            ref.age_sex.filter(
                (pl.col("iso_code") != "IN")
                & ~pl.col("age_band").is_in([*ADULT_BANDS, "age_not_stated"])
            )
            .group_by("iso_code", "sex")
            .agg(adults=pl.col("population").sum())
            .with_columns(
                metric_sex=pl.col("sex").replace_strict({"male": "men", "female": "women"})
            )
        )
        frame = (
            rows.with_columns(metric_sex=pl.col("metric").str.extract(r"_(men|women)_"))
            .join(adults, on=["iso_code", "metric_sex"])
            .group_by("iso_code")
            .agg(ref_weight=(pl.col("value") / 100 * pl.col("adults")).sum())
        )
        what = f"{condition} cases estimated from NFHS-5 prevalence ({year}) × adults 15+ (2011)"
    else:
        frame = rows.group_by("iso_code").agg(ref_weight=pl.col("value").sum())
        what = f"{condition}: {metric.replace('_', ' ')}, {year}"
    return Baseline(
        frame.select(state="iso_code", ref_weight=pl.col("ref_weight").cast(pl.Float64)).sort(
            "state"
        ),
        what,
    )


def targets(path: Path, dims: Sequence[str]) -> Baseline:
    """A programme targets CSV: the dimension columns plus ``target`` (share or count)."""
    frame = pl.read_csv(path, infer_schema_length=10_000)
    missing = [c for c in (*dims, "target") if c not in frame.columns]
    if missing:
        raise ReferenceUnavailableError(
            f"{Path(path).name}: targets file needs columns {', '.join([*dims, 'target'])}; "
            f"missing {', '.join(missing)}"
        )
    bad = frame.filter(pl.col("target").cast(pl.Float64, strict=False).fill_null(-1) < 0)
    if bad.height:
        raise ReferenceUnavailableError(
            f"{Path(path).name}: target must be a number ≥ 0 (row {bad.row(0, named=True)})"
        )
    weights = frame.select(
        *(pl.col(d).cast(pl.String) for d in dims), ref_weight=pl.col("target").cast(pl.Float64)
    )
    return Baseline(weights, f"Programme targets from {Path(path).name}")


def parse_reference(
    spec: str, dims: Sequence[str], *, states: Sequence[str] | None = None
) -> Baseline:
    """Resolve a CLI/page reference: population[:census2011], burden:CONDITION, targets:FILE."""
    kind, _, arg = spec.partition(":")
    if kind == "population":
        return population(dims, source=arg or "proj2026", states=states)
    if kind == "burden":
        if list(dims) != ["state"]:
            raise ReferenceUnavailableError("disease burden is known by state only: use --by state")
        return burden(arg)
    if kind == "targets":
        return targets(Path(arg), dims)
    raise ReferenceUnavailableError(
        f"unknown reference {spec!r}; use population, population:census2011, "
        "burden:CONDITION or targets:FILE"
    )
