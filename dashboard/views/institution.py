"""Institution: one partner's contribution, its patients' mix, its quarantine and its best gaps.

The partner is chosen in a selectbox bound to the URL (``?partner=DEMO-KA-01``), so a partner
can bookmark its own page. The shared filters apply to everything drawn from the index except
the Institution filter, which only picks the partner shown first: the programme a partner is
compared with is always every institution.

Each section is computed once per (snapshot, filters, unit, partner, partner's own view) and
kept display-ready in st.cache_data (chart specs, tables in the Arrow form st.dataframe sends,
CSV bytes), so a warm run only draws.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import polars as pl
import pyarrow as pa
import streamlit as st

from dashboard import charts, privacy
from dashboard.baselines import ReferenceUnavailableError, population
from dashboard.config import load_settings
from dashboard.coverage import known_mask
from dashboard.export import to_csv_bytes
from dashboard.filters import Filters
from dashboard.formatting import format_indian, format_percent
from dashboard.metrics import representation_table
from dashboard.quality import (
    cell_labels,
    complete_months,
    default_partner,
    display_table,
    furthest_below,
    gaps_within_reach,
    programme_share,
    quarantine_by_institution,
    recent_share,
    rows_phrase,
    share_trend,
)
from dashboard.reference import load_reference
from dashboard.views.common import (
    UNIT_NOUNS,
    PageContext,
    SnapshotKey,
    about,
    cached_coverage,
    cached_query,
    describe_filters,
    download_csv,
    footer,
    restricted,
    small_cell_k,
    start_page,
)
from dashboard.views.data_quality import QUARANTINE_SCOPE, rows_to_fix_view
from dashboard.views.overview import pyramid_shares
from dashboard.views.sidebar import SEX_LABELS
from dashboard.views.widgets import natural_size, screen_table, show_spec

PARTNER_KEY = "partner"
GAP_DIMS_KEY = "partner_gap_dims"
GAP_DIMS: dict[str, tuple[str, ...]] = {
    "State × sex × age band": ("state", "sex", "age_band"),
    "State": ("state",),
}
TOP_GAPS = 15


def _partner_header(partner: dict[str, Any]) -> None:
    names = load_reference().state_names
    st.subheader(partner["name"])
    where = ", ".join(p for p in (partner["city"], names.get(partner["state"] or "")) if p)
    facility = (partner["facility_type"] or "").replace("_", " ")
    details = [where or "state not registered", facility, partner["sector"]]
    if partner["joined_date"]:
        details.append(f"partner since {partner['joined_date']:%B %Y}")
    st.caption(" · ".join(d for d in details if d))


@st.cache_data(max_entries=16, show_spinner=False)
def _partners(key: SnapshotKey) -> dict[str, dict[str, Any]]:
    """The registry: institution id → its row (name, state, city, ...), in registry order."""
    registry = cached_query(key, "partner_registry")
    return {row["institution_id"]: row for row in registry.iter_rows(named=True)}


@st.cache_data(max_entries=256, show_spinner=False)
def _page_view(
    key: SnapshotKey, everyone: Filters, partner: str, unit: str, own: bool
) -> dict[str, Any]:
    """The partner's page under ``everyone`` (the filters with no institution), ready to draw
    in one cache lookup per run: its share of the programme, its quarantine row, and, when it
    has studies, its contributions, trend (not for the partner's own view) and mix sections.
    (Its rows to fix are a resource of their own: see data_quality.rows_to_fix_view.)"""
    monthly = cached_query(key, "partner_monthly", **everyone.params())
    share = programme_share(monthly, partner)
    mine = dataclasses.replace(everyone, institutions=(partner,))
    view: dict[str, Any] = {
        "share": share,
        "quarantine": _quarantine_row(key, partner),
        "contributions": None,
        "trend": None,
        "mix": None,
    }
    if share["studies"]["partner"]:
        view["contributions"] = _contribution_charts(key, mine)
        view["trend"] = None if own else _trend_view(key, everyone, partner, unit)
        view["mix"] = _mix_view(key, mine, unit, _partners(key)[partner]["state"])
    return view


def _quarantine_row(key: SnapshotKey, partner: str) -> dict[str, Any]:
    accepted = cached_query(
        key, "dq_missing_by_institution", **Filters(institutions=(partner,)).params()
    ).select("institution", "studies")
    by_file = cached_query(key, "dq_quarantine_by_file", f_institutions=[partner])
    rates = quarantine_by_institution(by_file, accepted).filter(pl.col("institution") == partner)
    if rates.height == 0:
        return {"studies": 0, "rows_to_fix": 0, "rate": None, "files": 0}
    return rates.row(0, named=True)


def _programme_part(share: dict[str, Any], k: int, partner_view: bool) -> tuple[str, str]:
    """The institution's share of the programme and the programme's total, as text; for a
    partner, withheld when the other partners' part is a small count (share and total would
    give it away)."""
    others = share["programme"] - share["partner"]
    if partner_view and 0 < others < k:
        return privacy.WITHHELD_LABEL, privacy.WITHHELD_LABEL
    return format_percent(share["share"]), format_indian(share["programme"])


def _headline(
    share: dict[str, dict[str, Any]], quarantine: dict[str, Any], partner_view: bool = False
) -> None:
    k = small_cell_k()
    studies_share, studies_total = _programme_part(share["studies"], k, partner_view)
    patients_share, patients_total = _programme_part(share["patients"], k, partner_view)
    cards = st.columns(6)
    cards[0].metric("Studies", format_indian(share["studies"]["partner"]))
    cards[1].metric(
        "Patients",
        format_indian(share["patients"]["partner"]),
        help="Distinct (institution, pseudonymous patient id).",
    )
    cards[2].metric("Images", format_indian(share["images"]["partner"]))
    cards[3].metric(
        "Share of studies",
        studies_share,
        help=f"Of the programme's {studies_total} studies (every partner, same filters).",
    )
    cards[4].metric(
        "Share of patients",
        patients_share,
        help=f"Of the programme's {patients_total} patients (every partner, same filters).",
    )
    cards[5].metric(
        "Quarantine rate",
        format_percent(quarantine["rate"]),
        help=f"{format_indian(quarantine['rows_to_fix'])} rows to fix ÷ (studies accepted + rows "
        f"to fix). {QUARANTINE_SCOPE}",
    )


@st.cache_data(max_entries=256, show_spinner=False)
def _contribution_charts(key: SnapshotKey, mine: Filters) -> tuple[tuple[str, dict, bytes], ...]:
    """Per unit (studies, patients): the chart's spec and the CSV of the institution's monthly
    counts by modality (the institution is in ``mine``; nothing here is suppressed: the page
    shows an institution in full to those entitled to it only)."""
    views = []
    for unit in ("studies", "patients"):
        monthly = complete_months(
            cached_coverage(key, ("month", "modality"), unit, mine), "modality"
        )
        spec = natural_size(
            charts.accrual_chart(
                monthly,
                count_col="n",
                count_title=unit.capitalize(),
                category_col="modality",
                category_title="Modality",
                max_categories=6,
                title=f"{unit.capitalize()} per month, by modality",
            )
        )
        views.append((unit, spec, to_csv_bytes(monthly)))
    return tuple(views)


def _contributions(
    views: tuple[tuple[str, dict, bytes], ...], mine: Filters, own: bool = False
) -> None:
    st.subheader("Contributions by month and modality")
    # One under the other: a monthly chart (560 px, and its legend) is wider than half the page
    for unit, spec, csv in views:
        show_spec(spec)
        download_csv(csv, f"{unit}_by_month_modality.csv", protected=own)
    scope = describe_filters(dataclasses.replace(mine, institutions=()))
    about(
        "studies, and distinct patients with a study in that month and modality (a patient seen "
        f"in two months counts in both); {scope}."
    )


def _trend(view: Any, partner: str, unit: str) -> None:
    st.subheader("Trend")
    (label, value, delta, help_text), cumulative, shares, csv = view
    st.metric(label, value, delta=delta, help=help_text)
    show_spec(cumulative)  # one under the other, like the contributions: 560 px each
    show_spec(shares)
    about(
        f"{UNIT_NOUNS[unit]}; for patients, each is counted in the month of their first study, "
        "so the running total is exact. Share = this partner ÷ all partners that month.",
    )
    download_csv(csv, f"{partner}_share_by_month.csv")


@st.cache_data(max_entries=256, show_spinner=False)
def _trend_view(
    key: SnapshotKey, everyone: Filters, partner: str, unit: str
) -> tuple[tuple[str, str, str | None, str], dict, dict, bytes]:
    """The trend's card, its two charts' specs and its CSV."""
    monthly = cached_query(key, "partner_monthly", **everyone.params())
    trend = share_trend(monthly, partner, unit)
    recent, before = recent_share(trend)
    delta = (
        f"{(recent - before) * 100:+.1f} percentage points vs the 3 months before"
        if recent is not None and before is not None
        else None
    )
    card = (
        f"Share of the programme's {unit}, last 3 months",
        format_percent(recent),
        delta,
        "Months are the last three with any study in the programme (after the filters).",
    )
    cumulative = natural_size(
        charts.accrual_chart(
            trend,
            count_col="partner",
            count_title=unit.capitalize(),
            cumulative=True,
            title=f"{unit.capitalize()} contributed to date",
        )
    )
    shares = natural_size(
        charts.accrual_chart(
            trend,
            count_col="share_pct",
            count_title="Share (%)",
            title=f"Share of the programme's {unit}, month by month",
        )
    )
    return card, cumulative, shares, to_csv_bytes(trend)


def _sex_shares(table: pl.DataFrame) -> pl.DataFrame:
    return (
        table.filter(pl.col("ref_share").is_not_null())
        .group_by("sex")
        .agg(pl.col("n").sum(), pl.col("ref_share").sum())
        .with_columns(
            observed_share=pl.col("n") / pl.col("n").sum(),
            reference_share=pl.col("ref_share"),
            sex_label=pl.col("sex").replace(SEX_LABELS),
        )
        .sort("sex", descending=True)
    )


def _mix(view: Any, own: bool = False) -> None:
    st.subheader("Its patients' mix against its own state's population")
    if isinstance(view, str):
        st.info(view)
        return
    by_sex, title, below, pyramid, note, csv = view
    left, right = st.columns(2)
    with left:
        show_spec(by_sex)
        st.markdown(title)
        st.dataframe(below, hide_index=True)
    with right:
        show_spec(pyramid)
    about(*note)
    download_csv(csv, "mix_vs_state_population.csv", protected=own)


@st.cache_data(max_entries=256, show_spinner=False)
def _mix_view(key: SnapshotKey, mine: Filters, unit: str, state: str | None) -> Any:
    """The mix section's message, or its charts' specs, table, note and CSV."""
    names = load_reference().state_names
    if not state:
        return "The registry has no state for this institution, so there is no census to compare."
    try:
        baseline = population(
            ["sex", "age_band"], source=load_settings().population_reference, states=[state]
        )
    except ReferenceUnavailableError as problem:
        return str(problem)
    observed = cached_coverage(key, ("sex", "age_band"), unit, mine)
    known = observed.filter(known_mask(["sex", "age_band"]))
    if known.height == 0:
        return f"None of its {unit} has both sex and age known, so there is no mix to compare."
    settings = load_settings()
    table = representation_table(
        known, baseline.frame, ["sex", "age_band"], tau=settings.tau, n_min=settings.n_min
    )
    unknown = int(observed["n"].sum() - known["n"].sum())
    drawn = int(known.filter(pl.col("sex").is_in(["M", "F"]))["n"].sum())
    state_name = names.get(state, state)
    by_sex = natural_size(
        charts.share_vs_reference(
            _sex_shares(table),
            category_col="sex_label",
            category_title="Sex",
            observed_title="Institution",
            reference_title=state_name,
            title=f"{unit.capitalize()} by sex vs {state_name}'s population",
        )
    )
    title = f"**Groups furthest below {state_name}'s population**"
    below = furthest_below(table, ["sex", "age_band"])
    below_table = display_table(
        below.select(
            label=cell_labels(below, ["sex", "age_band"], {"sex": SEX_LABELS}),
            n="n",
            share="share",
            ref_share="ref_share",
            rr="rr",
            flag="flag",
        ),
        counts=["n"],
        percents=["share", "ref_share"],
        ratios=["rr"],
        titles={
            "label": "Group",
            "n": unit.capitalize(),
            "share": "Share here",
            "ref_share": "Population share",
            "rr": "Ratio",
            "flag": "Flag",
        },
    )
    census = baseline.frame.rename({"ref_weight": "population"})
    pyramid = natural_size(
        charts.age_sex_pyramid(
            pyramid_shares(observed, census),
            observed_title="Institution",
            reference_title=state_name,
            title=f"{unit.capitalize()} by age and sex vs {state_name}'s population",
            subtitle=f"Shares of {unit} with known age and sex (M/F); "
            f"{format_indian(int(observed['n'].sum()) - drawn)} others left out.",
        )
    )
    note = (
        f"{UNIT_NOUNS[unit]} of this institution; "
        f"{describe_filters(dataclasses.replace(mine, institutions=()))}.",
        baseline.description + ".",
        f"{format_indian(unknown)} {unit} with sex or age unknown; sex 'other' has no "
        "population figure and is listed without a ratio.",
    )
    csv = to_csv_bytes(table.with_columns(sex=pl.col("sex").replace(SEX_LABELS)))
    return by_sex, title, screen_table(below_table), pyramid, note, csv


def _quarantine(
    rows: tuple[int, pa.Table, bytes],
    partner: str,
    quarantine: dict[str, Any],
    own: bool = False,
) -> None:
    st.subheader("Quarantine")
    height, shown, csv = rows
    if height == 0:
        st.success(
            "Nothing in quarantine: every row this institution submitted was accepted.",
            icon=":material/check_circle:",
        )
        return
    st.markdown(
        f"**{rows_phrase(height)} to fix** "
        f"({format_percent(quarantine['rate'])} of the rows submitted, in "
        f"{format_indian(quarantine['files'])} file(s)). Correct them in the CSV below and submit "
        "it again on the Submit page or with `python -m dashboard ingest manifest`."
    )
    st.dataframe(shown, hide_index=True)
    download_csv(
        csv,
        f"quarantine_{partner}.csv",
        label=f"Download the {rows_phrase(height)} to fix (CSV)",
        protected=own,  # rows as submitted: the admin and their own partner only
    )
    about(
        "rows of this institution still in quarantine, each with all its reasons and its values "
        "as submitted.",
        reference="quarantine rate = rows to fix ÷ (studies accepted in the index + rows to fix).",
        unknown=QUARANTINE_SCOPE,
    )


def _gap_table(
    key: SnapshotKey, everyone: Filters, mine: Filters, unit: str, dims: tuple[str, ...]
) -> pl.DataFrame | str:
    """The gaps within the institution's reach, or why there is no reference."""
    settings = load_settings()
    try:
        baseline = population(
            list(dims), source=settings.population_reference, states=list(everyone.states) or None
        )
    except ReferenceUnavailableError as problem:
        return str(problem)
    observed = cached_coverage(key, dims, unit, everyone).filter(known_mask(dims))
    table = representation_table(
        observed, baseline.frame, dims, tau=settings.tau, n_min=settings.n_min
    )
    partner_cells = cached_coverage(key, dims, unit, mine)
    gaps = gaps_within_reach(table, partner_cells, dims)
    names = {"state": load_reference().state_names, "sex": SEX_LABELS}
    return gaps.with_columns(label=cell_labels(gaps, dims, names))


