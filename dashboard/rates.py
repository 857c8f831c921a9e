"""Rates behind the coverage pages: per 100,000 population, per 1,000 cases, representation
ratio against a population or burden share, sex ratio, and scanner-make diversity.

Pure functions over polars frames: no Streamlit, no SQL. Divisions are done in numpy (polars
2.1 divides floats through the reciprocal, so 49/49 would come out as 0.9999…), and a rate
whose denominator is 0 or missing is null, never infinite.

Population denominators follow the shared filters where the census tables allow it (see
:func:`population_in_filter`): "per 100,000" of women when the data is filtered to women, of
ages 60–120 when filtered to those ages. Filters the population has no figures for (modality,
institution, facility, condition, dates) leave the denominator at the whole population.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from dashboard.baselines import Baseline, ReferenceUnavailableError, population
from dashboard.contract import AGE_BANDS
from dashboard.coverage import known_mask
from dashboard.filters import Filters
from dashboard.metrics import jsd_over_time, representation_table

PER_POPULATION = 100_000
PER_CASES = 1_000
PER_MALES = 1_000
# The census's open band "80+": ages are taken as spread over 80–99 when a filter cuts it.
OPEN_BAND_LAST_AGE = 99
POPULATION_SEXES = ("M", "F")
POPULATION_AREAS = ("urban", "rural")


def _divide(numerator: np.ndarray, denominator: np.ndarray, per: float) -> np.ndarray:
    """numerator / denominator × per, NaN where the denominator is 0, negative or missing."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den * per
    return np.where(np.isfinite(den) & (den > 0), out, np.nan)


def rate(n: float | None, denominator: float | None, per: float) -> float | None:
    """n per ``per`` of the denominator (e.g. per 100,000 people); None without a denominator."""
    if n is None or denominator is None:
        return None
    value = float(_divide(np.array([n]), np.array([denominator]), per)[0])
    return None if math.isnan(value) else value


def _float_series(name: str, values: np.ndarray) -> pl.Series:
    return pl.Series(name, values, dtype=pl.Float64, nan_to_null=True)


# --------------------------------------------------------------------------- by state


def state_rates(
    counts: pl.DataFrame,
    reference: pl.DataFrame,
    *,
    per: float,
    tau: float = 0.8,
    n_min: int = 50,
) -> pl.DataFrame:
    """Per-state rate and representation ratio against a reference (population or cases).

    ``counts`` has ``state`` and ``n`` (rows with an unknown state are left out here: the caller
    reports them); ``reference`` has ``state`` and ``ref_weight``. One row per reference state
    (n = 0 when unseen), then observed states the reference lacks. Columns: state, n,
    reference, rate (n / reference × per), share, ref_share, rr, rr_low, rr_high, flag
    (metrics.representation_table: shares over the states listed, Wilson intervals).
    """
    known = counts.filter(pl.col("state").is_not_null()).select("state", "n")
    table = representation_table(known, reference, ["state"], tau=tau, n_min=n_min)
    weights = reference.group_by("state").agg(reference=pl.col("ref_weight").sum())
    table = table.join(weights, on="state", how="left", maintain_order="left")
    values = _divide(table["n"].to_numpy(), table["reference"].fill_null(np.nan).to_numpy(), per)
    return table.select(
        "state",
        "n",
        pl.col("reference").cast(pl.Float64),
        _float_series("rate", values),
        "share",
        "ref_share",
        "rr",
        "rr_low",
        "rr_high",
        "flag",
    )


# --------------------------------------------------------------------------- sex ratio


def sex_ratio(females: float, males: float) -> float | None:
    """Females per 1,000 males; None when there are no males."""
    return rate(females, males, PER_MALES)


def _females_males(frame: pl.DataFrame, value: str, by: Sequence[str]) -> pl.DataFrame:
    wide = (
        frame.filter(pl.col("sex").is_in(POPULATION_SEXES))
        .group_by(list(by))
        .agg(
            females=pl.col(value).filter(pl.col("sex") == "F").sum(),
            males=pl.col(value).filter(pl.col("sex") == "M").sum(),
        )
    )
    return wide.with_columns(pl.col("females", "males").cast(pl.Float64))


