"""`ingest dicom`, `scan` and `ingest package` end to end, on real DICOM files and real indexes.

Known answers come from the headers the tests write and are checked with plain SQL on the
published DuckDB file. The PHI tests plant distinctive identifying values and then search the
whole index (every column of every table, and the raw bytes of the checkpointed file), the
command's stdout and stderr, the JSON report and the package for them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pydicom
import pytest
from dicom_factory import make_dataset, uid, write_dicom
from typer.testing import CliRunner

from dashboard import sql
from dashboard.cli import app
from dashboard.db import connect_readonly
from dashboard.ingest.dicom import NO_STUDY_UID, NOT_DICOM, SKIP_REASONS, TRUNCATED, UNREADABLE
from dashboard.ingest.dicom_index import PHI_SCHEMA, ROW_SCHEMA
from dashboard.ingest.institutions import ingest_institutions
from dashboard.ingest.package import MANIFEST_FILE, PHI_FILE, STUDIES_FILE, file_sha256
from dashboard.ingest.writer import index_writer
from dashboard.phi import TAG_LABELS, phi_by_institution, phi_totals
from tests.conftest import REGISTRY_CSV

REPO = Path(__file__).resolve().parents[1]
PYDICOM_DATA = Path(pydicom.data.__file__).parent
runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: every byte its workers write is captured too."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "dashboard", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def new_registered_db(path: Path) -> Path:
    registry = path.with_suffix(".csv")
    registry.write_text(REGISTRY_CSV, encoding="utf-8")
    with index_writer(path) as con:
        ingest_institutions(con, registry)
    return path


def table(db: Path, query: str) -> list[dict[str, Any]]:
    with connect_readonly(db) as con:
        return con.sql(query).pl().to_dicts()


# --- a small tree with known answers ----------------------------------------------------------

A, B, C = "1.2.826.0.1.3680043.10.1234.901", "1.2.826.0.1.3680043.10.1234.902", uid("c")


def known_tree(root: Path) -> None:
    """Study A: CT, 2 series (3 + 2 files, one implicit VR without preamble), age 045Y.
    Study B: MR, 1 series of 2, age from birth date (44 the day before the birthday).
    Study C: SR (not a contract modality: quarantined). Then three files that are skipped.
    """
    a1, a2 = uid("a1"), uid("a2")
    common_a = {
        "PatientID": "PSEUDO-A",
        "PatientSex": "M",
        "PatientAge": "045Y",
        "BodyPartExamined": "CHEST",
        "Manufacturer": "GE MEDICAL SYSTEMS",
        "ManufacturerModelName": "Revolution EVO",
        "StudyDate": "20250403",
    }
    for i in range(3):
        write_dicom(root / "a" / "s1" / f"{i}.dcm", make_dataset(A, series_uid=a1, **common_a))
    write_dicom(root / "a" / "s2" / "0.dcm", make_dataset(A, series_uid=a2, **common_a))
    write_dicom(
        root / "a" / "s2" / "1",
        make_dataset(A, series_uid=a2, **common_a),
        encoding="implicit",
        preamble=False,
    )
    b1 = uid("b1")
    for i in range(2):
        ds = make_dataset(
            B,
            series_uid=b1,
            modality="MR",
            PatientID="PSEUDO-B",
            PatientBirthDate="19800615",
            StudyDate="20250614",
            BodyPartExamined="knee",
        )
        write_dicom(root / "b" / f"{i}.dcm", ds)
    write_dicom(root / "c.dcm", make_dataset(C, modality="SR", PatientID="PSEUDO-C"))
    (root / "notes.txt").write_text("not an image", encoding="utf-8")
    write_dicom(root / "no_uid.dcm", make_dataset(None))
    cut = write_dicom(root / "cut.dcm", make_dataset(uid(), pixels=True)).read_bytes()
    (root / "cut.dcm").write_bytes(cut[:-100])


STUDY_QUERY = """
SELECT institution_id, study_uid, patient_id, study_date, modality, sex, age_years, age_band,
       body_part, manufacturer, device_model, n_images, facility_type, state, area_type,
       diagnosis_icd10, source
