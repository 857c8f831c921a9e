"""The Submit page under AppTest: preview counts and reasons, refusals write nothing, confirm.

Known answers come from the manifest written here by hand: 5 valid rows, 2 × state 'Orisa' and
1 × age '150' → 5 accepted, 3 quarantined; the study count after confirming is checked with
plain SQL on the index file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.db import connect_readonly
from dashboard.export import to_csv_bytes
from dashboard.formatting import format_indian
from dashboard.ingest.manifest import IngestReport
from dashboard.ingest.reader import FileRefusedError
from dashboard.submission import (
    foreign_institutions,
    foreign_message,
    quarantine_table,
    reason_lines,
    safe_file_name,
    submission_key,
    too_large,
)
from dashboard.views.submit import CONFIRM_KEY, INSTITUTION_KEY
from tests.apptest import metrics, run_page

PARTNER = "DEMO-MH-01"
HEADER = "StudyInstanceUID,PatientID,site,StudyDate,Modality,PatientSex,PatientAge,state,batch"
GOOD = [
    f"9.9.{i},SUBMIT-P{i},{PARTNER},2026-10-0{i},CT,{'MF'[i % 2]},{30 + i},Maharashtra,b1"
    for i in range(1, 6)
]
BAD = [
    f"9.9.6,SUBMIT-P6,{PARTNER},2026-10-06,CT,F,40,Orisa,b1",
    f"9.9.7,SUBMIT-P7,{PARTNER},2026-10-07,MR,M,41,Orisa,b1",
    f"9.9.8,SUBMIT-P8,{PARTNER},2026-10-08,CT,F,150,Maharashtra,b1",
]


def manifest(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


@pytest.fixture
def index(demo_db: Path, tmp_path: Path) -> Path:
    """A private copy of the demo index: these tests write to it."""
    copy = tmp_path / "index.duckdb"
    shutil.copyfile(demo_db, copy)
    return copy


def studies(db: Path) -> int:
    with connect_readonly(db) as con:
        return con.sql("SELECT count(*) FROM study").fetchall()[0][0]


def upload(
    at: AppTest, name: str, data: bytes, institution: str = PARTNER, mime: str = "text/csv"
) -> AppTest:
    at.selectbox(key=INSTITUTION_KEY).set_value(institution)
    at.get("file_uploader")[0].set_value((name, data, mime))
    return at.run()


def texts(at: AppTest, kind: str) -> list[str]:
    return [element.value for element in at.get(kind)]


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# ---- the page without a file ---------------------------------------------------------------


def test_page_opens_with_registry_and_local_mode_note(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "submit")
    no_exception(at)
    assert at.title[0].value == "Submit a manifest"
    assert any("Local single-admin mode" in t for t in texts(at, "info"))
    with connect_readonly(demo_db) as con:
        registry = con.sql("SELECT institution_id, name FROM institution ORDER BY 1").fetchall()
    assert at.selectbox(key=INSTITUTION_KEY).options == [f"{i} — {n}" for i, n in registry]
    uploader = at.get("file_uploader")[0]
    assert sorted(uploader.allowed_type) == [".csv", ".parquet", ".tsv"]
    assert "up to 200 MB" in uploader.label
    assert any(format_indian(studies(demo_db)) in c.value for c in at.caption)


def test_page_opens_with_url_filters(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, "submit", state="Karnataka", unit="studies")
    no_exception(at)
    assert at.title[0].value == "Submit a manifest"
    assert at.get("file_uploader")


def test_page_without_index_says_how_to_build_one(tmp_path: Path, monkeypatch) -> None:
    at = run_page(tmp_path / "missing.duckdb", monkeypatch, "submit")
    no_exception(at)
    assert any("No index found" in t for t in texts(at, "info"))


# ---- preview ---------------------------------------------------------------------------------


def test_preview_counts_reasons_and_writes_nothing(index: Path, monkeypatch) -> None:
    before = index.read_bytes()
    at = upload(run_page(index, monkeypatch, "submit"), "october.csv", manifest(*GOOD, *BAD))
    no_exception(at)
    body = " ".join(m.value for m in at.markdown)
    assert "5 accepted, 3 quarantined" in body
    assert "of 8 rows read" in body
    assert "- 2 × state 'Orisa' is not a state or UT of India; did you mean Odisha" in body
    assert "- 1 × age '150' is outside 0–120 years" in body
    cards = metrics(at)
    assert (cards["New studies"], cards["Updated"], cards["Unchanged"]) == ("5", "0", "0")
    assert cards["Repeated rows"] == "0"
    assert any("`batch`" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table.columns) == ["row", "column", "value", "reason"]
    assert table["row"].tolist() == [6, 7, 8]
    assert table["value"].tolist() == ["Orisa", "Orisa", "150"]
    assert at.button(key=CONFIRM_KEY).label == "Confirm and ingest 5 accepted rows"
    assert index.read_bytes() == before
    # a rerun (e.g. another widget) reuses the preview kept in the session
    at.run()
    assert "5 accepted, 3 quarantined" in " ".join(m.value for m in at.markdown)
    assert index.read_bytes() == before


def test_confirm_ingests_and_every_page_sees_the_new_studies(index: Path, monkeypatch) -> None:
    before = studies(index)
    overview_before = metrics(run_page(index, monkeypatch, "overview"))["Studies"]
    assert overview_before == format_indian(before)
    at = upload(run_page(index, monkeypatch, "submit"), "october.csv", manifest(*GOOD, *BAD))
    at.button(key=CONFIRM_KEY).click().run()
    no_exception(at)
    assert studies(index) == before + 5
    success = at.success[0].value
    assert "october.csv" in success and "5 accepted (5 new, 0 updated" in success
    assert "3 quarantined" in success
    assert f"{format_indian(before + 5)} studies in the index" in success
    assert not at.button  # no second confirm for the same file
    with connect_readonly(index) as con:
        quarantined = con.sql(
            "SELECT count(DISTINCT row) FROM quarantine WHERE file = 'october.csv'"
        ).fetchall()[0][0]
    assert quarantined == 3
    assert metrics(run_page(index, monkeypatch, "overview"))["Studies"] == format_indian(before + 5)


def test_same_file_again_previews_as_unchanged(index: Path, monkeypatch) -> None:
    before = studies(index)
    at = upload(run_page(index, monkeypatch, "submit"), "october.csv", manifest(*GOOD))
    at.button(key=CONFIRM_KEY).click().run()
    assert studies(index) == before + 5
    again = upload(run_page(index, monkeypatch, "submit"), "october.csv", manifest(*GOOD))
    no_exception(again)
    cards = metrics(again)
    assert (cards["New studies"], cards["Unchanged"]) == ("0", "5")


# ---- refusals: clear message, nothing written -------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("picture.csv", PNG, "is not UTF-8 or UTF-16: byte 0x89 on line 1"),
        ("latin1.csv", manifest(*GOOD).replace(b"b1", "Bélgaum".encode("latin-1")), "not UTF-8"),
        ("empty.csv", b"", "is empty"),
        ("blank.csv", b"\n\n  \n", "is empty"),
        (
            "names.csv",
            manifest(GOOD[0] + ",Asha Rao", header=HEADER + ",PatientName"),
            "look like direct identifiers",
        ),
        ("nocol.csv", b"a,b\n1,2\n", "no column for required field"),
        ("broken.parquet", b"PAR1 not really", "is not a readable Parquet file"),
    ],
)
def test_refused_files_show_a_clear_error_and_write_nothing(
    index: Path, monkeypatch, name: str, data: bytes, expected: str
) -> None:
    before = index.read_bytes()
    at = upload(run_page(index, monkeypatch, "submit"), name, data)
    no_exception(at)
    errors = texts(at, "error")
    assert len(errors) == 1 and expected in errors[0], errors
    assert name in errors[0] and "othing was written" in errors[0]
    assert not at.button
    assert index.read_bytes() == before


def test_rows_of_another_institution_refuse_the_submission(index: Path, monkeypatch) -> None:
    before = index.read_bytes()
    other = [r.replace(PARTNER, "demo-dl-01") for r in GOOD[:2]] + [
        GOOD[2].replace(PARTNER, "DEMO-KA-01")
    ]
    at = upload(
        run_page(index, monkeypatch, "submit"), "mixed.csv", manifest(*GOOD[3:], *BAD, *other)
    )
    no_exception(at)
    [error] = texts(at, "error")
    assert f"for **{PARTNER}**" in error
    assert "3 rows name another institution: DEMO-DL-01 (2 rows), DEMO-KA-01 (1 row)" in error
    assert "nothing was written" in error
    assert not at.button and not at.dataframe
    assert index.read_bytes() == before


def test_unexpected_database_error_is_a_message_not_a_traceback(index: Path, monkeypatch) -> None:
    def broken(*_args, **_kwargs):
        raise duckdb.IOException("disk on fire")

    monkeypatch.setattr("dashboard.views.submit.preview_manifest", broken)
    before = index.read_bytes()
    at = upload(run_page(index, monkeypatch, "submit"), "october.csv", manifest(*GOOD))
    no_exception(at)
    [error] = texts(at, "error")
    assert "october.csv** could not be checked (IOException: disk on fire)" in error
    assert not at.button
    assert index.read_bytes() == before


def test_header_only_file_has_nothing_to_ingest(index: Path, monkeypatch) -> None:
    at = upload(run_page(index, monkeypatch, "submit"), "header.csv", manifest())
    no_exception(at)
    assert any("no rows" in w.value for w in at.warning)
    assert not at.button


def test_tsv_and_parquet_are_previewed(index: Path, monkeypatch, tmp_path: Path) -> None:
    tsv = manifest(*GOOD, *BAD).replace(b",", b"\t")
    at = upload(run_page(index, monkeypatch, "submit"), "october.tsv", tsv)
    assert "5 accepted, 3 quarantined" in " ".join(m.value for m in at.markdown)
    frame = pl.read_csv(manifest(*GOOD, *BAD), infer_schema=False)
    frame.write_parquet(tmp_path / "m.parquet")
    data = (tmp_path / "m.parquet").read_bytes()
    at = upload(run_page(index, monkeypatch, "submit"), "october.parquet", data)
    no_exception(at)
    assert "5 accepted, 3 quarantined" in " ".join(m.value for m in at.markdown)


# ---- the pure parts ---------------------------------------------------------------------------


def test_foreign_institutions_are_counted_case_blind_and_blank_ids_are_not_foreign() -> None:
    raw = pl.DataFrame(
        {
            "StudyInstanceUID": ["1", "2", "3", "4", "5"],
            "PatientID": ["a"] * 5,
            "site": ["demo-mh-01", "DEMO-MH-01", "DEMO-DL-01", None, "demo-dl-01"],
            "StudyDate": ["2026-01-01"] * 5,
            "Modality": ["CT"] * 5,
        }
    )
    assert foreign_institutions(raw, "f.csv", "DEMO-MH-01") == {"DEMO-DL-01": 2}
    assert foreign_institutions(raw, "f.csv", "demo-dl-01") == {"DEMO-MH-01": 2}
    message = foreign_message({"DEMO-DL-01": 2, "X-1": 1}, "DEMO-MH-01")
    assert "3 rows name another institution: DEMO-DL-01 (2 rows), X-1 (1 row)" in message
    with pytest.raises(FileRefusedError, match="PatientName"):
        foreign_institutions(raw.with_columns(PatientName=pl.lit("x")), "f.csv", "DEMO-MH-01")


def test_reason_lines_group_and_cap() -> None:
    quarantine = [
        {"row": i, "column": "c", "value": str(i % 12), "reason": f"r{i % 12}"} for i in range(30)
    ]
    report = IngestReport(file="f.csv", rows_read=30, quarantined=30, quarantine=quarantine)
    lines = reason_lines(report, limit=10)
    assert len(lines) == 11
    assert lines[0] == "3 × r0"
    assert lines[-1] == "… and 2 other reasons (see the CSV)"


def test_quarantine_csv_has_row_column_value_reason_and_is_defused() -> None:
    quarantine = [{"row": 4, "column": "state", "value": "=cmd|x", "reason": "bad state"}]
    report = IngestReport(file="f.csv", rows_read=4, quarantined=1, quarantine=quarantine)
    table = quarantine_table(report)
    assert table.columns == ["row", "column", "value", "reason"]
    text = to_csv_bytes(table).decode("utf-8-sig")
    assert text.splitlines() == ["row,column,value,reason", "4,state,'=cmd|x,bad state"]
    empty = quarantine_table(IngestReport(file="f.csv", rows_read=0))
    assert empty.height == 0 and empty.columns == table.columns


def test_small_helpers() -> None:
    assert too_large(200 * 1024 * 1024) is False
    assert too_large(200 * 1024 * 1024 + 1) is True
    assert too_large(2 * 1024 * 1024, limit_mb=1) is True
    assert safe_file_name("C:\\Users\\me\\oct 2026.csv") == "oct 2026.csv"
    assert safe_file_name("../../etc/passwd.csv") == "passwd.csv"
    assert safe_file_name("..") == "upload.csv"
    assert submission_key(b"x", "demo-mh-01") == submission_key(b"x", "DEMO-MH-01")
    assert submission_key(b"x", "A") != submission_key(b"y", "A")
    assert submission_key(b"x", "A") != submission_key(b"x", "B")
