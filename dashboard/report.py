"""The diversity datasheet: one self-contained HTML file describing an index snapshot.

`python -m dashboard report --db PATH --out FILE.html` and the Overview page's download button
both call :func:`build_datasheet` and :func:`render_html`. The numbers come from the functions
the pages and the other commands use (dashboard.gaps, dashboard.coverage, dashboard.quality,
dashboard.phi and the named queries), so a figure in the datasheet and on a page or in
`python -m dashboard score` output are the same figure; nothing here computes a metric of its own.

The document follows the composition items of the STANDING Together recommendations for the
documentation of health datasets and the seven sections of Datasheets for Datasets. What the
index can answer is filled with live numbers; what only the programme can answer (motivation,
intended uses, licence, maintainers) is left as a visible "to be completed by the programme"
placeholder, never invented.

The file has no external resources: CSS is inline and charts are inline SVG drawn offline by
vl-convert. It is versioned by snapshot: :func:`snapshot_id` hashes a summary of the index's
content (totals, ingest log, registry, quarantine, privacy audit), so the id changes with any
ingest and stays the same however often, and wherever, the datasheet is regenerated.
"""

from __future__ import annotations

import ctypes.util
import dataclasses
import datetime as dt
import hashlib
import importlib.util
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import altair as alt
import duckdb
import jinja2
import polars as pl
import vl_convert
from markupsafe import Markup

from dashboard import charts, privacy, sql
from dashboard import gaps as gap_analysis
from dashboard.config import load_settings
from dashboard.contract import AGE_BANDS
from dashboard.coverage import coverage
from dashboard.db import connect_readonly
from dashboard.filters import NO_FILTERS
from dashboard.formatting import (
    MISSING,
    format_indian,
    format_interval,
    format_percent,
    format_ratio,
)
from dashboard.phi import TAG_LABELS, phi_by_institution, phi_totals
from dashboard.quality import missing_by_field, missing_rates
from dashboard.reference import GEO_ATTRIBUTION, load_reference
from dashboard.roles import LOCAL_ADMIN, Role, suppression_for

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "datasheet.html.j2"
IST = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")

SCORED_DIMS: tuple[str, ...] = ("state", "sex", "age_band", "area_type")
GAP_DIMS: tuple[str, ...] = ("state", "sex", "age_band")
REFERENCE = "population"  # the 2026 projection, as on the Overview and in `score`
UNIT = "patients"
TOP_GAPS_TABLE = 15
TOP_GAPS_CHART = 20
TOP_CONDITIONS = 15

SOURCE_LABELS: dict[str, str] = {
    "manifest": "Manifest (CSV, TSV or Parquet)",
    "dicom": "DICOM headers (files)",
    "dicomweb": "DICOMweb (PACS)",
    "demo": "Synthetic demo generator",
}
FACILITY_LABELS: dict[str, str] = {
    "PHC": "Primary health centre",
    "CHC": "Community health centre",
    "district_hospital": "District hospital",
    "medical_college": "Medical college",
    "tertiary": "Tertiary hospital",
    "private": "Private",
    "mobile_camp": "Mobile/camp",
}
MODALITY_LABELS: dict[str, str] = {
    "CT": "Computed tomography",
    "MR": "Magnetic resonance",
    "CR": "Computed radiography",
    "DX": "Digital radiography (X-ray)",
    "MG": "Mammography",
    "US": "Ultrasound",
    "PT": "PET",
    "NM": "Nuclear medicine",
    "XA": "X-ray angiography",
    "RF": "Fluoroscopy",
    "OP": "Fundus photography",
    "OPT": "Optical coherence tomography",
    "SM": "Whole-slide imaging",
    "XC": "External camera (dermoscopy)",
    "ES": "Endoscopy",
}
DIM_PHRASES: dict[str, str] = {
    "state": "state/UT",
    "sex": "sex",
    "age_band": "age band",
    "area_type": "urban/rural",
}
CONDITION_LABELS: dict[str, str] = {"copd": "COPD", "covid19": "COVID-19"}
DIM_UNKNOWN_WORDS: dict[str, str] = {
    "state": "state/UT of residence unknown",
    "sex": "sex unknown (U)",
    "age_band": "age unknown",
    "area_type": "urban/rural unknown",
}

CITATIONS: tuple[str, ...] = (
    "Alderman JE, Palmer J, Laws E, et al. Tackling algorithmic bias and promoting transparency "
    "in health datasets: the STANDING Together consensus recommendations. The Lancet Digital "
    "Health, 2025. https://www.datadiversity.org",
    "Gebru T, Morgenstern J, Vecchione B, Vaughan JW, Wallach H, Daumé III H, Crawford K. "
    "Datasheets for Datasets. Communications of the ACM 64(12):86–92, 2021. "
    "https://arxiv.org/abs/1803.09010",
)


class ReportError(RuntimeError):
    """The datasheet cannot be generated (for example, a chart fails to draw)."""


# --------------------------------------------------------------------------- the reader's role