FROM study ORDER BY study_uid
"""
EXPECTED_A = {
    "institution_id": "TEST-KA-01",
    "study_uid": A,
    "patient_id": "PSEUDO-A",
    "study_date": dt.date(2025, 4, 3),
    "modality": "CT",
    "sex": "M",
    "age_years": 45.0,
    "age_band": "45-49",
    "body_part": "CHEST",
    "manufacturer": "GE MEDICAL SYSTEMS",
    "device_model": "Revolution EVO",
    "n_images": 5,
    "facility_type": "medical_college",
    "state": None,
    "area_type": "unknown",
    "diagnosis_icd10": None,
    "source": "dicom",
}
EXPECTED_B = EXPECTED_A | {
    "study_uid": B,
    "patient_id": "PSEUDO-B",
    "study_date": dt.date(2025, 6, 14),
    "modality": "MR",
    "sex": "F",
    "age_years": 44.0,
    "age_band": "40-44",
    "body_part": "KNEE",
    "manufacturer": None,
    "device_model": None,
    "n_images": 2,
}


def test_ingest_dicom_json_report_and_index_rows(tmp_path: Path, registered_db: Path) -> None:
    known_tree(tmp_path / "tree")
    code, out, err = invoke(
        "ingest", "dicom", tmp_path / "tree", "--db", registered_db,
        "--institution", "test-ka-01", "--workers", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert err == ""  # no progress bar with --json
    report = json.loads(out)
    assert {k: report[k] for k in ("files_seen", "files_indexed", "files_skipped")} == {
        "files_seen": 11,
        "files_indexed": 8,
        "files_skipped": 3,
    }
    skipped = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert skipped == {"notes.txt": NOT_DICOM, "no_uid.dcm": NO_STUDY_UID, "cut.dcm": TRUNCATED}
    assert (report["studies"], report["series"], report["instances"]) == (3, 4, 8)
    assert report["phi_flagged_files"] == 0
    assert (report["rows_read"], report["inserted"], report["quarantined"]) == (3, 2, 1)
    assert [(q["column"], q["value"]) for q in report["quarantine"]] == [("modality", "SR")]
    assert report["written"] is True
    assert report["file"] == f"dicom:{(tmp_path / 'tree').resolve()}"
    assert table(registered_db, STUDY_QUERY) == [EXPECTED_A, EXPECTED_B]
    log = table(registered_db, "SELECT kind, rows_read, inserted, quarantined FROM ingest_log")
    assert log == [{"kind": "dicom", "rows_read": 3, "inserted": 2, "quarantined": 1}]
    quarantined = table(registered_db, "SELECT study_uid, original FROM quarantine")
    assert [q["study_uid"] for q in quarantined] == [C]
    assert quarantined[0]["original"]["modality"] == "SR"


def test_rescanning_the_same_tree_is_idempotent(tmp_path: Path, registered_db: Path) -> None:
    known_tree(tmp_path / "tree")
    args = ("ingest", "dicom", tmp_path / "tree", "--db", registered_db, "--institution",
            "TEST-KA-01", "--json")  # fmt: skip
    first = json.loads(invoke(*args, "--workers", "1")[1])
    before = table(registered_db, "SELECT * FROM study ORDER BY study_uid")
    second = json.loads(invoke(*args, "--workers", "2")[1])
    after = table(registered_db, "SELECT * FROM study ORDER BY study_uid")
    assert (first["inserted"], first["unchanged"]) == (2, 0)
    assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 0, 2)
    assert second["quarantined"] == 1
    assert after == before  # unchanged rows are not even rewritten (same ingested_at)
    open_rows = table(registered_db, "SELECT count(*) AS n FROM quarantine")
    assert open_rows == [{"n": 1}]  # the second scan's quarantine replaced the first's
    files = {k: second[k] for k in ("files_seen", "files_indexed", "files_skipped")}
    assert files == {k: first[k] for k in files}


def test_dicom_rows_are_the_rows_a_manifest_gives(tmp_path: Path, registered_db: Path) -> None:
    """The same values typed into a manifest by hand give the same index rows and quarantine."""
    known_tree(tmp_path / "tree")
    assert invoke("ingest", "dicom", tmp_path / "tree", "--db", registered_db,
                  "--institution", "TEST-KA-01")[0] == 0  # fmt: skip
    manifest = tmp_path / "same.csv"
    manifest.write_text(
        "study_uid,patient_id,site,study_date,modality,sex,age,body_part,manufacturer,"
        "device_model,n_images\n"
        f"{A},PSEUDO-A,TEST-KA-01,20250403,CT,M,045Y,CHEST,GE MEDICAL SYSTEMS,Revolution EVO,5\n"
        f"{B},PSEUDO-B,TEST-KA-01,20250614,MR,F,44,knee,,,2\n"
        f"{C},PSEUDO-C,TEST-KA-01,20250403,SR,F,,,,,1\n",
        encoding="utf-8",
    )
    other = new_registered_db(tmp_path / "manifest.duckdb")
    assert invoke("ingest", "manifest", manifest, "--db", other)[0] == 0
    # patient_key is each index's own dense number; ingested_at differs by design
    query = "SELECT * EXCLUDE (source, ingested_at, patient_key) FROM study ORDER BY study_uid"
    assert table(registered_db, query) == table(other, query)
    reasons = 'SELECT study_uid, "column", value, reason FROM quarantine ORDER BY study_uid'
    assert table(registered_db, reasons) == table(other, reasons)


def test_manifest_supplies_institution_and_location(tmp_path: Path, registered_db: Path) -> None:
    known_tree(tmp_path / "tree")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "StudyInstanceUID,site,state,district,urban_rural,diagnosis\n"
        f"{A},TEST-OD-01,Orissa,Cuttack,rural,A15.0\n"
        f"{B},test-ka-01,KA,,urban,normal\n"
        f"{C},TEST-KA-01,,,,\n",
        encoding="utf-8",
    )
    code, out, err = invoke("ingest", "dicom", tmp_path / "tree", "--db", registered_db,
                            "--manifest", manifest, "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["inserted"] == 2
    rows = table(
        registered_db,
        "SELECT study_uid, institution_id, state, district, area_type, diagnosis_icd10, "
        "facility_type FROM study ORDER BY study_uid",
    )
    assert rows == [
        {"study_uid": A, "institution_id": "TEST-OD-01", "state": "IN-OD", "district": "Cuttack",
         "area_type": "rural", "diagnosis_icd10": ["A15.0"], "facility_type": "district_hospital"},
        {"study_uid": B, "institution_id": "TEST-KA-01", "state": "IN-KA", "district": None,
         "area_type": "urban", "diagnosis_icd10": [], "facility_type": "medical_college"},
    ]  # fmt: skip


def test_institution_is_required_and_must_be_registered(
    tmp_path: Path, registered_db: Path
) -> None:
    known_tree(tmp_path / "tree")
    before = registered_db.read_bytes()
    code, _, err = invoke("ingest", "dicom", tmp_path / "tree", "--db", registered_db)
    assert code == 1 and "--institution is required" in " ".join(err.split())
    code, _, err = invoke("ingest", "dicom", tmp_path / "tree", "--db", registered_db,
                          "--institution", "TEST-XX-99")  # fmt: skip
    assert code == 1 and "'TEST-XX-99' is not in the registry" in " ".join(err.split())
    partial = tmp_path / "partial.csv"
    partial.write_text(f"study_uid,institution_id\n{A},TEST-KA-01\n", encoding="utf-8")
    code, _, err = invoke("ingest", "dicom", tmp_path / "tree", "--db", registered_db,
                          "--manifest", partial)  # fmt: skip
    assert code == 1
    assert "2 scanned studies have no institution_id in the manifest" in " ".join(err.split())
    no_column = tmp_path / "no_column.csv"
    no_column.write_text(f"study_uid,state\n{A},KA\n", encoding="utf-8")
    code, _, err = invoke("ingest", "dicom", tmp_path / "tree", "--db", registered_db,
                          "--manifest", no_column)  # fmt: skip
    assert code == 1 and "--institution is required" in " ".join(err.split())
    assert registered_db.read_bytes() == before  # nothing written by any of them


def test_manifest_with_identifier_columns_is_refused(tmp_path: Path, registered_db: Path) -> None:
    known_tree(tmp_path / "tree")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"study_uid,patient_name\n{A},Somebody\n", encoding="utf-8")
    code, _, err = invoke("ingest", "dicom", tmp_path / "tree", "--db", registered_db,
                          "--manifest", manifest, "--institution", "TEST-KA-01")  # fmt: skip
    assert code == 1
    assert "look like direct identifiers" in " ".join(err.split())
    assert "Somebody" not in err


def test_progress_bar_shows_files_per_second_on_stderr(tmp_path: Path, registered_db: Path) -> None:
    known_tree(tmp_path / "tree")
    code, out, err = invoke("ingest", "dicom", tmp_path / "tree", "--db", registered_db,
                            "--institution", "TEST-KA-01", "--workers", "1")  # fmt: skip
    assert code == 0
    assert "11/11" in err and "files/s" in err and "ETA" in err
    assert "files/s" not in out
    assert "11 files: 8 indexed, 3 skipped; 3 studies, 4 series, 8 instances" in out
    assert "2 inserted" in out


# --- PHI: flagged by keyword, stored nowhere --------------------------------------------------

PLANTED = {
    "PatientName": "ZZQPHI^RAMESHWAR^KUMARAN",
    "PatientAddress": "ZZQPHI 14 Mahatma Gandhi Road, Bengaluru 560001",
    "PatientTelephoneNumbers": "+91-98450ZZQ77",
    "OtherPatientIDs": "ZZQPHI-MRN-55107",
    "PatientBirthName": "ZZQPHI-BIRTHNAME",
}
UTF8_NAME = "ZZQPHI^रामेश्वर"
NEEDLES = ("ZZQPHI", "RAMESHWAR", "KUMARAN", "Mahatma Gandhi", "560001", "98450ZZQ77",
           "MRN-55107", "BIRTHNAME", "रामेश्वर")  # fmt: skip


def plant_phi_tree(root: Path) -> dict[tuple[str, str], dict[str, int]]:
    """Studies at two institutions carrying the planted values; returns the expected audit:
    (institution, study_uid) → {keyword: files}."""
    expected: dict[tuple[str, str], dict[str, int]] = {}
    # KA study 1: every element in one file, a name in two more (one implicit VR, no preamble)
    s1, series = uid("phi-1"), uid("phi-1s")
    ds = make_dataset(s1, series_uid=series, BurnedInAnnotation="YES", **PLANTED)
    write_dicom(root / "ka" / "s1" / "0.dcm", ds)
    for i in (1, 2):
        ds = make_dataset(s1, series_uid=series, PatientName=PLANTED["PatientName"])
        write_dicom(root / "ka" / "s1" / f"{i}.dcm", ds, encoding="implicit", preamble=i == 1)
    write_dicom(root / "ka" / "s1" / "3.dcm", make_dataset(s1, series_uid=series))  # clean
    expected[("TEST-KA-01", s1)] = {t: 1 for t in PLANTED} | {
        "PatientName": 3,
        "BurnedInAnnotation": 1,
    }
    # KA study 2: UTF-8 Devanagari name; quarantined (SR), its audit still recorded
    s2 = uid("phi-2")
    ds = make_dataset(s2, modality="SR", PatientName=UTF8_NAME, SpecificCharacterSet="ISO_IR 192")
    write_dicom(root / "ka" / "s2.dcm", ds)
    expected[("TEST-KA-01", s2)] = {"PatientName": 1}
    # OD study: telephone and burned-in annotation in a big-endian file
    s3 = uid("phi-3")
    ds = make_dataset(
        s3,
        modality="DX",
        BurnedInAnnotation="YES",
        PatientTelephoneNumbers=PLANTED["PatientTelephoneNumbers"],
    )
    write_dicom(root / "od" / "s3.dcm", ds, encoding="big")
    expected[("TEST-OD-01", s3)] = {"BurnedInAnnotation": 1, "PatientTelephoneNumbers": 1}
    # a clean study, and a truncated file carrying a name (skipped, never read into anything)
    write_dicom(root / "od" / "clean.dcm", make_dataset(uid("phi-4"), modality="CR"))
    cut = write_dicom(root / "cut.dcm", make_dataset(uid("phi-5"), pixels=True, **PLANTED))
    cut.write_bytes(cut.read_bytes()[:-50])
    return expected


def phi_manifest(root: Path, expected: dict[tuple[str, str], dict[str, int]]) -> Path:
    lines = ["study_uid,institution_id,state"]
    lines += [f"{study},{inst},{inst[5:7]}" for inst, study in expected]
    lines.append(f"{uid('phi-4')},TEST-OD-01,OD")
    path = root / "phi_manifest.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_no_planted_value(text: str, where: str) -> None:
    found = [n for n in NEEDLES if n in text]
    assert not found, f"planted identifying value(s) {found} found in {where}"


def every_text_in_index(db: Path) -> str:
    """Every value of every column of every table (lists, maps, structs as text), and names."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        texts = [repr(con.sql("SELECT * FROM duckdb_columns()").fetchall())]
        tables = con.sql(
            "SELECT database_name, schema_name, table_name FROM duckdb_tables()"
        ).fetchall()
        assert {t[2] for t in tables} >= {"study", "quarantine", "ingest_log", "phi_flag"}
        for database, schema, name in tables:
            columns = [
                c[0]
                for c in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE database_name = ? "
                    "AND schema_name = ? AND table_name = ?",
                    [database, schema, name],
                ).fetchall()
            ]
            select = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in columns)
            rows = con.sql(f'SELECT {select} FROM "{database}"."{schema}"."{name}"').fetchall()
            texts.append(f"{name}: " + repr(rows))
        return "\n".join(texts)
    finally:
        con.close()


