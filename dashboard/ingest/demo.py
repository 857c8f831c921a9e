"""Synthetic demo programme: fictional partner institutions and their raw study manifests.

``generate_demo`` builds an institution registry and a manifest of imaging studies as partners
would submit them (every value a raw string), so the demo goes through the same normalisation,
validation and quarantine as real data. Nothing here describes a real hospital or patient.

Design, in the order things are drawn (all vectorised with numpy, then rendered with polars):

1. Partners (``PARTNERS``): 26 fictional institutions in 19 states/UTs, each with a facility
   type, a relative capacity, a join date (a fraction of the window 2023-01 .. today - 120 days)
   and an export profile (date/age/sex/state/modality formats, missingness, data-entry errors).
2. Accrual: a daily intensity per partner = capacity x ramp-up after joining x programme growth
   x weekday (quiet Sundays) x monsoon lull for camps. Patients are drawn per partner in
   proportion to it, so monthly accrual grows and no study predates its partner's join date.
3. Patients: a protocol (modality + body part) from the facility's modality mix, then sex and age
   from the protocol (MG women 40+, fundus adults, paediatric chest X-rays), residence from the
   partner's catchment (own state, ``NEIGHBOURS``, a thin national spread), urban/rural from the
   facility type, a diagnosis consistent with the protocol (conditions.csv codes), and a number
   of studies (follow-ups) with gaps; age grows between a patient's studies.
4. Studies: n_images by modality, a scanner from the partner's fleet, annotation status (older
   studies more often annotated), missing values at partner-specific rates.
5. Rendering: every column is a gather from a small vocabulary (formats x values), so there is
   no per-row Python (200 k rows in well under a second, 10 M in 10-20 s and ~4 GB); about
   0.3 % of rows get one planted invalid value, listed in ``DemoData.planted_errors``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import polars as pl

from dashboard.contract import MANIFEST_COLUMNS, MAX_AGE_YEARS, REGISTRY_COLUMNS
from dashboard.reference import load_reference

__all__ = [
    "NEIGHBOURS",
    "PARTNERS",
    "PROTOCOLS",
    "DemoData",
    "Partner",
    "Protocol",
    "generate_demo",
]

PROGRAMME_START = dt.date(2023, 1, 1)
MIN_WINDOW_DAYS = 180  # `today` must leave at least this much programme history
JOIN_MARGIN_DAYS = 120  # the last partner joins at least this long before `today`
UID_ROOT = "1.2.356.999"  # made-up, unregistered OID arc used only for demo study UIDs

# --- accrual -------------------------------------------------------------------------------
# Throughput per partner grows as departments digitise and upload routinely (~35 %/year);
# new partners ramp up over their first months; Sundays are quiet (emergencies only);
# screening camps pause in the monsoon (June-September).
GROWTH_PER_MONTH = 0.025
RAMP_DEPTH = 0.8  # a new partner starts at 20 % of its eventual throughput ...
RAMP_MONTHS = 4.0  # ... and gets most of the way there in about this many months
SATURDAY_FACTOR = 0.85
SUNDAY_FACTOR = 0.2
MONSOON_CAMP_FACTOR = 0.35
MIN_GAP_DAYS = 7  # between two studies of one patient (same-day repeats are not modelled)
MAX_FOLLOWUPS = 11  # cap on further studies of one patient (oncology follow-up is the tail)
PATIENT_SURPLUS = 1.03  # patients drawn in excess, then trimmed to the exact number of studies

# --- who gets imaged --------------------------------------------------------------------------
# Share of patients living in the partner's own state. Primary care serves its block; national
# referral centres draw from neighbouring states and from far away.
HOME_SHARE = {
    "PHC": 0.97, "CHC": 0.96, "mobile_camp": 0.98, "district_hospital": 0.92,
    "medical_college": 0.85, "private": 0.82, "tertiary": 0.68,
}  # fmt: skip
# Share spread over all of India in proportion to population (migrants, long-distance referrals);
# the rest of the non-home share goes to NEIGHBOURS in proportion to population, damped for the
# north-east and the islands, where travel to a partner takes days (ship, long road journeys).
FAR_SHARE = {"tertiary": 0.06, "private": 0.02, "medical_college": 0.02}
DEFAULT_FAR_SHARE = 0.005
NORTH_EAST = ("IN-AR", "IN-AS", "IN-MN", "IN-ML", "IN-MZ", "IN-NL", "IN-SK", "IN-TR")
ISLANDS = ("IN-AN", "IN-LD")
REMOTE_STATES = NORTH_EAST + ISLANDS
REMOTE_FACTOR = 0.3  # relative pull of a remote state on a partner outside its region
# Islanders have no tertiary care at home and are flown or shipped to these referral centres:
# a share of the centres' patients (below population parity, so the islands stay sparse).
ISLAND_REFERRALS: dict[str, dict[str, float]] = {
    "IN-TN": {"IN-AN": 0.001},
    "IN-WB": {"IN-AN": 0.0005},
    "IN-KL": {"IN-LD": 0.0004},
}
REFERRAL_CENTRES = ("tertiary", "medical_college")
# Urban share of patients by facility type: imaging is concentrated in city hospitals, so the
# programme over-represents urban India (census 2011 urban share: 31 %).
URBAN_SHARE = {
    "PHC": 0.06, "CHC": 0.18, "mobile_camp": 0.12, "district_hospital": 0.45,
    "medical_college": 0.62, "private": 0.86, "tertiary": 0.72,
}  # fmt: skip
# Retrospective archives at large hospitals are used under an ethics-committee consent waiver.
CONSENT_WAIVED = {"tertiary": 0.45, "medical_college": 0.35, "private": 0.25}
DEFAULT_CONSENT_WAIVED = 0.05
CONSENT_REFUSED = 0.002
# Women are less often brought for imaging (distance, cost, who decides on care): the odds that a
# patient is female are multiplied by this for every protocol not specific to one sex.
FEMALE_ACCESS_ODDS = 0.7
SEX_SPECIFIC = 0.9  # protocols with a female share at least this high (or low) are exempt
SEX_OTHER = 0.001  # recorded as other/transgender
SEX_UNKNOWN = 0.004  # recorded explicitly as unknown
# Modality mix by facility type: primary care and camps only have X-ray, fundus cameras and
# ultrasound; cross-sectional imaging, mammography and nuclear medicine sit in bigger hospitals.
MODALITY_MIX: dict[str, dict[str, float]] = {
    "PHC": {"DX": 0.55, "OP": 0.35, "US": 0.10},
    "mobile_camp": {"DX": 0.55, "OP": 0.33, "MG": 0.06, "XC": 0.06},
    "CHC": {"DX": 0.50, "CR": 0.05, "US": 0.27, "OP": 0.18},
    "district_hospital": {
        "DX": 0.30, "CR": 0.08, "US": 0.25, "CT": 0.17, "OP": 0.10, "MG": 0.04, "ES": 0.03,
        "RF": 0.03,
    },
    "medical_college": {
        "DX": 0.24, "CR": 0.04, "CT": 0.19, "MR": 0.10, "US": 0.15, "MG": 0.05, "OP": 0.07,
        "OPT": 0.02, "SM": 0.05, "XA": 0.03, "RF": 0.02, "XC": 0.02, "ES": 0.02,
    },
    "tertiary": {
        "CT": 0.24, "MR": 0.17, "DX": 0.14, "US": 0.10, "MG": 0.08, "SM": 0.08, "PT": 0.05,
        "XA": 0.05, "NM": 0.03, "OPT": 0.02, "OP": 0.02, "ES": 0.02,
    },
    "private": {
        "CT": 0.20, "MR": 0.20, "US": 0.20, "DX": 0.15, "MG": 0.08, "OP": 0.08, "OPT": 0.05,
        "PT": 0.02, "XC": 0.02,
    },
}  # fmt: skip

# --- what arrives as raw text -----------------------------------------------------------------
# Base missingness per value; a partner's `missing` factor multiplies it (capped at 90 %).
MISSING = {
    "age": 0.03, "sex": 0.005, "state": 0.04, "area_type": 0.08, "diagnosis_icd10": 0.12,
    "body_part": 0.03, "device": 0.05, "n_images": 0.02, "annotation_status": 0.08,
    "consent": 0.04,
}  # fmt: skip
RECENT_UNREPORTED_DAYS = 45  # reports of the newest studies are often not linked yet ...
RECENT_UNREPORTED_EXTRA = 0.25  # ... adding this to the missing-diagnosis rate
FORMAT_DRIFT = 0.04  # rows typed by hand or from a second system, in another accepted format
STATE_VARIANT = 0.08  # rows writing the state as an old name/spelling variant ("Orissa")
HOME_DISTRICT = 0.55  # own-state patients whose district is recorded (partners that record it)
AREA_UNKNOWN_WORD = 0.01  # "unknown" written out rather than left blank
ANNOTATED_MIN, ANNOTATED_MAX = 0.05, 0.5  # annotated share for the newest .. oldest studies
ANNOTATION_COMPLETE = 0.6  # of annotated studies, share fully annotated
# Planted invalid rows, so the quarantine has something to show (share of all rows), and the
# mix of problems; a partner's `errors` factor makes hand-entered sites err more often.
PLANTED_ERROR_RATE = 0.003
PLANTED_KINDS: dict[str, tuple[str, float]] = {
    "age_out_of_range": ("age", 0.18),
    "state_unknown": ("state", 0.10),
    "state_misspelt": ("state", 0.22),
    "icd10_malformed": ("diagnosis_icd10", 0.18),
    "date_impossible": ("study_date", 0.14),
    "date_future": ("study_date", 0.08),
    "institution_unregistered": ("institution_id", 0.10),
}
TYPO_ID_MIN_ERRORS = 2.0  # only partners that type by hand (errors >= this) mistype their own id
BAD_AGES = ("150", "999", "130", "200Y")
BAD_ICD10 = ("C5O.9", "E11..3", "18.9", "I63,9", "TB")  # letter O, double dot, no letter, ...
IMPOSSIBLE_DAYS = ("31/02", "30/02", "31/04", "31/06", "31/09", "31/11")
FUTURE_TYPO_YEARS = 20  # "2045-04-03" for "2025-04-03"
UNKNOWN_STATE = "Atlantis"
# Misspellings that are NOT accepted aliases (checked by the tests against state_aliases.csv).
MISSPELT_STATES = {
    "IN-KA": "Kernataka", "IN-OD": "Orisa", "IN-MH": "Maharashtr", "IN-RJ": "Rajsthan",
    "IN-WB": "West Bangal", "IN-UP": "Utter Pradesh", "IN-TN": "Tamil Naidu", "IN-DL": "Dehli",
    "IN-KL": "Keralla", "IN-GJ": "Gujarath", "IN-BR": "Bihaar", "IN-TS": "Telangna",
    "IN-AP": "Andhra Pardesh", "IN-MP": "Madhya Pardesh", "IN-CG": "Chhatisgadh",
    "IN-AS": "Asam", "IN-HR": "Haryna",
}  # fmt: skip
# Accepted old names, spellings and scripts (all in state_aliases.csv).
STATE_VARIANTS: dict[str, tuple[str, ...]] = {
    "IN-OD": ("Orissa",), "IN-PY": ("Pondicherry", "Pondy"), "IN-TN": ("Tamilnadu", "T.N."),
    "IN-DL": ("NCT of Delhi", "New Delhi", "Delhi NCT"), "IN-UK": ("Uttaranchal",),
    "IN-JK": ("J&K", "Jammu & Kashmir"), "IN-KA": ("Karnatka",), "IN-MH": ("Maharastra",),
    "IN-CG": ("Chattisgarh", "Chhatisgarh"), "IN-TS": ("Telengana",), "IN-AP": ("Andhra",),
    "IN-KL": ("Kerela",), "IN-WB": ("W.B.", "Paschimbanga"),
    "IN-UP": ("U.P.", "Uttarpradesh", "उत्तर प्रदेश"), "IN-MP": ("M.P.", "Madhyapradesh"),
    "IN-GJ": ("Gujrat",), "IN-RJ": ("Rajastan",), "IN-HR": ("Hariyana",), "IN-HP": ("H.P.",),
    "IN-AN": ("A&N Islands", "Andaman & Nicobar"), "IN-BR": ("बिहार",),
    "IN-DH": ("Daman & Diu", "Dadra and Nagar Haveli"), "IN-JH": ("Jharkand",),
    "IN-LD": ("Lakshadweep Islands",), "IN-CH": ("Chandigarh UT",), "IN-AR": ("Arunachal",),
    "IN-LA": ("Ladakh UT",),
}  # fmt: skip
# Neighbouring and usual referral states of every partner state (islanders travel to Chennai,
# Kolkata and Kochi; the north-east to Guwahati and Kolkata).
NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "IN-MH": ("IN-GJ", "IN-MP", "IN-CG", "IN-TS", "IN-KA", "IN-GA", "IN-DH"),
    "IN-DL": ("IN-UP", "IN-HR", "IN-BR", "IN-UK", "IN-RJ", "IN-PB", "IN-JK"),
    "IN-KA": ("IN-MH", "IN-GA", "IN-KL", "IN-TN", "IN-AP", "IN-TS"),
    "IN-TN": ("IN-KL", "IN-KA", "IN-AP", "IN-PY", "IN-AN"),
    "IN-KL": ("IN-TN", "IN-KA", "IN-LD"),
    "IN-TS": ("IN-AP", "IN-KA", "IN-MH", "IN-CG"),
    "IN-AP": ("IN-TS", "IN-TN", "IN-KA", "IN-OD", "IN-CG"),
    "IN-GJ": ("IN-RJ", "IN-MP", "IN-MH", "IN-DH"),
    "IN-RJ": ("IN-GJ", "IN-MP", "IN-UP", "IN-HR", "IN-PB"),
    "IN-UP": ("IN-BR", "IN-MP", "IN-RJ", "IN-HR", "IN-UK", "IN-DL", "IN-JH", "IN-CG"),
    "IN-BR": ("IN-UP", "IN-JH", "IN-WB"),
    "IN-WB": ("IN-BR", "IN-JH", "IN-OD", "IN-SK", "IN-AS", "IN-TR", "IN-AN"),
    "IN-OD": ("IN-WB", "IN-JH", "IN-CG", "IN-AP"),
    "IN-MP": ("IN-UP", "IN-RJ", "IN-GJ", "IN-MH", "IN-CG"),
    "IN-CH": ("IN-PB", "IN-HR", "IN-HP", "IN-JK", "IN-LA", "IN-UK"),
    "IN-AS": ("IN-ML", "IN-AR", "IN-NL", "IN-MN", "IN-MZ", "IN-TR", "IN-SK"),
    "IN-HR": ("IN-DL", "IN-PB", "IN-RJ", "IN-UP", "IN-HP"),
    "IN-CG": ("IN-MP", "IN-OD", "IN-MH", "IN-TS", "IN-JH", "IN-UP"),
    "IN-PY": ("IN-TN", "IN-KL"),
}
# Export formats a partner's system may use; each is accepted by the contract.
DATE_FORMATS = {
    "iso": "%Y-%m-%d",
    "dicom": "%Y%m%d",
    "dmy_slash": "%d/%m/%Y",
    "dmy_dash": "%d-%m-%Y",
}
AGE_FORMATS = ("years", "dicom", "decimal", "birth_year")
SEX_WORDS = {
    "code": ("M", "F", "O", "U"),
    "word": ("Male", "Female", "Transgender", "Unknown"),
    "lower": ("male", "female", "other", "unknown"),
}
STATE_STYLES = ("name", "iso", "short", "upper")
AREA_WORDS = {
    "lower": ("urban", "rural", "unknown"),
    "title": ("Urban", "Rural", "Unknown"),
    "letter": ("U", "R", "unknown"),
}
MODALITY_WORDS = {
    "title": {
        "DX": "X-ray", "CR": "Computed Radiography", "CT": "CT scan", "MR": "MRI",
        "MG": "Mammography", "US": "Ultrasound", "PT": "PET-CT", "NM": "Nuclear Medicine",
        "XA": "Angiography", "RF": "Fluoroscopy", "OP": "Fundus", "OPT": "OCT",
        "SM": "Histopathology", "XC": "Clinical Photograph", "ES": "Endoscopy",
    },
    "lower": {
        "DX": "xray", "CR": "computed radiography", "CT": "ct", "MR": "mri", "MG": "mammogram",
        "US": "usg", "PT": "pet ct", "NM": "spect", "XA": "angiography", "RF": "fluoroscopy",
        "OP": "fundus photograph", "OPT": "oct", "SM": "wsi", "XC": "clinical photograph",
        "ES": "endoscopy",
    },
}  # fmt: skip
# How a facility type appears in the registry and in manifests (the contract's own examples).
FACILITY_LABELS = {
    "PHC": "PHC", "CHC": "CHC", "district_hospital": "district hospital",
    "medical_college": "medical college", "tertiary": "tertiary", "private": "private",
    "mobile_camp": "mobile/camp",
}  # fmt: skip
# Skin type shares of Indian patients in clinical photographs (types IV-V dominate), as written.
FITZPATRICK = ((0.0, 0.02, 0.18, 0.40, 0.30, 0.10), ("I", "II", "III", "IV", "V", "VI"))


@dataclass(frozen=True)
class Partner:
    """A fictional partner institution and the habits of its export system."""

    code: str  # "MH-01" -> institution_id "DEMO-MH-01"
    name: str
    state: str  # ISO 3166-2:IN
    city: str
    district: str
    facility: str  # contract facility type
    sector: str
    capacity: float  # relative studies per day once ramped up
    join: float  # join date as a fraction of the window 2023-01-01 .. today - JOIN_MARGIN_DAYS
    registry_state: str | None = None  # how the registry writes the state (default: its name)
    mix: dict[str, float] | None = None  # modality mix, when not the facility type's
    home_share: float | None = None
    date_fmt: str = "iso"
    age_fmt: str = "years"
    sex_fmt: str = "code"
    state_fmt: str = "name"
    area_fmt: str = "lower"
    modality_fmt: str = "code"
    fitzpatrick_roman: bool = True
    missing: float = 1.0
    errors: float = 1.0
    lower_id: bool = False  # writes its institution_id in lower case
    icd_dotless: bool = False  # writes ICD-10 codes without the dot ("C509") and "Normal"
    writes_facility: bool = True
    records_district: bool = True

    @property
    def institution_id(self) -> str:
        return f"DEMO-{self.code}"


PARTNERS: tuple[Partner, ...] = (
    Partner("MH-01", "Demo Govt Medical College, Pune (fictional)", "IN-MH", "Pune", "Pune",
            "medical_college", "public", 3.0, 0.0, date_fmt="dmy_slash"),
    Partner("MH-02", "Demo Tertiary Cancer Institute, Mumbai (fictional)", "IN-MH", "Mumbai",
            "Mumbai", "tertiary", "public", 2.5, 0.03, home_share=0.55, age_fmt="dicom",
            mix={"CT": 0.30, "MG": 0.18, "SM": 0.15, "PT": 0.12, "MR": 0.10, "US": 0.08,
                 "DX": 0.05, "NM": 0.02}),
    Partner("MH-03", "Demo Mobile Screening Camp, Nashik (fictional)", "IN-MH", "Nashik",
            "Nashik", "mobile_camp", "public", 1.0, 0.3, date_fmt="dmy_dash", sex_fmt="word",
            modality_fmt="title", missing=2.0, errors=2.5, writes_facility=False),
    Partner("DL-01", "Demo Institute of Medical Sciences, New Delhi (fictional)", "IN-DL",
            "New Delhi", "New Delhi", "tertiary", "public", 3.5, 0.0, home_share=0.5,
            registry_state="NCT of Delhi", date_fmt="dicom", age_fmt="dicom"),
    Partner("DL-02", "Demo Multispeciality Hospital, Delhi (fictional)", "IN-DL", "Delhi",
            "South Delhi", "private", "private", 1.5, 0.2, state_fmt="iso", missing=1.5,
            records_district=False),
    Partner("KA-01", "Demo Medical College, Bengaluru (fictional)", "IN-KA", "Bengaluru",
            "Bengaluru Urban", "medical_college", "public", 2.5, 0.0, state_fmt="iso",
            modality_fmt="lower", sex_fmt="lower"),
    Partner("KA-02", "Demo Eye & Diabetes Centre, Mysuru (fictional)", "IN-KA", "Mysuru",
            "Mysuru", "private", "private", 1.5, 0.15, registry_state="IN-KA",
            mix={"OP": 0.6, "OPT": 0.35, "US": 0.05}, age_fmt="decimal", lower_id=True),
    Partner("TN-01", "Demo Govt General Hospital, Chennai (fictional)", "IN-TN", "Chennai",
            "Chennai", "tertiary", "public", 3.0, 0.08, registry_state="Tamilnadu",
            date_fmt="dmy_slash"),
    Partner("TN-02", "Demo Primary Health Centre, Madurai district (fictional)", "IN-TN",
            "Melur", "Madurai", "PHC", "public", 0.6, 0.35, date_fmt="dmy_slash",
            modality_fmt="title", sex_fmt="word", area_fmt="title", missing=2.0, errors=3.0),
    Partner("KL-01", "Demo Medical College, Kochi (fictional)", "IN-KL", "Kochi", "Ernakulam",
            "medical_college", "public", 2.0, 0.1, fitzpatrick_roman=False),
    Partner("TS-01", "Demo Super-Speciality Hospital, Hyderabad (fictional)", "IN-TS",
            "Hyderabad", "Hyderabad", "private", "private", 2.0, 0.25, date_fmt="dicom",
            age_fmt="dicom", area_fmt="letter", missing=1.5, records_district=False),
    Partner("AP-01", "Demo District Hospital, Guntur (fictional)", "IN-AP", "Guntur", "Guntur",
            "district_hospital", "public", 1.0, 0.4, age_fmt="birth_year", date_fmt="dmy_dash"),
    Partner("GJ-01", "Demo District Hospital, Vadodara (fictional)", "IN-GJ", "Vadodara",
            "Vadodara", "district_hospital", "public", 1.0, 0.3, state_fmt="upper"),
    Partner("RJ-01", "Demo Medical College, Jaipur (fictional)", "IN-RJ", "Jaipur", "Jaipur",
            "medical_college", "public", 1.8, 0.2, sex_fmt="word", icd_dotless=True),
    Partner("UP-01", "Demo Institute of Medical Sciences, Lucknow (fictional)", "IN-UP",
            "Lucknow", "Lucknow", "tertiary", "public", 2.0, 0.3, home_share=0.75,
            modality_fmt="title"),
    Partner("UP-02", "Demo Community Health Centre, Barabanki (fictional)", "IN-UP",
            "Barabanki", "Barabanki", "CHC", "public", 0.6, 0.55, date_fmt="dmy_slash",
            sex_fmt="lower", missing=2.5, errors=2.0),
    Partner("BR-01", "Demo Medical College, Patna (fictional)", "IN-BR", "Patna", "Patna",
            "medical_college", "public", 1.2, 0.5, date_fmt="dmy_slash", missing=1.5,
            icd_dotless=True),
    Partner("WB-01", "Demo Medical College, Kolkata (fictional)", "IN-WB", "Kolkata", "Kolkata",
            "medical_college", "public", 2.0, 0.15, home_share=0.8, state_fmt="short"),
    Partner("WB-02", "Demo TB Screening Camp, Purulia (fictional)", "IN-WB", "Purulia",
            "Purulia", "mobile_camp", "public", 0.8, 0.45, mix={"DX": 0.95, "OP": 0.05},
            modality_fmt="lower", missing=1.5, errors=2.0),
    Partner("OD-01", "Demo District Headquarters Hospital, Sambalpur (fictional)", "IN-OD",
            "Sambalpur", "Sambalpur", "district_hospital", "public", 0.8, 0.4,
            registry_state="Orissa", date_fmt="dmy_slash"),
    Partner("MP-01", "Demo Community Health Centre, Sehore (fictional)", "IN-MP", "Ashta",
            "Sehore", "CHC", "public", 0.5, 0.6, sex_fmt="word", missing=2.0, errors=2.0),
    Partner("CH-01", "Demo Postgraduate Institute, Chandigarh (fictional)", "IN-CH",
            "Chandigarh", "Chandigarh", "tertiary", "public", 2.5, 0.05, home_share=0.3,
            date_fmt="dicom"),
    Partner("AS-01", "Demo Medical College, Guwahati (fictional)", "IN-AS", "Guwahati",
            "Kamrup Metropolitan", "medical_college", "public", 0.6, 0.65, home_share=0.8,
            missing=1.5),
    Partner("HR-01", "Demo Diagnostics Centre, Gurugram (fictional)", "IN-HR", "Gurugram",
            "Gurugram", "private", "private", 1.2, 0.35, age_fmt="dicom",
            records_district=False),
    Partner("CG-01", "Demo Primary Health Centre, Bastar district (fictional)", "IN-CG",
            "Jagdalpur", "Bastar", "PHC", "public", 0.4, 0.7, modality_fmt="title",
            missing=3.0, errors=2.0),
    Partner("PY-01", "Demo Deemed University Medical College, Puducherry (fictional)", "IN-PY",
            "Puducherry", "Puducherry", "medical_college", "private", 1.4, 0.2,
            registry_state="Pondicherry", sex_fmt="lower"),
)  # fmt: skip


@dataclass(frozen=True)
class Protocol:
    """An imaging protocol (modality + body part) with who gets it and what is found."""

    modality: str
    body_part: str
    share: float  # share of the modality's studies
    female: float  # P(female | male or female)
    age: tuple[float, float, float, float]  # paediatric share, adult min, max, mean (years)
    diagnoses: tuple[tuple[str, float], ...]  # raw diagnosis text and weight
    followups: float = 0.4  # mean number of further studies per patient
    gap_days: float = 120.0  # mean days between a patient's studies


ADULT = (0.0, 18.0, 90.0, 48.0)
OLDER = (0.0, 25.0, 92.0, 58.0)
# Chest X-ray: TB (men are ~2/3 of notified TB in India), pneumonia, COPD; 12 % children.
CHEST_XRAY = (
    ("normal", 0.50), ("A15.0", 0.10), ("A16.2", 0.06), ("J18.9", 0.12), ("J44.9", 0.08),
    ("J44.1", 0.02), ("C34.9", 0.01), ("U07.1", 0.01), ("A15.0; J44.9", 0.01),
)  # fmt: skip
EYE_FUNDUS = (
    ("normal", 0.45), ("E11.3", 0.08), ("E11.319", 0.05), ("E11.3293", 0.04), ("E11.3593", 0.02),
    ("H36.0", 0.05), ("E11.3; H36.0", 0.05), ("E11.3,H36.0", 0.02), ("E10.3", 0.01),
    ("H35.0", 0.06), ("H40.1", 0.05), ("H35.3", 0.04),
)  # fmt: skip
PROTOCOLS: tuple[Protocol, ...] = (
    Protocol("DX", "CHEST", 0.82, 0.38, (0.12, 18, 88, 44), CHEST_XRAY, 0.5, 60),
    Protocol("DX", "KNEE", 0.06, 0.55, (0.02, 25, 85, 55), (
        ("normal", 0.4), ("M17.1", 0.5), ("S82.2", 0.1))),
    Protocol("DX", "LSPINE", 0.06, 0.45, ADULT, (("normal", 0.5), ("M54.5", 0.4), ("M51.2", 0.1))),
    Protocol("DX", "ABDOMEN", 0.06, 0.42, (0.08, 18, 85, 42), (("normal", 0.8), ("K56.6", 0.2))),
    Protocol("CR", "CHEST", 1.0, 0.38, (0.12, 18, 88, 44), CHEST_XRAY, 0.5, 60),
    Protocol("CT", "HEAD", 0.35, 0.40, (0.05, 18, 90, 55), (
        ("normal", 0.50), ("I63.9", 0.20), ("I63.5", 0.05), ("I61.9", 0.08), ("S06.0", 0.07),
        ("C71.9", 0.02))),
    Protocol("CT", "CHEST", 0.30, 0.40, OLDER, (
        ("normal", 0.45), ("C34.9", 0.12), ("C34.1", 0.04), ("J44.9", 0.08), ("A15.0", 0.05),
        ("J18.9", 0.08), ("U07.1", 0.02), ("C78.0", 0.03)), 0.8, 90),
    Protocol("CT", "ABDOMEN", 0.25, 0.45, (0.04, 18, 88, 45), (
        ("normal", 0.50), ("N20.0", 0.15), ("K35.8", 0.08), ("C16.9", 0.03), ("C18.9", 0.03),
        ("C22.0", 0.02), ("K80.2", 0.05))),
    Protocol("CT", "HEART", 0.05, 0.30, OLDER, (("normal", 0.5), ("I25.1", 0.5))),
    Protocol("CT", "PELVIS", 0.05, 0.85, ADULT, (
        ("normal", 0.5), ("C53.9", 0.3), ("C56", 0.2)), 0.8, 90),
    Protocol("MR", "BRAIN", 0.40, 0.45, (0.08, 18, 88, 45), (
        ("normal", 0.55), ("I63.9", 0.15), ("C71.9", 0.04), ("G35", 0.03), ("G40.9", 0.06))),
    Protocol("MR", "LSPINE", 0.25, 0.42, ADULT, (("normal", 0.4), ("M51.2", 0.5), ("M54.5", 0.1))),
    Protocol("MR", "KNEE", 0.15, 0.35, (0.0, 16, 75, 38), (
        ("normal", 0.4), ("M23.2", 0.3), ("S83.5", 0.2), ("M17.1", 0.1))),
    Protocol("MR", "BREAST", 0.05, 0.99, (0.0, 30, 80, 50), (
        ("normal", 0.5), ("C50.9", 0.5)), 0.6, 120),
    Protocol("MR", "PELVIS", 0.10, 0.90, ADULT, (("normal", 0.4), ("C53.9", 0.3), ("D25.9", 0.3))),
    Protocol("MR", "HEART", 0.05, 0.35, OLDER, (("normal", 0.5), ("I25.2", 0.3), ("I42.0", 0.2))),
    # Screening and diagnostic mammography: women 40+ (a few men with gynaecomastia or cancer).
    Protocol("MG", "BREAST", 1.0, 0.995, (0.0, 40, 80, 52), (
        ("normal", 0.65), ("C50.9", 0.06), ("C50.4", 0.03), ("C50.8", 0.01), ("D24", 0.10),
        ("N63", 0.10), ("N60.1", 0.05)), 0.3, 365),
    # Diabetic-retinopathy and glaucoma screening: adults, annual recall.
    Protocol("OP", "EYE", 1.0, 0.45, (0.0, 18, 88, 56), EYE_FUNDUS, 0.6, 365),
    Protocol("OPT", "EYE", 1.0, 0.48, (0.0, 18, 90, 58), (
        ("normal", 0.45), ("E11.3", 0.15), ("E11.311", 0.10), ("H35.3", 0.20), ("H40.1", 0.10)),
        0.6, 180),
    Protocol("US", "ABDOMEN", 0.48, 0.48, (0.08, 18, 85, 42), (
        ("normal", 0.60), ("K80.2", 0.12), ("K76.0", 0.15), ("N20.0", 0.06), ("C22.0", 0.01))),
    # Obstetric and gynaecological ultrasound: several scans per pregnancy.
    Protocol("US", "PELVIS", 0.22, 1.0, (0.0, 18, 45, 27), (
        ("Z34.9", 0.60), ("normal", 0.20), ("N83.2", 0.10), ("D25.9", 0.10)), 1.5, 45),
    Protocol("US", "BREAST", 0.07, 0.99, (0.0, 25, 75, 42), (
        ("normal", 0.57), ("C50.9", 0.08), ("N60.1", 0.20), ("D24", 0.15))),
    Protocol("US", "NECK", 0.08, 0.70, ADULT, (("normal", 0.7), ("E04.1", 0.3))),
    Protocol("US", "HEART", 0.10, 0.45, (0.10, 18, 88, 52), (
        ("normal", 0.65), ("I25.1", 0.15), ("I50.9", 0.10), ("I10", 0.10))),
    Protocol("US", "CHEST", 0.05, 0.42, (0.10, 18, 85, 48), (("normal", 0.7), ("J18.9", 0.3))),
    Protocol("PT", "WHOLEBODY", 1.0, 0.45, OLDER, (
        ("normal", 0.20), ("C34.9", 0.25), ("C50.9", 0.15), ("C18.9", 0.08), ("C85.9", 0.12),
        ("C16.9", 0.05), ("C56", 0.05), ("C34.9; C78.0", 0.10)), 1.0, 100),
    Protocol("NM", "HEART", 0.6, 0.35, OLDER, (("normal", 0.6), ("I25.1", 0.3), ("I20.9", 0.1))),
    Protocol("NM", "WHOLEBODY", 0.4, 0.45, OLDER, (("normal", 0.7), ("C79.5", 0.3)), 0.8, 120),
    Protocol("XA", "HEART", 0.8, 0.28, OLDER, (("normal", 0.2), ("I25.1", 0.5), ("I21.9", 0.3))),
    Protocol("XA", "HEAD", 0.2, 0.45, ADULT, (
        ("normal", 0.2), ("I63.9", 0.3), ("I67.1", 0.3), ("I60.9", 0.2))),
    Protocol("RF", "ESOPHAGUS", 1.0, 0.45, ADULT, (("normal", 0.8), ("K22.2", 0.2))),
    Protocol("SM", "BREAST", 0.35, 0.99, (0.0, 25, 85, 50), (
        ("C50.9", 0.60), ("D24", 0.30), ("N60.1", 0.10)), 0.5, 60),
    Protocol("SM", "CERVIX", 0.25, 1.0, (0.0, 25, 70, 45), (
        ("normal", 0.30), ("C53.9", 0.40), ("N87.1", 0.30))),
    Protocol("SM", "LUNG", 0.15, 0.35, OLDER, (("normal", 0.2), ("C34.9", 0.7), ("A15.0", 0.1))),
    # Oral-cancer screening: tobacco chewing makes it a mostly male, middle-aged population.
    Protocol("SM", "MOUTH", 0.15, 0.30, (0.0, 25, 80, 50), (
        ("normal", 0.2), ("C02.9", 0.3), ("C06.9", 0.2), ("K13.2", 0.3))),
    Protocol("SM", "COLON", 0.10, 0.40, OLDER, (("normal", 0.5), ("C18.9", 0.5))),
    Protocol("XC", "SKIN", 0.5, 0.50, (0.08, 18, 80, 35), (
        ("normal", 0.30), ("L80", 0.20), ("L40.0", 0.20), ("B36.0", 0.15), ("L70.0", 0.13),
        ("C43.9", 0.02))),
    Protocol("XC", "MOUTH", 0.4, 0.30, (0.0, 25, 75, 45), (
        ("normal", 0.67), ("K13.2", 0.25), ("C06.9", 0.05), ("C02.9", 0.03))),
    Protocol("XC", "CERVIX", 0.1, 1.0, (0.0, 30, 60, 40), (("normal", 0.8), ("N87.1", 0.2))),
    Protocol("ES", "STOMACH", 0.6, 0.42, ADULT, (
        ("normal", 0.52), ("K29.7", 0.30), ("K25.9", 0.15), ("C16.9", 0.03))),
    Protocol("ES", "COLON", 0.4, 0.42, OLDER, (
        ("normal", 0.75), ("K63.5", 0.15), ("K51.9", 0.05), ("C18.9", 0.05))),
)  # fmt: skip
# Images per study: lognormal median, spread (sigma) and minimum, by modality.
N_IMAGES = {
    "DX": (1.2, 0.35, 1), "CR": (1.2, 0.35, 1), "CT": (220, 0.6, 30), "MR": (280, 0.5, 40),
    "MG": (4, 0.15, 2), "US": (24, 0.5, 2), "PT": (450, 0.35, 100), "NM": (60, 0.6, 4),
    "XA": (180, 0.6, 20), "RF": (20, 0.6, 2), "OP": (2.2, 0.4, 1), "OPT": (64, 0.5, 6),
    "SM": (3, 0.6, 1), "XC": (3, 0.5, 1), "ES": (18, 0.5, 4),
}  # fmt: skip
# Plausible scanner fleet: (modality, manufacturer as written in the header, model).
DEVICES: tuple[tuple[str, str, str], ...] = (
    ("DX", "FUJIFILM Corporation", "FDR Smart X"), ("DX", "FUJIFILM Corporation", "FDR Xair"),
    ("DX", "Allengers Medical Systems", "MARS 50 DR"), ("DX", "Philips", "DigitalDiagnost C90"),
    ("DX", "SIEMENS", "Multix Impact"), ("DX", "GE HEALTHCARE", "Definium 646 HD"),
    ("DX", "Trivitron Healthcare", "Kiran Smart DR"), ("DX", "Wipro GE Healthcare", "Brivo XR118"),
    ("CR", "FUJIFILM Corporation", "FCR Capsula XLII"), ("CR", "Agfa", "CR 30-X"),
    ("CT", "GE MEDICAL SYSTEMS", "Revolution EVO"), ("CT", "Wipro GE Healthcare", "Revolution ACT"),
    ("CT", "Siemens Healthineers", "SOMATOM go.Now"), ("CT", "SIEMENS", "SOMATOM Definition AS"),
    ("CT", "Philips", "Incisive CT"), ("CT", "CANON_MEC", "Aquilion Lightning"),
    ("CT", "TOSHIBA_MEC", "Aquilion Prime SP"),
    ("MR", "Siemens Healthineers", "MAGNETOM Amira"), ("MR", "SIEMENS", "MAGNETOM Vida"),
    ("MR", "GE MEDICAL SYSTEMS", "SIGNA Creator"), ("MR", "Philips Medical Systems", "Ingenia"),
    ("MR", "Canon Medical Systems", "Vantage Orian"),
    ("MG", "GE HEALTHCARE", "Senographe Pristina"),
    ("MG", "Siemens Healthineers", "MAMMOMAT Revelation"),
    ("MG", "HOLOGIC, Inc.", "Selenia Dimensions"),
    ("MG", "FUJIFILM Corporation", "AMULET Innovality"),
    ("US", "GE Healthcare", "LOGIQ P9"), ("US", "GE Healthcare", "Voluson E10"),
    ("US", "Philips", "Affiniti 70"), ("US", "Siemens Healthineers", "ACUSON Juniper"),
    ("US", "Samsung Medison", "HS60"), ("US", "Mindray", "Resona 7"),
    ("PT", "GE MEDICAL SYSTEMS", "Discovery MI"), ("PT", "SIEMENS", "Biograph Vision"),
    ("PT", "Philips", "Vereos"),
    ("NM", "GE MEDICAL SYSTEMS", "Discovery NM/CT 670"), ("NM", "SIEMENS", "Symbia Intevo"),
    ("XA", "Philips", "Azurion 7"), ("XA", "Siemens Healthineers", "ARTIS icono"),
    ("XA", "GE HEALTHCARE", "Innova IGS 520"),
    ("RF", "SIEMENS", "Luminos dRF Max"), ("RF", "Philips", "CombiDiagnost R90"),
    ("OP", "Carl Zeiss Meditec", "VISUCAM 500"), ("OP", "TOPCON", "TRC-NW400"),
    ("OP", "Remidio", "Fundus on Phone NM-10"), ("OP", "Forus Health", "3nethra classic"),
    ("OP", "Canon", "CR-2 AF"),
    ("OPT", "Carl Zeiss Meditec", "CIRRUS HD-OCT 5000"), ("OPT", "TOPCON", "3D OCT-1 Maestro2"),
    ("OPT", "Heidelberg Engineering", "SPECTRALIS"),
    ("SM", "Leica Biosystems", "Aperio GT 450"), ("SM", "Hamamatsu", "NanoZoomer S360"),
    ("SM", "3DHISTECH", "PANNORAMIC 250 Flash III"),
    ("XC", "FotoFinder", "medicam 1000"), ("XC", "Canon", "EOS 1500D"),
    ("ES", "OLYMPUS", "EVIS EXERA III CV-190"), ("ES", "FUJIFILM Corporation", "ELUXEO 7000"),
    ("ES", "PENTAX Medical", "EPK-i7010"),
)  # fmt: skip
DEVICES_PER_MODALITY = 2  # a partner runs up to this many scanners of one modality
FLEET_SEED = 20230101  # fixes each partner's fleet, whatever the demo seed

MODALITIES: tuple[str, ...] = tuple(dict.fromkeys(p.modality for p in PROTOCOLS))
SEXES = ("M", "F", "O", "U")
AGE_DAYS_MAX = int(MAX_AGE_YEARS * 365.25)


@dataclass(frozen=True)
class DemoData:
    """A synthetic programme: the registry and the manifest, every value a raw string."""

    registry: pl.DataFrame
    """One row per partner, columns contract.REGISTRY_COLUMNS."""
    manifest: pl.DataFrame
    """One row per study, String columns contract.MANIFEST_COLUMNS; absent values are null."""
    planted_errors: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={"row": pl.UInt32, "column": pl.String, "kind": pl.String}
        )
    )
    """Rows given one invalid value on purpose: row (0-based in manifest), column, kind."""


# --- small vectorised helpers --------------------------------------------------------------


def _uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    """n uniforms in [0, 1); float32 is plenty for Bernoulli draws and twice as fast."""
    return rng.random(n, dtype=np.float32)


def _alias_row(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table of one distribution: (acceptance threshold, alias) per category."""
    k = len(weights)
    scaled = list(weights * k / weights.sum())
    threshold = np.ones(k)
    alias = np.arange(k, dtype=np.int32)
    small = [i for i, p in enumerate(scaled) if p < 1.0]
    large = [i for i, p in enumerate(scaled) if p >= 1.0]
    while small and large:
        low, high = small.pop(), large.pop()
        threshold[low], alias[low] = scaled[low], high
        scaled[high] += scaled[low] - 1.0
        (small if scaled[high] < 1.0 else large).append(high)
    return threshold, alias


