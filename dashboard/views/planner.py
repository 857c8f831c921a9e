"""Collection planner: where the next B patients should come from, and which partner collects them.

Thin: the widgets pick the budget, the cells and the reference (shared with the Gaps page);
dashboard.gaps.build_plan (the same function as `python -m dashboard plan`) allocates the
budget for the lowest Jensen–Shannon distance, splits it across partners and forecasts when each
cell reaches its target at the current accrual.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import polars as pl
import pyarrow as pa
import streamlit as st

from dashboard import charts, privacy
from dashboard import gaps as gap_analysis
from dashboard.export import to_csv_bytes, to_xlsx_bytes
from dashboard.formatting import format_indian, format_ratio
from dashboard.views.common import (
    UNIT_NOUNS,
    PageContext,
    Shown,
    about,
    audited_export,
    cached_coverage,
    cached_query,
    describe_filters,
    download_csv,
    footer,
    shown_coverage,
    small_cell_k,
    start_page,
)
from dashboard.views.gaps import (
    cached_reference,
    dimension_picker,
    reference_picker,
    stored_upload,
    table_height,
)
from dashboard.views.widgets import natural_size, screen_table, show_spec

DEFAULT_BUDGET = 20_000
CHART_PARTNERS = 15
CAPACITY_HELP = (
    "A CSV with columns `institution_id` and `capacity`: the new patients each partner can "
    "add over the plan. With it, cells are capped by the partners that reach them and each "
    "partner's share is in proportion to its capacity there; partners not listed get none."
)


def _capacity(context: PageContext) -> tuple[pl.DataFrame | None, list[str]] | None:
    """The uploaded capacity table and its notes; None (after a message) when it is unusable."""
    with st.expander("Partner capacity (optional)", icon=":material/groups:"):
        upload = st.file_uploader(
            "Capacity CSV", type=["csv"], key="plan_capacity", help=CAPACITY_HELP
        )
        st.caption(CAPACITY_HELP)
    if upload is None:
        return None, []
    registry = cached_query(context.key, "partner_registry")
    try:
        path = stored_upload(upload.name, upload.getvalue())
        return gap_analysis.read_capacity(path, registry)
    except ValueError as problem:
        st.info(f"Capacity file not used: {problem}.", icon=":material/block:")
        return None


def protected_plan(
    outcome: gap_analysis.PlanOutcome,
    shown: Shown,
    context: PageContext,
    *,
    export: bool = False,
) -> gap_analysis.PlanOutcome:
    """The plan as the viewer may see it (the download pattern with ``export``): what derives
    from a hidden cell is nulled (privacy.PLAN_CELLS, PLAN_ROWS), and partners other than the
    viewer's own institution are merged per cell into "(other partners)", as in `plan --role`."""
    pattern = shown.pattern(export=export)
    if pattern is None:
        return outcome
    dims = list(outcome.dims)
    cells = shown.hide(
        outcome.cells, privacy.PLAN_CELLS.cell, privacy.PLAN_CELLS.totals, export=export
    )
    rows = privacy.merge_partners(
        outcome.rows(),
        dims,
        context.role.institutions_shown(),
        k=shown.k,
        months=gap_analysis.ACCRUAL_MONTHS,
    )
    rows = shown.hide(rows, privacy.PLAN_ROWS.cell, privacy.PLAN_ROWS.totals, export=export)
    partners = rows.filter(
        pl.col("institution").is_not_null() | (pl.col("allocated").fill_null(0) > 0)
    ).select(
        *dims, "institution", "institution_name", "allocated", "monthly_rate", "delivery_month"
    )
    withheld = pattern.totals_withheld
    return dataclasses.replace(
        outcome,
        cells=cells,
        partners=partners,
        jsd_before=None if withheld else privacy.coarse(outcome.jsd_before),
        jsd_after=None if withheld else privacy.coarse(outcome.jsd_after),
        jsd_after_proportional=None if withheld else privacy.coarse(outcome.jsd_after_proportional),
    )


