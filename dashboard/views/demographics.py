"""Demographics: who is in the data against the population of the selected states.

The age–sex pyramid of the data over the population's, urban/rural against the census split,
the facility types the data comes from (no census counterpart), and the sex ratio (females per
1,000 males) by state against the population's.
"""

from __future__ import annotations

import dataclasses

import polars as pl
import streamlit as st

from dashboard import charts, privacy, rates
from dashboard.baselines import ReferenceUnavailableError
from dashboard.config import load_settings
from dashboard.contract import AREA_TYPES, FACILITY_TYPES
from dashboard.coverage import known_mask
from dashboard.export import to_csv_bytes
from dashboard.formatting import format_indian, format_number
from dashboard.reference import load_reference
from dashboard.views.common import (
    UNIT_NOUNS,
    PageContext,
    Shown,
    describe_filters,
    footer,
    shown_coverage,
    small_cell_k,
    start_page,
)
from dashboard.views.overview import pyramid_shares
from dashboard.views.widgets import (
    Section,
    category_bars_hidden,
    draw_section,
    hidden_labels,
    mark_hidden,
    natural_size,
    share_labels,
    show_no_studies,
    source_picker,
    state_filter_note,
    text_column,
)

SEX_SIDES = {"M": "Male", "F": "Female"}
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


def _left_out(shown: Shown, in_view: pl.Expr) -> str:
    """What a chart leaves out: all but ``in_view`` in full; for a viewer who may not see
    every cell, the count of unknowns (a published total, or withheld)."""
    if shown.screen is None:
        return format_indian(int(shown.counts.filter(~in_view)["n"].sum()))
    unknown = int(shown.counts.filter(pl.col("share").is_null())["n"].sum())
    return shown.total(unknown, unknown=True)


@st.cache_data(max_entries=256, show_spinner=False)
def _pyramid(context: PageContext, k: int, source: str) -> Section:
    del k  # part of the cache key only (as the role, in the context)
    filters, unit = context.filters, context.unit
    observed = shown_coverage(context, ("sex", "age_band"))
    in_pyramid = pl.col("sex").is_in(["M", "F"]) & pl.col("age_band").is_not_null()
    left_out = _left_out(observed, in_pyramid)
    try:
        reference = rates.population_in_filter(["age_band", "sex"], filters, source=source)
    except ReferenceUnavailableError as error:
        return Section(info=f"No age–sex pyramid: {error}.")
    census = reference.frame.rename({"ref_weight": "population"})
    over = None if observed.screen is None else "share"
    shares = pyramid_shares(observed.frame, census, shares=over)
    if observed.counts.filter(in_pyramid)["n"].sum() == 0:
        return Section(info=f"No {unit} with a known age and sex (male or female) to draw.")
    labels = hidden_labels(observed.frame, ["age_band", "sex"], observed.k)
    spec = natural_size(
        mark_hidden(
            charts.age_sex_pyramid(
                shares,
                reference_title=SOURCE_TITLES[source],
                title=f"{unit.capitalize()} by age and sex vs the population",
                subtitle=f"Shares of {unit} with known age and sex ({left_out} "
                "left out). Grey: the population.",
            ),
            ["category", "side"],
            {(band, SEX_SIDES.get(sex)): text for (band, sex), text in labels.items()},
            ["observed_label", "rr_label"],
        )
    )
    note = (
        f"{UNIT_NOUNS[unit]} by census age band and sex, {describe_filters(filters)}; each "
        "series sums to 100% over males and females"
        + ("" if observed.screen is None else " (shares of every known cell, hidden ones withheld)")
        + ".",
        reference.description,
        f"{left_out} {unit} with unknown age, unknown sex or sex 'other' "
        "(the census tables used count males and females only).",
    )
    exported = observed.hide(observed.counts, export=True)
    csv = to_csv_bytes(
        pyramid_shares(exported, census, shares=None if observed.export is None else "share")
        .sort("sex", "age_band")
        .rename({"observed_share": f"share_of_{unit}", "reference_share": "population_share"})
    )
    return Section(spec=spec, about=note, csv=csv, csv_name="age_sex_pyramid.csv")