@dataclass(frozen=True)
class _Sampler:
    """One categorical distribution per group, sampled in O(1) per draw (alias method)."""

    threshold: np.ndarray  # (groups * categories,)
    alias: np.ndarray  # (groups * categories,)
    n_categories: int

    @classmethod
    def of(cls, weights: np.ndarray) -> _Sampler:
        rows = [_alias_row(w) for w in np.atleast_2d(np.asarray(weights, dtype=np.float64))]
        return cls(
            threshold=np.concatenate([t for t, _ in rows]).astype(np.float32),
            alias=np.concatenate([a for _, a in rows]),
            n_categories=len(rows[0][0]),
        )

    def draw(self, rng: np.random.Generator, groups: np.ndarray | int, n: int) -> np.ndarray:
        """n categories (int32), row i drawn from the distribution of ``groups[i]``."""
        x = rng.random(n, dtype=np.float32) * np.float32(self.n_categories)
        column = np.minimum(x.astype(np.int32), self.n_categories - 1)
        flat = np.asarray(groups, dtype=np.int32) * np.int32(self.n_categories) + column
        return np.where(x - column < self.threshold[flat], column, self.alias[flat])


def _beta_between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, mean: np.ndarray,
                  concentration: float = 6.0) -> np.ndarray:  # fmt: skip
    """Values in [lo, hi] with the given mean (a scaled Beta distribution)."""
    m = np.clip((mean - lo) / (hi - lo), 0.02, 0.98)
    return lo + (hi - lo) * rng.beta(m * concentration, (1 - m) * concentration)


