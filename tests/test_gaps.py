"""Gaps and the collection plan on a small index built by the real ingest: known answers.

The fixture index (two partners, 517 patients) is small enough to compute every number by hand:
reference shares come straight from data/reference/state_population.csv read with the csv
module, Wilson intervals from the textbook formula, JSD from scipy.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import math
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from scipy.spatial.distance import jensenshannon

from dashboard import gaps
from dashboard.baselines import ReferenceUnavailableError
from dashboard.config import DATA_DIR
from dashboard.coverage import coverage
from dashboard.db import connect_readonly
from dashboard.export import to_xlsx_bytes
from dashboard.filters import NO_FILTERS, Filters
from dashboard.ingest.manifest import ingest_manifest
from dashboard.ingest.writer import index_writer
from dashboard.sql import query
from tests.conftest import TODAY

HEADER = (
    "StudyInstanceUID,PatientID,site,StudyDate,Modality,PatientSex,PatientAge,state,icd10,n_images"
)
SEP, OCT, NOV, EARLY = "2026-09-10", "2026-10-10", "2026-11-30", "2025-06-15"

# (site, state, sex, [(date, patients)]) — one study per patient unless noted.
GROUPS: list[tuple[str, str, str, list[tuple[str, int]]]] = [
    ("TEST-KA-01", "Karnataka", "M", [(EARLY, 210), (SEP, 30), (OCT, 30), (NOV, 30)]),
    ("TEST-KA-01", "Karnataka", "F", [(EARLY, 60)]),
    ("TEST-OD-01", "Odisha", "M", [(EARLY, 70), (SEP, 10), (OCT, 10), (NOV, 10)]),
    ("TEST-OD-01", "Odisha", "F", [(OCT, 40)]),
    ("TEST-OD-01", "", "M", [(EARLY, 7)]),  # state unknown
    ("TEST-KA-01", "Karnataka", "U", [(EARLY, 5)]),  # sex unknown
]
# Karnataka men: 300 patients, one of them (seen first in 2025) back for a second study in
# November 2026: 301 studies, still 30 new patients that month.
KA_M, KA_F, OD_M, OD_F, UNKNOWN_STATE, UNKNOWN_SEX = 300, 60, 100, 40, 7, 5


def fixture_manifest() -> str:
    rows = [HEADER]
    uid = 0
    for site, state, sex, batches in GROUPS:
        patient = 0
        for date, count in batches:
            for _ in range(count):
                uid += 1
                patient += 1
                rows.append(
                    f"1.{uid},{site}-{state[:2]}-{sex}-{patient},{site},{date},CT,{sex},45,{state},,1"
                )
    rows.append(f"1.{uid + 1},TEST-KA-01-Ka-M-1,TEST-KA-01,{NOV},CT,M,45,Karnataka,,1")
    return "\n".join(rows) + "\n"


@pytest.fixture
def gaps_db(registered_db: Path, write_file: Callable[..., Path]) -> Path:
    """The two-partner test registry plus the studies of GROUPS, through the real ingest."""
    with index_writer(registered_db) as con:
        report = ingest_manifest(con, write_file("gaps.csv", fixture_manifest()), today=TODAY)
    assert report.quarantined == 0
    assert report.inserted == sum(n for *_, b in GROUPS for _, n in b) + 1
    return registered_db


def population_csv() -> dict[str, dict[str, float]]:
    """state_population.csv by ISO code, read without the code under test."""
    with (DATA_DIR / "reference" / "state_population.csv").open(encoding="utf-8") as handle:
        return {
            row["iso_code"]: {
                k: float(v) for k, v in row.items() if k.endswith(("_total", "_male", "_female"))
            }
            for row in csv.DictReader(handle)
        }


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return centre - half, centre + half


def row_of(frame: pl.DataFrame, **cell: str) -> dict:
    match = frame.filter(pl.all_horizontal(pl.col(k) == v for k, v in cell.items()))
    assert match.height == 1, cell
    return match.row(0, named=True)


# --------------------------------------------------------------------------- representation


def test_sex_against_the_2026_population_by_hand(gaps_db: Path) -> None:
    pop = population_csv()
    female = sum(s["proj2026_female"] for s in pop.values())
    male = sum(s["proj2026_male"] for s in pop.values())
    q_f = female / (female + male)
    n_f, n_m = KA_F + OD_F, KA_M + OD_M + UNKNOWN_STATE
    total = n_f + n_m  # 507: the 5 of unknown sex are left out
    with connect_readonly(gaps_db) as con:
        result = gaps.gaps(con, ["sex"], "population", tau=0.8, n_min=50)
    assert (result.total, result.unknown) == (507, UNKNOWN_SEX)
    assert result.missing_rate == pytest.approx(5 / 512)
    f = row_of(result.table, sex="F")
    low, high = wilson(n_f, total)
    assert f["n"] == 100
    assert f["share"] == pytest.approx(100 / 507)
    assert f["ref_share"] == pytest.approx(q_f, rel=1e-12)
    assert f["expected"] == pytest.approx(q_f * 507)
    assert f["rr"] == pytest.approx((100 / 507) / q_f)
    assert (f["rr_low"], f["rr_high"]) == (pytest.approx(low / q_f), pytest.approx(high / q_f))
    assert high / q_f < 0.8 and f["flag"] == "under"  # ≈ 0.41 (0.34–0.48)
    assert f["shortfall"] == math.ceil((q_f * 507 - 100) / (1 - q_f))
    m = row_of(result.table, sex="M")
    assert m["flag"] == "over" and m["shortfall"] == 0


def test_every_state_is_listed_and_empty_ones_are_insufficient(gaps_db: Path) -> None:
    pop = population_csv()
    everyone = sum(s["proj2026_total"] for s in pop.values())
    with connect_readonly(gaps_db) as con:
        result = gaps.gaps(con, ["state"], "population")
    assert result.table.height == 36 == len(pop)
    assert (result.total, result.unknown) == (KA_M + KA_F + UNKNOWN_SEX + OD_M + OD_F, 7)
    assert result.empty_cells == 34
    assert (result.reference_cells, result.outside_cells, result.small_cells) == (36, 0, 34)
    bihar = row_of(result.table, state="IN-BR")
    q = pop["IN-BR"]["proj2026_total"] / everyone
    assert (bihar["n"], bihar["flag"]) == (0, "insufficient")
    assert bihar["shortfall"] == math.ceil(q * 505 / (1 - q))
    assert bihar["rr_low"] == 0.0
    assert bihar["rr_high"] == pytest.approx(wilson(0, 505)[1] / q)
    karnataka = row_of(result.table, state="IN-KA")
    assert (karnataka["n"], karnataka["flag"]) == (365, "over")
    ranked = gaps.sort_gaps(result.table, "shortfall")
    assert ranked["state"][0] == "IN-UP"  # the largest population, nothing collected
    assert ranked["shortfall"].is_sorted(descending=True, nulls_last=True)
    by_rr = gaps.sort_gaps(result.table, "rr")["rr"]
    assert by_rr.is_sorted(nulls_last=True) and by_rr[-1] == result.table["rr"].max()


def test_a_state_filter_compares_with_that_states_population(gaps_db: Path) -> None:
    ka = population_csv()["IN-KA"]
    with connect_readonly(gaps_db) as con:
        result = gaps.gaps(con, ["sex"], "population", filters=Filters(states=("IN-KA",)))
    f = row_of(result.table, sex="F")
    assert f["ref_share"] == pytest.approx(
        ka["proj2026_female"] / (ka["proj2026_female"] + ka["proj2026_male"])
    )
    assert (result.total, f["n"]) == (KA_M + KA_F, KA_F)
    assert "1 selected state" in result.reference


def test_a_sex_filter_narrows_the_reference_through_a_finer_cross(gaps_db: Path) -> None:
    pop = population_csv()
    women = sum(s["proj2026_female"] for s in pop.values())
    with connect_readonly(gaps_db) as con:
        result = gaps.gaps(con, ["state"], "population", filters=Filters(sexes=("F",)))
    assert row_of(result.table, state="IN-OD")["ref_share"] == pytest.approx(
        pop["IN-OD"]["proj2026_female"] / women
    )
    assert result.total == KA_F + OD_F
    assert any("restricted to sex Female" in note for note in result.notes)


def test_age_filter_bands() -> None:
    assert gaps.bands_in_range(18, 60) == [f"{lo}-{lo + 4}" for lo in range(15, 61, 5)]
    assert gaps.bands_in_range(80, None) == ["80+"]
    assert gaps.bands_in_range(None, 4.5) == ["0-4"]


@pytest.mark.parametrize(
    ("spec", "dims", "message"),
    [
        ("population", ["area_type", "sex"], "do not cross urban/rural with sex or age"),
        ("population", ["modality"], "no population reference by modality"),
        ("burden:tuberculosis", ["state", "sex"], "known by state only"),
        ("burden:leprosy", ["state"], "no state-wise burden figures for 'leprosy'"),
        ("burden", ["state"], "name a condition"),
        ("targets:/no/such.csv", ["state"], "not found"),
        ("census", ["state"], "unknown reference 'census'"),
        ("population", ["institution"], "cannot be compared with a reference"),
        ("population", ["state", "sex", "age_band", "area_type"], "at most 3"),
    ],
)
def test_impossible_references_say_why(spec: str, dims: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        gaps.resolve_reference(spec, dims)


def test_a_filter_with_no_reference_cells_is_refused() -> None:
    with pytest.raises(ReferenceUnavailableError, match="no reference cells match"):
        gaps.resolve_reference("population", ["sex"], Filters(sexes=("U",)))


def test_targets_with_state_names_and_sex_words(write_file: Callable[..., Path]) -> None:
    path = write_file("t.csv", "state,sex,target\nKarnataka,female,2\nOrissa,Male,1\nOrissa,M,1\n")
    resolved = gaps.resolve_reference(f"targets:{path}", ["state", "sex"])
    weights = resolved.frame.group_by("state", "sex").agg(pl.col("ref_weight").sum())
    assert sorted(weights.iter_rows()) == [("IN-KA", "F", 2.0), ("IN-OD", "M", 2.0)]
    bad = write_file("bad.csv", "state,target\nAtlantis,1\n")
    with pytest.raises(ReferenceUnavailableError, match="unknown state/UT name"):
        gaps.resolve_reference(f"targets:{bad}", ["state"])


def test_burden_counts_only_the_conditions_studies(demo_db: Path) -> None:
    with connect_readonly(demo_db) as con:
        result = gaps.gaps(con, ["state"], "burden:tuberculosis")
        tb = con.sql(
            "SELECT count(DISTINCT patient_key) FROM study "
            "WHERE list_contains(conditions, 'tuberculosis') AND state IS NOT NULL"
        ).fetchall()[0][0]
    assert result.total == tb
    assert "tuberculosis" in result.reference


def test_score_is_scipys_jensen_shannon(gaps_db: Path) -> None:
    pop = population_csv()
    with connect_readonly(gaps_db) as con:
        score = gaps.gaps(con, ["state", "sex"], "population").score()
    cells = sorted(pop)
    n = {("IN-KA", "M"): KA_M, ("IN-KA", "F"): KA_F, ("IN-OD", "M"): OD_M, ("IN-OD", "F"): OD_F}
    p = [n.get((s, x), 0) for s in cells for x in ("M", "F")]
    q = [pop[s][f"proj2026_{'male' if x == 'M' else 'female'}"] for s in cells for x in ("M", "F")]
    assert score["jsd"] == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    assert score["representativeness"] == pytest.approx(1 - score["jsd"])
    assert (score["n"], score["unknown"]) == (500, UNKNOWN_STATE + UNKNOWN_SEX)


# --------------------------------------------------------------------------- accrual


def test_accrual_counts_new_patients_and_sums_to_coverage(gaps_db: Path) -> None:
    dims = ["state", "sex"]
    with connect_readonly(gaps_db) as con:
        for unit in ("patients", "studies", "images"):
            accrual = query(
                con, "accrual_by_institution", dims=dims, unit=unit, **NO_FILTERS.params()
            )
            summed = accrual.group_by("institution_id", *dims).agg(pl.col("n").sum())
            counted = coverage(con, ["institution", *dims], unit).rename(
                {"institution": "institution_id"}
            )
            joined = counted.join(
                summed, on=["institution_id", *dims], how="full", nulls_equal=True
            )
            assert (joined["n"] == joined["n_right"]).all(), unit
        patients = query(
            con, "accrual_by_institution", dims=dims, unit="patients", **NO_FILTERS.params()
        )
        studies = query(
            con, "accrual_by_institution", dims=dims, unit="studies", **NO_FILTERS.params()
        )
    nov = {"institution_id": "TEST-KA-01", "state": "IN-KA", "sex": "M", "month": "2026-11"}
    assert row_of(patients, **nov)["n"] == 30  # the returning patient is not new
    assert row_of(studies, **nov)["n"] == 31
    as_of = gaps.last_full_month(dt.date(2026, 11, 30))
    rates = gaps.monthly_rates(patients, dims, as_of)
    assert row_of(rates, institution_id="TEST-KA-01", state="IN-KA", sex="M")["monthly_rate"] == 30
    assert row_of(rates, institution_id="TEST-OD-01", state="IN-OD", sex="F")[
        "monthly_rate"
    ] == pytest.approx(40 / 3)


def test_last_full_month() -> None:
    assert gaps.last_full_month(dt.date(2026, 11, 30)) == dt.date(2026, 11, 1)
    assert gaps.last_full_month(dt.date(2026, 11, 29)) == dt.date(2026, 10, 1)
    assert gaps.last_full_month(dt.date(2026, 1, 5)) == dt.date(2025, 12, 1)
    assert gaps.last_full_month(None) is None


# --------------------------------------------------------------------------- planner

TARGETS = "state,sex,target\nKarnataka,M,0.3\nKarnataka,F,0.3\nOdisha,M,0.2\nOdisha,F,0.2\n"


def test_plan_against_targets_by_hand(gaps_db: Path, write_file: Callable[..., Path]) -> None:
    """n = (300, 60, 100, 40), q = (.3, .3, .2, .2), B = 500: n + x = q·1000 exactly, JSD 0."""
    spec = f"targets:{write_file('targets.csv', TARGETS)}"
    with connect_readonly(gaps_db) as con:
        outcome = gaps.plan_collection(con, ["state", "sex"], 500, spec)
    x = {(r["state"], r["sex"]): r["allocated"] for r in outcome.cells.iter_rows(named=True)}
    assert x == {("IN-KA", "M"): 0, ("IN-KA", "F"): 240, ("IN-OD", "M"): 100, ("IN-OD", "F"): 160}
    assert outcome.jsd_after == pytest.approx(0, abs=1e-7)
    assert outcome.as_of == dt.date(2026, 11, 1)
    forecast = {
        (r["state"], r["sex"]): r["forecast_month"] for r in outcome.cells.iter_rows(named=True)
    }
    # Odisha men: 10 a month, 100 to go → 10 months after November 2026; women: 40/3 a month,
    # 160 to go → 12 months; Karnataka women: no accrual now, never.
    assert forecast[("IN-OD", "M")] == "2027-09"
    assert forecast[("IN-OD", "F")] == "2027-11"
    assert forecast[("IN-KA", "F")] is None
    rows = outcome.rows()
    assert rows["allocated"].sum() == 500
    parts = rows.filter(pl.col("allocated") > 0).select("state", "sex", "institution", "allocated")
    assert sorted(parts.iter_rows()) == [
        ("IN-KA", "F", "TEST-KA-01", 240),
        ("IN-OD", "F", "TEST-OD-01", 160),
        ("IN-OD", "M", "TEST-OD-01", 100),
    ]
    assert row_of(rows, state="IN-KA", sex="M")["institution"] is None  # nothing to collect


def test_plan_is_the_brute_force_optimum(gaps_db: Path) -> None:
    pop = population_csv()
    female = sum(s["proj2026_female"] for s in pop.values())
    male = sum(s["proj2026_male"] for s in pop.values())
    budget = 300
    with connect_readonly(gaps_db) as con:
        outcome = gaps.plan_collection(con, ["sex"], budget)
    best = min(
        range(budget + 1),
        key=lambda xf: jensenshannon([100 + xf, 407 + budget - xf], [female, male], base=2),
    )
    assert row_of(outcome.cells, sex="F")["allocated"] == best
    assert outcome.cells["allocated"].sum() == budget
    split = outcome.partners.filter(pl.col("sex") == "F")
    # Women so far: 60 from Karnataka, 40 from Odisha → the same split, largest remainder.
    assert dict(split.select("institution", "allocated").iter_rows()) == {
        "TEST-KA-01": (6 * best + 5) // 10,
        "TEST-OD-01": best - (6 * best + 5) // 10,
    }


def test_plan_with_capacity_caps(gaps_db: Path, write_file: Callable[..., Path]) -> None:
    spec = f"targets:{write_file('targets.csv', TARGETS)}"
    capacity_path = write_file(
        "cap.csv", "institution_id,capacity\ntest-ka-01,100\nTEST-OD-01,1000\n"
    )
    with connect_readonly(gaps_db) as con:
        capacity, notes = gaps.read_capacity(capacity_path, query(con, "partner_registry"))
        outcome = gaps.plan_collection(con, ["state", "sex"], 500, spec, capacity=capacity)
    assert notes == []
    # Karnataka's 100 spread over its cells as 300 : 60 → 83.3 and 16.7 → 83 and 17.
    assert row_of(outcome.cells, state="IN-KA", sex="F")["allocated"] == 17
    assert outcome.allocated == 500
    assert outcome.jsd_after <= outcome.jsd_after_proportional + 1e-12
    per_cell = outcome.partners.group_by("state", "sex").agg(pl.col("allocated").sum())
    cells = outcome.cells.filter(pl.col("allocated") > 0).select("state", "sex", "allocated")
    assert sorted(per_cell.iter_rows()) == sorted(cells.iter_rows())


def test_capacity_file_errors(write_file: Callable[..., Path]) -> None:
    with pytest.raises(ValueError, match="needs columns institution_id, capacity"):
        gaps.read_capacity(write_file("c.csv", "site,cap\nX,1\n"))
    with pytest.raises(ValueError, match="whole number"):
        gaps.read_capacity(write_file("c.csv", "institution_id,capacity\nX,-3\n"))
    registry = pl.DataFrame({"institution_id": ["A"]})
    _, notes = gaps.read_capacity(
        write_file("c.csv", "institution_id,capacity\nA,1\nZ,2\n"), registry
    )
    assert notes == ["capacity for unregistered institution(s) ignored: Z"]


def test_reach_own_state_and_contributed_states() -> None:
    """Cells nobody has contributed to go to partners of that state, by their volume there."""
    cells = pl.DataFrame(
        {
            "state": ["A", "A", "B", "C"],
            "sex": ["M", "F", "F", "F"],
            "ref_share": [0.3, 0.3, 0.2, 0.2],
        }
    )
    contributions = pl.DataFrame(
        {"institution_id": ["P", "Q"], "state": ["A", "B"], "sex": ["M", "M"], "n": [90, 10]}
    )
    registry = pl.DataFrame({"institution_id": ["P", "Q", "R", "S"], "state": ["A", "A", "C", "D"]})
    weights = gaps.reach_weights(contributions, registry, cells, ["state", "sex"])
    got = sorted(weights.iter_rows())
    assert got == [
        # (A, M) has a contributor: P only, by its 90
        ("P", "A", "F", 45),  # P's 90 in A × (A, F)'s half of A's reference
        ("P", "A", "M", 90),
        ("Q", "A", "F", 1),  # Q is registered in A but has collected nothing there
        ("Q", "B", "F", 10),  # Q has collected from B (men): it reaches B's women too
        ("Q", "B", "M", 10),
        ("R", "C", "F", 1),  # R's own state
    ]
    # With a state filter and no state dimension, partners of other states do not reach.
    no_state = gaps.reach_weights(
        contributions.drop("state"),
        registry,
        cells.drop("state").unique("sex"),
        ["sex"],
        states=["C"],
    )
    # S (state D) has nothing in scope; P and Q have contributed, R is in the filtered state.
    assert set(no_state["institution_id"]) == {"P", "Q", "R"}


def test_plan_exports_to_xlsx_with_a_sheet_per_table(gaps_db: Path) -> None:
    with connect_readonly(gaps_db) as con:
        outcome = gaps.plan_collection(con, ["sex"], 50)
    sheets = gaps.plan_exports(outcome)
    assert list(sheets) == ["cells", "per-partner", "summary"]
    assert sheets["per-partner"]["allocated"].sum() == 50
    sheets["summary"] = sheets["summary"].vstack(pl.DataFrame({"item": ["x"], "value": ["=1+1"]}))
    book = zipfile.ZipFile(io.BytesIO(to_xlsx_bytes(sheets)))
    workbook = book.read("xl/workbook.xml").decode()
    assert all(f'name="{name}"' in workbook for name in sheets)
    strings = book.read("xl/sharedStrings.xml").decode()
    assert "&apos;=1+1" in strings or "'=1+1" in strings
    assert "<f>" not in "".join(
        book.read(n).decode() for n in book.namelist() if "worksheets/" in n
    )
    assert "Female" in strings


def test_display_tables_use_names(gaps_db: Path) -> None:
    with connect_readonly(gaps_db) as con:
        result = gaps.gaps(con, ["state", "sex"], "population")
    ranked = dataclasses.replace(result, table=gaps.sort_gaps(result.table))
    shown = gaps.gaps_display(ranked)
    assert shown.columns[:3] == ["State/UT", "Sex", "Patients"]
    assert shown.height == 72
    top = ranked.table.row(0, named=True)
    assert (top["state"], shown["State/UT"][0]) == ("IN-UP", "Uttar Pradesh")
    assert shown["Sex"][0] == {"F": "Female", "M": "Male"}[top["sex"]]
    assert shown["Flag"][0] == "insufficient"
    assert shown["Shortfall"][0] == str(top["shortfall"])


def test_every_cell_dimension_has_a_title() -> None:
    """The pages' pickers label dimensions by these titles: a new dimension needs one."""
    assert set(gaps.CELL_DIMENSIONS) <= gaps.DIM_TITLES.keys()
