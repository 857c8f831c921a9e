"""Small-cell suppression on every page, per role (METRICS.md "Privacy", issue 6 item 2).

The app runs as a signed-in user of a users file (tests/apptest.py). Every rendered number a
viewer could read is scanned: metric cards, table cells, chart data (the Arrow rows Streamlit
sends and the strings in the Vega-Lite spec, where maps carry their tooltips) and the bytes of
every download. A count 0 < n < k must not appear for the public, for a partner outside its own
institution, or in the programme's downloads. Expected counts come from plain SQL on the index.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import streamlit as st

from dashboard import audit
from dashboard.db import connect_readonly
from dashboard.formatting import format_indian
from dashboard.views.pages import PAGES as APP_PAGES
from tests.apptest import run_page

K = 10
PARTNER = "DEMO-CG-01"  # the smallest demo partner: 2 patients from Madhya Pradesh
OTHER = "DEMO-MP-01"  # another partner: 1 patient from West Bengal
USERS = (
    "email,role,institution\n"
    "citizen@public.example,public,\n"
    "office@nmip.example,programme,\n"
    f"lead@cg.example,partner,{PARTNER}\n"
)
EMAILS = {
    "public": "citizen@public.example",
    "programme": "office@nmip.example",
    "partner": "lead@cg.example",
}
# Every page but Submit, which only the admin and partners are offered.
PAGES = tuple(page.url_path for page in APP_PAGES if page.url_path != "submit")
# Metric cards that count things other than people (institutions, states, table cells).
NOT_PEOPLE = {
    "Institutions",
    "States/UTs covered",
    "States/UTs with data",
    "Under-represented cells",
    "Empty cells",
}
# Table columns and chart labels that are not counts of people in the data: the reference share
# × N, and the patients a cell still needs (both from published numbers only; a hidden cell
# has neither, which the gaps tests check).
NOT_COUNTS = {"Expected", "Shortfall", "expected", "shortfall", "expected_label", "shortfall_label"}
# The planner's quantities are new patients to collect, not patients in the data (a hidden
# cell's are withheld: privacy.PLAN_CELLS), and the number of partners or cells.
NOT_COUNTS |= {"New (this plan)", "Target", "Proportional plan", "Partners", "Cells"}
NOT_COUNTS |= {"Cells with no accrual now"}
NOT_COUNTS |= {"allocated", "proportional", "target", "partners", "cell_allocated"}
_INTEGER = re.compile(r"^\d{1,3}(?:,\d{2})*(?:,\d{3})?$|^\d+$")


def sql(db: Path, query: str, **params: Any) -> list[tuple]:
    with connect_readonly(db) as con:
        return con.sql(query, params=params).fetchall()


def institution_option(db: Path, institution: str) -> str:
    """The Institution filter's option as the URL holds it: "Name (ID)"."""
    (name,) = sql(db, "SELECT name FROM institution WHERE institution_id = $i", i=institution)[0]
    return f"{name} ({institution})"


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, bytes]:
    """What each download button would hand the browser, by file name (each one clicked: the
    audit log it writes is the test's own)."""
    monkeypatch.setenv(audit.AUDIT_ENV, str(tmp_path / "audit.duckdb"))
    captured: dict[str, bytes] = {}
    original = st.download_button

    def capture(label: str, data: Any, file_name: str | None = None, **kwargs: Any) -> Any:
        captured[str(file_name)] = data() if callable(data) else data
        return original(label, data, file_name=file_name, **kwargs)

    monkeypatch.setattr(st, "download_button", capture)
    return captured


def run_as(db: Path, monkeypatch: pytest.MonkeyPatch, who: str, page: str, **params: Any):
    at = run_page(db, monkeypatch, page, user={"email": EMAILS[who]}, users_csv=USERS, **params)
    assert not at.exception, at.exception
    return at


# --------------------------------------------------------------------------- the scanner


def _small(text: object) -> bool:
    """A rendered integer (Indian grouping allowed) with 0 < n < k."""
    if isinstance(text, bool):
        return False
    if isinstance(text, int):
        return 0 < text < K
    if isinstance(text, float):
        return text.is_integer() and 0 < text < K and False  # floats are rates and shares
    value = str(text).strip()
    return bool(_INTEGER.match(value)) and 0 < int(value.replace(",", "")) < K


