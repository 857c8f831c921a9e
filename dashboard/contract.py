"""The data contract (shared/spec/DATA_CONTRACT.md) as code: column names, synonyms, vocabularies.

Everything that reads or writes study metadata takes its names and accepted values from here,
so the manifest reader, the DICOM reader, the demo generator and the tests agree.
"""

from __future__ import annotations

import re

# Canonical manifest columns in contract order, each with the header synonyms it accepts.
# Headers are matched case-insensitively after trimming, with spaces and hyphens read as "_".
COLUMN_SYNONYMS: dict[str, tuple[str, ...]] = {
    "study_uid": ("studyinstanceuid", "study_id", "study_instance_uid"),
    "patient_id": ("patientid", "patient_pseudo_id"),
    "institution_id": ("site", "site_id"),
    "study_date": ("studydate",),
    "modality": (),
    "sex": ("patientsex", "gender"),
    "age": ("patientage", "age_years"),
    "birth_year": (),
    "state": ("state_ut", "residence_state"),
    "district": (),
    "area_type": ("urban_rural",),
    "diagnosis_icd10": ("icd10", "diagnosis"),
    "body_part": ("bodypartexamined",),
    "facility_type": (),
    "manufacturer": (),
    "device_model": ("manufacturermodelname",),
    "n_images": (),
    "annotation_status": (),
    "consent": (),
    "fitzpatrick": (),
}
MANIFEST_COLUMNS: tuple[str, ...] = tuple(COLUMN_SYNONYMS)
REQUIRED_COLUMNS: tuple[str, ...] = (
    "study_uid",
    "patient_id",
    "institution_id",
    "study_date",
    "modality",
)

REGISTRY_COLUMNS: tuple[str, ...] = (
    "institution_id",
    "name",
    "state",
    "city",
    "facility_type",
    "sector",
    "joined_date",
)

# DICOM modality codes the contract accepts, and the everyday names that map onto them.
MODALITY_CODES: tuple[str, ...] = (
    "CT",
    "MR",
    "CR",
    "DX",
    "MG",
    "US",
    "PT",
    "NM",
    "XA",
    "RF",
    "OP",
    "OPT",
    "SM",
    "XC",
    "ES",
)
MODALITY_NAMES: dict[str, str] = {
    "x-ray": "DX",
    "xray": "DX",
    "x ray": "DX",
    "radiograph": "DX",
    "digital radiography": "DX",
    "computed radiography": "CR",
    "chest x-ray": "DX",
    "cxr": "DX",
    "ct": "CT",
    "ct scan": "CT",
    "computed tomography": "CT",
    "mri": "MR",
    "mr": "MR",
    "magnetic resonance": "MR",
    "mammogram": "MG",
    "mammography": "MG",
    "fundus": "OP",
    "fundus photograph": "OP",
    "fundus photography": "OP",
    "oct": "OPT",
    "optical coherence tomography": "OPT",
    "ultrasound": "US",
    "usg": "US",
    "sonography": "US",
    "ultrasonography": "US",
    "pet": "PT",
    "pet-ct": "PT",
    "pet ct": "PT",
    "nuclear medicine": "NM",
    "spect": "NM",
    "angiography": "XA",
    "fluoroscopy": "RF",
    "histopathology": "SM",
    "wsi": "SM",
    "whole slide image": "SM",
    "whole slide imaging": "SM",
    "pathology": "SM",
    "dermoscopy": "XC",
    "dermatoscopy": "XC",
    "clinical photograph": "XC",
    "endoscopy": "ES",
}

SEX_CODES: tuple[str, ...] = ("M", "F", "O", "U")
SEX_NAMES: dict[str, str] = {
    "m": "M",
    "male": "M",
    "f": "F",
    "female": "F",
    "o": "O",
    "other": "O",
    "transgender": "O",
    "tg": "O",
    "u": "U",
    "unknown": "U",
}

AREA_TYPES: tuple[str, ...] = ("urban", "rural", "unknown")
AREA_NAMES: dict[str, str] = {
    "urban": "urban",
    "u": "urban",
    "rural": "rural",
    "r": "rural",
    "unknown": "unknown",
}

FACILITY_TYPES: tuple[str, ...] = (
    "PHC",
    "CHC",
    "district_hospital",
    "medical_college",
    "tertiary",
    "private",
    "mobile_camp",
)
FACILITY_NAMES: dict[str, str] = {
    "phc": "PHC",
    "primary health centre": "PHC",
    "primary health center": "PHC",
    "chc": "CHC",
    "community health centre": "CHC",
    "community health center": "CHC",
    "district hospital": "district_hospital",
    "dh": "district_hospital",
    "medical college": "medical_college",
    "medical college hospital": "medical_college",
    "tertiary": "tertiary",
    "tertiary care": "tertiary",
    "tertiary hospital": "tertiary",
    "private": "private",
    "private hospital": "private",
    "mobile": "mobile_camp",
    "camp": "mobile_camp",
    "mobile/camp": "mobile_camp",
    "mobile camp": "mobile_camp",
    "screening camp": "mobile_camp",
}

ANNOTATION_STATUSES: tuple[str, ...] = ("none", "partial", "complete")
CONSENT_VALUES: tuple[str, ...] = ("yes", "no", "waived")
SECTORS: tuple[str, ...] = ("public", "private")

# Census 2011 five-year bands (age_sex_population.csv), the labels the index stores.
AGE_BANDS: tuple[str, ...] = (*(f"{lo}-{lo + 4}" for lo in range(0, 80, 5)), "80+")

MIN_STUDY_YEAR = 1990
MAX_AGE_YEARS = 120
MAX_STUDY_UID_LENGTH = 128

# Header words that mark a direct identifier. A header is refused when one of its words is here,
# unless another word says it names a thing rather than a person ("institution_name").
_IDENTIFIER_WORDS = frozenset(
    {
        "name",
        "names",
        "firstname",
        "lastname",
        "surname",
        "fullname",
        "patientname",
        "phone",
        "telephone",
        "mobile",
        "mobileno",
        "phoneno",
        "phonenumber",
        "contact",
        "address",
        "addr",
        "street",
        "pincode",
        "aadhaar",
        "aadhar",
        "adhaar",
        "uidai",
        "mrn",
        "medicalrecordnumber",
        "uhid",
        "email",
        "emailid",
        "mail",
    }
)
_NOT_A_PERSON_WORDS = frozenset(
    {
        "institution",
        "hospital",
        "site",
        "facility",
        "device",
        "manufacturer",
        "station",
        "model",
        "scanner",
        "study",
        "series",
        "protocol",
        "state",
        "district",
        "city",
        "file",
        "body",
        "part",
        "condition",
        "disease",
    }
)


def header_key(header: str) -> str:
    """The form a header is compared in: trimmed, lower-case, spaces and hyphens as '_'."""
    return re.sub(r"[\s\-]+", "_", header.strip().lstrip("\ufeff").lower())


def _header_words(header: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", header.strip())
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def is_identifier_header(header: str) -> bool:
    """True when a column header looks like a direct identifier (name, phone, Aadhaar, ...)."""
    words = _header_words(header)
    compact = "".join(words)
    if compact in _IDENTIFIER_WORDS:
        return True
    if any(w in _NOT_A_PERSON_WORDS for w in words):
        return False
    return any(w in _IDENTIFIER_WORDS for w in words)


def canonical_column(header: str) -> str | None:
    """The contract column a header names, or None when it is not one."""
    key = header_key(header)
    for column, synonyms in COLUMN_SYNONYMS.items():
        if key == column or key in synonyms:
            return column
    return None