def sex_ratio_by_state(counts: pl.DataFrame, population_by_sex: pl.DataFrame) -> pl.DataFrame:
    """Females per 1,000 males in the data and in the population, per state.

    ``counts``: state, sex, n (unknown state or sex O/U rows are ignored). ``population_by_sex``:
    state, sex, ref_weight. One row per state of the population frame, sorted by state:
    state, females, males, sex_ratio, reference_sex_ratio, relative (data ÷ population;
    1 = the same balance as the population, < 1 = women under-represented).
    """
    data = _females_males(counts.filter(pl.col("state").is_not_null()), "n", ["state"])
    ref = _females_males(population_by_sex, "ref_weight", ["state"]).rename(
        {"females": "ref_females", "males": "ref_males"}
    )
    table = (
        ref.join(data, on="state", how="left")
        .with_columns(pl.col("females", "males").fill_null(0.0))
        .sort("state")
    )
    ours = _divide(table["females"].to_numpy(), table["males"].to_numpy(), PER_MALES)
    theirs = _divide(table["ref_females"].to_numpy(), table["ref_males"].to_numpy(), PER_MALES)
    return table.select(
        "state",
        pl.col("females").cast(pl.Int64),
        pl.col("males").cast(pl.Int64),
        _float_series("sex_ratio", ours),
        _float_series("reference_sex_ratio", theirs),
        _float_series("relative", _divide(ours, theirs, 1.0)),
    )


# --------------------------------------------------------------------------- population


def age_band_years(band: str) -> tuple[int, int]:
    """First and last whole year of a census age band: '5-9' → (5, 9), '80+' → (80, 99)."""
    if band.endswith("+"):
        return int(band[:-1]), OPEN_BAND_LAST_AGE
    low, high = band.split("-")
    return int(low), int(high)


def age_band_fraction(band: str, age_min: float | None, age_max: float | None) -> float:
    """Share of a band's whole years inside [age_min, age_max] (ages spread evenly in a band)."""
    low, high = age_band_years(band)
    first = low if age_min is None else max(low, math.ceil(age_min))
    last = high if age_max is None else min(high, math.floor(age_max))
    return max(0, last - first + 1) / (high - low + 1)


@dataclass(frozen=True)
class _Narrowing:
    sexes: tuple[str, ...]
    areas: tuple[str, ...]
    age: bool


def _narrowing(filters: Filters) -> _Narrowing:
    return _Narrowing(
        sexes=tuple(s for s in POPULATION_SEXES if s in filters.sexes) if filters.sexes else (),
        areas=tuple(a for a in POPULATION_AREAS if a in filters.area_types)
        if filters.area_types
        else (),
        age=filters.age_min is not None or filters.age_max is not None,
    )


def population_in_filter(
    dims: Sequence[str], filters: Filters, *, source: str = "proj2026"
) -> Baseline:
    """Population by ``dims`` narrowed to the filters' states, sexes, ages and urban/rural.

    Sexes other than M/F and the "unknown" area have no population figures: a filter on only
    those raises ReferenceUnavailableError. A filtered age range keeps the share of each census
    band's whole years it covers. The census tables do not cross urban/rural with sex or age:
    when both are filtered, the urban/rural filter is left out of the denominator and the
    description says so. Filters on anything else do not change the population.
    """
    dims = list(dims)
    narrow = _narrowing(filters)
    use_sex, use_age, use_area = bool(filters.sexes), narrow.age, bool(filters.area_types)
    notes = []
    # No table crosses urban/rural with sex or age: keep the narrowing the dims allow.
    if "area_type" in dims and (use_sex or use_age):
        use_sex = use_age = False
        notes.append("not narrowed to the sex/age filters (no table crosses them with urban/rural)")
    if use_area and ({"sex", "age_band"} & set(dims) or use_sex or use_age):
        use_area = False
        notes.append("not narrowed to urban/rural (no table crosses it with sex or age)")
    if use_sex and not narrow.sexes:
        raise ReferenceUnavailableError(
            "the population tables count males and females only: no population for the "
            f"chosen sex ({', '.join(filters.sexes)})"
        )
    if use_area and not narrow.areas:
        raise ReferenceUnavailableError("no population figures for an unknown urban/rural area")
    extra = [
        d
        for d, use in (("sex", use_sex), ("age_band", use_age), ("area_type", use_area))
        if use and d not in dims
    ]
    base = population([*dims, *extra], source=source, states=filters.states or None)
    frame = base.frame
    if use_sex:
        frame = frame.filter(pl.col("sex").is_in(narrow.sexes))
        notes.insert(0, "sex " + "/".join(narrow.sexes))
    if use_age:
        fractions = {b: age_band_fraction(b, filters.age_min, filters.age_max) for b in AGE_BANDS}
        frame = frame.with_columns(
            ref_weight=pl.col("ref_weight")
            * pl.col("age_band").replace_strict(fractions, return_dtype=pl.Float64)
        ).filter(pl.col("ref_weight") > 0)
        notes.insert(0, f"ages {_age_words(filters)}")
    if use_area:
        frame = frame.filter(pl.col("area_type").is_in(narrow.areas))
        notes.insert(0, "/".join(narrow.areas))
    if frame.height == 0:
        raise ReferenceUnavailableError("no population figures match the filters")
    frame = frame.group_by(dims).agg(pl.col("ref_weight").sum()).sort(dims)
    description = base.description + (f"; {', '.join(notes)}" if notes else "")
    return Baseline(frame, description)


