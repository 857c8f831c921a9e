"""What every page shares: the cached read-only connection, cached queries, notices, footer,
and small-cell suppression (METRICS.md "Privacy") for the viewer's role.

Suppression lives here, once: a page reads counts through :func:`shown_coverage` (never
:func:`cached_coverage` directly when what it draws is a count), hides what derives from a
cell with :meth:`Shown.hide`, labels hidden cells with :meth:`Shown.labels` ("< k",
"withheld") and builds downloads with :meth:`Shown.download` (which applies the export
pattern: the programme sees everything on screen, but its downloads are suppressed). Single
headline numbers go through :func:`headline_count`. Pages whose detail is not suppressed yet
call :func:`restricted` first, so a viewer not entitled to it sees an explanation instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import streamlit as st

from dashboard import audit, privacy
from dashboard.config import load_settings
from dashboard.coverage import coverage, read_query
from dashboard.db import connect_readonly, reader_cursor, snapshot_key
from dashboard.export import to_csv_bytes
from dashboard.filters import NO_FILTERS, Filters
from dashboard.formatting import format_indian
from dashboard.reference import GEO_ATTRIBUTION
from dashboard.roles import LOCAL_ADMIN, Role, suppression_for

SnapshotKey = tuple[str, int, int]


def _close(connection: duckdb.DuckDBPyConnection) -> None:
    connection.close()


@st.cache_resource(max_entries=2, on_release=_close, show_spinner=False)
def _connection(key: SnapshotKey) -> duckdb.DuckDBPyConnection:
    # Keyed by the file's identity: a publish replaces the file, so the next run opens the new
    # snapshot while sessions still reading the old one finish on their own cursor.
    return connect_readonly(Path(key[0]))


def snapshot() -> SnapshotKey:
    """Identity of the published index the app reads now."""
    return snapshot_key(load_settings().db_path)


def cursor(key: SnapshotKey) -> duckdb.DuckDBPyConnection:
    """A cursor of its own for this query: DuckDB refuses concurrent calls on one connection."""
    return reader_cursor(_connection(key))


@st.cache_data(max_entries=256, show_spinner=False)
def cached_query(key: SnapshotKey, name: str, **params: Any) -> pl.DataFrame:
    """A named query's result for one snapshot; a new snapshot is a new cache key."""
    with cursor(key) as cur:
        return read_query(cur, name, **params)


@st.cache_data(max_entries=256, show_spinner=False)
def cached_coverage(
    key: SnapshotKey, dims: tuple[str, ...], unit: str, filters: Filters = NO_FILTERS
) -> pl.DataFrame:
    """Coverage counts and shares for one snapshot and filter."""
    with cursor(key) as cur:
        return coverage(cur, list(dims), unit, filters)


def cached_totals(key: SnapshotKey, filters: Filters = NO_FILTERS) -> pl.DataFrame:
    """The headline totals (studies, exact patients, images, ...) under ``filters``."""
    shape = cached_query(key, "index_shape")
    return cached_query(
        key, "index_totals", max_patient_key=int(shape["max_patient_key"][0]), **filters.params()
    )


@dataclass(frozen=True)
class PageContext:
    """What the entry script hands every page: the snapshot, the shared filters, the unit,
    and the viewer's role (what the page may show in full)."""

    key: SnapshotKey | None
    filters: Filters = NO_FILTERS
    unit: str = "patients"
    role: Role = LOCAL_ADMIN


CONTEXT_KEY = "_page_context"


def snapshot_or_none() -> SnapshotKey | None:
    """The published snapshot, or None when there is no index file yet."""
    try:
        return snapshot()
    except FileNotFoundError:
        return None


def page_context() -> PageContext:
    """The context the entry script stored for this run."""
    return st.session_state.get(CONTEXT_KEY) or PageContext(key=snapshot_or_none())


def start_page(title: str) -> tuple[PageContext, pl.DataFrame] | None:
    """Title, index check and synthetic-data notice every page opens with.

    Returns the context and the filtered headline totals, or None (with a helpful message)
    when there is no index yet.
    """
    st.title(title)
    context = require_index()
    if context is None:
        return None
    totals = cached_totals(context.key, context.filters)
    synthetic_notice(totals)
    return context, totals


