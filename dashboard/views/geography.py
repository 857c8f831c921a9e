"""Geography: coverage by state/UT on a map of India and a sorted bar chart beside it.

The metric picker switches between the count, the count per 100,000 population, the
representation ratio against the population share and, for a condition, the count per 1,000
estimated cases. Clicking a state (on the map or its bar) sets the shared State/UT filter, so
every page, and the URL, then shows that state only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl
import streamlit as st

from dashboard import charts, geo, privacy, rates
from dashboard.baselines import ReferenceUnavailableError, burden
from dashboard.config import load_settings
from dashboard.export import to_csv_bytes
from dashboard.filters import Filters
from dashboard.formatting import format_indian, format_number, format_percent, format_ratio
from dashboard.reference import load_reference
from dashboard.views.common import (
    UNIT_NOUNS,
    PageContext,
    Shown,
    about,
    describe_filters,
    download_csv,
    footer,
    shown_coverage,
    small_cell_k,
    start_page,
)
from dashboard.views.widgets import (
    clickable_state_spec,
    condition_label,
    condition_picker,
    explain_grey,
    natural_size,
    show_no_studies,
    source_picker,
    state_filter_note,
)

METRICS: dict[str, str] = {
    "count": "Count",
    "per_100k": "Per 100,000 population",
    "ratio": "Ratio vs population share",
    "per_cases": "Per 1,000 estimated cases",
}
METRIC_KEY = "geo_metric"
SOURCE_KEY = "geo_population"
CONDITION_KEY = "geo_condition"
MAP_KEY = "geo_map"
BARS_KEY = "geo_bars"


# --------------------------------------------------------------------------------------------
# The page


@dataclass(frozen=True)
class StateTable:
    """The table behind the map (one row per state, full counts: draw it only through
    :meth:`shown`), its population/burden notes and the viewer's suppression patterns."""

    table: pl.DataFrame
    notes: dict[str, str]
    population_error: str | None
    by_state: Shown
    by_condition: Shown | None
    condition: str | None

    @property
    def unknown(self) -> int:
        """Counted with an unknown state of residence."""
        return int(self.by_state.counts.filter(pl.col("state").is_null())["n"].sum())

    def shown(self, *, export: bool = False) -> pl.DataFrame:
        """The table with what the viewer may not see nulled and labelled "< k"/"withheld"
        (the download pattern with ``export``); keyed by ``iso_code``."""
        table = self.by_state.hide(self.table, _STATE_CELL, _STATE_TOTALS, export=export).rename(
            {privacy.SUPPRESSED: "_hidden", privacy.SUPPRESSION: "reason"}
        )
        if self.by_condition is not None:
            table = (
                self.by_condition.hide(
                    table.with_columns(condition=pl.lit(self.condition)),
                    _CONDITION_CELL,
                    _CONDITION_TOTALS,
                    export=export,
                )
                .drop("condition", privacy.SUPPRESSED)
                .rename({privacy.SUPPRESSION: "condition_reason"})
            )
        return table.drop("_hidden").rename({"state": "iso_code"})


_STATE_CELL = ("n", "per_100k", "share", "ratio", "ratio_low", "ratio_high", "flag")
_STATE_TOTALS = ("share", "ratio", "ratio_low", "ratio_high", "flag")
_CONDITION_CELL = (
    "condition_n",
    "per_1000_cases",
    "condition_share",
    "burden_ratio",
)
_CONDITION_TOTALS = ("condition_share", "burden_ratio")


