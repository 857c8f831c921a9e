"""The DICOM header reader, on real files written with pydicom and on pydicom's bundled files."""

from __future__ import annotations

import json
import logging
import os
import random
import warnings
from pathlib import Path

import polars as pl
import pydicom
import pytest
from dicom_factory import make_dataset, uid, write_archive, write_dicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from dashboard.contract import MANIFEST_COLUMNS
from dashboard.ingest.dicom import (
    DICOMDIR,
    MANIFEST_JOIN_COLUMNS,
    NO_STUDY_UID,
    NOT_DICOM,
    SKIP_REASONS,
    STUDY_SCHEMA,
    TRUNCATED,
    UNREADABLE,
    ScanResult,
    age_from_dates,
    iter_files,
    join_manifest,
    read_instance,
    scan_files,
)

PYDICOM_DATA = Path(pydicom.data.__file__).parent


def study_row(result: ScanResult, study_uid: str) -> dict[str, object]:
    rows = result.studies.filter(pl.col("study_uid") == study_uid).to_dicts()
    assert len(rows) == 1, f"expected one row for {study_uid}, got {len(rows)}"
    return rows[0]


def assert_accounted(result: ScanResult) -> None:
    assert result.files_seen == result.files_indexed + result.files_skipped
    assert result.files_skipped == len(result.skipped)
    for skip in result.skipped:
        assert skip["reason"] in SKIP_REASONS or skip["reason"].startswith(UNREADABLE), skip


# --- header cases -----------------------------------------------------------------------------


@pytest.mark.parametrize("age", ["045Y", "006M", "003W", "010D"])
def test_dicom_age_strings_pass_through(tmp_path: Path, age: str) -> None:
    study = uid()
    ds = make_dataset(study, PatientAge=age, PatientBirthDate="19000101")
    write_dicom(tmp_path / "a.dcm", ds)
    assert study_row(scan_files([tmp_path]), study)["age"] == age


@pytest.mark.parametrize(
    ("birth", "study_date", "age"),
    [
        ("19800615", "20250614", "44"),  # the day before the birthday
        ("19800615", "20250615", "45"),  # on the birthday
        ("20000229", "20250228", "24"),  # leap-day birthday
        ("1980.06.15", "20250701", "45"),  # old ACR-NEMA style date
        ("19801315", "20250701", None),  # month 13: unknown, not a guess
        ("19800231", "20250701", None),  # 31 February
        ("", "20250701", None),
    ],
)
def test_age_computed_from_birth_date_and_the_birth_date_is_dropped(
    tmp_path: Path, birth: str, study_date: str, age: str | None
) -> None:
    study = uid()
    ds = make_dataset(study, StudyDate=study_date, PatientBirthDate=birth, PatientAge=None)
    write_dicom(tmp_path / "a.dcm", ds)
    result = scan_files([tmp_path])
    assert study_row(result, study)["age"] == age
    text = repr(result) + json.dumps(result.to_report())
    if birth:
        assert birth not in text
    assert "birth" not in " ".join(result.studies.columns).lower()


def test_age_from_dates_whole_years() -> None:
    assert age_from_dates("19800615", "20250615") == "45"
    assert age_from_dates(None, "20250615") is None
    assert age_from_dates("19800615", None) is None


def test_missing_tags_are_unknown_not_invented(tmp_path: Path) -> None:
    study = uid()
    ds = make_dataset(study, modality=None, StudyDate=None, PatientID=None, PatientSex=None)
    write_dicom(tmp_path / "bare.dcm", ds)
    row = study_row(scan_files([tmp_path]), study)
    unknown = [c for c in STUDY_SCHEMA if row[c] is None]
    assert unknown == [
        "patient_id", "study_date", "modality", "modalities", "sex", "age", "body_part",
        "body_parts", "manufacturer", "device_model", "institution_name", "phi_tags",
    ]  # fmt: skip
    counts = (row["n_images"], row["n_series"], row["n_instances"], row["phi_files"])
    assert counts == ("1", 1, 1, 0)


