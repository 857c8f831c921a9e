"""Demographics: who is in the data against the population of the selected states.

The age–sex pyramid of the data over the population's, urban/rural against the census split,
the facility types the data comes from (no census counterpart), and the sex ratio (females per
1,000 males) by state against the population's.
"""

from __future__ import annotations

import dataclasses

import polars as pl
import streamlit as st

from dashboard import charts, rates
from dashboard.baselines import ReferenceUnavailableError
from dashboard.config import load_settings
from dashboard.contract import AREA_TYPES, FACILITY_TYPES
from dashboard.coverage import known_mask
from dashboard.formatting import format_indian, format_number
from dashboard.reference import load_reference
from dashboard.views.common import (
    UNIT_NOUNS,
    PageContext,
    about,
    cached_coverage,
    describe_filters,
    download_csv,
    footer,
    start_page,
)
from dashboard.views.overview import pyramid_shares
from dashboard.views.widgets import (
    clickable_state_chart,
    show_chart,
    show_no_studies,
    source_picker,
    state_filter_note,
)

SOURCE_KEY = "demo_population"
SOURCE_TITLES = {"proj2026": "Population 2026", "census2011": "Census 2011"}
FACILITY_LABELS = {
    "PHC": "Primary health centre",
    "CHC": "Community health centre",
    "district_hospital": "District hospital",
    "medical_college": "Medical college",
    "tertiary": "Tertiary hospital",
    "private": "Private",
    "mobile_camp": "Mobile/camp",
}


def _pyramid(context: PageContext, source: str) -> None:
    key, filters, unit = context.key, context.filters, context.unit
    observed = cached_coverage(key, ("sex", "age_band"), unit, filters)
    in_pyramid = pl.col("sex").is_in(["M", "F"]) & pl.col("age_band").is_not_null()
    left_out = int(observed.filter(~in_pyramid)["n"].sum())
    try:
        reference = rates.population_in_filter(["age_band", "sex"], filters, source=source)
    except ReferenceUnavailableError as error:
        st.info(f"No age–sex pyramid: {error}.")
        return
    shares = pyramid_shares(observed, reference.frame.rename({"ref_weight": "population"}))
    if observed.filter(in_pyramid)["n"].sum() == 0:
        st.info(f"No {context.unit} with a known age and sex (male or female) to draw.")
        return
    show_chart(
        charts.age_sex_pyramid(
            shares,
            reference_title=SOURCE_TITLES[source],
            title=f"{unit.capitalize()} by age and sex vs the population",
            subtitle=f"Shares of {unit} with known age and sex ({format_indian(left_out)} "
            "left out). Grey: the population.",
        )
    )
    about(
        f"{UNIT_NOUNS[unit]} by census age band and sex, {describe_filters(filters)}; each "
        "series sums to 100% over males and females.",
        reference.description,
        f"{format_indian(left_out)} {unit} with unknown age, unknown sex or sex 'other' "
        "(the census tables used count males and females only).",
    )
    download_csv(
        shares.sort("sex", "age_band").rename(
            {"observed_share": f"share_of_{unit}", "reference_share": "population_share"}
        ),
        "age_sex_pyramid.csv",
    )


def _area(context: PageContext, source: str) -> None:
    key, filters, unit = context.key, context.filters, context.unit
    observed = cached_coverage(key, ("area_type",), unit, filters)
    unknown = int(observed.filter(~known_mask(["area_type"]))["n"].sum())
    try:
        reference = rates.population_in_filter(["area_type"], filters, source=source)
    except ReferenceUnavailableError as error:
        st.info(f"No urban/rural comparison: {error}.")
        return
    table = (
        reference.frame.select(
            "area_type", reference_share=pl.col("ref_weight") / pl.col("ref_weight").sum()
        )
        .join(
            observed.filter(known_mask(["area_type"])).select(
                "area_type", n="n", observed_share="share"
            ),
            on="area_type",
            how="full",
            coalesce=True,
        )
        .with_columns(pl.col("n", "observed_share").fill_null(0))
    )
    if table["n"].sum() == 0:
        st.info(f"No {unit} with a known urban/rural area of residence.")
        return
    show_chart(
        charts.share_vs_reference(
            table,
            category_col="area_type",
            category_title="Area of residence",
            reference_title=SOURCE_TITLES[source],
            order=list(AREA_TYPES),
            title="Urban/rural vs the population",
            subtitle=f"Share of {unit} with a known area ({format_indian(unknown)} unknown).",
        )
    )
    about(
        f"{UNIT_NOUNS[unit]} by area of residence, {describe_filters(filters)}.",
        reference.description,
        f"{format_indian(unknown)} {unit} whose urban/rural area is unknown.",
    )
    download_csv(
        table.select("area_type", "n", "observed_share", "reference_share").rename(
            {"n": unit, "observed_share": f"share_of_{unit}", "reference_share": "population_share"}
        ),
        "urban_rural.csv",
    )


