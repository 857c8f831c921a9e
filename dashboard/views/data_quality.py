"""Data quality: what is missing, what was held back in quarantine, and what to fix.

Missing values follow every shared filter; the quarantine and the ingest log follow only the
Institution filter, because a rejected row has no trusted state, age or date to filter on.

Every section is computed once per (snapshot, filters) and kept display-ready in st.cache_data
(chart specs, tables already in the Arrow form st.dataframe sends, CSV bytes), so a warm run
only draws; the role decides what is drawn, never what is kept.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa
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
from dashboard.views.widgets import natural_size, screen_table, show_spec

QUARANTINE_SCOPE = (
    "The quarantine follows only the Institution filter: a rejected row has no trusted state, "
    "age or date to filter on."
)
ROWS_KEY = "dq_institution"
ALL = "__all__"


SHOWN_ROWS = 200


@st.cache_resource(max_entries=64, show_spinner=False)
def rows_to_fix_view(key: SnapshotKey, institution: str | None) -> tuple[int, pa.Table, bytes]:
    """The rows to fix of ``institution`` (None: all) as submitted, with their reasons
    (dashboard.quarantine.open_quarantine): how many, the first ``SHOWN_ROWS`` as shown, and
    the CSV of them all (megabytes at 10M studies).

    A resource, not st.cache_data: every part is immutable (int, Arrow table, bytes), so each
    run shares the one copy instead of unpickling the CSV again. Keyed by snapshot like the
    rest; whether the viewer may see the rows is decided by the page, not here."""
    with cursor(key) as cur:
        rows = open_quarantine(cur, institution)
    return rows.height, screen_table(rows.head(SHOWN_ROWS)), to_csv_bytes(rows)


def institution_names(key: SnapshotKey) -> dict[str, str]:
    """Institution id → registered name."""
    registry = cached_query(key, "partner_registry")
    return dict(zip(registry["institution_id"], registry["name"], strict=True))


def _quarantine_filter(filters: Filters) -> Filters:
    return Filters(institutions=filters.institutions)


@st.cache_data(max_entries=256, show_spinner=False)
def _summary(key: SnapshotKey, filters: Filters) -> dict[str, Any]:
    """The page under ``filters``, ready to draw (one cache lookup per run): rows to fix and
    studies accepted (Institution filter only), files ingested, studies from DICOM headers, the
    institutions holding rows to fix, whether some rows carry no institution id, the registered
    names, the missing-values section and (when rows are in quarantine) the quarantine's charts
    and tables."""
    by_institution = _by_institution(key, filters)
    rows_to_fix = int(by_institution["rows_to_fix"].sum())
    dicom = cached_query(key, "dq_dicom_studies", **_quarantine_filter(filters).params())
    holding = by_institution.filter(pl.col("rows_to_fix") > 0)["institution"].to_list()
    return {
        "rows_to_fix": rows_to_fix,
        "accepted": int(by_institution["studies"].sum()),
        "files": cached_query(key, "dq_ingest_files").height,
        "dicom": int(dicom["studies"][0]),
        "holding": sorted(i for i in holding if i != NO_INSTITUTION),
        "no_institution": NO_INSTITUTION in set(by_institution["institution"]),
        "names": institution_names(key),
        "missing": _missing_view(key, filters),
        "quarantine_charts": _quarantine_specs(key, filters) if rows_to_fix else None,
        "quarantine_tables": _quarantine_tables(key, filters) if rows_to_fix else None,
    }


def _headline(totals: pl.DataFrame, summary: dict[str, Any], partner: bool = False) -> None:
    row = totals.row(0, named=True)
    studies = row["studies"]
    rows_to_fix, accepted, dicom = summary["rows_to_fix"], summary["accepted"], summary["dicom"]
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
            format_indian(summary["files"]),
            help=f"{format_indian(dicom)} studies come from DICOM headers.",
        )
    else:  # a partner's view: the ingest log lists every institution's files
        cards[4].metric("Studies from DICOM headers", format_indian(dicom))


def _missing(summary: dict[str, Any]) -> None:
    st.subheader("Missing values by field")
    view = summary["missing"]
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
) -> tuple[dict[str, Any], pa.Table, bytes] | None:
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
    return spec, screen_table(by_field), csv


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


def _rows_to_fix(key: SnapshotKey, filters: Filters, summary: dict[str, Any]) -> None:
    st.markdown("**Rows to fix, as submitted**")
    holding, names = summary["holding"], summary["names"]
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
    height, shown, csv = rows_to_fix_view(key, institution)
    if institution is None and summary["no_institution"]:
        st.caption(f"Includes rows that carry no institution id, listed as {NO_INSTITUTION} above.")
    st.dataframe(shown, hide_index=True)
    if height > SHOWN_ROWS:
        st.caption(f"First {SHOWN_ROWS} of {format_indian(height)} rows; the CSV has them all.")
    download_csv(
        csv,
        f"quarantine_{institution or 'all'}.csv",
        label=f"Download the {rows_phrase(height)} to fix (CSV)",
    )


def _quarantine(key: SnapshotKey, filters: Filters, summary: dict[str, Any]) -> None:
    st.subheader("Quarantine")
    st.caption(QUARANTINE_SCOPE)
    if summary["rows_to_fix"] == 0:
        st.success(
            "Nothing in quarantine: every row ingested so far was accepted"
            + (" for the chosen institutions." if filters.institutions else "."),
            icon=":material/check_circle:",
        )
        return
    left, right = st.columns(2)
    by_inst, by_field = summary["quarantine_charts"]
    with left:
        show_spec(by_inst)
    with right:
        show_spec(by_field)
    about(
        "rows still in quarantine (a submitted row counts once, however many problems it has). "
        "A row leaves the quarantine when its file, or the same study, is submitted again.",
        reference="quarantine rate = rows to fix ÷ (studies accepted in the index + rows to fix).",
    )
    tables = summary["quarantine_tables"]
    st.markdown("**By institution**")
    st.dataframe(tables[0], hide_index=True)
    download_csv(tables[1], "quarantine_by_institution.csv")
    st.markdown("**By institution and file**")
    st.dataframe(tables[2], hide_index=True)
    download_csv(tables[3], "quarantine_by_file.csv")
    st.markdown("**Most frequent reasons**")
    st.dataframe(tables[4], hide_index=True)
    download_csv(tables[5], "quarantine_reasons.csv")
    _rows_to_fix(key, filters, summary)


@st.cache_data(max_entries=256, show_spinner=False)
def _quarantine_tables(key: SnapshotKey, filters: Filters) -> tuple[Any, ...]:
    """The quarantine tables as shown (Arrow, see :func:`screen_table`), each followed by its
    CSV: by institution, by file, the most frequent reasons (the CSV: every reason)."""
    names = institution_names(key)
    by_institution = _by_institution(key, filters)
    scope = _quarantine_filter(filters).params()["f_institutions"]
    by_file = cached_query(key, "dq_quarantine_by_file", f_institutions=scope)
    reasons = cached_query(key, "dq_quarantine_reasons", f_institutions=scope)
    table = by_institution.with_columns(name=pl.col("institution").replace(names)).select(
        "institution", "name", "studies", "rows_to_fix", "rate", "files"
    )
    return (
        screen_table(
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
            )
        ),
        to_csv_bytes(table),
        screen_table(
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
            )
        ),
        to_csv_bytes(by_file),
        screen_table(
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
            )
        ),
        to_csv_bytes(reasons),
    )


def _files(key: SnapshotKey, files: int) -> None:
    st.subheader("Accepted and quarantined rows per file")
    if files == 0:
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
def _files_view(key: SnapshotKey) -> tuple[pa.Table, bytes]:
    """The ingest log per file as shown, and its CSV (the whole log: not for partners)."""
    rates = file_rates(cached_query(key, "dq_ingest_files"))
    return (
        screen_table(
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
            )
        ),
        to_csv_bytes(rates),
    )


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
    view = _phi_view(key, filters)
    if view is None:
        st.success(
            f"{format_indian(dicom)} studies read from DICOM headers: none of their files "
            "carried a patient name, address, telephone, other patient IDs or burned-in "
            "annotation.",
            icon=":material/verified_user:",
        )
        return
    totals, spec, table, csv = view
    cards = st.columns(3)
    cards[0].metric("DICOM studies", format_indian(dicom))
    cards[1].metric("Studies flagged", format_indian(totals["flagged_studies"]))
    cards[2].metric(
        "Files flagged",
        format_indian(totals["flagged_files"]),
        help="A file carrying two identifying elements counts once.",
    )
    show_spec(spec)
    st.dataframe(table, hide_index=True)
    about(
        "DICOM files whose header holds a non-empty identifying element (or BurnedInAnnotation "
        "= YES), by element keyword; only the keyword is kept, never the value.",
        unknown="the audit follows only the Institution filter: it is about files, not patients.",
    )
    download_csv(csv, "phi_flags.csv")


@st.cache_data(max_entries=256, show_spinner=False)
def _phi_view(
    key: SnapshotKey, filters: Filters
) -> tuple[dict[str, int], dict[str, Any], pa.Table, bytes] | None:
    """The PHI flags under the Institution filter (None: no file flagged): the totals, the
    chart's spec, the table by institution as shown, and the CSV of the flags."""
    scope = _quarantine_filter(filters).params()["f_institutions"]
    flags = cached_query(key, "phi_flags", f_institutions=scope)
    if flags.height == 0:
        return None
    spec = natural_size(
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
    return phi_totals(flags), spec, screen_table(phi_by_institution(flags)), to_csv_bytes(flags)


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
    summary = _summary(key, filters)
    _headline(totals, summary, partner)
    files = 0 if partner else summary["files"]  # the ingest log lists every institution's files
    if totals["studies"][0] == 0 and files == 0:
        st.info("The index has no studies yet. Ingest a manifest to see its quality here.")
    else:
        _missing(summary)
        _quarantine(key, filters, summary)
        if not partner:
            _files(key, files)
    _phi(key, filters, summary["dicom"])
    footer()
