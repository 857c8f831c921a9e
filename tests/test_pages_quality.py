"""AppTest runs of the Data quality and Institution pages, with known answers from the index.

Expected values are computed here with plain SQL on the DuckDB file (or by hand for the small
fixture below), never by calling the code under test.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.db import connect_readonly
from dashboard.formatting import format_indian, format_percent
from dashboard.ingest.manifest import ingest_manifest
from dashboard.ingest.writer import index_writer
from dashboard.reference import REFERENCE_DIR
from tests.apptest import run_page
from tests.conftest import TODAY

HEADER = (
    "StudyInstanceUID,PatientID,site,StudyDate,Modality,PatientSex,PatientAge,state,icd10,n_images"
)
# Rows 1-6 are accepted; rows 7-11 are quarantined for known reasons (row 9 for two).
BAD_BATCH = [
    "1.1,P1,TEST-KA-01,2025-04-03,CT,M,45,Karnataka,C50.9,120",
    "1.2,P1,TEST-KA-01,2025-05-03,DX,M,45,Karnataka,,1",
    "1.3,P2,TEST-KA-01,2025-05-05,MR,F,,Karnataka,normal,40",
    "1.4,P3,TEST-KA-01,2025-06-05,CT,U,30,,A15.0,",
    "1.5,P4,TEST-OD-01,2025-04-05,MG,F,52,Odisha,,4",
    "1.6,P5,TEST-OD-01,2025-07-05,DX,M,,,A15.0,1",
    "2.1,P6,TEST-KA-01,2025-04-03,CT,M,40,Orisa,,1",
    "2.2,P7,TEST-KA-01,2025-04-04,CT,F,41,Orisa,,1",
    "2.3,P8,TEST-KA-01,2025-04-05,CT,M,150,Atlantis,,1",
    "2.4,P9,TEST-OD-01,2025-04-06,CT,F,150,Odisha,,1",
    "2.5,P10,NOPE-01,2025-04-07,CT,M,40,Karnataka,,1",
]
CLEAN_BATCH = [
    "3.1,P11,TEST-OD-01,2025-08-01,US,F,33,Odisha,,2",
    "3.2,P12,TEST-OD-01,2025-08-02,US,F,34,Odisha,,2",
]
ORISA = "state 'Orisa' is not a state or UT of India; did you mean Odisha (IN-OD)?"


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """What each download button would hand the browser, by file name."""
    captured: dict[str, bytes] = {}
    original = st.download_button

    def capture(label: str, data: Any, file_name: str | None = None, **kwargs: Any) -> Any:
        captured[str(file_name)] = data() if callable(data) else data  # the click
        return original(label, data, file_name=file_name, **kwargs)

    monkeypatch.setattr(st, "download_button", capture)
    return captured


@pytest.fixture
def bad_manifest_db(registered_db: Path, write_file: Callable[..., Path]) -> Path:
    """The two-institution registry, one manifest with five bad rows and one clean manifest."""
    with index_writer(registered_db) as con:
        bad = ingest_manifest(
            con, write_file("bad_batch.csv", "\n".join([HEADER, *BAD_BATCH]) + "\n"), today=TODAY
        )
        clean = ingest_manifest(
            con,
            write_file("clean_batch.csv", "\n".join([HEADER, *CLEAN_BATCH]) + "\n"),
            today=TODAY,
        )
    assert (bad.rows_read, bad.accepted, bad.quarantined) == (11, 6, 5)
    assert (clean.rows_read, clean.accepted) == (2, 2)
    return registered_db


def sql(db: Path, query: str, params: dict[str, Any] | None = None) -> list[tuple]:
    with connect_readonly(db) as con:
        return con.sql(query, params=params or {}).fetchall()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def chart_data(at: AppTest, title: str) -> pl.DataFrame:
    """The rows a chart was drawn from (Streamlit ships them as Arrow next to the spec)."""
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        text = spec.get("title", {}).get("text", "")
        if text == title:
            return pl.from_arrow(pa.ipc.open_stream(chart.proto.data.data).read_all())
    raise AssertionError(f"no chart titled {title!r}")


def table(at: AppTest, *columns: str) -> pl.DataFrame:
    """The first displayed table that has all these column titles."""
    for frame in at.dataframe:
        shown = pl.from_pandas(frame.value)
        if set(columns) <= set(shown.columns):
            return shown
    raise AssertionError(f"no table with columns {columns}")


def csv(data: bytes) -> pl.DataFrame:
    return pl.read_csv(io.BytesIO(data), infer_schema_length=0)


def institution_option(db: Path, institution: str) -> str:
    """The sidebar's formatted option for an institution, as the URL holds it."""
    name = sql(db, "SELECT name FROM institution WHERE institution_id = $i", {"i": institution})
    return f"{name[0][0]} ({institution})"


