"""The synthetic demo programme: deterministic, realistic skews, raw partner-style values.

Most checks read the raw manifest through a small independent normaliser written here, so they
pin down what the generator produces; two tests send it through the real ingestion code.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import polars as pl
import pytest

from dashboard.contract import (
    AREA_NAMES,
    FACILITY_NAMES,
    MANIFEST_COLUMNS,
    MODALITY_CODES,
    MODALITY_NAMES,
    REGISTRY_COLUMNS,
    SEX_NAMES,
)
from dashboard.ingest.demo import (
    ISLANDS,
    MISSPELT_STATES,
    NEIGHBOURS,
    NORTH_EAST,
    PARTNERS,
    STATE_VARIANTS,
    UNKNOWN_STATE,
    DemoData,
    generate_demo,
)
from dashboard.reference import alias_key, load_reference

TODAY = dt.date(2026, 6, 15)
STUDIES = 20_000
ICD10 = r"^[A-Z]\d{2}(\.?[0-9A-Z]{1,4})?$"
DATE_SHAPES = {
    r"^\d{4}-\d{2}-\d{2}$": "%Y-%m-%d",
    r"^\d{8}$": "%Y%m%d",
    r"^\d{2}/\d{2}/\d{4}$": "%d/%m/%Y",
    r"^\d{2}-\d{2}-\d{4}$": "%d-%m-%Y",
}
AGE_UNIT_DAYS = {"D": 1.0, "W": 7.0, "M": 30.4375, "Y": 365.25}


@pytest.fixture(scope="module")
def demo() -> DemoData:
    return generate_demo(STUDIES, 7, today=TODAY)


def _state_code(raw: pl.Expr) -> pl.Expr:
    aliases = load_reference().aliases
    return alias_key(raw).replace_strict(
        aliases["alias_key"], aliases["iso_code"], default=None, return_dtype=pl.String
    )


def _parse_date(raw: pl.Expr) -> pl.Expr:
    return pl.coalesce(
        pl.when(raw.str.contains(shape)).then(raw.str.strptime(pl.Date, fmt, strict=False))
        for shape, fmt in DATE_SHAPES.items()
    )


def _parse_age(raw: pl.Expr) -> pl.Expr:
    dicom = raw.str.extract_groups(r"^(?<n>\d{3})(?<unit>[DWMY])$")
    days = dicom.struct.field("unit").replace_strict(AGE_UNIT_DAYS, default=None)
    from_dicom = dicom.struct.field("n").cast(pl.Float64) * days / 365.25
    return pl.coalesce(from_dicom, raw.cast(pl.Float64, strict=False))


def _lookup(raw: pl.Expr, names: dict[str, str], codes: tuple[str, ...] = ()) -> pl.Expr:
    table = {**{c.lower(): c for c in codes}, **names}
    return raw.str.strip_chars().str.to_lowercase().replace_strict(table, default=None)


def _diagnosis_ok(raw: pl.Expr) -> pl.Expr:
    tokens = raw.str.split(";").list.eval(
        pl.element().str.split(",").explode().str.strip_chars().str.to_uppercase()
    )
    return (raw.str.to_lowercase() == "normal") | tokens.list.eval(
        pl.element().str.contains(ICD10)
    ).list.all()


@pytest.fixture(scope="module")
def rows(demo: DemoData) -> pl.DataFrame:
    """The manifest read back by the test's own normaliser (null = absent or unparseable)."""
    m = pl.col
    return demo.manifest.with_row_index("row").select(
        "row",
        "patient_id",
        "diagnosis_icd10",
        "body_part",
        institution=m("institution_id").str.to_uppercase(),
        date=_parse_date(m("study_date")),
        modality=_lookup(m("modality"), MODALITY_NAMES, MODALITY_CODES),
        sex=_lookup(m("sex"), SEX_NAMES),
        age=_parse_age(m("age")),
        birth_year=m("birth_year").cast(pl.Int32),
        state=_state_code(m("state")),
        area=_lookup(m("area_type"), AREA_NAMES),
        diagnosis_ok=_diagnosis_ok(m("diagnosis_icd10")),
        n_images=m("n_images").cast(pl.Int64),
        raw_state=m("state"),
    )


