"""Header mapping and the refusal of identifier-looking columns."""

from __future__ import annotations

import pytest

from dashboard.contract import canonical_column, is_identifier_header
from dashboard.ingest.manifest import map_headers
from dashboard.ingest.reader import FileRefusedError


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("StudyInstanceUID", "study_uid"),
        ("  study_id ", "study_uid"),
        ("PatientID", "patient_id"),
        ("Site", "institution_id"),
        ("StudyDate", "study_date"),
        ("PatientSex", "sex"),
        ("Gender", "sex"),
        ("PatientAge", "age"),
        ("age_years", "age"),
        ("State_UT", "state"),
        ("Urban_Rural", "area_type"),
        ("ICD10", "diagnosis_icd10"),
        ("BodyPartExamined", "body_part"),
        ("residence state", "state"),
        ("weight", None),
    ],
)
def test_header_synonyms(header: str, column: str | None) -> None:
    assert canonical_column(header) == column


@pytest.mark.parametrize(
    "header",
    [
        "name",
        "PatientName",
        "patient_name",
        "First Name",
        "phone",
        "Mobile No",
        "address",
        "Aadhaar",
        "aadhar_number",
        "MRN",
        "email",
        "EmailID",
        "UHID",
    ],
)
def test_identifier_headers(header: str) -> None:
    assert is_identifier_header(header)


@pytest.mark.parametrize(
    "header", ["institution_name", "StationName", "device_model", "patient_id", "district"]
)
def test_not_identifiers(header: str) -> None:
    assert not is_identifier_header(header)


def test_identifier_columns_refuse_the_file() -> None:
    headers = ["study_uid", "patient_id", "site", "StudyDate", "modality", "Patient Name", "phone"]
    with pytest.raises(FileRefusedError) as refused:
        map_headers(headers, "june.csv")
    message = str(refused.value)
    assert message.startswith("june.csv: has columns that look like direct identifiers")
    assert "'Patient Name', 'phone'" in message
    assert "nothing was written" in message


def test_missing_required_and_doubled_columns() -> None:
    with pytest.raises(FileRefusedError, match=r"required field.*study_date \(or studydate\)"):
        map_headers(["study_uid", "patient_id", "site", "modality"], "a.csv")
    with pytest.raises(FileRefusedError, match="'study_uid' and 'StudyInstanceUID' both give"):
        map_headers(["study_uid", "StudyInstanceUID"], "a.csv")


def test_unknown_columns_are_reported_not_refused() -> None:
    mapping, ignored = map_headers(
        ["study_uid", "patient_id", "site", "study_date", "modality", "weight_kg"], "a.csv"
    )
    assert mapping["site"] == "institution_id"
    assert ignored == ["weight_kg"]