def _state_table(
    context: PageContext, metric: str, source: str, condition: str | None
) -> StateTable:
    """The table behind the map, the population/burden notes and the value to draw."""
    filters = context.filters
    settings = load_settings()
    by_state = shown_coverage(context, ("state",))
    counts = by_state.counts
    names = load_reference().state_names
    table = counts.filter(pl.col("state").is_not_null()).select("state", "n", "share")
    notes: dict[str, str] = {}
    population_error = None
    try:
        pop = rates.population_in_filter(["state"], filters, source=source)
        by_pop = rates.state_rates(
            counts, pop.frame, per=rates.PER_POPULATION, tau=settings.tau, n_min=settings.n_min
        )
        table = by_pop.select(
            "state",
            "n",
            population="reference",
            per_100k="rate",
            share="share",
            population_share="ref_share",
            ratio="rr",
            ratio_low="rr_low",
            ratio_high="rr_high",
            flag="flag",
        )
        notes["population"] = pop.description
    except ReferenceUnavailableError as error:
        population_error = str(error)
    by_condition = None
    if metric == "per_cases" and condition:
        cases = burden(condition)
        reference = cases.frame
        if filters.states:
            reference = reference.filter(pl.col("state").is_in(filters.states))
        by_condition = shown_coverage(context, ("state", "condition"))
        of_condition = by_condition.counts.filter(pl.col("condition") == condition)
        by_cases = rates.state_rates(
            of_condition.select("state", "n"),
            reference,
            per=rates.PER_CASES,
            tau=settings.tau,
            n_min=settings.n_min,
        ).select(
            "state",
            condition_n="n",
            cases="reference",
            per_1000_cases="rate",
            condition_share="share",
            burden_share="ref_share",
            burden_ratio="rr",
        )
        table = table.join(by_cases, on="state", how="full", coalesce=True)
        notes["burden"] = cases.description
    table = table.with_columns(name=pl.col("state").replace_strict(names, default=pl.col("state")))
    return StateTable(table, notes, population_error, by_state, by_condition, condition)


def _labelled(table: pl.DataFrame, k: int) -> pl.DataFrame:
    """Pre-formatted tooltip columns (Indian grouping, percentages); a hidden count and what
    derives from it read "< k" or "withheld", never 0."""
    columns = {
        "n_label": ("n", format_indian, "reason"),
        "population_label": ("population", format_indian, None),
        "per_100k_label": ("per_100k", lambda v: format_number(v, 2), "reason"),
        "share_label": ("share", format_percent, "reason"),
        "population_share_label": ("population_share", format_percent, None),
        "ratio_label": ("ratio", format_ratio, "reason"),
        "cases_label": ("cases", format_indian, None),
        "condition_n_label": ("condition_n", format_indian, "condition_reason"),
        "per_1000_cases_label": (
            "per_1000_cases",
            lambda v: format_number(v, 2),
            "condition_reason",
        ),
    }

    counts = {"n_label", "condition_n_label"}

    def text(label: str, value: Any, reason: str | None, fmt: Any) -> str:
        if reason is None:
            return fmt(value)
        return privacy.label(reason, k) if label in counts else privacy.WITHHELD_LABEL

    return table.with_columns(
        pl.Series(
            label,
            [
                text(label, v, r, fmt)
                for v, r in zip(
                    table[col].to_list(),
                    table[why].to_list() if why in table.columns else [None] * table.height,
                    strict=True,
                )
            ],
            dtype=pl.String,
        )
        for label, (col, fmt, why) in columns.items()
        if col in table.columns
    )


def _metric_spec(metric: str, unit: str, condition: str | None) -> dict[str, Any]:
    unit_title = unit.capitalize()
    if metric == "per_100k":
        return {
            "value_col": "per_100k",
            "value_title": f"{unit_title} per 100,000 population",
            "tooltip": {"n_label": unit_title, "population_label": "Population"},
        }
    if metric == "ratio":
        return {
            "value_col": "ratio",
            "value_title": "Representation ratio (share ÷ population share)",
            "diverging": True,
            "tooltip": {
                "n_label": unit_title,
                "share_label": f"Share of {unit}",
                "population_share_label": "Share of population",
            },
        }
    if metric == "per_cases":
        what = condition_label(condition or "")
        return {
            "value_col": "per_1000_cases",
            "value_title": f"{unit_title} with {what.lower()} per 1,000 cases",
            "tooltip": {"condition_n_label": f"{unit_title} with {what}", "cases_label": "Cases"},
        }
    return {
        "value_col": "n",
        "value_title": unit_title,
        "tooltip": {"share_label": f"Share of {unit}", "per_100k_label": "Per 100,000"},
    }


def _overall(data: StateTable, shown: pl.DataFrame, metric: str) -> tuple[str, str] | None:
    """The rate over all states shown (Σ count ÷ Σ denominator), for the headline; withheld
    when the viewer may not see the total it rests on."""
    table = data.table
    if metric == "per_100k":
        known = table.filter(pl.col("population").is_not_null())
        value = rates.rate(
            known["n"].fill_null(0).sum(), known["population"].sum(), rates.PER_POPULATION
        )
        hidden = data.by_state.totals_withheld
        return "per 100,000", privacy.WITHHELD_LABEL if hidden else format_number(value, 2)
    if metric == "per_cases":
        known = table.filter(pl.col("cases").is_not_null())
        value = rates.rate(
            known["condition_n"].fill_null(0).sum(), known["cases"].sum(), rates.PER_CASES
        )
        # Σ over the known states is not a published total of state × condition: with any
        # cell of the condition hidden it would reveal the hidden ones.
        hidden = data.by_condition is not None and (
            data.by_condition.totals_withheld or shown["condition_reason"].is_not_null().any()
        )
        return "per 1,000 cases", privacy.WITHHELD_LABEL if hidden else format_number(value, 2)
    return None


