"""AppTest runs of the Gaps and Planner pages: defaults, filters, URL parameters, impossible
crosses, and agreement with the CLI's JSON on the same index."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from dashboard.cli import app
from dashboard.config import DATA_DIR
from dashboard.db import connect_readonly
from dashboard.formatting import format_indian, format_interval, format_ratio
from dashboard.reference import load_reference
from tests.apptest import run_page
from tests.test_gaps import gaps_db, population_csv, wilson

__all__ = ["gaps_db"]  # the fixture, imported for pytest

NAMES = load_reference().state_names


def cli_json(*args: str | Path) -> list | dict:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def table(at: AppTest, index: int = 0):
    return at.dataframe[index].value


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# --------------------------------------------------------------------------- Gaps


def test_gaps_default_agrees_with_the_cli(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "gaps")
    assert not at.exception
    assert at.title[0].value == "Gaps"
    assert "Synthetic demo data" in at.warning[0].value
    assert len(at.get("vega_lite_chart")) == 1
    shown = table(at)
    rows = cli_json("gaps", "--by", "state", "--format", "json", "--db", demo_db)
    assert len(shown) == len(rows) == 36
    for i in (0, 1, 35):
        row = rows[i]
        assert shown["State/UT"][i] == NAMES[row["state"]]
        assert shown["Patients"][i] == format_indian(row["n"])
        assert shown["Shortfall"][i] == format_indian(row["shortfall"])
        if row["rr"] is not None:
            interval = format_interval(row["rr_low"], row["rr_high"])
            assert shown["RR (95% CI)"][i] == f"{format_ratio(row['rr'])} ({interval})"
    score = cli_json("score", "--by", "state", "--db", demo_db)
    assert metrics(at)["Representativeness"] == format_ratio(score["representativeness"])
    assert metrics(at)["Patients counted (N)"] == format_indian(score["n"])
    assert at.get("download_button")


def test_gaps_page_table_is_the_hand_computed_one(gaps_db: Path, monkeypatch) -> None:
    pop = population_csv()
    female = sum(s["proj2026_female"] for s in pop.values())
    q = female / (female + sum(s["proj2026_male"] for s in pop.values()))
    at = run_page(gaps_db, monkeypatch, "gaps", gaps_by="Sex")
    assert not at.exception
    shown = table(at)
    f = shown[shown["Sex"] == "Female"].iloc[0]
    low, high = wilson(100, 507)
    assert f["Patients"] == "100"
    assert f["Expected"] == format_indian(q * 507)
    assert f["RR (95% CI)"] == f"{100 / 507 / q:.2f} ({low / q:.2f}–{high / q:.2f})"
    assert f["Flag"] == "under"
    assert f["Shortfall"] == str(math.ceil((q * 507 - 100) / (1 - q)))
    cli = {
        r["sex"]: r for r in cli_json("gaps", "--by", "sex", "--format", "json", "--db", gaps_db)
    }
    assert f["Shortfall"] == format_indian(cli["F"]["shortfall"])
    assert metrics(at)["Unknown, left out"] == "5"


def test_gaps_with_a_state_filter_uses_that_states_census(demo_db: Path, monkeypatch) -> None:
    at = run_page(
        demo_db,
        monkeypatch,
        "gaps",
        state="Assam",
        gaps_ref="Census 2011",
        gaps_by=["Sex", "Age band"],
        gaps_sort="Representation ratio",
    )
    assert not at.exception
    shown = table(at)
    # 2 sexes × 17 bands, empty ones included; sex "Other" is known but has no census cell: it
    # is listed (and counted in N) as not in the reference.
    listed = shown[shown["Flag"] != "not in reference"]
    assert len(listed) == 34
    assert set(shown[shown["Flag"] == "not in reference"]["Sex"]) <= {"Other"}
    empty = sum(listed["Patients"] == "0")
    note = next(c.value for c in at.caption if c.value.startswith("Every reference cell"))
    assert f"{empty} of 34 have no patients" in note
    assert metrics(at)["Empty cells"] == f"{empty} of 34"
    with (DATA_DIR / "reference" / "age_sex_population.csv").open() as handle:
        assam = [
            r for r in csv.DictReader(handle)
            if r["iso_code"] == "IN-AS" and r["age_band"] != "age_not_stated"
        ]  # fmt: skip
    total = sum(int(r["population"]) for r in assam)
    women_60 = next(
        int(r["population"]) for r in assam if (r["sex"], r["age_band"]) == ("female", "60-64")
    )
    row = shown[(shown["Sex"] == "Female") & (shown["Age band"] == "60–64")].iloc[0]
    assert row["Reference share"] == f"{women_60 / total:.2%}"
    with connect_readonly(demo_db) as con:
        n = con.sql(
            "SELECT count(DISTINCT patient_key) FROM study WHERE state = 'IN-AS' "
            "AND sex = 'F' AND age_band = '60-64'"
        ).fetchall()[0][0]
    assert row["Patients"] == format_indian(n)
    ratios = [float(v.split(" ")[0]) for v in shown["RR (95% CI)"] if v != "–"]
    assert ratios == sorted(ratios)


def test_gaps_url_parameters_set_the_view(demo_db: Path, monkeypatch) -> None:
    at = run_page(
        demo_db,
        monkeypatch,
        "gaps",
        gaps_by=["State/UT", "Sex", "Age band"],
        gaps_tau="0.9",
        unit="studies",
    )
    assert not at.exception
    assert at.multiselect(key="gaps_by").value == ["state", "sex", "age_band"]
    assert at.slider(key="gaps_tau").value == pytest.approx(0.9)
    shown = table(at)
    assert len(shown[shown["Reference share"] != "–"]) == 36 * 2 * 17
    assert set(shown[shown["Reference share"] == "–"]["Sex"]) == {"Other"}
    assert set(shown[shown["Reference share"] == "–"]["Flag"]) == {"not in reference"}
    assert list(shown.columns[:4]) == ["State/UT", "Sex", "Age band", "Studies"]
    assert any("τ = 0.9" in c.value for c in at.caption)
    shortfalls = [int(v.replace(",", "")) for v in shown["Shortfall"] if v != "–"]
    assert shortfalls == sorted(shortfalls, reverse=True)
    assert set(shown["Shortfall"][len(shortfalls) :]) == {"–"}  # no reference: listed last


def test_gaps_changing_sort_and_tau_redraws(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "gaps")
    first_by_shortfall = table(at)["State/UT"][0]
    under_at_08 = int(metrics(at)["Under-represented cells"])
    at.radio(key="gaps_sort").set_value("rr").run()
    by_rr = table(at)
    assert by_rr["RR (95% CI)"][0].startswith("0.00")  # an empty state first
    assert by_rr["State/UT"][0] != first_by_shortfall
    at.slider(key="gaps_tau").set_value(0.5).run()
    assert not at.exception
    assert int(metrics(at)["Under-represented cells"]) < under_at_08


def test_gaps_impossible_cross_shows_a_message(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "gaps", gaps_by=["Urban/rural", "Sex"])
    assert not at.exception
    assert "do not cross urban/rural with sex or age" in at.info[0].value
    assert not at.dataframe


def test_gaps_burden_reference(demo_db: Path, monkeypatch) -> None:
    at = run_page(
        demo_db, monkeypatch, "gaps", gaps_ref="Disease burden", gaps_condition="tuberculosis"
    )
    assert not at.exception
    rows = cli_json(
        "gaps", "--by", "state", "--reference", "burden:tuberculosis", "--format", "json",
        "--db", demo_db,
    )  # fmt: skip
    shown = table(at)
    assert len(shown) == len(rows)
    assert shown["State/UT"][0] == NAMES[rows[0]["state"]]
    at = run_page(
        demo_db, monkeypatch, "gaps", gaps_ref="Disease burden", gaps_by=["State/UT", "Sex"]
    )
    assert "known by state only" in at.info[0].value


def test_gaps_without_data(registered_db: Path, tmp_path: Path, monkeypatch) -> None:
    at = run_page(registered_db, monkeypatch, "gaps")
    assert not at.exception and "no studies yet" in at.info[0].value
    at = run_page(tmp_path / "none.duckdb", monkeypatch, "gaps")
    assert not at.exception and "No index found" in at.info[0].value


# --------------------------------------------------------------------------- Planner


def new_total(shown) -> int:
    return sum(int(v.replace(",", "")) for v in shown["New (this plan)"])


def test_planner_default(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "planner")
    assert not at.exception
    assert at.title[0].value == "Collection planner"
    assert "Synthetic demo data" in at.warning[0].value
    assert at.number_input(key="plan_budget").value == 20_000
    assert metrics(at)["Allocated"] == "20,000"
    cells, partners = table(at, 0), table(at, 1)
    assert new_total(cells) == 20_000
    assert new_total(partners) == 20_000
    rows = cli_json("plan", "--budget", 20000, "--by", "state", "--format", "json", "--db", demo_db)
    by_state: dict[str, int] = {}
    for r in rows:
        by_state[NAMES[r["state"]]] = r["cell_allocated"]
    for name, new in zip(cells["State/UT"], cells["New (this plan)"], strict=True):
        assert format_indian(by_state[name]) == new
    labels = [b.label for b in at.get("download_button")]
    assert {"Cells (CSV)", "Per partner (CSV)", "Plan (XLSX)"} <= set(labels)
    assert len(at.get("vega_lite_chart")) == 1


def test_planner_url_parameters_and_budget_change(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "planner", plan_budget="5000", plan_by=["Sex", "Age band"])
    assert not at.exception
    assert metrics(at)["Allocated"] == "5,000"
    cells = table(at)
    assert list(cells.columns[:2]) == ["Sex", "Age band"]
    assert new_total(cells) == 5000
    at.number_input(key="plan_budget").set_value(1234).run()
    assert metrics(at)["Allocated"] == "1,234"
    assert new_total(table(at)) == 1234


def test_planner_with_a_state_filter(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "planner", state="Assam", plan_by=["State/UT", "Sex"])
    assert not at.exception
    cells = table(at)
    assert set(cells["State/UT"]) == {"Assam"}
    assert new_total(cells) == 20_000


def test_planner_impossible_cross(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "planner", plan_by=["Age band", "Urban/rural"])
    assert not at.exception
    assert "do not cross urban/rural" in at.info[0].value


def test_planner_agrees_with_the_cli_on_the_fixture(gaps_db: Path, monkeypatch) -> None:
    at = run_page(gaps_db, monkeypatch, "planner", plan_budget="300", plan_by="Sex")
    assert not at.exception
    rows = cli_json("plan", "--budget", 300, "--by", "sex", "--format", "json", "--db", gaps_db)
    cli = {r["sex"]: r["cell_allocated"] for r in rows}
    shown = table(at)
    got = {s: int(v) for s, v in zip(shown["Sex"], shown["New (this plan)"], strict=True)}
    assert got == {{"F": "Female", "M": "Male"}[k]: v for k, v in cli.items() if v}