@pytest.fixture(scope="module")
def clean(rows: pl.DataFrame, demo: DemoData) -> pl.DataFrame:
    return rows.filter(~pl.col("row").is_in(demo.planted_errors["row"].to_list()))


def _share(frame: pl.DataFrame, condition: pl.Expr, among: pl.Expr) -> float:
    counts = frame.filter(among).select(hit=condition.sum(), n=pl.len()).row(0)
    return counts[0] / counts[1]


# --- shape and determinism --------------------------------------------------------------------


def test_same_arguments_give_identical_frames(demo: DemoData) -> None:
    again = generate_demo(STUDIES, 7, today=TODAY)
    assert again.registry.equals(demo.registry)
    assert again.manifest.equals(demo.manifest)
    assert again.planted_errors.equals(demo.planted_errors)


def test_another_seed_gives_other_studies(demo: DemoData) -> None:
    other = generate_demo(STUDIES, 8, today=TODAY)
    assert other.registry.equals(demo.registry)  # the programme is the same ...
    assert not other.manifest.drop("study_uid").equals(demo.manifest.drop("study_uid"))


@pytest.mark.parametrize("studies", [0, 1, 17, 5_003])
def test_exact_row_count_and_contract_columns(studies: int) -> None:
    data = generate_demo(studies, 1, today=TODAY)
    assert data.manifest.height == studies
    assert data.manifest.columns == list(MANIFEST_COLUMNS)
    assert set(data.manifest.dtypes) <= {pl.String}
    assert data.registry.columns == list(REGISTRY_COLUMNS)
    assert set(data.registry.dtypes) == {pl.String}


def test_study_uids_are_unique_and_dicom_like(demo: DemoData) -> None:
    uids = demo.manifest["study_uid"]
    assert uids.n_unique() == STUDIES
    assert uids.str.contains(r"^\d+(\.\d+)+$").all()
    assert uids.str.len_chars().max() <= 64


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="studies"):
        generate_demo(-1, 1, today=TODAY)
    with pytest.raises(ValueError, match="today"):
        generate_demo(10, 1, today=dt.date(2023, 3, 1))


def test_two_hundred_thousand_studies_are_quick() -> None:
    start = time.perf_counter()
    data = generate_demo(200_000, 2026, today=TODAY)
    assert data.manifest.height == 200_000
    assert time.perf_counter() - start < 10  # about 0.3 s on a developer laptop


# --- the programme ----------------------------------------------------------------------------


def test_institutions_are_fictional_varied_and_spread(demo: DemoData) -> None:
    registry = demo.registry.with_columns(iso=_state_code(pl.col("state")))
    assert registry.height >= 20
    assert registry["iso"].null_count() == 0
    assert registry["iso"].n_unique() >= 12
    assert registry["name"].str.starts_with("Demo ").all()
    assert registry["name"].str.ends_with("(fictional)").all()
    assert registry["institution_id"].str.starts_with("DEMO-").all()
    facilities = registry["facility_type"].str.to_lowercase().replace_strict(FACILITY_NAMES)
    assert facilities.n_unique() == 7
    assert set(registry["sector"]) == {"public", "private"}
    assert {p.state for p in PARTNERS} <= set(NEIGHBOURS)


def test_registry_is_accepted_by_the_real_registry_ingest(demo: DemoData, tmp_path: Path) -> None:
    from dashboard.ingest.institutions import ingest_institutions
    from dashboard.ingest.writer import index_writer

    path = tmp_path / "registry.csv"
    demo.registry.write_csv(path)
    with index_writer(tmp_path / "index.duckdb") as con:
        report = ingest_institutions(con, path)
    assert report.inserted == len(PARTNERS)


def test_real_ingest_quarantines_exactly_the_planted_rows(demo: DemoData, tmp_path: Path) -> None:
    from dashboard.ingest.manifest import prepare_manifest

    path = tmp_path / "demo.csv"
    demo.manifest.write_csv(path)
    prepared = prepare_manifest(
        path,
        ref=load_reference(),
        registered_institutions=set(demo.registry["institution_id"]),
        today=TODAY,
    )
    quarantined = sorted(set(prepared.problems["_row"].to_list()))
    first_row = min(prepared.originals["_row"])
    assert [r - first_row for r in quarantined] == demo.planted_errors["row"].to_list()
    assert prepared.duplicates == 0