def _facility(context: PageContext) -> None:
    key, filters, unit = context.key, context.filters, context.unit
    observed = cached_coverage(key, ("facility_type",), unit, filters)
    unknown = int(observed.filter(pl.col("facility_type").is_null())["n"].sum())
    known = observed.filter(pl.col("facility_type").is_not_null()).with_columns(
        facility=pl.col("facility_type").replace_strict(
            FACILITY_LABELS, default=pl.col("facility_type")
        )
    )
    if known.height == 0:
        st.info(f"No {unit} with a known facility type.")
        return
    show_chart(
        charts.category_bars(
            known,
            category_col="facility",
            count_col="n",
            category_title="Facility type",
            count_title=unit.capitalize(),
            order=[FACILITY_LABELS[f] for f in FACILITY_TYPES if f in FACILITY_LABELS],
            title="Where the data comes from: facility type",
            subtitle="No census reference: the distribution of the data itself.",
        ).properties(width=230)
    )
    about(
        f"{UNIT_NOUNS[unit]} by the type of facility that imaged them, "
        f"{describe_filters(filters)}.",
        "None: the census has no counterpart. Primary and community health centres are where "
        "most rural patients are first seen.",
        f"{format_indian(unknown)} {unit} with no facility type.",
    )
    download_csv(
        known.select("facility_type", "n", "share").rename(
            {"n": unit, "share": f"share_of_{unit}"}
        ),
        "facility_type.csv",
    )


def _ratio_label(row: dict) -> str | None:
    """'812 vs 943': the data's sex ratio against the population's."""
    if row["relative"] is None:
        return None
    return f"{format_indian(row['sex_ratio'])} vs {format_indian(row['reference_sex_ratio'])}"


def _sex_ratio(context: PageContext, source: str) -> None:
    key, filters, unit = context.key, context.filters, context.unit
    st.subheader("Sex ratio: females per 1,000 males")
    if filters.sexes and not {"M", "F"} <= set(filters.sexes):
        st.info("The sex ratio needs both males and females: clear the Sex filter to see it.")
        return
    observed = cached_coverage(key, ("state", "sex"), unit, filters)
    population = rates.population_in_filter(
        ["state", "sex"], dataclasses.replace(filters, sexes=()), source=source
    )
    table = rates.sex_ratio_by_state(observed, population.frame)
    females = observed.filter(pl.col("sex") == "F")["n"].sum()
    males = observed.filter(pl.col("sex") == "M")["n"].sum()
    ref = population.frame
    ref_ratio = rates.sex_ratio(
        ref.filter(pl.col("sex") == "F")["ref_weight"].sum(),
        ref.filter(pl.col("sex") == "M")["ref_weight"].sum(),
    )
    cards = st.columns(3)
    cards[0].metric(
        f"This dataset ({unit})",
        format_number(rates.sex_ratio(females, males), 0),
        help="Females per 1,000 males, all states (including unknown state).",
    )
    cards[1].metric(SOURCE_TITLES[source], format_number(ref_ratio, 0))
    cards[2].metric(
        "Women's representation",
        format_number(rates.rate(rates.sex_ratio(females, males), ref_ratio, 1.0), 2),
        help="Dataset sex ratio ÷ population sex ratio: 1 = the same balance as the population.",
    )
    names = load_reference().state_names
    n_min = load_settings().n_min
    few = table.filter(pl.col("females") + pl.col("males") < n_min)
    shown = table.filter(pl.col("females") + pl.col("males") >= n_min).with_columns(
        iso_code="state",
        name=pl.col("state").replace_strict(names, default=pl.col("state")),
        label=pl.struct("sex_ratio", "reference_sex_ratio", "relative").map_elements(
            _ratio_label, return_dtype=pl.String
        ),
        people=(pl.col("females") + pl.col("males")).map_elements(
            format_indian, return_dtype=pl.String
        ),
    )
    if shown.height == 0:
        st.info(
            f"No state has {n_min} or more male and female {unit} in this selection: too few "
            "for a sex ratio (the table below has them)."
        )
        return
    st.caption(
        f"States/UTs with at least {n_min} male and female {unit}; {few.height} with fewer "
        "are left out of the chart (they are in the CSV). Click a bar to show only that state."
    )
    clickable_state_chart(
        charts.state_bars(
            shown.select("iso_code", "relative", "label", "people"),
            value_col="relative",
            value_title="Sex ratio ÷ population's (1 = same balance)",
            diverging=True,
            label_col="label",
            tooltip={"people": f"Male and female {unit}"},
            include_missing=False,
            title="Females per 1,000 males by state: data vs population (labels)",
            width=420,
            row_height=17,
        ),
        "demo_sex_ratio",
    )
    unknown = int(
        observed.filter(pl.col("state").is_null() | ~pl.col("sex").is_in(["M", "F"]))["n"].sum()
    )
    about(
        f"Females per 1,000 males among {UNIT_NOUNS[unit]}, per state of residence, "
        f"{describe_filters(filters)}. Bars: the data's ratio ÷ the population's (orange = "
        "fewer women than the population's balance); labels: data vs population.",
        population.description,
        f"{format_indian(unknown)} {unit} with an unknown state or a sex other than male/female; "
        "states with no male and female data are not listed.",
    )
    download_csv(
        table.with_columns(
            state_ut=pl.col("state").replace_strict(names, default=pl.col("state"))
        ).select(
            "state_ut",
            iso_code="state",
            females="females",
            males="males",
            females_per_1000_males="sex_ratio",
            population_females_per_1000_males="reference_sex_ratio",
            ratio_to_population="relative",
        ),
        "sex_ratio_by_state.csv",
    )


def render() -> None:
    """Draw the Demographics page."""
    started = start_page("Demographics")
    if started is None:
        return
    context, totals = started
    state_filter_note(context.filters, "demo_show_all")
    if totals["studies"][0] == 0:
        show_no_studies(context.filters)
    else:
        source = source_picker(SOURCE_KEY)
        left, right = st.columns([6, 5])
        with left:
            _pyramid(context, source)
        with right:
            _area(context, source)
            _facility(context)
        _sex_ratio(context, source)
    footer()
