"""The diversity datasheet: known answers on the demo index, self-contained, versioned by snapshot.

The numbers are checked against the CLI (`score`, `gaps`) and against plain SQL on the index
file, never against the report's own code.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from scipy.spatial.distance import jensenshannon
from streamlit.delta_generator import DeltaGenerator
from typer.testing import CliRunner

from dashboard import audit, report
from dashboard.cli import app
from dashboard.db import connect_readonly
from dashboard.formatting import format_indian, format_percent, format_ratio
from dashboard.gaps import DIM_TITLES
from dashboard.ingest.manifest import ingest_manifest
from dashboard.ingest.writer import index_writer
from dashboard.reference import GEO_ATTRIBUTION, load_reference
from dashboard.roles import Role
from tests.apptest import run_page
from tests.test_dicom_ingest import NEEDLES, phi_manifest, plant_phi_tree

runner = CliRunner()
GENERATED = dt.datetime(2026, 12, 1, 10, 30, tzinfo=report.IST)
TODO = "To be completed by the programme"


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"crashed: {result.exception!r}\n{result.output}")
    return result.exit_code, result.stdout, result.stderr


def squeeze(text: str) -> str:
    """Text without any whitespace: the console wraps lines wherever it likes."""
    return re.sub(r"\s+", "", text)


def sql_one(db: Path, query: str) -> Any:
    with connect_readonly(db) as con:
        return con.sql(query).fetchall()[0][0]


def datasheet(db: Path, when: dt.datetime = GENERATED) -> tuple[report.Datasheet, str]:
    with connect_readonly(db) as con:
        sheet = report.build_datasheet(con, generated_at=when, version="9.9.9")
    return sheet, report.render_html(sheet)


def embedded_summary(html: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" id="datasheet-data">(.*?)</script>', html, re.S
    )
    assert match, "the machine-readable summary is missing"
    return json.loads(match.group(1))


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of the document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def section(html: str, anchor: str) -> str:
    """The HTML from the heading with id ``anchor`` to the next h2."""
    start = html.index(f'id="{anchor}"')
    end = html.find("<h2", start + 1)
    return html[start : end if end > 0 else None]


@pytest.fixture(scope="module")
def demo_sheet(demo_db: Path) -> tuple[report.Datasheet, str]:
    return datasheet(demo_db)


# --------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("dim", ["state", "sex", "age_band", "area_type"])
def test_representativeness_equals_the_score_command(
    demo_db: Path, demo_sheet: tuple[report.Datasheet, str], dim: str
) -> None:
    _, html = demo_sheet
    code, out, err = invoke("score", "--by", dim, "--db", demo_db)
    assert code == 0, err
    score = json.loads(out)
    embedded = embedded_summary(html)["representativeness"][dim]
    assert embedded["representativeness"] == pytest.approx(score["representativeness"], abs=1e-12)
    assert embedded["jsd"] == pytest.approx(score["jsd"], abs=1e-12)
    assert (embedded["n"], embedded["unknown"]) == (score["n"], score["unknown"])
    # and the printed table says the same, Indian-grouped
    row = next(r for r in demo_sheet[0].scores.rows if r[0] == DIM_TITLES[dim])
    assert row[1] == format_indian(score["n"])
    assert row[2] == format_indian(score["unknown"])
    assert row[5] == format_ratio(score["representativeness"], 3)
    assert f"<strong>{format_ratio(score['representativeness'], 3)}</strong>" in html


def test_sex_representativeness_by_hand(demo_db: Path, demo_sheet) -> None:
    """1 − JSD (base 2) of distinct patients by sex against the 2026 projection, from SQL."""
    with connect_readonly(demo_db) as con:
        by_sex = dict(
            con.sql(
                "SELECT sex, count(DISTINCT (institution_id, patient_id)) FROM study "
                "WHERE sex <> 'U' GROUP BY sex"
            ).fetchall()
        )
    states = load_reference().states
    q = [states["proj2026_female"].sum(), states["proj2026_male"].sum(), 0]
    p = [by_sex.get("F", 0), by_sex.get("M", 0), by_sex.get("O", 0)]
    sex = next(d for d in demo_sheet[0].dimensions if d.dim == "sex")
    assert sex.result.representativeness == pytest.approx(1 - jensenshannon(p, q, base=2))
    assert sex.result.total == sum(p)


def test_totals_equal_plain_sql(demo_db: Path, demo_sheet) -> None:
    sheet, html = demo_sheet
    studies = sql_one(demo_db, "SELECT count(*) FROM study")
    patients = sql_one(demo_db, "SELECT count(DISTINCT (institution_id, patient_id)) FROM study")
    images = sql_one(demo_db, "SELECT sum(n_images) FROM study")
    assert 15_000 < studies <= 20_000
    assert (sheet.totals["studies"], sheet.totals["patients"]) == (studies, patients)
    assert f'id="total-studies">{format_indian(studies)}<' in html
    assert f'id="total-patients">{format_indian(patients)}<' in html
    assert format_indian(images) in html and "," in format_indian(images)[:-4]  # lakh grouping
    summary = embedded_summary(html)
    assert summary["totals"]["studies"] == studies
    first, last = sql_one(demo_db, "SELECT [min(study_date), max(study_date)] FROM study")
    assert f"{first:%d %b %Y} to {last:%d %b %Y}" in html


def test_gaps_equal_the_gaps_command(demo_db: Path, demo_sheet) -> None:
    sheet, html = demo_sheet
    code, out, err = invoke(
        "gaps", "--by", "state,sex,age_band", "--format", "json", "--db", demo_db
    )
    assert code == 0, err
    rows = [r for r in json.loads(out) if (r["shortfall"] or 0) > 0][: report.TOP_GAPS_TABLE]
    top = embedded_summary(html)["gaps"]["top"]
    assert len(top) == len(rows) == report.TOP_GAPS_TABLE
    for mine, theirs in zip(top, rows, strict=True):
        for key in ("state", "sex", "age_band", "n", "flag", "shortfall"):
            assert mine[key] == theirs[key], key
        for key in ("rr", "rr_low", "rr_high"):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-12)
    # the table prints each with its interval and shortfall
    first = rows[0]
    cell = sheet.gaps_table.rows[0]
    names = load_reference().state_names
    assert cell[0].startswith(names[first["state"]])
    assert cell[3] == f"{format_ratio(first['rr'])} ({format_ratio(first['rr_low'])}–" + (
        f"{format_ratio(first['rr_high'])})"
    )
    assert cell[5] == format_indian(first["shortfall"])
    # flags over the reference cells add up to the cells of the population
    assert sum(sheet.flag_counts.values()) == sheet.gaps.reference_cells == 36 * 2 * 17


def test_missing_values_equal_plain_sql(demo_db: Path, demo_sheet) -> None:
    sheet, _ = demo_sheet
    studies = sql_one(demo_db, "SELECT count(*) FROM study")
    unknown = {
        "Sex": sql_one(demo_db, "SELECT count(*) FROM study WHERE sex = 'U'"),
        "Urban/rural": sql_one(demo_db, "SELECT count(*) FROM study WHERE area_type = 'unknown'"),
        "Diagnosis": sql_one(demo_db, "SELECT count(*) FROM study WHERE conditions IS NULL"),
    }
    rows = {r[0]: r for r in sheet.missing.rows}
    for field, n in unknown.items():
        assert rows[field][1:] == (
            format_indian(n),
            format_indian(studies),
            format_percent(n / studies),
        )


def test_collection_sources_and_sites(demo_db: Path, demo_sheet) -> None:
    sheet, _ = demo_sheet
    registered = sql_one(demo_db, "SELECT count(*) FROM institution")
    colleges = sql_one(
        demo_db,
        "SELECT count(*) FROM study JOIN institution USING (institution_id) "
        "WHERE institution.facility_type = 'medical_college'",
    )
    assert sheet.sources.rows == (
        (
            "Synthetic demo generator",
            format_indian(sheet.totals["studies"]),
            "100.0%",
            format_indian(registered),
        ),
    )
    facility = {r[0]: r for r in sheet.facilities.rows}
    assert facility["Medical college"][3] == format_indian(colleges)
    assert sum(int(r[1].replace(",", "")) for r in sheet.facilities.rows) == registered
    ct = sql_one(demo_db, "SELECT count(*) FROM study WHERE modality = 'CT'")
    assert ("CT", "Computed tomography", format_indian(ct)) == next(
        r[:3] for r in sheet.modalities.rows if r[0] == "CT"
    )


# --------------------------------------------------------------------------- the document


def test_self_contained(demo_sheet) -> None:
    _, html = demo_sheet
    tags = parse(html)
    remote = re.compile(r"^\s*(https?:)?//", re.I)
    for tag, attrs in tags.tags:
        for name in ("src", "href", "xlink:href", "data", "poster", "srcset", "action"):
            value = attrs.get(name)
            assert not (value and remote.match(value)), f"<{tag} {name}={value!r}>"
        assert tag not in ("link", "iframe", "img", "object", "embed", "base")
        if tag == "script":
            assert "src" not in attrs and attrs.get("type") == "application/json"
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert styles and not any("url(" in s or "@import" in s for s in styles)
    # every in-page link has its target, and no element id appears twice (charts included)
    ids = Counter(attrs["id"] for _, attrs in tags.tags if attrs.get("id"))
    assert [i for i, n in ids.items() if n > 1] == []
    anchors = {attrs["href"][1:] for tag, attrs in tags.tags if tag == "a"}
    assert anchors and anchors <= set(ids)
    # URLs appear only as text: the citations and the map attribution
    assert "https://github.com/datta07/INDIAN-SHAPEFILES" in "".join(tags.text)


def test_charts_are_inline_svg(demo_sheet) -> None:
    _, html = demo_sheet
    figures = re.findall(r'<figure id="(fig-[\w-]+)">\s*<div class="chart"><svg ', html)
    assert set(figures) >= {
        "fig-map",
        "fig-sex",
        "fig-age_band",
        "fig-area_type",
        "fig-gaps",
        "fig-sites",
        "fig-accrual",
        "fig-modality",
    }
    # each chart draws marks: bars (paths) and text, not an empty frame
    for fig in ("fig-sex", "fig-gaps", "fig-map"):
        body = html[html.index(f'<figure id="{fig}"') :]
        body = body[: body.index("</figure>")]
        assert body.count("<path") > 5 and "<text" in body, fig
    assert len(html.encode()) < 3_000_000


def test_synthetic_notice_and_placeholders(demo_sheet) -> None:
    sheet, html = demo_sheet
    assert 'id="synthetic-notice"' in html and "Synthetic demo data (100% of studies)" in html
    motivation = section(html, "motivation")
    assert motivation.count(TODO) == 2
    assert re.sub(r"<div class=\"todo\">.*?</div>", "", motivation, flags=re.S).count("<p") == 0
    for anchor in ("uses", "distribution", "maintenance"):
        assert TODO in section(html, anchor), anchor
    assert html.count(TODO) >= 9
    assert GEO_ATTRIBUTION in html
    assert "STANDING Together consensus recommendations" in html
    assert "Datasheets for Datasets. Communications of the ACM" in html
    assert "MoHFW projection for 1 March 2026" in html
    # the snapshot and the tool are named; generation time is IST
    assert f'<meta name="snapshot-id" content="{sheet.snapshot.id}">' in html
    assert "01 Dec 2026, 10:30 IST" in html and "9.9.9" in html


def test_no_submitted_values_in_the_datasheet(demo_db: Path, demo_sheet) -> None:
    """Quarantine is summarised by field: a reason quotes the value submitted, which stays out."""
    _, html = demo_sheet
    with connect_readonly(demo_db) as con:
        values = [v for (v,) in con.sql("SELECT DISTINCT value FROM quarantine").fetchall() if v]
        reasons = [r for (r,) in con.sql("SELECT DISTINCT reason FROM quarantine").fetchall()]
    assert values and reasons
    assert not [r for r in reasons if r in html]
    assert "Atlantis" not in html


# --------------------------------------------------------------------------- snapshot identity


def test_snapshot_id_is_stable_and_follows_the_content(
    demo_db: Path, demo_sheet, tmp_path: Path, write_file
) -> None:
    sheet, _ = demo_sheet
    later, _ = datasheet(demo_db, GENERATED + dt.timedelta(days=3))
    assert later.snapshot.id == sheet.snapshot.id  # regenerated later: same snapshot
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(demo_db, copy)
    copied, _ = datasheet(copy)
    assert copied.snapshot.id == sheet.snapshot.id  # another file, same content
    assert re.fullmatch(r"[0-9a-f]{12}", sheet.snapshot.id)
    institution = sql_one(copy, "SELECT min(institution_id) FROM institution")
    manifest = write_file(
        "more.csv",
        "study_uid,patient_id,institution_id,study_date,modality,sex,age,state\n"
        f"NEW-1,NEWP-1,{institution},2026-06-01,CT,F,64,Bihar\n",
    )
    with index_writer(copy) as con:
        result = ingest_manifest(con, manifest)
    assert result.inserted == 1
    after, html = datasheet(copy)
    assert after.snapshot.id != sheet.snapshot.id
    assert after.totals["studies"] == sheet.totals["studies"] + 1
    assert after.snapshot.id in html and sheet.snapshot.id not in html


# --------------------------------------------------------------------------- other indexes


def test_an_index_without_studies(registered_db: Path) -> None:
    sheet, html = datasheet(registered_db)
    assert not sheet.has_studies
    assert "The index has no studies yet" in html
    assert 'id="synthetic-notice"' not in html
    assert "<svg" not in html


def test_dicom_privacy_audit_is_reported_without_values(
    tmp_path: Path, registered_db: Path
) -> None:
    expected = plant_phi_tree(tmp_path / "tree")
    manifest = phi_manifest(tmp_path, expected)
    code, _, err = invoke("ingest", "dicom", tmp_path / "tree", "--db", registered_db,
                          "--manifest", manifest, "--workers", "1")  # fmt: skip
    assert code == 0, err
    sheet, html = datasheet(registered_db)
    files = sql_one(
        registered_db,
        "SELECT sum(f) FROM (SELECT DISTINCT institution_id, study_uid, study_flagged_files AS f "
        "FROM phi_flag)",
    )
    assert files == 5
    assert sheet.phi["flagged_files"] == files
    deid = section(html, "deidentification")
    assert f"{files} files of" in deid and "carried identifying values" in deid
    assert "Patient name" in deid and "Telephone" in deid  # keywords, readable
    found = [n for n in NEEDLES if n in html]
    assert not found, f"planted identifying values {found} in the datasheet"
    assert "DICOM headers (files)" in section(html, "collection")
    assert 'id="synthetic-notice"' not in html


# --------------------------------------------------------------------------- CLI and page


def test_cli_writes_the_file(demo_db: Path, demo_sheet, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "datasheet.html"
    code, stdout, err = invoke("report", "--db", demo_db, "--out", out)
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert demo_sheet[0].snapshot.id in stdout and str(out) in stdout
    assert embedded_summary(html)["snapshot_id"] == demo_sheet[0].snapshot.id


def test_cli_without_an_index_fails_clearly(tmp_path: Path) -> None:
    out = tmp_path / "datasheet.html"
    code, stdout, err = invoke("report", "--db", tmp_path / "missing.duckdb", "--out", out)
    assert code == 1
    flat = squeeze(err)  # the console wraps long paths
    assert "noindexat" in flat and "missing.duckdb" in flat
    assert "Traceback" not in err + stdout
    assert not out.exists()


def test_cli_writes_a_pdf_too(demo_db: Path, tmp_path: Path) -> None:
    html, pdf = tmp_path / "datasheet.html", tmp_path / "datasheet.pdf"
    code, stdout, err = invoke("report", "--db", demo_db, "--out", html, "--pdf", pdf)
    assert code == 0, err
    document = pdf.read_bytes()
    assert document.startswith(b"%PDF-") and document.rstrip().endswith(b"%%EOF")
    assert len(document) > 100_000  # the charts are in it, as vectors
    assert str(pdf) in stdout and html.exists()


def test_cli_pdf_without_weasyprint_fails_clearly(
    demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "pdf_unavailable", lambda: f"{report.PDF_SETUP}: not here")
    html, pdf = tmp_path / "datasheet.html", tmp_path / "datasheet.pdf"
    code, _, err = invoke("report", "--db", demo_db, "--out", html, "--pdf", pdf)
    assert code == 1
    assert "apt-getinstalllibpango-1.0-0" in squeeze(err)
    assert not html.exists() and not pdf.exists()


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What each download button would hand the browser, by file name."""
    captured: dict[str, Any] = {}
    original = DeltaGenerator.download_button

    def capture(
        self: DeltaGenerator, label: str, data: Any, file_name: str | None = None, **kwargs: Any
    ) -> Any:
        captured[str(file_name)] = data
        return original(self, label, data, file_name=file_name, **kwargs)

    # On the class: the buttons sit in a container, not on the page's main area.
    monkeypatch.setattr(DeltaGenerator, "download_button", capture)
    return captured