@st.cache_data(max_entries=256, show_spinner=False)
def _area(context: PageContext, k: int, source: str) -> Section:
    del k  # part of the cache key only (as the role, in the context)
    filters, unit = context.filters, context.unit
    observed = shown_coverage(context, ("area_type",))
    unknown = observed.total(
        int(observed.counts.filter(~known_mask(["area_type"]))["n"].sum()), unknown=True
    )
    try:
        reference = rates.population_in_filter(["area_type"], filters, source=source)
    except ReferenceUnavailableError as error:
        return Section(info=f"No urban/rural comparison: {error}.")

    def joined(frame: pl.DataFrame) -> pl.DataFrame:
        seen = frame.filter(known_mask(["area_type"])).select(
            "area_type", n="n", observed_share="share", hidden=privacy.SUPPRESSION
        )
        return (
            reference.frame.select(
                "area_type", reference_share=pl.col("ref_weight") / pl.col("ref_weight").sum()
            )
            .join(seen, on="area_type", how="full", coalesce=True)
            .with_columns(  # categories nobody is in are 0; hidden ones stay empty
                pl.when(pl.col("hidden").is_null()).then(pl.col(c).fill_null(0)).otherwise(c)
                for c in ("n", "observed_share")
            )
        )

    table = joined(observed.frame)
    if observed.counts.filter(known_mask(["area_type"]))["n"].sum() == 0:
        return Section(info=f"No {unit} with a known urban/rural area of residence.")
    spec = natural_size(
        mark_hidden(
            charts.share_vs_reference(
                table.drop("hidden"),
                category_col="area_type",
                category_title="Area of residence",
                reference_title=SOURCE_TITLES[source],
                order=list(AREA_TYPES),
                title="Urban/rural vs the population",
                subtitle=f"Share of {unit} with a known area ({unknown} unknown).",
            ),
            ["category"],
            hidden_labels(observed.frame, ["area_type"], observed.k),
            ["observed_label", "rr_label"],
        )
    )
    note = (
        f"{UNIT_NOUNS[unit]} by area of residence, {describe_filters(filters)}.",
        reference.description,
        f"{unknown} {unit} whose urban/rural area is unknown.",
    )
    download = observed.download(
        joined(observed.counts.with_columns(pl.lit(None, pl.String).alias(privacy.SUPPRESSION)))
        .drop("hidden")
        .select("area_type", "n", "observed_share", "reference_share"),
        cell=("n", "observed_share"),
        totals=("observed_share",),
    )
    csv = to_csv_bytes(
        download.rename(
            {"n": unit, "observed_share": f"share_of_{unit}", "reference_share": "population_share"}
        )
    )
    return Section(spec=spec, about=note, csv=csv, csv_name="urban_rural.csv")


@st.cache_data(max_entries=256, show_spinner=False)
def _facility(context: PageContext, k: int) -> Section:
    del k  # part of the cache key only (as the role, in the context)
    filters, unit = context.filters, context.unit
    observed = shown_coverage(context, ("facility_type",))
    unknown = observed.total(
        int(observed.counts.filter(pl.col("facility_type").is_null())["n"].sum()), unknown=True
    )
    known = observed.frame.filter(pl.col("facility_type").is_not_null()).with_columns(
        facility=pl.col("facility_type").replace_strict(
            FACILITY_LABELS, default=pl.col("facility_type")
        )
    )
    if known.height == 0:
        return Section(info=f"No {unit} with a known facility type.")
    spec = natural_size(
        category_bars_hidden(
            charts.category_bars(
                known,
                category_col="facility",
                count_col="n",
                category_title="Facility type",
                count_title=unit.capitalize(),
                order=[FACILITY_LABELS[f] for f in FACILITY_TYPES if f in FACILITY_LABELS],
                title="Where the data comes from: facility type",
                subtitle="No census reference: the distribution of the data itself.",
            ),
            hidden_labels(known, ["facility"], observed.k),
            share_labels(known, ["facility"]),
        ).properties(width=230)
    )
    note = (
        f"{UNIT_NOUNS[unit]} by the type of facility that imaged them, "
        f"{describe_filters(filters)}.",
        "None: the census has no counterpart. Primary and community health centres are where "
        "most rural patients are first seen.",
        f"{unknown} {unit} with no facility type.",
    )
    csv = to_csv_bytes(
        observed.download(observed.counts.filter(pl.col("facility_type").is_not_null()))
        .select("facility_type", "n", "share")
        .rename({"n": unit, "share": f"share_of_{unit}"})
    )
    return Section(spec=spec, about=note, csv=csv, csv_name="facility_type.csv")


def _ratio_label(row: dict) -> str | None:
    """'812 vs 943': the data's sex ratio against the population's."""
    if row["relative"] is None:
        return None
    return f"{format_indian(row['sex_ratio'])} vs {format_indian(row['reference_sex_ratio'])}"


def _sex_ratio(context: PageContext, source: str) -> None:
    st.subheader("Sex ratio: females per 1,000 males")
    filters = context.filters
    if filters.sexes and not {"M", "F"} <= set(filters.sexes):
        st.info("The sex ratio needs both males and females: clear the Sex filter to see it.")
        return
    metrics, caption, section = _sex_ratio_view(context, small_cell_k(), source)
    for card, (label, value, help_text) in zip(st.columns(3), metrics, strict=True):
        card.metric(label, value, help=help_text)
    if caption is not None:
        st.caption(caption)
    draw_section(section, "demo_sex_ratio")