def require_index() -> PageContext | None:
    """This run's context, or a helpful message (never a traceback) when there is no index."""
    context = page_context()
    if context.key is None:
        path = load_settings().db_path
        st.info(
            f"No index found at `{path}`. Build the demo with `make run` "
            f"(or `python -m dashboard demo --db {path}`), or ingest a manifest."
        )
        return None
    return context


def synthetic_notice(totals: pl.DataFrame) -> None:
    """Say plainly when (part of) what is shown is synthetic demo data."""
    demo = int(totals["demo_studies"][0])
    if demo:
        share = demo / max(int(totals["studies"][0]), 1)
        st.warning(
            f"**Synthetic demo data** ({share:.0%} of studies): generated by "
            "`python -m dashboard demo`; institutions and patients are fictional.",
            icon=":material/science:",
        )


def footer() -> None:
    """Sources and licences of what is drawn, on every page."""
    st.caption(
        "Population: Census of India 2011 and MoHFW projections for 2026 (see data/reference/"
        f"SOURCES.md). {GEO_ATTRIBUTION}"
    )


def about(counted: str, reference: str | None = None, unknown: str | None = None) -> None:
    """The "about this number" note under a chart or table: what, against what, what's left out."""
    parts = [f"**Counted:** {counted}"]
    if reference:
        parts.append(f"**Reference:** {reference}")
    if unknown:
        parts.append(f"**Left out:** {unknown}")
    with st.expander("About this number", icon=":material/info:"):
        st.markdown("  \n".join(parts))


def download_csv(
    frame: pl.DataFrame | bytes,
    file_name: str,
    label: str = "Download CSV",
    *,
    protected: bool = False,
) -> None:
    """A download button for a table; text cells that spreadsheets would run are defused.
    ``frame`` may be the table's :func:`to_csv_bytes` already (kept by a cached section).

    ``protected``: the frame went through :meth:`Shown.download` (the export pattern of the
    viewer's role). An unprotected table is offered only to viewers entitled to every row of
    it in a download (METRICS.md: every export outside the admin role is suppressed)."""
    if not protected and not sees_in_full(page_context(), export=True):
        st.caption(
            f"{label}: available to the admin role only (the table is not suppressed for export).",
        )
        return
    data = frame if isinstance(frame, bytes) else to_csv_bytes(frame)
    st.download_button(
        label,
        data=audited_export(
            data,
            what=f"download {file_name}",
            detail={"filters": describe_filters(page_context().filters)},
        ),
        file_name=file_name,
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key=f"download_{file_name}",
    )


def viewer_actor(role: Role) -> str:
    """Who is downloading: the signed-in email, else the local operator (the local mode's
    single admin) or an anonymous visitor (the public view without login)."""
    try:
        user = st.user
        if user.get("is_logged_in"):
            return str(user.get("email") or f"sub:{user.get('sub') or 'unknown'}")
    except Exception:  # no OIDC configured: st.user has nothing to say
        pass
    return f"local:{audit.current_user()}" if role.name == "admin" else "anonymous"


def audited_export(
    data: bytes | Callable[[], bytes], *, what: str, detail: Mapping[str, Any] | None = None
) -> Callable[[], bytes]:
    """A deferred download (``st.download_button(data=...)``): when it is clicked, the export
    is written to the audit log (who, role, what), and only then is the file handed over; when
    the log cannot be written, nothing is (issue "Who sees what": every export is logged)."""
    role = page_context().role
    actor = viewer_actor(role)

    def hand_over() -> bytes:
        audit.record(
            load_settings().db_path,
            actor=actor,
            role=str(role),
            action="export",
            what=what,
            channel="app",
            detail=detail,
        )
        return data() if callable(data) else data

    return hand_over


UNIT_NOUNS = {
    "patients": "distinct patients (institution + pseudonymous patient id)",
    "studies": "imaging studies",
    "images": "images (instances) in the studies",
}


def describe_filters(filters: Filters) -> str:
    """The active filters in words, for notes and captions."""
    if filters.is_empty:
        return "all data in the index"
    active = [
        f"{name.replace('_', ' ')}: {_words(value)}"
        for name, value in vars(filters).items()
        if value not in ((), None)
    ]
    return "filtered to " + "; ".join(active)