def _age_words(filters: Filters) -> str:
    low = "0" if filters.age_min is None else f"{filters.age_min:g}"
    high = "120" if filters.age_max is None else f"{filters.age_max:g}"
    return f"{low}–{high} (census bands pro rata)"


# --------------------------------------------------------------------------- scanners

# Makes that header text spells many ways (company renames, joint ventures, legacy names).
# First match wins; any other make keeps its own name, trimmed.
MAKE_FAMILIES: tuple[tuple[str, str], ...] = (
    (r"\bGE\b|GENERAL ELECTRIC", "GE HealthCare"),
    (r"SIEMENS", "Siemens Healthineers"),
    (r"PHILIPS", "Philips"),
    (r"TOSHIBA|CANON", "Canon"),
    (r"FUJI", "Fujifilm"),
    (r"HOLOGIC", "Hologic"),
    (r"ZEISS", "Carl Zeiss"),
    (r"SAMSUNG", "Samsung"),
    (r"OLYMPUS", "Olympus"),
    (r"PENTAX|HOYA", "Pentax Medical"),
    (r"AGFA", "Agfa"),
    (r"TOPCON", "Topcon"),
)
OTHER_MAKES = "Other makes"
_MAKE_PATTERNS = tuple((re.compile(p, re.IGNORECASE), name) for p, name in MAKE_FAMILIES)


def make_family(manufacturer: str | None) -> str | None:
    """The make behind a header's manufacturer text: 'SIEMENS' → 'Siemens Healthineers',
    'TOSHIBA_MEC' → 'Canon', 'Wipro GE Healthcare' → 'GE HealthCare'; blank → None."""
    if manufacturer is None or not manufacturer.strip():
        return None
    text = manufacturer.replace("_", " ").strip()
    for pattern, name in _MAKE_PATTERNS:
        if pattern.search(text):
            return name
    return " ".join(manufacturer.split())


def make_shares(counts: pl.DataFrame, *, max_makes: int | None = None) -> pl.DataFrame:
    """Each make's share of its modality's known-make count.

    ``counts``: modality, manufacturer (header text, null = unknown), n. Spellings of one make
    are summed (a patient scanned on two spellings of one make counts twice when n counts
    patients). With ``max_makes``, the makes beyond the ``max_makes - 1`` largest overall are
    lumped into :data:`OTHER_MAKES` per modality. Returns modality, make, n, share, spellings
    (the header texts seen), sorted by modality then descending n.
    """
    known = counts.filter(pl.col("manufacturer").is_not_null())
    # A dict over the distinct spellings, not map_elements: a Python callback on polars' thread
    # pool can deadlock a server whose sessions use polars at once (pola-rs/polars#10970).
    families = {text: make_family(text) for text in known["manufacturer"].unique().to_list()}
    known = known.with_columns(
        make=pl.col("manufacturer").replace_strict(families, return_dtype=pl.String)
    )
    known = known.filter(pl.col("make").is_not_null())
    if max_makes is not None:
        ranked = (
            known.group_by("make")
            .agg(pl.col("n").sum())
            .sort(["n", "make"], descending=[True, False])["make"]
        )
        if ranked.len() > max_makes:
            keep = ranked.head(max(max_makes - 1, 0)).to_list()
            known = known.with_columns(
                make=pl.when(pl.col("make").is_in(keep))
                .then(pl.col("make"))
                .otherwise(pl.lit(OTHER_MAKES))
            )
    per_make = known.group_by("modality", "make").agg(
        pl.col("n").sum(),
        spellings=pl.col("manufacturer").unique().sort().str.join("; "),
    )
    totals = per_make.group_by("modality").agg(total=pl.col("n").sum())
    joined = per_make.join(totals, on="modality")
    share = _divide(joined["n"].to_numpy(), joined["total"].to_numpy(), 1.0)
    return (
        joined.with_columns(_float_series("share", share))
        .select("modality", "make", "n", "share", "spellings")
        .sort(["modality", "n", "make"], descending=[False, True, False])
    )