def _gaps(key: SnapshotKey, everyone: Filters, mine: Filters, unit: str) -> None:
    st.subheader("The gaps it is best placed to fill")
    choice = st.segmented_control(
        "Cells", list(GAP_DIMS), default=next(iter(GAP_DIMS)), key=GAP_DIMS_KEY
    )
    dims = GAP_DIMS[choice or next(iter(GAP_DIMS))]
    view = _gaps_view(key, everyone, mine, unit, dims)
    if isinstance(view, str):
        st.info(view)
        return
    spec, table, csv = view
    show_spec(spec)
    st.dataframe(table, hide_index=True)
    about(
        f"cells where the whole programme's {unit} fall short of the population share "
        "(flag 'under', or a shortfall above 0) and this institution has contributed before, "
        "ranked by shortfall: the extra patients of that cell alone that would bring it to parity.",
        reference="population projection for 2026 (MoHFW), age structure from Census 2011"
        + (f"; {describe_filters(everyone)}" if not everyone.is_empty else "."),
        unknown="studies with the cell's state, sex or age unknown; sex 'other' (no population "
        "figure).",
    )
    download_csv(csv, "gaps_within_reach.csv")


@st.cache_data(max_entries=256, show_spinner=False)
def _gaps_view(
    key: SnapshotKey, everyone: Filters, mine: Filters, unit: str, dims: tuple[str, ...]
) -> str | tuple[dict[str, Any], pa.Table, bytes]:
    """A message, or the gaps chart's spec, the table as shown and its CSV."""
    gaps = _gap_table(key, everyone, mine, unit, dims)
    if isinstance(gaps, str):
        return gaps
    if gaps.height == 0:
        return (
            "No under-represented cell of the programme is within this institution's reach "
            "(cells it has contributed to before). Its past contributions fall where the "
            "programme already matches the population."
        )
    top = gaps.head(TOP_GAPS)
    spec = natural_size(
        charts.category_bars(
            top,
            category_col="label",
            count_col="shortfall",
            category_title=" × ".join(d.replace("_", " ") for d in dims).capitalize(),
            count_title=f"Shortfall ({unit})",
            colour=charts.FLAG_COLOURS[0],
            title=f"The programme's {top.height} largest gaps this institution has reached before",
            subtitle=f"Extra {unit} each cell needs to match the 2026 population share "
            "(whole programme).",
        )
    )
    shown = gaps.select("label", "n", "expected", "rr", "flag", "shortfall", "partner_n")
    table = display_table(
        shown.with_columns(pl.col("expected").round(0)),
        counts=["n", "expected", "shortfall", "partner_n"],
        ratios=["rr"],
        titles={
            "label": "Cell",
            "n": "Programme",
            "expected": "Expected at parity",
            "rr": "Ratio",
            "flag": "Flag",
            "shortfall": "Shortfall",
            "partner_n": "This institution so far",
        },
    )
    return spec, screen_table(table), to_csv_bytes(gaps.drop("label"))


