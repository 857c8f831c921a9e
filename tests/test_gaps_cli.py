"""`python -m dashboard gaps | plan | score`: known answers on the fixture index, clear errors."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from scipy.spatial.distance import jensenshannon
from typer.testing import CliRunner

from dashboard.cli import app
from dashboard.contract import AGE_BANDS
from tests.test_gaps import TARGETS, gaps_db, population_csv, wilson

__all__ = ["gaps_db"]  # the fixture, imported for pytest

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exit_code not in (0, 1) or (
        result.exception and not isinstance(result.exception, SystemExit)
    ):
        raise AssertionError(f"crashed: {result.exception!r}\n{result.output}")
    return result.exit_code, result.stdout, result.stderr


def test_gaps_json_by_sex_known_answers(gaps_db: Path) -> None:
    pop = population_csv()
    female = sum(s["proj2026_female"] for s in pop.values())
    q = female / (female + sum(s["proj2026_male"] for s in pop.values()))
    code, out, err = invoke("gaps", "--by", "sex", "--format", "json", "--db", gaps_db)
    assert code == 0
    rows = {r["sex"]: r for r in json.loads(out)}
    assert set(rows) == {"F", "M"}
    f = rows["F"]
    assert {
        "sex",
        "n",
        "share",
        "ref_share",
        "rr",
        "rr_low",
        "rr_high",
        "flag",
        "shortfall",
    } <= set(f)
    low, high = wilson(100, 507)
    assert f["n"] == 100
    assert f["share"] == pytest.approx(100 / 507)
    assert f["ref_share"] == pytest.approx(q)
    assert f["expected"] == pytest.approx(q * 507)
    assert f["rr"] == pytest.approx(100 / 507 / q)
    assert f["rr_low"] == pytest.approx(low / q) and f["rr_high"] == pytest.approx(high / q)
    assert f["flag"] == "under"
    assert f["shortfall"] == math.ceil((q * 507 - 100) / (1 - q))
    assert "5 unknown left out" in err


def test_gaps_every_reference_cell_with_codes(gaps_db: Path) -> None:
    code, out, _ = invoke("gaps", "--by", "state,sex,age_band", "--format", "json", "--db", gaps_db)
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 36 * 2 * len(AGE_BANDS)
    assert {r["sex"] for r in rows} == {"F", "M"}
    assert {r["age_band"] for r in rows} == set(AGE_BANDS)
    assert all(r["state"].startswith("IN-") for r in rows)
    assert sum(r["n"] for r in rows) == 500
    assert sum(r["n"] == 0 for r in rows) == len(rows) - 4
    shortfalls = [r["shortfall"] for r in rows]
    assert shortfalls == sorted(shortfalls, reverse=True)


def test_gaps_by_rr_csv_and_studies(gaps_db: Path) -> None:
    code, out, _ = invoke(
        "gaps",
        "--by",
        "sex",
        "--unit",
        "studies",
        "--sort",
        "rr",
        "--format",
        "csv",
        "--db",
        gaps_db,
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["sex"] for r in rows] == ["F", "M"]
    assert int(rows[1]["n"]) == 408  # one man came back for a second study


def test_score_json_is_scipys_distance(gaps_db: Path) -> None:
    pop = population_csv()
    code, out, _ = invoke("score", "--by", "sex", "--format", "json", "--db", gaps_db)
    assert code == 0
    score = json.loads(out)
    assert set(score) == {"jsd", "representativeness", "n", "unknown"}
    female = sum(s["proj2026_female"] for s in pop.values())
    male = sum(s["proj2026_male"] for s in pop.values())
    assert score["jsd"] == pytest.approx(jensenshannon([100, 407], [female, male], base=2))
    assert score["representativeness"] == pytest.approx(1 - score["jsd"])
    assert (score["n"], score["unknown"]) == (507, 5)


def test_plan_json_sums_to_the_budget_and_per_cell(gaps_db: Path) -> None:
    code, out, err = invoke(
        "plan", "--budget", 1000, "--by", "state,sex", "--format", "json", "--db", gaps_db
    )
    assert code == 0
    rows = json.loads(out)
    assert {"state", "sex", "allocated", "institution", "cell_allocated"} <= set(rows[0])
    assert sum(r["allocated"] for r in rows) == 1000
    per_cell: dict[tuple[str, str], int] = defaultdict(int)
    cell_total: dict[tuple[str, str], int] = {}
    for r in rows:
        per_cell[r["state"], r["sex"]] += r["allocated"]
        cell_total[r["state"], r["sex"]] = r["cell_allocated"]
    assert per_cell == cell_total
    assert len(cell_total) == 72  # every state × sex cell, empty ones included
    # Both partners' states are over-represented; every cell that needs patients lies in a
    # state where no partner is registered or has collected: all of it is unassigned.
    assert {r["state"] for r in rows if r["allocated"]} >= {"IN-BR", "IN-UP"}
    assert all(r["institution"] is None for r in rows if r["allocated"])
    assert all(r["cell_allocated"] == 0 for r in rows if r["state"] in ("IN-KA", "IN-OD"))
    assert "1,000 allocated" in err and "JSD" in err


def test_plan_with_targets_and_capacity(gaps_db: Path, write_file: Callable[..., Path]) -> None:
    targets = write_file("targets.csv", TARGETS)
    capacity = write_file("cap.csv", "institution_id,capacity\nTEST-KA-01,100\nTEST-OD-01,1000\n")
    code, out, _ = invoke(
        "plan", "--budget", 500, "--by", "state,sex", "--reference", f"targets:{targets}",
        "--capacity", capacity, "--format", "json", "--db", gaps_db,
    )  # fmt: skip
    assert code == 0
    rows = json.loads(out)
    assert sum(r["allocated"] for r in rows) == 500
    ka_f = [r for r in rows if (r["state"], r["sex"]) == ("IN-KA", "F")]
    assert [(r["institution"], r["allocated"]) for r in ka_f] == [("TEST-KA-01", 17)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gaps", "--by", "area_type,sex"], "do not cross urban/rural"),
        (["gaps", "--by", "state,sex", "--reference", "burden:tuberculosis"], "state only"),
        (["gaps", "--by", "state", "--reference", "burden:leprosy"], "leprosy"),
        (["gaps", "--by", "state", "--reference", "targets:/no/such.csv"], "not found"),
        (["gaps", "--by", "colour"], "unknown dimension"),
        (["gaps", "--by", "state", "--unit", "hearts"], "unknown unit"),
        (["gaps", "--by", "state", "--format", "xml"], "unknown format"),
        (["score", "--by", "modality"], "no population reference by modality"),
        (["plan", "--budget", "-1", "--by", "state"], "non-negative"),
        (["plan", "--budget", "10", "--by", "age_band,area_type"], "do not cross"),
    ],
)
def test_impossible_requests_exit_1_with_a_message(
    gaps_db: Path, args: list[str], message: str
) -> None:
    code, out, err = invoke(*args, "--db", gaps_db)
    assert code == 1
    assert message in err.replace("\n", " ")
    assert "Traceback" not in out + err


def test_missing_index(tmp_path: Path) -> None:
    code, _, err = invoke("score", "--by", "state", "--db", tmp_path / "none.duckdb")
    assert code == 1 and "no index at" in err