def raw_index_bytes(db: Path) -> bytes:
    with duckdb.connect(str(db)) as con:
        con.execute("CHECKPOINT")
    assert not db.with_name(db.name + ".wal").exists()
    return db.read_bytes()


def test_phi_values_are_stored_nowhere(tmp_path: Path, registered_db: Path) -> None:
    expected = plant_phi_tree(tmp_path / "tree")
    manifest = phi_manifest(tmp_path, expected)
    runs = [
        run_cli("ingest", "dicom", tmp_path / "tree", "--db", registered_db, "--manifest",
                manifest, "--workers", "2", "--json"),
        run_cli("ingest", "dicom", tmp_path / "tree", "--db", registered_db, "--manifest",
                manifest, "--workers", "1"),
        run_cli("scan", tmp_path / "tree", "--out", tmp_path / "package", "--manifest",
                manifest, "--workers", "2"),
        run_cli("ingest", "package", tmp_path / "package", "--db", registered_db, "--json"),
    ]  # fmt: skip
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert_no_planted_value(run.stdout, f"stdout of {run.args[3:5]}")
        assert_no_planted_value(run.stderr, f"stderr of {run.args[3:5]}")
    report = json.loads(runs[0].stdout)
    assert report["phi_flagged_files"] == 5
    assert report["phi_tag_files"] == {
        "BurnedInAnnotation": 2, "OtherPatientIDs": 1, "PatientAddress": 1,
        "PatientBirthName": 1, "PatientName": 4, "PatientTelephoneNumbers": 2,
    }  # fmt: skip
    assert {Path(s["path"]).name: s["reason"] for s in report["skipped"]} == {"cut.dcm": TRUNCATED}
    assert "5 files carry identifying header values" in runs[1].stdout
    # the index: every table and column, then the raw bytes of the checkpointed file
    index_text = every_text_in_index(registered_db)
    assert "PSEUDO-0001" in index_text and "PatientTelephoneNumbers" in index_text  # it searches
    assert_no_planted_value(index_text, "the index tables")
    raw = raw_index_bytes(registered_db)
    assert b"PSEUDO-0001" in raw  # the raw search does find stored text
    for needle in NEEDLES:
        assert needle.encode() not in raw, f"{needle!r} in the raw bytes of the index"
    # the package: decoded Parquet and the manifest (its Parquet bytes are compressed)
    package = tmp_path / "package"
    for name in (STUDIES_FILE, PHI_FILE):
        assert_no_planted_value(pl.read_parquet(package / name).write_csv(), name)
    assert_no_planted_value((package / MANIFEST_FILE).read_text(encoding="utf-8"), MANIFEST_FILE)
    # and yet each flag is recorded, by keyword, per study and institution
    audit = table(registered_db, "SELECT institution_id, study_uid, tag, files FROM phi_flag")
    recorded: dict[tuple[str, str], dict[str, int]] = {}
    for row in audit:
        recorded.setdefault((row["institution_id"], row["study_uid"]), {})[row["tag"]] = row[
            "files"
        ]
    assert recorded == expected


