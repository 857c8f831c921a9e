"""Overview: the programme at a glance — totals, and coverage by state, modality, sex and age."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from dashboard import charts, privacy
from dashboard.filters import Filters
from dashboard.formatting import format_indian, format_lakh_crore
from dashboard.roles import Role
from dashboard.views import overview_progress, report_download
from dashboard.views.common import (
    PageContext,
    SnapshotKey,
    cached_query,
    footer,
    headline_count,
    headline_share,
    shown_coverage,
    small_cell_k,
    start_page,
)
from dashboard.views.widgets import (
    category_bars_hidden,
    clickable_state_spec,
    hidden_labels,
    mark_hidden,
    natural_size,
    share_labels,
    show_spec,
)


def _headline(context: PageContext, totals: pl.DataFrame) -> None:
    row = totals.row(0, named=True)
    studies = headline_count(context, row["studies"])
    cards = [*st.columns(3), *st.columns(3)]  # two rows: long Indian numbers need the width
    cards[0].metric("Studies", studies)
    cards[1].metric(
        "Patients",
        headline_count(context, row["patients"]),
        help="Distinct (institution, patient id).",
    )
    # The images of fewer than k studies would tell how many studies there are.
    images = (
        privacy.WITHHELD_LABEL
        if studies.startswith("<")
        else headline_count(context, row["images"])
    )
    cards[2].metric(
        "Images",
        format_lakh_crore(row["images"]) if images[0].isdigit() else images,
        help=f"{images} images.",
    )
    cards[3].metric("Institutions", format_indian(row["institutions"]))
    cards[4].metric("States/UTs covered", f"{row['states_covered']} of {row['states_total']}")
    cards[5].metric(
        "Complete demographics",
        headline_share(context, row["complete_demographics"], row["studies"]),
        help="Share of studies with sex, age band, state and urban/rural all known.",
    )


def pyramid_shares(
    observed: pl.DataFrame, census: pl.DataFrame, *, shares: str | None = None
) -> pl.DataFrame:
    """Observed and census shares per (age band, sex) over males and females of known age.

    ``shares``: a column of ``observed`` holding the shares to draw instead (the coverage
    share over every known cell, null where a cell is hidden: for viewers who may not see
    every cell, whose shares must not reveal the count of the other sexes)."""
    mf = observed.filter(pl.col("sex").is_in(["M", "F"]) & pl.col("age_band").is_not_null())
    data = mf.select(
        "age_band",
        "sex",
        observed_share=pl.col(shares) if shares else pl.col("n") / pl.col("n").sum(),
        hidden=pl.col(privacy.SUPPRESSED) if privacy.SUPPRESSED in mf.columns else pl.lit(False),
    )
    reference = census.select(
        "age_band", "sex", reference_share=pl.col("population") / pl.col("population").sum()
    )
    joined = reference.join(data, on=["age_band", "sex"], how="left")
    return joined.with_columns(
        pl.when(pl.col("hidden").fill_null(False))
        .then(None)
        .otherwise(pl.col("observed_share").fill_null(0.0))
        .alias("observed_share")
    ).drop("hidden")


@st.cache_data(max_entries=256, show_spinner=False)
def chart_specs(
    key: SnapshotKey, filters: Filters, unit: str, role: Role, k: int
) -> tuple[dict[str, Any], ...]:
    """The specs of the page's three charts (by state, by modality, the pyramid) as this
    role may see them; a cache hit is a fresh copy, which Streamlit may change. The role and
    k are in the cache key: what one role sees never reaches another."""
    del k  # part of the cache key only: shown_coverage reads it from the settings
    context = PageContext(key=key, filters=filters, unit=unit, role=role)
    unit_title = unit.capitalize()
    by_state = shown_coverage(context, ("state",))
    states = by_state.frame.rename({"state": "iso_code"})
    states_spec = natural_size(
        charts.state_bars(
            states.with_columns(by_state.labels(states)),
            value_col="n",
            label_col="n_label",
            value_title=unit_title,
            title=f"{unit_title} by state/UT of residence",
            width=230,
        )
    )
    by_modality = shown_coverage(context, ("modality",))
    modality_spec = natural_size(
        category_bars_hidden(
            charts.category_bars(
                by_modality.frame,
                category_col="modality",
                count_col="n",
                category_title="Modality (DICOM code)",
                count_title=unit_title,
                title=f"{unit_title} by modality",
            ),
            hidden_labels(by_modality.frame, ["modality"], by_modality.k),
            share_labels(by_modality.frame, ["modality"]),
        )
    )
    by_sex_age = shown_coverage(context, ("sex", "age_band"))
    census = cached_query(key, "reference_age_sex", states=list(filters.states) or None)
    unknown = by_sex_age.counts.filter(pl.col("share").is_null())["n"].sum()
    frame = by_sex_age.frame
    shares = pyramid_shares(frame, census, shares=None if by_sex_age.screen is None else "share")
    labels = hidden_labels(frame, ["age_band", "sex"], by_sex_age.k)
    sides = {"M": "Male", "F": "Female"}
    pyramid_spec = natural_size(
        mark_hidden(
            charts.age_sex_pyramid(
                shares,
                title=f"{unit_title} by age and sex vs the census population",
                subtitle=[
                    f"Shares of {unit} with known age and sex "
                    f"({by_sex_age.total(unknown, unknown=True)} left out).",
                    "Grey: Census 2011 of the selected states.",
                ],
            ),
            ["category", "side"],
            {(band, sides.get(sex)): text for (band, sex), text in labels.items()},
            ["observed_label", "rr_label"],
        )
    )

    return states_spec, modality_spec, pyramid_spec


def _charts(context: PageContext) -> None:
    assert context.key is not None
    states, modality, pyramid = chart_specs(
        context.key, context.filters, context.unit, context.role, small_cell_k()
    )
    left, right = st.columns(2)
    with left:
        clickable_state_spec(states, key="overview_states")
    with right:
        show_spec(modality)
        show_spec(pyramid)


def render() -> None:
    """Draw the Overview page."""
    started = start_page("Overview")
    if started is None:
        return
    context, totals = started
    if totals["studies"][0] == 0:
        st.info("The index has no studies yet. Ingest a manifest to see coverage.")
    else:
        _headline(context, totals)
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
