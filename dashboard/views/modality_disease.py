"""Modality and disease: what was imaged for which condition, coverage of a condition by state
against its burden, and how many scanner makes stand behind each modality.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import altair as alt
import polars as pl
import pyarrow as pa
import streamlit as st

from dashboard import charts, privacy, rates
from dashboard.baselines import burden
from dashboard.config import load_settings
from dashboard.export import to_csv_bytes
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
    small_cell_k,
    start_page,
)
from dashboard.views.widgets import (
    Section,
    clickable_state_spec,
    condition_label,
    condition_picker,
    draw_section,
    mark_hidden,
    natural_size,
    screen_table,
    show_no_studies,
    show_spec,
    state_filter_note,
    text_column,
)

CONDITION_KEY = "md_condition"
MAX_MAKES = 24


def _heatmap(context: PageContext) -> None:
    st.subheader("Modality × condition")
    draw_section(_heatmap_view(context, small_cell_k()))


@st.cache_data(max_entries=256, show_spinner=False)
def _heatmap_view(context: PageContext, k: int) -> Section:
    del k  # part of the cache key only (as the role, in the context)
    filters, unit = context.filters, context.unit
    shown = shown_coverage(context, ("modality", "condition"))
    unknown = shown.total(
        int(shown.counts.filter(pl.col("condition").is_null())["n"].sum()), unknown=True
    )
    cells = shown.frame
    known = cells.filter(pl.col("condition").is_not_null())
    known = known.with_columns(
        condition_name=text_column(known["condition"], condition_label),
        n_label=shown.labels(cells).filter(cells["condition"].is_not_null()),
    )
    if known.height == 0:
        return Section(info=f"No {unit} with a recorded diagnosis in this selection.")
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
    spec = natural_size(
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
    note = (
        f"{UNIT_NOUNS[unit]} per modality (DICOM code) and condition, "
        f"{describe_filters(filters)}. Conditions come from the ICD-10 codes of each study "
        "(conditions.csv); 'normal' = no finding, 'other' = codes outside the list.",
        "None: counts of the data itself.",
        f"{unknown} {unit} without a diagnosis.",
    )
    csv = to_csv_bytes(
        shown.download(shown.counts.filter(pl.col("condition").is_not_null()))
        .select("modality", "condition", "n")
        .rename({"n": unit})
    )
    return Section(spec=spec, about=note, csv=csv, csv_name="modality_by_condition.csv")


def _burden(context: PageContext) -> None:
    st.subheader("Coverage of a condition by state vs its burden")
    condition = condition_picker(CONDITION_KEY)
    info = load_reference().conditions.filter(pl.col("condition") == condition)
    if info.height:
        typical = info["typical_modalities"][0].replace(";", ", ")
        st.caption(
            f"Typical imaging for {condition_label(condition).lower()}: {typical}. Narrow the "
            "Modality filter in the sidebar to one of them (e.g. DX for chest X-ray)."
        )
    section, shares_spec, caption = _burden_view(context, small_cell_k(), condition)
    if section.info is not None:
        st.info(section.info)
        return
    left, right = st.columns(2)
    with left:
        clickable_state_spec(section.spec, "md_per_cases")
    with right:
        show_spec(shares_spec)
    if caption is not None:
        st.caption(caption)
    draw_section(dataclasses.replace(section, spec=None))


@st.cache_data(max_entries=256, show_spinner=False)
def _burden_view(
    context: PageContext, k: int, condition: str
) -> tuple[Section, dict[str, Any] | None, str | None]:
    """The burden section as the context's role may see it: the per-cases chart (the
    section's spec), the share chart's spec, the caption under both, note and download."""
    del k  # part of the cache key only (as the role, in the context)
    filters, unit = context.filters, context.unit
    settings = load_settings()
    cases = burden(condition)
    reference = cases.frame
    if filters.states:
        reference = reference.filter(pl.col("state").is_in(filters.states))
    shown = shown_coverage(context, ("state", "condition"))
    with_condition = shown.counts.filter(pl.col("condition") == condition)
    unknown_state = _cell_text(shown, with_condition.filter(pl.col("state").is_null()))
    if with_condition["n"].sum() == 0:
        info = (
            f"No {unit} with {condition_label(condition).lower()} in this selection "
            f"({describe_filters(filters)})."
        )
        return Section(info=info), None, None
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
        cases_label=text_column(table["reference"], format_indian),
    ).with_columns(
        rate_label=pl.when(pl.col(privacy.SUPPRESSED))
        .then(pl.lit(privacy.WITHHELD_LABEL))
        .otherwise("rate_label")
    )
    what = condition_label(condition).lower()
    state_spec = natural_size(
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
        )
    )
    # Not "share": the chart's long format uses that name itself.
    shares = (
        table.filter(pl.col("ref_share").is_not_null())
        .sort(["ref_share", "name"], descending=[True, False])
        .select("name", observed_share="share", reference_share="ref_share")
    )
    shares_spec = natural_size(
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
    caption = None
    if shown.screen is None or not (shown.totals_withheld or table[privacy.SUPPRESSED].any()):
        total_rate = rates.rate(full["n"].sum(), full["reference"].sum(), rates.PER_CASES)
        caption = (
            f"All states shown: {format_number(total_rate, 2)} {unit} per 1,000 cases "
            f"({format_indian(full['n'].sum())} {unit}, "
            f"{format_indian(full['reference'].sum())} cases)."
        )
    note = (
        f"{UNIT_NOUNS[unit]} with at least one ICD-10 code of {what}, by state of residence, "
        f"{describe_filters(filters)}.",
        f"{cases.description}. Burden figures are by state only: sex, age and other filters "
        "narrow the data but not the cases.",
        f"{unknown_state} {unit} with {what} and an unknown state.",
    )
    exported = shown.download(full, cell, totals).with_columns(
        name=pl.col("state").replace_strict(names, default=pl.col("state"))
    )
    csv = to_csv_bytes(
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
        )
    )
    section = Section(
        spec=state_spec, about=note, csv=csv, csv_name=f"coverage_vs_burden_{condition}.csv"
    )
    return section, shares_spec, caption


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
    st.subheader("Scanner makes behind each modality")
    if not sees_in_full(context):
        st.info(
            "Scanner makes per modality are shown to the programme team only: the makes of a "
            "modality are small groups that small-cell suppression would hide almost entirely.",
            icon=":material/lock:",
        )
        return
    view = _scanners_view(context)
    if isinstance(view, str):
        st.info(view)
        return
    table, column_config, section = view
    st.dataframe(
        table,
        column_config=column_config,
        hide_index=True,
        height=35 * (table.num_rows + 1) + 3,  # every modality, no inner scrolling
    )
    show_spec(section.spec)
    about(*section.about)
    download_csv(section.csv, section.csv_name)


@st.cache_data(max_entries=256, show_spinner=False)
def _scanners_view(context: PageContext) -> str | tuple[pa.Table, dict[str, Any], Section]:
    """A message, or the scanner table as shown, its column titles and the chart section (for
    a viewer entitled to every row: the caller checks; the role is in the key all the same)."""
    key, filters, unit = context.key, context.filters, context.unit
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
        return f"No {unit} with a scanner make in their DICOM headers in this selection."
    table = diversity.with_columns(
        n=text_column(diversity["n"], format_indian),
        unknown=text_column(diversity["unknown"], format_indian),
        top_share=text_column(diversity["top_share"], format_percent),
    )
    column_config = {
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
    }
    spec = natural_size(
        charts.heatmap(
            shares.with_columns(
                share_pct=pl.col("share") * 100,
                share_label=text_column(shares["share"], lambda v: format_percent(v, 0)),
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
    note = (
        f"{UNIT_NOUNS[unit]} per modality and scanner make (the DICOM Manufacturer header), "
        f"{describe_filters(filters)}. Spellings of one make (SIEMENS, Siemens Healthineers; "
        "TOSHIBA_MEC, CANON_MEC) are merged; when counting patients, one scanned on two "
        "spellings of a make counts in both.",
        "None: a modality served by one or two makes is a risk for models that must work on "
        "every scanner.",
        f"{format_indian(int(diversity['unknown'].sum()))} {unit} without a make in the header.",
    )
    csv = to_csv_bytes(rates.make_shares(counts).rename({"n": unit}))
    section = Section(spec=spec, about=note, csv=csv, csv_name="scanner_makes_by_modality.csv")
    return screen_table(table), column_config, section


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