def _words(value: object) -> str:
    return ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)


# --------------------------------------------------------------------------------------------
# Small-cell suppression for the viewer's role (METRICS.md "Privacy"; dashboard.roles)


def small_cell_k() -> int:
    """k of the rule: counts 0 < n < k are hidden from viewers not entitled to them."""
    return load_settings().small_cell_k


def sees_in_full(context: PageContext, *, export: bool = False) -> bool:
    """True when nothing under this context's filters is hidden from its viewer: admin; the
    programme on screen; a partner whose institution filter is exactly its own institution."""
    role = context.role
    if role.sees_all(export=export):
        return True
    return role.institution is not None and set(context.filters.institutions) == {role.institution}


@st.cache_data(max_entries=256, show_spinner=False)
def _cached_pattern(
    key: SnapshotKey,
    dims: tuple[str, ...],
    unit: str,
    filters: Filters,
    role: Role,
    export: bool,
    k: int,
) -> privacy.Suppression | None:
    counts = cached_coverage(key, dims, unit, filters)
    return suppression_for(role, counts, list(dims), k=k, export=export, scope=filters.institutions)


@dataclass(frozen=True)
class Shown:
    """One coverage table (dims, n, share; unknown cells included) as this viewer may see it.

    ``counts`` is the full table, for computing derived values only: what is drawn or
    downloaded goes through :meth:`hide`/:meth:`labels`/:meth:`download` first. The pattern is
    computed once on the whole table, so every chart and table of these cells hides the same
    cells (privacy.py, "Caveats").
    """

    dims: tuple[str, ...]
    counts: pl.DataFrame
    k: int
    screen: privacy.Suppression | None
    export: privacy.Suppression | None

    def pattern(self, *, export: bool = False) -> privacy.Suppression | None:
        """The pattern on screen, or in a download."""
        return self.export if export else self.screen

    @property
    def frame(self) -> pl.DataFrame:
        """The counts as shown on screen: n and share null where hidden, plus ``suppressed``
        and ``suppression``."""
        return self.hide(self.counts)

    def hide(
        self,
        table: pl.DataFrame,
        cell: tuple[str, ...] = ("n", "share"),
        totals: tuple[str, ...] = ("share",),
        *,
        export: bool = False,
    ) -> pl.DataFrame:
        """``table`` (one or more rows per cell, keyed by the dims' columns) with the columns
        ``cell`` (what derives from the cell's own count) nulled where the cell is hidden, and
        ``totals`` (what derives from N) nulled everywhere when N is withheld; plus
        ``suppressed`` (bool) and ``suppression`` (null, "small", "secondary")."""
        pattern = self.pattern(export=export)
        if pattern is None:
            return table.with_columns(
                pl.lit(False).alias(privacy.SUPPRESSED),
                pl.lit(None, dtype=pl.String).alias(privacy.SUPPRESSION),
            )
        return privacy.apply(table, pattern, privacy.TableRule(cell=cell, totals=totals))

    def labels(self, table: pl.DataFrame, column: str = "n", fmt: Any = format_indian) -> pl.Series:
        """Display text of ``column`` of a hidden table: "< k", "withheld", or the value."""
        values = table[column].to_list()
        reasons = table[privacy.SUPPRESSION].to_list()
        return pl.Series(
            f"{column}_label",
            [
                privacy.label(reason, self.k) if reason else (None if v is None else fmt(v))
                for v, reason in zip(values, reasons, strict=True)
            ],
            dtype=pl.String,
        )

    def download(
        self,
        table: pl.DataFrame,
        cell: tuple[str, ...] = ("n", "share"),
        totals: tuple[str, ...] = ("share",),
        counts: tuple[str, ...] = ("n",),
    ) -> pl.DataFrame:
        """``table`` as a download may carry it (the export pattern): hidden counts read "< k"
        or "withheld", what derives from them is empty, the flags are dropped."""
        hidden = self.hide(table, cell, totals, export=True)
        return privacy.shown_counts(hidden, self.k, counts)

    def total(self, value: int | None, *, unknown: bool = False, export: bool = False) -> str:
        """A total of this table (N; with ``unknown`` the count of unknowns or a total that
        includes them) as text: withheld when the pattern says so, "< k" when small."""
        pattern = self.pattern(export=export)
        if pattern is None:
            return format_indian(value)
        withheld = pattern.unknown_withheld if unknown else pattern.totals_withheld
        shown = privacy.shown_total(value, self.k, withheld=withheld)
        return shown if isinstance(shown, str) else format_indian(shown)

    def divergence(self, value: float | None, fmt: Any = None) -> str:
        """A JSD or representativeness: coarse (2 decimals) for a viewer who may not see every
        cell, withheld when N is (privacy.coarse)."""
        if self.screen is not None:
            if self.screen.totals_withheld:
                return privacy.WITHHELD_LABEL
            value = privacy.coarse(value)
        return "–" if value is None else (fmt(value) if fmt else f"{value:.2f}")

    @property
    def totals_withheld(self) -> bool:
        """N is withheld on screen: shares, rates over N and divergences are not shown."""
        return self.screen is not None and self.screen.totals_withheld

    @property
    def any_hidden(self) -> bool:
        """Some cell is hidden on screen."""
        return self.screen is not None and self.screen.suppressed > 0


