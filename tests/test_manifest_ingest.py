"""Manifest ingestion into a real DuckDB file: counts, quarantine, idempotency, transactions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from dashboard import sql
from dashboard.db import connect_readonly
from dashboard.ingest.manifest import ingest_manifest, preview_manifest
from dashboard.ingest.reader import FileRefusedError
from dashboard.ingest.writer import index_writer
from dashboard.quarantine import open_quarantine
from tests.conftest import TODAY

HEADER = (
    "StudyInstanceUID,PatientID,site,StudyDate,Modality,PatientSex,PatientAge,state,icd10,n_images"
)
GOOD_ROWS = [
    "1.1,P1,TEST-KA-01,2025-04-03,CT,M,45,Karnataka,C50.9,120",
    "1.2,P1,TEST-KA-01,03/04/2025,x-ray,male,045Y,KA,A15.0,1",
    "1.3,P2,test-ka-01,20250405,MRI,F,30,Orissa,normal,40",
    "1.4,P3,TEST-OD-01,05-04-2025,MG,female,,IN-OD,,4",
]
BAD_ROWS = [
    "2.1,P4,TEST-KA-01,2025-04-03,CT,M,150,Karnataka,,1",
    "2.2,P5,TEST-KA-01,2025-04-03,CT,M,40,Orisa,,1",
    "2.3,P6,NOPE-01,31/02/2025,CT,M,40,Karnataka,,1",
]


def manifest(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def ingest(db: Path, path: Path):
    with index_writer(db) as con:
        return ingest_manifest(con, path, today=TODAY)


def study_rows(db: Path) -> list[tuple]:
    with connect_readonly(db) as con:
        return con.sql(
            "SELECT institution_id, study_uid, study_date, modality, sex, age_years, state, "
            "diagnosis_icd10, conditions, facility_type FROM study ORDER BY study_uid"
        ).fetchall()


def test_accepted_rows_are_normalised(registered_db, write_file) -> None:
    report = ingest(registered_db, write_file("april.csv", manifest(*GOOD_ROWS)))
    assert (report.rows_read, report.inserted, report.quarantined) == (4, 4, 0)
    rows = study_rows(registered_db)
    assert rows[0] == (
        "TEST-KA-01",
        "1.1",
        dt.date(2025, 4, 3),
        "CT",
        "M",
        45.0,
        "IN-KA",
        ["C50.9"],
        ["cancer_all_sites", "cancer_breast"],
        "medical_college",
    )
    assert rows[1][2:7] == (dt.date(2025, 4, 3), "DX", "M", 45.0, "IN-KA")
    assert rows[2][0] == "TEST-KA-01" and rows[2][6] == "IN-OD" and rows[2][7] == []
    assert rows[2][8] == ["normal"]
    # no facility type in the manifest: the registry's is used
    assert rows[3][5:] == (None, "IN-OD", None, None, "district_hospital")


def test_quarantine_names_row_column_value_and_suggestion(registered_db, write_file) -> None:
    report = ingest(registered_db, write_file("may.csv", manifest(*GOOD_ROWS, *BAD_ROWS)))
    assert report.rows_read == 7
    assert report.accepted == 4
    assert report.quarantined == 3
    by_row = {(q["row"], q["column"]): q for q in report.quarantine}
    assert by_row[(5, "age")]["value"] == "150"
    assert by_row[(6, "state")]["value"] == "Orisa"
    assert "did you mean Odisha" in by_row[(6, "state")]["reason"]
    assert by_row[(7, "institution_id")]["value"] == "NOPE-01"
    assert by_row[(7, "study_date")]["value"] == "31/02/2025"
    with connect_readonly(registered_db) as con:
        exported = open_quarantine(con)
    assert exported["row"].to_list() == [5, 6, 7]
    assert exported["PatientAge"].to_list() == ["150", "40", "40"]
    assert "institution_id" in exported["reasons"][2] and "study_date" in exported["reasons"][2]


def test_reingest_is_idempotent_and_updates_changed_rows(registered_db, write_file) -> None:
    path = write_file("april.csv", manifest(*GOOD_ROWS))
    ingest(registered_db, path)
    before = study_rows(registered_db)
    again = ingest(registered_db, path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 4)
    assert study_rows(registered_db) == before
    changed = GOOD_ROWS[0].replace(",45,", ",46,")
    third = ingest(registered_db, write_file("april_v2.csv", manifest(changed, *GOOD_ROWS[1:])))
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 3)
    assert study_rows(registered_db)[0][5] == 46.0
    with connect_readonly(registered_db) as con:
        assert con.sql("SELECT count(*) FROM study").fetchall() == [(4,)]


def test_duplicates_inside_a_file(registered_db, write_file) -> None:
    conflicting = GOOD_ROWS[0].replace(",CT,", ",MR,")
    report = ingest(
        registered_db,
        write_file("dup.csv", manifest(GOOD_ROWS[0], GOOD_ROWS[0], GOOD_ROWS[1], conflicting)),
    )
    assert (report.rows_read, report.inserted, report.duplicates, report.quarantined) == (
        4,
        2,
        1,
        1,
    )
    assert report.quarantine[0]["row"] == 4
    assert "first in row 1" in report.quarantine[0]["reason"]


def test_resubmitting_fixed_rows_clears_their_quarantine(registered_db, write_file) -> None:
    ingest(registered_db, write_file("may.csv", manifest(*BAD_ROWS)))
    fixed = BAD_ROWS[0].replace(",150,", ",50,")
    ingest(registered_db, write_file("may_fix.csv", manifest(fixed)))
    with connect_readonly(registered_db) as con:
        remaining = open_quarantine(con)["row"].to_list()
        uids = con.sql("SELECT DISTINCT study_uid FROM quarantine ORDER BY 1").fetchall()
    assert remaining == [2, 3]
    assert uids == [("2.2",), ("2.3",)]


def test_identifier_columns_write_nothing(registered_db, write_file) -> None:
    before = registered_db.read_bytes()
    path = write_file("names.csv", HEADER + ",PatientName\n" + GOOD_ROWS[0] + ",Asha Rao\n")
    with pytest.raises(FileRefusedError, match="PatientName"), index_writer(registered_db) as con:
        ingest_manifest(con, path, today=TODAY)
    assert registered_db.read_bytes() == before


def test_failure_mid_file_leaves_index_unchanged(registered_db, write_file, monkeypatch) -> None:
    ingest(registered_db, write_file("april.csv", manifest(*GOOD_ROWS[:2])))
    before = study_rows(registered_db)
    real_execute = sql.execute

    def failing(con: duckdb.DuckDBPyConnection, name: str, **params):
        if name == "insert_quarantine":  # after the studies were inserted
            raise OSError("disk full")
        return real_execute(con, name, **params)

    monkeypatch.setattr(sql, "execute", failing)
    with pytest.raises(OSError, match="disk full"):
        ingest(registered_db, write_file("may.csv", manifest(*GOOD_ROWS, *BAD_ROWS)))
    assert study_rows(registered_db) == before
    assert not list(registered_db.parent.glob(".*.tmp"))


def test_preview_counts_without_writing(registered_db, write_file) -> None:
    ingest(registered_db, write_file("april.csv", manifest(*GOOD_ROWS[:2])))
    before = registered_db.read_bytes()
    with connect_readonly(registered_db) as con:
        report = preview_manifest(
            con, write_file("may.csv", manifest(*GOOD_ROWS, *BAD_ROWS)), today=TODAY
        )
    assert (report.inserted, report.unchanged, report.quarantined, report.written) == (
        2,
        2,
        3,
        False,
    )
    assert registered_db.read_bytes() == before


def test_keys_stay_unique_and_patients_dense(registered_db, write_file) -> None:
    """No primary-key index guards the study table: the upsert itself must keep keys unique."""
    ingest(registered_db, write_file("a.csv", manifest(*GOOD_ROWS)))
    changed = [row.replace(",CT,", ",MR,") for row in GOOD_ROWS]
    ingest(registered_db, write_file("b.csv", manifest(*changed, *BAD_ROWS)))
    ingest(registered_db, write_file("a.csv", manifest(*GOOD_ROWS)))
    with connect_readonly(registered_db) as con:
        dupes = con.sql(
            "SELECT count(*) FROM (SELECT institution_id, study_uid FROM study "
            "GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()
        patients = con.sql("SELECT patient_key, institution_id, patient_id FROM patient ORDER BY 1")
        keys = patients.fetchall()
        linked = con.sql(
            "SELECT count(*) FROM study s JOIN patient p USING (patient_key, institution_id, "
            "patient_id)"
        ).fetchall()
    assert dupes == [(0,)]
    # P1 and P2 at TEST-KA-01, P3 at TEST-OD-01: three patients, keys 0..2
    assert [k[0] for k in keys] == [0, 1, 2]
    assert {(k[1], k[2]) for k in keys} == {
        ("TEST-KA-01", "P1"),
        ("TEST-KA-01", "P2"),
        ("TEST-OD-01", "P3"),
    }
    assert linked == [(4,)]
