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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import altair as alt
import duckdb
import jinja2
import polars as pl
import vl_convert
from markupsafe import Markup

from dashboard import charts, sql
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
    table: Table
    figure: Figure | None
    unknown_words: str


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

    @property
    def has_studies(self) -> bool:
        return bool(self.totals.get("studies"))

    def machine_summary(self) -> dict[str, Any]:
        """The headline numbers as JSON, embedded in the file for programs that read it."""
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
    con: duckdb.DuckDBPyConnection, dim: str
) -> tuple[DimensionSection, gap_analysis.ResolvedReference]:
    reference = gap_analysis.resolve_reference(REFERENCE, [dim])
    counts = coverage(con, [dim], UNIT, reference.filters)
    result = gap_analysis.representation(counts, reference)
    ordered = _census_order(result.table, dim)
    if dim == "state":
        ordered = gap_analysis.sort_gaps(ordered, "rr")
    shown = gap_analysis.gaps_display(dataclasses.replace(result, table=ordered), UNIT)
    shown = shown.drop("Shortfall") if dim != "state" else shown
    table = Table.of(shown, numeric=[c for c in shown.columns if c != shown.columns[0]])
    title = gap_analysis.DIM_TITLES[dim]
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
        figure = _figure(
            f"fig-{dim}",
            chart,
            f"Counted: {format_indian(result.total)} {UNIT} with a known "
            f"{DIM_PHRASES[dim]}. Reference: {result.reference}. Left out: "
            f"{format_indian(result.unknown)} {UNIT} with {DIM_UNKNOWN_WORDS[dim]}.",
        )
    section = DimensionSection(
        dim=dim,
        title=title,
        phrase=DIM_PHRASES[dim],
        result=result,
        table=table,
        figure=figure,
        unknown_words=DIM_UNKNOWN_WORDS[dim],
    )
    return section, reference


