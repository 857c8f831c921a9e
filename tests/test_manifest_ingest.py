"""Manifest ingestion into a real DuckDB file: counts, quarantine, idempotency, transactions."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import polars as pl
import pytest

from dashboard import sql
from dashboard.db import DUCKDB_CONFIG, connect_readonly
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


def test_repeats_among_unique_keys_are_split_in_file_order(registered_db, write_file) -> None:
    """Identical repeats count once, a changed repeat of a key is quarantined (the first of its
    kind; an identical copy of it is a duplicate), and every other row is inserted in order."""
    a, b, c = GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[2]
    b_changed = b.replace(",x-ray,", ",CT,")
    d = GOOD_ROWS[3]
    rows = [a, b, a, c, b_changed, a, d, b_changed]
    report = ingest(registered_db, write_file("mixed.csv", manifest(*rows)))
    counts = (report.rows_read, report.inserted, report.duplicates, report.quarantined)
    assert counts == (8, 4, 3, 1)
    assert [(q["row"], q["column"], q["value"]) for q in report.quarantine] == [
        (5, "study_uid", "1.2")
    ]
    assert "first in row 2" in report.quarantine[0]["reason"]
    stored = study_rows(registered_db)
    assert [row[1] for row in stored] == ["1.1", "1.2", "1.3", "1.4"]
    assert stored[1][3] == "DX"  # the first row of key 1.2, not its changed repeat


def test_new_patients_are_keyed_after_the_highest_key(registered_db, write_file) -> None:
    """A second file's new patients get the next keys in (institution, patient id) order; the
    patients already known keep theirs, and an update keeps the registry's facility type."""
    ingest(registered_db, write_file("a.csv", manifest(*GOOD_ROWS)))
    later = [
        "3.1,P9,TEST-KA-01,2025-05-01,CT,M,45,Karnataka,,1",
        "3.2,P0,TEST-OD-01,2025-05-01,CT,F,45,Odisha,,1",
        "3.3,P1,TEST-KA-01,2025-05-02,CT,M,45,Karnataka,,1",
        GOOD_ROWS[3].replace(",,4", ",,5"),
    ]
    report = ingest(registered_db, write_file("b.csv", manifest(*later)))
    assert (report.inserted, report.updated, report.unchanged) == (3, 1, 0)
    with connect_readonly(registered_db) as con:
        keys = con.sql("SELECT institution_id, patient_id, patient_key FROM patient ORDER BY 3")
        studies = con.sql(
            "SELECT study_uid, patient_key, n_images, facility_type FROM study ORDER BY 1"
        ).fetchall()
        keys = keys.fetchall()
    assert keys == [
        ("TEST-KA-01", "P1", 0),
        ("TEST-KA-01", "P2", 1),
        ("TEST-OD-01", "P3", 2),
        ("TEST-KA-01", "P9", 3),
        ("TEST-OD-01", "P0", 4),
    ]
    assert studies[3] == ("1.4", 2, 5, "district_hospital")
    assert studies[4:] == [
        ("3.1", 3, 1, "medical_college"),
        ("3.2", 4, 1, "district_hospital"),
        ("3.3", 0, 1, "medical_college"),
    ]


def test_index_with_a_patient_primary_key_stays_writable(registered_db, write_file) -> None:
    """Indexes published before the patient table lost its primary-key index keep it, and
    ingest into them exactly as into a new one."""
    with duckdb.connect(str(registered_db), config=DUCKDB_CONFIG) as con:
        con.execute("DROP TABLE patient")
        con.execute(
            "CREATE TABLE patient (patient_key UINTEGER PRIMARY KEY, "
            "institution_id VARCHAR NOT NULL, patient_id VARCHAR NOT NULL)"
        )
    first = ingest(registered_db, write_file("a.csv", manifest(*GOOD_ROWS[:2])))
    second = ingest(registered_db, write_file("b.csv", manifest(*GOOD_ROWS)))
    assert (first.inserted, second.inserted, second.unchanged) == (2, 2, 2)
    with connect_readonly(registered_db) as con:
        keys = con.sql("SELECT patient_key, patient_id FROM patient ORDER BY 1").fetchall()
        constraints = con.sql(
            "SELECT count(*) FROM duckdb_constraints() "
            "WHERE table_name = 'patient' AND constraint_type = 'PRIMARY KEY'"
        ).fetchall()
    assert keys == [(0, "P1"), (1, "P2"), (2, "P3")]
    assert constraints == [(1,)]


def test_utf8_text_beyond_ascii_is_kept(registered_db, write_file) -> None:
    header = HEADER + ",district"
    row = GOOD_ROWS[0] + ",Bengaluru Urbān"
    report = ingest(registered_db, write_file("utf8.csv", f"{header}\n{row}\n".encode()))
    assert report.inserted == 1
    with connect_readonly(registered_db) as con:
        assert con.sql("SELECT district FROM study").fetchall() == [("Bengaluru Urbān",)]


@pytest.mark.parametrize("name", ["april.csv", "april.parquet"])
def test_ingest_log_records_the_file_digest(registered_db, write_file, name) -> None:
    path = write_file("april.csv", manifest(*GOOD_ROWS))
    if name.endswith(".parquet"):
        parquet = path.with_name(name)
        pl.read_csv(path, infer_schema=False).write_parquet(parquet)
        path = parquet
    report = ingest(registered_db, path)
    assert report.inserted == 4
    with connect_readonly(registered_db) as con:
        logged = con.sql("SELECT file, sha256 FROM ingest_log").fetchall()
    assert logged == [(name, hashlib.sha256(path.read_bytes()).hexdigest())]