def test_study_date_falls_back_to_series_then_acquisition_date(tmp_path: Path) -> None:
    a, b = uid(), uid()
    ds = make_dataset(a, StudyDate=None, SeriesDate="20240102", AcquisitionDate="20240103")
    write_dicom(tmp_path / "a.dcm", ds)
    write_dicom(tmp_path / "b.dcm", make_dataset(b, StudyDate="", AcquisitionDate="20240105"))
    result = scan_files([tmp_path])
    assert study_row(result, a)["study_date"] == "20240102"
    assert study_row(result, b)["study_date"] == "20240105"


def test_multi_series_multi_modality_study(tmp_path: Path) -> None:
    study = uid()
    ct, pt, sr = uid(), uid(), uid()
    device = {"Manufacturer": "SIEMENS", "ManufacturerModelName": "Biograph"}
    for i in range(3):
        ds = make_dataset(study, series_uid=ct, modality="CT", BodyPartExamined="chest", **device)
        write_dicom(tmp_path / f"ct{i}.dcm", ds)
        ds = make_dataset(
            study, series_uid=pt, modality="PT", BodyPartExamined="WHOLEBODY", **device
        )
        write_dicom(tmp_path / f"pt{i}.dcm", ds)
    write_dicom(tmp_path / "sr.dcm", make_dataset(study, series_uid=sr, modality="SR"))
    result = scan_files([tmp_path])
    row = study_row(result, study)
    assert row["modality"] == "CT"  # 3 CT = 3 PT instances: the tie goes alphabetically
    assert row["modalities"] == "CT;PT;SR"
    assert (row["n_series"], row["n_instances"], row["n_images"]) == (3, 7, "7")
    assert row["body_part"] == "CHEST" and row["body_parts"] == "CHEST;WHOLEBODY"
    assert (row["manufacturer"], row["device_model"]) == ("SIEMENS", "Biograph")
    assert (result.series, result.instances, result.files_indexed) == (3, 7, 7)


def test_primary_modality_is_the_most_instances_among_contract_codes(tmp_path: Path) -> None:
    study, mr = uid(), uid()
    for i in range(2):
        write_dicom(tmp_path / f"mr{i}.dcm", make_dataset(study, series_uid=mr, modality="MR"))
    write_dicom(tmp_path / "ct.dcm", make_dataset(study, modality="CT"))
    dx_study, pr = uid(), uid()
    write_dicom(tmp_path / "dx.dcm", make_dataset(dx_study, modality="DX"))
    for i in range(3):  # presentation states outnumber the image; PR is not a contract modality
        write_dicom(tmp_path / f"pr{i}.dcm", make_dataset(dx_study, series_uid=pr, modality="PR"))
    result = scan_files([tmp_path])
    assert study_row(result, study)["modality"] == "MR"
    assert study_row(result, dx_study)["modality"] == "DX"
    assert study_row(result, dx_study)["modalities"] == "DX;PR"


def test_the_same_instance_in_two_files_counts_once(tmp_path: Path) -> None:
    study, sop = uid(), uid()
    write_dicom(tmp_path / "a" / "x.dcm", make_dataset(study, sop_uid=sop))
    write_dicom(tmp_path / "b" / "x.dcm", make_dataset(study, sop_uid=sop))
    result = scan_files([tmp_path])
    assert result.files_indexed == 2
    assert study_row(result, study)["n_instances"] == 1


@pytest.mark.parametrize(
    ("charset", "institution", "manufacturer"),
    [
        ("ISO_IR 192", "अस्पताल", "Hôpital Médical"),
        ("ISO_IR 100", "Hôpital Saint-Éloi", "Société Générale d'Imagerie"),
        (["", "ISO 2022 IR 87"], "山田病院", "Yamada"),  # JIS X 0208 behind escape sequences
    ],
)
def test_specific_character_set_decodes_text(
    tmp_path: Path, charset: str | list[str], institution: str, manufacturer: str
) -> None:
    study = uid()
    names = {"InstitutionName": institution, "Manufacturer": manufacturer}
    ds = make_dataset(study, SpecificCharacterSet=charset, **names)
    path = write_dicom(tmp_path / "c.dcm", ds)
    assert (institution.encode("utf-8") in path.read_bytes()) == (charset == "ISO_IR 192")
    row = study_row(scan_files([tmp_path]), study)
    assert (row["institution_name"], row["manufacturer"]) == (institution, manufacturer)