def _scores_table(sections: Sequence[DimensionSection]) -> Table:
    rows = []
    for s in sections:
        r = s.result
        flags = r.counts_by_flag()
        rows.append(
            (
                s.title,
                format_indian(r.total),
                format_indian(r.unknown),
                format_percent(r.missing_rate),
                MISSING if r.jsd is None else f"{r.jsd:.3f}",
                format_ratio(r.representativeness, 3),
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


def _state_map(result: gap_analysis.GapsResult) -> Figure:
    listed = result.table.filter(pl.col("ref_share").is_not_null())
    values = listed.select(
        iso_code="state",
        rr=pl.when(pl.col("n") > 0).then(pl.col("rr")).otherwise(None),
        n_label=pl.Series([format_indian(v) for v in listed["n"]], dtype=pl.String),
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
    return _figure(
        "fig-map",
        chart,
        f"Counted: {format_indian(result.total)} {UNIT} with a known state/UT of "
        f"residence. Reference: {result.reference}. Left out: {format_indian(result.unknown)} "
        f"{UNIT} whose state is unknown. Grey: no patients from that state/UT.",
    )


def _gaps(con: duckdb.DuckDBPyConnection, sheet: Datasheet) -> None:
    result = gap_analysis.gaps(con, list(GAP_DIMS), REFERENCE, unit=UNIT)
    sheet.gaps = result
    listed = result.table.filter(pl.col("ref_share").is_not_null())
    counted = dict(listed.group_by("flag").len().iter_rows())
    sheet.flag_counts = {flag: int(counted.get(flag, 0)) for flag in charts.FLAG_ORDER}
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
            f"Counted: {format_indian(result.total)} {UNIT} with a known state, sex "
            f"and age. Reference: {result.reference}. Left out: "
            f"{format_indian(result.unknown)} {UNIT} with any of the three unknown. "
            f"Groups with fewer than {result.n_min} {UNIT} are flagged insufficient whatever "
            "their ratio.",
        )


def _missing(con: duckdb.DuckDBPyConnection) -> Table:
    wide = sql.query(con, "dq_missing_by_institution", **NO_FILTERS.params())
    by_field = missing_by_field(missing_rates(wide))
    shown = by_field.select(
        pl.col("field").alias("Field"),
        pl.Series(
            "Studies with the field unknown", [format_indian(v) for v in by_field["missing"]]
        ),
        pl.Series("Studies", [format_indian(v) for v in by_field["studies"]]),
        pl.Series("Missing rate", [format_percent(v) for v in by_field["rate"]]),
    )
    return Table.of(shown, numeric=shown.columns[1:], bars=by_field["rate"].to_list())


def _conditions(con: duckdb.DuckDBPyConnection) -> tuple[Table, int]:
    counts = coverage(con, ["condition"], UNIT, NO_FILTERS)
    known = counts.filter(pl.col("condition").is_not_null()).sort(
        ["n", "condition"], descending=[True, False]
    )
    unknown = int(counts.filter(pl.col("condition").is_null())["n"].sum() or 0)
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
        pl.Series(UNIT.capitalize(), [format_indian(v) for v in top["n"]], dtype=pl.String),
        pl.Series(
            f"Share of {UNIT} with a diagnosis",
            [format_percent(v) for v in top["share"]],
            dtype=pl.String,
        ),
    )
    return Table.of(shown, numeric=shown.columns[1:]), unknown


def _collection(con: duckdb.DuckDBPyConnection, sheet: Datasheet) -> None:
    by_source = sql.query(con, "dq_studies_by_source", **NO_FILTERS.params())
    registry = sql.query(con, "partner_registry")
    studies = int(sheet.totals["studies"]) or 1
    sources = (
        by_source.group_by("source")
        .agg(pl.col("studies").sum(), pl.col("institution").n_unique().alias("institutions"))
        .sort(["studies", "source"], descending=[True, False])
    )
    sheet.sources = Table.of(
        sources.select(
            pl.Series("Source", [_label(SOURCE_LABELS, s) for s in sources["source"]]),
            pl.Series("Studies", [format_indian(v) for v in sources["studies"]]),
            pl.Series(
                "Share of studies", [format_percent(v / studies) for v in sources["studies"]]
            ),
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

    def counts(frame: pl.DataFrame, label: str, labels: list[str]) -> pl.DataFrame:
        return frame.select(
            pl.Series(label, labels, dtype=pl.String),
            pl.Series("Registered", [format_indian(v) for v in frame["registered"]]),
            pl.Series("Contributing", [format_indian(v) for v in frame["contributing"]]),
            pl.Series("Studies", [format_indian(v) for v in frame["studies"]]),
            pl.Series(UNIT.capitalize(), [format_indian(v) for v in frame["patients"]]),
        )

    numeric = ("Registered", "Contributing", "Studies", UNIT.capitalize())
    by_facility = grouped("facility_type")
    facility_labels = [_label(FACILITY_LABELS, v) for v in by_facility["facility_type"]]
    sheet.facilities = Table.of(
        counts(by_facility, "Facility type", facility_labels), numeric=numeric
    )
    by_state = grouped("state")
    names = load_reference().state_names
    sheet.site_states = Table.of(
        counts(
            by_state, "State/UT of the institution", [_label(names, v) for v in by_state["state"]]
        ),
        numeric=numeric,
    )
    if sheet.has_studies:
        chart = charts.category_bars(
            by_facility.with_columns(label=pl.Series(facility_labels, dtype=pl.String)),
            category_col="label",
            count_col="patients",
            category_title="Facility type",
            count_title=UNIT.capitalize(),
            title=f"{UNIT.capitalize()} by the type of facility that imaged them",
        )
        sheet.sites_figure = _figure(
            "fig-sites",
            chart,
            f"Counted: distinct {UNIT} per institution, summed by the facility type "
            "in the institution registry.",
        )
        monthly = sql.query(
            con, "monthly_accrual", dims=["source"], unit="studies", **NO_FILTERS.params()
        ).with_columns(source=pl.col("source").replace(SOURCE_LABELS))
        chart = charts.accrual_chart(
            monthly,
            count_col="n",
            count_title="Studies",
            category_col="source",
            category_title="Source",
            title="Studies per month of the study date",
        )
        sheet.accrual_figure = _figure(
            "fig-accrual",
            chart,
            "Counted: studies by the month of their study date, by how they reached the index.",
        )
    modality = coverage(con, ["modality"], "studies", NO_FILTERS).sort(
        ["n", "modality"], descending=[True, False]
    )
    sheet.modalities = Table.of(
        modality.select(
            pl.col("modality").alias("DICOM code"),
            pl.Series("Modality", [_label(MODALITY_LABELS, v) for v in modality["modality"]]),
            pl.Series("Studies", [format_indian(v) for v in modality["n"]]),
            pl.Series("Share of studies", [format_percent(v) for v in modality["share"]]),
        ),
        numeric=("Studies", "Share of studies"),
    )
    if modality.height:
        chart = charts.category_bars(
            modality.with_columns(
                label=pl.Series(
                    [f"{_label(MODALITY_LABELS, v)} ({v})" for v in modality["modality"]],
                    dtype=pl.String,
                )
            ),
            category_col="label",
            count_col="n",
            category_title="Modality",
            count_title="Studies",
            title="Studies by modality",
        )
        sheet.modality_figure = _figure(
            "fig-modality",
            chart,
            "Counted: imaging studies by their DICOM modality code.",
        )
    sheet.dicom_studies = int(
        by_source.filter(pl.col("source").is_in(["dicom", "dicomweb"]))["studies"].sum() or 0
    )


def _quality(con: duckdb.DuckDBPyConnection, sheet: Datasheet) -> None:
    files = sql.query(con, "dq_ingest_files")
    sheet.ingest = {
        "files": files.height,
        "rows_read": int(files["rows_read"].sum() or 0),
        "accepted": int(files["accepted"].sum() or 0),
        "quarantined": int(files["quarantined"].sum() or 0),
        "still_open": int(files["still_open"].sum() or 0),
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
            pl.Series("Rows to fix", [format_indian(v) for v in by_field["rows_to_fix"]]),
            pl.Series("Distinct problems", [format_indian(v) for v in by_field["problems"]]),
            pl.Series("Institutions", [format_indian(v) for v in by_field["institutions"]]),
        ),
        numeric=("Rows to fix", "Distinct problems", "Institutions"),
    )
    flags = sql.query(con, "phi_flags", f_institutions=None)
    sheet.phi = phi_totals(flags)
    if flags.height:
        wide = phi_by_institution(flags)
        tags = [c for c in wide.columns if c in TAG_LABELS.values()]
        sheet.phi_table = Table.of(
            wide.select(
                pl.col("institution_id").alias("Institution"),
                pl.col("institution_name").alias("Name"),
                pl.Series("Files flagged", [format_indian(v) for v in wide["flagged_files"]]),
                pl.Series("Studies flagged", [format_indian(v) for v in wide["flagged_studies"]]),
                *(pl.Series(t, [format_indian(v) for v in wide[t]]) for t in tags),
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
                f"{d.title} is unknown for {format_percent(d.result.missing_rate)} of {UNIT} "
                f"({format_indian(d.result.unknown)}); they are left out of that dimension's "
                "shares, not assumed to be like the rest."
            )
        if d.result.outside_cells:
            outside = d.result.table.filter(pl.col("ref_share").is_null())
            notes.append(
                f"{d.title}: {', '.join(gap_analysis.cell_labels(outside, [d.dim]))} "
                f"({format_indian(int(outside['n'].sum()))} {UNIT}) has no population figure, "
                "so it is counted but has no ratio."
            )
    if sheet.gaps is not None and sheet.gaps.total:
        small = sheet.gaps.small_cells
        notes.append(
            f"{format_indian(small)} of {format_indian(sheet.gaps.reference_cells)} groups of "
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
) -> Datasheet:
    """Read the index once and gather every number, table and chart of the datasheet.

    ``generated_at`` (default: now, in IST) and ``version`` (default: this tool's) are given
    by tests that need a fixed document.
    """
    settings = load_settings()
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
    )
    references: list[gap_analysis.ResolvedReference] = []
    for dim in SCORED_DIMS:
        section, reference = _dimension(con, dim)
        sheet.dimensions.append(section)
        references.append(reference)
    sheet.scores = _scores_table(sheet.dimensions)
    if studies:
        state = next(d for d in sheet.dimensions if d.dim == "state")
        sheet.map_figure = _state_map(state.result)
        _gaps(con, sheet)
    sheet.missing = _missing(con)
    sheet.conditions, sheet.conditions_unknown = _conditions(con)
    _collection(con, sheet)
    _quality(con, sheet)
    _limitations(sheet, references)
    return sheet


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


def write_report(db: Path, out: Path, pdf: Path | None = None) -> Datasheet:
    """Generate the datasheet of the index at ``db`` and write it to ``out`` (UTF-8 HTML),
    and to ``pdf`` as a PDF when given.

    Raises :class:`dashboard.db.IndexMissingError` when there is no index at ``db`` and
    :class:`ReportError` when the PDF cannot be made; nothing is written then.
    """
    with connect_readonly(db) as con:
        sheet = build_datasheet(con)
    html = render_html(sheet)
    document = render_pdf(html) if pdf is not None else None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    if pdf is not None and document is not None:
        pdf.parent.mkdir(parents=True, exist_ok=True)
        pdf.write_bytes(document)
    return sheet
