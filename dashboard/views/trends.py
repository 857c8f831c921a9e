"""Trends: monthly accrual by institution and modality, and whether the data gets more or less
representative of the population as it arrives (JS distance of the cumulative data).
"""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from dashboard import charts, rates
from dashboard.baselines import ReferenceUnavailableError
from dashboard.export import to_csv_bytes
from dashboard.views.common import (
    UNIT_NOUNS,
    PageContext,
    about,
    cached_query,
    describe_filters,
    download_csv,
    footer,
    headline_count,
    sees_in_full,
    shown_table,
    small_cell_k,
    start_page,
)
from dashboard.views.widgets import (
    Section,
    draw_section,
    natural_size,
    show_no_studies,
    show_spec,
    source_picker,
    state_filter_note,
)

SOURCE_KEY = "trends_population"
CUMULATIVE_KEY = "trends_cumulative"
DIMENSION_TITLES = {
    "state": "State/UT",
    "sex": "Sex",
    "age_band": "Age band",
    "area_type": "Urban/rural",
}
ACCRUAL_DIMS = ["institution", "modality"]


def _measure(unit: str) -> tuple[str, str]:
    """The count title and what it means, per unit."""
    if unit == "patients":
        return "New patients", "patients counted once, in the month of their first study"
    if unit == "images":
        return "Images", "images (instances) of the studies done that month"
    return "Studies", "studies done that month"


def _monthly(context: PageContext) -> pl.DataFrame:
    return cached_query(
        context.key,
        "monthly_accrual",
        dims=ACCRUAL_DIMS,
        unit=context.unit,
        **context.filters.params(),
    )


@st.cache_data(max_entries=256, show_spinner=False)
def _accrual_suppressed(context: PageContext, k: int) -> Section:
    """The programme's accrual per month only, small months hidden (a viewer not entitled
    to every institution's rows: by institution or modality they are mostly small)."""
    del k  # part of the cache key only (as the role, in the context)
    monthly = _monthly(context)
    unit = context.unit
    title, meaning = _measure(unit)
    per_month = monthly.group_by("month").agg(pl.col("n").sum()).sort("month")
    shown = shown_table(context, per_month, ("month",))
    frame = shown.frame
    spec = natural_size(
        charts.series_over_time(
            frame.with_columns(series=pl.lit(title), n_label=shown.labels(frame)),
            value_col="n",
            series_col="series",
            value_title=f"{title} per month",
            series_title="Measure",
            label_col="n_label",
            value_format=",.0f",
            title=f"{title} per month",
            subtitle=f"{meaning.capitalize()}. Gaps: months with fewer than {shown.k} (or "
            "withheld so that they cannot be worked out).",
        ).properties(width=620)
    )
    note = (
        f"{meaning.capitalize()} ({UNIT_NOUNS[unit]}), {describe_filters(context.filters)}. "
        "By institution and modality for the programme team only (small-cell suppression).",
        None,
        "Nothing: every study has a date.",
    )
    csv = to_csv_bytes(shown.download(per_month).rename({"n": unit}))
    return Section(spec=spec, about=note, csv=csv, csv_name="monthly_accrual.csv")


def _accrual(context: PageContext) -> None:
    if not sees_in_full(context):
        draw_section(_accrual_suppressed(context, small_cell_k()))
        return
    cumulative = st.toggle("Cumulative", key=CUMULATIVE_KEY, help="Running totals since the start.")
    specs, note, csv = _accrual_view(context, cumulative)
    tabs = st.tabs(["By institution", "By modality"])
    for tab, spec in zip(tabs, specs, strict=True):
        with tab:
            show_spec(spec)
    about(*note)
    download_csv(csv, "monthly_accrual.csv")


@st.cache_data(max_entries=256, show_spinner=False)
def _accrual_view(
    context: PageContext, cumulative: bool
) -> tuple[list[dict[str, Any]], tuple[str, None, str], bytes]:
    """Specs of the accrual by institution and by modality, their note and the CSV (for a
    viewer entitled to every row)."""
    monthly = _monthly(context)
    unit = context.unit
    title, meaning = _measure(unit)
    names = dict(
        zip(
            *cached_query(context.key, "filter_options")
            .select("institutions", "institution_names")
            .row(0),
            strict=True,
        )
    )
    specs = []
    for dim in ACCRUAL_DIMS:
        per_month = monthly.group_by("month", dim).agg(pl.col("n").sum())
        specs.append(
            natural_size(
                charts.accrual_chart(
                    per_month,
                    count_col="n",
                    count_title=title,
                    category_col=dim,
                    category_title=dim.capitalize(),
                    cumulative=cumulative,
                    max_categories=8,
                    title=f"{title} per month by {dim}",
                    subtitle=f"{meaning.capitalize()}; the smallest are grouped as Other.",
                ).properties(width=620)
            )
        )
    note = (
        f"{meaning.capitalize()} ({UNIT_NOUNS[unit]}), {describe_filters(context.filters)}. "
        "A patient's institution and modality are those of their first study, so the stacks "
        "add up to the programme total.",
        None,
        "Nothing: every study has a date, an institution and a modality.",
    )
    table = (
        monthly.group_by("month", "institution", "modality")
        .agg(pl.col("n").sum())
        .with_columns(
            institution_name=pl.col("institution").replace_strict(
                names, default=pl.col("institution")
            )
        )
        .sort("month", "institution", "modality")
        .select("month", "institution", "institution_name", "modality", pl.col("n").alias(unit))
    )
    return specs, note, to_csv_bytes(table)