def _headline(outcome: gap_analysis.PlanOutcome, shown: Shown) -> list[dict[str, Any]]:
    """The four headline cards (st.metric's arguments)."""
    summary = outcome.summary()
    cards: list[dict[str, Any]] = [{}] * 4
    before, after = summary["representativeness_before"], summary["representativeness_after"]
    cards[0] = _card(
        "Representativeness now",
        shown.divergence(before, format_ratio),
        help="1 − Jensen–Shannon distance from the reference.",
    )
    cards[1] = _card(
        "After this plan",
        shown.divergence(after, format_ratio),
        None if before is None or after is None else f"{after - before:+.2f}",
        help="The allocation with the lowest distance reachable with this budget.",
    )
    proportional = summary["jsd_after_proportional"]
    cards[2] = _card(
        "After a proportional plan",
        shown.divergence(None if proportional is None else 1 - proportional, format_ratio),
        help="The same budget split in proportion to the reference shares, for comparison.",
    )
    cards[3] = _card(
        "Allocated",
        format_indian(outcome.allocated),
        f"{format_indian(outcome.budget - outcome.allocated)} unallocated"
        if outcome.allocated < outcome.budget
        else None,
        delta_color="inverse",
        delta_arrow="off",
        help="Below the budget only when capacity caps cannot take it all.",
    )
    return cards


def _card(label: str, value: str, delta: str | None = None, **options: Any) -> dict[str, Any]:
    return {"label": label, "value": value, "delta": delta, **options}


def _partner_chart(outcome: gap_analysis.PlanOutcome, unit: str) -> dict[str, Any] | None:
    totals = gap_analysis.plan_partner_totals(outcome).head(CHART_PARTNERS)
    if totals.height == 0:
        return None
    # "DEMO-UP-01 · Lucknow": the id, which is unique, and the place, which people know.
    place = pl.col("institution_name").str.replace(r" \(fictional\)$", "").str.extract(r"([^,]+)$")
    frame = totals.select(
        partner=pl.when(pl.col("institution").is_null())
        .then(pl.lit("Unassigned"))
        .otherwise(pl.concat_str(pl.col("institution"), place.str.strip_chars(), separator=" · ")),
        allocated=pl.col("allocated"),
    )
    return natural_size(
        charts.category_bars(
            frame,
            category_col="partner",
            count_col="allocated",
            category_title="Partner",
            count_title=f"New {unit}",
            title=f"New {unit} per partner in this plan",
            subtitle=f"The {totals.height} partners with the most; the full list is below.",
        )
    )


def _body(context: PageContext) -> None:
    left, middle, right = st.columns([1, 2, 2])
    with left:
        budget = st.number_input(
            f"Budget (new {context.unit})",
            min_value=1,
            max_value=100_000_000,
            value=DEFAULT_BUDGET,
            step=1_000,
            key="plan_budget",
            bind="query-params",
        )
    with middle:
        dims = dimension_picker("plan", "Plan by (up to 3)")
    with right:
        spec = reference_picker("plan")
    capacity = _capacity(context)
    if not dims:
        st.info("Choose one to three dimensions to plan by.")
        return
    if spec is None or capacity is None:
        return
    caps, cap_notes = capacity
    view = _view(context, small_cell_k(), spec, tuple(dims), int(budget), caps, tuple(cap_notes))
    if isinstance(view, str):
        st.info(view, icon=":material/block:")
        return
    for card, options in zip(st.columns(4), view.cards, strict=True):
        card.metric(**options)
    for note in view.notes:
        st.caption(f"Note: {note}.")
    st.subheader("Per cell")
    st.caption(view.caption)
    st.dataframe(view.cells, hide_index=True, height=table_height(view.cells.num_rows))
    st.subheader("Per partner")
    if view.chart is not None:
        show_spec(view.chart)
    st.dataframe(view.partners, hide_index=True, height=table_height(view.partners.num_rows))
    with st.expander("Each partner's cells"):
        st.dataframe(view.per_partner, hide_index=True)
    buttons = st.columns(3)
    with buttons[0]:
        download_csv(view.cells_csv, "plan_cells.csv", "Cells (CSV)", protected=True)
    with buttons[1]:
        download_csv(view.partners_csv, "plan_partners.csv", "Per partner (CSV)", protected=True)
    with buttons[2]:
        st.download_button(  # the exports went through protected_plan (export pattern)
            "Plan (XLSX)",
            data=audited_export(view.xlsx, what="download plan.xlsx"),
            file_name="plan.xlsx",
            mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            on_click="ignore",
            icon=":material/download:",
            key="download_plan.xlsx",
        )
    about(*view.about)