# --- raw values -------------------------------------------------------------------------------


def test_clean_rows_parse_and_planted_rows_fail_in_their_column(
    rows: pl.DataFrame, clean: pl.DataFrame, demo: DemoData
) -> None:
    registered = demo.registry["institution_id"].to_list()
    present = clean.filter(pl.col("raw_state").is_not_null())
    assert present["state"].null_count() == 0
    assert clean["date"].null_count() == 0
    assert clean["modality"].null_count() == 0
    assert clean["institution"].is_in(registered).all()
    assert clean["diagnosis_ok"].fill_null(True).all()
    assert clean["age"].max() <= 120
    planted = rows.join(demo.planted_errors, on="row")
    failed = {
        "state": pl.col("state").is_null(),
        "study_date": pl.col("date").is_null() | (pl.col("date") > TODAY),
        "age": pl.col("age") > 120,
        "diagnosis_icd10": ~pl.col("diagnosis_ok"),
        "institution_id": ~pl.col("institution").is_in(registered),
    }
    for column, check in failed.items():
        subset = planted.filter(pl.col("column") == column)
        assert subset.select(check.all()).item(), column


def test_planted_errors_are_rare_and_look_like_real_mistakes(demo: DemoData) -> None:
    planted = demo.planted_errors
    assert 0.0015 < planted.height / STUDIES < 0.006
    assert planted["kind"].n_unique() >= 5
    keys = set(load_reference().aliases["alias_key"])
    misspelt = pl.Series([*MISSPELT_STATES.values(), UNKNOWN_STATE])
    assert not set(pl.select(alias_key(pl.lit(misspelt))).to_series()) & keys
    bad_states = demo.manifest[planted.filter(pl.col("column") == "state")["row"]]["state"]
    assert set(bad_states) <= set(misspelt)


def test_accepted_state_variants_are_aliases() -> None:
    variants = pl.Series([v for vs in STATE_VARIANTS.values() for v in vs])
    resolved = pl.select(_state_code(pl.lit(variants))).to_series()
    expected = [code for code, vs in STATE_VARIANTS.items() for _ in vs]
    assert resolved.to_list() == expected


def test_inputs_show_the_variety_partners_send(demo: DemoData, clean: pl.DataFrame) -> None:
    m = demo.manifest
    assert m["state"].is_in(["Orissa", "Pondicherry", "Tamilnadu", "NCT of Delhi"]).any()
    assert m["state"].str.contains(r"^IN-[A-Z]{2}$").any()
    for shape in DATE_SHAPES:
        assert m["study_date"].str.contains(shape).any(), shape
    assert m["age"].str.contains(r"^\d{3}Y$").any()
    assert m["age"].str.contains(r"^\d+\.\d$").any()
    assert m["sex"].is_in(["male", "Male"]).any() and m["sex"].is_in(["M"]).any()
    assert m["modality"].is_in(["X-ray", "MRI", "xray", "mri"]).any()
    assert m["institution_id"].str.contains("[a-z]").any()
    assert m["diagnosis_icd10"].str.contains(";").any()
    assert m["diagnosis_icd10"].str.contains(r"^[A-Z]\d{3}").any()  # no dot: "C509"
    assert clean.filter(pl.col("age").is_null())["birth_year"].is_not_null().any()


def test_missing_values_are_realistic(demo: DemoData) -> None:
    missing = demo.manifest.select(pl.all().is_null().mean()).row(0, named=True)
    for column in ("study_uid", "patient_id", "institution_id", "study_date", "modality"):
        assert missing[column] == 0
    for column in ("age", "state", "area_type", "diagnosis_icd10"):
        assert 0.01 < missing[column] < 0.5, column
    by_partner = demo.manifest.group_by("institution_id").agg(pl.col("state").is_null().mean())
    assert by_partner["state"].max() > 2 * by_partner["state"].min()


# --- who is in the data -----------------------------------------------------------------------


