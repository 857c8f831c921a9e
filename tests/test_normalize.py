"""Known-answer tests for dashboard.ingest.normalize: every contract rule, value by value."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard import contract
from dashboard.config import QUERIES_DIR
from dashboard.ingest.normalize import (
    INSTITUTION_SCHEMA,
    STUDY_SCHEMA,
    condition_rules,
    normalize_institutions,
    normalize_studies,
)
from dashboard.reference import REFERENCE_DIR, load_reference

TODAY = dt.date(2025, 6, 30)
REF = load_reference()
VALID = {
    "study_uid": "1.2.840.1",
    "patient_id": "P0001",
    "institution_id": "KA-BLR-001",
    "study_date": "2025-04-03",
    "modality": "CT",
}


def raw_frame(
    rows: Sequence[dict[str, str | None]], rows_numbers: Sequence[int] = ()
) -> pl.DataFrame:
    """A raw manifest: each row is VALID (with its own study_uid) overridden by ``rows``."""
    full = [VALID | {"study_uid": f"1.2.840.{i}"} | row for i, row in enumerate(rows, 1)]
    columns = list(dict.fromkeys(c for row in full for c in row))
    frame = pl.DataFrame(
        {c: [row.get(c) for row in full] for c in columns}, schema=dict.fromkeys(columns, pl.String)
    )
    numbers = list(rows_numbers) or list(range(1, len(full) + 1))
    return frame.insert_column(0, pl.Series("_row", numbers, dtype=pl.Int64))


def normalise(rows: Sequence[dict[str, str | None]], **kwargs: Any) -> pl.DataFrame:
    return normalize_studies(raw_frame(rows), REF, today=TODAY, **kwargs)


def one(row: dict[str, str | None], **kwargs: Any) -> dict[str, Any]:
    """The single normalised row for one raw row, as a dict."""
    return normalise([row], **kwargs).row(0, named=True)


def problems(row: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [(p["column"], p["value"], p["reason"]) for p in row["_problems"]]


def reasons(row: dict[str, Any]) -> list[str]:
    return [p["reason"] for p in row["_problems"]]


# -- output shape -------------------------------------------------------------------------------

SQL_TYPES = {
    "VARCHAR": pl.String(),
    "DATE": pl.Date(),
    "DOUBLE": pl.Float64(),
    "BIGINT": pl.Int64(),
    "TINYINT": pl.Int8(),
    "VARCHAR[]": pl.List(pl.String),
}


def table_columns(table: str) -> dict[str, pl.DataType]:
    """Column → polars type of a table in queries/schema/020_index.sql."""
    sql = (QUERIES_DIR / "schema" / "020_index.sql").read_text()
    body = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", sql, re.S)
    assert body is not None
    columns = {}
    for line in body[1].splitlines():
        match = re.match(r"\s+(\w+) (\S+?)[,\s]", line + " ")
        if match and match[1] != "PRIMARY":
            columns[match[1]] = SQL_TYPES.get(match[2])
    return columns


def test_study_output_has_the_study_table_columns_and_types() -> None:
    out = normalise([{}])
    assert out.schema == pl.Schema(STUDY_SCHEMA)
    derived_later = {"patient_key", "study_month", "source", "ingested_at"}
    expected = {c: t for c, t in table_columns("study").items() if c not in derived_later}
    assert {c: t for c, t in out.schema.items() if not c.startswith("_")} == expected


def test_institution_output_has_the_institution_table_columns_and_types() -> None:
    raw = pl.DataFrame({"_row": [1], "institution_id": ["x"], "name": ["X"]})
    out = normalize_institutions(raw.cast({"_row": pl.Int64}), REF)
    assert out.schema == pl.Schema(INSTITUTION_SCHEMA)
    assert {c: t for c, t in out.schema.items() if not c.startswith("_")} == table_columns(
        "institution"
    )


def test_a_complete_valid_row_is_normalised_field_by_field() -> None:
    row = one(
        {
            "study_uid": "1.2.3.4",
            "patient_id": "PSEUDO-77",
            "institution_id": "ka-blr-001",
            "study_date": "03/04/2025",
            "modality": "x-ray",
            "sex": "female",
            "age": "045Y",
            "state": "Orissa",
            "district": "Khordha",
            "area_type": "R",
            "diagnosis_icd10": "C50.9; E11.3",
            "body_part": "chest",
            "facility_type": "District Hospital",
            "manufacturer": "GE",
            "device_model": "Revolution",
            "n_images": "120",
            "annotation_status": "Partial",
            "consent": "YES",
            "fitzpatrick": "iv",
        },
        registered_institutions={"KA-BLR-001"},
    )
    assert row == {
        "_row": 1,
        "study_uid": "1.2.3.4",
        "patient_id": "PSEUDO-77",
        "institution_id": "KA-BLR-001",
        "study_date": dt.date(2025, 4, 3),
        "modality": "DX",
        "sex": "F",
        "age_years": 45.0,
        "age_band": "45-49",
        "state": "IN-OD",
        "district": "Khordha",
        "area_type": "rural",
        "diagnosis_icd10": ["C50.9", "E11.3"],
        "conditions": [
            "cancer_all_sites",
            "cancer_breast",
            "high_blood_glucose",
            "diabetes_mellitus",
            "diabetic_retinopathy",
        ],
        "body_part": "CHEST",
        "facility_type": "district_hospital",
        "manufacturer": "GE",
        "device_model": "Revolution",
        "n_images": 120,
        "annotation_status": "partial",
        "consent": "yes",
        "fitzpatrick": 4,
        "_problems": [],
    }


def test_absent_optional_columns_take_their_unknown_values() -> None:
    row = one({})
    assert row["_problems"] == []
    assert (row["sex"], row["area_type"]) == ("U", "unknown")
    for column in (
        "age_years",
        "age_band",
        "state",
        "district",
        "diagnosis_icd10",
        "conditions",
        "body_part",
        "facility_type",
        "n_images",
        "annotation_status",
        "consent",
        "fitzpatrick",
    ):
        assert row[column] is None, column


def test_empty_strings_are_absent_values() -> None:
    row = one({"sex": "", "area_type": "", "state": "", "age": "", "district": "", "consent": ""})
    assert row["_problems"] == []
    assert (row["sex"], row["area_type"], row["state"], row["age_years"]) == (
        "U",
        "unknown",
        None,
        None,
    )
    assert row["district"] is None


def test_row_order_and_row_numbers_are_preserved() -> None:
    raw = raw_frame(
        [{"state": "Kerala"}, {"state": "Atlantis"}, {"state": "KA"}, {"state": None}],
        rows_numbers=[7, 3, 12, 5],
    )
    out = normalize_studies(raw, REF, today=TODAY)
    assert out["_row"].to_list() == [7, 3, 12, 5]
    assert out["study_uid"].to_list() == ["1.2.840.1", "1.2.840.2", "1.2.840.3", "1.2.840.4"]
    assert out["state"].to_list() == ["IN-KL", None, "IN-KA", None]
    assert out["_problems"].list.len().to_list() == [0, 1, 0, 0]


def test_an_empty_manifest_gives_an_empty_typed_frame() -> None:
    raw = pl.DataFrame(
        {"_row": [], "study_uid": []}, schema={"_row": pl.Int64, "study_uid": pl.String}
    )
    out = normalize_studies(raw, REF, today=TODAY)
    assert out.height == 0
    assert out.schema == pl.Schema(STUDY_SCHEMA)


def test_columns_outside_the_contract_are_dropped() -> None:
    out = normalize_studies(raw_frame([{}]).with_columns(remarks=pl.lit("x")), REF, today=TODAY)
    assert "remarks" not in out.columns


# -- required columns and problems --------------------------------------------------------------


@pytest.mark.parametrize("column", contract.REQUIRED_COLUMNS)
@pytest.mark.parametrize("empty", [None, ""])
def test_a_required_column_that_is_empty_is_a_problem(column: str, empty: str | None) -> None:
    row = one({column: empty})
    assert problems(row) == [(column, None, f"{column} is required but empty")]


def test_a_missing_required_column_is_a_problem_on_every_row() -> None:
    out = normalize_studies(raw_frame([{}, {}]).drop("modality"), REF, today=TODAY)
    assert (
        out["_problems"].to_list()
        == [[{"column": "modality", "value": None, "reason": "modality is required but empty"}]] * 2
    )


def test_every_problem_of_a_row_is_reported_in_column_order() -> None:
    row = one(
        {
            "study_uid": None,
            "study_date": "31/02/2025",
            "modality": "XYZ",
            "sex": "X",
            "age": "150",
            "state": "Kernataka",
            "diagnosis_icd10": "12A",
            "n_images": "-1",
            "fitzpatrick": "7",
        }
    )
    assert [(c, v) for c, v, _ in problems(row)] == [
        ("study_uid", None),
        ("study_date", "31/02/2025"),
        ("modality", "XYZ"),
        ("sex", "X"),
        ("age", "150"),
        ("state", "Kernataka"),
        ("diagnosis_icd10", "12A"),
        ("n_images", "-1"),
        ("fitzpatrick", "7"),
    ]
    # the invalid values themselves are not carried into the normalised columns
    assert [row[c] for c in ("study_date", "modality", "sex", "age_years", "state")] == [None] * 5


def test_problems_land_on_their_own_rows_only() -> None:
    out = normalise([{}, {"age": "200"}, {}, {"modality": "ZZ", "state": "Goa"}, {}])
    assert [len(p) for p in out["_problems"].to_list()] == [0, 1, 0, 1, 0]
    assert out["_problems"][1][0]["reason"] == "age '200' is outside 0–120 years"
    assert out["_problems"][3][0]["column"] == "modality"
    assert out["state"][3] == "IN-GA"


def test_study_uid_longer_than_128_characters_is_a_problem() -> None:
    assert one({"study_uid": "1" * 128})["_problems"] == []
    row = one({"study_uid": "9" * 129})
    assert problems(row) == [
        (
            "study_uid",
            "9" * 129,
            f"study_uid '{'9' * 40}…' is 129 characters long; at most 128 are allowed",
        )
    ]


# -- institution registry -----------------------------------------------------------------------


def test_institution_id_is_upper_cased_and_unchecked_without_a_registry() -> None:
    row = one({"institution_id": "any-site"})
    assert (row["institution_id"], row["_problems"]) == ("ANY-SITE", [])


def test_institution_in_the_registry_matches_case_insensitively() -> None:
    row = one({"institution_id": "ka-blr-001"}, registered_institutions={"KA-BLR-001"})
    assert (row["institution_id"], row["_problems"]) == ("KA-BLR-001", [])


def test_unregistered_institution_is_a_problem_with_a_suggestion() -> None:
    registry = {"KA-BLR-001", "OD-CTC-002"}
    near = one({"institution_id": "KA-BLR-01"}, registered_institutions=registry)
    assert reasons(near) == [
        "institution_id 'KA-BLR-01' is not in the institution registry; did you mean KA-BLR-001?"
    ]
    assert near["institution_id"] == "KA-BLR-01"
    far = one({"institution_id": "XX01"}, registered_institutions=registry)
    assert reasons(far) == ["institution_id 'XX01' is not in the institution registry"]


# -- states -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "iso"),
    [
        ("Karnataka", "IN-KA"),
        ("karnataka", "IN-KA"),
        ("KARNATAKA", "IN-KA"),
        ("Orissa", "IN-OD"),
        ("Odisha", "IN-OD"),
        ("Pondicherry", "IN-PY"),
        ("Puducherry", "IN-PY"),
        ("Uttaranchal", "IN-UK"),
        ("Tamilnadu", "IN-TN"),
        ("Tamil   Nadu", "IN-TN"),
        ("T.N.", "IN-TN"),
        ("NCT of Delhi", "IN-DL"),
        ("J&K", "IN-JK"),
        ("Jammu & Kashmir", "IN-JK"),
        ("Jammu and Kashmir", "IN-JK"),
        ("Andaman & Nicobar Islands", "IN-AN"),
        ("Dadra and Nagar Haveli and Daman and Diu", "IN-DH"),
        ("IN-KA", "IN-KA"),
        ("in-ka", "IN-KA"),
        ("KA", "IN-KA"),
        ("IN-OR", "IN-OD"),
        ("IN-TG", "IN-TS"),
        ("IN-UL", "IN-UK"),
        ("कर्नाटक", "IN-KA"),
    ],
)
def test_state_names_old_names_and_codes_map_to_current_iso(given: str, iso: str) -> None:
    row = one({"state": given})
    assert (row["state"], row["_problems"]) == (iso, [])


def test_every_alias_in_the_reference_table_is_accepted() -> None:
    aliases = pl.read_csv(REFERENCE_DIR / "state_aliases.csv")
    out = normalise([{"state": alias} for alias in aliases["alias"]])
    assert out["state"].to_list() == aliases["iso_code"].to_list()
    assert out["_problems"].list.len().sum() == 0


def test_every_official_name_and_iso_code_is_accepted() -> None:
    states = REF.states
    out = normalise(
        [{"state": name} for name in states["name"]] + [{"state": c} for c in states["iso_code"]]
    )
    assert out["state"].to_list() == states["iso_code"].to_list() * 2


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        ("Kernataka", "; did you mean Karnataka (IN-KA)?"),
        ("Orisa", "; did you mean Odisha (IN-OD)?"),
        ("Maharashtr", "; did you mean Maharashtra (IN-MH)?"),
        ("Atlantis", ""),
    ],
)
def test_unknown_state_is_a_problem_with_the_closest_state(given: str, hint: str) -> None:
    row = one({"state": given})
    assert problems(row) == [
        ("state", given, f"state '{given}' is not a state or UT of India{hint}")
    ]
    assert row["state"] is None


def test_the_state_reason_reads_as_the_contract_example() -> None:
    assert reasons(one({"state": "Kernataka"})) == [
        "state 'Kernataka' is not a state or UT of India; did you mean Karnataka (IN-KA)?"
    ]


# -- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given", ["2025-04-03", "20250403", "03/04/2025", "03-04-2025", "3/4/2025", "2025-4-3"]
)
def test_study_date_forms_are_read_day_first(given: str) -> None:
    row = one({"study_date": given})
    assert (row["study_date"], row["_problems"]) == (dt.date(2025, 4, 3), [])


@pytest.mark.parametrize(
    "given", ["31/02/2025", "2025-02-30", "2025/04/03", "03/04/25", "tomorrow", "2025-13-01"]
)
def test_invalid_study_date_is_a_problem(given: str) -> None:
    row = one({"study_date": given})
    assert reasons(row) == [
        f"study_date '{given}' is not a valid date "
        "(accepted: YYYY-MM-DD, YYYYMMDD, DD/MM/YYYY, DD-MM-YYYY)"
    ]
    assert row["study_date"] is None


def test_month_first_date_gets_its_day_first_spelling_as_a_suggestion() -> None:
    row = one({"study_date": "04/13/2025"})
    assert reasons(row) == [
        "study_date '04/13/2025' is not a valid date "
        "(accepted: YYYY-MM-DD, YYYYMMDD, DD/MM/YYYY, DD-MM-YYYY); "
        "did you mean 13/04/2025 (day first)?"
    ]


def test_study_date_after_today_is_a_problem_and_today_is_not() -> None:
    assert one({"study_date": TODAY.isoformat()})["study_date"] == TODAY
    row = one({"study_date": "01/07/2025"})
    assert reasons(row) == ["study_date '01/07/2025' is after today (2025-06-30)"]


def test_study_date_before_1990_is_a_problem() -> None:
    assert one({"study_date": "19900101"})["study_date"] == dt.date(1990, 1, 1)
    row = one({"study_date": "31-12-1989"})
    assert reasons(row) == ["study_date '31-12-1989' is before 1990"]


# -- age and birth year -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "years", "band"),
    [
        ("45", 45.0, "45-49"),
        ("45.5", 45.5, "45-49"),
        ("0", 0.0, "0-4"),
        ("120", 120.0, "80+"),
        ("045Y", 45.0, "45-49"),
        ("045y", 45.0, "45-49"),
        ("80Y", 80.0, "80+"),
        ("079Y", 79.0, "75-79"),
        ("006M", 0.5, "0-4"),
        ("060M", 5.0, "5-9"),
        ("003W", 21 / 365.25, "0-4"),
        ("010D", 10 / 365.25, "0-4"),
    ],
)
def test_age_numbers_and_dicom_age_strings_give_years_and_census_band(
    given: str, years: float, band: str
) -> None:
    row = one({"age": given})
    assert row["_problems"] == []
    assert row["age_years"] == pytest.approx(years)
    assert row["age_band"] == band


AGE_HELP = "e.g. 45, 45.5 or DICOM 045Y, 006M, 003W, 010D"


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("150", "age '150' is outside 0–120 years"),
        ("121Y", "age '121Y' is outside 0–120 years"),
        ("-1", "age '-1' is outside 0–120 years"),
        ("forty", f"age 'forty' is not an age in years ({AGE_HELP})"),
        ("45 years", f"age '45 years' is not an age in years ({AGE_HELP})"),
    ],
)
def test_invalid_or_out_of_range_age_is_a_problem(given: str, reason: str) -> None:
    row = one({"age": given})
    assert problems(row) == [("age", given, reason)]
    assert (row["age_years"], row["age_band"]) == (None, None)


def test_birth_year_gives_the_age_when_age_is_absent() -> None:
    row = one({"birth_year": "1980", "study_date": "2025-04-03"})
    assert (row["age_years"], row["age_band"], row["_problems"]) == (45.0, "45-49", [])


def test_age_wins_over_birth_year() -> None:
    row = one({"age": "30", "birth_year": "1980"})
    assert (row["age_years"], row["_problems"]) == (30.0, [])


def test_birth_year_after_the_study_year_is_a_problem() -> None:
    row = one({"birth_year": "2026", "study_date": "2025-04-03"})
    assert problems(row) == [
        ("birth_year", "2026", "birth_year '2026' is after the study year 2025")
    ]
    assert row["age_years"] is None


def test_birth_year_giving_an_age_over_120_is_a_problem() -> None:
    row = one({"birth_year": "1850", "study_date": "2025-04-03"})
    assert reasons(row) == [
        "birth_year '1850' gives an age of 175 years at the study date, outside 0–120 years"
    ]


def test_birth_year_that_is_not_four_digits_is_a_problem() -> None:
    row = one({"birth_year": "85"})
    assert reasons(row) == ["birth_year '85' is not a 4-digit year"]


def test_birth_year_with_an_invalid_study_date_leaves_the_age_unknown() -> None:
    row = one({"birth_year": "1980", "study_date": "31/02/2025"})
    assert row["age_years"] is None
    assert [c for c, _, _ in problems(row)] == ["study_date"]


# -- sex, modality, small vocabularies ----------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("M", "M"),
        ("m", "M"),
        ("male", "M"),
        ("Male", "M"),
        ("F", "F"),
        ("female", "F"),
        ("FEMALE", "F"),
        ("O", "O"),
        ("other", "O"),
        ("transgender", "O"),
        ("TG", "O"),
        ("U", "U"),
        ("unknown", "U"),
        (None, "U"),
    ],
)
def test_sex_values(given: str | None, code: str) -> None:
    row = one({"sex": given})
    assert (row["sex"], row["_problems"]) == (code, [])


def test_unknown_sex_is_a_problem_with_a_suggestion() -> None:
    assert reasons(one({"sex": "X"})) == ["sex 'X' is not one of M, F, O, U"]
    assert reasons(one({"sex": "femal"})) == [
        "sex 'femal' is not one of M, F, O, U; did you mean female (F)?"
    ]


@pytest.mark.parametrize(
    ("given", "code"),
    [
        *((c, c) for c in contract.MODALITY_CODES),
        ("ct", "CT"),
        ("opt", "OPT"),
        ("x-ray", "DX"),
        ("X-Ray", "DX"),
        ("xray", "DX"),
        ("MRI", "MR"),
        ("mammogram", "MG"),
        ("Fundus", "OP"),
        ("OCT", "OPT"),
        ("ultrasound", "US"),
        ("histopathology", "SM"),
        ("WSI", "SM"),
        ("dermoscopy", "XC"),
        ("endoscopy", "ES"),
        ("Computed  Tomography", "CT"),
        ("PET-CT", "PT"),
    ],
)
def test_modality_codes_and_names(given: str, code: str) -> None:
    row = one({"modality": given})
    assert (row["modality"], row["_problems"]) == (code, [])


def test_unknown_modality_is_a_problem_with_a_suggestion() -> None:
    assert reasons(one({"modality": "XYZ"})) == ["modality 'XYZ' is not a known modality"]
    assert reasons(one({"modality": "mamogram"})) == [
        "modality 'mamogram' is not a known modality; did you mean mammogram (MG)?"
    ]
    assert reasons(one({"modality": "ultrasond"})) == [
        "modality 'ultrasond' is not a known modality; did you mean ultrasound (US)?"
    ]


@pytest.mark.parametrize(
    ("given", "area"),
    [
        ("urban", "urban"),
        ("Urban", "urban"),
        ("U", "urban"),
        ("u", "urban"),
        ("rural", "rural"),
        ("R", "rural"),
        ("unknown", "unknown"),
        (None, "unknown"),
    ],
)
def test_area_type_values(given: str | None, area: str) -> None:
    row = one({"area_type": given})
    assert (row["area_type"], row["_problems"]) == (area, [])


def test_unknown_area_type_is_a_problem() -> None:
    assert reasons(one({"area_type": "semi-urban"})) == [
        "area_type 'semi-urban' is not one of urban, rural, unknown"
    ]
    assert reasons(one({"area_type": "rurall"})) == [
        "area_type 'rurall' is not one of urban, rural, unknown; did you mean rural?"
    ]


@pytest.mark.parametrize(
    ("given", "facility"),
    [
        ("PHC", "PHC"),
        ("phc", "PHC"),
        ("Primary Health Centre", "PHC"),
        ("CHC", "CHC"),
        ("district hospital", "district_hospital"),
        ("District Hospital", "district_hospital"),
        ("district_hospital", "district_hospital"),
        ("medical college", "medical_college"),
        ("tertiary", "tertiary"),
        ("private", "private"),
        ("mobile/camp", "mobile_camp"),
        ("camp", "mobile_camp"),
        ("Mobile Camp", "mobile_camp"),
        ("mobile_camp", "mobile_camp"),
    ],
)
def test_facility_type_values(given: str, facility: str) -> None:
    row = one({"facility_type": given})
    assert (row["facility_type"], row["_problems"]) == (facility, [])


def test_unknown_facility_type_is_a_problem() -> None:
    assert reasons(one({"facility_type": "clinic"})) == [
        "facility_type 'clinic' is not a known facility type (PHC, CHC, district hospital, "
        "medical college, tertiary, private, mobile/camp)"
    ]


def test_body_part_is_upper_cased() -> None:
    assert one({"body_part": "Chest"})["body_part"] == "CHEST"


@pytest.mark.parametrize(("given", "count"), [("0", 0), ("12", 12), ("007", 7)])
def test_n_images_whole_numbers(given: str, count: int) -> None:
    row = one({"n_images": given})
    assert (row["n_images"], row["_problems"]) == (count, [])


@pytest.mark.parametrize("given", ["-3", "1.5", "many"])
def test_n_images_that_is_not_a_whole_number_is_a_problem(given: str) -> None:
    assert reasons(one({"n_images": given})) == [f"n_images '{given}' is not a whole number ≥ 0"]


@pytest.mark.parametrize(
    ("column", "given", "value"),
    [
        ("annotation_status", "none", "none"),
        ("annotation_status", "Partial", "partial"),
        ("annotation_status", "COMPLETE", "complete"),
        ("consent", "yes", "yes"),
        ("consent", "No", "no"),
        ("consent", "WAIVED", "waived"),
    ],
)
def test_annotation_status_and_consent_values(column: str, given: str, value: str) -> None:
    row = one({column: given})
    assert (row[column], row["_problems"]) == (value, [])


def test_unknown_annotation_status_and_consent_are_problems() -> None:
    assert reasons(one({"annotation_status": "done"})) == [
        "annotation_status 'done' is not one of none, partial, complete"
    ]
    assert reasons(one({"consent": "maybe"})) == ["consent 'maybe' is not one of yes, no, waived"]


@pytest.mark.parametrize(
    ("given", "skin_type"),
    [("I", 1), ("II", 2), ("III", 3), ("iv", 4), ("V", 5), ("VI", 6), ("1", 1), ("6", 6)],
)
def test_fitzpatrick_roman_or_arabic(given: str, skin_type: int) -> None:
    row = one({"fitzpatrick": given})
    assert (row["fitzpatrick"], row["_problems"]) == (skin_type, [])


def test_fitzpatrick_out_of_range_is_a_problem() -> None:
    assert reasons(one({"fitzpatrick": "7"})) == [
        "fitzpatrick '7' is not a Fitzpatrick skin type (I–VI or 1–6)"
    ]
    assert reasons(one({"fitzpatrick": "VII"})) == [
        "fitzpatrick 'VII' is not a Fitzpatrick skin type (I–VI or 1–6); did you mean VI (6)?"
    ]


# -- ICD-10 and conditions ----------------------------------------------------------------------

ICD10_HELP = (
    "expected a letter, 2 digits and optionally a dot and 1–4 letters or digits, e.g. C50.9"
)


@pytest.mark.parametrize(
    ("given", "codes"),
    [
        ("C50.9", ["C50.9"]),
        ("C509", ["C50.9"]),
        ("c50.9", ["C50.9"]),
        ("C50", ["C50"]),
        ("C50.9; E11.3", ["C50.9", "E11.3"]),
        ("C50.9,J44", ["C50.9", "J44"]),
        ("C50.9 ;  E11.3 ,J18.9", ["C50.9", "E11.3", "J18.9"]),
        ("C50.9; C509", ["C50.9"]),
        ("E11.319", ["E11.319"]),
        ("U07.1", ["U07.1"]),
        ("normal", []),
        ("Normal", []),
        ("NORMAL", []),
    ],
)
def test_icd10_codes_are_split_validated_and_spelt_with_a_dot(given: str, codes: list[str]) -> None:
    row = one({"diagnosis_icd10": given})
    assert (row["diagnosis_icd10"], row["_problems"]) == (codes, [])


def test_malformed_icd10_with_a_letter_for_a_digit_gets_the_corrected_code() -> None:
    assert reasons(one({"diagnosis_icd10": "C5O.9; E11.3; J1I"})) == [
        "diagnosis_icd10 'C5O.9; E11.3; J1I' has malformed ICD-10 codes 'C5O.9', 'J1I' "
        f"({ICD10_HELP}); did you mean C50.9, J11?"
    ]


def test_absent_diagnosis_leaves_codes_and_conditions_unknown() -> None:
    row = one({"diagnosis_icd10": None})
    assert (row["diagnosis_icd10"], row["conditions"]) == (None, None)


ICD10_HELP = (
    "expected a letter, 2 digits and optionally a dot and 1–4 letters or digits, e.g. C50.9"
)


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("12A", f"has malformed ICD-10 code '12A' ({ICD10_HELP})"),
        ("C5", f"has malformed ICD-10 code 'C5' ({ICD10_HELP})"),
        ("C50.12345", f"has malformed ICD-10 code 'C50.12345' ({ICD10_HELP})"),
        ("C50.9; breast ca; X", f"has malformed ICD-10 codes 'breast ca', 'X' ({ICD10_HELP})"),
        ("normal; C50", f"has malformed ICD-10 code 'normal' ({ICD10_HELP})"),
        (";", "contains no ICD-10 code"),
    ],
)
def test_malformed_icd10_is_a_problem(given: str, reason: str) -> None:
    reason = f"diagnosis_icd10 '{given}' {reason}"
    row = one({"diagnosis_icd10": given})
    assert problems(row) == [("diagnosis_icd10", given, reason)]
    assert (row["diagnosis_icd10"], row["conditions"]) == (None, None)


DM = ["high_blood_glucose", "diabetes_mellitus"]


@pytest.mark.parametrize(
    ("code", "conditions"),
    [
        ("C50.9", ["cancer_all_sites", "cancer_breast"]),
        ("C50", ["cancer_all_sites", "cancer_breast"]),
        ("C33", ["cancer_all_sites", "cancer_lung"]),
        ("C34.1", ["cancer_all_sites", "cancer_lung"]),
        ("C53.0", ["cancer_all_sites", "cancer_cervix_uteri"]),
        ("C00.1", ["cancer_all_sites", "cancer_oral_cavity"]),
        ("C06.9", ["cancer_all_sites", "cancer_oral_cavity"]),
        ("C07", ["cancer_all_sites"]),
        ("C97", ["cancer_all_sites"]),
        ("D05.1", ["other"]),
        ("A15.0", ["tuberculosis"]),
        ("A19.9", ["tuberculosis"]),
        ("A20", ["other"]),
        ("E10.9", DM),
        ("E14", DM),
        ("E11.3", [*DM, "diabetic_retinopathy"]),
        ("E11.319", [*DM, "diabetic_retinopathy"]),
        ("E14.3", [*DM, "diabetic_retinopathy"]),
        ("E08.321", ["diabetic_retinopathy"]),
        ("E09.3", ["diabetic_retinopathy"]),
        ("E15.3", ["other"]),
        ("H36.0", ["diabetic_retinopathy"]),
        ("H36.8", ["other"]),
        ("I10", ["elevated_blood_pressure"]),
        ("I15.9", ["elevated_blood_pressure"]),
        ("I21.0", ["ischemic_heart_disease"]),
        ("I63.9", ["stroke"]),
        ("J44.1", ["copd"]),
        ("J45", ["other"]),
        ("J12", ["pneumonia"]),
        ("J18.9", ["pneumonia"]),
        ("U07.1", ["covid19"]),
        ("U07.2", ["other"]),
        ("U07", ["other"]),
        ("Z00.0", ["other"]),
    ],
)
def test_icd10_code_maps_to_every_condition_whose_range_covers_it(
    code: str, conditions: list[str]
) -> None:
    assert one({"diagnosis_icd10": code})["conditions"] == conditions


def test_several_codes_give_the_union_of_their_conditions_in_reference_order() -> None:
    row = one({"diagnosis_icd10": "E11.3; C50.9; J18.9"})
    assert row["conditions"] == [
        "cancer_all_sites",
        "cancer_breast",
        "high_blood_glucose",
        "diabetes_mellitus",
        "diabetic_retinopathy",
        "pneumonia",
    ]


def test_other_appears_only_when_no_code_has_a_condition() -> None:
    assert one({"diagnosis_icd10": "Z00.0; J18.9"})["conditions"] == ["pneumonia"]
    assert one({"diagnosis_icd10": "Z00.0; R91"})["conditions"] == ["other"]


def test_normal_means_no_codes_and_the_normal_condition() -> None:
    row = one({"diagnosis_icd10": "normal"})
    assert (row["diagnosis_icd10"], row["conditions"]) == ([], ["normal"])


def test_condition_rules_follow_the_reference_file() -> None:
    names = [name for name, _ in condition_rules(REF.conditions)]
    assert names == REF.conditions["condition"].to_list()


def test_an_unreadable_condition_range_fails_loudly() -> None:
    conditions = pl.DataFrame({"condition": ["x"], "icd10_range": ["see note"]})
    with pytest.raises(ValueError, match="cannot read icd10_range 'see note' of x"):
        condition_rules(conditions)


# -- institution registry rows ------------------------------------------------------------------


def registry(rows: Sequence[dict[str, str | None]]) -> pl.DataFrame:
    columns = list(contract.REGISTRY_COLUMNS)
    frame = pl.DataFrame(
        {c: [r.get(c) for r in rows] for c in columns}, schema=dict.fromkeys(columns, pl.String)
    )
    return frame.insert_column(0, pl.Series("_row", range(1, len(rows) + 1), dtype=pl.Int64))


def test_registry_rows_are_normalised() -> None:
    out = normalize_institutions(
        registry(
            [
                {
                    "institution_id": "od-ctc-02",
                    "name": "District Hospital Cuttack",
                    "state": "Orissa",
                    "city": "Cuttack",
                    "facility_type": "district hospital",
                    "sector": "Public",
                    "joined_date": "01/06/2023",
                }
            ]
        ),
        REF,
    )
    assert out.row(0, named=True) == {
        "_row": 1,
        "institution_id": "OD-CTC-02",
        "name": "District Hospital Cuttack",
        "state": "IN-OD",
        "city": "Cuttack",
        "facility_type": "district_hospital",
        "sector": "public",
        "joined_date": dt.date(2023, 6, 1),
        "_problems": [],
    }


def test_registry_problems_are_reported_per_row() -> None:
    out = normalize_institutions(
        registry(
            [
                {"institution_id": "A", "name": "Fine", "state": "KA"},
                {
                    "institution_id": None,
                    "name": "",
                    "state": "Kernataka",
                    "sector": "ngo",
                    "joined_date": "31/02/2024",
                },
            ]
        ),
        REF,
    )
    assert out["_problems"][0].to_list() == []
    assert [(p["column"], p["reason"]) for p in out["_problems"][1]] == [
        ("institution_id", "institution_id is required but empty"),
        ("name", "name is required but empty"),
        (
            "state",
            "state 'Kernataka' is not a state or UT of India; did you mean Karnataka (IN-KA)?",
        ),
        ("sector", "sector 'ngo' is not one of public, private"),
        (
            "joined_date",
            "joined_date '31/02/2024' is not a valid date (accepted: YYYY-MM-DD, "
            "YYYYMMDD, DD/MM/YYYY, DD-MM-YYYY)",
        ),
    ]


# -- properties ---------------------------------------------------------------------------------

VOCABULARY = {
    "state": st.sampled_from(["Kerala", "KA", "IN-OR", "Atlantis", "Orisa", ""]),
    "sex": st.sampled_from(["M", "female", "X", ""]),
    "age": st.sampled_from(["45", "006M", "150", "abc", ""]),
    "modality": st.sampled_from(["CT", "x-ray", "XYZ", ""]),
    "diagnosis_icd10": st.sampled_from(["C50.9", "normal", "12A", "E11.3; I10", ""]),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.fixed_dictionaries(
            {}, optional={c: s | st.text(max_size=8) for c, s in VOCABULARY.items()}
        ),
        min_size=1,
        max_size=12,
    )
)
def test_every_present_value_is_either_normalised_or_a_problem(
    rows: list[dict[str, str]],
) -> None:
    out = normalise(rows)
    assert out["_row"].to_list() == list(range(1, len(rows) + 1))
    for raw_row, row in zip(rows, out.iter_rows(named=True), strict=True):
        flagged = {p["column"]: p["value"] for p in row["_problems"]}
        for column, value in raw_row.items():
            target = "age_years" if column == "age" else column
            if value == "" and column in contract.REQUIRED_COLUMNS:
                assert flagged[column] is None
            elif value == "":
                assert column not in flagged
            elif column in flagged:
                assert flagged[column] == value
                assert row[target] is None
            else:
                assert row[target] is not None, (column, value)
        if row["state"] is not None:
            assert row["state"] in REF.states["iso_code"].to_list()
