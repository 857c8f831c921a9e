"""Data quality: what is missing, what was held back in quarantine, and what to fix.

Missing values follow every shared filter; the quarantine and the ingest log follow only the
Institution filter, because a rejected row has no trusted state, age or date to filter on.
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts
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
from dashboard.views.widgets import show_chart

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


def _missing(context: PageContext, names: dict[str, str]) -> None:
    st.subheader("Missing values by field")
    wide = cached_query(context.key, "dq_missing_by_institution", **context.filters.params())
    rates = missing_rates(wide)
    if rates.height == 0:
        st.info(
            "No studies match the current filters, so there is nothing to check. "
            "Widen the filters in the sidebar."
        )
        return
    shown = rates.with_columns(
        rate_pct=pl.col("rate") * 100,
        rate_label=pl.Series([format_percent(v) for v in rates["rate"].to_list()]),
    )
    institutions = [i for i in shown["institution"].unique().to_list() if i != ALL_INSTITUTIONS]
    show_chart(
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
            subtitle=f"Top row: all institutions together; {describe_filters(context.filters)}.",
        )
    )
    about(
        "studies (one row per imaging study) whose field is unknown, divided by the "
        "institution's studies that match the filters. Sex counts as unknown when coded U "
        "(O is a known value); diagnosis when none was given ('normal' is known).",
        unknown="a filter on a field (for example an age range) leaves out that field's "
        "unknowns, so its missing rate reads 0%.",
    )
    by_field = missing_by_field(rates)
    st.dataframe(
        display_table(
            by_field,
            counts=["missing", "studies"],
            percents=["rate"],
            titles={"field": "Field", "missing": "Unknown", "studies": "Studies", "rate": "Rate"},
        ),
        hide_index=True,
    )
    download_csv(
        rates.with_columns(name=pl.col("institution").replace(names)),
        "missing_values_by_institution.csv",
    )


def _quarantine_charts(by_institution: pl.DataFrame, reasons: pl.DataFrame) -> None:
    left, right = st.columns(2)
    with left:
        show_chart(
            charts.category_bars(
                by_institution.filter(pl.col("rows_to_fix") > 0),
                category_col="institution",
                count_col="rows_to_fix",
                category_title="Institution",
                count_title="Rows to fix",
                title="Rows in quarantine by institution",
            )
        )
    with right:
        by_column = reasons.group_by("column").agg(pl.col("rows_to_fix").sum())
        show_chart(
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
        rows,
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
    scope = _quarantine_filter(filters).params()["f_institutions"]
    by_file = cached_query(key, "dq_quarantine_by_file", f_institutions=scope)
    reasons = cached_query(key, "dq_quarantine_reasons", f_institutions=scope)
    _quarantine_charts(by_institution, reasons)
    about(
        "rows still in quarantine (a submitted row counts once, however many problems it has). "
        "A row leaves the quarantine when its file, or the same study, is submitted again.",
        reference="quarantine rate = rows to fix ÷ (studies accepted in the index + rows to fix).",
    )
    table = by_institution.with_columns(name=pl.col("institution").replace(names)).select(
        "institution", "name", "studies", "rows_to_fix", "rate", "files"
    )
    st.markdown("**By institution**")
    st.dataframe(
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
        hide_index=True,
    )
    download_csv(table, "quarantine_by_institution.csv")
    st.markdown("**By institution and file**")
    st.dataframe(
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
        hide_index=True,
    )
    download_csv(by_file, "quarantine_by_file.csv")
    st.markdown("**Most frequent reasons**")
    summary = reason_summary(reasons)
    st.dataframe(
        display_table(
            summary.head(20),
            counts=["rows_to_fix", "institutions", "files"],
            titles={
                "reason": "Reason",
                "column": "Field",
                "rows_to_fix": "Rows",
                "institutions": "Institutions",
                "files": "Files",
            },
        ),
        hide_index=True,
    )
    download_csv(reasons, "quarantine_reasons.csv")
    _rows_to_fix(key, filters, by_institution, names)


def _files(files: pl.DataFrame) -> None:
    st.subheader("Accepted and quarantined rows per file")
    if files.height == 0:
        st.info("No file has been ingested yet: `python -m dashboard ingest manifest FILE`.")
        return
    rates = file_rates(files)
    st.dataframe(
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
        hide_index=True,
    )
    about(
        "the latest ingest of each file name: rows read = accepted + quarantined (identical "
        "repeats inside a file count as accepted). 'Still to fix' is what remains in the "
        "quarantine now.",
        unknown="the ingest log does not record which institutions a file held, so this table "
        "lists every file whatever the Institution filter.",
    )
    download_csv(rates, "ingest_files.csv")


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
    accepted = cached_query(
        key, "dq_missing_by_institution", **_quarantine_filter(filters).params()
    ).select("institution", "studies")
    scope = _quarantine_filter(filters).params()["f_institutions"]
    by_file = cached_query(key, "dq_quarantine_by_file", f_institutions=scope)
    by_institution = quarantine_by_institution(by_file, accepted)
    files = cached_query(key, "dq_ingest_files")
    sources = cached_query(key, "dq_studies_by_source", **_quarantine_filter(filters).params())
    dicom = int(sources.filter(pl.col("source").is_in(DICOM_SOURCES))["studies"].sum())
    _headline(totals, by_institution, files, dicom, partner)
    if partner:  # the ingest log lists every institution's files
        files = files.head(0)
    if totals["studies"][0] == 0 and files.height == 0:
        st.info("The index has no studies yet. Ingest a manifest to see its quality here.")
    else:
        _missing(context, names)
        _quarantine(key, filters, by_institution, names)
        if not partner:
            _files(files)
    _phi(key, filters, dicom)
    footer()