# --------------------------------------------------------------------------- Data quality


def test_data_quality_missing_rates_and_quarantine_on_the_demo(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "data-quality")
    assert not at.exception
    assert at.title[0].value == "Data quality"
    assert "Synthetic demo data" in at.warning[0].value
    studies, age_ka, studies_ka, diagnosis = sql(
        demo_db,
        "SELECT count(*), count(*) FILTER (WHERE age_years IS NULL AND institution_id = "
        "'DEMO-KA-01'), count(*) FILTER (WHERE institution_id = 'DEMO-KA-01'), "
        "count(*) FILTER (WHERE diagnosis_icd10 IS NULL) FROM study",
    )[0]
    to_fix = sql(demo_db, 'SELECT count(DISTINCT (file, "row")) FROM quarantine')[0][0]
    files = sql(demo_db, "SELECT count(DISTINCT file) FROM ingest_log")[0][0]
    shown = metrics(at)
    assert shown["Studies checked"] == format_indian(studies)
    assert shown["Rows to fix"] == format_indian(to_fix)
    assert shown["Files ingested"] == format_indian(files)
    assert to_fix > 0

    heat = chart_data(at, "Share of studies with the field unknown")
    cell = heat.filter((pl.col("y") == "DEMO-KA-01") & (pl.col("x") == "Age")).row(0, named=True)
    assert cell["value"] == pytest.approx(100 * age_ka / studies_ka)
    assert cell["value_label"] == format_percent(age_ka / studies_ka)
    everyone = heat.filter((pl.col("y") == "All institutions") & (pl.col("x") == "Diagnosis"))
    assert everyone["value"][0] == pytest.approx(100 * diagnosis / studies)
    institutions = sql(demo_db, "SELECT count(DISTINCT institution_id) FROM study")[0][0]
    assert heat["y"].n_unique() == institutions + 1
    assert heat["x"].n_unique() == 9

    by_field = table(at, "Field", "Unknown")
    age_row = by_field.filter(pl.col("Field") == "Age").row(0, named=True)
    assert age_row["Studies"] == format_indian(studies)
    assert any("DICOM header auditing has not been ingested yet" in i.value for i in at.info)


