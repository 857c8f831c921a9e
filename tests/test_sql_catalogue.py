"""Every SQL file of the catalogue parses, declares its params, and runs on a real index."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from dashboard import sql
from dashboard.db import connect_readonly
from dashboard.filters import Filters
from dashboard.ingest.writer import index_writer, refresh_reference_tables
from dashboard.sql import QueryError, catalogue, parse_query_file

# Values to run each parameterised query with; a new query must add its own here.
SAMPLE_PARAMS = {
    "dims": ["state", "sex"],
    "unit": "patients",
    "institution": None,
    "states": ["IN-KA"],
    "max_patient_key": 10,
    **Filters(states=("IN-KA",), age_min=10, date_from=dt.date(2024, 1, 1)).params(),
    "now": dt.datetime(2026, 11, 30, 12, 0),
    "file": "x.csv",
    "ingest_id": 99,
    "kind": "manifest",
    "sha256": "0" * 64,
    "rows_read": 0,
    "inserted": 0,
    "updated": 0,
    "unchanged": 0,
    "duplicates": 0,
    "quarantined": 0,
    "source": "dicom",
    "actor": "asha@example.org",
    "role": "partner:TEST-KA-01",
    "action": "export",
    "what": "coverage --by state --format csv",
    "channel": "cli",
    "detail": '{"rows": 3}',
    "min_studies": 10_000,
    "digest": "0" * 64,
    "subject": "schema",
    "cube": "cells:institution+state",
    "cube_kind": "cells",
    "columns": ["institution", "state"],
    "institutions": ["TEST-KA-01"],
    "cubes": ["cells:month+state+sex+age_band+area_type"],
    "part": "part:cells:institution+month+state+sex+age_band+area_type",
    "layout": 1,
    "recent_from": dt.date(2026, 10, 1),
}
EMPTY_FRAMES = {
    "incoming_study": pl.DataFrame(
        schema={
            "institution_id": pl.String,
            "study_uid": pl.String,
            "patient_id": pl.String,
            "study_date": pl.Date,
            "modality": pl.String,
            "sex": pl.String,
            "age_years": pl.Float64,
            "age_band": pl.String,
            "state": pl.String,
            "district": pl.String,
            "area_type": pl.String,
            "diagnosis_icd10": pl.List(pl.String),
            "conditions": pl.List(pl.String),
            "body_part": pl.String,
            "facility_type": pl.String,
            "manufacturer": pl.String,
            "device_model": pl.String,
            "n_images": pl.Int64,
            "annotation_status": pl.String,
            "consent": pl.String,
            "fitzpatrick": pl.Int8,
            "source": pl.String,
        }
    ),
    "incoming_keys": pl.DataFrame(schema={"institution_id": pl.String, "study_uid": pl.String}),
    "incoming_phi": pl.DataFrame(
        schema={
            "institution_id": pl.String,
            "study_uid": pl.String,
            "tag": pl.String,
            "files": pl.Int64,
            "study_flagged_files": pl.Int64,
        }
    ),
    "incoming_quarantine": pl.DataFrame(
        schema={
            "row": pl.Int64,
            "institution_id": pl.String,
            "study_uid": pl.String,
            "column": pl.String,
            "value": pl.String,
            "reason": pl.String,
            "original": pl.List(pl.Struct({"key": pl.String, "value": pl.String})),
        }
    ),
    "incoming_institution": pl.DataFrame(
        schema={
            "institution_id": pl.String,
            "name": pl.String,
            "state": pl.String,
            "city": pl.String,
            "facility_type": pl.String,
            "sector": pl.String,
            "joined_date": pl.Date,
        }
    ),
}


def test_catalogue_loads_with_unique_names() -> None:
    names = catalogue()
    assert {"coverage", "index_totals", "stage_studies", "open_quarantine"} <= names.keys()
    for query in names.values():
        assert query.description


NEEDS_STAGED = {
    "count_staged_changes",
    "delete_replaced_studies",
    "insert_new_patients",
    "insert_staged_studies",
}
# The cube builds read the studies staged as codes (mart_value, mart_source).
NEEDS_MART_SOURCE = {
    "build_mart_cells",
    "build_mart_first_cells",
    "build_mart_month_cells",
    "drop_mart_source",
    "stage_mart_source",
}


@pytest.mark.parametrize("name", sorted(catalogue()))
def test_every_query_runs(name: str, registered_db: Path) -> None:
    """Run each statement inside a transaction that is rolled back, on a real index."""
    with index_writer(registered_db) as con:
        con.begin()
        for view, frame in EMPTY_FRAMES.items():
            con.register(view, frame)
        if name in NEEDS_STAGED:
            sql.execute(con, "stage_studies", now=SAMPLE_PARAMS["now"])
        if name in NEEDS_MART_SOURCE:
            sql.execute(con, "stage_mart_values", institutions=None)
            sql.execute(con, "stage_mart_source", institutions=None)
        if name == "refresh_reference":
            con.execute("DELETE FROM index_digest")  # else the tables are current: nothing runs
            refresh_reference_tables(con)
            assert sql.query(con, "stored_digest", subject="reference")["digest"][0] is not None
        else:
            params = {p: SAMPLE_PARAMS[p] for p in catalogue()[name].params}
            sql.execute(con, name, **params)
        con.rollback()


def test_header_must_match_parameters(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sql"
    bad.write_text("-- name: bad\n-- description: d\n-- params: a\nSELECT $a, $b\n")
    with pytest.raises(QueryError, match=r"declares params \['a'\] but the SQL uses \['a', 'b'\]"):
        parse_query_file(bad)


def test_wrong_call_parameters_are_refused(registered_db: Path) -> None:
    with connect_readonly(registered_db) as con, pytest.raises(QueryError, match="missing"):
        sql.query(con, "coverage", dims=["state"])
