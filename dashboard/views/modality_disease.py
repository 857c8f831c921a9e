"""Modality and disease: what was imaged for which condition, coverage of a condition by state
against its burden, and how many scanner makes stand behind each modality.
"""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from dashboard import charts, privacy, rates
from dashboard.baselines import burden
from dashboard.config import load_settings
from dashboard.formatting import format_indian, format_number, format_percent
from dashboard.reference import load_reference
from dashboard.views.common import (
    UNIT_NOUNS,
    PageContext,
    Shown,
    about,
    cached_coverage,
    describe_filters,
    download_csv,
    footer,
    sees_in_full,
    shown_coverage,
    start_page,
)
from dashboard.views.widgets import (
    clickable_state_chart,
    condition_label,
    condition_picker,
    mark_hidden,
    show_chart,
    show_no_studies,
    state_filter_note,
)

CONDITION_KEY = "md_condition"
MAX_MAKES = 24


def _heatmap(context: PageContext) -> None:
    filters, unit = context.filters, context.unit
    shown = shown_coverage(context, ("modality", "condition"))
    unknown = shown.total(
        int(shown.counts.filter(pl.col("condition").is_null())["n"].sum()), unknown=True
    )
    cells = shown.frame
    known = cells.filter(pl.col("condition").is_not_null()).with_columns(
        condition_name=pl.col("condition").map_elements(condition_label, return_dtype=pl.String),
        n_label=shown.labels(cells).filter(cells["condition"].is_not_null()),
    )
    st.subheader("Modality × condition")
    if known.height == 0:
        st.info(f"No {unit} with a recorded diagnosis in this selection.")
        return
    by_condition = known.group_by("condition_name").agg(pl.col("n").sum())
    tail = [condition_label(c) for c in ("normal", "other")]
    order = by_condition.filter(~pl.col("condition_name").is_in(tail)).sort(
        ["n", "condition_name"], descending=[True, False]
    )["condition_name"].to_list() + [t for t in tail if t in set(by_condition["condition_name"])]
    modality_order = (
        known.group_by("modality")
        .agg(pl.col("n").sum())
        .sort(["n", "modality"], descending=[True, False])["modality"]
        .to_list()
    )
    show_chart(
        charts.heatmap(
            known,
            x_col="condition_name",
            y_col="modality",
            value_col="n",
            label_col="n_label",
            x_title="Condition (from ICD-10 codes)",
            y_title="Modality",
            value_title=unit.capitalize(),
            x_order=order,
            y_order=modality_order,
            title=f"{unit.capitalize()} by modality and condition",
            subtitle="A study with several conditions counts in each; blank: none.",
        ).properties(width=alt.Step(42)),
    )
    about(
        f"{UNIT_NOUNS[unit]} per modality (DICOM code) and condition, "
        f"{describe_filters(filters)}. Conditions come from the ICD-10 codes of each study "
        "(conditions.csv); 'normal' = no finding, 'other' = codes outside the list.",
        "None: counts of the data itself.",
        f"{unknown} {unit} without a diagnosis.",
    )
    download_csv(
        shown.download(shown.counts.filter(pl.col("condition").is_not_null()))
        .select("modality", "condition", "n")
        .rename({"n": unit}),
        "modality_by_condition.csv",
        protected=True,
    )