def shown_coverage(
    context: PageContext,
    dims: tuple[str, ...],
    *,
    filters: Filters | None = None,
    unit: str | None = None,
) -> Shown:
    """Coverage of ``dims`` under the context's filters (or ``filters``) and unit, with the
    suppression patterns of the context's role on screen and in downloads."""
    assert context.key is not None
    filters = context.filters if filters is None else filters
    unit = unit or context.unit
    k = small_cell_k()
    counts = cached_coverage(context.key, dims, unit, filters)
    screen, export = (
        _cached_pattern(context.key, dims, unit, filters, context.role, flag, k)
        for flag in (False, True)
    )
    return Shown(dims=dims, counts=counts, k=k, screen=screen, export=export)


def shown_table(context: PageContext, counts: pl.DataFrame, dims: tuple[str, ...]) -> Shown:
    """A :class:`Shown` over a counts table that is not a coverage table (monthly accrual,
    say: dims…, n, one row per cell), with the context's role and institution filter."""
    k = small_cell_k()
    scope = context.filters.institutions
    screen, export = (
        suppression_for(context.role, counts, list(dims), k=k, export=flag, scope=scope)
        for flag in (False, True)
    )
    return Shown(dims=dims, counts=counts, k=k, screen=screen, export=export)


def headline_count(context: PageContext, value: int | None, *, export: bool = False) -> str:
    """A single count (a headline total under the filters) as this viewer may see it:
    "< k" when 0 < value < k and the viewer is not entitled to every row counted."""
    if sees_in_full(context, export=export):
        return format_indian(value)
    shown = privacy.shown_total(value, small_cell_k())
    return shown if isinstance(shown, str) else format_indian(shown)


def headline_share(context: PageContext, part: int, whole: int, fmt: Any = None) -> str:
    """``part`` / ``whole`` as text, withheld from a viewer not entitled to every row when the
    part, or the rest of the whole, is a small count (either would reveal it)."""
    if not sees_in_full(context) and any(0 < v < small_cell_k() for v in (part, whole - part)):
        return privacy.WITHHELD_LABEL
    value = part / whole if whole else None
    return (fmt or (lambda v: "–" if v is None else f"{v:.0%}"))(value)


def restricted(context: PageContext, what: str, *, partner_own: bool = False) -> bool:
    """True, after saying so, when this page's detail is not for the viewer's role.

    ``partner_own``: a partner may see it when the institution filter is its own alone."""
    if sees_in_full(context) and (partner_own or context.role.institution is None):
        return False
    role = context.role
    hint = (
        f" Set the Institution filter to your own institution ({role.institution}) to see "
        "your figures in full."
        if partner_own and role.institution
        else ""
    )
    st.info(
        f"{what} shows counts by institution and other small groups: it is available to the "
        f"programme team, not to the {role.name} view.{hint}",
        icon=":material/lock:",
    )
    return True
