"""Write real DICOM files with pydicom, for the DICOM reader's tests and benchmark (no mocks).

``make_dataset`` builds a plausible image header; ``write_dicom`` writes it as a conformant
Part 10 file (preamble, File Meta, explicit VR little endian) or, on request, as bare implicit
VR little endian with no preamble and no File Meta, or explicit VR big endian. ``write_archive``
writes a realistic mixed archive (CT, MR, CR, DX, MG, US with small pixel data) for timing; for
the benchmark it can also write pixel data of clinical sizes (as sparse holes, see
``write_sparse_pixels``) and a share of implicit VR studies. All identifiers are synthetic.
"""

from __future__ import annotations

import random
import struct
import warnings
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

UID_ROOT = "1.2.826.0.1.3680043.10.1234."  # a test root; every UID below is made from it

SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "SR": "1.2.840.10008.5.1.4.1.1.88.22",
    "PR": "1.2.840.10008.5.1.4.1.1.11.1",
    "OT": "1.2.840.10008.5.1.4.1.1.7",
}
# (rows, columns, samples per pixel, bits allocated) per modality, kept small.
PIXEL_SHAPES = {
    "CT": (64, 64, 1, 16),
    "MR": (64, 64, 1, 16),
    "CR": (96, 96, 1, 16),
    "DX": (96, 96, 1, 16),
    "MG": (128, 96, 1, 16),
    "US": (48, 64, 3, 8),
    "PT": (32, 32, 1, 16),
    "OT": (16, 16, 1, 8),
}


def uid(name: str = "") -> str:
    """A fresh UID under the test root (deterministic when `name` is given)."""
    return generate_uid(UID_ROOT, entropy_srcs=[name] if name else None)


def make_dataset(
    study_uid: str | None,
    *,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    modality: str | None = "CT",
    pixels: bool = False,
    **keywords: Any,
) -> Dataset:
    """A header with the given UIDs and modality; `keywords` set or (with None) drop elements.

    Deliberately invalid values (a too-long name, a bad date) are accepted without warnings.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _make_dataset(study_uid, series_uid, sop_uid, modality, pixels, keywords)


def _make_dataset(
    study_uid: str | None,
    series_uid: str | None,
    sop_uid: str | None,
    modality: str | None,
    pixels: bool,
    keywords: dict[str, Any],
) -> Dataset:
    ds = Dataset()
    sop_class = SOP_CLASSES.get(modality or "OT", SOP_CLASSES["OT"])
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid or uid()
    if study_uid is not None:
        ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid or uid()
    if modality is not None:
        ds.Modality = modality
    ds.StudyDate = "20250403"
    ds.StudyTime = "101500"
    ds.PatientID = "PSEUDO-0001"
    ds.PatientSex = "F"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    for key, value in keywords.items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    if pixels:
        add_pixels(ds, modality or "OT")
    return ds


def add_pixels(ds: Dataset, modality: str, rng: random.Random | None = None) -> None:
    """Small uncompressed pixel data of the modality's usual shape."""
    rows, cols, samples, bits = PIXEL_SHAPES.get(modality, PIXEL_SHAPES["OT"])
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, samples
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "RGB" if samples == 3 else "MONOCHROME2"
    if samples == 3:
        ds.PlanarConfiguration = 0
    n = rows * cols * samples * bits // 8
    ds.PixelData = (rng or random.Random(n)).randbytes(n)


def header_flipped(whole: bytes, rng: random.Random) -> bytes:
    """``whole`` (a DICOM file) with 1 to 3 random bytes of its header, before the pixel data
    element's value, set to random values."""
    header = whole.index(b"\xe0\x7f\x10\x00") + 12
    data = bytearray(whole)
    for _ in range(rng.randint(1, 3)):
        data[rng.randrange(header)] = rng.randrange(256)
    return bytes(data)