def test_phi_flags_query_and_page_table(tmp_path: Path, registered_db: Path) -> None:
    expected = plant_phi_tree(tmp_path / "tree")
    manifest = phi_manifest(tmp_path, expected)
    code, _, err = invoke("ingest", "dicom", tmp_path / "tree", "--db", registered_db,
                          "--manifest", manifest, "--workers", "1")  # fmt: skip
    assert code == 0, err
    with connect_readonly(registered_db) as con:
        flags = sql.query(con, "phi_flags", f_institutions=None)
        only_od = sql.query(con, "phi_flags", f_institutions=["TEST-OD-01"])
    by_key = {(r["institution_id"], r["tag"]): r for r in flags.to_dicts()}
    # KA: study 1 has 3 flagged files (one with everything, two with a name), study 2 one
    assert by_key["TEST-KA-01", "PatientName"] | {} == {
        "institution_id": "TEST-KA-01",
        "institution_name": "Test College Bengaluru (fictional)",
        "tag": "PatientName",
        "files": 4,
        "studies": 2,
        "institution_flagged_files": 4,
        "institution_flagged_studies": 2,
    }
    assert by_key["TEST-KA-01", "PatientAddress"]["files"] == 1
    assert by_key["TEST-OD-01", "BurnedInAnnotation"]["institution_flagged_files"] == 1
    assert sorted(k for k in by_key if k[0] == "TEST-OD-01") == [
        ("TEST-OD-01", "BurnedInAnnotation"),
        ("TEST-OD-01", "PatientTelephoneNumbers"),
    ]
    assert set(only_od["institution_id"].to_list()) == {"TEST-OD-01"}
    wide = phi_by_institution(flags)
    assert wide["institution_id"].to_list() == ["TEST-KA-01", "TEST-OD-01"]
    ka = wide.row(0, named=True)
    assert (ka["flagged_files"], ka["flagged_studies"]) == (4, 2)
    assert (ka["Patient name"], ka["Telephone"], ka["Burned-in annotation"]) == (4, 1, 1)
    assert wide.row(1, named=True)["Patient name"] == 0  # OD: none, shown as 0
    assert phi_totals(flags) == {"institutions": 2, "flagged_files": 5, "flagged_studies": 3}


