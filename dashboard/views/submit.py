"""Submit page: a partner uploads a manifest, previews what it would do, then confirms.

The preview runs the index's own validation on a read-only cursor (nothing is written); the
confirm button runs the real ingest through the index writer, which publishes a new snapshot
that every page picks up on its next run. Rows for another institution refuse the submission.

Who submits: a partner for its own institution only (the picker is replaced by its role's
institution); the admin for any registered institution (in the local mode too). Other roles do
not get the page in the navigation, and are refused here if they reach it anyway.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import streamlit as st

from dashboard.config import load_settings
from dashboard.formatting import format_indian
from dashboard.ingest.manifest import IngestReport, ingest_manifest, preview_manifest
from dashboard.ingest.reader import FileRefusedError
from dashboard.ingest.writer import index_writer
from dashboard.roles import Role
from dashboard.submission import (
    MAX_UPLOAD_MB,
    UPLOAD_TYPES,
    check_institution,
    foreign_message,
    quarantine_table,
    reason_lines,
    safe_file_name,
    submission_key,
    too_large,
)
from dashboard.views.auth import login_configured, may_submit
from dashboard.views.common import (
    PageContext,
    SnapshotKey,
    about,
    cached_query,
    cached_totals,
    cursor,
    download_csv,
    footer,
    start_page,
)

INSTITUTION_KEY = "submit_institution"
UPLOAD_KEY = "submit_file"
CONFIRM_KEY = "submit_confirm"
PREVIEWS_KEY = "_submit_previews"
DONE_KEY = "_submit_done"


@dataclass(frozen=True)
class Preview:
    """What one (file, institution) would do on one snapshot: a report, or why it is refused."""

    snapshot: SnapshotKey
    report: IngestReport | None = None
    refusal: str | None = None


def render() -> None:
    """Draw the Submit page."""
    started = start_page("Submit a manifest")
    if started is None:
        footer()
        return
    context, _ = started
    if not may_submit(context.role):
        st.error(
            "Only partner institutions and the admin submit manifests; your role "
            f"({context.role}) does not. Log in with a partner account to submit.",
            icon=":material/block:",
        )
        footer()
        return
    _who_submits(context.role)
    registry = cached_query(context.key, "partner_registry")
    if context.role.institution is not None:
        registry = registry.filter(pl.col("institution_id") == context.role.institution)
        if registry.height == 0:
            st.warning(
                f"Your institution {context.role.institution} is not registered in the index, "
                "so there is nothing to submit for yet: ask the programme office to register it."
            )
            footer()
            return
    if registry.height == 0:
        st.info(
            "No institution is registered yet: register partners first "
            "(`python -m dashboard ingest institutions registry.csv`)."
        )
        footer()
        return
    _page(context, registry, int(cached_totals(context.key)["studies"][0]))
    footer()


def _who_submits(role: Role) -> None:
    if role.institution is not None:
        return  # the page names the partner's institution where the picker would be
    if login_configured():
        st.info(
            "**Admin:** you may submit for any registered institution. Partners submit only for "
            "their own.",
            icon=":material/admin_panel_settings:",
        )
    else:
        st.info(
            "**Local single-admin mode:** you may submit for any registered institution. Once "
            "login and roles are set up, a partner can submit only for its own institution.",
            icon=":material/admin_panel_settings:",
        )


def _page(context: PageContext, registry: pl.DataFrame, studies_now: int) -> None:
    names = dict(zip(registry["institution_id"], registry["name"], strict=True))
    if context.role.institution is not None:
        institution = context.role.institution
        st.markdown(
            f"Manifest for **{names[institution]} ({institution})**, your institution. Every "
            "row's institution id must be this one; other ids refuse the file."
        )
    else:
        institution = st.selectbox(
            "Institution this manifest is for",
            list(names),
            format_func=lambda iid: f"{iid} — {names[iid]}",
            key=INSTITUTION_KEY,
            help="Every row's institution id must be this one; other ids refuse the file.",
        )
    upload = st.file_uploader(
        f"Manifest (CSV, TSV or Parquet, up to {MAX_UPLOAD_MB} MB)",
        type=list(UPLOAD_TYPES),
        key=UPLOAD_KEY,
        max_upload_size=MAX_UPLOAD_MB,
        help="Columns as in the data contract (DATA_CONTRACT.md); CSV in UTF-8 or UTF-16. "
        f"Larger files: `python -m dashboard ingest manifest FILE` (no {MAX_UPLOAD_MB} MB limit).",
    )
    if upload is None:
        st.caption(
            "Nothing is written when you upload: you first see what would be accepted and what "
            "quarantined, then confirm. Studies in the index now: "
            f"{format_indian(studies_now)}."
        )
        return
    data = upload.getvalue()
    if too_large(len(data)):
        st.error(
            f"{upload.name} is {len(data) / 1024 / 1024:,.0f} MB; this page takes files up to "
            f"{MAX_UPLOAD_MB} MB. Split it, or ingest it with the CLI. Nothing was written."
        )
        return
    name = safe_file_name(upload.name)
    key = submission_key(data, institution)
    done: dict[str, IngestReport] = st.session_state.setdefault(DONE_KEY, {})
    if key in done:
        _success(done[key], studies_now)
        return
    preview = _preview(context.key, key, name, data, institution)
    if preview.refusal:
        st.error(preview.refusal, icon=":material/block:")
        return
    report = preview.report
    assert report is not None
    _show_preview(report, name, institution)
    if report.rows_read == 0:
        st.warning("The file has a header but no rows: there is nothing to ingest.")
        return
    if report.accepted == 0:
        st.warning("No row would be accepted: fix the quarantined rows and upload again.")
        return
    if st.button(
        f"Confirm and ingest {format_indian(report.accepted)} accepted rows",
        type="primary",
        icon=":material/cloud_upload:",
        key=CONFIRM_KEY,
    ):
        written = _ingest(name, data)
        if written is not None:
            done[key] = written
            st.rerun()


def _with_file(name: str, data: bytes) -> tempfile.TemporaryDirectory[str]:
    folder = tempfile.TemporaryDirectory(prefix="submit-")
    (Path(folder.name) / name).write_bytes(data)
    return folder


def _preview(snapshot: SnapshotKey, key: str, name: str, data: bytes, institution: str) -> Preview:
    """The preview for this submission, computed once per snapshot and kept in the session."""
    previews: dict[str, Preview] = st.session_state.setdefault(PREVIEWS_KEY, {})
    cached = previews.get(key)
    if cached is not None and cached.snapshot == snapshot:
        return cached
    with _with_file(name, data) as folder, st.spinner("Checking the file…"):
        path = Path(folder) / name
        try:
            foreign = check_institution(path, institution)
            if foreign:
                preview = Preview(snapshot, refusal=foreign_message(foreign, institution))
            else:
                with cursor(snapshot) as cur:
                    preview = Preview(snapshot, report=preview_manifest(cur, path))
        except FileRefusedError as err:
            preview = Preview(snapshot, refusal=_refusal(err))
        except (pl.exceptions.PolarsError, duckdb.Error, OSError) as err:
            preview = Preview(
                snapshot,
                refusal=f"**{name}** could not be checked ({type(err).__name__}: "
                f"{str(err).strip().splitlines()[0] if str(err).strip() else 'no detail'}). "
                "Nothing was written.",
            )
    previews.clear()  # one file at a time: do not hold every earlier report in the session
    previews[key] = preview
    return preview


def _refusal(err: FileRefusedError) -> str:
    return f"**{err.file}** was refused: {err.message}" + (
        "" if "nothing was written" in err.message.lower() else ". Nothing was written."
    )


def _show_preview(report: IngestReport, name: str, institution: str) -> None:
    st.subheader(f"Preview of {name} for {institution}")
    st.markdown(
        f"**{format_indian(report.accepted)} accepted, "
        f"{format_indian(report.quarantined)} quarantined** "
        f"of {format_indian(report.rows_read)} rows read. Nothing has been written yet."
    )
    cols = st.columns(4)
    for col, (label, value, hint) in zip(
        cols,
        [
            ("New studies", report.inserted, "Studies not yet in the index."),
            ("Updated", report.updated, "Studies already in the index whose values change."),
            ("Unchanged", report.unchanged, "Studies already in the index exactly as submitted."),
            ("Repeated rows", report.duplicates, "Identical repeats in the file, counted once."),
        ],
        strict=True,
    ):
        col.metric(label, format_indian(value), help=hint)
    if report.quarantined:
        st.markdown("**Quarantined rows, by reason:**")
        st.markdown("\n".join(f"- {line}" for line in reason_lines(report)))
        table = quarantine_table(report)
        height = min(38 + 35 * table.height, 300)
        st.dataframe(table, hide_index=True, width="stretch", height=height)
        download_csv(
            table,
            f"quarantine_{Path(name).stem}.csv",
            label="Download the quarantined rows (CSV)",
        )
    if report.ignored_columns:
        st.caption(
            "Ignored columns (not in the data contract, not stored): "
            + ", ".join(f"`{c}`" for c in report.ignored_columns)
        )
    about(
        "rows of this file as the index would take them: accepted rows are new, updated, "
        "unchanged or identical repeats (keyed by institution and study UID); a row with any "
        "problem is quarantined with one line per problem (row numbers count data rows from 1).",
        unknown="quarantined rows are not counted on any page until fixed and submitted again.",
    )


def _ingest(name: str, data: bytes) -> IngestReport | None:
    """Run the real ingest of this file into the published index; errors are shown, not raised."""
    with _with_file(name, data) as folder, st.spinner("Ingesting…"):
        try:
            with index_writer(load_settings().db_path) as con:
                return ingest_manifest(con, Path(folder) / name)
        except FileRefusedError as err:
            st.error(_refusal(err))
            return None
        except (pl.exceptions.PolarsError, duckdb.Error, OSError) as err:
            st.error(
                f"Ingesting **{name}** failed ({type(err).__name__}: {err}). The index is "
                "published only when an ingest completes, so nothing was written."
            )
            return None


def _success(report: IngestReport, studies_now: int) -> None:
    st.success(
        f"**{report.file}** ingested: {format_indian(report.accepted)} accepted "
        f"({format_indian(report.inserted)} new, {format_indian(report.updated)} updated, "
        f"{format_indian(report.unchanged)} unchanged, {format_indian(report.duplicates)} "
        f"repeated), {format_indian(report.quarantined)} quarantined. The other pages now show "
        f"the new studies: {format_indian(studies_now)} studies in the index.",
        icon=":material/task_alt:",
    )
    st.caption(
        "The quarantined rows are listed on the Data quality and Institution pages; fix them and "
        "upload the corrected rows here. To submit another file, remove this one above."
    )
