"""Data quality: what is missing, what was held back in quarantine, and what to fix.

Missing values follow every shared filter; the quarantine and the ingest log follow only the
Institution filter, because a rejected row has no trusted state, age or date to filter on.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from dashboard import charts
from dashboard.export import to_csv_bytes
from dashboard.filters import Filters
from dashboard.formatting import format_indian, format_percent
from dashboard.phi import TAG_LABELS, phi_by_institution, phi_totals
from dashboard.quality import (
    ALL_INSTITUTIONS,
    MISSING_FIELDS,
    NO_INSTITUTION,
    display_table,
    file_rates,
    missing_by_field,
    missing_rates,
    quarantine_by_institution,
    reason_summary,
    rows_phrase,
)
from dashboard.quarantine import open_quarantine
from dashboard.views.common import (
    PageContext,
    SnapshotKey,
    about,
    cached_query,
    cursor,
    describe_filters,
    download_csv,
    footer,
    restricted,
    start_page,
)
from dashboard.views.widgets import natural_size, show_chart, show_spec

QUARANTINE_SCOPE = (
    "The quarantine follows only the Institution filter: a rejected row has no trusted state, "
    "age or date to filter on."
)
ROWS_KEY = "dq_institution"
ALL = "__all__"


@st.cache_data(max_entries=64, show_spinner=False)
def cached_open_quarantine(key: SnapshotKey, institution: str | None) -> pl.DataFrame:
    """The rows to fix as submitted (dashboard.quarantine.open_quarantine), per snapshot."""
    with cursor(key) as cur:
        return open_quarantine(cur, institution)


def institution_names(key: SnapshotKey) -> dict[str, str]:
    """Institution id → registered name."""
    registry = cached_query(key, "partner_registry")
    return dict(zip(registry["institution_id"], registry["name"], strict=True))


def _quarantine_filter(filters: Filters) -> Filters:
    return Filters(institutions=filters.institutions)


def _headline(
    totals: pl.DataFrame,
    by_institution: pl.DataFrame,
    files: pl.DataFrame,
    dicom: int,
    partner: bool = False,
) -> None:
    row = totals.row(0, named=True)
    studies = row["studies"]
    rows_to_fix = int(by_institution["rows_to_fix"].sum())
    accepted = int(by_institution["studies"].sum())
    cards = st.columns(5)
    cards[0].metric("Studies checked", format_indian(studies))
    cards[1].metric(
        "Complete demographics",
        format_percent(row["complete_demographics"] / studies if studies else None, 0),
        help="Share of studies with sex, age, state and urban/rural all known.",
    )
    cards[2].metric("Rows to fix", format_indian(rows_to_fix), help=QUARANTINE_SCOPE)
    cards[3].metric(
        "Quarantine rate",
        format_percent(rows_to_fix / (accepted + rows_to_fix) if accepted + rows_to_fix else None),
        help="Rows still in quarantine ÷ (studies in the index + rows still in quarantine).",
    )
    if not partner:
        cards[4].metric(
            "Files ingested",
            format_indian(files.height),
            help=f"{format_indian(dicom)} studies come from DICOM headers.",
        )
    else:  # a partner's view: the ingest log lists every institution's files
        cards[4].metric("Studies from DICOM headers", format_indian(dicom))


def _missing(context: PageContext) -> None:
    st.subheader("Missing values by field")
    assert context.key is not None
    view = _missing_view(context.key, context.filters)
    if view is None:
        st.info(
            "No studies match the current filters, so there is nothing to check. "
            "Widen the filters in the sidebar."
        )
        return
    spec, by_field, csv = view
    show_spec(spec)
    about(
        "studies (one row per imaging study) whose field is unknown, divided by the "
        "institution's studies that match the filters. Sex counts as unknown when coded U "
        "(O is a known value); diagnosis when none was given ('normal' is known).",
        unknown="a filter on a field (for example an age range) leaves out that field's "
        "unknowns, so its missing rate reads 0%.",
    )
    st.dataframe(by_field, hide_index=True)
    download_csv(csv, "missing_values_by_institution.csv")


@st.cache_data(max_entries=256, show_spinner=False)
def _missing_view(
    key: SnapshotKey, filters: Filters
) -> tuple[dict[str, Any], pl.DataFrame, bytes] | None:
    """The missing-values heatmap's spec, the by-field table as shown and the CSV (None: no
    study matches the filters). Nothing here is suppressed: the page is for those entitled
    to every row it counts."""
    names = institution_names(key)
    wide = cached_query(key, "dq_missing_by_institution", **filters.params())
    rates = missing_rates(wide)
    if rates.height == 0:
        return None
    shown = rates.with_columns(
        rate_pct=pl.col("rate") * 100,
        rate_label=pl.Series([format_percent(v) for v in rates["rate"].to_list()]),
    )
    institutions = [i for i in shown["institution"].unique().to_list() if i != ALL_INSTITUTIONS]
    spec = natural_size(
        charts.heatmap(
            shown,
            x_col="field",
            y_col="institution",
            value_col="rate_pct",
            label_col="rate_label",
            x_title="Field",
            y_title="Institution",
            value_title="Missing (%)",
            x_order=list(MISSING_FIELDS.values()),
            y_order=[ALL_INSTITUTIONS, *sorted(institutions)],
            title="Share of studies with the field unknown",
            subtitle=f"Top row: all institutions together; {describe_filters(filters)}.",
        )
    )
    by_field = display_table(
        missing_by_field(rates),
        counts=["missing", "studies"],
        percents=["rate"],
        titles={"field": "Field", "missing": "Unknown", "studies": "Studies", "rate": "Rate"},
    )
    csv = to_csv_bytes(rates.with_columns(name=pl.col("institution").replace(names)))
    return spec, by_field, csv


@st.cache_data(max_entries=256, show_spinner=False)
def _quarantine_specs(key: SnapshotKey, filters: Filters) -> tuple[dict[str, Any], ...]:
    """The specs of the quarantine charts by institution and by field."""
    by_institution = _by_institution(key, filters)
    scope = _quarantine_filter(filters).params()["f_institutions"]
    reasons = cached_query(key, "dq_quarantine_reasons", f_institutions=scope)
    by_inst = natural_size(
        charts.category_bars(
            by_institution.filter(pl.col("rows_to_fix") > 0),
            category_col="institution",
            count_col="rows_to_fix",
            category_title="Institution",
            count_title="Rows to fix",
            title="Rows in quarantine by institution",
        )
    )
    by_column = reasons.group_by("column").agg(pl.col("rows_to_fix").sum())
    by_field = natural_size(
        charts.category_bars(
            by_column,
            category_col="column",
            count_col="rows_to_fix",
            category_title="Field with the problem",
            count_title="Rows to fix",
            title="Rows in quarantine by field",
            subtitle="A row with problems in two fields counts under both.",
        )
    )
    return by_inst, by_field


@st.cache_data(max_entries=256, show_spinner=False)
def _by_institution(key: SnapshotKey, filters: Filters) -> pl.DataFrame:
    """Quarantine rows and rates per institution under the Institution filter."""
    accepted = cached_query(
        key, "dq_missing_by_institution", **_quarantine_filter(filters).params()
    ).select("institution", "studies")
    scope = _quarantine_filter(filters).params()["f_institutions"]
    by_file = cached_query(key, "dq_quarantine_by_file", f_institutions=scope)
    return quarantine_by_institution(by_file, accepted)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_open_quarantine_csv(key: SnapshotKey, institution: str | None) -> bytes:
    """The CSV of :func:`cached_open_quarantine` (offered to whom may have it only)."""
    return to_csv_bytes(cached_open_quarantine(key, institution))


def _rows_to_fix(
    key: SnapshotKey, filters: Filters, by_institution: pl.DataFrame, names: dict[str, str]
) -> None:
    st.markdown("**Rows to fix, as submitted**")
    holding = sorted(
        by_institution.filter(
            (pl.col("rows_to_fix") > 0) & (pl.col("institution") != NO_INSTITUTION)
        )["institution"].to_list()
    )
    # "All" only when no institution is filtered: it would export other partners' rows too.
    options = holding if filters.institutions else [ALL, *holding]
    chosen = st.selectbox(
        "Rows to fix for",
        options,
        key=ROWS_KEY,
        format_func=lambda i: ALL_INSTITUTIONS if i == ALL else f"{names.get(i, i)} ({i})",
        help="The rows as they were submitted, with the reasons, ready to correct and resubmit.",
    )
    institution = None if chosen == ALL else chosen
    rows = cached_open_quarantine(key, institution)
    if institution is None and NO_INSTITUTION in set(by_institution["institution"]):
        st.caption(f"Includes rows that carry no institution id, listed as {NO_INSTITUTION} above.")
    st.dataframe(rows.head(200), hide_index=True)
    if rows.height > 200:
        st.caption(f"First 200 of {format_indian(rows.height)} rows; the CSV has them all.")
    download_csv(
        cached_open_quarantine_csv(key, institution),
        f"quarantine_{institution or 'all'}.csv",
        label=f"Download the {rows_phrase(rows.height)} to fix (CSV)",
    )


def _quarantine(
    key: SnapshotKey,
    filters: Filters,
    by_institution: pl.DataFrame,
    names: dict[str, str],
) -> None:
    st.subheader("Quarantine")
    st.caption(QUARANTINE_SCOPE)
    if int(by_institution["rows_to_fix"].sum()) == 0:
        st.success(
            "Nothing in quarantine: every row ingested so far was accepted"
            + (" for the chosen institutions." if filters.institutions else "."),
            icon=":material/check_circle:",
        )
        return
    left, right = st.columns(2)
    by_inst, by_field = _quarantine_specs(key, filters)
    with left:
        show_spec(by_inst)
    with right:
        show_spec(by_field)
    about(
        "rows still in quarantine (a submitted row counts once, however many problems it has). "
        "A row leaves the quarantine when its file, or the same study, is submitted again.",
        reference="quarantine rate = rows to fix ÷ (studies accepted in the index + rows to fix).",
    )
    tables = _quarantine_tables(key, filters)
    st.markdown("**By institution**")
    st.dataframe(tables[0], hide_index=True)
    download_csv(tables[1], "quarantine_by_institution.csv")
    st.markdown("**By institution and file**")
    st.dataframe(tables[2], hide_index=True)
    download_csv(tables[3], "quarantine_by_file.csv")
    st.markdown("**Most frequent reasons**")
    st.dataframe(tables[4], hide_index=True)
    download_csv(tables[5], "quarantine_reasons.csv")
    _rows_to_fix(key, filters, by_institution, names)


@st.cache_data(max_entries=256, show_spinner=False)
def _quarantine_tables(key: SnapshotKey, filters: Filters) -> tuple[Any, ...]:
    """The quarantine tables as shown, each followed by its CSV: by institution, by file,
    the most frequent reasons (the CSV: every reason)."""
    names = institution_names(key)
    by_institution = _by_institution(key, filters)
    scope = _quarantine_filter(filters).params()["f_institutions"]
    by_file = cached_query(key, "dq_quarantine_by_file", f_institutions=scope)
    reasons = cached_query(key, "dq_quarantine_reasons", f_institutions=scope)
    table = by_institution.with_columns(name=pl.col("institution").replace(names)).select(
        "institution", "name", "studies", "rows_to_fix", "rate", "files"
    )
    return (
        display_table(
            table,
            counts=["studies", "rows_to_fix", "files"],
            percents=["rate"],
            titles={
                "institution": "Institution",
                "name": "Name",
                "studies": "Studies accepted",
                "rows_to_fix": "Rows to fix",
                "rate": "Quarantine rate",
                "files": "Files",
            },
        ),
        to_csv_bytes(table),
        display_table(
            by_file,
            counts=["rows_to_fix", "problems"],
            titles={
                "institution_id": "Institution",
                "file": "File",
                "rows_to_fix": "Rows to fix",
                "problems": "Problems",
                "top_reason": "Most frequent reason",
            },
        ),
        to_csv_bytes(by_file),
        display_table(
            reason_summary(reasons).head(20),
            counts=["rows_to_fix", "institutions", "files"],
            titles={
                "reason": "Reason",
                "column": "Field",
                "rows_to_fix": "Rows",
                "institutions": "Institutions",
                "files": "Files",
            },
        ),
        to_csv_bytes(reasons),
    )


def _files(key: SnapshotKey, files: pl.DataFrame) -> None:
    st.subheader("Accepted and quarantined rows per file")
    if files.height == 0:
        st.info("No file has been ingested yet: `python -m dashboard ingest manifest FILE`.")
        return
    table, csv = _files_view(key)
    st.dataframe(table, hide_index=True)
    about(
        "the latest ingest of each file name: rows read = accepted + quarantined (identical "
        "repeats inside a file count as accepted). 'Still to fix' is what remains in the "
        "quarantine now.",
        unknown="the ingest log does not record which institutions a file held, so this table "
        "lists every file whatever the Institution filter.",
    )
    download_csv(csv, "ingest_files.csv")


@st.cache_data(max_entries=16, show_spinner=False)
def _files_view(key: SnapshotKey) -> tuple[pl.DataFrame, bytes]:
    """The ingest log per file as shown, and its CSV (the whole log: not for partners)."""
    rates = file_rates(cached_query(key, "dq_ingest_files"))
    return (
        display_table(
            rates.select(
                "file",
                "kind",
                pl.col("finished_at").dt.strftime("%Y-%m-%d %H:%M"),
                "rows_read",
                "accepted",
                "quarantined",
                "accepted_rate",
                "quarantined_rate",
                "still_open",
            ),
            counts=["rows_read", "accepted", "quarantined", "still_open"],
            percents=["accepted_rate", "quarantined_rate"],
            titles={
                "file": "File",
                "kind": "Kind",
                "finished_at": "Ingested",
                "rows_read": "Rows read",
                "accepted": "Accepted",
                "quarantined": "Quarantined",
                "accepted_rate": "Accepted %",
                "quarantined_rate": "Quarantined %",
                "still_open": "Still to fix",
            },
        ),
        to_csv_bytes(rates),
    )


DICOM_SOURCES = ("dicom", "dicomweb")


def _phi(key: SnapshotKey, filters: Filters, dicom: int) -> None:
    st.subheader("Identifying values in DICOM headers")
    if dicom == 0:
        st.info(
            "DICOM header auditing has not been ingested yet: no study in the index comes from "
            "DICOM files (source = dicom), so there are no PHI flags to show. Once "
            "`python -m dashboard ingest dicom` has indexed an archive, files whose headers carry "
            "a patient name, address, telephone, other patient IDs or burned-in annotation are "
            "flagged per institution; the identifying values themselves are never stored.",
            icon=":material/policy:",
        )
        return
    scope = _quarantine_filter(filters).params()["f_institutions"]
    flags = cached_query(key, "phi_flags", f_institutions=scope)
    if flags.height == 0:
        st.success(
            f"{format_indian(dicom)} studies read from DICOM headers: none of their files "
            "carried a patient name, address, telephone, other patient IDs or burned-in "
            "annotation.",
            icon=":material/verified_user:",
        )
        return
    totals = phi_totals(flags)
    cards = st.columns(3)
    cards[0].metric("DICOM studies", format_indian(dicom))
    cards[1].metric("Studies flagged", format_indian(totals["flagged_studies"]))
    cards[2].metric(
        "Files flagged",
        format_indian(totals["flagged_files"]),
        help="A file carrying two identifying elements counts once.",
    )
    show_chart(
        charts.category_bars(
            flags.group_by("tag")
            .agg(pl.col("files").sum())
            .with_columns(pl.col("tag").replace(TAG_LABELS)),
            category_col="tag",
            count_col="files",
            category_title="Header element",
            count_title="Files",
            colour=charts.FLAG_COLOURS[0],
            title="Files whose header carries an identifying element",
        )
    )
    st.dataframe(phi_by_institution(flags), hide_index=True)
    about(
        "DICOM files whose header holds a non-empty identifying element (or BurnedInAnnotation "
        "= YES), by element keyword; only the keyword is kept, never the value.",
        unknown="the audit follows only the Institution filter: it is about files, not patients.",
    )
    download_csv(flags, "phi_flags.csv")


def render() -> None:
    """Draw the Data quality page."""
    started = start_page("Data quality")
    if started is None:
        return
    context, totals = started
    # A partner sees its own institution's quality, with the Institution filter set to it.
    if restricted(context, "This page", partner_own=True):
        footer()
        return
    key, filters = context.key, context.filters
    partner = context.role.institution is not None
    names = institution_names(key)
    by_institution = _by_institution(key, filters)
    files = cached_query(key, "dq_ingest_files")
    sources = cached_query(key, "dq_studies_by_source", **_quarantine_filter(filters).params())
    dicom = int(sources.filter(pl.col("source").is_in(DICOM_SOURCES))["studies"].sum())
    _headline(totals, by_institution, files, dicom, partner)
    if partner:  # the ingest log lists every institution's files
        files = files.head(0)
    if totals["studies"][0] == 0 and files.height == 0:
        st.info("The index has no studies yet. Ingest a manifest to see its quality here.")
    else:
        _missing(context)
        _quarantine(key, filters, by_institution, names)
        if not partner:
            _files(key, files)
    _phi(key, filters, dicom)
    footer()