def test_phi_page_helpers_on_an_empty_audit() -> None:
    from dashboard.ingest.dicom import PHI_TAGS

    assert TAG_LABELS.keys() == PHI_TAGS.keys()
    empty = pl.DataFrame(
        schema={
            "institution_id": pl.String, "institution_name": pl.String, "tag": pl.String,
            "files": pl.Int64, "studies": pl.Int64, "institution_flagged_files": pl.Int64,
            "institution_flagged_studies": pl.Int64,
        }
    )  # fmt: skip
    assert phi_by_institution(empty).height == 0
    assert phi_totals(empty) == {"institutions": 0, "flagged_files": 0, "flagged_studies": 0}


def test_a_rescan_of_scrubbed_files_clears_their_flags(tmp_path: Path, registered_db: Path) -> None:
    study, series = uid("scrub"), uid("scrub-s")
    for i in range(2):
        ds = make_dataset(study, series_uid=series, PatientName=PLANTED["PatientName"])
        write_dicom(tmp_path / "tree" / f"{i}.dcm", ds)
    args = ("ingest", "dicom", tmp_path / "tree", "--db", registered_db,
            "--institution", "TEST-KA-01", "--workers", "1", "--json")  # fmt: skip
    assert invoke(*args)[0] == 0
    flags = "SELECT study_uid, tag, files, study_flagged_files FROM phi_flag"
    assert table(registered_db, flags) == [
        {"study_uid": study, "tag": "PatientName", "files": 2, "study_flagged_files": 2}
    ]
    for i in range(2):
        write_dicom(tmp_path / "tree" / f"{i}.dcm", make_dataset(study, series_uid=series))
    report = json.loads(invoke(*args)[1])
    assert (report["unchanged"], report["phi_flagged_files"]) == (1, 0)
    assert table(registered_db, flags) == []