def write_dicom(
    path: Path,
    ds: Dataset,
    *,
    encoding: str = "explicit",
    preamble: bool = True,
) -> Path:
    """Write `ds` to `path`.

    encoding: "explicit" (VR little endian), "implicit" (VR little endian), "big" (explicit VR
    big endian) or "deflated". `preamble` False writes no preamble, no 'DICM' and no File Meta.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    syntax = {
        "explicit": ExplicitVRLittleEndian,
        "implicit": ImplicitVRLittleEndian,
        "big": ExplicitVRBigEndian,
        "deflated": DeflatedExplicitVRLittleEndian,
    }[encoding]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _write(path, ds, syntax, preamble)
    return path


def _write(path: Path, ds: Dataset, syntax: UID, preamble: bool) -> None:
    if preamble:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", SOP_CLASSES["OT"])
        meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", uid())
        meta.TransferSyntaxUID = syntax
        ds.file_meta = meta
        dcmwrite(path, ds, enforce_file_format=True)
    else:
        ds.preamble = None
        if hasattr(ds, "file_meta"):
            del ds.file_meta
        dcmwrite(path, ds, implicit_vr=syntax.is_implicit_VR, little_endian=syntax.is_little_endian)


# --- a realistic archive, for timing ----------------------------------------------------------

_DEVICES = {
    "CT": [("GE MEDICAL SYSTEMS", "Revolution EVO"), ("SIEMENS", "SOMATOM go.Up")],
    "MR": [("SIEMENS", "MAGNETOM Amira"), ("Philips", "Ingenia 1.5T")],
    "CR": [("FUJIFILM Corporation", "FCR PRIMA T2"), ("Carestream Health", "DirectView CR")],
    "DX": [("Allengers", "MARS 40"), ("Philips", "DigitalDiagnost C90")],
    "MG": [("HOLOGIC, Inc.", "Selenia Dimensions"), ("GE Healthcare", "Senographe Pristina")],
    "US": [("SAMSUNG MEDISON", "HS40"), ("GE Healthcare", "LOGIQ P9")],
}
_BODY = {
    "CT": ["HEAD", "CHEST", "ABDOMEN"],
    "MR": ["BRAIN", "KNEE", "LSPINE"],
    "CR": ["CHEST"],
    "DX": ["CHEST", "HAND"],
    "MG": ["BREAST"],
    "US": ["ABDOMEN", "PELVIS"],
}
# (series per study, instances per series) ranges per modality, small enough for a quick run.
_SHAPE = {
    "CT": ((1, 3), (10, 40)),
    "MR": ((2, 4), (8, 20)),
    "CR": ((1, 1), (1, 2)),
    "DX": ((1, 1), (1, 2)),
    "MG": ((1, 1), (4, 4)),
    "US": ((1, 1), (2, 8)),
}
_INSTITUTIONS = ["AIIMS Bhubaneswar", "Sri Venkateswara Medical College", "अस्पताल जयपुर"]


def _realistic_header(rng: random.Random, modality: str, study: dict[str, Any]) -> Dataset:
    ds = make_dataset(
        study["uid"],
        series_uid=study["series"],
        sop_uid=uid(),
        modality=modality,
        SpecificCharacterSet="ISO_IR 192",
        ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
        StudyDate=study["date"],
        SeriesDate=study["date"],
        AcquisitionDate=study["date"],
        ContentDate=study["date"],
        SeriesTime="101700",
        AcquisitionTime="101715.250",
        ContentTime="101716",
        PatientID=study["patient"],
        PatientSex=study["sex"],
        PatientName=study["name"],
        PatientBirthDate=study["birth"],
        PatientAge=study["age"],
        InstitutionName=study["institution"],
        InstitutionAddress="",
        StationName=f"{modality}01",
        StudyDescription=f"{modality} {study['body']}",
        SeriesDescription=f"{study['body']} series",
        Manufacturer=study["device"][0],
        ManufacturerModelName=study["device"][1],
        SoftwareVersions="VA20A",
        DeviceSerialNumber=str(rng.randrange(10**6, 10**7)),
        BodyPartExamined=study["body"],
        ProtocolName=f"{study['body']} ROUTINE",
        StudyID=str(rng.randrange(1000)),
        SeriesNumber=study["series_number"],
        InstanceNumber=study["instance_number"],
        PatientPosition="HFS",
        ImagePositionPatient=[-125.0, -125.0, float(study["instance_number"]) * 2.5],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        FrameOfReferenceUID=study["frame"],
        PixelSpacing=[0.488, 0.488],
        SliceThickness="2.5",
        WindowCenter="40",
        WindowWidth="400",
        RescaleIntercept="-1024",
        RescaleSlope="1",
        BurnedInAnnotation="NO",
    )
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "RPID16", "RADLEX"
    code.CodeMeaning = f"{modality} {study['body'].lower()}"
    ds.ProcedureCodeSequence = Sequence([code])
    block = ds.private_block(0x0009, "BENCH VENDOR 1.0", create=True)
    block.add_new(0x01, "LO", "vendor private text")
    block.add_new(0x02, "OB", rng.randbytes(64))
    add_pixels(ds, modality, rng)
    return ds


def _new_study(rng: random.Random, modality: str, n: int) -> dict[str, Any]:
    year = rng.randrange(1940, 2020)
    named = n % 10 == 3  # a few unscrubbed headers, for the PHI audit
    return {
        "uid": uid(),
        "date": f"2025{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}",
        "patient": f"PSEUDO-{n:06d}",
        "sex": rng.choice("MFMFO"),
        "name": "BENCH^PLANTED" if named else "",
        "birth": f"{year}0615" if rng.random() < 0.5 else None,
        "age": f"{2025 - year:03d}Y" if rng.random() < 0.7 else None,
        "institution": rng.choice(_INSTITUTIONS),
        "device": rng.choice(_DEVICES[modality]),
        "body": rng.choice(_BODY[modality]),
        "frame": uid(),
    }


# Pixel data of clinical sizes (rows, columns, samples per pixel, bits allocated).
REAL_PIXEL_SHAPES = {
    "CT": (512, 512, 1, 16),  # 512 KiB
    "MR": (256, 256, 1, 16),  # 128 KiB
    "CR": (2140, 1760, 1, 16),  # 7.2 MiB
    "DX": (3072, 3072, 1, 16),  # 18 MiB
    "MG": (4096, 3328, 1, 16),  # 26 MiB
    "US": (600, 800, 3, 8),  # 1.4 MiB
}


def write_sparse_pixels(
    path: Path,
    ds: Dataset,
    shape: tuple[int, int, int, int],
    *,
    encoding: str = "explicit",
    preamble: bool = True,
) -> Path:
    """Write `ds` with uncompressed pixel data of `shape` whose bytes are a sparse hole.

    The file has its real size and layout (the header, then a Pixel Data element of the full
    length), but the file system stores only the header: 20,000 clinical-size files need
    megabytes of disk, not tens of gigabytes. Little endian (explicit or implicit VR) only.
    """
    if encoding not in ("explicit", "implicit"):
        raise ValueError("sparse pixel data: explicit or implicit VR little endian only")
    rows, cols, samples, bits = shape
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, samples
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    if "PixelData" in ds:
        del ds.PixelData
    write_dicom(path, ds, encoding=encoding, preamble=preamble)
    length = rows * cols * samples * bits // 8
    tag = struct.pack("<HH", 0x7FE0, 0x0010)
    if encoding == "implicit":
        element = tag + struct.pack("<I", length)
    else:
        element = tag + (b"OW" if bits > 8 else b"OB") + b"\0\0" + struct.pack("<I", length)
    with path.open("r+b") as f:
        f.seek(0, 2)
        f.write(element)
        f.truncate(f.tell() + length)
    return path


def write_archive(
    root: Path,
    n_files: int,
    seed: int = 2026,
    *,
    real_sizes: bool = False,
    implicit_share: float = 0.0,
) -> list[Path]:
    """Write about `n_files` realistic files in PATIENT/STUDY/SERIES/IMAGE folders.

    `real_sizes`: pixel data of clinical sizes (:data:`REAL_PIXEL_SHAPES`) as sparse holes.
    `implicit_share`: about this share of the studies (chosen from the seed) are written as
    implicit VR little endian without preamble or File Meta, so their private tags read as UN.
    """
    rng = random.Random(seed)
    written: list[Path] = []
    n_study = 0
    while len(written) < n_files:
        modality = rng.choice(list(_SHAPE))
        study = _new_study(rng, modality, n_study)
        implicit = random.Random(f"{seed}/{n_study}").random() < implicit_share
        encoding = {"encoding": "implicit", "preamble": False} if implicit else {}
        (s_lo, s_hi), (i_lo, i_hi) = _SHAPE[modality]
        for series_number in range(1, rng.randint(s_lo, s_hi) + 1):
            study["series"], study["series_number"] = uid(), series_number
            for instance_number in range(1, rng.randint(i_lo, i_hi) + 1):
                study["instance_number"] = instance_number
                ds = _realistic_header(rng, modality, study)
                path = (
                    root
                    / f"P{n_study:06d}"
                    / f"S{series_number:03d}"
                    / f"I{instance_number:04d}.dcm"
                )
                if real_sizes:
                    shape = REAL_PIXEL_SHAPES[modality]
                    written.append(write_sparse_pixels(path, ds, shape, **encoding))
                else:
                    written.append(write_dicom(path, ds, **encoding))
                if len(written) >= n_files:
                    return written
        n_study += 1
    return written