def _representativeness(context: PageContext) -> None:
    st.subheader("Is the data getting more representative?")
    source = source_picker(SOURCE_KEY)
    view = _representativeness_view(context, small_cell_k(), source)
    if isinstance(view, str):
        st.info(view)
        return
    metrics, section, protected = view
    for card, (label, value, delta, help_text) in zip(
        st.columns(len(metrics)), metrics, strict=True
    ):
        card.metric(label, value, delta, delta_color="inverse", help=help_text)
    show_spec(section.spec)
    about(*section.about)
    download_csv(section.csv, section.csv_name, protected=protected)


@st.cache_data(max_entries=256, show_spinner=False)
def _representativeness_view(
    context: PageContext, k: int, source: str
) -> str | tuple[list[tuple[str, str, str, str]], Section, bool]:
    """A message, or the cards, the chart section and whether its CSV is protected, as the
    context's role may see them."""
    del k  # part of the cache key only (as the role, in the context)
    key, filters, unit = context.key, context.filters, context.unit
    monthly = cached_query(
        key, "monthly_accrual", dims=list(rates.JSD_DIMENSIONS), unit=unit, **filters.params()
    )
    references = {}
    notes = []
    for dim in rates.JSD_DIMENSIONS:
        try:
            baseline = rates.population_in_filter([dim], filters, source=source)
        except ReferenceUnavailableError as error:
            notes.append(f"{DIMENSION_TITLES[dim]}: {error}")
            continue
        references[dim] = baseline.frame
        notes.append(f"{DIMENSION_TITLES[dim]}: {baseline.description}")
    trend = rates.jsd_trend(monthly, references)
    if trend.height == 0:
        return "No known values to compare with the population in this selection."
    full = sees_in_full(context)
    if not full:  # JSD at full precision can pin a hidden cell (privacy.coarse)
        trend = trend.with_columns(pl.col("jsd", "representativeness").round(2))
    digits = 3 if full else 2
    change = rates.jsd_change(trend, months=12)
    metrics = [
        (
            f"{DIMENSION_TITLES[row['dimension']]}: distance now",
            f"{row['jsd']:.{digits}f}",
            f"{row['change']:+.{digits}f} since {_month_words(row['earlier_month'])}",
            "Jensen–Shannon distance of all data so far from the population (0 = the "
            "same distribution, 1 = nothing in common). Green: lower, more representative.",
        )
        for row in change.iter_rows(named=True)
    ]
    labelled = trend.with_columns(
        dimension_title=pl.col("dimension").replace_strict(DIMENSION_TITLES),
    )
    spec = natural_size(
        charts.series_over_time(
            labelled,
            value_col="jsd",
            series_col="dimension_title",
            value_title="JS distance from the population",
            series_title="Dimension",
            series_order=list(DIMENSION_TITLES.values()),
            value_format=".3f",
            title="Distance of the cumulative data from the population, at each month end",
            subtitle="Lower is more representative; a falling line means new data is "
            "closing the gap.",
        )
    )
    dropped = rates.left_out(monthly, references)
    unknown = "; ".join(
        f"{DIMENSION_TITLES[d]}: {headline_count(context, n)}" for d, n in dropped.items() if n
    )
    note = (
        f"{UNIT_NOUNS[unit]} accumulated to each month end, {describe_filters(filters)}; "
        "patients take the values of their first study. Base-2 Jensen–Shannon distance "
        "(METRICS.md), per dimension.",
        " ".join(f"{n}." for n in notes),
        f"Unknown values and sex 'other' (no population figure), per dimension — {unknown}."
        if unknown
        else "Nothing.",
    )
    # The cumulative counts' monthly steps are small counts: only for those who see all.
    columns = ["dimension", "month", *(["n"] if full else []), "jsd", "representativeness"]
    csv = to_csv_bytes(trend.select(columns).rename({"n": f"cumulative_{unit}"}, strict=False))
    section = Section(spec=spec, about=note, csv=csv, csv_name="representativeness_over_time.csv")
    return metrics, section, not full or sees_in_full(context, export=True)


def _month_words(month: str) -> str:
    year, number = month.split("-")
    names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return f"{names[int(number) - 1]} {year}"


def render() -> None:
    """Draw the Trends page."""
    started = start_page("Trends")
    if started is None:
        return
    context, totals = started
    state_filter_note(context.filters, "trends_show_all")
    if totals["studies"][0] == 0:
        show_no_studies(context.filters)
    else:
        _accrual(context)
        _representativeness(context)
    footer()