def _gather(name: str, vocabulary: list[str | None], codes: np.ndarray) -> pl.Series:
    """The column whose row i is ``vocabulary[codes[i]]``."""
    index = pl.Series(codes.astype(np.uint32, copy=False))
    return pl.Series(name, vocabulary, dtype=pl.String).gather(index)


def _per_protocol(attribute: str) -> np.ndarray:
    return np.array([getattr(p, attribute) for p in PROTOCOLS])


def _per_partner(attribute: str) -> np.ndarray:
    return np.array([getattr(p, attribute) for p in PARTNERS])


def _year_of(day: np.ndarray) -> np.ndarray:
    """Calendar year of programme day indices (negative ones are before the programme)."""
    years = (np.datetime64(PROGRAMME_START, "D") + day).astype("datetime64[Y]")
    return years.astype(np.int64) + 1970


# --- the programme (independent of the seed) -----------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    """Days of the programme, when each partner joined and how much it sends per day."""

    n_days: int
    join_day: np.ndarray  # (partners,) day index of joining
    intensity: np.ndarray  # (partners, days) relative studies per day
    day_share: np.ndarray  # intensity normalised per partner

    def date(self, day: int) -> dt.date:
        return PROGRAMME_START + dt.timedelta(days=int(day))


def _daily_factors(n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """(growth x weekday factor, monsoon factor for camps) of every programme day."""
    days = np.arange(n_days)
    growth = np.exp(GROWTH_PER_MONTH * days / 30.4375)
    weekday = (PROGRAMME_START.weekday() + days) % 7
    week = np.select([weekday == 6, weekday == 5], [SUNDAY_FACTOR, SATURDAY_FACTOR], 1.0)
    month = (np.datetime64(PROGRAMME_START, "D") + days).astype("datetime64[M]").astype(int) % 12
    monsoon = np.where((month >= 5) & (month <= 8), MONSOON_CAMP_FACTOR, 1.0)
    return growth * week, monsoon


@cache
def _calendar(today: dt.date) -> _Calendar:
    n_days = (today - PROGRAMME_START).days + 1
    span = n_days - 1 - JOIN_MARGIN_DAYS
    join_day = np.array([1 + round(p.join * (span - 1)) for p in PARTNERS])
    base, monsoon = _daily_factors(n_days)
    since = np.arange(n_days)[None, :] - join_day[:, None]
    ramp_up = 1 - RAMP_DEPTH * np.exp(-np.maximum(since, 0) / (RAMP_MONTHS * 30.4375))
    ramp = np.where(since >= 0, ramp_up, 0.0)
    camp = (_per_partner("facility") == "mobile_camp")[:, None]
    season = np.where(camp, monsoon[None, :], 1.0)
    intensity = _per_partner("capacity")[:, None] * ramp * base[None, :] * season
    day_share = intensity / intensity.sum(axis=1, keepdims=True)
    return _Calendar(n_days, join_day, intensity, day_share)


@cache
def _protocol_matrix() -> np.ndarray:
    """(partners, protocols) probability that a partner's patient gets each protocol."""
    matrix = np.zeros((len(PARTNERS), len(PROTOCOLS)))
    for i, partner in enumerate(PARTNERS):
        mix = partner.mix or MODALITY_MIX[partner.facility]
        total = sum(mix.values())
        for j, protocol in enumerate(PROTOCOLS):
            matrix[i, j] = mix.get(protocol.modality, 0.0) / total * protocol.share
    return matrix / matrix.sum(axis=1, keepdims=True)


@cache
def _state_codes() -> tuple[str, ...]:
    return tuple(load_reference().states["iso_code"].to_list())


@cache
def _catchment() -> np.ndarray:
    """(partners, states) probability that a partner's patient lives in each state."""
    codes = _state_codes()
    population = load_reference().states["proj2026_total"].to_numpy().astype(np.float64)
    return np.stack([_partner_catchment(p, codes, population) for p in PARTNERS])


def _partner_catchment(
    partner: Partner, codes: tuple[str, ...], population: np.ndarray
) -> np.ndarray:
    """Home share at home, far share nationally, the rest over neighbours; island referrals."""
    index = {code: i for i, code in enumerate(codes)}
    remote = partner.state not in REMOTE_STATES
    pull = population * np.array(
        [REMOTE_FACTOR if remote and c in REMOTE_STATES else 1.0 for c in codes]
    )
    home = partner.home_share or HOME_SHARE[partner.facility]
    far = FAR_SHARE.get(partner.facility, DEFAULT_FAR_SHARE)
    referrals = (
        ISLAND_REFERRALS.get(partner.state, {}) if partner.facility in REFERRAL_CENTRES else {}
    )
    near = [index[c] for c in NEIGHBOURS[partner.state]]
    share = np.zeros(len(codes))
    share[near] = (1 - home - far - sum(referrals.values())) * pull[near] / pull[near].sum()
    share += far * pull / pull.sum()
    share[index[partner.state]] += home
    for code, referred in referrals.items():
        share[index[code]] += referred
    return share


@cache
def _diagnosis_table() -> tuple[tuple[str, ...], np.ndarray]:
    """Every diagnosis text, and the (protocols, diagnoses) weight matrix."""
    vocabulary = tuple(dict.fromkeys(code for p in PROTOCOLS for code, _ in p.diagnoses))
    matrix = np.zeros((len(PROTOCOLS), len(vocabulary)))
    for i, protocol in enumerate(PROTOCOLS):
        for code, weight in protocol.diagnoses:
            matrix[i, vocabulary.index(code)] = weight
    return vocabulary, matrix


@cache
def _samplers() -> dict[str, _Sampler]:
    """The seed-independent distributions, as alias tables (built once per process)."""
    waived = np.array([CONSENT_WAIVED.get(p.facility, DEFAULT_CONSENT_WAIVED) for p in PARTNERS])
    consent = np.stack(
        [1 - waived - CONSENT_REFUSED, np.full_like(waived, CONSENT_REFUSED), waived], 1
    )
    kinds = np.tile([w for _, w in PLANTED_KINDS.values()], (len(PARTNERS), 1))
    kinds[
        _per_partner("errors") < TYPO_ID_MIN_ERRORS, _kind_code("institution_unregistered") - 1
    ] = 0.0
    return {
        "protocol": _Sampler.of(_protocol_matrix()),
        "state": _Sampler.of(_catchment()),
        "diagnosis": _Sampler.of(_diagnosis_table()[1]),
        "consent": _Sampler.of(consent),
        "kind": _Sampler.of(kinds),
        "fitzpatrick": _Sampler.of(np.array(FITZPATRICK[0])),
    }


def _registry(calendar: _Calendar) -> pl.DataFrame:
    names = load_reference().state_names
    rows = [
        (
            p.institution_id,
            p.name,
            p.registry_state or names[p.state],
            p.city,
            FACILITY_LABELS[p.facility],
            p.sector,
            calendar.date(calendar.join_day[i]).isoformat(),
        )
        for i, p in enumerate(PARTNERS)
    ]
    return pl.DataFrame(rows, schema=dict.fromkeys(REGISTRY_COLUMNS, pl.String), orient="row")


# --- patients and studies -------------------------------------------------------------------


@dataclass(frozen=True)
class _Patients:
    """One entry per patient, sorted by partner and index day."""

    partner: np.ndarray
    protocol: np.ndarray
    n_studies: np.ndarray
    anchor: np.ndarray  # day of the patient's index study


def _expected_studies_per_patient() -> np.ndarray:
    return _protocol_matrix() @ (1 + _per_protocol("followups"))


def _draw_patients(rng: np.random.Generator, studies: int, calendar: _Calendar) -> _Patients:
    """Patients with exactly ``studies`` studies in all, in order of partner and index day.

    Patients per partner and per day are multinomial draws, so they come out sorted; the few
    surplus studies of the draw are then removed at random (a patient left with none goes).
    """
    per_patient = _expected_studies_per_patient()
    share = calendar.intensity.sum(axis=1) / per_patient
    share /= share.sum()
    n = int(studies / float(share @ per_patient) * PATIENT_SURPLUS) + 32
    while True:
        per_partner = rng.multinomial(n, share)
        partner = np.repeat(np.arange(len(PARTNERS), dtype=np.int32), per_partner)
        anchor = np.concatenate([
            np.repeat(np.arange(calendar.n_days, dtype=np.int32), rng.multinomial(count, days))
            for count, days in zip(per_partner, calendar.day_share, strict=True)
        ])  # fmt: skip
        protocol = _samplers()["protocol"].draw(rng, partner, n)
        n_studies = 1 + np.minimum(rng.poisson(_per_protocol("followups")[protocol]), MAX_FOLLOWUPS)
        surplus = int(n_studies.sum()) - studies
        if surplus >= 0:
            break
        n = int(n * 1.2) + 32
    dropped = rng.choice(int(n_studies.sum()), surplus, replace=False)  # distinct studies
    owner = np.searchsorted(np.cumsum(n_studies), dropped, side="right")
    n_studies -= np.bincount(owner, minlength=n).astype(n_studies.dtype)
    kept = n_studies > 0
    return _Patients(partner[kept], protocol[kept], n_studies[kept].astype(np.int32), anchor[kept])


def _study_days(rng: np.random.Generator, patients: _Patients, calendar: _Calendar,
                pid: np.ndarray, starts: np.ndarray) -> np.ndarray:  # fmt: skip
    """Day of each study: the index day, then follow-ups after (or, near today, before) it."""
    gap_mean = _per_protocol("gap_days").astype(np.float32)[patients.protocol[pid]]
    gaps = rng.standard_exponential(len(pid), dtype=np.float32) * gap_mean + MIN_GAP_DAYS
    gaps[starts] = 0.0
    cumulative = np.cumsum(gaps, dtype=np.float64)
    offset = np.rint(cumulative - cumulative[starts][pid]).astype(np.int32)
    anchor = patients.anchor[pid]
    day = anchor + offset
    day = np.where(day > calendar.n_days - 1, anchor - offset, day)
    return np.where(day < calendar.join_day[patients.partner[pid]], anchor, day).astype(np.int32)


def _patient_sex(rng: np.random.Generator, protocol: np.ndarray) -> np.ndarray:
    """0 M, 1 F, 2 O, 3 U: the protocol's female share, lowered by FEMALE_ACCESS_ODDS."""
    share = _per_protocol("female")
    odds = share / np.maximum(1 - share, 1e-9) * FEMALE_ACCESS_ODDS
    general = (share < SEX_SPECIFIC) & (share > 1 - SEX_SPECIFIC)
    female = np.where(general, odds / (1 + odds), share).astype(np.float32)[protocol]
    sex = (_uniform(rng, len(protocol)) < female).astype(np.int8)
    u = _uniform(rng, len(protocol))
    sex[u < SEX_OTHER + SEX_UNKNOWN] = 3
    sex[u < SEX_OTHER] = 2
    return sex


def _patient_age_days(rng: np.random.Generator, protocol: np.ndarray) -> np.ndarray:
    """Age at the first study, in days: a paediatric or an adult draw per the protocol."""
    paed, lo, hi, mean = (np.array(c) for c in zip(*_per_protocol("age"), strict=True))
    years = _beta_between(rng, lo[protocol], hi[protocol], mean[protocol])
    child = _uniform(rng, len(protocol)) < paed[protocol]
    years[child] = 15.0 * rng.beta(0.9, 1.3, int(child.sum()))
    return np.maximum(1, (years * 365.25).astype(np.int32))


@dataclass(frozen=True)
class _Studies:
    """One entry per study (sorted by partner, date), as integer codes."""

    partner: np.ndarray
    patient_number: np.ndarray  # 1-based within the partner
    protocol: np.ndarray
    day: np.ndarray
    age_days: np.ndarray
    sex: np.ndarray
    state: np.ndarray
    urban: np.ndarray
    diagnosis: np.ndarray
    consent: np.ndarray  # 0 yes, 1 no, 2 waived
    missing_factor: np.ndarray  # the partner's multiplier of MISSING

    def __len__(self) -> int:
        return len(self.day)


def _draw_studies(rng: np.random.Generator, patients: _Patients, calendar: _Calendar) -> _Studies:
    n_pat = len(patients.partner)
    pid = np.repeat(np.arange(n_pat, dtype=np.int32), patients.n_studies)
    starts = np.concatenate([[0], np.cumsum(patients.n_studies, dtype=np.int64)[:-1]])
    day = _study_days(rng, patients, calendar, pid, starts)
    first_day = np.minimum.reduceat(day, starts)
    age_days = _patient_age_days(rng, patients.protocol)[pid] + day - first_day[pid]
    order = np.argsort(patients.partner[pid] * np.int32(calendar.n_days) + day, kind="stable")
    pid, day, age_days = pid[order], day[order], age_days[order]
    partner_start = np.searchsorted(patients.partner, np.arange(len(PARTNERS)))
    urban_share = np.array([URBAN_SHARE[p.facility] for p in PARTNERS], dtype=np.float32)
    samplers = _samplers()
    per_patient = {
        "protocol": patients.protocol,
        "diagnosis": samplers["diagnosis"].draw(rng, patients.protocol, n_pat),
        "sex": _patient_sex(rng, patients.protocol),
        "state": samplers["state"].draw(rng, patients.partner, n_pat),
        "urban": _uniform(rng, n_pat) < urban_share[patients.partner],
        "consent": samplers["consent"].draw(rng, patients.partner, n_pat),
    }
    partner = patients.partner[pid]
    return _Studies(
        partner=partner,
        patient_number=pid - partner_start[partner] + 1,
        day=day,
        age_days=np.minimum(age_days, AGE_DAYS_MAX),
        missing_factor=_per_partner("missing").astype(np.float32)[partner],
        **{k: v[pid] for k, v in per_patient.items()},
    )


# --- rendering raw text -----------------------------------------------------------------------


def _partner_choice(attribute: str, choices: tuple[str, ...] | list[str]) -> np.ndarray:
    """Index in ``choices`` of every partner's value of ``attribute``."""
    return np.array([list(choices).index(getattr(p, attribute)) for p in PARTNERS])


def _formats(rng: np.random.Generator, s: _Studies, attribute: str,
             choices: tuple[str, ...] | list[str]) -> np.ndarray:  # fmt: skip
    """Each row's format: its partner's, or (FORMAT_DRIFT of rows) any accepted one."""
    fmt = _partner_choice(attribute, choices)[s.partner]
    drift = np.flatnonzero(_uniform(rng, len(s)) < FORMAT_DRIFT)
    fmt[drift] = rng.integers(0, len(choices), len(drift))
    return fmt


def _missing(rng: np.random.Generator, s: _Studies, column: str,
             extra: np.ndarray | float = 0.0) -> np.ndarray:  # fmt: skip
    """Rows where ``column`` is left blank."""
    rate = np.minimum(np.float32(MISSING[column]) * s.missing_factor + extra, 0.9)
    return _uniform(rng, len(s)) < rate


def _is_kind(kind: np.ndarray, name: str) -> np.ndarray:
    return kind == _kind_code(name)


@cache
def _date_vocabulary(today: dt.date) -> list[str | None]:
    """Valid dates in every format, the same FUTURE_TYPO_YEARS later, then impossible dates."""
    dates = pl.date_range(PROGRAMME_START, today, eager=True)
    future = dates.dt.offset_by(f"{FUTURE_TYPO_YEARS}y")
    valid = [s for f in DATE_FORMATS.values() for s in dates.dt.strftime(f).to_list()]
    typos = [s for f in DATE_FORMATS.values() for s in future.dt.strftime(f).to_list()]
    years = range(PROGRAMME_START.year, today.year + 1)
    return [*valid, *typos, *(f"{d}/{y}" for y in years for d in IMPOSSIBLE_DAYS)]


def _render_dates(rng: np.random.Generator, s: _Studies, kind: np.ndarray, n_days: int,
                  today: dt.date) -> pl.Series:  # fmt: skip
    n_formats = len(DATE_FORMATS)
    codes = _formats(rng, s, "date_fmt", list(DATE_FORMATS)) * n_days + s.day
    codes[_is_kind(kind, "date_future")] += n_formats * n_days
    bad = np.flatnonzero(_is_kind(kind, "date_impossible"))
    year_block = (_year_of(s.day[bad]) - PROGRAMME_START.year) * len(IMPOSSIBLE_DAYS)
    pattern = rng.integers(0, len(IMPOSSIBLE_DAYS), len(bad))
    codes[bad] = 2 * n_formats * n_days + year_block + pattern
    return _gather("study_date", _date_vocabulary(today), codes)


@cache
def _age_vocabulary() -> list[str | None]:
    """Ages 0..AGE_DAYS_MAX days as plain years, DICOM AS and decimal years; then null, bad."""
    years = [d / 365.25 for d in range(AGE_DAYS_MAX + 1)]
    plain = [f"{y:.1f}" if y < 1 else str(int(y)) for y in years]
    dicom = [
        f"{d:03d}D" if d < 31 else f"{int(d / 30.4375):03d}M" if d < 730 else f"{int(y):03d}Y"
        for d, y in enumerate(years)
    ]
    decimal = [f"{y:.1f}" for y in years]
    return [*plain, *dicom, *decimal, None, *BAD_AGES]


def _render_age(rng: np.random.Generator, s: _Studies, kind: np.ndarray) -> pl.Series:
    """PatientAge as the partner writes it; blank for partners that send birth_year instead."""
    fmt = _formats(rng, s, "age_fmt", AGE_FORMATS)
    fmt[fmt == AGE_FORMATS.index("birth_year")] = 0  # drifting rows write a plain age
    n_ages = AGE_DAYS_MAX + 1
    null_code = 3 * n_ages
    blank = _missing(rng, s, "age") | _sends_birth_year(s)
    codes = np.where(blank, null_code, fmt * n_ages + s.age_days)
    bad = np.flatnonzero(_is_kind(kind, "age_out_of_range"))
    codes[bad] = null_code + 1 + rng.integers(0, len(BAD_AGES), len(bad))
    return _gather("age", _age_vocabulary(), codes)


def _sends_birth_year(s: _Studies) -> np.ndarray:
    return (_partner_choice("age_fmt", AGE_FORMATS) == AGE_FORMATS.index("birth_year"))[s.partner]


def _render_birth_year(rng: np.random.Generator, s: _Studies, today: dt.date) -> pl.Series:
    """Year of the study date minus the age, where the partner sends birth_year for age."""
    rows = np.flatnonzero(_sends_birth_year(s) & ~_missing(rng, s, "age"))
    born = _year_of(s.day[rows] - s.age_days[rows])
    lo = PROGRAMME_START.year - MAX_AGE_YEARS - 1
    vocabulary: list[str | None] = [str(y) for y in range(lo, today.year + 1)]
    codes = np.full(len(s), len(vocabulary), dtype=np.int64)
    codes[rows] = born - lo
    return _gather("birth_year", [*vocabulary, None], codes)


def _render_sex(rng: np.random.Generator, s: _Studies) -> pl.Series:
    fmt = _formats(rng, s, "sex_fmt", list(SEX_WORDS))
    vocabulary: list[str | None] = [w for words in SEX_WORDS.values() for w in words]
    codes = np.where(_missing(rng, s, "sex"), len(vocabulary), fmt * len(SEXES) + s.sex)
    return _gather("sex", [*vocabulary, None], codes)


@cache
def _state_vocabulary() -> tuple[list[str | None], np.ndarray, np.ndarray]:
    """State spellings: a block per style, variants, misspellings, unknown, null; and the
    first index and number of variants of each state."""
    names = load_reference().state_names
    codes = _state_codes()
    blocks = {
        "name": [names[c] for c in codes],
        "iso": list(codes),
        "short": [c.removeprefix("IN-") for c in codes],
        "upper": [names[c].upper() for c in codes],
    }
    vocabulary: list[str | None] = [s for style in STATE_STYLES for s in blocks[style]]
    start = np.zeros(len(codes), dtype=np.int64)
    count = np.zeros(len(codes), dtype=np.int64)
    for i, code in enumerate(codes):
        variants = STATE_VARIANTS.get(code, ())
        start[i], count[i] = len(vocabulary), len(variants)
        vocabulary.extend(variants)
    return [*vocabulary, *MISSPELT_STATES.values(), UNKNOWN_STATE, None], start, count


def _render_state(rng: np.random.Generator, s: _Studies, kind: np.ndarray) -> pl.Series:
    vocabulary, variant_start, variant_count = _state_vocabulary()
    null_code, unknown_code = len(vocabulary) - 1, len(vocabulary) - 2
    misspelt_base = unknown_code - len(MISSPELT_STATES)
    style = _formats(rng, s, "state_fmt", STATE_STYLES)
    codes = style * len(_state_codes()) + s.state
    count = variant_count[s.state]
    variant = (_uniform(rng, len(s)) < STATE_VARIANT) & (count > 0)
    pick = variant_start[s.state] + (_uniform(rng, len(s)) * count).astype(np.int64)
    codes = np.where(variant, np.minimum(pick, variant_start[s.state] + count - 1), codes)
    codes[_missing(rng, s, "state")] = null_code
    misspelt = np.flatnonzero(_is_kind(kind, "state_misspelt"))
    own = np.array(
        [list(MISSPELT_STATES).index(c) if c in MISSPELT_STATES else -1 for c in _state_codes()]
    )
    which = own[s.state[misspelt]]
    which = np.where(which < 0, rng.integers(0, len(MISSPELT_STATES), len(which)), which)
    codes[misspelt] = misspelt_base + which
    codes[_is_kind(kind, "state_unknown")] = unknown_code
    return _gather("state", vocabulary, codes)


def _render_district(rng: np.random.Generator, s: _Studies) -> pl.Series:
    home = np.array([_state_codes().index(p.state) for p in PARTNERS])[s.partner]
    records = _per_partner("records_district")[s.partner]
    known = records & (s.state == home) & (_uniform(rng, len(s)) < HOME_DISTRICT)
    vocabulary: list[str | None] = [*(p.district for p in PARTNERS), None]
    return _gather("district", vocabulary, np.where(known, s.partner, len(PARTNERS)))


def _render_area(rng: np.random.Generator, s: _Studies) -> pl.Series:
    fmt = _partner_choice("area_fmt", list(AREA_WORDS))[s.partner]
    value = np.where(s.urban, 0, 1)
    value[_uniform(rng, len(s)) < AREA_UNKNOWN_WORD] = 2
    vocabulary: list[str | None] = [w for words in AREA_WORDS.values() for w in words]
    codes = np.where(_missing(rng, s, "area_type"), len(vocabulary), fmt * 3 + value)
    return _gather("area_type", [*vocabulary, None], codes)


def _render_diagnosis(
    rng: np.random.Generator, s: _Studies, kind: np.ndarray, n_days: int
) -> pl.Series:
    texts = _diagnosis_table()[0]
    dotless = [t.replace(".", "") if t != "normal" else "Normal" for t in texts]
    vocabulary: list[str | None] = [*texts, *dotless, None, *BAD_ICD10]
    null_code = len(vocabulary) - 1 - len(BAD_ICD10)
    recent = np.where(
        s.day >= n_days - RECENT_UNREPORTED_DAYS, np.float32(RECENT_UNREPORTED_EXTRA), np.float32(0)
    )
    style = _per_partner("icd_dotless")[s.partner] * len(texts)
    codes = np.where(_missing(rng, s, "diagnosis_icd10", recent), null_code, style + s.diagnosis)
    bad = np.flatnonzero(_is_kind(kind, "icd10_malformed"))
    codes[bad] = null_code + 1 + rng.integers(0, len(BAD_ICD10), len(bad))
    return _gather("diagnosis_icd10", vocabulary, codes)


def _modality_index(s: _Studies) -> np.ndarray:
    return np.array([MODALITIES.index(p.modality) for p in PROTOCOLS])[s.protocol]


def _render_modality(rng: np.random.Generator, s: _Studies) -> pl.Series:
    styles = ("code", *MODALITY_WORDS)
    fmt = _formats(rng, s, "modality_fmt", styles)
    words = [MODALITIES, *(tuple(w[m] for m in MODALITIES) for w in MODALITY_WORDS.values())]
    vocabulary: list[str | None] = [w for block in words for w in block]
    return _gather("modality", vocabulary, fmt * len(MODALITIES) + _modality_index(s))


def _render_body_part(rng: np.random.Generator, s: _Studies) -> pl.Series:
    parts: list[str | None] = list(dict.fromkeys(p.body_part for p in PROTOCOLS))
    part = np.array([parts.index(p.body_part) for p in PROTOCOLS])[s.protocol]
    codes = np.where(_missing(rng, s, "body_part"), len(parts), part)
    return _gather("body_part", [*parts, None], codes)


@cache
def _fleet() -> np.ndarray:
    """(partners, modalities, DEVICES_PER_MODALITY) device index of each partner's scanners."""
    rng = np.random.default_rng(FLEET_SEED)
    fleet = np.zeros((len(PARTNERS), len(MODALITIES), DEVICES_PER_MODALITY), dtype=np.int64)
    for m, modality in enumerate(MODALITIES):
        options = [i for i, d in enumerate(DEVICES) if d[0] == modality]
        fleet[:, m, :] = rng.choice(options, size=(len(PARTNERS), DEVICES_PER_MODALITY))
    return fleet


def _render_devices(rng: np.random.Generator, s: _Studies) -> tuple[pl.Series, pl.Series]:
    slot = rng.integers(0, DEVICES_PER_MODALITY, len(s))
    device = _fleet()[s.partner, _modality_index(s), slot]
    device[_missing(rng, s, "device")] = len(DEVICES)
    return (
        _gather("manufacturer", [*(d[1] for d in DEVICES), None], device),
        _gather("device_model", [*(d[2] for d in DEVICES), None], device),
    )


def _render_n_images(rng: np.random.Generator, s: _Studies) -> pl.Series:
    params = np.array([N_IMAGES[p.modality] for p in PROTOCOLS], dtype=np.float32)[s.protocol]
    noise = np.exp(params[:, 1] * rng.standard_normal(len(s), dtype=np.float32))
    count = np.clip(np.rint(params[:, 0] * noise), params[:, 2], 9_999).astype(np.int32)
    count[_missing(rng, s, "n_images")] = 10_000
    return _gather("n_images", [*(str(i) for i in range(10_000)), None], count)


def _render_annotation(rng: np.random.Generator, s: _Studies, n_days: int) -> pl.Series:
    age_share = 1 - s.day.astype(np.float32) / max(n_days - 1, 1)  # 1 oldest .. 0 today
    annotated = _uniform(rng, len(s)) < ANNOTATED_MIN + (ANNOTATED_MAX - ANNOTATED_MIN) * age_share
    complete = _uniform(rng, len(s)) < ANNOTATION_COMPLETE
    status = np.where(annotated, np.where(complete, 2, 1), 0)
    status[_missing(rng, s, "annotation_status")] = 3
    return _gather("annotation_status", ["none", "partial", "complete", None], status)


def _render_consent(rng: np.random.Generator, s: _Studies) -> pl.Series:
    codes = np.where(_missing(rng, s, "consent"), 3, s.consent)
    return _gather("consent", ["yes", "no", "waived", None], codes)


def _render_fitzpatrick(rng: np.random.Generator, s: _Studies) -> pl.Series:
    """Skin type, only on clinical photographs (XC), as roman numerals or digits."""
    rows = np.flatnonzero(_modality_index(s) == MODALITIES.index("XC"))
    skin = _samplers()["fitzpatrick"].draw(rng, 0, len(rows))
    digits = ~_per_partner("fitzpatrick_roman")[s.partner[rows]]
    codes = np.full(len(s), 12, dtype=np.int64)
    codes[rows] = digits * 6 + skin
    vocabulary: list[str | None] = [*FITZPATRICK[1], *(str(i) for i in range(1, 7)), None]
    return _gather("fitzpatrick", vocabulary, codes)


def _render_ids(s: _Studies, seed: int, kind: np.ndarray) -> tuple[pl.Series, pl.Series, pl.Series]:
    study_uid = pl.select(
        pl.concat_str(pl.lit(f"{UID_ROOT}.{seed}."), pl.int_range(1, len(s) + 1).cast(pl.String))
    ).to_series()
    numbers = pl.int_range(0, int(s.patient_number.max(initial=0)) + 1, eager=True)
    patients = ("P-" + numbers.cast(pl.String).str.zfill(6)).to_list()
    ids = [p.institution_id.lower() if p.lower_id else p.institution_id for p in PARTNERS]
    typos = [i.replace("-0", "-") for i in ids]
    institution = np.where(
        _is_kind(kind, "institution_unregistered"), s.partner + len(PARTNERS), s.partner
    )
    return (
        study_uid.rename("study_uid"),
        _gather("patient_id", patients, s.patient_number),
        _gather("institution_id", ids + typos, institution),
    )


def _render_facility(s: _Studies) -> pl.Series:
    labels = [FACILITY_LABELS[p.facility] if p.writes_facility else None for p in PARTNERS]
    return _gather("facility_type", labels, s.partner)


# --- planted errors ---------------------------------------------------------------------------


def _kind_code(kind: str) -> int:
    return 1 + list(PLANTED_KINDS).index(kind)


def _plant_errors(rng: np.random.Generator, s: _Studies) -> np.ndarray:
    """0 for a clean row, else 1 + the index of its planted problem in PLANTED_KINDS."""
    factor = _per_partner("errors").astype(np.float32)[s.partner]
    rate = PLANTED_ERROR_RATE * factor / max(float(factor.mean(dtype=np.float64)), 1e-9)
    rows = np.flatnonzero(_uniform(rng, len(s)) < rate)
    kind = np.zeros(len(s), dtype=np.int8)
    kind[rows] = _samplers()["kind"].draw(rng, s.partner[rows], len(rows)) + 1
    return kind


def _planted_frame(kind: np.ndarray) -> pl.DataFrame:
    rows = np.flatnonzero(kind)
    names = list(PLANTED_KINDS)
    return pl.DataFrame(
        {
            "row": rows.astype(np.uint32),
            "column": [PLANTED_KINDS[names[k - 1]][0] for k in kind[rows]],
            "kind": [names[k - 1] for k in kind[rows]],
        },
        schema={"row": pl.UInt32, "column": pl.String, "kind": pl.String},
    )


# --- entry point ------------------------------------------------------------------------------


def _check_arguments(studies: int, seed: int, today: dt.date) -> None:
    if studies < 0:
        raise ValueError(f"studies must be >= 0, got {studies}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if (today - PROGRAMME_START).days < MIN_WINDOW_DAYS:
        earliest = PROGRAMME_START + dt.timedelta(days=MIN_WINDOW_DAYS)
        raise ValueError(
            f"today must be {earliest} or later; the demo programme starts {PROGRAMME_START}"
        )


def _manifest(rng: np.random.Generator, s: _Studies, kind: np.ndarray, seed: int,
              calendar: _Calendar, today: dt.date) -> pl.DataFrame:  # fmt: skip
    n_days = calendar.n_days
    study_uid, patient_id, institution_id = _render_ids(s, seed, kind)
    manufacturer, device_model = _render_devices(rng, s)
    columns = {
        "study_uid": study_uid, "patient_id": patient_id, "institution_id": institution_id,
        "study_date": _render_dates(rng, s, kind, n_days, today),
        "modality": _render_modality(rng, s), "sex": _render_sex(rng, s),
        "age": _render_age(rng, s, kind), "birth_year": _render_birth_year(rng, s, today),
        "state": _render_state(rng, s, kind), "district": _render_district(rng, s),
        "area_type": _render_area(rng, s),
        "diagnosis_icd10": _render_diagnosis(rng, s, kind, n_days),
        "body_part": _render_body_part(rng, s), "facility_type": _render_facility(s),
        "manufacturer": manufacturer, "device_model": device_model,
        "n_images": _render_n_images(rng, s),
        "annotation_status": _render_annotation(rng, s, n_days),
        "consent": _render_consent(rng, s), "fitzpatrick": _render_fitzpatrick(rng, s),
    }  # fmt: skip
    return pl.DataFrame([columns[c].rename(c) for c in MANIFEST_COLUMNS])


def generate_demo(studies: int, seed: int, *, today: dt.date) -> DemoData:
    """A synthetic programme of ``studies`` studies up to ``today``, deterministic per arguments.

    The registry lists the fictional partners; the manifest holds their studies as raw text in
    the contract's columns, with the input variety, missing values and ~0.3 % planted invalid
    rows that real submissions have.
    """
    _check_arguments(studies, seed, today)
    calendar = _calendar(today)
    if studies == 0:
        empty = pl.DataFrame(schema=dict.fromkeys(MANIFEST_COLUMNS, pl.String))
        return DemoData(registry=_registry(calendar), manifest=empty)
    rng = np.random.default_rng(seed)
    patients = _draw_patients(rng, studies, calendar)
    rows = _draw_studies(rng, patients, calendar)
    kind = _plant_errors(rng, rows)
    return DemoData(
        registry=_registry(calendar),
        manifest=_manifest(rng, rows, kind, seed, calendar, today),
        planted_errors=_planted_frame(kind),
    )