def _burden(context: PageContext) -> None:
    filters, unit = context.filters, context.unit
    settings = load_settings()
    st.subheader("Coverage of a condition by state vs its burden")
    condition = condition_picker(CONDITION_KEY)
    info = load_reference().conditions.filter(pl.col("condition") == condition)
    if info.height:
        typical = info["typical_modalities"][0].replace(";", ", ")
        st.caption(
            f"Typical imaging for {condition_label(condition).lower()}: {typical}. Narrow the "
            "Modality filter in the sidebar to one of them (e.g. DX for chest X-ray)."
        )
    cases = burden(condition)
    reference = cases.frame
    if filters.states:
        reference = reference.filter(pl.col("state").is_in(filters.states))
    shown = shown_coverage(context, ("state", "condition"))
    with_condition = shown.counts.filter(pl.col("condition") == condition)
    unknown_state = _cell_text(shown, with_condition.filter(pl.col("state").is_null()))
    if with_condition["n"].sum() == 0:
        st.info(
            f"No {unit} with {condition_label(condition).lower()} in this selection "
            f"({describe_filters(filters)})."
        )
        return
    full = rates.state_rates(
        with_condition.select("state", "n"),
        reference,
        per=rates.PER_CASES,
        tau=settings.tau,
        n_min=settings.n_min,
    ).with_columns(condition=pl.lit(condition))
    cell, totals = _BURDEN_CELL, ("share", "rr", "rr_low", "rr_high", "flag")
    table = shown.hide(full, cell, totals)
    names = load_reference().state_names
    table = table.with_columns(
        iso_code="state",
        name=pl.col("state").replace_strict(names, default=pl.col("state")),
        n_label=shown.labels(table),
        rate_label=shown.labels(table, "rate", lambda v: format_number(v, 2)),
        cases_label=pl.col("reference").map_elements(format_indian, return_dtype=pl.String),
    ).with_columns(
        rate_label=pl.when(pl.col(privacy.SUPPRESSED))
        .then(pl.lit(privacy.WITHHELD_LABEL))
        .otherwise("rate_label")
    )
    what = condition_label(condition).lower()
    left, right = st.columns(2)
    with left:
        clickable_state_chart(
            charts.state_bars(
                table.drop("condition", privacy.SUPPRESSED, privacy.SUPPRESSION),
                value_col="rate",
                label_col="rate_label",
                value_title=f"{unit.capitalize()} per 1,000 cases",
                tooltip={"n_label": f"{unit.capitalize()} with {what}", "cases_label": "Cases"},
                sequential_scale="sqrt",
                title=f"{unit.capitalize()} with {what} per 1,000 cases",
                row_height=17,
                width=260,
            ),
            "md_per_cases",
        )
    with right:
        # Not "share": the chart's long format uses that name itself.
        shares = (
            table.filter(pl.col("ref_share").is_not_null())
            .sort(["ref_share", "name"], descending=[True, False])
            .select("name", observed_share="share", reference_share="ref_share")
        )
        show_chart(
            mark_hidden(
                charts.share_vs_reference(
                    shares,
                    category_col="name",
                    category_title="State/UT",
                    reference_title="Share of cases",
                    title=f"Share of {unit} with {what} vs share of its cases",
                    subtitle="States in order of their share of the burden.",
                ).properties(width=220),
                ["category"],
                {
                    (name,): privacy.WITHHELD_LABEL
                    for name in table.filter(pl.col(privacy.SUPPRESSED))["name"].to_list()
                },
                ["observed_label", "rr_label"],
            )
        )
    # Σ over the known states is not a published total of state × condition: with any cell
    # of the condition hidden it would reveal the hidden ones.
    if shown.screen is None or not (shown.totals_withheld or table[privacy.SUPPRESSED].any()):
        total_rate = rates.rate(full["n"].sum(), full["reference"].sum(), rates.PER_CASES)
        st.caption(
            f"All states shown: {format_number(total_rate, 2)} {unit} per 1,000 cases "
            f"({format_indian(full['n'].sum())} {unit}, "
            f"{format_indian(full['reference'].sum())} cases)."
        )
    about(
        f"{UNIT_NOUNS[unit]} with at least one ICD-10 code of {what}, by state of residence, "
        f"{describe_filters(filters)}.",
        f"{cases.description}. Burden figures are by state only: sex, age and other filters "
        "narrow the data but not the cases.",
        f"{unknown_state} {unit} with {what} and an unknown state.",
    )
    exported = shown.download(full, cell, totals).with_columns(
        name=pl.col("state").replace_strict(names, default=pl.col("state"))
    )
    download_csv(
        exported.sort("name").select(
            state_ut="name",
            iso_code="state",
            **{f"{unit}_with_condition": "n"},
            estimated_cases="reference",
            per_1000_cases="rate",
            share_of_data="share",
            share_of_cases="ref_share",
            ratio_to_burden_share="rr",
            ratio_ci_low="rr_low",
            ratio_ci_high="rr_high",
            flag="flag",
        ),
        f"coverage_vs_burden_{condition}.csv",
        protected=True,
    )


_BURDEN_CELL = ("n", "rate", "share", "rr", "rr_low", "rr_high", "flag")