@dataclass
class Viewer:
    """Whom the datasheet is written for, and what had to be withheld from them.

    The datasheet is an export, so every role but admin gets the suppressed edition
    (METRICS.md "Privacy"): each table of counts gets its pattern from
    :func:`dashboard.roles.suppression_for` (``export=True``) and is hidden with
    :func:`dashboard.privacy.apply`; single totals go through :func:`privacy.shown_total`
    and divergences through :func:`privacy.coarse`, as on the pages.
    """

    role: Role
    k: int
    withheld: list[str] = field(default_factory=list)
    """What was withheld, in words, for the datasheet's own note."""

    @property
    def full(self) -> bool:
        """Nothing is withheld from this role (admin)."""
        return self.role.sees_all(export=True)

    def pattern(
        self, counts: pl.DataFrame, dims: Sequence[str], count: str = "n"
    ) -> privacy.Suppression | None:
        """The export pattern of ``counts`` (dims…, ``count``; unknown cells included)."""
        if self.full:
            return None
        frame = counts if count == "n" else counts.rename({count: "n"})
        return suppression_for(
            self.role, frame.select(*dims, "n"), list(dims), k=self.k, export=True
        )

    def hide(
        self,
        table: pl.DataFrame,
        pattern: privacy.Suppression | None,
        rule: privacy.TableRule,
        what: str,
    ) -> pl.DataFrame:
        """``table`` with what ``pattern`` hides nulled (and noted), plus the flag columns."""
        if pattern is None:
            return table.with_columns(
                pl.lit(False).alias(privacy.SUPPRESSED),
                pl.lit(None, dtype=pl.String).alias(privacy.SUPPRESSION),
            )
        hidden = privacy.apply(table, pattern, rule)
        self.note(what, pattern)
        return hidden

    def note(self, what: str, pattern: privacy.Suppression | None) -> None:
        """Record, in words, what ``pattern`` withholds from the table ``what``."""
        if pattern is None:
            return
        parts = []
        if pattern.suppressed:
            parts.append(f"{pattern.suppressed} cell{'s' if pattern.suppressed > 1 else ''}")
        if pattern.totals_withheld:
            parts.append("its total and shares")
        elif pattern.unknown_withheld:
            parts.append("its count of unknowns")
        if parts:
            self.withheld.append(f"{what}: {' and '.join(parts)}")

    def count(self, value: int | None, *, withheld: bool = False) -> str:
        """A count as this role may see it: "< k" when small, "withheld", or the number."""
        if self.full:
            return format_indian(value)
        shown = privacy.shown_total(value, self.k, withheld=withheld)
        return shown if isinstance(shown, str) else format_indian(shown)

    def counts(self, values: Sequence[int | None], what: str) -> list[str]:
        """Independent counts (no shared total): each one "< k" when small."""
        shown = [self.count(v) for v in values]
        hidden = sum(1 for v in values if v is not None and 0 < v < self.k) if not self.full else 0
        if hidden:
            self.withheld.append(f"{what}: {hidden} count{'s' if hidden > 1 else ''}")
        return shown

    def labels(self, frame: pl.DataFrame, column: str = "n") -> list[str]:
        """Display text of ``column`` of a hidden table: "< k", "withheld", or the number."""
        return [
            privacy.label(reason, self.k) or format_indian(value)
            for value, reason in frame.select(column, privacy.SUPPRESSION).iter_rows()
        ]

    def divergence(
        self, value: float | None, pattern: privacy.Suppression | None, digits: int = 3
    ) -> str:
        """A JSD or representativeness: as before for admin; else rounded to 2 decimals as on
        the pages (privacy.coarse), or withheld when the table's N is."""
        if self.full:
            return MISSING if value is None else f"{value:.{digits}f}"
        if pattern is not None and pattern.totals_withheld:
            return privacy.WITHHELD_LABEL
        value = privacy.coarse(value)
        return MISSING if value is None else f"{value:.2f}"

    def describe(self) -> str:
        """The datasheet's line on whom it was made for."""
        if self.full:
            return "the admin role: every count in full"
        who = {
            "programme": "the programme role",
            "public": "the public",
            "partner": f"partner institution {self.role.institution}",
        }[self.role.name]
        return (
            f"{who} ({self.role}): counts from 1 to {self.k - 1} are shown as “< {self.k}” "
            "and a few larger ones as “withheld” so that totals cannot reveal them "
            "(METRICS.md, small-cell suppression); shares, ratios, intervals and shortfalls of "
            "those cells are withheld and divergences are rounded to 2 decimals"
        )


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class Snapshot:
    """Which index the datasheet describes, and when and by what it was generated."""

    id: str
    summary: dict[str, Any]
    """The content summary that ``id`` hashes (JSON-safe values)."""
    generated_at: dt.datetime
    tool_version: str


