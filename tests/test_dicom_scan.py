"""The scan's shortcuts give exactly what the plain per-file reading gives.

Two shortcuts are checked against the plain path: the pydicom reader parsing a header from
the file's first bytes in memory (``PREFIX_READS``) instead of from the file, and the compact
chunk results (``ChunkOutcomes``: each distinct outcome once per chunk) that workers send and
the parent aggregates, instead of one Instance per file.
"""

from __future__ import annotations

import random
from pathlib import Path

import pydicom
import pytest
from dicom_factory import header_flipped, make_dataset, uid, write_archive, write_dicom
from pydicom import dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from dashboard.ingest import dicom
from dashboard.ingest.dicom import (
    TRUNCATED,
    Instance,
    ScanResult,
    aggregate,
    iter_files,
    quiet_pydicom,
    read_chunk,
    read_chunk_compact,
    read_instance_pydicom,
    scan_files,
)

PYDICOM_DATA = Path(pydicom.data.__file__).parent


def files_under(*roots: Path | str) -> list[str]:
    return [path for path, reason in iter_files(roots) if reason is None]


def read_all(paths: list[str]) -> dict[str, Instance | str]:
    with quiet_pydicom():
        return {path: read_instance_pydicom(path) for path in paths}


# --- pydicom from a prefix in memory ----------------------------------------------------------


def write_encapsulated(path: Path, *, cut: int = 0) -> Path:
    """A JPEG-syntax file whose encapsulated pixel data has two fragments (cut short: `cut`)."""
    ds = make_dataset(uid(), PatientAge="033Y")
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 8, 8, 7
    ds.PixelRepresentation, ds.PhotometricInterpretation = 0, "MONOCHROME2"
    frames = [b"\xff\xd8" + bytes(20_000) + b"\xff\xd9", b"\xff\xd8" + bytes(9_000) + b"\xff\xd9"]
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.NumberOfFrames = 2
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.file_meta = meta
    dcmwrite(path, ds, enforce_file_format=True)
    data = path.read_bytes()
    assert data[data.index(b"\xe0\x7f\x10\x00") + 8 :].startswith(b"\xff" * 4)  # undefined
    if cut:
        path.write_bytes(data[:-cut])
    return path


