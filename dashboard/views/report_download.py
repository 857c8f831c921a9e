"""The diversity datasheet's download button (on the Overview page).

The datasheet covers the whole index, whatever the sidebar filters say: it documents the
release, not the current view. Its file name carries the snapshot id, read at once from two
cheap cached queries; the document itself (a few seconds: charts are drawn as SVG) is built
only when the button is clicked, once per snapshot and role, by dashboard.report, the same
code as `python -m dashboard report --role ROLE`.

The datasheet is an export: every role but admin downloads the suppressed edition (METRICS.md
"Privacy"), and each download is written to the audit log (who, the role, the snapshot) when
the file is handed over, as the CLI logs its exports; when the log cannot be written, the file
is not handed over.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import report
from dashboard.config import load_settings
from dashboard.roles import Role
from dashboard.views.common import (
    PageContext,
    SnapshotKey,
    audited_export,
    cached_query,
    cached_totals,
    cursor,
)


def snapshot_id(key: SnapshotKey) -> str:
    """The datasheet's snapshot id of the published index, from cached queries."""
    totals = cached_totals(key).row(0, named=True)
    state = cached_query(key, "report_snapshot").row(0, named=True)
    return report.snapshot_id(report.snapshot_summary(totals, state))


@st.cache_data(max_entries=8, show_spinner=False)
def datasheet_html(key: SnapshotKey, role: Role) -> bytes:
    """The datasheet of one snapshot for ``role`` (suppressed unless admin) as UTF-8 HTML,
    generated once per snapshot and role."""
    with cursor(key) as cur:
        return report.render_html(report.build_datasheet(cur, role=role)).encode("utf-8")


@st.cache_data(max_entries=8, show_spinner=False)
def datasheet_pdf(key: SnapshotKey, role: Role) -> bytes:
    """The same datasheet as an A4 PDF, once per snapshot and role."""
    return report.render_pdf(datasheet_html(key, role).decode("utf-8"))


def audited(make: Any, key: SnapshotKey, role: Role, ident: str, fmt: str) -> Any:
    """The datasheet as a deferred, audited download (see common.audited_export)."""
    return audited_export(
        lambda: make(key, role),
        what=f"datasheet {fmt}",
        detail={"snapshot": ident, "suppressed": not role.sees_all(export=True)},
    )


@st.cache_resource(show_spinner=False)
def pdf_unavailable() -> str | None:
    """Why no PDF can be made on this server (checked once per process), or None."""
    return report.pdf_unavailable()


def datasheet_button(context: PageContext) -> None:
    """A download button for the diversity datasheet of the snapshot the app reads."""
    if context.key is None:
        return
    key = context.key
    if int(cached_totals(key)["studies"][0]) == 0:
        return  # nothing to document yet; the page already says how to ingest
    role = context.role
    suppressed = not role.sees_all(export=True)
    ident = snapshot_id(key)
    row = st.container(horizontal=True)
    row.download_button(
        "Download the diversity datasheet (HTML)",
        data=audited(datasheet_html, key, role, ident, "html"),
        file_name=f"diversity-datasheet-{ident}.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/description:",
        key="overview_datasheet",
        help="A self-contained report for funders and reviewers: who is in the data against "
        "the 2026 population, missing values, gaps with 95% intervals, collection sites and "
        "de-identification, in the structure of STANDING Together and Datasheets for "
        "Datasets. It covers the whole index, not only the filtered view.",
    )
    if pdf_unavailable() is None:
        row.download_button(
            "PDF",
            data=audited(datasheet_pdf, key, role, ident, "pdf"),
            file_name=f"diversity-datasheet-{ident}.pdf",
            mime="application/pdf",
            on_click="ignore",
            icon=":material/picture_as_pdf:",
            key="overview_datasheet_pdf",
            help="The same datasheet laid out for A4 paper.",
        )
    k = load_settings().small_cell_k
    st.caption(
        f"Datasheet of snapshot `{ident}` (the whole index; the filters do not apply)"
        + (
            f", suppressed for the {role} role: counts below {k} read “< {k}”. "
            if suppressed
            else ". "
        )
        + f"Also: `python -m dashboard report --out datasheet.html --role {role}`."
    )