def test_overview_offers_the_datasheet(
    demo_db: Path, demo_sheet, monkeypatch: pytest.MonkeyPatch, downloads: dict[str, Any]
) -> None:
    at = run_page(demo_db, monkeypatch, "overview")
    assert not at.exception
    buttons = [b for b in at.get("download_button") if "datasheet" in b.proto.label]
    assert len(buttons) == 1
    ident = demo_sheet[0].snapshot.id
    name = f"diversity-datasheet-{ident}.html"
    assert name in downloads
    assert any(ident in c.value for c in at.caption)
    html = downloads[name]().decode("utf-8")  # generated on click
    assert embedded_summary(html)["snapshot_id"] == ident
    assert embedded_summary(html)["totals"] == demo_sheet[0].totals
    assert [b.proto.label for b in at.get("download_button") if "pdf" in b.proto.id] == ["PDF"]
    assert f"diversity-datasheet-{ident}.pdf" in downloads


def test_overview_without_pdf_support_offers_html_only(
    demo_db: Path, monkeypatch: pytest.MonkeyPatch, downloads: dict[str, Any]
) -> None:
    monkeypatch.setattr(report, "pdf_unavailable", lambda: "no Pango here")
    at = run_page(demo_db, monkeypatch, "overview")
    assert not at.exception
    assert [b.proto.label for b in at.get("download_button") if "datasheet" in b.proto.id] == [
        "Download the diversity datasheet (HTML)"
    ]
    assert not [name for name in downloads if name.endswith(".pdf")]