def varied_files(root: Path) -> list[str]:
    """Bench-like files, headers past 16 KiB and past 1 MiB, truncations, deflate, no pixels."""
    write_archive(root / "bench", 40, seed=9, real_sizes=True, implicit_share=0.4)
    for i, (size, encoding, preamble) in enumerate(
        [(40_000, "explicit", True), (40_000, "implicit", False), (1_300_000, "explicit", True)]
    ):
        ds = make_dataset(uid(), PatientAge="050Y", PatientName="ZZPLANTED^LONG", pixels=True)
        block = ds.private_block(0x0011, "LONG HEADER TEST", create=True)
        block.add_new(0x01, "OB", random.Random(i).randbytes(size))
        whole = write_dicom(root / f"long{i}.dcm", ds, encoding=encoding, preamble=preamble)
        data = whole.read_bytes()
        (root / f"long{i}-cut-in-pixels.dcm").write_bytes(data[:-5])
        (root / f"long{i}-cut-in-header.dcm").write_bytes(data[: size // 2])
    ds = make_dataset(uid(), pixels=True)
    data = write_dicom(root / "small.dcm", ds).read_bytes()
    (root / "small-cut.dcm").write_bytes(data[:-1])
    write_dicom(root / "no-pixels.dcm", make_dataset(uid(), PatientAge="007Y"))
    write_dicom(root / "deflated.dcm", make_dataset(uid(), pixels=True), encoding="deflated")
    write_encapsulated(root / "jpeg.dcm")
    write_encapsulated(root / "jpeg-cut.dcm", cut=4_000)
    return files_under(root)


def cut_and_flipped_files(root: Path) -> list[str]:
    """Files cut at many points, and headers with random bytes changed (as test_dicom_fast)."""
    rng = random.Random(7)
    for encoding, preamble in (("explicit", True), ("implicit", False)):
        ds = make_dataset(uid(), PatientAge="040Y", PatientName="ZZPLANTED^CUT", pixels=True)
        whole = write_dicom(root / f"{encoding}.dcm", ds, encoding=encoding,
                            preamble=preamble).read_bytes()  # fmt: skip
        for cut in range(8, len(whole), 97):
            (root / f"{encoding}-cut{cut:05d}.dcm").write_bytes(whole[:cut])
        for i in range(40):
            (root / f"{encoding}-flip{i:03d}.dcm").write_bytes(header_flipped(whole, rng))
    return files_under(root)


@pytest.mark.parametrize("prefixes", [(64, 300), (512,), dicom.PREFIX_READS])
def test_pydicom_from_a_prefix_gives_what_it_gives_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefixes: tuple[int, ...]
) -> None:
    testdata = [str(p) for p in pydicom.data.get_testdata_files()]
    paths = sorted(
        {
            *varied_files(tmp_path / "varied"),
            *cut_and_flipped_files(tmp_path / "cut"),
            *testdata,
            *files_under(PYDICOM_DATA),
        }
    )
    monkeypatch.setattr(dicom, "PREFIX_READS", ())
    from_file = read_all(paths)
    monkeypatch.setattr(dicom, "PREFIX_READS", prefixes)
    assert read_all(paths) == from_file
    # known answers where the prefix decides alone (a pixel data header inside it)
    reasons = {Path(p).name: o for p, o in from_file.items() if "varied" in p}
    assert reasons["jpeg-cut.dcm"] == TRUNCATED  # found by walking the fragments in the file
    assert isinstance(reasons["jpeg.dcm"], Instance) and reasons["jpeg.dcm"].age == "033Y"
    for i in range(3):
        assert isinstance(reasons[f"long{i}.dcm"], Instance)
        assert reasons[f"long{i}.dcm"].phi_tags == ("PatientName",)
        assert reasons[f"long{i}-cut-in-pixels.dcm"] == TRUNCATED
        assert reasons[f"long{i}-cut-in-header.dcm"] == TRUNCATED
    assert reasons["small-cut.dcm"] == TRUNCATED and reasons["no-pixels.dcm"].age == "007Y"


def test_ordinary_headers_are_parsed_in_memory_not_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [str(p) for p in write_archive(tmp_path, 30, seed=3, real_sizes=True)]
    long = make_dataset(uid(), pixels=True)
    long.private_block(0x0011, "LONG HEADER TEST", create=True).add_new(0x01, "OB", bytes(2**21))
    paths.append(str(write_dicom(tmp_path / "long.dcm", long)))  # a 2 MiB header: from the file
    calls: list[object] = []
    dcmread = pydicom.dcmread

    def counted(fp: object, *args: object, **kwargs: object) -> object:
        calls.append(fp)
        return dcmread(fp, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pydicom, "dcmread", counted)
    outcomes = read_all(paths)
    assert all(isinstance(o, Instance) for o in outcomes.values())
    assert len(calls) == 1  # only the 2 MiB header was read from the file


# --- compact chunk results --------------------------------------------------------------------


def messy_archive(root: Path) -> None:
    """Duplicate instances in and across chunks, unnamed instances, PHI, skipped files."""
    write_archive(root / "bench", 45, seed=4, implicit_share=0.3)
    study, sop = uid("chunks-study"), uid("chunks-sop")
    named = make_dataset(study, sop_uid=sop, PatientName="ZZPLANTED^DUP", PatientAge="040Y")
    for folder, name in (("a", "1"), ("a", "2"), ("z", "9")):  # one instance, three files
        write_dicom(root / folder / f"{name}.dcm", named)
    for name in ("3", "4"):  # two instances without SOPInstanceUID
        unnamed = make_dataset(study, modality="MR", SOPInstanceUID=None, PatientAge="041Y")
        write_dicom(root / "a" / f"{name}.dcm", unnamed)
    (root / "a" / "5.txt").write_text("not an image")
    whole = write_dicom(root / "m" / "whole.dcm", make_dataset(uid(), pixels=True)).read_bytes()
    (root / "m" / "cut.dcm").write_bytes(whole[:-3])


def per_file(root: Path) -> ScanResult:
    paths = files_under(root)
    return aggregate(zip(paths, read_chunk(paths, "pydicom"), strict=True))


@pytest.mark.parametrize(("size", "workers"), [(1, 1), (3, 1), (7, 2), (4096, 1), (5, 2)])
def test_compact_chunks_aggregate_as_files_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, workers: int
) -> None:
    messy_archive(tmp_path)
    expected = per_file(tmp_path)
    monkeypatch.setattr(dicom, "chunk_size", lambda total, workers: size)
    for reader in dicom.READERS:
        result = scan_files([tmp_path], workers=workers, reader=reader)
        assert result.to_report() == expected.to_report()
        assert result.phi_flags.equals(expected.phi_flags)
        assert result.phi_tag_files == expected.phi_tag_files
    # known answers: one instance in three files, two unnamed instances, one study
    row = next(r for r in expected.to_report()["studies"] if r["study_uid"] == uid("chunks-study"))
    assert (row["n_instances"], row["n_series"], row["phi_files"]) == (3, 3, 3)
    assert (row["modality"], row["modalities"], row["age"]) == ("MR", "CT;MR", "041Y")
    assert expected.skipped_by_reason == {"not DICOM": 1, TRUNCATED: 1}


def test_a_chunk_sends_each_distinct_outcome_once(tmp_path: Path) -> None:
    study, series = uid(), uid()
    for i in range(6):
        ds = make_dataset(study, series_uid=series, PatientAge="030Y")
        write_dicom(tmp_path / f"{i}.dcm", ds)
    (tmp_path / "7.txt").write_text("not an image")
    paths = files_under(tmp_path)
    chunk = read_chunk_compact(paths, "pydicom")
    assert len(chunk.distinct) == 2 and chunk.which == [0] * 6 + [1]
    assert chunk.distinct[1] == "not DICOM" and chunk.sops[-1] is None
    plain = read_chunk(paths, "pydicom")
    assert chunk.sops[:6] == [o.sop_uid for o in plain[:6]]  # type: ignore[union-attr]