def test_men_and_cities_are_over_represented(clean: pl.DataFrame) -> None:
    states = load_reference().states
    census_male = states["proj2026_male"].sum() / states["proj2026_total"].sum()
    census_urban = states["census2011_urban"].sum() / states["census2011_total"].sum()
    known_sex = pl.col("sex").is_in(["M", "F"])
    assert _share(clean, pl.col("sex") == "M", known_sex) > census_male + 0.02
    known_area = pl.col("area").is_in(["urban", "rural"])
    assert _share(clean, pl.col("area") == "urban", known_area) > census_urban + 0.15


def test_north_east_and_islands_are_sparse_but_present(clean: pl.DataFrame) -> None:
    remote = [*NORTH_EAST, *ISLANDS]
    states = load_reference().states
    population = states.filter(pl.col("iso_code").is_in(remote))["proj2026_total"].sum()
    population_share = population / states["proj2026_total"].sum()
    share = _share(clean, pl.col("state").is_in(remote), pl.col("state").is_not_null())
    assert 0 < share < 0.5 * population_share
    assert clean.filter(pl.col("state").is_in(ISLANDS)).height > 0


def test_patients_come_mostly_from_the_partners_state(clean: pl.DataFrame) -> None:
    home = pl.DataFrame(
        {"institution": [p.institution_id for p in PARTNERS], "home": [p.state for p in PARTNERS]}
    )
    located = clean.filter(pl.col("state").is_not_null()).join(home, on="institution")
    assert _share(located, pl.col("state") == pl.col("home"), pl.lit(True)) > 0.7
    neighbours = pl.DataFrame(
        [(s, n) for s, ns in NEIGHBOURS.items() for n in ns], schema=["home", "state"], orient="row"
    )
    elsewhere = located.filter(pl.col("state") != pl.col("home"))
    near = elsewhere.join(neighbours, on=["home", "state"], how="semi").height
    assert near / elsewhere.height > 0.6


# --- modality, diagnosis, age, sex --------------------------------------------------------------


def test_modality_mix_follows_facility_type(clean: pl.DataFrame) -> None:
    small = {p.institution_id for p in PARTNERS if p.facility in ("PHC", "CHC", "mobile_camp")}
    basic = {"DX", "CR", "OP", "US", "MG", "XC"}
    assert set(clean.filter(pl.col("institution").is_in(small))["modality"]) <= basic
    big = {p.institution_id for p in PARTNERS if p.facility == "tertiary"}
    advanced = clean.filter(pl.col("institution").is_in(big))["modality"].is_in(["CT", "MR", "PT"])
    assert advanced.mean() > 0.3


def test_mammography_is_women_over_40_with_breast_findings(clean: pl.DataFrame) -> None:
    mg = clean.filter(pl.col("modality") == "MG")
    assert mg.height > 100
    assert _share(mg, pl.col("sex") == "F", pl.col("sex").is_in(["M", "F"])) > 0.95
    assert mg["age"].min() >= 40
    findings = mg["diagnosis_icd10"].drop_nulls()
    assert findings.str.contains(r"^(normal|Normal|C50\.?\d|D24|N6\d\.?\d?)$").all()


def test_fundus_and_oct_are_adult_eye_findings(clean: pl.DataFrame) -> None:
    eye = clean.filter(pl.col("modality").is_in(["OP", "OPT"]))
    assert eye["age"].min() >= 18
    assert set(eye["body_part"].drop_nulls()) == {"EYE"}
    codes = eye["diagnosis_icd10"].drop_nulls().str.split(";").explode().str.split(",").explode()
    assert (
        codes.str.strip_chars()
        .str.contains(r"^(normal|Normal|E1[0-4]\.?3\d*|H3[56]\.?\d|H40\.?\d)$")
        .all()
    )


def test_chest_xrays_show_chest_findings_and_some_children(clean: pl.DataFrame) -> None:
    cxr = clean.filter(pl.col("modality").is_in(["DX", "CR"]) & (pl.col("body_part") == "CHEST"))
    codes = cxr["diagnosis_icd10"].drop_nulls().str.split(";").explode().str.strip_chars()
    assert codes.str.contains(r"^(normal|Normal|A1[5-9]|J1[2-8]|J44|C34|U07)").all()
    assert codes.str.contains("^A1[56]").any() and codes.str.contains("^J18").any()
    children = _share(cxr, pl.col("age") < 15, pl.col("age").is_not_null())
    assert 0.05 < children < 0.25