def _cell_text(shown: Shown, rows: pl.DataFrame) -> str:
    """One cell's count as the viewer may see it ("< k", "withheld" or the number)."""
    if rows.height == 0:
        return "0"
    hidden = shown.hide(rows)
    return shown.labels(hidden)[0] or "0"


def _make_order(shares: pl.DataFrame) -> list[str]:
    """Makes by their total across modalities, "Other makes" last."""
    order = (
        shares.group_by("make")
        .agg(pl.col("n").sum())
        .sort(["n", "make"], descending=[True, False])["make"]
        .to_list()
    )
    return [m for m in order if m != rates.OTHER_MAKES] + (
        [rates.OTHER_MAKES] if rates.OTHER_MAKES in order else []
    )


def _scanners(context: PageContext) -> None:
    key, filters, unit = context.key, context.filters, context.unit
    st.subheader("Scanner makes behind each modality")
    if not sees_in_full(context):
        st.info(
            "Scanner makes per modality are shown to the programme team only: the makes of a "
            "modality are small groups that small-cell suppression would hide almost entirely.",
            icon=":material/lock:",
        )
        return
    counts = cached_coverage(key, ("modality", "manufacturer"), unit, filters)
    models = rates.model_counts(cached_coverage(key, ("modality", "device_model"), unit, filters))
    diversity = (
        rates.scanner_diversity(counts)
        .join(models, on="modality", how="left", maintain_order="left")
        .with_columns(pl.col("models").fill_null(0))
        .select("modality", "n", "unknown", "makes", "models", "top_make", "top_share")
    )
    shares = rates.make_shares(counts, max_makes=MAX_MAKES)
    if shares.height == 0:
        st.info(f"No {unit} with a scanner make in their DICOM headers in this selection.")
        return
    st.dataframe(
        diversity.with_columns(
            pl.col("n").map_elements(format_indian, return_dtype=pl.String),
            pl.col("unknown").map_elements(format_indian, return_dtype=pl.String),
            pl.col("top_share").map_elements(format_percent, return_dtype=pl.String),
        ),
        column_config={
            "modality": "Modality",
            "n": unit.capitalize(),
            "unknown": "Make unknown",
            "makes": st.column_config.NumberColumn(
                "Makes", help="Distinct makes (header spellings of one make merged)"
            ),
            "models": st.column_config.NumberColumn(
                "Models", help="Distinct scanner models (ManufacturerModelName)"
            ),
            "top_make": "Top make",
            "top_share": "Top make's share",
        },
        hide_index=True,
        height=35 * (diversity.height + 1) + 3,  # every modality, no inner scrolling
    )
    show_chart(
        charts.heatmap(
            shares.with_columns(
                share_pct=pl.col("share") * 100,
                share_label=pl.col("share").map_elements(
                    lambda v: format_percent(v, 0), return_dtype=pl.String
                ),
            ),
            x_col="modality",
            y_col="make",
            value_col="share_pct",
            label_col="share_label",
            x_title="Modality",
            y_title="Make",
            value_title="Share of the modality (%)",
            x_order=diversity["modality"].to_list(),
            y_order=_make_order(shares),
            title=f"Each make's share of a modality's {unit}",
            subtitle="Columns add up to 100% over the known makes.",
        ).properties(width=alt.Step(40))
    )
    about(
        f"{UNIT_NOUNS[unit]} per modality and scanner make (the DICOM Manufacturer header), "
        f"{describe_filters(filters)}. Spellings of one make (SIEMENS, Siemens Healthineers; "
        "TOSHIBA_MEC, CANON_MEC) are merged; when counting patients, one scanned on two "
        "spellings of a make counts in both.",
        "None: a modality served by one or two makes is a risk for models that must work on "
        "every scanner.",
        f"{format_indian(int(diversity['unknown'].sum()))} {unit} without a make in the header.",
    )
    download_csv(
        rates.make_shares(counts).rename({"n": unit}),
        "scanner_makes_by_modality.csv",
    )


def render() -> None:
    """Draw the Modality and disease page."""
    started = start_page("Modality and disease")
    if started is None:
        return
    context, totals = started
    state_filter_note(context.filters, "md_show_all")
    if totals["studies"][0] == 0:
        show_no_studies(context.filters)
    else:
        _heatmap(context)
        _burden(context)
        _scanners(context)
    footer()