def test_overview_datasheet_ignores_the_filters(
    demo_db: Path, demo_sheet, monkeypatch: pytest.MonkeyPatch, downloads: dict[str, Any]
) -> None:
    """A shared link filtered to one state still offers the whole release's datasheet."""
    at = run_page(demo_db, monkeypatch, "overview", state="Karnataka", unit="studies")
    assert not at.exception
    assert at.multiselect(key="state").value == ["IN-KA"]
    assert f"diversity-datasheet-{demo_sheet[0].snapshot.id}.html" in downloads


def test_overview_of_an_empty_index_offers_no_datasheet(
    registered_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = run_page(registered_db, monkeypatch, "overview")
    assert not at.exception
    assert not [b for b in at.get("download_button") if "datasheet" in b.proto.label]


# --------------------------------------------------------------------------- suppressed editions

K = 10
PARTNER = "DEMO-CG-01"  # a demo partner (tests/test_pages_privacy.py)
# Table columns that count people, studies, rows or files (the others count institutions or
# problem kinds, or are reference shares × N, ratios and dates).
COUNT_COLUMNS = (
    "Patients",
    "Studies",
    "Studies with the field unknown",
    "Rows to fix",
    "Files flagged",
    "Studies flagged",
    "Patients with a known value (N)",
    "Unknown, left out",
)


class Cells(HTMLParser):
    """Every table cell with its column title, and every SVG text that is not an axis tick
    or a legend label (scales, not counts)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str]] = []
        self.heads: list[str] = []
        self.column = 0
        self.cell: list[str] | None = None
        self.cells: list[tuple[str, str, str]] = []  # (column title, first cell of row, text)
        self.row: list[str] = []
        self.svg_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append((tag, dict(attrs).get("class") or ""))
        if tag in ("table", "thead"):
            self.heads = []
        elif tag == "tr":
            self.column, self.row = 0, []
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            text = "".join(self.cell).strip()
            if any(t == "thead" for t, _ in self.stack):
                self.heads.append(text)
            else:
                title = self.heads[self.column] if self.column < len(self.heads) else ""
                self.row.append(text)
                self.cells.append((title, self.row[0], text))
                self.column += 1
            self.cell = None
        while self.stack and self.stack[-1][0] != tag:
            self.stack.pop()
        if self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        if self.stack and self.stack[-1][0] == "text":
            classes = " ".join(c for _, c in self.stack)
            if "role-axis" not in classes and "role-legend" not in classes:
                self.svg_text.append(data.strip())


def cells_of(html: str) -> Cells:
    cells = Cells()
    cells.feed(html)
    return cells


def small(text: str) -> bool:
    """A count from 1 to k-1 written as a number."""
    digits = text.replace(",", "")
    return digits.isdigit() and 0 < int(digits) < K


@pytest.fixture(scope="module")
def public_sheet(demo_db: Path) -> tuple[report.Datasheet, str]:
    with connect_readonly(demo_db) as con:
        sheet = report.build_datasheet(
            con, generated_at=GENERATED, version="9.9.9", role=Role.parse("public")
        )
    return sheet, report.render_html(sheet)


def test_public_datasheet_shows_no_count_below_k(demo_sheet, public_sheet) -> None:
    admin = cells_of(demo_sheet[1])
    public = cells_of(public_sheet[1])
    # The premise: the full datasheet has small counts in those columns.
    assert [c for c in admin.cells if c[0] in COUNT_COLUMNS and small(c[2])]
    leaks = [c for c in public.cells if c[0] in COUNT_COLUMNS and small(c[2])]
    assert leaks == []
    assert [t for t in public.svg_text if small(t)] == []
    assert sum(c[2] == f"< {K}" for c in public.cells) >= 5
    summary = embedded_summary(public_sheet[1])
    assert summary["role"] == "public" and summary["suppressed"] is True
    numbers = [summary["totals"], *summary["representativeness"].values()]
    assert not [v for d in numbers for v in d.values() if isinstance(v, int) and 0 < v < K]


def test_public_datasheet_states_known_answers(demo_db: Path, demo_sheet, public_sheet) -> None:
    with connect_readonly(demo_db) as con:
        truth = dict(
            con.sql(
                "SELECT state, count(DISTINCT (institution_id, patient_id)) FROM study GROUP BY 1"
            ).fetchall()
        )
    names = load_reference().state_names
    assert 0 < truth["IN-NL"] < K and truth["IN-KA"] > 1_000  # the premise
    rows = {
        c[1]: c[2]
        for c in cells_of(section(public_sheet[1], "dim-state")).cells
        if c[0] == "Patients"
    }
    small_states = [s for s, n in truth.items() if s and 0 < n < K]
    assert len(small_states) >= 2
    for state in small_states:
        assert rows[names[state]] == f"< {K}", state
    assert rows[names["IN-KA"]] == format_indian(truth["IN-KA"])
    # What derives from a hidden cell is withheld: share, RR with its interval, flag, shortfall.
    nagaland = next(c for c in cells_of(section(public_sheet[1], "dim-state")).cells
                    if c[1] == "Nagaland" and c[0] == "RR (95% CI)")  # fmt: skip
    assert nagaland[2] == "–"
    # The full edition shows it exactly (and is the admin's, unchanged).
    admin_rows = {
        c[1]: c[2]
        for c in cells_of(section(demo_sheet[1], "dim-state")).cells
        if c[0] == "Patients"
    }
    assert admin_rows["Nagaland"] == format_indian(truth["IN-NL"])
    assert 'id="made-for"' not in demo_sheet[1]


def test_public_datasheet_rounds_divergences_and_says_what_is_withheld(
    demo_sheet, public_sheet
) -> None:
    admin, public = demo_sheet[0], public_sheet[0]
    for full, shown in zip(admin.dimensions, public.dimensions, strict=True):
        if shown.pattern is not None and shown.pattern.totals_withheld:
            assert shown.jsd_text == "withheld"
        else:
            assert shown.jsd_text == f"{round(full.result.jsd, 2):.2f}"
    html = public_sheet[1]
    made_for = re.search(r'id="made-for">([^<]*)<', html)
    withheld = re.search(r'id="withheld">([^<]*)<', html)
    assert made_for and "public" in made_for.group(1) and "&lt; 10" in made_for.group(1)
    assert withheld and "state/UT:" in withheld.group(1)
    # The three-way gaps cannot protect their many small cells: N is withheld, so no shares,
    # ratios or shortfalls anywhere in that table, and no "largest shortfall" of a hidden cell.
    gaps = public.gaps
    assert gaps is not None and public.gaps_pattern is not None
    if public.gaps_pattern.totals_withheld:
        assert gaps.table["shortfall"].null_count() == gaps.table.height
        assert public.largest_gaps == []
        assert public.gaps_total_text == "withheld"
        assert 'id="gaps-withheld"' in html and "admin edition" in html


@pytest.mark.parametrize("who", ["programme", f"partner:{PARTNER}"])
def test_every_export_outside_admin_is_suppressed(demo_db: Path, public_sheet, who: str) -> None:
    """A programme or partner datasheet is an export: suppressed like the public one (the
    datasheet has no institution's own rows on the demo: no DICOM audit)."""
    with connect_readonly(demo_db) as con:
        sheet = report.build_datasheet(
            con, generated_at=GENERATED, version="9.9.9", role=Role.parse(who)
        )
    html = report.render_html(sheet)
    assert [c for c in cells_of(html).cells if c[0] in COUNT_COLUMNS and small(c[2])] == []
    assert f"({who})" in re.search(r'id="made-for">([^<]*)<', html).group(1)


def test_partner_sees_its_own_institution_in_full(tmp_path: Path, registered_db: Path) -> None:
    """The DICOM audit lists flagged files per institution: the partner's own row in full,
    the other institution's small counts hidden."""
    expected = plant_phi_tree(tmp_path / "tree")
    manifest = phi_manifest(tmp_path, expected)
    code, _, err = invoke("ingest", "dicom", tmp_path / "tree", "--db", registered_db,
                          "--manifest", manifest, "--workers", "1")  # fmt: skip
    assert code == 0, err
    with connect_readonly(registered_db) as con:
        files = dict(
            con.sql(
                "SELECT institution_id, sum(f) FROM (SELECT DISTINCT institution_id, study_uid, "
                "study_flagged_files AS f FROM phi_flag) GROUP BY 1"
            ).fetchall()
        )
    assert set(files) == {"TEST-KA-01", "TEST-OD-01"} and all(0 < v < K for v in files.values())
    with connect_readonly(registered_db) as con:
        sheet = report.build_datasheet(con, role=Role.parse("partner:TEST-KA-01"))
    rows = {
        c[1]: c[2]
        for c in cells_of(section(report.render_html(sheet), "deidentification")).cells
        if c[0] == "Files flagged"
    }
    assert rows["TEST-KA-01"] == str(files["TEST-KA-01"])
    assert rows["TEST-OD-01"] in (f"< {K}", "withheld")
    # The public edition of this tiny index: every count is small, none is printed.
    with connect_readonly(registered_db) as con:
        studies = con.sql("SELECT count(*) FROM study").fetchall()[0][0]
        public = report.build_datasheet(con, role=Role.parse("public"))
    html = report.render_html(public)
    assert 0 < studies < K
    assert re.search(r'id="total-studies">&lt; 10<', html)
    tiny = cells_of(html)
    assert [c for c in tiny.cells if c[0] in COUNT_COLUMNS and small(c[2])] == []
    assert [t for t in tiny.svg_text if small(t)] == []


def test_cli_report_for_a_role_is_suppressed_and_audited(
    demo_db: Path, public_sheet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(audit.AUDIT_ENV, str(tmp_path / "audit.duckdb"))
    out = tmp_path / "public.html"
    code, stdout, err = invoke("report", "--db", demo_db, "--out", out, "--role", "public")
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    assert "&lt; 10" in section(html, "dim-state")
    assert embedded_summary(html)["role"] == "public"
    assert "suppressededitionforpublic" in squeeze(stdout)
    admin_out = tmp_path / "admin.html"
    code, _, err = invoke("report", "--db", demo_db, "--out", admin_out)
    assert code == 0, err
    entries = audit.entries(demo_db)
    assert entries.select("role", "action", "channel").rows() == [
        ("public", "export", "cli"),
        ("admin", "export", "cli"),
    ]
    assert all(w.startswith("report --out") for w in entries["what"])
    detail = json.loads(entries["detail"][0])
    assert detail["snapshot"] == public_sheet[0].snapshot.id and detail["suppressed"] is True
    # An unknown partner is refused, and nothing is written or logged.
    refused = tmp_path / "nobody.html"
    code, _, err = invoke("report", "--db", demo_db, "--out", refused, "--role", "partner:NOPE")
    assert code == 1 and "noregisteredinstitution" in squeeze(err)
    assert not refused.exists() and audit.entries(demo_db).height == 2


def test_cli_report_writes_nothing_when_the_audit_log_fails(
    demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(audit.AUDIT_ENV, str(blocker / "audit.duckdb"))  # under a file: fails
    out = tmp_path / "public.html"
    code, _, err = invoke("report", "--db", demo_db, "--out", out, "--role", "public")
    assert code == 1 and "nothingwasexported" in squeeze(err)
    assert not out.exists()


def test_public_overview_downloads_the_suppressed_datasheet(
    demo_db: Path,
    public_sheet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    downloads: dict[str, Any],
) -> None:
    monkeypatch.setenv(audit.AUDIT_ENV, str(tmp_path / "audit.duckdb"))
    at = run_page(
        demo_db,
        monkeypatch,
        "overview",
        user={"email": "citizen@public.example"},
        users_csv="email,role,institution\ncitizen@public.example,public,\n",
    )
    assert not at.exception
    ident = public_sheet[0].snapshot.id
    name = f"diversity-datasheet-{ident}.html"
    assert name in downloads
    assert audit.entries(demo_db).filter(pl.col("action") == "export").height == 0  # not yet
    html = downloads[name]().decode("utf-8")  # the click
    assert embedded_summary(html)["role"] == "public"
    assert [c for c in cells_of(html).cells if c[0] in COUNT_COLUMNS and small(c[2])] == []
    exports = audit.entries(demo_db).filter(pl.col("action") == "export")
    assert exports.select("actor", "role", "what", "channel").rows() == [
        ("citizen@public.example", "public", "datasheet html", "app")
    ]