@pytest.mark.parametrize(
    ("encoding", "name"), [("utf-8", "जिला अस्पताल"), ("latin-1", "Hôpital Saint-Éloi")]
)
def test_undeclared_character_set_reads_utf8_else_latin1(
    tmp_path: Path, encoding: str, name: str
) -> None:
    study = uid()
    ds = make_dataset(study)
    value = name.encode(encoding)
    value += b" " * (len(value) % 2)
    ds[0x00080080] = RawDataElement(Tag(0x00080080), "LO", len(value), value, 0, False, True)
    path = write_dicom(tmp_path / "c.dcm", ds)
    assert "SpecificCharacterSet" not in pydicom.dcmread(path)
    assert study_row(scan_files([tmp_path]), study)["institution_name"] == name


def test_implicit_vr_without_preamble_and_big_endian_without_meta(tmp_path: Path) -> None:
    a, b = uid(), uid()
    ds = make_dataset(a, PatientAge="030Y", InstitutionName="Implicit Hospital", pixels=True)
    block = ds.private_block(0x0011, "TEST PRIVATE", create=True)
    block.add_new(0x01, "LO", "private text")
    block.add_new(0x02, "OB", b"\x01\x02\x03\x04")
    path = write_dicom(tmp_path / "implicit.dcm", ds, encoding="implicit", preamble=False)
    assert path.read_bytes()[128:132] != b"DICM" and path.read_bytes()[:2] == b"\x08\x00"
    ds = make_dataset(b, PatientAge="031Y", pixels=True)
    write_dicom(tmp_path / "big.dcm", ds, encoding="big", preamble=False)
    result = scan_files([tmp_path])
    assert result.files_skipped == 0
    assert study_row(result, a)["age"] == "030Y"
    assert study_row(result, a)["institution_name"] == "Implicit Hospital"
    assert study_row(result, b)["age"] == "031Y"