def _strings(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every string of a Vega-Lite spec with the key it sits under."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _strings(value, str(name))
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value, key)
    elif isinstance(node, str):
        yield key, node


def chart_rows(chart: Any) -> list[dict[str, Any]]:
    data = chart.proto.data.data
    return pa.ipc.open_stream(data).read_all().to_pylist() if data else []


def _titles(node: Any) -> dict[str, str]:
    """Field → tooltip title, over a Vega-Lite spec (tip_0, tip_1 … carry their meaning there)."""
    found: dict[str, str] = {}
    if isinstance(node, dict):
        if isinstance(node.get("field"), str) and isinstance(node.get("title"), str):
            found[node["field"]] = node["title"]
        for value in node.values():
            found |= _titles(value)
    elif isinstance(node, list):
        for value in node:
            found |= _titles(value)
    return found


def _chart_hits(at: Any) -> Iterator[tuple[str, object]]:
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        titles = _titles(spec)
        skip = {field for field, title in titles.items() if title in NOT_COUNTS} | NOT_COUNTS
        for row in chart_rows(chart):
            for field, value in row.items():
                # Labels and tooltips are what a reader sees; "count" is the bar length.
                shown = field.endswith("_label") or field.startswith("tip_") or field == "count"
                if shown and field not in skip and _small(value):
                    yield f"chart {field}", value
        for key, text in _strings(spec):  # titles, inline data
            if key not in skip and _small(text):
                yield f"chart spec {key}", text


def _download_hits(downloads: dict[str, bytes]) -> Iterator[tuple[str, object]]:
    for name, data in downloads.items():
        if not name.endswith(".csv"):
            continue
        for row in csv.DictReader(io.StringIO(bytes(data).decode("utf-8-sig"))):
            for column, value in row.items():
                skip = column in ("iso_code", "month", "age_band", *NOT_COUNTS)
                if skip or column.startswith("population"):
                    continue
                if _small(value):
                    yield f"{name}:{column}", value


def small_counts(at: Any, downloads: dict[str, bytes] | None = None) -> list[tuple[str, object]]:
    """Every rendered count 0 < n < k: metric values, table cells, chart labels, CSV cells."""
    hits: list[tuple[str, object]] = [
        (f"metric {m.label}", m.value)
        for m in at.metric
        if m.label not in NOT_PEOPLE and _small(m.value)
    ]
    for frame in at.dataframe:
        table = frame.value
        for column in table.columns:
            if str(column) in ("Makes", "Models", *NOT_COUNTS):
                continue
            for value in table[column].tolist():
                if isinstance(value, str) and _small(value):
                    hits.append((f"table {column}", value))
    hits += list(_chart_hits(at))
    hits += list(_download_hits(downloads or {}))
    return hits


def rendered_labels(at: Any) -> set[str]:
    """Every label and tooltip string in the charts' rows."""
    return {
        str(value)
        for chart in at.get("vega_lite_chart")
        for row in chart_rows(chart)
        for field, value in row.items()
        if isinstance(value, str)
    }


def state_rows(at: Any, iso_code: str) -> list[dict[str, Any]]:
    return [
        row
        for chart in at.get("vega_lite_chart")
        for row in chart_rows(chart)
        if row.get("iso_code") == iso_code
    ]


# --------------------------------------------------------------------------- the public


@pytest.mark.parametrize("who", ["public", "partner"])
@pytest.mark.parametrize("page", PAGES)
def test_no_count_below_k_on_any_page(
    demo_db: Path, monkeypatch, downloads, page: str, who: str
) -> None:
    """The public, and a partner without its own institution filter (every page but its own
    Institution page counts other institutions' rows too)."""
    at = run_as(demo_db, monkeypatch, who, page)
    hits = small_counts(at, downloads)
    if who == "partner" and page == "institution":  # its own figures, in full
        assert at.selectbox(key="partner").value == PARTNER
    else:
        assert hits == []