# --- federated package ------------------------------------------------------------------------


def test_package_round_trip_gives_the_local_index(tmp_path: Path, registered_db: Path) -> None:
    expected = plant_phi_tree(tmp_path / "tree")
    known_tree(tmp_path / "tree" / "known")
    manifest = phi_manifest(tmp_path, expected)
    local = new_registered_db(tmp_path / "local.duckdb")
    code, out, err = invoke("ingest", "dicom", tmp_path / "tree", "--db", local,
                            "--manifest", manifest, "--institution", "TEST-KA-01",
                            "--workers", "1", "--json")  # fmt: skip
    assert code == 0, err
    local_report = json.loads(out)
    package = tmp_path / "package"
    code, out, err = invoke("scan", tmp_path / "tree", "--out", package, "--manifest", manifest,
                            "--institution", "test-ka-01", "--workers", "1")  # fmt: skip
    assert code == 0, err
    assert "package written to" in out
    assert sorted(p.name for p in package.iterdir()) == [MANIFEST_FILE, PHI_FILE, STUDIES_FILE]
    meta = json.loads((package / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert meta["institution"] == "TEST-KA-01" and meta["tool_version"] == "0.1.0"
    assert meta["reader"].startswith("dicomsdl 0.109.4 ") and "pydicom 3.0.2" in meta["reader"]
    assert dt.datetime.fromisoformat(meta["created_at"]).tzinfo is not None
    studies = pl.read_parquet(package / STUDIES_FILE)
    assert studies.schema == ROW_SCHEMA
    assert pl.read_parquet(package / PHI_FILE).schema == PHI_SCHEMA
    assert meta["files"][STUDIES_FILE]["rows"] == studies.height == local_report["studies"]
    for name, recorded in meta["files"].items():
        assert recorded["sha256"] == file_sha256(package / name)
    assert "skipped" not in meta["scan"]  # no paths leave the partner's premises
    assert meta["scan"]["files_seen"] == local_report["files_seen"]
    code, out, err = invoke("ingest", "package", package, "--db", registered_db, "--json")
    assert code == 0, err
    remote_report = json.loads(out)
    for key in ("rows_read", "inserted", "quarantined", "files_seen", "phi_flagged_files"):
        assert remote_report[key] == local_report[key], key
    query = "SELECT * EXCLUDE (ingested_at, patient_key) FROM study ORDER BY study_uid"
    assert table(registered_db, query) == table(local, query)
    audit = "SELECT * EXCLUDE (scanned_at) FROM phi_flag ORDER BY ALL"
    assert table(registered_db, audit) == table(local, audit)
    again = json.loads(invoke("ingest", "package", package, "--db", registered_db, "--json")[1])
    assert (again["inserted"], again["unchanged"]) == (0, remote_report["inserted"])


@pytest.fixture
def package(tmp_path: Path) -> Path:
    known_tree(tmp_path / "tree")
    path = tmp_path / "package"
    assert invoke("scan", tmp_path / "tree", "--out", path, "--institution", "TEST-KA-01",
                  "--workers", "1")[0] == 0  # fmt: skip
    return path


def _rewrite_manifest(package: Path, change: Any) -> None:
    path = package / MANIFEST_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    change(meta)
    path.write_text(json.dumps(meta), encoding="utf-8")


def _reseal(package: Path, name: str) -> None:
    """Record a changed file's checksum and rows, as a careless or dishonest sender might."""

    def fix(meta: dict[str, Any]) -> None:
        meta["files"][name]["sha256"] = file_sha256(package / name)
        meta["files"][name]["rows"] = pl.read_parquet(package / name).height

    _rewrite_manifest(package, fix)


def _tamper_value(package: Path) -> None:
    frame = pl.read_parquet(package / STUDIES_FILE)
    frame.with_columns(pl.col("state").fill_null("KA")).write_parquet(package / STUDIES_FILE)


def _tamper_rows(package: Path) -> None:
    _rewrite_manifest(package, lambda m: m["files"][STUDIES_FILE].update(rows=99))


def _tamper_extra_column(package: Path) -> None:
    frame = pl.read_parquet(package / STUDIES_FILE)
    frame.with_columns(patient_name=pl.lit("X")).write_parquet(package / STUDIES_FILE)
    _reseal(package, STUDIES_FILE)


def _tamper_tag(package: Path) -> None:
    phi = pl.DataFrame(
        {"institution_id": ["TEST-KA-01"], "study_uid": [A], "tag": ["Sharma Rajesh"],
         "files": [1], "study_flagged_files": [1]},
        schema=PHI_SCHEMA,
    )  # fmt: skip
    phi.write_parquet(package / PHI_FILE)
    _reseal(package, PHI_FILE)


def _tamper_extra_file(package: Path) -> None:
    (package / "patients.csv").write_text("name\nSomebody\n", encoding="utf-8")


def _tamper_missing_file(package: Path) -> None:
    (package / PHI_FILE).unlink()


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_tamper_value, r"package/studies\.parquet: has SHA-256 [0-9a-f]{64} but manifest\.json "
                        r"records [0-9a-f]{64}: the file changed after the scan wrote it"),
        (_tamper_rows, r"package/studies\.parquet: has 3 rows but manifest\.json records 99"),
        (_tamper_extra_column, r"studies\.parquet: has columns a scan never writes: patient_name"),
        (_tamper_tag, r"phi_flags\.parquet: names 1 element\(s\) that are not audited"),
        (_tamper_extra_file, r"package/patients\.csv: is not part of a scan package"),
        (_tamper_missing_file, r"package/phi_flags\.parquet: is missing"),
    ],
)  # fmt: skip
def test_a_tampered_package_is_refused_and_nothing_written(
    package: Path, registered_db: Path, tamper: Any, message: str
) -> None:
    tamper(package)
    before = registered_db.read_bytes()
    code, out, err = invoke("ingest", "package", package, "--db", registered_db, "--json")
    assert code == 1 and out == ""
    flat = " ".join(err.split())
    assert re.search(message, flat), flat
    assert "nothing was written" in flat
    assert "Sharma" not in flat and "Somebody" not in flat
    assert registered_db.read_bytes() == before