def snapshot_summary(totals: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    """The content summary of a snapshot: ``index_totals`` (no filters) and ``report_snapshot``.

    Every value is made JSON-safe (timestamps as ISO text) so the summary hashes the same way
    wherever it is computed.
    """
    merged = {
        **{k: totals[k] for k in ("studies", "patients", "images", "institutions", "demo_studies")},
        **dict(state),
    }
    return {
        k: v.isoformat() if isinstance(v, dt.date | dt.datetime) else v
        for k, v in sorted(merged.items())
    }


def snapshot_id(summary: Mapping[str, Any]) -> str:
    """The first 12 hex digits of the SHA-256 of the summary as canonical JSON."""
    text = json.dumps(summary, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def index_totals(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The headline totals of the whole index (the Overview's, without filters)."""
    shape = sql.query(con, "index_shape")
    totals = sql.query(
        con,
        "index_totals",
        max_patient_key=int(shape["max_patient_key"][0]),
        **NO_FILTERS.params(),
    )
    return totals.row(0, named=True)


def read_snapshot_summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The content summary of the index ``con`` reads."""
    state = sql.query(con, "report_snapshot").row(0, named=True)
    return snapshot_summary(index_totals(con), state)


def summary_time(value: str | None) -> dt.datetime | None:
    """A timestamp of the snapshot summary back from its ISO text."""
    return None if value is None else dt.datetime.fromisoformat(value)


def tool_version() -> str:
    """This tool's version (the same one a scan package records)."""
    from dashboard.ingest.package import tool_version as version

    return version()


# --------------------------------------------------------------------------- charts as SVG

_ID = re.compile(r'\bid="([^"]+)"')
_PATH_DATA = re.compile(r'\bd="([^"]*)"')
_DECIMAL = re.compile(r"-?\d+\.\d+")


def _round(match: re.Match[str]) -> str:
    text = f"{float(match.group()):.1f}"
    text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def inline_svg(chart: alt.TopLevelMixin, prefix: str) -> Markup:
    """A chart as inline SVG, drawn offline by vl-convert.

    Element ids get ``prefix`` so that several charts in one page do not share a gradient or
    clip path, and path coordinates are rounded to 0.1 px (the India map is several times
    smaller and looks the same).
    """
    try:
        svg = vl_convert.vegalite_to_svg(chart.to_json())
    except Exception as problem:  # vl-convert raises plain ValueErrors with the Vega message
        raise ReportError(f"chart {prefix} could not be drawn: {problem}") from problem
    for name in set(_ID.findall(svg)):
        svg = svg.replace(f'id="{name}"', f'id="{prefix}-{name}"')
        svg = svg.replace(f"url(#{name})", f"url(#{prefix}-{name})")
        svg = svg.replace(f'href="#{name}"', f'href="#{prefix}-{name}"')
    svg = _PATH_DATA.sub(lambda m: f'd="{_DECIMAL.sub(_round, m.group(1))}"', svg)
    svg = svg.replace("<svg ", f'<svg role="img" aria-labelledby="{prefix}-caption" ', 1)
    return Markup(svg)


def _figure(figure_id: str, chart: alt.TopLevelMixin, caption: str) -> Figure:
    return Figure(id=figure_id, svg=inline_svg(chart, figure_id), caption=caption)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Table:
    """A table for the template: column titles and rows of pre-formatted strings."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()
    """Per column: right-align (numbers)."""
    bars: tuple[float | None, ...] = ()
    """Optional 0–1 value per row drawn as a bar in the last column."""

    @classmethod
    def of(
        cls,
        frame: pl.DataFrame,
        numeric: Sequence[str] = (),
        bars: Sequence[float | None] = (),
    ) -> Table:
        rows = tuple(
            tuple(MISSING if v is None else str(v) for v in row) for row in frame.iter_rows()
        )
        return cls(
            columns=tuple(frame.columns),
            rows=rows,
            numeric=tuple(c in numeric for c in frame.columns),
            bars=tuple(bars),
        )

    @property
    def empty(self) -> bool:
        return not self.rows


@dataclass(frozen=True)
class Figure:
    """A chart and the note that says what it counts, against what, and what it leaves out."""

    id: str
    svg: Markup
    caption: str


@dataclass(frozen=True)
class DimensionSection:
    """One dimension of the data subjects against the population."""

    dim: str
    title: str
    phrase: str
    """The dimension's name inside a sentence: "state/UT", "age band"."""
    result: gap_analysis.GapsResult
    """The representation table as the role may see it (hidden cells' n, share, RR… null)."""
    table: Table
    figure: Figure | None
    unknown_words: str
    pattern: privacy.Suppression | None = None
    total_text: str = ""
    """N (a known value) as the role may see it."""
    unknown_text: str = ""
    missing_text: str = ""
    jsd_text: str = ""
    representativeness_text: str = ""


@dataclass
class Datasheet:
    """Everything the template shows, computed once from one snapshot."""

    snapshot: Snapshot
    settings: dict[str, Any]
    totals: dict[str, Any]
    first_date: dt.date | None
    last_date: dt.date | None
    demo_share: float | None
    dimensions: list[DimensionSection] = field(default_factory=list)
    scores: Table | None = None
    gaps: gap_analysis.GapsResult | None = None
    gaps_pattern: privacy.Suppression | None = None
    gaps_total_text: str = ""
    gaps_unknown_text: str = ""
    gaps_small_text: str = ""
    under_text: str = ""
    """Groups flagged under, as the role may see them."""
    gaps_withheld_note: str = ""
    """Why the table of the largest gaps is not shown (a suppressed edition whose N is withheld)."""
    gaps_table: Table | None = None
    gaps_figure: Figure | None = None
    flag_counts: dict[str, int] = field(default_factory=dict)
    empty_states: list[str] = field(default_factory=list)
    under_groups: list[tuple[str, list[str]]] = field(default_factory=list)
    """(dimension phrase, groups flagged under) per dimension that has any."""
    largest_gaps: list[str] = field(default_factory=list)
    """The three largest shortfalls in words, for the summary."""
    last_ingest_at: dt.datetime | None = None
    limitations: list[str] = field(default_factory=list)
    missing: Table | None = None
    conditions: Table | None = None
    conditions_unknown: int = 0
    sources: Table | None = None
    facilities: Table | None = None
    site_states: Table | None = None
    sites_figure: Figure | None = None
    accrual_figure: Figure | None = None
    modalities: Table | None = None
    modality_figure: Figure | None = None
    ingest: dict[str, int] = field(default_factory=dict)
    reasons: Table | None = None
    phi: dict[str, int] = field(default_factory=dict)
    phi_table: Table | None = None
    dicom_studies: int = 0
    map_figure: Figure | None = None
    references: list[str] = field(default_factory=list)
    reference_notes: list[str] = field(default_factory=list)
    viewer: Viewer = field(default_factory=lambda: Viewer(LOCAL_ADMIN, 10))
    shown_totals: dict[str, str] = field(default_factory=dict)
    """Headline counts as the role may see them (Indian grouping, "< k" when small)."""
    complete_text: str = ""
    ingest_text: dict[str, str] = field(default_factory=dict)
    phi_text: dict[str, str] = field(default_factory=dict)
    dicom_studies_text: str = ""
    conditions_unknown_text: str = ""
    identity: dict[str, Any] = field(default_factory=dict)
    """The snapshot summary as shown: counts below k as "< k" for a suppressed edition."""

    @property
    def has_studies(self) -> bool:
        return bool(self.totals.get("studies"))

    def machine_summary(self) -> dict[str, Any]:
        """The headline numbers as JSON, embedded in the file for programs that read it."""
        if not self.viewer.full:
            return self._suppressed_summary()
        return {
            "snapshot_id": self.snapshot.id,
            "generated_at": self.snapshot.generated_at.isoformat(),
            "tool_version": self.snapshot.tool_version,
            "snapshot": self.snapshot.summary,
            "totals": self.totals,
            "unit": UNIT,
            "reference": REFERENCE,
            "representativeness": {
                d.dim: d.result.score() | {"missing_rate": d.result.missing_rate}
                for d in self.dimensions
            },
            "gaps": None
            if self.gaps is None
            else {
                "dims": list(self.gaps.dims),
                "flags": self.flag_counts,
                "n": self.gaps.total,
                "unknown": self.gaps.unknown,
                "top": [
                    {k: row[k] for k in (*self.gaps.dims, "n", "rr", "rr_low", "rr_high", "flag")}
                    | {"shortfall": row["shortfall"]}
                    for row in self._top_gaps().to_dicts()
                ],
            },
            "settings": self.settings,
        }

    def _top_gaps(self) -> pl.DataFrame:
        assert self.gaps is not None
        return top_gaps(self.gaps.table, TOP_GAPS_TABLE)

    def _suppressed_summary(self) -> dict[str, Any]:
        """The machine summary of a suppressed edition: counts as shown (text "< k" or
        "withheld" where hidden), divergences rounded as on the pages, hidden cells left out."""

        def value(text: str) -> int | str:
            digits = text.replace(",", "")
            return int(digits) if digits.isdigit() else text

        viewer = self.viewer
        return {
            "snapshot_id": self.snapshot.id,
            "generated_at": self.snapshot.generated_at.isoformat(),
            "tool_version": self.snapshot.tool_version,
            "role": str(viewer.role),
            "suppressed": True,
            "k": viewer.k,
            "withheld": list(viewer.withheld),
            "snapshot": self.identity,
            "totals": {key: value(text) for key, text in self.shown_totals.items()},
            "unit": UNIT,
            "reference": REFERENCE,
            "representativeness": {
                d.dim: {
                    "jsd": None
                    if d.jsd_text in (privacy.WITHHELD_LABEL, MISSING)
                    else float(d.jsd_text),
                    "representativeness": None
                    if d.representativeness_text in (privacy.WITHHELD_LABEL, MISSING)
                    else float(d.representativeness_text),
                    "n": value(d.total_text),
                    "unknown": value(d.unknown_text),
                }
                for d in self.dimensions
            },
            "gaps": None
            if self.gaps is None
            else {
                "dims": list(self.gaps.dims),
                "flags": self.flag_counts,
                "n": value(self.gaps_total_text),
                "unknown": value(self.gaps_unknown_text),
                "top": [
                    {k: row[k] for k in (*self.gaps.dims, "n", "rr", "rr_low", "rr_high", "flag")}
                    | {"shortfall": row["shortfall"]}
                    for row in self._top_gaps().to_dicts()
                ],
            },
            "settings": self.settings,
        }


def top_gaps(table: pl.DataFrame, limit: int) -> pl.DataFrame:
    """The cells with a shortfall, largest first (as the Overview's five largest gaps)."""
    under = table.filter(pl.col("shortfall") > 0)
    return gap_analysis.sort_gaps(under, "shortfall").head(limit)


def _census_order(table: pl.DataFrame, dim: str) -> pl.DataFrame:
    """Age bands youngest first (the table sorts them as text: 0-4, 10-14, …, 5-9)."""
    if dim != "age_band":
        return table
    order = {band: i for i, band in enumerate(AGE_BANDS)}
    rank = pl.col("age_band").replace_strict(order, default=len(order), return_dtype=pl.Int64)
    return table.sort(rank, maintain_order=True)


def _label(mapping: Mapping[str, str], value: str | None) -> str:
    if value is None:
        return "Unknown"
    return mapping.get(value, value)


def _date(value: dt.date | None) -> str:
    return MISSING if value is None else f"{value:%d %b %Y}"


def _dimension(
    con: duckdb.DuckDBPyConnection, dim: str, viewer: Viewer
) -> tuple[DimensionSection, gap_analysis.ResolvedReference]:
    reference = gap_analysis.resolve_reference(REFERENCE, [dim])
    counts = coverage(con, [dim], UNIT, reference.filters)
    result = gap_analysis.representation(counts, reference)
    pattern = viewer.pattern(counts, [dim])
    if pattern is not None:  # before sorting: a hidden cell's place would reveal it
        hidden = viewer.hide(result.table, pattern, privacy.GAPS, DIM_PHRASES[dim])
        result = dataclasses.replace(result, table=hidden)
    ordered = _census_order(result.table, dim)
    if dim == "state":
        ordered = gap_analysis.sort_gaps(ordered, "rr")
    shown = gap_analysis.gaps_display(dataclasses.replace(result, table=ordered), UNIT)
    if pattern is not None:
        shown = shown.with_columns(
            pl.Series(UNIT.capitalize(), viewer.labels(ordered), dtype=pl.String)
        )
    shown = shown.drop("Shortfall") if dim != "state" else shown
    table = Table.of(shown, numeric=[c for c in shown.columns if c != shown.columns[0]])
    title = gap_analysis.DIM_TITLES[dim]
    total_text = viewer.count(result.total, withheld=bool(pattern and pattern.totals_withheld))
    unknown_text = viewer.count(result.unknown, withheld=bool(pattern and pattern.unknown_withheld))
    missing_shown = viewer.full or unknown_text == format_indian(result.unknown)
    figure = None
    if result.total and dim != "state":
        listed = ordered.filter(pl.col("ref_share").is_not_null())
        labels = gap_analysis.cell_labels(listed, [dim])
        frame = listed.select(
            category=pl.Series(labels, dtype=pl.String),
            observed_share="share",
            reference_share="ref_share",
        )
        chart = charts.share_vs_reference(
            frame,
            category_col="category",
            category_title=title,
            order=labels,
            observed_title=f"This dataset ({UNIT})",
            reference_title="Population 2026",
            title=f"{title}: share of {UNIT} vs share of the population",
        )
        if pattern is not None:
            chart = _mark_hidden_chart(
                chart,
                ["category"],
                _hidden_labels(listed, labels, viewer.k),
                ["observed_label", "rr_label"],
            )
        figure = _figure(
            f"fig-{dim}",
            chart,
            f"Counted: {total_text} {UNIT} with a known "
            f"{DIM_PHRASES[dim]}. Reference: {result.reference}. Left out: "
            f"{unknown_text} {UNIT} with {DIM_UNKNOWN_WORDS[dim]}." + _hidden_caption(pattern),
        )
    section = DimensionSection(
        dim=dim,
        title=title,
        phrase=DIM_PHRASES[dim],
        result=result,
        table=table,
        figure=figure,
        unknown_words=DIM_UNKNOWN_WORDS[dim],
        pattern=pattern,
        total_text=total_text,
        unknown_text=unknown_text,
        missing_text=format_percent(result.missing_rate)
        if missing_shown
        else privacy.WITHHELD_LABEL,
        jsd_text=viewer.divergence(result.jsd, pattern),
        representativeness_text=(
            format_ratio(result.representativeness, 3)
            if viewer.full
            else viewer.divergence(result.representativeness, pattern)
        ),
    )
    return section, reference


def _hidden_labels(frame: pl.DataFrame, keys: Sequence[str], k: int) -> dict[tuple, str]:
    """Chart category → "< k"/"withheld" for the hidden rows of ``frame`` (keys: its labels)."""
    keyed = frame.with_columns(_key=pl.Series(list(keys), dtype=pl.String))
    return _page_helpers().hidden_labels(keyed, ["_key"], k)


def _mark_hidden_chart(
    chart: Any, keys: Sequence[str], labels: Mapping[tuple, str], columns: Sequence[str]
) -> Any:
    return _page_helpers().mark_hidden(chart, keys, labels, columns)


def _page_helpers() -> Any:
    """The pages' chart helpers for hidden cells (dashboard.views.widgets: pure Altair, in a
    Streamlit module), imported on first use without Streamlit's "no runtime" warnings."""
    import logging

    caching = logging.getLogger("streamlit.runtime.caching.cache_data_api")
    level = caching.level
    caching.setLevel(logging.ERROR)
    try:
        from dashboard.views import widgets
    finally:
        caching.setLevel(level)
    return widgets


def _hidden_caption(pattern: privacy.Suppression | None) -> str:
    if pattern is None or not pattern.suppressed:
        return ""
    return (
        f" Hidden: {pattern.suppressed} group(s) with fewer than {pattern.k} {UNIT}, or withheld "
        "so that totals cannot reveal them (no bar; their share is withheld)."
    )


def _scores_table(sections: Sequence[DimensionSection]) -> Table:
    rows = []
    for s in sections:
        r = s.result
        flags = r.counts_by_flag()
        rows.append(
            (
                s.title,
                s.total_text,
                s.unknown_text,
                s.missing_text,
                s.jsd_text,
                s.representativeness_text,
                f"{flags.get('under', 0)} of {r.reference_cells}",
            )
        )
    return Table(
        columns=(
            "Dimension",
            f"{UNIT.capitalize()} with a known value (N)",
            "Unknown, left out",
            "Missing rate",
            "Jensen–Shannon distance",
            "Representativeness (1 − JSD)",
            "Groups under-represented",
        ),
        rows=tuple(rows),
        numeric=(False, True, True, True, True, True, True),
    )


def _state_map(section: DimensionSection, viewer: Viewer) -> Figure:
    result = section.result
    listed = result.table.filter(pl.col("ref_share").is_not_null())
    n_labels = [format_indian(v) for v in listed["n"]] if viewer.full else viewer.labels(listed)
    values = listed.select(
        iso_code="state",
        rr=pl.when(pl.col("n") > 0).then(pl.col("rr")).otherwise(None),
        n_label=pl.Series(n_labels, dtype=pl.String),
    )
    chart = charts.choropleth(
        values,
        value_col="rr",
        value_title="Representation ratio",
        diverging=True,
        title="Patients by state/UT of residence against the 2026 population",
        subtitle="Orange: fewer patients than the population share; blue: more.",
        width=620,
        height=660,
    )
    pattern = section.pattern
    grey = "Grey: no patients from that state/UT."
    if pattern is not None and pattern.suppressed:
        chart = _page_helpers().explain_grey(chart, pattern.suppressed, pattern.k)
        grey = (
            f"Grey: no patients from that state/UT, or hidden (fewer than {pattern.k}, or "
            "withheld so that totals cannot reveal them)."
        )
    return _figure(
        "fig-map",
        chart,
        f"Counted: {section.total_text} {UNIT} with a known state/UT of "
        f"residence. Reference: {result.reference}. Left out: {section.unknown_text} "
        f"{UNIT} whose state is unknown. {grey}",
    )


def _gaps(con: duckdb.DuckDBPyConnection, sheet: Datasheet, viewer: Viewer) -> None:
    result = gap_analysis.gaps(con, list(GAP_DIMS), REFERENCE, unit=UNIT)
    pattern = None
    if not viewer.full:  # the pattern of the coverage counts under the table, as the CLI's
        reference = gap_analysis.resolve_reference(REFERENCE, list(GAP_DIMS))
        counts = coverage(con, list(reference.dims), UNIT, reference.filters)
        pattern = viewer.pattern(counts, list(GAP_DIMS))
        hidden = viewer.hide(result.table, pattern, privacy.GAPS, "state × sex × age band")
        result = dataclasses.replace(result, table=hidden)
    sheet.gaps = result
    sheet.gaps_pattern = pattern
    listed = result.table.filter(pl.col("ref_share").is_not_null())
    counted = dict(listed.group_by("flag").len().iter_rows())
    sheet.flag_counts = {flag: int(counted.get(flag, 0)) for flag in charts.FLAG_ORDER}
    sheet.under_text = format_indian(sheet.flag_counts.get("under", 0))
    if pattern is not None:
        sheet.flag_counts[privacy.WITHHELD_LABEL] = int(counted.get(None, 0))
        if pattern.totals_withheld:  # every flag is withheld: no zeros that mean nothing
            sheet.flag_counts = {privacy.WITHHELD_LABEL: listed.height}
            sheet.under_text = f"how many ({privacy.WITHHELD_LABEL})"
            sheet.gaps_withheld_note = (
                f"For this role the ratios, intervals, flags and shortfalls of these groups are "
                f"withheld: so many groups have fewer than {pattern.k} {UNIT} that their total "
                "(N) would reveal them, and every share is computed from N (METRICS.md, "
                "small-cell suppression). The admin edition of this datasheet lists the "
                "largest gaps; the one-dimension tables above are not affected."
            )
        shown = listed.filter(~pl.col(privacy.SUPPRESSED))
        sheet.gaps_small_text = (
            f"{format_indian(shown.filter(pl.col('n') < result.n_min).height)} "
            f"(and {format_indian(listed.height - shown.height)} hidden)"
        )
    else:
        sheet.gaps_small_text = format_indian(result.small_cells)
    sheet.gaps_total_text = viewer.count(
        result.total, withheld=bool(pattern and pattern.totals_withheld)
    )
    sheet.gaps_unknown_text = viewer.count(
        result.unknown, withheld=bool(pattern and pattern.unknown_withheld)
    )
    top = top_gaps(result.table, TOP_GAPS_TABLE)
    shown = gap_analysis.gaps_display(dataclasses.replace(result, table=top), UNIT)
    labels = gap_analysis.cell_labels(top, list(GAP_DIMS))
    shown = shown.select(
        pl.Series("Group (state · sex · age band)", labels, dtype=pl.String),
        UNIT.capitalize(),
        "Expected",
        "RR (95% CI)",
        "Flag",
        "Shortfall",
    )
    sheet.largest_gaps = [
        f"{label}: {format_indian(row['n'])} observed, {format_indian(row['expected'])} "
        f"expected (RR {format_ratio(row['rr'])}), short by {format_indian(row['shortfall'])}"
        for label, row in zip(labels[:3], top.head(3).to_dicts(), strict=False)
    ]
    sheet.gaps_table = Table.of(shown, numeric=[c for c in shown.columns[1:] if c != "Flag"])
    chart_rows = gap_analysis.chart_frame(
        top_gaps(result.table, TOP_GAPS_CHART), list(GAP_DIMS), TOP_GAPS_CHART
    )
    if chart_rows.height:
        chart = charts.representation_ratio_chart(
            chart_rows,
            tau=result.tau,
            label_title="State · sex · age band",
            title=f"The {chart_rows.height} groups with the largest shortfall, by ratio",
            subtitle="Dot: representation ratio; 1 = the group's population share.",
        )
        sheet.gaps_figure = _figure(
            "fig-gaps",
            chart,
            f"Counted: {sheet.gaps_total_text} {UNIT} with a known state, sex "
            f"and age. Reference: {result.reference}. Left out: "
            f"{sheet.gaps_unknown_text} {UNIT} with any of the three unknown. "
            f"Groups with fewer than {result.n_min} {UNIT} are flagged insufficient whatever "
            "their ratio.",
        )


def _missing(con: duckdb.DuckDBPyConnection, viewer: Viewer) -> Table:
    wide = sql.query(con, "dq_missing_by_institution", **NO_FILTERS.params())
    by_field = missing_by_field(missing_rates(wide))
    # Each field's count of unknowns is its own line over the same total: a small one is
    # hidden with its rate (the rate × the total would give it back).
    missing = viewer.counts(by_field["missing"].to_list(), "missing values by field")
    rates = [
        rate if text == format_indian(v) else None
        for v, rate, text in zip(by_field["missing"], by_field["rate"], missing, strict=True)
    ]
    shown = by_field.select(
        pl.col("field").alias("Field"),
        pl.Series("Studies with the field unknown", missing, dtype=pl.String),
        pl.Series("Studies", [viewer.count(v) for v in by_field["studies"]], dtype=pl.String),
        pl.Series(
            "Missing rate",
            [format_percent(v) if v is not None else privacy.WITHHELD_LABEL for v in rates]
            if not viewer.full
            else [format_percent(v) for v in by_field["rate"]],
            dtype=pl.String,
        ),
    )
    return Table.of(shown, numeric=shown.columns[1:], bars=rates)


def _conditions(con: duckdb.DuckDBPyConnection, sheet: Datasheet, viewer: Viewer) -> Table:
    counts = coverage(con, ["condition"], UNIT, NO_FILTERS)
    pattern = viewer.pattern(counts, ["condition"])
    unknown = int(counts.filter(pl.col("condition").is_null())["n"].sum() or 0)
    sheet.conditions_unknown = unknown
    sheet.conditions_unknown_text = viewer.count(
        unknown, withheld=bool(pattern and pattern.unknown_withheld)
    )
    counts = viewer.hide(counts, pattern, privacy.COVERAGE, "diagnoses")
    known = counts.filter(pl.col("condition").is_not_null()).sort(
        ["n", "condition"], descending=[True, False], nulls_last=True
    )
    top = known.head(TOP_CONDITIONS)
    names = [
        CONDITION_LABELS.get(c, label)
        for c, label in zip(
            top["condition"],
            gap_analysis.value_labels(top, ["condition"])["Condition"],
            strict=True,
        )
    ]
    shown = top.select(
        pl.Series("Condition", names, dtype=pl.String),
        pl.Series(UNIT.capitalize(), viewer.labels(top), dtype=pl.String),
        pl.Series(
            f"Share of {UNIT} with a diagnosis",
            [format_percent(v) for v in top["share"]],
            dtype=pl.String,
        ),
    )
    return Table.of(shown, numeric=shown.columns[1:])


def _collection(con: duckdb.DuckDBPyConnection, sheet: Datasheet, viewer: Viewer) -> None:
    by_source = sql.query(con, "dq_studies_by_source", **NO_FILTERS.params())
    registry = sql.query(con, "partner_registry")
    studies = int(sheet.totals["studies"]) or 1
    sources = (
        by_source.group_by("source")
        .agg(pl.col("studies").sum(), pl.col("institution").n_unique().alias("institutions"))
        .sort(["studies", "source"], descending=[True, False])
        .with_columns(share=pl.col("studies") / studies)
    )
    pattern = viewer.pattern(sources, ["source"], count="studies")
    sources = viewer.hide(
        sources,
        pattern,
        privacy.TableRule(cell=("studies", "share"), totals=("share",)),
        "studies by source",
    )
    sheet.sources = Table.of(
        sources.select(
            pl.Series("Source", [_label(SOURCE_LABELS, s) for s in sources["source"]]),
            pl.Series("Studies", viewer.labels(sources, "studies")),
            pl.Series("Share of studies", [format_percent(v) for v in sources["share"]]),
            pl.Series("Institutions", [format_indian(v) for v in sources["institutions"]]),
        ),
        numeric=("Studies", "Share of studies", "Institutions"),
    )
    per_institution = by_source.group_by("institution").agg(pl.col("studies").sum())
    patients = coverage(con, ["institution"], UNIT, NO_FILTERS).select(
        "institution", pl.col("n").alias("patients")
    )
    sites = (
        registry.join(per_institution, left_on="institution_id", right_on="institution", how="left")
        .join(patients, left_on="institution_id", right_on="institution", how="left")
        .with_columns(pl.col("studies", "patients").fill_null(0))
    )

    def grouped(key: str) -> pl.DataFrame:
        return (
            sites.group_by(key)
            .agg(
                pl.len().alias("registered"),
                (pl.col("studies") > 0).sum().alias("contributing"),
                pl.col("studies").sum(),
                pl.col("patients").sum(),
            )
            .sort(["patients", key], descending=[True, False], nulls_last=True)
        )

    def shown(frame: pl.DataFrame, key: str, column: str, what: str) -> list[str]:
        """One column of counts as the role may see it (its own pattern over the rows)."""
        if viewer.full:
            return [format_indian(v) for v in frame[column]]
        cells = frame.select(key, column)
        pattern = viewer.pattern(cells, [key], count=column)
        hidden = viewer.hide(cells, pattern, privacy.TableRule(cell=(column,)), f"{what}, {column}")
        return viewer.labels(hidden, column)

    def counts(frame: pl.DataFrame, key: str, label: str, labels: list[str]) -> pl.DataFrame:
        return frame.select(
            pl.Series(label, labels, dtype=pl.String),
            pl.Series("Registered", [format_indian(v) for v in frame["registered"]]),
            pl.Series("Contributing", [format_indian(v) for v in frame["contributing"]]),
            pl.Series("Studies", shown(frame, key, "studies", f"sites by {label.lower()}")),
            pl.Series(
                UNIT.capitalize(), shown(frame, key, "patients", f"sites by {label.lower()}")
            ),
        )

    numeric = ("Registered", "Contributing", "Studies", UNIT.capitalize())
    by_facility = grouped("facility_type")
    facility_labels = [_label(FACILITY_LABELS, v) for v in by_facility["facility_type"]]
    sheet.facilities = Table.of(
        counts(by_facility, "facility_type", "Facility type", facility_labels), numeric=numeric
    )
    by_state = grouped("state")
    names = load_reference().state_names
    sheet.site_states = Table.of(
        counts(
            by_state,
            "state",
            "State/UT of the institution",
            [_label(names, v) for v in by_state["state"]],
        ),
        numeric=numeric,
    )
    if sheet.has_studies:
        bars = by_facility.with_columns(label=pl.Series(facility_labels, dtype=pl.String))
        facility_pattern = viewer.pattern(bars, ["facility_type"], count="patients")
        if facility_pattern is not None:
            bars = viewer.hide(
                bars, facility_pattern, privacy.TableRule(cell=("patients",)), "sites chart"
            )
        chart = charts.category_bars(
            bars,
            category_col="label",
            count_col="patients",
            category_title="Facility type",
            count_title=UNIT.capitalize(),
            title=f"{UNIT.capitalize()} by the type of facility that imaged them",
        )
        if facility_pattern is not None:
            chart = _category_bars_hidden(chart, bars, viewer.k)
        sheet.sites_figure = _figure(
            "fig-sites",
            chart,
            f"Counted: distinct {UNIT} per institution, summed by the facility type "
            "in the institution registry." + _hidden_caption(facility_pattern),
        )
        monthly = sql.query(
            con, "monthly_accrual", dims=["source"], unit="studies", **NO_FILTERS.params()
        ).with_columns(source=pl.col("source").replace(SOURCE_LABELS))
        sheet.accrual_figure = (
            _accrual_figure(monthly) if viewer.full else _accrual_figure_suppressed(monthly, viewer)
        )
    modality = coverage(con, ["modality"], "studies", NO_FILTERS)
    modality_pattern = viewer.pattern(modality, ["modality"])
    modality = viewer.hide(modality, modality_pattern, privacy.COVERAGE, "modalities").sort(
        ["n", "modality"], descending=[True, False], nulls_last=True
    )
    sheet.modalities = Table.of(
        modality.select(
            pl.col("modality").alias("DICOM code"),
            pl.Series("Modality", [_label(MODALITY_LABELS, v) for v in modality["modality"]]),
            pl.Series("Studies", viewer.labels(modality)),
            pl.Series("Share of studies", [format_percent(v) for v in modality["share"]]),
        ),
        numeric=("Studies", "Share of studies"),
    )
    if modality.height:
        modality = modality.with_columns(
            label=pl.Series(
                [f"{_label(MODALITY_LABELS, v)} ({v})" for v in modality["modality"]],
                dtype=pl.String,
            )
        )
        chart = charts.category_bars(
            modality,
            category_col="label",
            count_col="n",
            category_title="Modality",
            count_title="Studies",
            title="Studies by modality",
        )
        if modality_pattern is not None:
            chart = _category_bars_hidden(chart, modality, viewer.k)
        sheet.modality_figure = _figure(
            "fig-modality",
            chart,
            "Counted: imaging studies by their DICOM modality code."
            + _hidden_caption(modality_pattern).replace(UNIT, "studies"),
        )
    sheet.dicom_studies = int(
        by_source.filter(pl.col("source").is_in(["dicom", "dicomweb"]))["studies"].sum() or 0
    )
    sheet.dicom_studies_text = viewer.count(sheet.dicom_studies)


def _category_bars_hidden(chart: Any, frame: pl.DataFrame, k: int) -> Any:
    """A category_bars chart whose hidden bars read "< k"/"withheld" as on the pages."""
    helpers = _page_helpers()
    return helpers.category_bars_hidden(chart, helpers.hidden_labels(frame, ["label"], k))


def _accrual_figure(monthly: pl.DataFrame) -> Figure:
    chart = charts.accrual_chart(
        monthly,
        count_col="n",
        count_title="Studies",
        category_col="source",
        category_title="Source",
        title="Studies per month of the study date",
    )
    return _figure(
        "fig-accrual",
        chart,
        "Counted: studies by the month of their study date, by how they reached the index.",
    )


def _accrual_figure_suppressed(monthly: pl.DataFrame, viewer: Viewer) -> Figure:
    """Studies per month only, as the Trends page shows a suppressed viewer: small months
    (and their complements) leave a gap."""
    per_month = monthly.group_by("month").agg(pl.col("n").sum()).sort("month")
    pattern = viewer.pattern(per_month, ["month"])
    frame = viewer.hide(per_month, pattern, privacy.TableRule(cell=("n",)), "studies per month")
    chart = charts.series_over_time(
        frame.with_columns(
            series=pl.lit("Studies"), n_label=pl.Series(viewer.labels(frame), dtype=pl.String)
        ),
        value_col="n",
        series_col="series",
        value_title="Studies per month",
        series_title="Measure",
        label_col="n_label",
        value_format=",.0f",
        title="Studies per month of the study date",
        subtitle=f"Gaps: months with fewer than {viewer.k} studies (or withheld so that they "
        "cannot be worked out).",
    )
    return _figure(
        "fig-accrual",
        chart,
        "Counted: studies by the month of their study date (by source for the admin role "
        "only: by source most months are small).",
    )


def _quality(con: duckdb.DuckDBPyConnection, sheet: Datasheet, viewer: Viewer) -> None:
    files = sql.query(con, "dq_ingest_files")
    sheet.ingest = {
        "files": files.height,
        "rows_read": int(files["rows_read"].sum() or 0),
        "accepted": int(files["accepted"].sum() or 0),
        "quarantined": int(files["quarantined"].sum() or 0),
        "still_open": int(files["still_open"].sum() or 0),
    }
    # rows read = accepted + quarantined: one table, so a small part does not follow from
    # the other two.
    outcome = pl.DataFrame(
        {
            "outcome": ["accepted", "quarantined"],
            "n": [sheet.ingest["accepted"], sheet.ingest["quarantined"]],
        }
    )
    pattern = viewer.pattern(outcome, ["outcome"])
    outcome = viewer.hide(
        outcome, pattern, privacy.TableRule(cell=("n",)), "rows accepted and quarantined"
    )
    shown = dict(zip(outcome["outcome"], viewer.labels(outcome), strict=True))
    sheet.ingest_text = {
        "files": format_indian(sheet.ingest["files"]),
        "rows_read": viewer.count(
            sheet.ingest["rows_read"], withheld=bool(pattern and pattern.totals_withheld)
        ),
        **shown,
        "still_open": viewer.count(sheet.ingest["still_open"]),
    }
    # By field only: a reason quotes the submitted value, and the datasheet holds counts only.
    reasons = sql.query(con, "dq_quarantine_reasons", f_institutions=None)
    by_field = (
        reasons.group_by("column")
        .agg(
            pl.col("rows_to_fix").sum().cast(pl.Int64),
            pl.col("reason").n_unique().alias("problems"),
            pl.col("institution_id").drop_nulls().n_unique().alias("institutions"),
        )
        .sort(["rows_to_fix", "column"], descending=[True, False])
    )
    sheet.reasons = Table.of(
        by_field.select(
            pl.col("column").alias("Field with the problem"),
            pl.Series(
                "Rows to fix",
                viewer.counts(by_field["rows_to_fix"].to_list(), "quarantine by field"),
            ),
            pl.Series("Distinct problems", [format_indian(v) for v in by_field["problems"]]),
            pl.Series("Institutions", [format_indian(v) for v in by_field["institutions"]]),
        ),
        numeric=("Rows to fix", "Distinct problems", "Institutions"),
    )
    flags = sql.query(con, "phi_flags", f_institutions=None)
    sheet.phi = phi_totals(flags)
    sheet.phi_text = {key: viewer.count(value) for key, value in sheet.phi.items()}
    sheet.phi_text["institutions"] = format_indian(sheet.phi["institutions"])
    if flags.height:
        wide = phi_by_institution(flags).rename({"institution_id": "institution"})
        tags = [c for c in wide.columns if c in TAG_LABELS.values()]

        def column(name: str, total: str | None = None) -> list[str]:
            """Files (or studies) per institution: each column its own table over the
            institutions, the partner's own row in full (roles.Role.entitled)."""
            if viewer.full:
                return [format_indian(v) for v in wide[name]]
            pattern = viewer.pattern(wide, ["institution"], count=name)
            hidden = viewer.hide(
                wide.select("institution", name),
                pattern,
                privacy.TableRule(cell=(name,)),
                f"de-identification audit, {name.replace('_', ' ')}",
            )
            if total is not None:
                sheet.phi_text[total] = viewer.count(
                    sheet.phi[total], withheld=bool(pattern and pattern.totals_withheld)
                )
            return viewer.labels(hidden, name)

        sheet.phi_table = Table.of(
            wide.select(
                pl.col("institution").alias("Institution"),
                pl.col("institution_name").alias("Name"),
                pl.Series("Files flagged", column("flagged_files", "flagged_files")),
                pl.Series("Studies flagged", column("flagged_studies", "flagged_studies")),
                *(pl.Series(t, column(t)) for t in tags),
            ),
            numeric=("Files flagged", "Studies flagged", *tags),
        )


def _limitations(sheet: Datasheet, references: Sequence[gap_analysis.ResolvedReference]) -> None:
    """Limitations that follow from the numbers and the references (never opinions)."""
    notes: list[str] = []
    names = load_reference().state_names
    state = next((d for d in sheet.dimensions if d.dim == "state"), None)
    if state is not None and state.result.total:
        empty = state.result.table.filter((pl.col("n") == 0) & pl.col("ref_share").is_not_null())[
            "state"
        ].to_list()
        sheet.empty_states = [names.get(s, s) for s in empty]
        if empty:
            notes.append(
                f"No {UNIT} from {len(empty)} of {state.result.reference_cells} states/UTs: "
                f"{', '.join(sheet.empty_states)}. Nothing can be said about model performance "
                "for people living there."
            )
    for d in sheet.dimensions:
        under = _census_order(d.result.table, d.dim).filter(pl.col("flag") == "under")
        if under.height:
            labels = gap_analysis.cell_labels(under, [d.dim])
            sheet.under_groups.append((d.phrase, labels))
            notes.append(
                f"{d.title}: {', '.join(labels)} under-represented against the population "
                f"(the upper bound of the ratio's 95% interval is below τ = {d.result.tau:g})."
            )
        if d.result.missing_rate:
            notes.append(
                f"{d.title} is unknown for {d.missing_text} of {UNIT} "
                f"({d.unknown_text}); they are left out of that dimension's "
                "shares, not assumed to be like the rest."
            )
        if d.result.outside_cells:
            outside = d.result.table.filter(pl.col("ref_share").is_null())
            hidden = (
                outside.select(pl.col(privacy.SUPPRESSED).any()).item()
                if (privacy.SUPPRESSED in outside.columns)
                else False
            )
            counted = (
                privacy.WITHHELD_LABEL if hidden else sheet.viewer.count(int(outside["n"].sum()))
            )
            notes.append(
                f"{d.title}: {', '.join(gap_analysis.cell_labels(outside, [d.dim]))} "
                f"({counted} {UNIT}) has no population figure, "
                "so it is counted but has no ratio."
            )
    if sheet.gaps is not None and sheet.gaps.total:
        notes.append(
            f"{sheet.gaps_small_text} of {format_indian(sheet.gaps.reference_cells)} groups of "
            f"state × sex × age band have fewer than {sheet.gaps.n_min} {UNIT} "
            f"({format_indian(sheet.gaps.empty_cells)} have none): too few to evaluate an AI "
            "model on that group."
        )
    for reference in references:
        for note in reference.notes:
            notes.append(f"Reference: {note}.")
    descriptions = sorted({r.description for r in references})
    if any("scaled" in d for d in descriptions):
        notes.append(
            "The 2026 population by age and by urban/rural is the 2011 census structure scaled "
            "to the 2026 state totals; it does not reflect ageing or urbanisation since 2011."
        )
    sheet.limitations = notes
    sheet.references = descriptions


# --------------------------------------------------------------------------- build and render


def build_datasheet(
    con: duckdb.DuckDBPyConnection,
    *,
    generated_at: dt.datetime | None = None,
    version: str | None = None,
    role: Role = LOCAL_ADMIN,
) -> Datasheet:
    """Read the index once and gather every number, table and chart of the datasheet.

    ``role``: whom it is for; every role but admin gets the suppressed edition (the datasheet
    is an export). ``generated_at`` (default: now, in IST) and ``version`` (default: this
    tool's) are given by tests that need a fixed document.
    """
    settings = load_settings()
    viewer = Viewer(role, settings.small_cell_k)
    summary = read_snapshot_summary(con)
    snapshot = Snapshot(
        id=snapshot_id(summary),
        summary=summary,
        generated_at=(generated_at or dt.datetime.now(IST)).astimezone(IST),
        tool_version=version or tool_version(),
    )
    totals = index_totals(con)
    dates = sql.query(con, "filter_options").row(0, named=True)
    studies = int(totals["studies"])
    sheet = Datasheet(
        snapshot=snapshot,
        settings={"tau": settings.tau, "n_min": settings.n_min, "k": settings.small_cell_k},
        totals={k: int(v) for k, v in totals.items()},
        first_date=dates["first_date"],
        last_ingest_at=summary_time(summary.get("last_ingest_at")),
        last_date=dates["last_date"],
        demo_share=int(totals["demo_studies"]) / studies if studies else None,
        viewer=viewer,
    )
    _headline(sheet, summary)
    references: list[gap_analysis.ResolvedReference] = []
    for dim in SCORED_DIMS:
        section, reference = _dimension(con, dim, viewer)
        sheet.dimensions.append(section)
        references.append(reference)
    sheet.scores = _scores_table(sheet.dimensions)
    if studies:
        state = next(d for d in sheet.dimensions if d.dim == "state")
        sheet.map_figure = _state_map(state, viewer)
        _gaps(con, sheet, viewer)
    sheet.missing = _missing(con, viewer)
    sheet.conditions = _conditions(con, sheet, viewer)
    _collection(con, sheet, viewer)
    _quality(con, sheet, viewer)
    _limitations(sheet, references)
    return sheet


SUMMARY_COUNTS = (
    "studies",
    "patients",
    "images",
    "demo_studies",
    "rows_read",
    "rows_quarantined",
    "quarantine_rows",
    "phi_flag_rows",
)
"""Counts of people, studies or rows in the snapshot summary (hidden when small)."""


def _headline(sheet: Datasheet, summary: Mapping[str, Any]) -> None:
    """The headline counts as the role may see them. They are independent totals of the
    whole index (no published total holds them), so a small one is simply "< k"."""
    viewer, t = sheet.viewer, sheet.totals
    counted = ("studies", "patients", "images", "institutions")
    sheet.shown_totals = {key: viewer.count(t.get(key)) for key in counted}
    complete, studies = t.get("complete_demographics", 0), t.get("studies", 0)
    rest = studies - complete
    small = not viewer.full and any(0 < v < viewer.k for v in (complete, rest))
    sheet.complete_text = (
        privacy.WITHHELD_LABEL
        if small
        else (format_percent(complete / studies, 0) if studies else "–")
    )
    demo = t.get("demo_studies", 0)
    if not viewer.full and any(0 < v < viewer.k for v in (demo, studies - demo)):
        sheet.demo_share = None  # the share would give the small count back
    sheet.identity = {
        key: viewer.count(value) if key in SUMMARY_COUNTS and not viewer.full else value
        for key, value in summary.items()
    }
    hidden = [key for key in counted if sheet.shown_totals[key] != format_indian(t.get(key))]
    if hidden:
        viewer.withheld.append(f"headline totals: {', '.join(hidden)}")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        indian=format_indian,
        percent=format_percent,
        ratio=format_ratio,
        interval=format_interval,
        day=_date,
    )
    return env


def render_html(sheet: Datasheet) -> str:
    """The datasheet as one self-contained HTML document."""
    template = _environment().get_template(TEMPLATE)
    summary = json.dumps(sheet.machine_summary(), default=str, ensure_ascii=False, indent=1)
    return template.render(
        sheet=sheet,
        s=sheet.snapshot,
        t=sheet.totals,
        flag_labels=gap_analysis.FLAG_LABELS,
        geo_attribution=GEO_ATTRIBUTION,
        citations=CITATIONS,
        gap_dims=" × ".join(DIM_PHRASES[d] for d in GAP_DIMS),
        unit=UNIT,
        # "</" cannot end the script element early: JSON allows "<\/".
        machine_summary=Markup(summary.replace("</", "<\\/")),
    )


PDF_SETUP = (
    "PDF output needs WeasyPrint (requirements.txt) and the Pango library "
    "(Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0)"
)


def pdf_unavailable() -> str | None:
    """Why a PDF cannot be made here, or None when WeasyPrint and Pango are there.

    Cheap (no import of WeasyPrint), so a page can ask before offering the PDF button.
    """
    if importlib.util.find_spec("weasyprint") is None:
        return f"{PDF_SETUP}: WeasyPrint is not installed"
    missing = [
        lib for lib in ("pango-1.0", "pangoft2-1.0") if ctypes.util.find_library(lib) is None
    ]
    if missing:
        return f"{PDF_SETUP}: {', '.join(missing)} not found"
    return None


def render_pdf(html: str) -> bytes:
    """The datasheet as an A4 PDF, laid out by WeasyPrint from the same HTML (print styles).

    The document has no external resource, and the fetcher allows none: nothing is fetched.
    """
    reason = pdf_unavailable()
    if reason:
        raise ReportError(reason)
    try:
        import weasyprint
    except (ImportError, OSError) as problem:  # Pango present but unusable
        raise ReportError(f"{PDF_SETUP}: {problem}") from None
    fetcher = weasyprint.URLFetcher(allowed_protocols=("data",))
    return weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf()


def write_report(
    db: Path,
    out: Path,
    pdf: Path | None = None,
    *,
    role: Role = LOCAL_ADMIN,
    before_write: Callable[[Datasheet], None] | None = None,
) -> Datasheet:
    """Generate the datasheet of the index at ``db`` for ``role`` (admin: in full; any other
    role: the suppressed edition) and write it to ``out`` (UTF-8 HTML), and to ``pdf`` as a
    PDF when given. ``before_write`` is called once the document is ready and before anything
    is written (the CLI logs the export there; if it raises, nothing is written).

    Raises :class:`dashboard.db.IndexMissingError` when there is no index at ``db`` and
    :class:`ReportError` when the PDF cannot be made; nothing is written then.
    """
    with connect_readonly(db) as con:
        sheet = build_datasheet(con, role=role)
    html = render_html(sheet)
    document = render_pdf(html) if pdf is not None else None
    if before_write is not None:
        before_write(sheet)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    if pdf is not None and document is not None:
        pdf.parent.mkdir(parents=True, exist_ok=True)
        pdf.write_bytes(document)
    return sheet
