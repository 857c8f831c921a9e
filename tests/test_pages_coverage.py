"""AppTest runs of the coverage pages (Geography, Demographics, Modality and disease, Trends).

Each page is opened with and without filters, with filters pre-set in the URL, with a filter
that matches nothing, without an index and on an empty one. Expected numbers are computed
here from the index file with plain SQL and the published reference figures.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from scipy.spatial.distance import jensenshannon
from streamlit.testing.v1 import AppTest

from dashboard import charts
from dashboard.db import connect_readonly
from dashboard.formatting import format_indian, format_number
from dashboard.views.widgets import clicked_state
from tests.apptest import run_page

PAGES = {
    "geography": "Geography",
    "demographics": "Demographics",
    "modality-disease": "Modality and disease",
    "trends": "Trends",
}
# data/reference/state_population.csv, MoHFW projection for 1 March 2026
KARNATAKA_2026 = 68_962_000
# data/reference/disease_burden.csv: tuberculosis notified_cases 2022, Karnataka
KARNATAKA_TB_2022 = 80_416


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def sql(db: Path, query: str) -> list[tuple]:
    with connect_readonly(db) as con:
        return con.sql(query).fetchall()


def texts(elements) -> str:
    return " ".join(e.value for e in elements)


# --------------------------------------------------------------------------- every page


# Charts, and tables behind them (each with an "About this number" note and a CSV download).
CONTENTS = {
    "geography": (2, 1),
    "demographics": (4, 4),
    "modality-disease": (4, 3),
    "trends": (3, 2),
}


@pytest.mark.parametrize(("url_path", "title"), PAGES.items())
def test_page_opens_with_charts_notes_and_downloads(
    demo_db: Path, monkeypatch, url_path: str, title: str
) -> None:
    at = run_page(demo_db, monkeypatch, url_path)
    assert not at.exception
    assert at.title[0].value == title
    assert "Synthetic demo data" in at.warning[0].value
    n_charts, n_tables = CONTENTS[url_path]
    assert len(at.get("vega_lite_chart")) == n_charts
    assert len(at.get("download_button")) == n_tables
    assert [e.label for e in at.expander] == ["About this number"] * n_tables
    assert "Akula Guru Datta" in texts(at.caption)  # footer: map and data attribution


@pytest.mark.parametrize("url_path", PAGES)
def test_page_with_a_filter_that_matches_nothing(demo_db: Path, monkeypatch, url_path) -> None:
    assert sql(demo_db, "SELECT count(*) FROM study WHERE state = 'IN-LD'") == [(0,)]
    at = run_page(demo_db, monkeypatch, url_path, state="Lakshadweep")
    assert not at.exception
    assert "No studies match the filters" in texts(at.info)
    assert len(at.get("vega_lite_chart")) == 0
    assert [b.label for b in at.button] == ["Show all states"]


@pytest.mark.parametrize("url_path", PAGES)
def test_page_without_an_index(tmp_path: Path, monkeypatch, url_path) -> None:
    at = run_page(tmp_path / "missing.duckdb", monkeypatch, url_path)
    assert not at.exception
    assert "No index found" in at.info[0].value


@pytest.mark.parametrize("url_path", PAGES)
def test_page_of_an_empty_index(registered_db: Path, monkeypatch, url_path) -> None:
    at = run_page(registered_db, monkeypatch, url_path)
    assert not at.exception
    assert "no studies yet" in texts(at.info)


# --------------------------------------------------------------------------- Geography


def test_geography_counts_by_state(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "geography")
    rows = sql(
        demo_db,
        "SELECT state, count(DISTINCT patient_key) FROM study WHERE state IS NOT NULL "
        "GROUP BY state",
    )
    shown = metrics(at)
    assert shown["Patients with a known state"] == format_indian(sum(n for _, n in rows))
    assert shown["States/UTs with data"] == f"{len(rows)} of 36"
    assert at.radio(key="geo_metric").value == "count"
    unknown = sql(demo_db, "SELECT count(DISTINCT patient_key) FROM study WHERE state IS NULL")[0][
        0
    ]
    assert f"{format_indian(unknown)} patients with an unknown state" in texts(at.caption)


def test_geography_per_100k_for_karnataka_from_the_url(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "geography", state="Karnataka")
    assert at.multiselect(key="state").value == ["IN-KA"]
    assert "Showing **Karnataka** only" in texts(at.info)
    at.radio(key="geo_metric").set_value("per_100k").run()
    assert not at.exception
    patients = sql(demo_db, "SELECT count(DISTINCT patient_key) FROM study WHERE state = 'IN-KA'")[
        0
    ][0]
    shown = metrics(at)
    assert shown["States/UTs with data"] == "1 of 36"
    assert shown["All states shown, per 100,000"] == format_number(
        patients / KARNATAKA_2026 * 100_000, 2
    )
    assert "Lowest (with data)" not in shown  # one state: nothing to rank
    assert len(at.get("vega_lite_chart")) == 2


def test_geography_per_1000_tb_cases_of_studies(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "geography", state="Karnataka", unit="studies")
    at.radio(key="geo_metric").set_value("per_cases").run()
    assert not at.exception
    assert at.selectbox(key="geo_condition").value == "tuberculosis"
    studies = sql(
        demo_db,
        "SELECT count(*) FROM study WHERE state = 'IN-KA' "
        "AND list_contains(conditions, 'tuberculosis')",
    )[0][0]
    assert studies > 0
    assert metrics(at)["All states shown, per 1,000 cases"] == format_number(
        studies / KARNATAKA_TB_2022 * 1000, 2
    )


def test_geography_ratio_and_census_source(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "geography")
    at.radio(key="geo_metric").set_value("ratio").run()
    at.radio(key="geo_population").set_value("census2011").run()
    assert not at.exception
    # The lowest ratio (share ÷ population share) is the lowest patients per person.
    per_person = sql(
        demo_db,
        "SELECT r.name, count(DISTINCT s.patient_key) / r.census2011_total AS rate "
        "FROM study s JOIN ref_state r ON r.iso_code = s.state GROUP BY r.name, "
        "r.census2011_total ORDER BY rate, r.name LIMIT 1",
    )
    assert metrics(at)["Lowest (with data)"] == per_person[0][0]
    about = at.expander[0]
    assert "Census of India 2011" in texts(about.markdown)


def test_geography_without_a_population_for_the_chosen_sex(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "geography", sex="Other")
    at.radio(key="geo_metric").set_value("per_100k").run()
    assert not at.exception
    assert "males and females only" in texts(at.info)
    assert "Showing counts instead" in texts(at.info)


def test_show_all_states_clears_the_state_filter(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "geography", state="Assam")
    at.button(key="geo_show_all").click().run()
    assert not at.exception
    assert at.multiselect(key="state").value == []
    assert "state" not in at.query_params


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ([{"iso_code": "IN-AS"}], "IN-AS"),
        ({"iso_code": ["IN-KA"]}, "IN-KA"),
        ({"iso_code": "IN-OD"}, "IN-OD"),
        ([], None),
        ({}, None),
        (None, None),
    ],
)
def test_clicked_state_reads_the_selection(selection, expected) -> None:
    assert clicked_state(selection) == expected


# --------------------------------------------------------------------------- Demographics


def test_demographics_sex_ratio_against_the_2026_projection(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "demographics")
    assert not at.exception
    per_state = sql(
        demo_db,
        "SELECT sex, count(DISTINCT patient_key) FROM study WHERE sex IN ('M', 'F') "
        "GROUP BY state, sex",
    )
    females = sum(n for s, n in per_state if s == "F")
    males = sum(n for s, n in per_state if s == "M")
    female_pop, male_pop = sql(
        demo_db, "SELECT sum(proj2026_female), sum(proj2026_male) FROM ref_state"
    )[0]
    shown = metrics(at)
    assert shown["This dataset (patients)"] == format_number(females / males * 1000, 0)
    assert shown["Population 2026"] == format_number(female_pop / male_pop * 1000, 0)
    assert len(at.get("vega_lite_chart")) == 4  # pyramid, urban/rural, facility, sex ratio


def test_demographics_for_assam_in_studies_from_the_url(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "demographics", state="Assam", unit="studies")
    assert not at.exception
    at.radio(key="demo_population").set_value("census2011").run()
    females, males = sql(
        demo_db,
        "SELECT count(*) FILTER (WHERE sex = 'F'), count(*) FILTER (WHERE sex = 'M') "
        "FROM study WHERE state = 'IN-AS'",
    )[0]
    shown = metrics(at)
    assert shown["This dataset (studies)"] == format_number(females / males * 1000, 0)
    assert shown["Census 2011"] == format_number(15_266_133 / 15_939_443 * 1000, 0)


def test_demographics_with_one_sex_explains_the_missing_ratio(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "demographics", sex="Female")
    assert not at.exception
    assert "needs both males and females" in texts(at.info)
    assert len(at.get("vega_lite_chart")) == 3  # the pyramid of women, urban/rural, facility


# --------------------------------------------------------------------------- Modality and disease


def test_modality_disease_tb_coverage_against_notifications(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "modality-disease")
    assert not at.exception
    assert at.selectbox(key="md_condition").value == "tuberculosis"
    patients = sql(
        demo_db,
        "SELECT count(DISTINCT patient_key) FROM study "
        "WHERE state IS NOT NULL AND list_contains(conditions, 'tuberculosis') GROUP BY state",
    )
    cases = sql(
        demo_db,
        "SELECT sum(value) FROM ref_disease_burden WHERE condition = 'tuberculosis' "
        "AND metric = 'notified_cases' AND year = '2022' AND iso_code <> 'IN'",
    )[0][0]
    n = sum(row[0] for row in patients)
    assert (
        f"All states shown: {format_number(n / cases * 1000, 2)} patients per 1,000 cases "
        f"({format_indian(n)} patients, {format_indian(cases)} cases)"
    ) in texts(at.caption)
    table = at.dataframe[0].value
    modalities = {row[0] for row in sql(demo_db, "SELECT DISTINCT modality FROM study")}
    assert set(table["modality"]) == modalities
    dx = table[table["modality"] == "DX"].iloc[0]
    # The demo's DX fleet: six makes under seven header spellings (two of them GE).
    assert 1 <= dx["makes"] <= 6


def test_modality_disease_with_dx_in_karnataka_from_the_url(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "modality-disease", state="Karnataka", modality="DX")
    assert not at.exception
    assert at.multiselect(key="modality").value == ["DX"]
    n = sql(
        demo_db,
        "SELECT count(DISTINCT patient_key) FROM study WHERE state = 'IN-KA' "
        "AND modality = 'DX' AND list_contains(conditions, 'tuberculosis')",
    )[0][0]
    assert f"{format_indian(n)} patients, {format_indian(KARNATAKA_TB_2022)} cases" in texts(
        at.caption
    )
    table = at.dataframe[0].value
    assert list(table["modality"]) == ["DX"]
    at.selectbox(key="md_condition").set_value("cancer_all_sites").run()
    assert not at.exception


# --------------------------------------------------------------------------- Trends


def test_trends_distance_from_the_population_in_studies(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "trends", unit="studies")
    assert not at.exception
    counts = dict(
        sql(demo_db, "SELECT sex, count(*) FROM study WHERE sex IN ('M', 'F') GROUP BY sex")
    )
    female_pop, male_pop = sql(
        demo_db, "SELECT sum(proj2026_female), sum(proj2026_male) FROM ref_state"
    )[0]
    expected = jensenshannon([counts["M"], counts["F"]], [male_pop, female_pop], base=2)
    shown = metrics(at)
    assert shown["Sex: distance now"] == f"{expected:.3f}"
    assert set(shown) == {
        "State/UT: distance now",
        "Sex: distance now",
        "Age band: distance now",
        "Urban/rural: distance now",
    }
    assert len(at.get("vega_lite_chart")) == 3  # accrual by institution, by modality; JSD
    assert at.tabs[0].label == "By institution"


def test_trends_for_assam_and_women_from_the_url(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "trends", state="Assam", sex="Female")
    assert not at.exception
    shown = metrics(at)
    # One state and one sex against the same narrowing of the population: no distance.
    assert shown["State/UT: distance now"] == "0.000"
    assert shown["Sex: distance now"] == "0.000"
    at.toggle(key="trends_cumulative").set_value(True).run()
    assert not at.exception


def test_series_over_time_chart() -> None:
    frame = pl.DataFrame(
        {
            "month": ["2025-01", "2025-02", "2025-01", "2025-02"],
            "dimension": ["Sex", "Sex", "State/UT", "State/UT"],
            "jsd": [0.1, None, 0.5, 0.4],
        }
    )
    spec = charts.series_over_time(
        frame,
        value_col="jsd",
        series_col="dimension",
        value_title="JS distance",
        series_title="Dimension",
        series_order=["State/UT", "Sex"],
    ).to_dict()
    values = spec["data"]["values"]
    assert [v["value_label"] for v in values] == ["0.10", "–", "0.50", "0.40"]
    assert values[0]["month"].startswith("2025-01-01")
    line, points = spec["layer"]
    assert line["encoding"]["color"]["scale"]["domain"] == ["State/UT", "Sex"]
    assert line["encoding"]["color"]["scale"]["range"] == list(charts.OKABE_ITO[:2])
    assert {"filter": "isValid(datum.value)"} in line["transform"]
    assert [t["title"] for t in points["encoding"]["tooltip"]] == [
        "Dimension",
        "Month",
        "JS distance",
    ]