@st.cache_data(max_entries=256, show_spinner=False)
def _sex_ratio_view(
    context: PageContext, k: int, source: str
) -> tuple[tuple[tuple[str, str, str | None], ...], str | None, Section]:
    """The sex-ratio cards, the chart's caption and the chart section, as the context's role
    may see them."""
    del k  # part of the cache key only (as the role, in the context)
    filters, unit = context.filters, context.unit
    by_sex = shown_coverage(context, ("state", "sex"))
    observed = by_sex.counts
    population = rates.population_in_filter(
        ["state", "sex"], dataclasses.replace(filters, sexes=()), source=source
    )
    full = rates.sex_ratio_by_state(observed, population.frame)
    table = _hide_ratios(full, by_sex)
    females = observed.filter(pl.col("sex") == "F")["n"].sum()
    males = observed.filter(pl.col("sex") == "M")["n"].sum()
    ref = population.frame
    ref_ratio = rates.sex_ratio(
        ref.filter(pl.col("sex") == "F")["ref_weight"].sum(),
        ref.filter(pl.col("sex") == "M")["ref_weight"].sum(),
    )
    # The female and male totals are margins of state × sex: withheld with any total.
    withheld = by_sex.screen is not None and by_sex.screen.unknown_withheld
    metrics = (
        (
            f"This dataset ({unit})",
            privacy.WITHHELD_LABEL
            if withheld
            else format_number(rates.sex_ratio(females, males), 0),
            "Females per 1,000 males, all states (including unknown state).",
        ),
        (SOURCE_TITLES[source], format_number(ref_ratio, 0), None),
        (
            "Women's representation",
            privacy.WITHHELD_LABEL
            if withheld
            else format_number(rates.rate(rates.sex_ratio(females, males), ref_ratio, 1.0), 2),
            "Dataset sex ratio ÷ population sex ratio: 1 = the same balance as the population.",
        ),
    )
    names = load_reference().state_names
    n_min = load_settings().n_min
    few = table.filter(~(pl.col("females") + pl.col("males") >= n_min).fill_null(False))
    kept = table.filter(pl.col("females") + pl.col("males") >= n_min)
    ratios = kept.select(pl.struct("sex_ratio", "reference_sex_ratio", "relative")).to_series()
    shown = kept.with_columns(
        iso_code="state",
        name=pl.col("state").replace_strict(names, default=pl.col("state")),
        label=text_column(ratios, _ratio_label),
        people=text_column(kept["females"] + kept["males"], format_indian),
    )
    if shown.height == 0:
        info = (
            f"No state has {n_min} or more male and female {unit} in this selection: too few "
            "for a sex ratio (the table below has them)."
        )
        return metrics, None, Section(info=info)
    caption = (
        f"States/UTs with at least {n_min} male and female {unit}; {few.height} with fewer "
        "are left out of the chart (they are in the CSV). Click a bar to show only that state."
    )
    spec = natural_size(
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
        )
    )
    unknown = _left_out(by_sex, pl.col("state").is_not_null() & pl.col("sex").is_in(["M", "F"]))
    note = (
        f"Females per 1,000 males among {UNIT_NOUNS[unit]}, per state of residence, "
        f"{describe_filters(filters)}. Bars: the data's ratio ÷ the population's (orange = "
        "fewer women than the population's balance); labels: data vs population.",
        population.description,
        f"{unknown} {unit} with an unknown state or a sex other than male/female; "
        "states with no male and female data are not listed.",
    )
    csv = to_csv_bytes(
        _hide_ratios(full, by_sex, export=True)
        .with_columns(state_ut=pl.col("state").replace_strict(names, default=pl.col("state")))
        .select(
            "state_ut",
            iso_code="state",
            females="females",
            males="males",
            females_per_1000_males="sex_ratio",
            population_females_per_1000_males="reference_sex_ratio",
            ratio_to_population="relative",
        )
    )
    return (
        metrics,
        caption,
        Section(spec=spec, about=note, csv=csv, csv_name="sex_ratio_by_state.csv"),
    )


def _hide_ratios(table: pl.DataFrame, by_sex: Shown, *, export: bool = False) -> pl.DataFrame:
    """The sex-ratio table with a state's counts and ratios empty where its female or male
    count is hidden from the viewer (screen, or with ``export`` the download)."""
    if by_sex.pattern(export=export) is None:
        return table
    flags = by_sex.hide(by_sex.counts, export=export)
    hidden = flags.filter(pl.col(privacy.SUPPRESSED) & pl.col("sex").is_in(["F", "M"]))
    gone = pl.col("state").is_in(hidden["state"].drop_nulls().implode())
    return table.with_columns(
        pl.when(gone).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("females", "males", "sex_ratio", "relative")
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
        k = small_cell_k()
        with left:
            draw_section(_pyramid(context, k, source))
        with right:
            draw_section(_area(context, k, source))
            draw_section(_facility(context, k))
        _sex_ratio(context, source)
    footer()
