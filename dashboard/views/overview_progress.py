"""Overview's programme-manager panels: representativeness, the worst gaps, this month's accrual.

Kept apart from overview.py so that each module stays short; both are thin: the numbers come
from dashboard.gaps (the same code as the Gaps page and `python -m dashboard score`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from urllib.parse import urlencode

import polars as pl
import streamlit as st

from dashboard import gaps as gap_analysis
from dashboard import privacy
from dashboard.filters import Filters
from dashboard.formatting import format_indian, format_ratio
from dashboard.roles import Role
from dashboard.views.common import (
    PageContext,
    Shown,
    SnapshotKey,
    about,
    cached_totals,
    headline_count,
    shown_coverage,
    small_cell_k,
)

SCORED_DIMS = ("state", "sex", "age_band", "area_type")
WORST_GAPS = 5
GAP_DIMS = ("state", "sex", "age_band")


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def previous_month_end(day: dt.date) -> dt.date:
    return month_start(day) - dt.timedelta(days=1)


def _signed_change(delta: float) -> str:
    """'+0.012', '-0.004', or 'no change' when it rounds to zero at three decimals."""
    return "no change" if abs(delta) < 0.0005 else f"{delta:+.3f}"


def _result(
    context: PageContext, dims: tuple[str, ...], filters: Filters
) -> tuple[gap_analysis.GapsResult, Shown]:
    """The gap analysis of ``dims`` and its counts as the viewer may see them; the result's
    table has what the viewer may not see nulled (privacy.GAPS), before any sorting."""
    reference = gap_analysis.resolve_reference("population", dims, filters)
    counts = shown_coverage(context, reference.dims, filters=reference.filters)
    result = gap_analysis.representation(counts.counts, reference)
    hidden = counts.hide(result.table, privacy.GAPS.cell, privacy.GAPS.totals)
    return dataclasses.replace(result, table=hidden), counts


@dataclasses.dataclass(frozen=True)
class Card:
    """One representativeness card as drawn: title, value and change, help text."""

    title: str
    value: str
    delta: str | None
    delta_color: str
    help: str


@st.cache_data(max_entries=256, show_spinner=False)
def representativeness_cards(
    key: SnapshotKey, filters: Filters, unit: str, role: Role, k: int, last_date: dt.date
) -> list[Card]:
    """The representativeness cards as this role may see them, computed once per snapshot,
    filters, unit and role (the role and k are in the key: what one role sees never reaches
    another)."""
    del k  # part of the cache key only: shown_coverage reads it from the settings
    context = PageContext(key=key, filters=filters, unit=unit, role=role)
    as_of = previous_month_end(last_date)
    before = dataclasses.replace(filters, date_to=min(as_of, filters.date_to or as_of))
    cards = []
    for dim in SCORED_DIMS:
        title = gap_analysis.DIM_TITLES[dim]
        try:
            now, shown_now = _result(context, (dim,), filters)
            then, shown_then = _result(context, (dim,), before)
        except ValueError as problem:
            cards.append(Card(title, "–", None, "normal", str(problem)))
            continue
        value = shown_now.divergence(now.representativeness, format_ratio)
        previous = shown_then.divergence(then.representativeness, format_ratio)
        delta = (
            float(value) - float(previous) if _is_number(value) and _is_number(previous) else None
        )
        cards.append(
            Card(
                title,
                value,
                None if delta is None else _signed_change(delta),
                "off" if delta is not None and abs(delta) < 0.0005 else "normal",
                f"1 − Jensen–Shannon distance (base 2) between the data's "
                f"{dim.replace('_', ' ')} shares and {now.reference}; 1 = same mix as the "
                f"population. {shown_now.total(now.unknown, unknown=True)} {unit} with unknown "
                f"{dim.replace('_', ' ')} left out.",
            )
        )
    return cards


def representativeness(context: PageContext, last_date: dt.date) -> None:
    """1 − JSD vs the 2026 population per dimension, and its change since last month's end."""
    st.subheader("Representativeness vs the 2026 population")
    as_of = previous_month_end(last_date)
    assert context.key is not None
    shown = representativeness_cards(
        context.key, context.filters, context.unit, context.role, small_cell_k(), last_date
    )
    for card, value in zip(st.columns(len(SCORED_DIMS)), shown, strict=True):
        card.metric(
            value.title,
            value.value,
            delta=value.delta,
            delta_color=value.delta_color,
            help=value.help,
        )
    st.caption(f"Change since the data as it stood on {as_of:%d %b %Y}.")
    about(
        f"{context.unit} by each dimension, compared with the population shares; the change is "
        f"against the data as it stood on {as_of:%d %b %Y}",
        "MoHFW projection for 1 March 2026 (2011 age and urban/rural structure scaled to it)",
        "unknown values of each dimension (counted under each card's help)",
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _gaps_link(filters_query: dict[str, list[str]]) -> str:
    params = dict(filters_query)
    params["gaps_by"] = [gap_analysis.DIM_TITLES[d] for d in GAP_DIMS]
    return "gaps?" + urlencode(params, doseq=True)


@dataclasses.dataclass(frozen=True)
class WorstGaps:
    """The worst-gaps panel as drawn: a problem, or the listed lines (none: no gap, or all
    withheld) with what the note under them says."""

    problem: str | None = None
    lines: tuple[str, ...] = ()
    withheld: bool = False
    any_hidden: bool = False
    reference: str = ""
    unknown: str = ""


@st.cache_data(max_entries=256, show_spinner=False)
def worst_gap_lines(key: SnapshotKey, filters: Filters, unit: str, role: Role, k: int) -> WorstGaps:
    """The five worst gaps as this role may see them (role and k are in the cache key)."""
    del k  # part of the cache key only: shown_coverage reads it from the settings
    context = PageContext(key=key, filters=filters, unit=unit, role=role)
    try:
        result, shown = _result(context, GAP_DIMS, filters)
    except ValueError as problem:
        return WorstGaps(problem=str(problem))
    under = result.table.filter(pl.col("shortfall") > 0)
    top = gap_analysis.sort_gaps(under, "shortfall").head(WORST_GAPS)
    labels = gap_analysis.cell_labels(top, GAP_DIMS) if top.height else []
    lines = tuple(
        f"{i}. **{label}**: {format_indian(row['n'])} observed, "
        f"{format_indian(row['expected'])} expected, RR {format_ratio(row['rr'])}, "
        f"short by {format_indian(row['shortfall'])}"
        for i, (label, row) in enumerate(zip(labels, top.to_dicts(), strict=True), start=1)
    )
    return WorstGaps(
        lines=lines,
        withheld=shown.totals_withheld,
        any_hidden=shown.any_hidden,
        reference=result.reference,
        unknown=shown.total(result.unknown, unknown=True),
    )


def worst_gaps(context: PageContext, filters_query: dict[str, list[str]]) -> None:
    """The five cells of state × sex × age band furthest below their population share."""
    st.subheader("Five largest gaps")
    assert context.key is not None
    gaps = worst_gap_lines(context.key, context.filters, context.unit, context.role, small_cell_k())
    if gaps.problem is not None:
        st.info(f"No population reference for this view: {gaps.problem}.")
        return
    if not gaps.lines and gaps.withheld:
        st.info(
            "Withheld for this view: with so many small cells, the gaps would reveal them. "
            "Choose fewer dimensions on the Gaps page.",
            icon=":material/lock:",
        )
        return
    if not gaps.lines:
        st.success("No cell of state × sex × age band is below its population share.")
        return
    st.markdown("\n".join(gaps.lines))
    st.markdown(f"[Open the full gap table]({_gaps_link(filters_query)})")
    about(
        f"{context.unit} per cell of state × sex × age band; shortfall = additional "
        f"{context.unit} of that cell alone that would bring its share to the population share"
        + ("; cells hidden by small-cell suppression are not listed" if gaps.any_hidden else ""),
        gaps.reference,
        f"{gaps.unknown} {context.unit} with an unknown state, sex or age",
    )


def accrual(context: PageContext, last_date: dt.date) -> None:
    """Studies and new patients this month so far, against the same days of last month."""
    this_from = month_start(last_date)
    last_from = month_start(previous_month_end(last_date))
    last_to = min(last_from + (last_date - this_from), previous_month_end(last_date))

    def totals(start: dt.date, end: dt.date) -> dict:
        window = dataclasses.replace(context.filters, date_from=start, date_to=end)
        return cached_totals(context.key, window).row(0, named=True)

    now, then = totals(this_from, last_date), totals(last_from, last_to)
    st.subheader(f"Collection this month ({this_from:%b %Y}, to {last_date:%d %b})")
    cards = st.columns(2)
    for card, label in zip(cards, ("studies", "patients"), strict=True):
        shown_now, shown_then = (headline_count(context, t[label]) for t in (now, then))
        change = now[label] - then[label]
        card.metric(
            f"{label.capitalize()} this month",
            shown_now,
            delta=f"{'+' if change >= 0 else ''}{format_indian(change)} vs "
            f"{last_from:%d %b}–{last_to:%d %b}"
            if not (shown_now.startswith("<") or shown_then.startswith("<"))
            else f"{shown_then} in {last_from:%d %b}–{last_to:%d %b}",
            delta_color="normal" if not shown_then.startswith("<") else "off",
        )
    about(
        f"studies dated {this_from:%d %b}–{last_date:%d %b %Y}, and the distinct patients among "
        f"them, against the same days of the month before ({last_from:%d %b}–{last_to:%d %b})",
        None,
        "studies outside the shared filters",
    )