def test_data_quality_follows_the_shared_filters_in_the_url(
    demo_db: Path, monkeypatch, downloads: dict[str, bytes]
) -> None:
    option = institution_option(demo_db, "DEMO-KA-01")
    at = run_page(
        demo_db, monkeypatch, "data-quality", state="Karnataka", institution=option, unit="studies"
    )
    assert not at.exception
    assert at.multiselect(key="state").value == ["IN-KA"]
    studies, age = sql(
        demo_db,
        "SELECT count(*), count(*) FILTER (WHERE age_years IS NULL) FROM study "
        "WHERE state = 'IN-KA' AND institution_id = 'DEMO-KA-01'",
    )[0]
    assert metrics(at)["Studies checked"] == format_indian(studies)
    heat = chart_data(at, "Share of studies with the field unknown")
    assert set(heat["y"]) == {"All institutions", "DEMO-KA-01"}
    age_cell = heat.filter((pl.col("y") == "DEMO-KA-01") & (pl.col("x") == "Age"))
    assert age_cell["value"][0] == pytest.approx(100 * age / studies)
    # Filtering on the state leaves no unknown state: its missing rate reads 0.
    assert heat.filter(pl.col("x") == "State/UT")["value"].to_list() == [0.0, 0.0]
    # The quarantine follows the institution filter only.
    to_fix = sql(
        demo_db,
        'SELECT count(DISTINCT (file, "row")) FROM quarantine '
        "WHERE institution_id = 'DEMO-KA-01'",
    )[0][0]
    assert metrics(at)["Rows to fix"] == format_indian(to_fix)
    # With an institution filter, the rows to fix are that institution's only (no "All").
    assert at.selectbox(key="dq_institution").options == [option]
    rows = csv(downloads["quarantine_DEMO-KA-01.csv"])
    assert rows.height == to_fix


def test_data_quality_reports_a_known_bad_manifest_exactly(
    bad_manifest_db: Path, monkeypatch, downloads: dict[str, bytes]
) -> None:
    at = run_page(bad_manifest_db, monkeypatch, "data-quality")
    assert not at.exception
    assert not at.warning  # nothing synthetic here
    shown = metrics(at)
    assert shown["Studies checked"] == "8"
    assert shown["Rows to fix"] == "5"
    assert shown["Quarantine rate"] == format_percent(5 / 13)
    assert shown["Files ingested"] == "2"

    by_institution = table(at, "Institution", "Studies accepted")
    rows = {r["Institution"]: r for r in by_institution.iter_rows(named=True)}
    assert rows["TEST-KA-01"]["Rows to fix"] == "3"
    assert rows["TEST-KA-01"]["Studies accepted"] == "4"
    assert rows["TEST-KA-01"]["Quarantine rate"] == format_percent(3 / 7)
    assert rows["TEST-OD-01"]["Rows to fix"] == "1"
    assert rows["TEST-OD-01"]["Quarantine rate"] == format_percent(1 / 5)
    assert rows["NOPE-01"]["Rows to fix"] == "1"  # unregistered, so no accepted studies
    assert rows["NOPE-01"]["Studies accepted"] == "0"

    by_file = table(at, "Institution", "File", "Problems")
    ka = by_file.filter(pl.col("Institution") == "TEST-KA-01").row(0, named=True)
    assert (ka["File"], ka["Rows to fix"], ka["Problems"]) == ("bad_batch.csv", "3", "4")
    assert ka["Most frequent reason"] == ORISA

    reasons = table(at, "Reason", "Institutions")
    # Most rows first; ties in reason order.
    assert reasons.select("Reason", "Field", "Rows", "Institutions").rows() == [
        ("age '150' is outside 0–120 years", "age", "2", "2"),
        (ORISA, "state", "2", "1"),
        ("institution_id 'NOPE-01' is not in the institution registry", "institution_id", "1", "1"),
        ("state 'Atlantis' is not a state or UT of India", "state", "1", "1"),
    ]

    files = table(at, "File", "Rows read").sort("File")
    assert files.select("File", "Rows read", "Accepted", "Quarantined").rows() == [
        ("bad_batch.csv", "11", "6", "5"),
        ("clean_batch.csv", "2", "2", "0"),
    ]
    bad = files.row(0, named=True)
    assert (bad["Accepted %"], bad["Quarantined %"], bad["Still to fix"]) == (
        format_percent(6 / 11),
        format_percent(5 / 11),
        "5",
    )

    everything = csv(downloads["quarantine_all.csv"])
    assert everything.height == 5
    assert everything["row"].to_list() == ["7", "8", "9", "10", "11"]
    assert set(everything.columns) >= {"file", "row", "reasons", "StudyInstanceUID", "state"}
    assert everything.filter(pl.col("row") == "9")["reasons"][0] == (
        "age '150' is outside 0–120 years; state 'Atlantis' is not a state or UT of India"
    )

    at.selectbox(key="dq_institution").set_value("TEST-KA-01").run()
    assert not at.exception
    ka_rows = csv(downloads["quarantine_TEST-KA-01.csv"])
    assert ka_rows["row"].to_list() == ["7", "8", "9"]
    assert ka_rows["state"].to_list() == ["Orisa", "Orisa", "Atlantis"]
    assert ka_rows["PatientAge"].to_list() == ["40", "41", "150"]


