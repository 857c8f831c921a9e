"""Trends: monthly accrual by institution and modality, and whether the data gets more or less
representative of the population as it arrives (JS distance of the cumulative data).
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, rates
from dashboard.baselines import ReferenceUnavailableError
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
    start_page,
)
from dashboard.views.widgets import (
    show_chart,
    show_no_studies,
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


def _accrual_suppressed(context: PageContext, monthly: pl.DataFrame) -> None:
    """The programme's accrual per month only, small months hidden (a viewer not entitled
    to every institution's rows: by institution or modality they are mostly small)."""
    unit = context.unit
    title, meaning = _measure(unit)
    per_month = monthly.group_by("month").agg(pl.col("n").sum()).sort("month")
    shown = shown_table(context, per_month, ("month",))
    frame = shown.frame
    show_chart(
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
    about(
        f"{meaning.capitalize()} ({UNIT_NOUNS[unit]}), {describe_filters(context.filters)}. "
        "By institution and modality for the programme team only (small-cell suppression).",
        None,
        "Nothing: every study has a date.",
    )
    download_csv(
        shown.download(per_month).rename({"n": unit}), "monthly_accrual.csv", protected=True
    )


def _accrual(context: PageContext, monthly: pl.DataFrame) -> None:
    if not sees_in_full(context):
        _accrual_suppressed(context, monthly)
        return
    unit = context.unit
    title, meaning = _measure(unit)
    cumulative = st.toggle("Cumulative", key=CUMULATIVE_KEY, help="Running totals since the start.")
    names = dict(
        zip(
            *cached_query(context.key, "filter_options")
            .select("institutions", "institution_names")
            .row(0),
            strict=True,
        )
    )
    tabs = st.tabs(["By institution", "By modality"])
    for tab, dim in zip(tabs, ACCRUAL_DIMS, strict=True):
        per_month = monthly.group_by("month", dim).agg(pl.col("n").sum())
        with tab:
            show_chart(
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
    about(
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
    download_csv(table, "monthly_accrual.csv")


def _representativeness(context: PageContext) -> None:
    key, filters, unit = context.key, context.filters, context.unit
    st.subheader("Is the data getting more representative?")
    source = source_picker(SOURCE_KEY)
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
        st.info("No known values to compare with the population in this selection.")
        return
    full = sees_in_full(context)
    if not full:  # JSD at full precision can pin a hidden cell (privacy.coarse)
        trend = trend.with_columns(pl.col("jsd", "representativeness").round(2))
    digits = 3 if full else 2
    change = rates.jsd_change(trend, months=12)
    cards = st.columns(len(change))
    for card, row in zip(cards, change.iter_rows(named=True), strict=True):
        card.metric(
            f"{DIMENSION_TITLES[row['dimension']]}: distance now",
            f"{row['jsd']:.{digits}f}",
            f"{row['change']:+.{digits}f} since {_month_words(row['earlier_month'])}",
            delta_color="inverse",
            help="Jensen–Shannon distance of all data so far from the population (0 = the "
            "same distribution, 1 = nothing in common). Green: lower, more representative.",
        )
    labelled = trend.with_columns(
        dimension_title=pl.col("dimension").replace_strict(DIMENSION_TITLES),
    )
    show_chart(
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
    about(
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
    download_csv(
        trend.select(columns).rename({"n": f"cumulative_{unit}"}, strict=False),
        "representativeness_over_time.csv",
        protected=not full or sees_in_full(context, export=True),
    )


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
        monthly = cached_query(
            context.key,
            "monthly_accrual",
            dims=ACCRUAL_DIMS,
            unit=context.unit,
            **context.filters.params(),
        )
        _accrual(context, monthly)
        _representativeness(context)
    footer()
