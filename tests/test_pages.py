"""AppTest runs of every page: with the demo index, with no index, and with an empty one."""

from __future__ import annotations

from pathlib import Path

from scipy.spatial.distance import jensenshannon

from dashboard.db import connect_readonly
from dashboard.formatting import format_indian, format_ratio
from dashboard.reference import load_reference
from tests.apptest import run_page


def test_overview_shows_totals_and_synthetic_notice(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch)
    assert not at.exception
    assert at.title[0].value == "Overview"
    assert "Synthetic demo data" in at.warning[0].value
    metrics = {m.label: m.value for m in at.metric}
    with connect_readonly(demo_db) as con:
        studies, patients = con.sql(
            "SELECT count(*), count(DISTINCT (institution_id, patient_id)) FROM study"
        ).fetchall()[0]
    assert metrics["Studies"] == format_indian(studies)
    assert metrics["Patients"] == format_indian(patients)
    assert 15_000 < studies <= 20_000
    assert metrics["Institutions"] != "0"
    assert metrics["States/UTs covered"].endswith("of 36")
    assert len(at.get("vega_lite_chart")) == 3


def test_overview_without_an_index_explains_what_to_do(tmp_path: Path, monkeypatch) -> None:
    at = run_page(tmp_path / "missing.duckdb", monkeypatch)
    assert not at.exception
    assert "No index found" in at.info[0].value
    assert "make run" in at.info[0].value


def test_overview_of_an_empty_index(registered_db: Path, monkeypatch) -> None:
    at = run_page(registered_db, monkeypatch)
    assert not at.exception
    assert "no studies yet" in at.info[0].value


def test_overview_with_a_state_in_the_url(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, state="Karnataka", unit="studies")
    assert not at.exception
    assert at.multiselect(key="state").value == ["IN-KA"]
    with connect_readonly(demo_db) as con:
        karnataka = con.sql("SELECT count(*) FROM study WHERE state = 'IN-KA'").fetchall()[0][0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Studies"] == format_indian(karnataka)
    assert metrics["States/UTs covered"] == "1 of 36"


def test_overview_manager_panels(demo_db: Path, monkeypatch) -> None:
    """Monday review: this month vs last, representativeness per dimension, five worst gaps."""
    at = run_page(demo_db, monkeypatch, unit="studies")
    assert not at.exception
    metrics = {m.label: m for m in at.metric}
    with connect_readonly(demo_db) as con:
        last = con.sql("SELECT max(study_date) FROM study").fetchall()[0][0]
        this_month = con.sql(
            "SELECT count(*) FROM study WHERE study_date >= date_trunc('month', $d)",
            params={"d": last},
        ).fetchall()[0][0]
    assert metrics["Studies this month"].value == format_indian(this_month)
    for title in ("State/UT", "Age band", "Urban/rural"):
        assert 0.0 <= float(metrics[title].value) <= 1.0
    # known answer for sex: 1 - JSD(base 2) of studies by sex against the 2026 projection
    with connect_readonly(demo_db) as con:
        by_sex = dict(
            con.sql("SELECT sex, count(*) FROM study WHERE sex <> 'U' GROUP BY sex").fetchall()
        )
    states = load_reference().states
    q = [states["proj2026_female"].sum(), states["proj2026_male"].sum(), 0]
    p = [by_sex.get("F", 0), by_sex.get("M", 0), by_sex.get("O", 0)]
    assert metrics["Sex"].value == format_ratio(1 - jensenshannon(p, q, base=2))
    gaps = next(m.value for m in at.markdown if m.value.startswith("1. **"))
    assert gaps.count("\n") == 4 and "expected, RR" in gaps
    assert any("gaps?" in m.value and "gaps_by=State%2FUT" in m.value for m in at.markdown)