def test_data_quality_missing_rates_of_the_fixture(bad_manifest_db: Path, monkeypatch) -> None:
    at = run_page(bad_manifest_db, monkeypatch, "data-quality")
    heat = chart_data(at, "Share of studies with the field unknown")
    rates = {(r["y"], r["x"]): r["value"] for r in heat.iter_rows(named=True)}
    # TEST-KA-01 kept 1.1-1.4: one unknown sex (U), age, state, diagnosis and image count each.
    for field in ("Sex", "Age", "State/UT", "Diagnosis", "Number of images"):
        assert rates[("TEST-KA-01", field)] == pytest.approx(25.0)
    # No manifest column for urban/rural, body part or manufacturer: all unknown.
    for field in ("Urban/rural", "Body part", "Manufacturer"):
        assert rates[("All institutions", field)] == pytest.approx(100.0)
    # TEST-OD-01 kept 1.5, 1.6, 3.1, 3.2: one unknown age and state; diagnosis only on 1.6.
    assert rates[("TEST-OD-01", "Age")] == pytest.approx(25.0)
    assert rates[("TEST-OD-01", "Diagnosis")] == pytest.approx(75.0)
    assert rates[("All institutions", "Age")] == pytest.approx(100 * 2 / 8)


def test_data_quality_of_an_empty_index(registered_db: Path, monkeypatch) -> None:
    at = run_page(registered_db, monkeypatch, "data-quality")
    assert not at.exception
    assert any("no studies yet" in i.value for i in at.info)
    assert any("DICOM header auditing has not been ingested yet" in i.value for i in at.info)
    assert metrics(at)["Rows to fix"] == "0"


def test_data_quality_without_an_index(tmp_path: Path, monkeypatch) -> None:
    at = run_page(tmp_path / "missing.duckdb", monkeypatch, "data-quality")
    assert not at.exception
    assert "No index found" in at.info[0].value


def test_data_quality_with_an_empty_quarantine_and_clean_dicom_studies(
    bad_manifest_db: Path, monkeypatch
) -> None:
    with index_writer(bad_manifest_db) as con:
        con.execute("DELETE FROM quarantine")
        con.execute("UPDATE study SET source = 'dicom' WHERE study_uid IN ('1.5', '1.6')")
    at = run_page(bad_manifest_db, monkeypatch, "data-quality")
    assert not at.exception
    assert any("Nothing in quarantine" in s.value for s in at.success)
    assert not any("rows to fix" in (d.proto.label or "") for d in at.get("download_button"))
    assert any("2 studies read from DICOM headers: none" in s.value for s in at.success)
    assert not any("not been ingested yet" in i.value for i in at.info)


