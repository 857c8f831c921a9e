"""The command line: JSON reports, coverage output, quarantine export, clear failures."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dashboard.cli import app
from dashboard.coverage import BITMAP_MAX_CELLS, estimated_cells
from dashboard.db import connect_readonly
from tests.conftest import REGISTRY_CSV

REPO = Path(__file__).resolve().parents[1]
MANIFEST = """study_uid,patient_id,site,study_date,modality,sex,age,state,area_type
1,P1,TEST-KA-01,2025-04-03,CT,M,45,Karnataka,urban
2,P1,TEST-KA-01,2025-04-04,MR,M,45,Karnataka,urban
3,P2,TEST-KA-01,2025-04-05,CT,F,30,Tamil Nadu,rural
4,P3,TEST-OD-01,2025-04-06,DX,F,61,Orissa,
5,P4,TEST-OD-01,2025-04-07,DX,U,,,rural
6,P5,TEST-OD-01,2025-04-07,DX,F,20,Atlantis,rural
"""

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def loaded_db(tmp_path: Path, write_file) -> Path:
    db = tmp_path / "cli.duckdb"
    code, _, _ = invoke(
        "ingest", "institutions", str(write_file("reg.csv", REGISTRY_CSV)), "--db", str(db)
    )
    assert code == 0
    code, _, _ = invoke("ingest", "manifest", str(write_file("m.csv", MANIFEST)), "--db", str(db))
    assert code == 0
    return db


def test_ingest_json_report(tmp_path: Path, write_file) -> None:
    db = tmp_path / "cli.duckdb"
    invoke("ingest", "institutions", str(write_file("reg.csv", REGISTRY_CSV)), "--db", str(db))
    code, out, _ = invoke(
        "ingest", "manifest", str(write_file("m.csv", MANIFEST)), "--db", str(db), "--json"
    )
    assert code == 0
    report = json.loads(out)
    assert {
        k: report[k]
        for k in ("rows_read", "inserted", "updated", "unchanged", "duplicates", "quarantined")
    } == {
        "rows_read": 6,
        "inserted": 5,
        "updated": 0,
        "unchanged": 0,
        "duplicates": 0,
        "quarantined": 1,
    }
    assert report["quarantine"] == [
        {
            "row": 6,
            "column": "state",
            "value": "Atlantis",
            "reason": report["quarantine"][0]["reason"],
        }
    ]
    assert "Atlantis" in report["quarantine"][0]["reason"]


def test_coverage_json_patients_by_state(loaded_db: Path) -> None:
    code, out, _ = invoke(
        "coverage",
        "--db",
        str(loaded_db),
        "--by",
        "state",
        "--unit",
        "patients",
        "--format",
        "json",
    )
    assert code == 0
    cells = {c["state"]: c for c in json.loads(out)}
    # P1 has two studies but is one patient; P4's state is unknown and outside the denominator
    assert cells["IN-KA"] == {"state": "IN-KA", "n": 1, "share": pytest.approx(1 / 3)}
    assert cells["IN-TN"]["n"] == 1 and cells["IN-OD"]["n"] == 1
    assert cells[None] == {"state": None, "n": 1, "share": None}


def test_coverage_two_dimensions_and_units(loaded_db: Path) -> None:
    _, out, _ = invoke(
        "coverage",
        "--db",
        str(loaded_db),
        "--by",
        "sex,area_type",
        "--unit",
        "studies",
        "--format",
        "json",
    )
    cells = {(c["sex"], c["area_type"]): c["n"] for c in json.loads(out)}
    assert cells == {("M", "urban"): 2, ("F", "rural"): 1, ("F", "unknown"): 1, ("U", "rural"): 1}
    known = [c for c in json.loads(out) if c["share"] is not None]
    assert [(c["sex"], c["area_type"], c["share"]) for c in known] == [
        ("F", "rural", pytest.approx(1 / 3)),
        ("M", "urban", pytest.approx(2 / 3)),
    ]


def test_coverage_csv_and_bad_dimension(loaded_db: Path) -> None:
    code, out, _ = invoke(
        "coverage",
        "--db",
        str(loaded_db),
        "--by",
        "modality",
        "--unit",
        "studies",
        "--format",
        "csv",
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["modality"], r["n"]) for r in rows] == [("CT", "2"), ("DX", "2"), ("MR", "1")]
    code, _, err = invoke("coverage", "--db", str(loaded_db), "--by", "planet")
    assert code == 1
    assert "unknown dimension(s) ['planet']" in err


def test_quarantine_export_csv(loaded_db: Path) -> None:
    code, out, _ = invoke("quarantine", "--db", str(loaded_db), "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 1
    assert rows[0]["row"] == "6" and rows[0]["state"] == "Atlantis"
    assert rows[0]["study_uid"] == "6" and "Atlantis" in rows[0]["reasons"]


def test_refused_file_exits_1_without_traceback(loaded_db: Path, write_file) -> None:
    bad = write_file("bad.csv", "study_uid,name\n1,Asha\n")
    code, _, err = invoke("ingest", "manifest", str(bad), "--db", str(loaded_db))
    assert code == 1
    assert "bad.csv: has columns that look like direct identifiers" in err
    assert "Traceback" not in err


def test_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    code, _, err = invoke("coverage", "--db", str(tmp_path / "none.duckdb"), "--by", "state")
    assert code == 1
    assert "no index at" in err


def test_python_dash_m_entry_point(loaded_db: Path) -> None:
    """The real `python -m dashboard` process, as a partner's data engineer runs it."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dashboard",
            "coverage",
            "--db",
            str(loaded_db),
            "--by",
            "sex",
            "--unit",
            "studies",
            "--format",
            "json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert {c["sex"]: c["n"] for c in json.loads(done.stdout)} == {"F": 2, "M": 2, "U": 1}


@pytest.mark.parametrize("dims", ["state", "institution,month", "state,sex,age_band", "condition"])
def test_patient_bitmaps_and_distinct_counts_agree_with_plain_sql(
    loaded_db: Path, dims: str
) -> None:
    """Both counting strategies (bitmap for few cells, DISTINCT for many) give exact patients."""
    by = dims.split(",")
    code, out, _ = invoke("coverage", "--db", str(loaded_db), "--by", dims, "--format", "json")
    assert code == 0
    got = {tuple(c[d] for d in by): c["n"] for c in json.loads(out)}
    column = {"institution": "institution_id", "month": "strftime(study_month, '%Y-%m')"}
    select = ", ".join(column.get(d, d) for d in by)
    with connect_readonly(loaded_db) as con:
        if by == ["condition"]:
            query = (
                "SELECT c, count(DISTINCT (institution_id, patient_id)) FROM study, "
                "unnest(coalesce(conditions, [NULL])) AS u(c) GROUP BY ALL"
            )
        else:
            query = (
                f"SELECT {select}, count(DISTINCT (institution_id, patient_id)) "
                "FROM study GROUP BY ALL"
            )
        expected = {tuple(r[:-1]): r[-1] for r in con.sql(query).fetchall()}
        shape = con.sql("SELECT 0, count(*), 12 FROM institution").fetchall()[0]
    assert got == expected
    cells = estimated_cells(by, {"institutions": shape[1], "months": shape[2]})
    assert (cells <= BITMAP_MAX_CELLS) == (dims != "state,sex,age_band")