def scanner_diversity(counts: pl.DataFrame) -> pl.DataFrame:
    """Per modality: n, unknown make, number of makes, the top make and its share.

    ``counts`` as for :func:`make_shares`. Columns: modality, n (all), unknown (no make in the
    header), makes (distinct makes), top_make, top_share (of the known-make count). Sorted by
    descending n.
    """
    shares = make_shares(counts)
    top = shares.group_by("modality", maintain_order=True).first()
    unknown_make = pl.col("manufacturer").is_null() | (
        pl.col("manufacturer").str.strip_chars() == ""
    )
    summary = counts.group_by("modality").agg(
        n=pl.col("n").sum(),
        unknown=pl.col("n").filter(unknown_make).sum(),
    )
    makes = shares.group_by("modality").agg(makes=pl.len().cast(pl.Int64))
    return (
        summary.join(makes, on="modality", how="left")
        .join(top.select("modality", top_make="make", top_share="share"), on="modality", how="left")
        .with_columns(pl.col("makes").fill_null(0))
        .select("modality", "n", "unknown", "makes", "top_make", "top_share")
        .sort(["n", "modality"], descending=[True, False])
    )


def model_counts(counts: pl.DataFrame) -> pl.DataFrame:
    """Per modality, the number of distinct scanner models (DICOM ManufacturerModelName).

    ``counts`` has modality, device_model and n (coverage by those two dimensions); models are
    compared after trimming and case-folding, and unknown models are not counted.
    """
    model = pl.col("device_model").str.strip_chars().str.to_lowercase()
    return (
        counts.filter((pl.col("n") > 0) & model.is_not_null() & (model != ""))
        .group_by("modality")
        .agg(models=model.n_unique().cast(pl.Int64))
    )


# --------------------------------------------------------------------------- over time

JSD_DIMENSIONS: tuple[str, ...] = ("state", "sex", "age_band", "area_type")


def jsd_trend(monthly: pl.DataFrame, references: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """JS distance of the cumulative data from the population, per dimension and month end.

    ``monthly``: month ('YYYY-MM'), the dimensions, n (new units that month). ``references``:
    dimension → frame of that dimension and ref_weight. Per dimension, unknown values and
    values the reference has no figure for (sex 'O') are left out (see :func:`left_out`).
    Returns dimension, month, n (cumulative), jsd, representativeness; a dimension with no
    known values has no rows.
    """
    parts = []
    for dim, reference in references.items():
        cells = reference.select(dim).unique()
        per_month = (
            monthly.filter(known_mask([dim]))
            .join(cells, on=dim, how="semi")
            .group_by("month", dim)
            .agg(pl.col("n").sum())
        )
        if per_month.height == 0:
            continue
        trend = jsd_over_time(per_month, reference, [dim])
        parts.append(trend.select(pl.lit(dim).alias("dimension"), pl.all()))
    if not parts:
        return pl.DataFrame(
            schema={
                "dimension": pl.String,
                "month": pl.String,
                "n": pl.Int64,
                "jsd": pl.Float64,
                "representativeness": pl.Float64,
            }
        )
    return pl.concat(parts)


def left_out(monthly: pl.DataFrame, references: Mapping[str, pl.DataFrame]) -> dict[str, int]:
    """Per dimension, the units :func:`jsd_trend` leaves out (unknown or without a reference)."""
    result = {}
    for dim, reference in references.items():
        cells = reference.select(dim).unique()
        kept = monthly.filter(known_mask([dim])).join(cells, on=dim, how="semi")["n"].sum()
        result[dim] = int(monthly["n"].sum() - kept)
    return result


def jsd_change(trend: pl.DataFrame, months: int = 12) -> pl.DataFrame:
    """Per dimension: the latest JS distance and the one ``months`` month ends earlier (or the
    first, when the series is shorter). change < 0 = more representative now.

    Columns: dimension, month, jsd, earlier_month, earlier_jsd, change.
    """
    rows = []
    for dim in trend["dimension"].unique(maintain_order=True).to_list():
        series = trend.filter((pl.col("dimension") == dim) & pl.col("jsd").is_not_null()).sort(
            "month"
        )
        if series.height == 0:
            continue
        last = series.row(-1, named=True)
        earlier = series.row(max(series.height - 1 - months, 0), named=True)
        rows.append(
            {
                "dimension": dim,
                "month": last["month"],
                "jsd": last["jsd"],
                "earlier_month": earlier["month"],
                "earlier_jsd": earlier["jsd"],
                "change": last["jsd"] - earlier["jsd"],
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "dimension": pl.String,
            "month": pl.String,
            "jsd": pl.Float64,
            "earlier_month": pl.String,
            "earlier_jsd": pl.Float64,
            "change": pl.Float64,
        },
    )