def _page(context: PageContext, partners: dict[str, dict[str, Any]]) -> None:
    key, filters, unit = context.key, context.filters, context.unit
    ids = list(partners)
    viewer = context.role.institution
    if viewer is not None:  # a partner sees its own institution's page, whatever the URL says
        ids = [i for i in ids if i == viewer]
        if not ids:
            st.info(f"Institution {viewer} is not in the registry of this index yet.")
            return
    partner = st.selectbox(
        "Partner institution",
        ids,
        index=default_partner(ids, filters.institutions),
        key=PARTNER_KEY,
        bind="query-params",
        help="Institution id; the page address keeps it (…/institution?partner=ID).",
    )
    row = partners[partner]
    _partner_header(row)
    everyone = dataclasses.replace(filters, institutions=())
    mine = dataclasses.replace(filters, institutions=(partner,))
    own = viewer is not None
    view = _page_view(key, everyone, partner, unit, own)
    share, quarantine = view["share"], view["quarantine"]
    _headline(share, quarantine, partner_view=own)
    about(
        f"studies, distinct patients and images of this institution; "
        f"{describe_filters(everyone)}. Shares are of every partner's total under the same "
        "filters.",
    )
    if share["studies"]["partner"] == 0:
        st.info(
            f"{row['name']} has no studies in the index"
            + ("" if everyone.is_empty else " under the current filters")
            + " yet. Once its first manifest is ingested, its contributions, mix and the gaps "
            "it can fill appear here."
        )
    else:
        _contributions(view["contributions"], mine, own)
        if not own:  # month by month, its share would give away the other partners' counts
            _trend(view["trend"], partner, unit)
        _mix(view["mix"], own)
    _quarantine(rows_to_fix_view(key, partner), partner, quarantine, own)
    if share["studies"]["partner"] and not own:
        _gaps(key, everyone, mine, unit)
    elif own:
        st.caption(
            "The programme's gaps, with small cells suppressed, are on the Gaps page; set the "
            "Institution filter to your own to see your figures there in full."
        )


def render() -> None:
    """Draw the Institution page."""
    started = start_page("Institution")
    if started is None:
        return
    context, _totals = started
    if context.role.name == "public" and restricted(context, "This page"):
        footer()
        return
    partners = _partners(context.key)
    if not partners:
        st.info(
            "No institution is registered yet. Load the registry with "
            "`python -m dashboard ingest institutions registry.csv`."
        )
    else:
        _page(context, partners)
    footer()
