"""Gaps: which cells of a cross (state × sex × age …) fall short of a reference, and by how much.

Thin: the widgets pick dimensions, reference, sort and τ; dashboard.gaps computes the table
(the same function as `python -m dashboard gaps`); charts.representation_ratio_chart draws it.
The reference picker is shared with the Planner page.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import streamlit as st

from dashboard import charts, privacy
from dashboard import gaps as gap_analysis
from dashboard.config import load_settings
from dashboard.export import to_csv_bytes
from dashboard.filters import Filters
from dashboard.formatting import format_indian, format_percent, format_ratio
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
from dashboard.views.widgets import natural_size, screen_table, show_spec

DIM_OPTIONS: tuple[str, ...] = gap_analysis.CELL_DIMENSIONS
REFERENCE_LABELS: dict[str, str] = {
    "population": "Population 2026",
    "population:census2011": "Census 2011",
    "burden": "Disease burden",
    "targets": "Targets CSV",
}
SORT_LABELS = {"shortfall": "Shortfall", "rr": "Representation ratio"}
CHART_ROWS = 30
TARGETS_HELP = (
    "A CSV with one column per dimension you cross (state names or ISO codes, sex M/F, "
    "age_band such as 60-64, urban/rural, modality codes …) and a `target` column (a share "
    "or a count per cell). Cells the file lists are the reference cells."
)


_GAPS = (privacy.GAPS.cell, privacy.GAPS.totals)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_reference(
    spec: str, dims: tuple[str, ...], filters: Filters
) -> gap_analysis.ResolvedReference:
    """Reference cells for the view (pure, cached; an impossible cross raises ValueError)."""
    return gap_analysis.resolve_reference(spec, dims, filters)


def stored_upload(name: str, data: bytes) -> Path:
    """Keep an uploaded CSV under its own name in a folder named by its content."""
    folder = Path(tempfile.gettempdir()) / "diversity-uploads" / hashlib.sha256(data).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (Path(name).name or "upload.csv")
    if not path.exists():
        path.write_bytes(data)
    return path


def table_height(rows: int, most: int = 420) -> int:
    """A table just tall enough for its rows (35 px each, plus the header), up to ``most``."""
    return min(most, 35 * (rows + 1) + 3)


def reference_picker(prefix: str) -> str | None:
    """The reference widgets (kind, then condition or targets upload); the spec or None."""
    kind = st.selectbox(
        "Reference",
        list(REFERENCE_LABELS),
        format_func=REFERENCE_LABELS.get,
        key=f"{prefix}_ref",
        bind="query-params",
        help="What each cell should hold: the population (MoHFW 2026 projection or Census "
        "2011), a condition's disease burden by state, or your programme's targets.",
    )
    if kind == "burden":
        condition = st.selectbox(
            "Condition",
            gap_analysis.burden_conditions(),
            format_func=lambda c: c.replace("_", " "),
            key=f"{prefix}_condition",
            bind="query-params",
            help="Only studies recording this condition are counted; burden is by state only.",
        )
        return f"burden:{condition}"
    if kind == "targets":
        upload = st.file_uploader(
            "Targets CSV", type=["csv"], key=f"{prefix}_targets", help=TARGETS_HELP
        )
        if upload is None:
            st.info(f"Upload a targets CSV to compare against. {TARGETS_HELP}")
            return None
        return f"targets:{stored_upload(upload.name, upload.getvalue())}"
    return kind


def dimension_picker(prefix: str, label: str) -> list[str]:
    """Up to three dimensions to cross, bound to the URL."""
    return st.multiselect(
        label,
        list(DIM_OPTIONS),
        default=["state"],
        max_selections=gap_analysis.MAX_DIMS,
        format_func=gap_analysis.DIM_TITLES.get,
        key=f"{prefix}_by",
        bind="query-params",
        help="Population figures exist by state, sex, age band and urban/rural (urban/rural "
        "not crossed with sex or age); disease burden by state; targets by their columns.",
    )


def _headline(result: gap_analysis.GapsResult, unit: str, shown: Shown) -> list[dict[str, Any]]:
    """The five headline cards (st.metric's arguments)."""
    flags = result.counts_by_flag()
    cards: list[dict[str, Any]] = [{}] * 5
    cards[0] = _card(
        "Representativeness",
        shown.divergence(result.representativeness, format_ratio),
        help="1 − Jensen–Shannon distance (base 2) between the observed cells and the "
        "reference: 1 = same distribution, 0 = nothing in common.",
    )
    cards[1] = _card(
        f"{unit.capitalize()} counted (N)",
        shown.total(result.total),
        help="With every chosen dimension known.",
    )
    unknown = shown.total(result.unknown, unknown=True)
    cards[2] = _card(
        "Unknown, left out",
        unknown,
        f"{format_percent(result.missing_rate)} missing"
        if unknown == format_indian(result.unknown)
        else None,  # the rate would reveal a hidden count
        delta_color="off",
        delta_arrow="off",
        help="An unknown value in any chosen dimension: left out of N, not silently dropped.",
    )
    cards[3] = _card(
        "Under-represented cells",
        format_indian(flags.get("under", 0)),
        help="Upper end of the 95% interval of RR below τ (and n ≥ n_min)"
        + ("; cells hidden by small-cell suppression are not flagged" if shown.any_hidden else "")
        + ".",
    )
    cards[4] = _card(
        "Empty cells",
        f"{format_indian(result.empty_cells)} of {format_indian(result.reference_cells)}",
        help="Reference cells with nothing observed; every one is listed in the table.",
    )
    return cards


def _card(label: str, value: str, delta: str | None = None, **options: Any) -> dict[str, Any]:
    return {"label": label, "value": value, "delta": delta, **options}


def _chart(result: gap_analysis.GapsResult, sort: str, unit: str) -> dict[str, Any] | None:
    table = result.table
    rows = gap_analysis.chart_frame(table, result.dims, CHART_ROWS)
    if rows.height == 0:
        return None
    order = "with the largest shortfall" if sort == "shortfall" else "with the lowest ratio"
    return natural_size(
        charts.representation_ratio_chart(
            rows,
            tau=result.tau,
            label_title=" × ".join(gap_analysis.DIM_TITLES[d] for d in result.dims),
            title="Representation ratio against the reference",
            subtitle=f"The {rows.height} cells {order}, of {format_indian(result.reference_cells)}",
            extra_tooltip={
                "n_label": unit.capitalize(),
                "expected_label": "Expected",
                "shortfall_label": "Shortfall",
            },
        )
    )


def _caption(result: gap_analysis.GapsResult, unit: str) -> str:
    outside = (
        f" The {format_indian(result.outside_cells)} observed cells the reference does not list "
        "come last (counted in N, flagged *not in reference*)."
        if result.outside_cells
        else ""
    )
    return (
        f"Every reference cell is listed: {format_indian(result.empty_cells)} of "
        f"{format_indian(result.reference_cells)} have no {unit} and "
        f"{format_indian(result.small_cells)} have fewer than {result.n_min} "
        "(flag *insufficient*: too few to evaluate a model on that subgroup)."
        f"{outside} Expected = reference share × N. Shortfall: {unit} that cell alone needs "
        f"to reach its reference share. Flags use τ = {result.tau:g} (band "
        f"{format_ratio(result.tau)}–{format_ratio(1 / result.tau)})."
    )


def _body(context: PageContext) -> None:
    settings = load_settings()
    left, middle, right = st.columns([2, 2, 1])
    with left:
        dims = dimension_picker("gaps", "Cross (up to 3)")
    with middle:
        spec = reference_picker("gaps")
    with right:
        sort = st.radio(
            "Sort by",
            list(SORT_LABELS),
            format_func=SORT_LABELS.get,
            key="gaps_sort",
            bind="query-params",
            horizontal=True,
        )
        tau = st.slider(
            "Tolerance τ",
            0.5,
            1.0,
            value=float(settings.tau),
            step=0.05,
            key="gaps_tau",
            bind="query-params",
            help="A cell is under-represented when its whole interval lies below τ, over when "
            "above 1/τ (0.8–1.25 is the four-fifths convention).",
        )
    if not dims:
        st.info("Choose one to three dimensions to cross.")
        return
    if spec is None:
        return
    view = _view(context, small_cell_k(), spec, tuple(dims), tau, sort)
    if isinstance(view, str):
        st.info(view, icon=":material/block:")
        return
    for card, options in zip(st.columns(5), view.cards, strict=True):
        card.metric(**options)
    for message, icon in view.notices:
        st.info(message, icon=icon)
    if view.chart is not None:
        show_spec(view.chart)
    st.subheader("Cells, ranked")
    st.caption(view.caption)
    st.dataframe(view.table, hide_index=True, height=table_height(view.table.num_rows))
    download_csv(view.csv, "gaps.csv", protected=True)
    about(*view.about)


@dataclasses.dataclass(frozen=True)
class GapsView:
    """The page below its pickers, display-ready, as the context's role may see it."""

    cards: list[dict[str, Any]]
    notices: list[tuple[str, str | None]]
    chart: dict[str, Any] | None
    caption: str
    table: pa.Table  # as st.dataframe sends it (widgets.screen_table)
    csv: bytes
    about: tuple[str, str, str]


@st.cache_data(max_entries=256, show_spinner=False)
def _view(
    context: PageContext, k: int, spec: str, dims: tuple[str, ...], tau: float, sort: str
) -> GapsView | str:
    """The gap analysis of the view (or why there is no reference), computed once per
    context (role included), reference, dimensions, τ and sort order."""
    del k  # part of the cache key only (as the role, in the context)
    settings = load_settings()
    try:
        reference = cached_reference(spec, dims, context.filters)
    except ValueError as problem:
        return f"No reference for this view: {problem}."
    unit = context.unit
    shown = shown_coverage(context, reference.dims, filters=reference.filters)
    full = gap_analysis.representation(shown.counts, reference, tau=tau, n_min=settings.n_min)
    # Hidden before sorting: a hidden cell's place in the ranking would reveal it.
    result = dataclasses.replace(full, table=shown.hide(full.table, *_GAPS))
    cards = _headline(result, unit, shown)
    notices: list[tuple[str, str | None]] = []
    if shown.totals_withheld:
        notices.append(
            (
                "N is withheld for this view (with it, a hidden small cell could be worked "
                "out): shares, ratios and shortfalls are not shown. Fewer dimensions or wider "
                "filters show more.",
                ":material/lock:",
            )
        )
    if result.total == 0:
        notices.append(
            (
                f"No {unit} with known {', '.join(dims)} in this view: every cell is empty. "
                "Widen the filters or ingest more data.",
                None,
            )
        )
    ranked = dataclasses.replace(result, table=gap_analysis.sort_gaps(result.table, sort))
    display = gap_analysis.gaps_display(ranked, unit).with_columns(
        shown.labels(ranked.table).alias(unit.capitalize())
    )
    exported = gap_analysis.sort_gaps(shown.download(full.table, *_GAPS), sort)
    csv = to_csv_bytes(gap_analysis.gaps_export(dataclasses.replace(full, table=exported)))
    notes = "; ".join(reference.notes)
    about_note = (
        f"{UNIT_NOUNS[unit]}, {describe_filters(reference.filters)}",
        f"{result.reference}" + (f" — {notes}" if notes else ""),
        f"{shown.total(result.unknown, unknown=True)} {unit} with an unknown "
        f"{' or '.join(gap_analysis.DIM_TITLES[d].lower() for d in result.dims)} "
        + (f" ({format_percent(result.missing_rate)})" if shown.screen is None else ""),
    )
    return GapsView(
        cards,
        notices,
        _chart(ranked, sort, unit),
        _caption(ranked, unit),
        screen_table(display),
        csv,
        about_note,
    )


def render() -> None:
    """Draw the Gaps page."""
    started = start_page("Gaps")
    if started is None:
        return
    context, totals = started
    if totals["studies"][0] == 0:
        st.info("The index has no studies yet. Ingest a manifest to see the gaps.")
    else:
        _body(context)
    footer()