def test_ct_head_includes_stroke(clean: pl.DataFrame) -> None:
    head = clean.filter((pl.col("modality") == "CT") & (pl.col("body_part") == "HEAD"))
    assert head["diagnosis_icd10"].drop_nulls().str.starts_with("I63").mean() > 0.1


def _condition_ranges() -> list[tuple[str, str, str, set[str]]]:
    """(condition, lowest, highest category, typical modalities) for the simple ICD-10 ranges."""
    out = []
    for name, text, modalities in (
        load_reference()
        .conditions.select("condition", "icd10_range", "typical_modalities")
        .iter_rows()
    ):
        match = re.fullmatch(r"([A-Z]\d{2})(?:\.\d)?(?:-([A-Z]\d{2}))?", text)
        if match and name != "cancer_all_sites":  # all sites: the modality depends on the site
            out.append((name, match[1], match[2] or match[1], set(modalities.split(";"))))
    return out


def test_diagnoses_come_with_a_typical_modality_of_their_condition(clean: pl.DataFrame) -> None:
    coded = clean.filter(pl.col("diagnosis_ok") & (pl.col("diagnosis_icd10") != "normal"))
    codes = (
        coded.select("modality", category=pl.col("diagnosis_icd10").str.split(";"))
        .explode("category")
        .with_columns(pl.col("category").str.strip_chars().str.slice(0, 3))
    )
    ranges = _condition_ranges()
    assert len(ranges) >= 8
    for name, low, high, modalities in ranges:
        hits = codes.filter(pl.col("category").is_between(pl.lit(low), pl.lit(high)))
        assert set(hits["modality"]) <= modalities, name


def test_n_images_are_plausible_per_modality(clean: pl.DataFrame) -> None:
    medians = dict(clean.group_by("modality").agg(pl.col("n_images").median()).iter_rows())
    assert medians["DX"] <= 2 and medians["MG"] == 4 and medians["OP"] <= 4
    assert medians["CT"] >= 100 and medians["MR"] >= 100
    assert clean["n_images"].min() >= 1


# --- time -------------------------------------------------------------------------------------


def test_no_study_before_its_partner_joined_or_after_today(
    clean: pl.DataFrame, demo: DemoData
) -> None:
    joined = demo.registry.select(
        institution="institution_id", joined=pl.col("joined_date").str.to_date()
    )
    dated = clean.join(joined, on="institution")
    assert dated.height == clean.height
    assert (dated["date"] >= dated["joined"]).all()
    assert dated["date"].max() <= TODAY
    first = dated.group_by("institution").agg(pl.col("date").min(), pl.col("joined").first())
    assert (first["date"] - first["joined"]).dt.total_days().max() < 60


def test_accrual_grows_month_by_month(clean: pl.DataFrame) -> None:
    monthly = (
        clean.filter(pl.col("date") < dt.date(TODAY.year, TODAY.month, 1))
        .group_by(pl.col("date").dt.truncate("1mo"))
        .len()
        .sort("date")["len"]
    )
    assert monthly.head(6).sum() * 3 < monthly.tail(6).sum()
    assert (monthly.tail(12).mean() or 0) > (monthly.slice(12, 12).mean() or 0)


def test_patients_return_and_keep_their_sex_and_age(clean: pl.DataFrame) -> None:
    per_patient = clean.group_by("institution", "patient_id").agg(
        n=pl.len(),
        sexes=pl.col("sex").drop_nulls().n_unique(),
        ages=pl.struct("date", "age").sort_by("date").struct.field("age").drop_nulls(),
    )
    assert per_patient.height < 0.85 * clean.height
    assert per_patient["n"].max() >= 3
    assert per_patient["sexes"].max() == 1
    ageing = per_patient.filter(pl.col("ages").list.len() >= 2)
    decreasing = ageing.filter(pl.col("ages").list.diff().list.min() < -1).height
    assert decreasing == 0
    assert clean["patient_id"].str.contains(r"^P-\d{6,}$").all()