def _headline(
    data: StateTable, table: pl.DataFrame, metric: str, spec: dict[str, Any], unit: str
) -> None:
    value_col = spec["value_col"]
    known = table.filter(pl.col(value_col).is_not_null() & (pl.col("n").fill_null(0) > 0))
    with_data = data.table.filter(pl.col("n").fill_null(0) > 0).height
    cards = iter(st.columns(4))
    next(cards).metric(
        f"{unit.capitalize()} with a known state",
        data.by_state.total(data.table["n"].fill_null(0).sum()),
    )
    next(cards).metric(
        "States/UTs with data", f"{with_data} of {len(load_reference().state_names)}"
    )
    overall = _overall(data, table, metric)
    if overall is not None:
        label, value = overall
        next(cards).metric(
            f"All states shown, {label}",
            value,
            help="Total count ÷ total denominator of the states/UTs shown.",
        )
    fmt = format_ratio if spec.get("diverging") else format_number
    if known.height > 1:
        low = known.sort([value_col, "name"]).row(0, named=True)
        next(cards).metric(
            "Lowest (with data)",
            low["name"],
            f"{fmt(low[value_col])} {_short(spec, unit)}",
            delta_color="off",
            delta_arrow="off",
        )
    if data.unknown:
        st.caption(
            f"{data.by_state.total(data.unknown, unknown=True)} {unit} with an unknown state "
            "are not on the map."
        )


_LABELS = {
    "n": "n_label",
    "per_100k": "per_100k_label",
    "ratio": "ratio_label",
    "per_1000_cases": "per_1000_cases_label",
}


def _short(spec: dict[str, Any], unit: str) -> str:
    return {
        "n": unit,
        "per_100k": "per 100,000",
        "ratio": "× parity",
        "per_1000_cases": "per 1,000 cases",
    }[spec["value_col"]]


def _download_table(data: StateTable, unit: str) -> pl.DataFrame:
    """The CSV: the export pattern applied (counts "< k"/"withheld", derived values empty)."""
    table = data.shown(export=True)
    for column, reason in (("n", "reason"), ("condition_n", "condition_reason")):
        if column in table.columns:
            table = table.with_columns(
                pl.when(pl.col(reason).is_not_null())
                .then(
                    pl.col(reason).replace_strict(
                        {privacy.SMALL: f"< {data.by_state.k}"},
                        default=privacy.WITHHELD_LABEL,
                        return_dtype=pl.String,
                    )
                )
                .otherwise(pl.col(column).cast(pl.String))
                .alias(column)
            )
    wanted = {
        "name": "state_ut",
        "iso_code": "iso_code",
        "n": unit,
        "share": f"share_of_{unit}",
        "population": "population",
        "population_share": "population_share",
        "per_100k": f"{unit}_per_100000",
        "ratio": "representation_ratio",
        "ratio_low": "ratio_ci_low",
        "ratio_high": "ratio_ci_high",
        "flag": "flag",
        "condition_n": f"{unit}_with_condition",
        "cases": "estimated_cases",
        "per_1000_cases": f"{unit}_per_1000_cases",
        "burden_share": "burden_share",
        "burden_ratio": "ratio_vs_burden_share",
    }
    present = [c for c in wanted if c in table.columns]
    return table.sort("name").select(pl.col(c).alias(wanted[c]) for c in present)


def _about(metric: str, unit: str, notes: dict[str, str], unknown: str, filters: Filters) -> None:
    counted = f"{UNIT_NOUNS[unit]} by state/UT of residence, {describe_filters(filters)}."
    reference = {
        "count": None,
        "per_100k": f"{notes.get('population', '')}: count ÷ population × 100,000.",
        "ratio": f"{notes.get('population', '')}: the state's share of the data ÷ its share "
        "of the population; 1 = parity. Orange below parity, blue above; 95% Wilson intervals "
        "are in the CSV.",
        "per_cases": f"{notes.get('burden', '')}: {unit} with the condition ÷ cases × 1,000 "
        "(burden figures are not narrowed by sex/age filters).",
    }[metric]
    left_out = f"{unknown} {unit} with an unknown state of residence."
    about(counted, reference, left_out)