def test_data_quality_counts_dicom_studies_under_the_institution_filter_only(
    bad_manifest_db: Path, monkeypatch
) -> None:
    """The DICOM count (dq_dicom_studies) takes both DICOM sources and, like the rest of the
    audit, only the Institution filter: a State filter that leaves out every such study of
    the institution does not change it."""
    with index_writer(bad_manifest_db) as con:
        con.execute("UPDATE study SET source = 'dicom' WHERE study_uid IN ('1.5', '3.1')")
        con.execute("UPDATE study SET source = 'dicomweb' WHERE study_uid IN ('1.1', '1.6')")
    by_institution = dict(
        sql(
            bad_manifest_db,
            "SELECT institution_id, count(*) FROM study "
            "WHERE source IN ('dicom', 'dicomweb') GROUP BY institution_id",
        )
    )
    assert by_institution == {"TEST-KA-01": 1, "TEST-OD-01": 3}  # by hand, from the rows above
    cases = [
        ({}, 4),
        ({"institution": institution_option(bad_manifest_db, "TEST-OD-01")}, 3),
        # Study 1.1 is in Karnataka: the State filter would leave it out, the audit does not.
        (
            {
                "institution": institution_option(bad_manifest_db, "TEST-KA-01"),
                "state": "Odisha",
            },
            1,
        ),
    ]
    for params, expected in cases:
        st.cache_data.clear()
        at = run_page(bad_manifest_db, monkeypatch, "data-quality", **params)
        assert not at.exception
        assert any(
            f"{expected} studies read from DICOM headers: none" in s.value for s in at.success
        ), params


def test_data_quality_shows_the_phi_flags_of_dicom_studies(
    bad_manifest_db: Path, monkeypatch, downloads: dict[str, bytes]
) -> None:
    with index_writer(bad_manifest_db) as con:
        con.execute("UPDATE study SET source = 'dicom' WHERE study_uid IN ('1.5', '1.6', '3.1')")
        con.execute(
            "INSERT INTO phi_flag VALUES "
            "('TEST-OD-01', '1.5', 'PatientName', 3, 3, 'dicom', TIMESTAMP '2026-11-01 10:00'), "
            "('TEST-OD-01', '1.5', 'PatientAddress', 1, 3, 'dicom', TIMESTAMP '2026-11-01 10:00'), "
            "('TEST-OD-01', '1.6', 'PatientName', 2, 2, 'dicom', TIMESTAMP '2026-11-01 10:00')"
        )
    at = run_page(bad_manifest_db, monkeypatch, "data-quality")
    assert not at.exception
    shown = metrics(at)
    assert shown["DICOM studies"] == "3"
    assert shown["Studies flagged"] == "2"
    assert shown["Files flagged"] == "5"  # 3 + 2: the file with two elements counts once
    bars = chart_data(at, "Files whose header carries an identifying element")
    assert dict(zip(bars["category"], bars["count"], strict=True)) == {
        "Patient name": 5.0,
        "Address": 1.0,
    }
    flags = csv(downloads["phi_flags.csv"])
    assert set(flags.columns) >= {"institution_id", "tag", "files", "studies"}
    assert "value" not in flags.columns


def test_data_quality_filters_that_match_nothing(demo_db: Path, monkeypatch) -> None:
    assert sql(demo_db, "SELECT count(*) FROM study WHERE state = 'IN-LD'")[0][0] == 0
    at = run_page(demo_db, monkeypatch, "data-quality", state="Lakshadweep")
    assert not at.exception
    assert metrics(at)["Studies checked"] == "0"
    assert any("No studies match the current filters" in i.value for i in at.info)


# --------------------------------------------------------------------------- Institution


def partner_counts(db: Path, partner: str, where: str = "TRUE") -> tuple[int, int, int, int]:
    """Partner studies and patients, and the programme's, under one SQL condition."""
    return sql(
        db,
        f"SELECT count(*) FILTER (WHERE institution_id = $p), "
        f"count(DISTINCT patient_key) FILTER (WHERE institution_id = $p), "
        f"count(*), count(DISTINCT patient_key) FROM study WHERE {where}",
        {"p": partner},
    )[0]


