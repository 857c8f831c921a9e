"""The compiled reader (dicomsdl) against pydicom: the same outcome for every file, or declined.

The readers are compared file by file (``read_instance_fast`` must give exactly pydicom's
Instance or skip reason, or decline with None) and end to end (the same study rows, PHI audit
and index rows), on pydicom's bundled files and on a small benchmark-like corpus.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import duckdb
import pydicom
import pytest
from dicom_factory import (
    header_flipped,
    make_dataset,
    uid,
    write_archive,
    write_dicom,
    write_sparse_pixels,
)
from typer.testing import CliRunner

from dashboard.cli import app
from dashboard.ingest import dicom, dicom_fast
from dashboard.ingest.dicom import (
    TRUNCATED,
    Instance,
    iter_files,
    quiet_pydicom,
    read_chunk,
    read_instance,
    read_instance_pydicom,
    scan_files,
)
from dashboard.ingest.dicom_index import ingest_dicom
from dashboard.ingest.institutions import ingest_institutions
from dashboard.ingest.writer import index_writer
from tests.conftest import REGISTRY_CSV
from tests.test_dicom import plant_phi_files

PYDICOM_DATA = Path(pydicom.data.__file__).parent
INSTITUTION = "TEST-KA-01"

pytestmark = pytest.mark.skipif(not dicom_fast.available(), reason="dicomsdl not installed")


def files_under(*roots: Path | str) -> list[str]:
    return [path for path, reason in iter_files(roots) if reason is None]


def compare(paths: list[str]) -> tuple[int, int]:
    """Assert the fast reader agrees with pydicom on every file; (files read fast, declined)."""
    fast = declined = 0
    with quiet_pydicom():
        for path in paths:
            expected = read_instance_pydicom(path)
            try:
                outcome = dicom_fast.read_instance_fast(path)
            except Exception:  # read_instance then asks pydicom, as for None
                outcome = None
            if outcome is None:
                declined += 1
            else:
                assert outcome == expected, path
                fast += 1
            assert dicom_fast.read_instance(path) == expected, path
    return fast, declined


def bench_corpus(root: Path, n_files: int = 240) -> list[Path]:
    """Like benchmarks/dicom.py: clinical pixel sizes (sparse), a third implicit VR."""
    return write_archive(root, n_files, seed=5, real_sizes=True, implicit_share=1 / 3)


# --- file by file -----------------------------------------------------------------------------


def test_same_outcome_as_pydicom_on_every_bundled_file() -> None:
    testdata = [str(p) for p in pydicom.data.get_testdata_files()]
    paths = sorted({*testdata, *files_under(PYDICOM_DATA)})  # with non-DICOM and DICOMDIR files
    assert len(paths) > 150
    fast, declined = compare(paths)
    assert fast > 150 and declined < fast / 3, (fast, declined)


def test_same_outcome_on_the_benchmark_corpus_and_none_declined(tmp_path: Path) -> None:
    paths = [str(p) for p in bench_corpus(tmp_path)]
    implicit = [p for p in paths if Path(p).read_bytes()[128:132] != b"DICM"]
    assert 0 < len(implicit) < len(paths)
    assert compare(paths) == (len(paths), 0)


def test_implicit_vr_private_tags_read_as_un_bytes(tmp_path: Path) -> None:
    ds = make_dataset(uid(), PatientAge="030Y", InstitutionName="Implicit Hospital")
    block = ds.private_block(0x0011, "TEST PRIVATE", create=True)
    block.add_new(0x01, "LO", "private text")
    block.add_new(0x02, "OB", bytes(range(256)) * 3)  # binary: UN without a dictionary VR
    path = tmp_path / "implicit.dcm"
    write_sparse_pixels(path, ds, (64, 64, 1, 16), encoding="implicit", preamble=False)
    with quiet_pydicom():
        outcome = dicom_fast.read_instance_fast(str(path))
    assert isinstance(outcome, Instance)
    assert (outcome.age, outcome.institution_name) == ("030Y", "Implicit Hospital")
    assert compare([str(path)]) == (1, 0)


def test_undeclared_utf8_and_declared_charsets(tmp_path: Path) -> None:
    hindi, french = "अस्पताल जयपुर", "Hôpital Pondichéry"
    cases = {
        "undeclared_utf8.dcm": (None, hindi.encode()),
        "undeclared_latin1.dcm": (None, french.encode("latin-1")),
        "utf8.dcm": ("ISO_IR 192", hindi.encode()),
        "latin1.dcm": ("ISO_IR 100", french.encode("latin-1")),
    }
    for name, (charset, raw) in cases.items():
        ds = make_dataset(uid(), SpecificCharacterSet=charset)
        ds.add_new(0x00080080, "LO", raw)  # InstitutionName, as bytes: no encoding on write
        write_sparse_pixels(tmp_path / name, ds, (32, 32, 1, 16))
    paths = files_under(tmp_path)
    assert compare(paths) == (4, 0)
    with quiet_pydicom():
        read = {Path(p).name: dicom_fast.read_instance_fast(p) for p in paths}
    assert {n: i.institution_name for n, i in read.items()} == {  # type: ignore[union-attr]
        n: hindi if raw == hindi.encode() else french for n, (_, raw) in cases.items()
    }


def test_declined_files_go_to_pydicom(tmp_path: Path) -> None:
    big = make_dataset(uid(), PatientAge="031Y", pixels=True)
    write_dicom(tmp_path / "big_endian_no_meta.dcm", big, encoding="big", preamble=False)
    write_dicom(tmp_path / "deflated.dcm", make_dataset(uid(), pixels=True), encoding="deflated")
    whole = write_dicom(tmp_path / "whole.dcm", make_dataset(uid(), pixels=True)).read_bytes()
    (tmp_path / "cut_in_pixels.dcm").write_bytes(whole[:-10])
    (tmp_path / "trailing.dcm").write_bytes(whole + b"\xfc\xff\xfc\xff" + b"OB\0\0" + bytes(4))
    with quiet_pydicom():
        for name in ("big_endian_no_meta.dcm", "deflated.dcm", "cut_in_pixels.dcm"):
            assert dicom_fast.read_instance_fast(str(tmp_path / name)) is None, name
    assert read_instance(str(tmp_path / "big_endian_no_meta.dcm")).age == "031Y"  # type: ignore[union-attr]
    assert read_instance(str(tmp_path / "cut_in_pixels.dcm")) == TRUNCATED
    compare(files_under(tmp_path))


def test_a_file_cut_anywhere_gives_pydicom_s_outcome(tmp_path: Path) -> None:
    for encoding, preamble in (("explicit", True), ("implicit", False), ("implicit", True)):
        ds = make_dataset(uid(), PatientAge="040Y", PatientName="ZZPLANTED^CUT", pixels=True)
        whole = write_dicom(tmp_path / f"{encoding}{preamble}.dcm", ds, encoding=encoding,
                            preamble=preamble).read_bytes()  # fmt: skip
        for cut in range(8, len(whole), 29):
            (tmp_path / f"{encoding}{preamble}-{cut:05d}.dcm").write_bytes(whole[:cut])
    fast, declined = compare(files_under(tmp_path))
    assert fast >= 3 and declined > 100  # whole files fast; cut ones left to pydicom, or agreed


def test_a_header_with_random_bytes_changed_gives_pydicom_s_outcome(tmp_path: Path) -> None:
    rng = random.Random(3)
    for encoding, preamble in (("explicit", True), ("implicit", False)):
        ds = make_dataset(uid(), PatientAge="040Y", PatientName="ZZPLANTED^FLIP", pixels=True)
        whole = write_dicom(tmp_path / f"{encoding}.dcm", ds, encoding=encoding,
                            preamble=preamble).read_bytes()  # fmt: skip
        for i in range(150):
            (tmp_path / f"{encoding}-{i:03d}.dcm").write_bytes(header_flipped(whole, rng))
    fast, declined = compare(files_under(tmp_path))
    assert fast > 100 and declined > 20  # out-of-order or repeated tags among the declined


def layout_hits() -> int:
    return sum(known.hits for known in dicom_fast._layouts.values())


def write_series_of_one_layout(root: Path, encoding: str, preamble: bool) -> None:
    """Files whose headers differ only in values (same lengths): one layout, then variants.

    Among the values: planted names (flagged, never kept), blank names (not flagged), an age
    and a birth date, control characters (a corrupt header: pydicom's outcome), and a private
    OB value holding the bytes of a Modality element (which is not an element to pydicom).
    """
    study = "1.2.826.0.1.3680043.10.1234.7"
    fake_modality = {"explicit": b"\x08\x00\x60\x00CS\x02\x00MR\0\0",
                     "implicit": b"\x08\x00\x60\x00\x02\x00\x00\x00MR\0\0"}[encoding]  # fmt: skip
    for i in range(12):
        name = f"ZZPLANTED^LAYOUT{i:02d}" if i % 3 else " " * 18
        maker = "ACME\x01CO" if i == 7 else f"ACME{i:02d}CO"  # 7: a control character
        ds = make_dataset(
            study,
            series_uid=f"{study}.1",
            sop_uid=f"{study}.1.{100 + i}",
            PatientName=name,
            PatientAge=" " * 4 if i % 2 else f"{30 + i:03d}Y",  # blank: age from birth
            PatientBirthDate=f"19{50 + i}0101",
            Manufacturer=maker,
            InstitutionName=f"Hospital {i:02d}",
            pixels=True,
        )
        block = ds.private_block(0x0011, "TEST PRIVATE", create=True)
        block.add_new(0x02, "OB", (fake_modality if i % 4 == 3 else bytes(12)) + bytes([i]) * 4)
        write_dicom(root / f"{encoding}{preamble}-{i:02d}.dcm", ds, encoding=encoding,
                    preamble=preamble)  # fmt: skip


def test_headers_of_one_layout_are_read_from_it_as_pydicom_reads_them(tmp_path: Path) -> None:
    cases = (("explicit", True), ("implicit", False), ("implicit", True))
    for encoding, preamble in cases:
        write_series_of_one_layout(tmp_path, encoding, preamble)
    paths = files_under(tmp_path)
    assert len({Path(p).stat().st_size for p in paths}) == len(cases)  # one size per layout
    before = layout_hits()
    fast, declined = compare(paths)  # each outcome: exactly pydicom's
    # per case: the first header is parsed, the second gives the layout, later ones match it
    # (the one with a control character too: its mapping then refuses it, and pydicom reads it)
    assert layout_hits() - before >= len(cases) * 2 * 9  # compare reads each file twice
    assert fast == len(paths) - len(cases) and declined == len(cases)
    with quiet_pydicom():
        read = [read_instance(p) for p in paths]
    assert read[7] == dicom.UNREADABLE + "CorruptHeaderError"  # the control character
    assert [r.phi_tags for i, r in enumerate(read[:12]) if i != 7] == [  # type: ignore[union-attr]
        () if i % 3 == 0 else ("PatientName",) for i in range(12) if i != 7
    ]
    assert [r.age for r in read[:4]] == ["030Y", "74", "032Y", "72"]  # type: ignore[union-attr]
    for known in dicom_fast._layouts.values():  # blanked values: no identifying value kept
        for layout in known.layouts:
            kept = layout.reference.to_bytes((layout.reference.bit_length() + 7) // 8, "little")
            assert b"ZZPLANTED" not in kept and b"LAYOUT" not in kept and b"1950" not in kept


def test_the_layout_of_the_file_before_is_tried_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header of the last layout is read without a search for its pixel data.

    Private values holding the bytes of a Pixel Data (or Float Pixel Data) element header
    would stop that search early, which declines the file; the layout knows where the
    top-level elements are, and reads the file as pydicom does.
    """
    fakes = [
        bytes(16),
        b"\xe0\x7f\x10\x00OB\x00\x00\x04\x00\x00\x00" + bytes(4),  # explicit VR Pixel Data
        b"\xe0\x7f\x08\x00" + bytes(12),  # Float Pixel Data
        b"\xe0\x7f\x10\x00\x10\x00\x00\x00" + bytes(8),  # implicit VR Pixel Data
    ]
    for encoding, preamble in (("explicit", True), ("implicit", False)):
        study = f"1.2.826.0.1.3680043.10.1234.9{int(preamble)}"
        for i in range(8):
            ds = make_dataset(study, series_uid=f"{study}.1", sop_uid=f"{study}.1.{10 + i}",
                              PatientAge=f"{40 + i:03d}Y", pixels=True)  # fmt: skip
            block = ds.private_block(0x0011, "TEST PRIVATE", create=True)
            block.add_new(0x02, "OB", fakes[i % 4] if i >= 4 else bytes(16))
            write_dicom(tmp_path / f"{encoding}-{i}.dcm", ds, encoding=encoding,
                        preamble=preamble)  # fmt: skip
    paths = files_under(tmp_path)
    parsed: list[int] = []
    read = dicom_fast._read

    def counted(fd: int, buf: bytes, size: int) -> Instance | str:
        parsed.append(size)
        return read(fd, buf, size)

    monkeypatch.setattr(dicom_fast, "_read", counted)
    monkeypatch.setattr(dicom_fast, "_last_keys", [])
    assert compare(paths) == (len(paths), 0)  # each outcome: exactly pydicom's
    # per encoding: the 1st file is parsed, the 2nd gives the layout; then the rest match it
    # (compare reads each file twice, so the second round finds the last key of the other)
    assert len(parsed) <= 2 * 2 + 2
    with quiet_pydicom():
        ages = [read_instance(p).age for p in paths]  # type: ignore[union-attr]
    assert ages == [f"{40 + i:03d}Y" for i in range(8)] * 2


def test_a_header_of_the_same_size_but_another_layout_is_parsed(tmp_path: Path) -> None:
    """Lengths moved between elements keep the file size but change the layout."""
    devices = [("ACME", "MODEL-XYZ1"), ("ACME", "MODEL-XYZ2"), ("ACME", "MODEL-XYZ3"),
               ("ACMEHC", "MODEL-XY"), ("ACMEHCAB", "MODEL-"), ("ACME", "MODEL-XYZ4")]  # fmt: skip
    for i, (maker, model) in enumerate(devices):
        ds = make_dataset(
            "1.2.826.0.1.3680043.10.1234.8", series_uid="1.2.826.0.1.3680043.10.1234.8.1",
            sop_uid=f"1.2.826.0.1.3680043.10.1234.8.1.{i}", Manufacturer=maker,
            ManufacturerModelName=model, pixels=True,
        )  # fmt: skip
        write_dicom(tmp_path / f"{i}.dcm", ds)
    paths = files_under(tmp_path)
    assert len({Path(p).stat().st_size for p in paths}) == 1
    before = layout_hits()
    assert compare(paths) == (len(paths), 0)
    assert layout_hits() - before >= 4  # the 2nd file gives the layout; the 3rd and 6th match it
    with quiet_pydicom():
        read = [read_instance(p) for p in paths]
    assert [(r.manufacturer, r.device_model) for r in read] == devices  # type: ignore[union-attr]


def test_phi_audit_is_the_same_and_values_stay_out(tmp_path: Path) -> None:
    plant_phi_files(tmp_path)
    for i, path in enumerate(sorted(tmp_path.glob("*.dcm"))):  # the same headers with pixels
        with quiet_pydicom():
            ds = pydicom.dcmread(path, force=True)
        write_sparse_pixels(tmp_path / "px" / f"{i}.dcm", ds, (32, 32, 1, 16))
    fast, _ = compare(files_under(tmp_path))
    assert fast >= 6  # the planted names, addresses and phones are read by the compiled reader
    auto, pyd = scan_files([tmp_path], reader="auto"), scan_files([tmp_path], reader="pydicom")
    assert auto.to_report() == pyd.to_report()
    assert auto.phi_tag_files == pyd.phi_tag_files and auto.phi_flagged_files > 6
    assert "ZZPLANTED" not in json.dumps(auto.to_report(), ensure_ascii=False)


def test_dicomsdl_never_writes_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    paths = files_under(PYDICOM_DATA)  # truncated, corrupt and odd files make it complain
    read_chunk(paths, "auto")
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


# --- end to end -------------------------------------------------------------------------------


def registered_db(path: Path) -> Path:
    registry = path.with_suffix(".csv")
    registry.write_text(REGISTRY_CSV, encoding="utf-8")
    with index_writer(path) as con:
        ingest_institutions(con, registry)
    return path


def index_rows(db: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with duckdb.connect(str(db), read_only=True) as con:
        columns = [
            c
            for (c,) in con.sql(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'study' "
                "AND column_name NOT IN ('ingested_at', 'updated_at', 'source_file')"
            ).fetchall()
        ]
        studies = con.sql(f"SELECT {', '.join(columns)} FROM study ORDER BY ALL").fetchall()
        phi = con.sql(
            "SELECT institution_id, study_uid, tag, files FROM phi_flag ORDER BY ALL"
        ).fetchall()
    return studies, phi


def test_identical_index_rows_from_either_reader(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    bench_corpus(corpus, 120)
    for path in [p for p in pydicom.data.get_testdata_files() if Path(p).is_file()][:60]:
        (corpus / "pydicom").mkdir(exist_ok=True)
        (corpus / "pydicom" / Path(path).name).write_bytes(Path(path).read_bytes())
    rows = {}
    for reader in dicom.READERS:
        db = registered_db(tmp_path / f"{reader}.duckdb")
        ingest_dicom(db, [corpus], institution=INSTITUTION, reader=reader, workers=2)
        rows[reader] = index_rows(db)
    assert rows["auto"] == rows["pydicom"]
    assert len(rows["auto"][0]) > 10 and rows["auto"][1]


def test_a_crashing_worker_leaves_its_chunk_to_pydicom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = bench_corpus(tmp_path, 60)
    victim = str(paths[7])

    def crash_on_victim(path: str) -> Instance | str:
        if path == victim:
            os._exit(1)  # what a segfault in the compiled reader would do to a worker
        return read_instance_pydicom(path)

    monkeypatch.setattr(dicom_fast, "read_instance", crash_on_victim)
    monkeypatch.setattr(dicom, "chunk_size", lambda total, workers: 8)
    crashed = scan_files([tmp_path], workers=2, reader="auto")
    assert crashed.to_report() == scan_files([tmp_path], reader="pydicom").to_report()
    assert crashed.files_indexed == len(paths)


def test_cli_reader_option(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    bench_corpus(corpus, 30)
    reports = {}
    for reader in dicom.READERS:
        db = registered_db(tmp_path / f"{reader}.duckdb")
        result = CliRunner().invoke(
            app,
            ["ingest", "dicom", str(corpus), "--db", str(db), "--institution", INSTITUTION,
             "--workers", "1", "--json", "--reader", reader],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        reports[reader] = json.loads(result.stdout)
    assert reports["auto"] == reports["pydicom"]
    assert reports["auto"]["files_indexed"] == 30
    db = registered_db(tmp_path / "bad.duckdb")
    result = CliRunner().invoke(
        app, ["ingest", "dicom", str(corpus), "--db", str(db), "--institution", INSTITUTION,
              "--reader", "fastest"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "reader must be one of auto, pydicom" in result.stderr