def test_public_geography_hides_nagaland_and_shows_karnataka(
    demo_db: Path, monkeypatch, downloads
) -> None:
    truth = dict(
        sql(
            demo_db,
            "SELECT state, count(DISTINCT (institution_id, patient_id)) FROM study GROUP BY 1",
        )
    )
    assert truth["IN-NL"] == 1 and truth["IN-KA"] > 1_000  # the premise
    at = run_as(demo_db, monkeypatch, "public", "geography")
    nagaland = state_rows(at, "IN-NL")
    assert nagaland and all(r["value"] is None for r in nagaland)  # not drawn as 0
    assert {r["value_label"] for r in nagaland} == {"< 10"}
    karnataka = state_rows(at, "IN-KA")
    assert {r["value_label"] for r in karnataka} == {format_indian(truth["IN-KA"])}
    (csv_bytes,) = downloads.values()
    rows = {r["iso_code"]: r for r in csv.DictReader(io.StringIO(csv_bytes.decode("utf-8-sig")))}
    assert rows["IN-NL"]["patients"] == "< 10" and rows["IN-NL"]["patients_per_100000"] == ""
    assert rows["IN-KA"]["patients"] == str(truth["IN-KA"])


def test_public_overview_headline_and_charts(demo_db: Path, monkeypatch) -> None:
    at = run_as(demo_db, monkeypatch, "public", "overview")
    (patients,) = sql(demo_db, "SELECT count(DISTINCT (institution_id, patient_id)) FROM study")[0]
    cards = {m.label: m.value for m in at.metric}
    assert cards["Patients"] == format_indian(patients)  # far above k: shown
    assert "< 10" in rendered_labels(at)  # small states are labelled, not dropped
    # the datasheet is offered, and says it is the public role's suppressed edition
    assert any("datasheet" in b.proto.label.lower() for b in at.get("download_button"))
    assert any("suppressed for the public role" in c.value for c in at.caption)


def test_a_filter_down_to_a_tiny_group_shows_below_k(demo_db: Path, monkeypatch) -> None:
    """Nagaland has 2 studies of 1 patient: the headline must not say so."""
    studies, patients = sql(
        demo_db,
        "SELECT count(*), count(DISTINCT (institution_id, patient_id)) FROM study "
        "WHERE state = 'IN-NL'",
    )[0]
    assert (studies, patients) == (2, 1)
    at = run_as(demo_db, monkeypatch, "public", "overview", state="Nagaland")
    cards = {m.label: m.value for m in at.metric}
    assert cards["Studies"] == "< 10" and cards["Patients"] == "< 10"
    assert cards["Images"] == "withheld"
    assert small_counts(at) == []
    at = run_as(demo_db, monkeypatch, "public", "geography", state="Nagaland")
    assert small_counts(at) == []


# --------------------------------------------------------------------------- partners


def test_partner_sees_its_own_institution_in_full(demo_db: Path, monkeypatch) -> None:
    truth = dict(
        sql(
            demo_db,
            "SELECT coalesce(state, '?'), count(DISTINCT patient_id) FROM study "
            "WHERE institution_id = $i GROUP BY 1",
            i=PARTNER,
        )
    )
    assert truth["IN-MP"] == 2  # the premise: a small cell of its own
    own = institution_option(demo_db, PARTNER)
    at = run_as(demo_db, monkeypatch, "partner", "geography", institution=own)
    assert {r["value_label"] for r in state_rows(at, "IN-MP")} == {"2"}
    assert {r["value_label"] for r in state_rows(at, "IN-CG")} == {format_indian(truth["IN-CG"])}
    at = run_as(demo_db, monkeypatch, "partner", "overview", institution=own)
    (patients,) = sql(
        demo_db, "SELECT count(DISTINCT patient_id) FROM study WHERE institution_id = $i", i=PARTNER
    )[0]
    assert {m.label: m.value for m in at.metric}["Patients"] == format_indian(patients)