def test_institution_defaults_to_the_first_partner(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "institution")
    assert not at.exception
    assert at.title[0].value == "Institution"
    first, name = sql(demo_db, "SELECT institution_id, name FROM institution ORDER BY 1 LIMIT 1")[0]
    assert at.selectbox(key="partner").value == first
    assert at.subheader[0].value == name
    studies, patients, all_studies, all_patients = partner_counts(demo_db, first)
    shown = metrics(at)
    assert shown["Studies"] == format_indian(studies)
    assert shown["Patients"] == format_indian(patients)
    assert shown["Share of studies"] == format_percent(studies / all_studies)
    assert shown["Share of patients"] == format_percent(patients / all_patients)
    headings = [s.value for s in at.subheader]
    for section in ("Contributions by month and modality", "Trend", "Quarantine"):
        assert section in headings
    assert len(at.get("vega_lite_chart")) >= 6


def test_institution_from_the_url_with_its_rows_to_fix(
    demo_db: Path, monkeypatch, downloads: dict[str, bytes]
) -> None:
    at = run_page(demo_db, monkeypatch, "institution", partner="DEMO-KA-01")
    assert not at.exception
    assert at.selectbox(key="partner").value == "DEMO-KA-01"
    name = sql(demo_db, "SELECT name FROM institution WHERE institution_id = 'DEMO-KA-01'")[0][0]
    assert at.subheader[0].value == name
    studies = partner_counts(demo_db, "DEMO-KA-01")[0]
    open_rows = sql(
        demo_db,
        "SELECT \"row\" FROM quarantine WHERE institution_id = 'DEMO-KA-01' "
        'GROUP BY file, "row" ORDER BY file, "row"',
    )
    assert metrics(at)["Quarantine rate"] == format_percent(
        len(open_rows) / (studies + len(open_rows))
    )
    rows = csv(downloads["quarantine_DEMO-KA-01.csv"])
    assert rows["row"].to_list() == [str(r[0]) for r in open_rows]
    assert set(rows["institution_id"].str.to_uppercase()) == {"DEMO-KA-01"}

    # Contributions by month: the chart's studies equal the SQL count for one month.
    month, count = sql(
        demo_db,
        "SELECT strftime(study_month, '%Y-%m'), count(*) FROM study "
        "WHERE institution_id = 'DEMO-KA-01' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
    )[0]
    by_month = csv(downloads["studies_by_month_modality.csv"])
    assert by_month.filter(pl.col("month") == month)["n"].cast(pl.Int64).sum() == count


def test_institution_default_follows_the_shared_institution_filter(
    demo_db: Path, monkeypatch
) -> None:
    at = run_page(
        demo_db, monkeypatch, "institution", institution=institution_option(demo_db, "DEMO-TN-02")
    )
    assert not at.exception
    assert at.selectbox(key="partner").value == "DEMO-TN-02"
    # The programme it is compared with is still every partner.
    studies, _, all_studies, _ = partner_counts(demo_db, "DEMO-TN-02")
    assert metrics(at)["Share of studies"] == format_percent(studies / all_studies)


def test_institution_respects_the_shared_filters(demo_db: Path, monkeypatch) -> None:
    at = run_page(
        demo_db, monkeypatch, "institution", partner="DEMO-KA-01", state="Karnataka", unit="studies"
    )
    assert not at.exception
    studies, patients, all_studies, _ = partner_counts(demo_db, "DEMO-KA-01", "state = 'IN-KA'")
    shown = metrics(at)
    assert shown["Studies"] == format_indian(studies)
    assert shown["Patients"] == format_indian(patients)
    assert shown["Share of studies"] == format_percent(studies / all_studies)
    assert any("last 3 months" in label for label in shown)


