"""Overview: the programme at a glance — totals, and coverage by state, modality, sex and age."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts
from dashboard.formatting import format_indian, format_lakh_crore
from dashboard.views import overview_progress, report_download
from dashboard.views.common import (
    PageContext,
    cached_coverage,
    cached_query,
    footer,
    start_page,
)
from dashboard.views.widgets import clickable_state_chart, show_chart


def _headline(totals: pl.DataFrame) -> None:
    row = totals.row(0, named=True)
    cards = [*st.columns(3), *st.columns(3)]  # two rows: long Indian numbers need the width
    cards[0].metric("Studies", format_indian(row["studies"]))
    cards[1].metric(
        "Patients", format_indian(row["patients"]), help="Distinct (institution, patient id)."
    )
    cards[2].metric(
        "Images", format_lakh_crore(row["images"]), help=f"{format_indian(row['images'])} images."
    )
    cards[3].metric("Institutions", format_indian(row["institutions"]))
    cards[4].metric("States/UTs covered", f"{row['states_covered']} of {row['states_total']}")
    complete = row["complete_demographics"] / row["studies"] if row["studies"] else 0.0
    cards[5].metric(
        "Complete demographics",
        f"{complete:.0%}",
        help="Share of studies with sex, age band, state and urban/rural all known.",
    )


def pyramid_shares(observed: pl.DataFrame, census: pl.DataFrame) -> pl.DataFrame:
    """Observed and census shares per (age band, sex) over males and females of known age."""
    mf = observed.filter(pl.col("sex").is_in(["M", "F"]) & pl.col("age_band").is_not_null())
    data = mf.select("age_band", "sex", observed_share=pl.col("n") / pl.col("n").sum())
    reference = census.select(
        "age_band", "sex", reference_share=pl.col("population") / pl.col("population").sum()
    )
    return reference.join(data, on=["age_band", "sex"], how="left").with_columns(
        pl.col("observed_share").fill_null(0.0)
    )


def _charts(context: PageContext) -> None:
    key, filters, unit = context.key, context.filters, context.unit
    unit_title = unit.capitalize()
    left, right = st.columns(2)
    with left:
        by_state = cached_coverage(key, ("state",), unit, filters)
        clickable_state_chart(
            charts.state_bars(
                by_state.rename({"state": "iso_code"}),
                value_col="n",
                value_title=unit_title,
                title=f"{unit_title} by state/UT of residence",
                width=230,
            ),
            key="overview_states",
        )
    with right:
        by_modality = cached_coverage(key, ("modality",), unit, filters)
        show_chart(
            charts.category_bars(
                by_modality,
                category_col="modality",
                count_col="n",
                category_title="Modality (DICOM code)",
                count_title=unit_title,
                title=f"{unit_title} by modality",
            )
        )
        by_sex_age = cached_coverage(key, ("sex", "age_band"), unit, filters)
        census = cached_query(key, "reference_age_sex", states=list(filters.states) or None)
        unknown = by_sex_age.filter(pl.col("share").is_null())["n"].sum()
        show_chart(
            charts.age_sex_pyramid(
                pyramid_shares(by_sex_age, census),
                title=f"{unit_title} by age and sex vs the census population",
                subtitle=[
                    f"Shares of {unit} with known age and sex ({format_indian(unknown)} left out).",
                    "Grey: Census 2011 of the selected states.",
                ],
            )
        )


def render() -> None:
    """Draw the Overview page."""
    started = start_page("Overview")
    if started is None:
        return
    context, totals = started
    if totals["studies"][0] == 0:
        st.info("The index has no studies yet. Ingest a manifest to see coverage.")
    else:
        _headline(totals)
        last_date = cached_query(context.key, "filter_options")["last_date"][0]
        left, right = st.columns(2)
        with left:
            overview_progress.accrual(context, last_date)
            overview_progress.representativeness(context, last_date)
        with right:
            shared = {k: st.query_params.get_all(k) for k in st.query_params}
            overview_progress.worst_gaps(context, shared)
        _charts(context)
    report_download.datasheet_button(context)
    footer()
