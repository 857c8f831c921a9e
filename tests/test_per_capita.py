"""Known answers for the coverage pages' numbers (dashboard/rates.py).

A seven-patient index is built through the real manifest ingest; every expected value below
is worked out by hand from the manifest rows and the published reference figures (Census 2011
state totals, TB notifications 2022), typed in from data/reference with their source rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from dashboard import rates, sql
from dashboard.baselines import ReferenceUnavailableError, burden
from dashboard.coverage import coverage
from dashboard.db import connect_readonly
from dashboard.filters import NO_FILTERS, Filters
from dashboard.ingest.manifest import ingest_manifest
from dashboard.ingest.writer import index_writer
from tests.conftest import TODAY

HEADER = (
    "study_uid,patient_id,institution_id,study_date,modality,sex,age,state,area_type,"
    "diagnosis_icd10,manufacturer,n_images"
)
# P1 has two studies (Jan and Mar); P7's state is unknown; P6's scanner make is unknown.
ROWS = [
    "s1,P1,TEST-KA-01,2025-01-10,DX,M,45,Karnataka,urban,A15.0,SIEMENS,1",
    "s2,P1,TEST-KA-01,2025-03-05,CT,M,45,Karnataka,urban,normal,Siemens Healthineers,200",
    "s3,P2,TEST-KA-01,2025-01-20,DX,F,30,Karnataka,rural,A16.2,GE MEDICAL SYSTEMS,1",
    "s4,P3,TEST-KA-01,2025-02-02,DX,F,62,Karnataka,urban,normal,Wipro GE Healthcare,2",
    "s5,P4,TEST-KA-01,2025-02-15,CT,M,70,Karnataka,urban,C50.9,TOSHIBA_MEC,300",
    "s6,P5,TEST-OD-01,2025-02-10,DX,M,40,Odisha,rural,A15.0,Agfa,1",
    "s7,P6,TEST-OD-01,2025-03-01,US,F,55,Assam,rural,normal,,20",
    "s8,P7,TEST-OD-01,2025-03-12,DX,M,33,,,A15.0,Philips,1",
]

# data/reference/state_population.csv (Census 2011 PCA rows)
KA_2011, OD_2011, AS_2011 = 61_095_297, 41_974_218, 31_205_576
KA_2011_MALE, KA_2011_FEMALE = 30_966_657, 30_128_640
INDIA_2011 = 1_210_854_977  # the 36 state/UT rows add up to the census total
# data/reference/disease_burden.csv: tuberculosis notified_cases 2022
KA_TB, OD_TB, AS_TB = 80_416, 60_372, 47_822
# data/reference/age_sex_population.csv: Karnataka females by band, Census 2011
KA_F_60_64, KA_F_65_69, KA_F_70_74, KA_F_75_79, KA_F_80 = (
    1_065_422,
    796_432,
    550_706,
    274_592,
    356_808,
)


@pytest.fixture
def small_db(registered_db: Path, write_file) -> Path:
    path = write_file("small.csv", "\n".join([HEADER, *ROWS]) + "\n")
    with index_writer(registered_db) as con:
        report = ingest_manifest(con, path, today=TODAY)
    assert (report.rows_read, report.inserted, report.quarantined) == (8, 8, 0)
    return registered_db


def by_state(frame: pl.DataFrame, column: str) -> dict[str, float | None]:
    return dict(zip(frame["state"], frame[column], strict=True))


def test_per_100k_and_ratio_against_the_census(small_db: Path) -> None:
    with connect_readonly(small_db) as con:
        counts = coverage(con, ["state"], "patients")
    population = rates.population_in_filter(["state"], NO_FILTERS, source="census2011")
    table = rates.state_rates(counts, population.frame, per=rates.PER_POPULATION)
    assert table.height == 36  # every state/UT, unseen ones with n = 0
    per_100k = by_state(table, "rate")
    assert per_100k["IN-KA"] == pytest.approx(4 / KA_2011 * 100_000, rel=1e-12)
    assert per_100k["IN-OD"] == pytest.approx(1 / OD_2011 * 100_000, rel=1e-12)
    assert per_100k["IN-AS"] == pytest.approx(1 / AS_2011 * 100_000, rel=1e-12)
    assert per_100k["IN-BR"] == 0.0
    # Shares over the six patients with a known state (P7 is left out).
    ratio = by_state(table, "rr")
    assert by_state(table, "share")["IN-KA"] == pytest.approx(4 / 6)
    assert ratio["IN-KA"] == pytest.approx((4 / 6) / (KA_2011 / INDIA_2011), rel=1e-12)
    assert ratio["IN-OD"] == pytest.approx((1 / 6) / (OD_2011 / INDIA_2011), rel=1e-12)
    assert ratio["IN-BR"] == 0.0
    assert by_state(table, "flag")["IN-KA"] == "insufficient"  # n = 4 < n_min = 50


def test_per_100k_of_studies_counts_every_study(small_db: Path) -> None:
    with connect_readonly(small_db) as con:
        counts = coverage(con, ["state"], "studies")
    population = rates.population_in_filter(["state"], NO_FILTERS, source="census2011")
    table = rates.state_rates(counts, population.frame, per=rates.PER_POPULATION)
    assert by_state(table, "n")["IN-KA"] == 5
    assert by_state(table, "rate")["IN-KA"] == pytest.approx(5 / KA_2011 * 100_000)


def test_per_1000_tb_cases_and_ratio_to_the_burden_share(small_db: Path) -> None:
    three = ("IN-KA", "IN-OD", "IN-AS")
    with connect_readonly(small_db) as con:
        counts = coverage(con, ["state", "condition"], "patients", Filters(states=three))
    tb = counts.filter(pl.col("condition") == "tuberculosis").select("state", "n")
    cases = burden("tuberculosis").frame.filter(pl.col("state").is_in(three))
    table = rates.state_rates(tb, cases, per=rates.PER_CASES)
    per_1000 = by_state(table, "rate")
    assert per_1000["IN-KA"] == pytest.approx(2 / KA_TB * 1000, rel=1e-12)  # P1, P2
    assert per_1000["IN-OD"] == pytest.approx(1 / OD_TB * 1000, rel=1e-12)  # P5
    assert per_1000["IN-AS"] == 0.0
    total = KA_TB + OD_TB + AS_TB
    assert by_state(table, "ref_share")["IN-KA"] == pytest.approx(KA_TB / total)
    assert by_state(table, "rr")["IN-KA"] == pytest.approx((2 / 3) / (KA_TB / total), rel=1e-12)


def test_sex_ratio_by_state_and_overall(small_db: Path) -> None:
    with connect_readonly(small_db) as con:
        counts = coverage(con, ["state", "sex"], "patients")
    population = rates.population_in_filter(["state", "sex"], NO_FILTERS, source="census2011")
    table = rates.sex_ratio_by_state(counts, population.frame)
    karnataka = table.filter(pl.col("state") == "IN-KA").row(0, named=True)
    assert (karnataka["females"], karnataka["males"]) == (2, 2)  # P2, P3 / P1, P4
    assert karnataka["sex_ratio"] == pytest.approx(1000.0)
    assert karnataka["reference_sex_ratio"] == pytest.approx(
        KA_2011_FEMALE / KA_2011_MALE * 1000, rel=1e-12
    )
    assert karnataka["relative"] == pytest.approx(1000 / (KA_2011_FEMALE / KA_2011_MALE * 1000))
    assam = table.filter(pl.col("state") == "IN-AS").row(0, named=True)
    assert (assam["females"], assam["males"], assam["sex_ratio"]) == (1, 0, None)
    assert assam["relative"] is None
    # All patients, the one with an unknown state included: 3 females, 4 males.
    assert rates.sex_ratio(3, 4) == pytest.approx(750.0)
    assert rates.sex_ratio(3, 0) is None


def test_rate_refuses_missing_or_zero_denominators() -> None:
    assert rates.rate(5, 200_000, rates.PER_POPULATION) == pytest.approx(2.5)
    assert rates.rate(5, 0, rates.PER_POPULATION) is None
    assert rates.rate(5, None, rates.PER_POPULATION) is None
    assert rates.rate(None, 10, 1.0) is None


def test_population_follows_the_sex_and_age_filters() -> None:
    women_60_plus = Filters(states=("IN-KA",), sexes=("F",), age_min=60)
    baseline = rates.population_in_filter(["state"], women_60_plus, source="census2011")
    assert baseline.frame["ref_weight"].to_list() == pytest.approx(
        [KA_F_60_64 + KA_F_65_69 + KA_F_70_74 + KA_F_75_79 + KA_F_80]
    )
    assert "sex F" in baseline.description and "ages 60–120" in baseline.description
    # Ages 60–62 take three of the five years of the 60–64 band.
    narrow = Filters(states=("IN-KA",), sexes=("F",), age_min=60, age_max=62)
    baseline = rates.population_in_filter(["state"], narrow, source="census2011")
    assert baseline.frame["ref_weight"].to_list() == pytest.approx([KA_F_60_64 * 3 / 5])
    # Sex alone: the census female column.
    women = rates.population_in_filter(
        ["state"], Filters(states=("IN-KA",), sexes=("F", "U")), source="census2011"
    )
    assert women.frame["ref_weight"].to_list() == [KA_2011_FEMALE]


def test_population_urban_rural_filter_and_impossible_crosses() -> None:
    urban = rates.population_in_filter(
        ["state"], Filters(states=("IN-KA",), area_types=("urban",)), source="census2011"
    )
    assert urban.frame["ref_weight"].to_list() == [23_625_962]
    # No table crosses urban/rural with sex: the denominator keeps the sex, says so.
    both = rates.population_in_filter(
        ["state"],
        Filters(states=("IN-KA",), sexes=("F",), area_types=("urban",)),
        source="census2011",
    )
    assert both.frame["ref_weight"].to_list() == [KA_2011_FEMALE]
    assert "not narrowed to urban/rural" in both.description
    with pytest.raises(ReferenceUnavailableError, match="males and females only"):
        rates.population_in_filter(["state"], Filters(sexes=("O",)))
    with pytest.raises(ReferenceUnavailableError, match="unknown urban/rural"):
        rates.population_in_filter(["state"], Filters(area_types=("unknown",)))


@pytest.mark.parametrize(
    ("band", "age_min", "age_max", "expected"),
    [
        ("5-9", None, None, 1.0),
        ("5-9", 7, None, 3 / 5),
        ("5-9", None, 5, 1 / 5),
        ("5-9", 10, 20, 0.0),
        ("80+", 90, None, 10 / 20),
        ("80+", None, 79, 0.0),
        ("60-64", 60.5, 64, 4 / 5),
    ],
)
def test_age_band_fraction(band, age_min, age_max, expected) -> None:
    assert rates.age_band_fraction(band, age_min, age_max) == pytest.approx(expected)


def test_make_families_and_shares(small_db: Path) -> None:
    assert rates.make_family("SIEMENS") == "Siemens Healthineers"
    assert rates.make_family("Wipro GE Healthcare") == "GE HealthCare"
    assert rates.make_family("GE MEDICAL SYSTEMS") == "GE HealthCare"
    assert rates.make_family("TOSHIBA_MEC") == "Canon"
    assert rates.make_family("  Forus   Health ") == "Forus Health"
    assert rates.make_family("Gerätebau GmbH") == "Gerätebau GmbH"  # "GE" inside a word
    assert rates.make_family("") is None
    with connect_readonly(small_db) as con:
        counts = coverage(con, ["modality", "manufacturer"], "studies")
    shares = rates.make_shares(counts)
    dx = {r["make"]: r for r in shares.filter(pl.col("modality") == "DX").iter_rows(named=True)}
    # DX studies: SIEMENS (s1), GE ×2 (s3, s4), Agfa (s6), Philips (s8).
    assert {m: r["n"] for m, r in dx.items()} == {
        "GE HealthCare": 2,
        "Siemens Healthineers": 1,
        "Agfa": 1,
        "Philips": 1,
    }
    assert dx["GE HealthCare"]["share"] == pytest.approx(2 / 5)
    assert dx["GE HealthCare"]["spellings"] == "GE MEDICAL SYSTEMS; Wipro GE Healthcare"
    summary = {r["modality"]: r for r in rates.scanner_diversity(counts).iter_rows(named=True)}
    assert summary["DX"]["makes"] == 4 and summary["DX"]["top_make"] == "GE HealthCare"
    assert summary["DX"]["top_share"] == pytest.approx(0.4)
    assert (summary["CT"]["makes"], summary["CT"]["n"]) == (2, 2)  # Siemens, Canon
    assert (summary["US"]["n"], summary["US"]["unknown"], summary["US"]["makes"]) == (1, 1, 0)
    assert summary["US"]["top_make"] is None
    lumped = rates.make_shares(counts, max_makes=2)
    assert set(lumped["make"]) == {"GE HealthCare", rates.OTHER_MAKES}
    assert lumped.filter(pl.col("modality") == "DX")["n"].to_list() == [3, 2]


def test_monthly_accrual_counts_a_patient_in_their_first_month(small_db: Path) -> None:
    with connect_readonly(small_db) as con:
        patients = sql.query(
            con, "monthly_accrual", dims=["state"], unit="patients", **NO_FILTERS.params()
        )
        studies = sql.query(
            con, "monthly_accrual", dims=["state"], unit="studies", **NO_FILTERS.params()
        )
        images = sql.query(
            con, "monthly_accrual", dims=["institution"], unit="images", **NO_FILTERS.params()
        )
    rows = {(r["month"], r["state"]): r["n"] for r in patients.iter_rows(named=True)}
    # P1's March study is not a new patient; P7 (unknown state) arrives in March.
    assert rows == {
        ("2025-01", "IN-KA"): 2,
        ("2025-02", "IN-KA"): 2,
        ("2025-02", "IN-OD"): 1,
        ("2025-03", "IN-AS"): 1,
        ("2025-03", None): 1,
    }
    assert patients["n"].sum() == 7
    march = studies.filter((pl.col("month") == "2025-03") & (pl.col("state") == "IN-KA"))
    assert march["n"].to_list() == [1]
    assert studies["n"].sum() == 8
    by_institution = {(r["month"], r["institution"]): r["n"] for r in images.iter_rows(named=True)}
    assert by_institution[("2025-03", "TEST-KA-01")] == 200
    assert by_institution[("2025-02", "TEST-KA-01")] == 302


def js_distance(p: list[float], q: list[float]) -> float:
    """Base-2 Jensen–Shannon distance, written out from its definition."""
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

    def kl(x: list[float]) -> float:
        return sum(a * math.log2(a / c) for a, c in zip(x, m, strict=True) if a > 0)

    return math.sqrt((kl(p) + kl(q)) / 2)


def test_jsd_trend_and_change_known_answers() -> None:
    monthly = pl.DataFrame(
        {
            "month": ["2025-01", "2025-01", "2025-02", "2025-02", "2025-03"],
            "sex": ["M", "U", "F", "O", "F"],
            "n": [1, 5, 1, 7, 2],
        }
    )
    reference = pl.DataFrame({"sex": ["M", "F"], "ref_weight": [50.0, 50.0]})
    trend = rates.jsd_trend(monthly, {"sex": reference})
    assert trend["month"].to_list() == ["2025-01", "2025-02", "2025-03"]
    assert trend["n"].to_list() == [1, 2, 4]  # U and O left out
    expected = [js_distance([1, 0], [0.5, 0.5]), 0.0, js_distance([1 / 4, 3 / 4], [0.5, 0.5])]
    assert trend["jsd"].to_list() == pytest.approx(expected, abs=1e-12)
    assert expected[0] == pytest.approx(0.557_923, abs=1e-6)
    assert rates.left_out(monthly, {"sex": reference}) == {"sex": 12}
    change = rates.jsd_change(trend, months=1).row(0, named=True)
    assert (change["month"], change["earlier_month"]) == ("2025-03", "2025-02")
    assert change["change"] == pytest.approx(expected[2])
    longer = rates.jsd_change(trend, months=12).row(0, named=True)
    assert longer["earlier_month"] == "2025-01"  # the series is shorter than a year
    empty = rates.jsd_trend(monthly.filter(pl.col("sex") == "U"), {"sex": reference})
    assert empty.height == 0 and "jsd" in empty.columns


def test_scanner_models_per_modality(registered_db: Path, write_file) -> None:
    """Distinct models per modality, spelling case and spaces ignored, unknowns not counted."""
    rows = [
        "m1,P1,TEST-KA-01,2025-01-10,CT,SIEMENS,SOMATOM go.Up",
        "m2,P2,TEST-KA-01,2025-01-11,CT,SIEMENS, somatom GO.UP ",
        "m3,P3,TEST-KA-01,2025-01-12,CT,Canon,Aquilion Lightning",
        "m4,P4,TEST-KA-01,2025-01-13,DX,Agfa,DR 400",
        "m5,P5,TEST-KA-01,2025-01-14,DX,Agfa,",
        "m6,P6,TEST-KA-01,2025-01-15,US,,",
    ]
    header = "study_uid,patient_id,institution_id,study_date,modality,manufacturer,device_model"
    path = write_file("models.csv", "\n".join([header, *rows]) + "\n")
    with index_writer(registered_db) as con:
        ingest_manifest(con, path, today=TODAY)
    with connect_readonly(registered_db) as con:
        counts = coverage(con, ["modality", "device_model"], "studies")
    models = dict(rates.model_counts(counts).iter_rows())
    assert models == {"CT": 2, "DX": 1}