@dataclasses.dataclass(frozen=True)
class PlanView:
    """The plan below the pickers, display-ready, as the context's role may see it (tables in
    the Arrow form st.dataframe sends: see widgets.screen_table)."""

    cards: list[dict[str, Any]]
    notes: tuple[str, ...]
    caption: str
    cells: pa.Table
    chart: dict[str, Any] | None
    partners: pa.Table
    per_partner: pa.Table
    cells_csv: bytes
    partners_csv: bytes
    xlsx: bytes
    about: tuple[str, str, str]


@st.cache_data(max_entries=64, show_spinner=False)
def _view(
    context: PageContext,
    k: int,
    spec: str,
    dims: tuple[str, ...],
    budget: int,
    caps: pl.DataFrame | None,
    cap_notes: tuple[str, ...],
) -> PlanView | str:
    """The plan (or why there is none), computed once per context (role included),
    reference, dimensions, budget and capacity table."""
    del k  # part of the cache key only (as the role, in the context)
    try:
        reference = cached_reference(spec, dims, context.filters)
    except ValueError as problem:
        return f"No reference for this view: {problem}."
    unit, key = context.unit, context.key
    inputs = gap_analysis.plan_inputs(
        lambda name, **params: cached_query(key, name, **params),
        lambda cell_dims, unit_, filters: cached_coverage(key, tuple(cell_dims), unit_, filters),
        reference,
        unit,
    )
    try:
        outcome = gap_analysis.build_plan(
            reference=reference, budget=budget, capacity=caps, notes=list(cap_notes), **inputs
        )
    except ValueError as problem:
        return f"No plan for this view: {problem}."
    shown = shown_coverage(context, reference.dims, filters=reference.filters)
    full, outcome = outcome, protected_plan(outcome, shown, context)
    cards = _headline(outcome, shown)
    cells = gap_analysis.plan_cells_display(outcome, unit)
    listed = outcome.cells.filter(pl.col("ref_share").is_not_null())
    untouched = listed.height - cells.height
    outside = outcome.cells.height - listed.height
    summary = outcome.summary()
    caption = (
        f"{format_indian(cells.height)} cells get new {unit}; {format_indian(untouched)} other "
        "reference cells are at or above what the budget can bring them to"
        + (
            f", and {format_indian(outside)} observed cells outside the reference get none"
            if outside
            else ""
        )
        + ". *Target reached*: the month the cell reaches now + new at its current accrual "
        f"(mean of {summary['accrual_months']})."
    )
    exports = gap_analysis.plan_exports(protected_plan(full, shown, context, export=True))
    # Hidden counts read "< k" or "withheld" in the files, never empty or 0.
    exports["cells"] = privacy.shown_counts(exports["cells"], shown.k)
    about_note = (
        f"{UNIT_NOUNS[unit]}, {describe_filters(reference.filters)}; partners reach the cells "
        "they have contributed to, and, where nobody has, the cells of their own state and of "
        "the states they have contributed from",
        outcome.reference,
        f"{shown.total(outcome.unknown, unknown=True)} {unit} with an unknown value, not "
        "planned for",
    )
    return PlanView(
        cards=cards,
        notes=tuple(outcome.notes),
        caption=caption,
        cells=screen_table(cells),
        chart=_partner_chart(outcome, unit),
        partners=screen_table(gap_analysis.plan_partners_display(outcome)),
        per_partner=screen_table(exports["per-partner"]),
        cells_csv=to_csv_bytes(exports["cells"]),
        partners_csv=to_csv_bytes(exports["per-partner"]),
        xlsx=to_xlsx_bytes(exports),
        about=about_note,
    )


def render() -> None:
    """Draw the Planner page."""
    started = start_page("Collection planner")
    if started is None:
        return
    context, totals = started
    if totals["studies"][0] == 0:
        st.info("The index has no studies yet. Ingest a manifest to plan collection.")
    else:
        _body(context)
    footer()