def _draw(context: PageContext) -> None:
    filters, unit = context.filters, context.unit
    controls = st.columns([3, 2, 2])
    with controls[0]:
        metric = st.radio(
            "Show",
            list(METRICS),
            format_func=METRICS.get,
            key=METRIC_KEY,
            horizontal=True,
        )
    source = load_settings().population_reference
    condition = None
    with controls[1]:
        if metric in ("per_100k", "ratio", "count"):
            source = source_picker(SOURCE_KEY)
    with controls[2]:
        if metric == "per_cases":
            condition = condition_picker(CONDITION_KEY)
    state_filter_note(filters, "geo_show_all")
    requested = metric
    data, metric, spec, table = _prepared(context, requested, source, condition)
    if metric != requested:
        st.info(f"{data.population_error}. Showing counts instead.", icon=":material/info:")
    _headline(data, table, metric, spec, unit)
    if data.table["n"].fill_null(0).sum() == 0:
        st.info(f"None of the {unit} selected has a known state of residence.")
        return
    map_spec, bars_spec, csv = _chart_specs(context, small_cell_k(), requested, source, condition)
    map_col, bars_col = st.columns([6, 5])
    with map_col:
        clickable_state_spec(map_spec, MAP_KEY)
    with bars_col:
        clickable_state_spec(bars_spec, BARS_KEY)
    _about(metric, unit, data.notes, data.by_state.total(data.unknown, unknown=True), filters)
    download_csv(csv, f"coverage_by_state_{metric}.csv", protected=True)


def _prepared(
    context: PageContext, requested: str, source: str, condition: str | None
) -> tuple[StateTable, str, dict[str, Any], pl.DataFrame]:
    """The state table, the metric drawn (counts when the population is unavailable), its
    spec and the labelled table the charts draw."""
    data = _state_table(context, requested, source, condition)
    metric = requested
    if data.population_error and metric in ("per_100k", "ratio"):
        metric = "count"
    spec = _metric_spec(metric, context.unit, condition)
    table = _labelled(data.shown(), data.by_state.k)
    spec["tooltip"] = {c: t for c, t in spec["tooltip"].items() if c in table.columns}
    return data, metric, spec, table


@st.cache_data(max_entries=256, show_spinner=False)
def _chart_specs(
    context: PageContext, k: int, requested: str, source: str, condition: str | None
) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """The map's and the bars' specs and the CSV, as the context's role may see them."""
    del k  # part of the cache key only (as the role, in the context)
    filters, unit = context.filters, context.unit
    data, metric, spec, table = _prepared(context, requested, source, condition)
    scale = "sqrt" if metric in ("count", "per_100k", "per_cases") else "linear"
    common = {
        "value_col": spec["value_col"],
        "label_col": _LABELS[spec["value_col"]],
        "value_title": spec["value_title"],
        "diverging": spec.get("diverging", False),
        "tooltip": spec["tooltip"],
        "sequential_scale": scale,
    }
    hidden = table.filter(pl.col(spec["value_col"]).is_null() & pl.col("reason").is_not_null())
    map_spec = natural_size(
        explain_grey(
            charts.choropleth(
                table,
                **common,
                title=f"{spec['value_title']} by state/UT",
                subtitle="Click a state to show only it on every page.",
                boundaries=geo.BOUNDARIES_URL,  # served from static/, not sent on every run
            ),
            hidden.height,
            data.by_state.k,
        )
    )
    bars_spec = natural_size(
        charts.state_bars(
            table,
            **common,
            title="Selected states/UTs"
            if filters.states
            else "Sorted (small UTs included; click a bar)",
            include_missing=not filters.states,
            row_height=17,
            width=240,
        )
    )
    return map_spec, bars_spec, to_csv_bytes(_download_table(data, unit))


def render() -> None:
    """Draw the Geography page."""
    started = start_page("Geography")
    if started is None:
        return
    context, totals = started
    if totals["studies"][0] == 0:
        state_filter_note(context.filters, "geo_show_all")
        show_no_studies(context.filters)
    else:
        _draw(context)
    footer()