def test_partner_gets_only_suppressed_aggregates_of_another_institution(
    demo_db: Path, monkeypatch, downloads
) -> None:
    (west_bengal,) = sql(
        demo_db,
        "SELECT count(DISTINCT patient_id) FROM study WHERE institution_id = $i "
        "AND state = 'IN-WB'",
        i=OTHER,
    )[0]
    assert west_bengal == 1
    other = institution_option(demo_db, OTHER)
    for page in ("overview", "geography", "demographics", "trends", "gaps"):
        at = run_as(demo_db, monkeypatch, "partner", page, institution=other)
        assert small_counts(at, downloads) == [], page
    at = run_as(demo_db, monkeypatch, "partner", "geography", institution=other)
    assert {r["value_label"] for r in state_rows(at, "IN-WB")} == {"< 10"}
    # Its own and another institution together are not "its own": still suppressed.
    both = [institution_option(demo_db, PARTNER), other]
    at = run_as(demo_db, monkeypatch, "partner", "geography", institution=both)
    assert small_counts(at) == []
    # The pages kept for the programme stay closed, whatever the URL says.
    at = run_as(demo_db, monkeypatch, "partner", "data-quality", institution=other)
    assert any("programme team" in i.value for i in at.info)
    assert small_counts(at) == []


def test_partner_institution_page_is_its_own_whatever_the_url(
    demo_db: Path, monkeypatch, downloads
) -> None:
    studies, patients = sql(
        demo_db,
        "SELECT count(*), count(DISTINCT patient_id) FROM study WHERE institution_id = $i",
        i=PARTNER,
    )[0]
    at = run_as(demo_db, monkeypatch, "partner", "institution", partner=OTHER)
    assert at.selectbox(key="partner").value == PARTNER
    assert at.selectbox(key="partner").options == [PARTNER]
    cards = {m.label: m.value for m in at.metric}
    assert cards["Studies"] == format_indian(studies)
    assert cards["Patients"] == format_indian(patients)
    # Its own downloads are offered in full; the programme-wide trend and gaps are not shown.
    assert downloads and all(OTHER not in name for name in downloads)
    assert not any("Share of the programme" in m.label for m in at.metric)
    at = run_as(demo_db, monkeypatch, "public", "institution", partner=PARTNER)
    assert any("programme team" in i.value for i in at.info)


# --------------------------------------------------------------------------- the programme


def test_programme_sees_all_on_screen_but_downloads_are_suppressed(
    demo_db: Path, monkeypatch, downloads
) -> None:
    at = run_as(demo_db, monkeypatch, "programme", "geography")
    assert {r["value_label"] for r in state_rows(at, "IN-NL")} == {"1"}  # in full on screen
    (csv_bytes,) = downloads.values()
    rows = {r["iso_code"]: r for r in csv.DictReader(io.StringIO(csv_bytes.decode("utf-8-sig")))}
    assert rows["IN-NL"]["patients"] == "< 10"
    downloads.clear()
    for page in PAGES:
        run_as(demo_db, monkeypatch, "programme", page)
    assert downloads, "the programme can download suppressed tables"
    assert list(_download_hits(downloads)) == []


def test_partner_data_quality_of_its_own_institution(demo_db: Path, monkeypatch) -> None:
    (studies,) = sql(demo_db, "SELECT count(*) FROM study WHERE institution_id = $i", i=PARTNER)[0]
    own = institution_option(demo_db, PARTNER)
    at = run_as(demo_db, monkeypatch, "partner", "data-quality", institution=own)
    cards = {m.label: m.value for m in at.metric}
    assert cards["Studies checked"] == format_indian(studies)
    assert "Files ingested" not in cards  # the ingest log lists every institution's files
    assert not any("Ingest" in h.value for h in at.subheader)
    at = run_as(demo_db, monkeypatch, "partner", "data-quality")
    assert any("your own institution (DEMO-CG-01)" in i.value for i in at.info)


def test_every_app_download_is_an_audited_export(
    demo_db: Path, monkeypatch: pytest.MonkeyPatch, downloads: dict[str, bytes]
) -> None:
    """Issue "Who sees what", item 4: every export is written to the audit log, with who
    downloaded what, under which role and filters."""
    run_as(demo_db, monkeypatch, "public", "geography", state="Kerala")
    assert downloads  # the page offers its table
    logged = audit.entries(demo_db).filter(action="export")
    assert logged.height == len(downloads)
    assert set(logged["actor"]) == {EMAILS["public"]}
    assert set(logged["role"]) == {"public"} and set(logged["channel"]) == {"app"}
    assert set(logged["what"]) == {f"download {name}" for name in downloads}
    assert all("IN-KL" in str(detail) for detail in logged["detail"])  # the filter