def test_institution_mix_against_its_state_population(
    demo_db: Path, monkeypatch, downloads: dict[str, bytes]
) -> None:
    at = run_page(demo_db, monkeypatch, "institution", partner="DEMO-BR-01", unit="studies")
    assert not at.exception
    males, females = sql(
        demo_db,
        "SELECT count(*) FILTER (WHERE sex = 'M'), count(*) FILTER (WHERE sex = 'F') FROM study "
        "WHERE institution_id = 'DEMO-BR-01' AND age_band IS NOT NULL",
    )[0]
    population = pl.read_csv(REFERENCE_DIR / "state_population.csv").filter(
        pl.col("iso_code") == "IN-BR"
    )
    male_pop = population["proj2026_male"][0]
    female_pop = population["proj2026_female"][0]
    sexes = chart_data(at, "Studies by sex vs Bihar's population")
    observed = dict(
        sexes.filter(pl.col("series") == "Institution").select("category", "share").iter_rows()
    )
    reference = dict(
        sexes.filter(pl.col("series") == "Bihar").select("category", "share").iter_rows()
    )
    assert observed["Male"] == pytest.approx(males / (males + females))
    assert reference["Female"] == pytest.approx(female_pop / (male_pop + female_pop), rel=1e-6)
    mix = csv(downloads["mix_vs_state_population.csv"])
    assert (
        mix["n"].cast(pl.Int64).sum()
        == sql(
            demo_db,
            "SELECT count(*) FROM study WHERE institution_id = 'DEMO-BR-01' "
            "AND sex IN ('M', 'F', 'O') AND age_band IS NOT NULL",
        )[0][0]
    )


def test_institution_gaps_it_is_best_placed_to_fill(
    demo_db: Path, monkeypatch, downloads: dict[str, bytes]
) -> None:
    at = run_page(demo_db, monkeypatch, "institution", partner="DEMO-BR-01")
    at.segmented_control(key="partner_gap_dims").set_value("State").run()
    assert not at.exception
    # Independently: patients per state, 2026 population shares, the shortfall formula.
    observed = dict(
        sql(
            demo_db,
            "SELECT state, count(DISTINCT patient_key) FROM study WHERE state IS NOT NULL "
            "GROUP BY state",
        )
    )
    reach = {
        s
        for (s,) in sql(
            demo_db,
            "SELECT DISTINCT state FROM study WHERE institution_id = 'DEMO-BR-01' "
            "AND state IS NOT NULL",
        )
    }
    population = pl.read_csv(REFERENCE_DIR / "state_population.csv")
    weights = dict(population.select("iso_code", "proj2026_total").iter_rows())
    total_n = sum(observed.values())
    total_w = sum(weights.values())
    shortfalls = {}
    for state, weight in weights.items():
        q = weight / total_w
        n = observed.get(state, 0)
        need = math.ceil((q * total_n - n) / (1 - q) - 1e-9)
        if need > 0 and state in reach:
            shortfalls[state] = need
    gaps = csv(downloads["gaps_within_reach.csv"])
    assert set(gaps["state"]) == set(shortfalls)
    assert dict(zip(gaps["state"], gaps["shortfall"].cast(pl.Int64), strict=True)) == shortfalls
    assert gaps["shortfall"].cast(pl.Int64).to_list() == sorted(shortfalls.values(), reverse=True)
    top_state = max(shortfalls, key=lambda s: (shortfalls[s], s))
    bars = chart_data(at, next(t for t in _titles(at) if t.startswith("The programme's")))
    names = dict(population.select("iso_code", "name").iter_rows())
    assert bars.sort("count", descending=True)["category"][0] == names[top_state]


def _titles(at: AppTest) -> list[str]:
    return [
        json.loads(c.proto.spec).get("title", {}).get("text", "") for c in at.get("vega_lite_chart")
    ]


def test_institution_with_a_known_bad_manifest(
    bad_manifest_db: Path, monkeypatch, downloads: dict[str, bytes]
) -> None:
    at = run_page(bad_manifest_db, monkeypatch, "institution", partner="TEST-KA-01")
    assert not at.exception
    shown = metrics(at)
    assert shown["Studies"] == "4"
    assert shown["Patients"] == "3"
    assert shown["Share of studies"] == format_percent(4 / 8)
    assert shown["Quarantine rate"] == format_percent(3 / 7)
    assert any("3 rows to fix" in m.value for m in at.markdown)
    rows = csv(downloads["quarantine_TEST-KA-01.csv"])
    assert rows["row"].to_list() == ["7", "8", "9"]
    assert rows["reasons"][0] == ORISA