def test_truncated_files_are_skipped_as_truncated(tmp_path: Path) -> None:
    whole = write_dicom(tmp_path / "whole.dcm", make_dataset(uid(), pixels=True))
    data = whole.read_bytes()
    pixel_start = data.index(b"\xe0\x7f\x10\x00")
    (tmp_path / "cut_in_header.dcm").write_bytes(data[: pixel_start // 2 + 3])
    (tmp_path / "cut_in_pixels.dcm").write_bytes(data[: pixel_start + 100])
    (tmp_path / "cut_after_preamble.dcm").write_bytes(data[:134])
    implicit = make_dataset(uid(), pixels=True)
    implicit_data = write_dicom(tmp_path / "i.dcm", implicit, encoding="implicit").read_bytes()
    (tmp_path / "i.dcm").unlink()
    (tmp_path / "cut_implicit.dcm").write_bytes(implicit_data[:-1])
    ds = make_dataset(uid(), pixels=True)
    deflated = write_dicom(tmp_path / "deflated.dcm", ds, encoding="deflated")
    (tmp_path / "cut_deflated.dcm").write_bytes(deflated.read_bytes()[:-300])
    result = scan_files([tmp_path])
    reasons = {Path(s["path"]).name: s["reason"] for s in result.skipped}
    assert reasons == {
        "cut_in_header.dcm": TRUNCATED,
        "cut_in_pixels.dcm": TRUNCATED,
        "cut_after_preamble.dcm": TRUNCATED,
        "cut_implicit.dcm": TRUNCATED,
        "cut_deflated.dcm": TRUNCATED,
    }
    assert result.files_indexed == 2  # whole.dcm and deflated.dcm


def test_non_dicom_files_and_files_without_a_study_uid(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("patient list: nothing to see\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "zeros.bin").write_bytes(bytes(4096))
    (tmp_path / "random.dcm").write_bytes(random.Random(3).randbytes(3000))
    write_dicom(tmp_path / "no_study.dcm", make_dataset(None))
    (tmp_path / "dangling.dcm").symlink_to(tmp_path / "gone.dcm")
    os.mkfifo(tmp_path / "pipe.dcm")  # must not block the scan
    result = scan_files([tmp_path, tmp_path / "no_such_dir"])
    reasons = {Path(s["path"]).name: s["reason"] for s in result.skipped}
    assert reasons == {
        "notes.txt": NOT_DICOM,
        "image.png": NOT_DICOM,
        "empty.dcm": NOT_DICOM,
        "zeros.bin": NOT_DICOM,
        "random.dcm": NOT_DICOM,
        "no_study.dcm": NO_STUDY_UID,
        "dangling.dcm": "unreadable: FileNotFoundError",
        "pipe.dcm": NOT_DICOM,
        "no_such_dir": "unreadable: FileNotFoundError",
    }
    assert result.files_indexed == 0 and result.studies.height == 0
    assert_accounted(result)


def test_skipped_files_are_listed_in_sorted_walk_order(tmp_path: Path) -> None:
    for name in ("b/2.txt", "a/9.txt", "a/10.txt", "c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    result = scan_files([tmp_path])
    names = [Path(s["path"]).relative_to(tmp_path).as_posix() for s in result.skipped]
    assert names == ["c.txt", "a/10.txt", "a/9.txt", "b/2.txt"]


def test_the_walk_is_os_walk_order_without_following_folder_symlinks(tmp_path: Path) -> None:
    for name in ("b/x/1.txt", "b/2.txt", "a/3.txt", "4.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / "a" / "to_b").symlink_to(tmp_path / "b")  # a folder link: not followed
    (tmp_path / "a" / "to_4.txt").symlink_to(tmp_path / "4.txt")  # a file link: a file
    walked = [p for p, _ in iter_files([tmp_path, tmp_path / "b" / "2.txt"])]  # 2.txt once
    expected = []
    for top, dirs, names in os.walk(tmp_path):
        dirs.sort()
        expected += [os.path.join(top, n) for n in sorted(names)]  # noqa: PTH118
    assert walked == expected
    assert [Path(p).relative_to(tmp_path).as_posix() for p in walked] == [
        "4.txt", "a/3.txt", "a/to_4.txt", "b/2.txt", "b/x/1.txt"
    ]  # fmt: skip


# --- PHI audit --------------------------------------------------------------------------------

PLANTED = {
    "PatientName": "ZZPLANTED^NAME",
    "PatientAddress": "ZZPLANTED-ADDRESS 12 Gandhi Marg",
    "PatientTelephoneNumbers": "+91-98ZZ0PLANTED",
    "OtherPatientIDs": "ZZPLANTED-MRN-778",
    "PatientBirthName": "ZZPLANTED-BIRTHNAME",
    "PatientMotherBirthName": "ZZPLANTED-MOTHER",
}
PLANTED_BIRTH_DATE = "19631107"


def plant_phi_files(root: Path) -> dict[str, tuple[str, ...]]:
    """One file per identifying element (plus combinations); returns study_uid → flagged tags."""
    expected: dict[str, tuple[str, ...]] = {}
    for i, (keyword, value) in enumerate(PLANTED.items()):
        study = uid()
        encoding = "implicit" if i % 2 else "explicit"
        ds = make_dataset(study, PatientBirthDate=PLANTED_BIRTH_DATE, **{keyword: value})
        write_dicom(root / f"{keyword}.dcm", ds, encoding=encoding, preamble=i % 3 != 2)
        expected[study] = (keyword,)
    study = uid()
    other = Dataset()
    other.PatientID, other.IssuerOfPatientID = "ZZPLANTED-SEQ-ID", "ZZPLANTED-ISSUER"
    ds = make_dataset(
        study,
        OtherPatientIDsSequence=Sequence([other]),
        BurnedInAnnotation="YES",
        PatientName="ZZPLANTED^UTF8^ñ",
        SpecificCharacterSet="ISO_IR 192",
    )
    write_dicom(root / "sequence.dcm", ds)
    expected[study] = ("BurnedInAnnotation", "OtherPatientIDsSequence", "PatientName")
    study = uid()
    long_name = "ZZPLANTED" + "X" * 80 + "^INVALID\x01NAME"  # invalid PN: pydicom would warn
    write_dicom(root / "invalid.dcm", make_dataset(study, PatientName=long_name))
    expected[study] = ("PatientName",)
    return expected


def test_phi_tags_flagged_by_keyword(tmp_path: Path) -> None:
    expected = plant_phi_files(tmp_path)
    result = scan_files([tmp_path])
    assert result.files_skipped == 0
    flagged = {r["study_uid"]: r["phi_tags"] for r in result.studies.to_dicts()}
    assert flagged == {study: ";".join(tags) for study, tags in expected.items()}
    assert result.phi_flagged_files == len(expected)
    assert result.phi_tag_files == {
        "BurnedInAnnotation": 1,
        "OtherPatientIDs": 1,
        "OtherPatientIDsSequence": 1,
        "PatientAddress": 1,
        "PatientBirthName": 1,
        "PatientMotherBirthName": 1,
        "PatientName": 3,
        "PatientTelephoneNumbers": 1,
    }
    assert result.studies["phi_files"].to_list() == [1] * len(expected)


def test_phi_values_appear_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    plant_phi_files(tmp_path)
    (tmp_path / "broken.dcm").write_bytes((tmp_path / "PatientName.dcm").read_bytes()[:-7])
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = scan_files([tmp_path])
        parallel = scan_files([tmp_path], workers=2)
    out = capfd.readouterr()  # file descriptors: the worker processes write there too
    texts = [
        repr(result),
        json.dumps(result.to_report(), ensure_ascii=False),
        result.studies.write_csv(),
        repr(parallel),
        json.dumps(parallel.to_report(), ensure_ascii=False),
        caplog.text,
        " ".join(str(w.message) for w in caught),
        out.out,
        out.err,
    ]
    everything = "\n".join(texts)
    assert "ZZPLANTED" not in everything
    assert "+91-98ZZ" not in everything
    assert PLANTED_BIRTH_DATE not in everything
    assert {s["reason"] for s in result.skipped} == {TRUNCATED}


def test_a_corrupt_header_cannot_carry_a_name_into_a_kept_field(tmp_path: Path) -> None:
    ds = make_dataset(
        uid(),
        PatientName="ZZPLANTED^NAME",
        InstitutionName="Real Hospital",
        ManufacturerModelName="Model between InstitutionName and PatientName",
    )
    data = write_dicom(tmp_path / "x.dcm", ds).read_bytes()
    (tmp_path / "x.dcm").unlink()
    sop = data.index(b"\x08\x00\x18\x00UI")
    name = data.index(b"\x10\x00\x10\x00PN")
    name_end = name + 8 + int.from_bytes(data[name + 6 : name + 8], "little")
    # SOPInstanceUID's length grown to swallow every element up to the end of PatientName
    swallowed = data[: sop + 6] + (name_end - sop - 8).to_bytes(2, "little") + data[sop + 8 :]
    (tmp_path / "swallowed.dcm").write_bytes(swallowed)
    # PatientName's tag rewritten as InstitutionName's (a repeat) or Modality's (out of order)
    for keyword, tag in (
        ("InstitutionName", b"\x08\x00\x80\x00LO"),
        ("Modality", b"\x08\x00`\x00CS"),
    ):
        retagged = data[:name] + tag + data[name + 6 :]
        (tmp_path / f"retagged_{keyword}.dcm").write_bytes(retagged)
    result = scan_files([tmp_path])
    reasons = {Path(s["path"]).name: s["reason"] for s in result.skipped}
    assert reasons == {
        "swallowed.dcm": "unreadable: CorruptHeaderError",
        "retagged_InstitutionName.dcm": "unreadable: CorruptHeaderError",
        "retagged_Modality.dcm": "unreadable: CorruptHeaderError",
    }
    assert "ZZPLANTED" not in repr(result) + json.dumps(result.to_report())


def test_empty_or_harmless_identifying_elements_are_not_flagged(tmp_path: Path) -> None:
    study = uid()
    ds = make_dataset(
        study,
        PatientName="^^^^",
        PatientAddress="  ",
        OtherPatientIDs="",
        OtherPatientIDsSequence=Sequence([Dataset()]),
        BurnedInAnnotation="NO",
    )
    write_dicom(tmp_path / "clean.dcm", ds)
    result = scan_files([tmp_path])
    assert study_row(result, study)["phi_tags"] is None
    assert result.phi_flagged_files == 0


# --- workers, progress, report ----------------------------------------------------------------


def _small_archive(root: Path) -> None:
    for s in range(6):
        study, series = uid(), uid()
        for i in range(9):
            ds = make_dataset(
                study,
                series_uid=series,
                modality="CT" if s % 2 else "MR",
                PatientName="ZZPLANTED^NAME" if i == 0 else "",
                PatientAge=f"0{s}5Y",
            )
            write_dicom(root / f"s{s}" / f"{i}.dcm", ds)
    (root / "s0" / "readme.txt").write_text("not an image")


def test_two_workers_give_the_same_result_as_one(tmp_path: Path) -> None:
    _small_archive(tmp_path)
    calls: list[tuple[int, int]] = []
    one = scan_files([tmp_path])
    two = scan_files([tmp_path], workers=2, progress=lambda *call: calls.append(call))
    assert one.studies.equals(two.studies)
    assert one.to_report() == two.to_report()
    assert calls[0] == (0, 55) and calls[-1] == (55, 55)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_progress_callback_with_one_worker(tmp_path: Path) -> None:
    _small_archive(tmp_path)
    calls: list[tuple[int, int]] = []
    scan_files([tmp_path], progress=lambda *call: calls.append(call))
    assert calls[0] == (0, 55) and calls[-1] == (55, 55)


def test_report_is_json_ready_and_uses_contract_names(tmp_path: Path) -> None:
    _small_archive(tmp_path)
    result = scan_files([tmp_path])
    report = json.loads(json.dumps(result.to_report()))
    assert {"files_seen", "files_indexed", "files_skipped", "skipped", "series", "instances",
            "phi_flagged_files", "studies", "skipped_by_reason"} <= set(report)  # fmt: skip
    assert report["skipped_by_reason"] == {NOT_DICOM: 1}
    assert report["files_seen"] == 55 and report["files_indexed"] == 54
    assert report["phi_flagged_files"] == 6
    contract = {"study_uid", "patient_id", "study_date", "modality", "sex", "age", "body_part",
                "manufacturer", "device_model", "n_images"}  # fmt: skip
    assert contract <= set(MANIFEST_COLUMNS)
    assert contract <= set(result.studies.columns)
    assert all(result.studies.schema[c] == pl.String for c in contract)


def test_invalid_worker_count() -> None:
    with pytest.raises(ValueError, match="workers"):
        scan_files([], workers=0)


# --- manifest join ----------------------------------------------------------------------------


def test_join_manifest_adds_fields_and_leaves_unmatched_studies_unknown(tmp_path: Path) -> None:
    a, b = uid(), uid()
    write_dicom(tmp_path / "a.dcm", make_dataset(a))
    write_dicom(tmp_path / "b.dcm", make_dataset(b))
    studies = scan_files([tmp_path]).studies
    manifest = pl.DataFrame({
        "study_uid": [f"  {a} ", a, "1.2.3.not.scanned"],
        "state": ["Orissa", "Orissa", "KA"],
        "area_type": ["rural", "rural", "urban"],
        "diagnosis_icd10": ["A15.0", "A15.0", None],
        "institution_id": ["TEST-OD-01", "TEST-OD-01", "TEST-KA-01"],
        "modality": ["x-ray", "CT", "MR"],  # not joined: the header is the source for these
    })  # fmt: skip
    joined = join_manifest(studies, manifest)
    assert joined.height == 2 and joined["study_uid"].to_list() == studies["study_uid"].to_list()
    row_a = joined.filter(pl.col("study_uid") == a).to_dicts()[0]
    row_b = joined.filter(pl.col("study_uid") == b).to_dicts()[0]
    assert {c: row_a[c] for c in MANIFEST_JOIN_COLUMNS} == {
        "institution_id": "TEST-OD-01",
        "state": "Orissa",
        "district": None,
        "area_type": "rural",
        "diagnosis_icd10": "A15.0",
        "facility_type": None,
    }
    assert row_a["modality"] == "CT"
    assert all(row_b[c] is None for c in MANIFEST_JOIN_COLUMNS)


def test_join_manifest_refuses_conflicting_rows_for_one_study() -> None:
    studies = pl.DataFrame({"study_uid": ["1.2.3"]})
    manifest = pl.DataFrame({"study_uid": ["1.2.3", "1.2.3"], "state": ["KA", "OD"]})
    with pytest.raises(ValueError, match="conflicting rows for 1 study_uid"):
        join_manifest(studies, manifest)


def test_join_manifest_keeps_an_existing_institution_where_the_manifest_has_none() -> None:
    studies = pl.DataFrame({"study_uid": ["1.1", "1.2"], "institution_id": ["CLI-ID", "CLI-ID"]})
    manifest = pl.DataFrame({"study_uid": ["1.1"], "institution_id": ["MANIFEST-ID"]})
    assert join_manifest(studies, manifest)["institution_id"].to_list() == ["MANIFEST-ID", "CLI-ID"]


# --- robustness on pydicom's bundled files ----------------------------------------------------


def test_every_file_pydicom_bundles_is_indexed_or_skipped_with_a_reason() -> None:
    testdata = sorted(pydicom.data.get_testdata_files())  # bundled only: no download
    dicomdir_trees = PYDICOM_DATA / "test_files" / "dicomdirtests"
    result = scan_files([*testdata, dicomdir_trees])  # files and folders, some overlapping
    assert_accounted(result)
    expected = {
        str(f)
        for p in [*map(Path, testdata), dicomdir_trees]
        for f in ([p] if p.is_file() else p.rglob("*"))
        if f.is_file()
    }
    assert result.files_seen == len(expected) > 150
    assert result.files_indexed > 100


def test_pydicom_data_directory_reasons() -> None:
    result = scan_files([PYDICOM_DATA])  # test files, DICOMDIR trees, charsets, palettes, code
    assert_accounted(result)
    assert result.files_seen == sum(len(files) for _, _, files in os.walk(PYDICOM_DATA))
    skipped = {s["path"]: s["reason"] for s in result.skipped}
    files = PYDICOM_DATA / "test_files"
    dicomdirs = sorted(Path(p).name for p, r in skipped.items() if r == DICOMDIR)
    assert dicomdirs == [
        "DICOMDIR", "DICOMDIR", "DICOMDIR-bigEnd", "DICOMDIR-empty.dcm", "DICOMDIR-implicit",
        "DICOMDIR-nooffset", "DICOMDIR-nopatient", "DICOMDIR-reordered",
    ]  # fmt: skip
    assert skipped[str(files / "MR_truncated.dcm")] == TRUNCATED
    assert skipped[str(files / "rtplan_truncated.dcm")] == TRUNCATED
    assert skipped[str(files / "README.txt")] == NOT_DICOM
    assert skipped[str(files / "zipMR.gz")] == NOT_DICOM
    assert skipped[str(PYDICOM_DATA / "palettes" / "pet.dcm")] == NO_STUDY_UID  # a palette IOD
    for indexed in ("MR_small_implicit.dcm", "ExplVR_BigEndNoMeta.dcm", "JPEG2000.dcm",
                    "SC_rgb_jpeg.dcm", "explicit_VR-UN.dcm", "rtdose.dcm"):  # fmt: skip
        assert str(files / indexed) not in skipped, indexed
    tree = files / "dicomdirtests" / "77654033"
    assert all(str(p) not in skipped for p in tree.rglob("*") if p.is_file())
    ct = read_instance(str(files / "CT_small.dcm"))
    assert not isinstance(ct, str) and ct.modality == "CT"
    assert ct.phi_tags == ("OtherPatientIDsSequence", "PatientName")  # it carries two other IDs


def test_bundled_files_with_two_workers_match_one() -> None:
    one = scan_files([PYDICOM_DATA])
    two = scan_files([PYDICOM_DATA], workers=2)
    assert one.to_report() == two.to_report()


@pytest.mark.slow
def test_realistic_archive_round_trip(tmp_path: Path) -> None:
    paths = write_archive(tmp_path, 150, seed=7)
    result = scan_files([tmp_path])
    assert result.files_indexed == len(paths) == result.files_seen == result.instances
    assert set(result.studies["modality"].to_list()) <= {"CT", "MR", "CR", "DX", "MG", "US"}
    assert "BENCH^PLANTED" not in json.dumps(result.to_report(), ensure_ascii=False)
    assert result.phi_flagged_files > 0