def test_scan_refuses_to_write_into_a_non_empty_folder(tmp_path: Path, package: Path) -> None:
    code, _, err = invoke("scan", tmp_path / "tree", "--out", package, "--institution", "X")
    assert code == 1 and "exists and is not an empty folder" in " ".join(err.split())


def test_a_folder_that_is_not_a_package(tmp_path: Path, registered_db: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = invoke("ingest", "package", tmp_path / "empty", "--db", registered_db)
    assert code == 1 and "manifest.json: is missing" in " ".join(err.split())


# --- robustness on every file pydicom bundles -------------------------------------------------


def test_cli_over_every_file_pydicom_bundles(tmp_path: Path, registered_db: Path) -> None:
    testdata = sorted(pydicom.data.get_testdata_files())  # bundled only: never downloads
    dicomdir_trees = PYDICOM_DATA / "test_files" / "dicomdirtests"
    code, out, err = invoke(
        "ingest", "dicom", *testdata, dicomdir_trees, PYDICOM_DATA, "--db", registered_db,
        "--institution", "TEST-KA-01", "--workers", "2", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    on_disk = {str(p) for p in PYDICOM_DATA.rglob("*") if p.is_file()}
    assert report["files_seen"] == len(on_disk) > 150
    assert report["files_indexed"] + report["files_skipped"] == report["files_seen"]
    assert report["files_skipped"] == len(report["skipped"])
    assert {s["path"] for s in report["skipped"]} <= on_disk
    for skip in report["skipped"]:
        assert skip["reason"] in SKIP_REASONS or skip["reason"].startswith(UNREADABLE), skip
    assert report["files_indexed"] > 100
    assert report["rows_read"] == report["studies"]
    assert report["accepted"] + report["quarantined"] == report["rows_read"]
    stored = table(registered_db, "SELECT count(*) AS n FROM study WHERE source = 'dicom'")
    assert stored == [{"n": report["inserted"]}]
    assert report["inserted"] > 0


def test_scan_label_is_stable_and_short_for_many_roots(tmp_path: Path) -> None:
    from dashboard.ingest.dicom_index import scan_label

    roots = [tmp_path / f"r{i}" for i in range(5)]
    label = scan_label(roots)
    assert label == scan_label(list(roots))
    assert label.startswith(
        f"dicom:{tmp_path / 'r0'};{tmp_path / 'r1'};{tmp_path / 'r2'} and 2 more ("
    )
    assert label != scan_label([*roots[:4], tmp_path / "other"])
    assert scan_label(roots[:2]) == f"dicom:{tmp_path / 'r0'};{tmp_path / 'r1'}"