def test_institution_without_studies_yet(registered_db: Path, monkeypatch) -> None:
    at = run_page(registered_db, monkeypatch, "institution", partner="TEST-OD-01")
    assert not at.exception
    assert at.selectbox(key="partner").value == "TEST-OD-01"
    assert any("has no studies in the index yet" in i.value for i in at.info)
    assert any("Nothing in quarantine" in s.value for s in at.success)
    assert metrics(at)["Studies"] == "0"
    assert metrics(at)["Share of studies"] == "–"


def test_institution_with_an_unknown_partner_in_the_url(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "institution", partner="NOT-A-PARTNER")
    assert not at.exception
    first = sql(demo_db, "SELECT min(institution_id) FROM institution")[0][0]
    assert at.selectbox(key="partner").value == first


def test_institution_without_an_index(tmp_path: Path, monkeypatch) -> None:
    at = run_page(tmp_path / "missing.duckdb", monkeypatch, "institution")
    assert not at.exception
    assert "No index found" in at.info[0].value


# --------------------------------------------------------------------------- pure helpers


def test_complete_months_fills_the_holes_a_stacked_area_would_bridge() -> None:
    from dashboard.quality import complete_months

    frame = pl.DataFrame({"month": ["2025-01", "2025-03"], "modality": ["CT", "MR"], "n": [4, 2]})
    grid = complete_months(frame, "modality")
    assert grid.rows() == [
        ("2025-01", "CT", 4),
        ("2025-01", "MR", 0),
        ("2025-02", "CT", 0),
        ("2025-02", "MR", 0),
        ("2025-03", "CT", 0),
        ("2025-03", "MR", 2),
    ]


def test_share_trend_starts_with_the_partner_and_compares_recent_months() -> None:
    from dashboard.quality import recent_share, share_trend

    monthly = pl.DataFrame(
        {
            "institution": ["A", "B", "A", "B", "B", "A", "B", "A"],
            "month": [f"2025-0{m}" for m in (1, 1, 2, 2, 3, 4, 4, 5)],
            "studies": [0, 5, 1, 3, 4, 2, 2, 3],
        }
    )
    trend = share_trend(monthly, "A", "studies")
    # January has a row for A with 0 studies: the trend starts at its first contribution.
    assert trend["month"].to_list() == ["2025-02", "2025-03", "2025-04", "2025-05"]
    assert trend["partner"].to_list() == [1, 0, 2, 3]
    assert trend["share"].to_list() == pytest.approx([0.25, 0.0, 0.5, 1.0])
    # Last 3 months: (0 + 2 + 3) / (4 + 4 + 3); the 3 before: only February, 1 / 4.
    assert recent_share(trend) == pytest.approx((5 / 11, 1 / 4))
    assert share_trend(monthly, "C", "studies").height == 0


def test_gaps_within_reach_keeps_reached_under_represented_cells_by_shortfall() -> None:
    from dashboard.quality import gaps_within_reach

    table = pl.DataFrame(
        {
            "state": ["IN-BR", "IN-UP", "IN-KA", "IN-MH"],
            "n": [10, 20, 60, 10],
            "ref_share": [0.3, 0.3, 0.2, 0.2],
            "flag": ["under", "uncertain", "over", "ok"],
            "shortfall": [40, 25, 0, 3],
        }
    )
    partner = pl.DataFrame({"state": ["IN-BR", "IN-KA", "IN-MH", None], "n": [5, 9, 1, 7]})
    gaps = gaps_within_reach(table, partner, ["state"])
    assert gaps["state"].to_list() == ["IN-BR", "IN-MH"]  # IN-UP never reached, IN-KA no gap
    assert gaps["partner_n"].to_list() == [5, 1]
    assert gaps["expected"].to_list() == pytest.approx([30.0, 20.0])
