"""Read DICOM file headers into one row per study, in the data contract's column names.

``scan_files`` walks directories (sorted, so two runs see the same order), reads each file's
header without pixel data, and accounts for every file: indexed, or skipped with a reason from
:data:`SKIP_REASONS` (or ``"unreadable: <exception class>"``). It never raises for a bad file.
Instances are aggregated into series and studies; the study frame then goes through the same
normalisation and validation as a partner manifest (see ``join_manifest`` for the manifest
fields DICOM headers do not carry).

Privacy: a file whose header carries identifying values (see :data:`PHI_TAGS`) is flagged by tag
keyword. Those values are only ever tested for emptiness as raw bytes: they are never decoded,
returned, logged or put in an exception message. PatientBirthDate is read only to compute an
age in whole years and is then dropped. Warnings and pydicom log records are silenced while
files are read, because pydicom may quote element values in them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import multiprocessing
import os
import re
import stat
import struct
import warnings
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl
import pydicom
from pydicom import config as pydicom_config
from pydicom.charset import decode_bytes
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, MediaStorageDirectoryStorage
from pydicom.valuerep import TEXT_VR_DELIMS

from dashboard.contract import MODALITY_CODES

# --- vocabulary -------------------------------------------------------------------------------

NOT_DICOM = "not DICOM"
TRUNCATED = "truncated"
NO_STUDY_UID = "no StudyInstanceUID"
DICOMDIR = "DICOMDIR (directory record, no image)"
UNREADABLE = "unreadable: "  # followed by the exception class name, never its message
SKIP_REASONS: tuple[str, ...] = (NOT_DICOM, TRUNCATED, NO_STUDY_UID, DICOMDIR)

# Header elements whose non-empty value identifies a person (BurnedInAnnotation: value "YES").
PHI_TAGS: dict[str, int] = {
    "PatientName": 0x00100010,
    "OtherPatientIDs": 0x00101000,
    "OtherPatientIDsSequence": 0x00101002,
    "PatientBirthName": 0x00101005,
    "PatientAddress": 0x00101040,
    "PatientMotherBirthName": 0x00101060,
    "PatientTelephoneNumbers": 0x00102154,
    "BurnedInAnnotation": 0x00280301,
}

_TAG = {
    "SOPInstanceUID": 0x00080018,
    "StudyDate": 0x00080020,
    "SeriesDate": 0x00080021,
    "AcquisitionDate": 0x00080022,
    "Modality": 0x00080060,
    "Manufacturer": 0x00080070,
    "InstitutionName": 0x00080080,
    "ManufacturerModelName": 0x00081090,
    "PatientID": 0x00100020,
    "PatientBirthDate": 0x00100030,
    "PatientSex": 0x00100040,
    "PatientAge": 0x00101010,
    "BodyPartExamined": 0x00180015,
    "StudyInstanceUID": 0x0020000D,
    "SeriesInstanceUID": 0x0020000E,
    "FileSetID": 0x00041130,
    "RootDirectoryOffset": 0x00041200,
}
# Elements (VR LO) whose text follows Specific Character Set; the others read are ASCII.
_CHARSET_TAGS = frozenset(
    _TAG[k] for k in ("Manufacturer", "InstitutionName", "ManufacturerModelName", "PatientID")
)
_TAG_CHARSET = 0x00080005  # Specific Character Set: pydicom always reads it
_READ_TAGS: list[int] = sorted({*_TAG.values(), *PHI_TAGS.values()})

_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"})  # fmt: skip
_ITEM = 0xFFFEE000
_FIRST_GROUPS = frozenset({0x0002, 0x0004, 0x0008})
_U16_LE, _U16_BE = struct.Struct("<H"), struct.Struct(">H")
_U32_LE, _U32_BE = struct.Struct("<I"), struct.Struct(">I")
_UNDEFINED = 0xFFFFFFFF
_BLANK_BYTES = b" \x00^=\\"  # padding, and the separators of an otherwise empty name or list
_BLANK_TEXT = _BLANK_BYTES.decode()
_DICOMDIR_CLASS = MediaStorageDirectoryStorage.encode("ascii")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DA = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")

# Studies frame: canonical contract columns first (text, as a manifest would give them).
STUDY_SCHEMA: dict[str, Any] = {
    "study_uid": pl.String,
    "patient_id": pl.String,
    "study_date": pl.String,
    "modality": pl.String,
    "modalities": pl.String,
    "sex": pl.String,
    "age": pl.String,
    "body_part": pl.String,
    "body_parts": pl.String,
    "manufacturer": pl.String,
    "device_model": pl.String,
    "institution_name": pl.String,
    "n_images": pl.String,
    "n_series": pl.Int64,
    "n_instances": pl.Int64,
    "phi_files": pl.Int64,
    "phi_tags": pl.String,
}
PHI_FLAG_SCHEMA: dict[str, Any] = {"study_uid": pl.String, "tag": pl.String, "files": pl.Int64}
MANIFEST_JOIN_COLUMNS: tuple[str, ...] = (
    "institution_id", "state", "district", "area_type", "diagnosis_icd10", "facility_type",
)  # fmt: skip

Progress = Callable[[int, int], None]


class Instance(NamedTuple):
    """What one indexed file contributes; it holds no identifying value and no birth date."""

    study_uid: str
    series_uid: str | None
    sop_uid: str | None
    patient_id: str | None
    sex: str | None
    age: str | None
    study_date: str | None
    date_is_study_date: bool
    modality: str | None
    body_part: str | None
    manufacturer: str | None
    device_model: str | None
    institution_name: str | None
    phi_tags: tuple[str, ...]


# --- reading one file -------------------------------------------------------------------------


class _GuardedFile:
    """A file wrapper that notices reads and seeks past the end (a truncated file).

    pydicom reads a cut-off element value short, or seeks past the end over a skipped one,
    without complaint; this records it. Short reads before the first seek are ignored when the
    file has no preamble (pydicom probes 132 bytes, then rewinds). No ``name`` attribute: pydicom
    then neither stats the file nor quotes its path.
    """

    __slots__ = ("_armed", "_file", "_size", "tell", "truncated")

    def __init__(self, file: Any, size: int, *, armed: bool) -> None:
        self._file = file
        self._size = size
        self._armed = armed
        self.truncated = False
        self.tell: Callable[[], int] = file.tell  # the file's own: pydicom calls it per element

    def read(self, n: int | None = -1) -> bytes:
        data = self._file.read(n)
        if self._armed and n is not None and 0 < len(data) < n:
            self.truncated = True
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = self._file.seek(offset, whence)
        self._armed = True
        if pos > self._size:
            self.truncated = True
        return pos


def _looks_like_dicom(head: bytes, size: int) -> bool:
    """Preamble + 'DICM', or a first element that is plausibly group 0002/0004/0008.

    Without a preamble: explicit VR little or big endian (a two-letter VR after the tag), or
    implicit VR little endian (a value length that fits in the file).
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    explicit = head[4:6].isalpha() and head[4:6].isupper()
    (group_le,), (group_be,) = _U16_LE.unpack(head[0:2]), _U16_BE.unpack(head[0:2])
    if explicit:
        return group_le in _FIRST_GROUPS or group_be in _FIRST_GROUPS
    return group_le in _FIRST_GROUPS and _U32_LE.unpack(head[4:8])[0] <= size - 8


def _unreadable(exc: BaseException) -> str:
    cls = type(exc)
    name = cls.__name__ if cls.__name__ != "error" else f"{cls.__module__}.error"
    return UNREADABLE + name


def _is_cut_deflate(exc: Exception) -> bool:
    """zlib's Z_BUF_ERROR (-5): a deflated dataset that stops short."""
    return isinstance(exc, zlib.error) and str(exc).startswith("Error -5 ")


def _pixel_data_complete(fp: _GuardedFile, ds: Dataset, size: int) -> bool:
    """False when the pixel data element pydicom stopped before runs past the end of the file."""
    pos = fp.tell()
    if pos >= size:
        return True  # the header ran to the end of the file: no pixel data
    implicit, little = ds.original_encoding
    u16, u32 = (_U16_BE, _U32_BE) if little is False else (_U16_LE, _U32_LE)
    head = fp.read(12)
    if len(head) < 8:
        return False
    (group,), (elem,) = u16.unpack(head[0:2]), u16.unpack(head[2:4])
    if (group << 16 | elem) not in _PIXEL_TAGS:
        return True
    vr = head[4:6]
    if implicit is not False or not (vr.isalpha() and vr.isupper()):  # some writers switch
        hdr, length = 8, u32.unpack(head[4:8])[0]
    elif vr in _LONG_VRS:
        if len(head) < 12:
            return False
        hdr, length = 12, u32.unpack(head[8:12])[0]
    else:
        hdr, length = 8, u16.unpack(head[6:8])[0]
    if length != _UNDEFINED:
        return pos + hdr + length <= size
    return _fragments_complete(fp, pos + hdr, size, u16, u32)


def _fragments_complete(
    fp: _GuardedFile, pos: int, size: int, u16: struct.Struct, u32: struct.Struct
) -> bool:
    """Walk encapsulated pixel data items to the sequence delimiter, seeking over each."""
    while True:
        if pos == size:
            return True  # every item complete; only the sequence delimiter is missing
        fp.seek(pos)
        head = fp.read(8)
        if len(head) < 8:
            return False
        tag = u16.unpack(head[0:2])[0] << 16 | u16.unpack(head[2:4])[0]
        if tag != _ITEM:
            return True  # the delimiter, or something that is not ours to judge
        pos += 8 + u32.unpack(head[4:8])[0]
        if pos > size:
            return False


def _read_header(path: str) -> Dataset | str:
    """The header as a pydicom dataset of the wanted elements, or a skip reason."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the scan
    with os.fdopen(fd, "rb") as raw:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return NOT_DICOM
        size = info.st_size
        head = raw.read(132)
        if not _looks_like_dicom(head, size):
            return NOT_DICOM
        preamble = head[128:132] == b"DICM"
        if preamble and size < 140:
            return TRUNCATED
        raw.seek(0)
        fp = _GuardedFile(raw, size, armed=preamble)
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True, specific_tags=_READ_TAGS)
        except Exception as exc:
            return TRUNCATED if fp.truncated or _is_cut_deflate(exc) else _unreadable(exc)
        if fp.truncated:
            return TRUNCATED
        deflated = ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian
        if not deflated and not _pixel_data_complete(fp, ds, size):
            return TRUNCATED
        return ds


# --- values -----------------------------------------------------------------------------------


def _raw_value(ds: Dataset, tag: int) -> Any:
    elem = ds.get_item(tag, keep_deferred=True)
    return None if elem is None else elem.value


def _text(ds: Dataset, tag: int) -> str | None:
    """A text value, trimmed; LO elements decoded per Specific Character Set, others ASCII."""
    value = _raw_value(ds, tag)
    if isinstance(value, bytes):
        text = _decode(ds, value) if tag in _CHARSET_TAGS else value.decode("ascii", "replace")
    elif isinstance(value, str):
        text = value
    else:
        return None
    return _clean(text.strip(" \x00")) or None


def _decode(ds: Dataset, value: bytes) -> str:
    """Decode per the declared character set; undeclared, try UTF-8 before Latin-1.

    The default repertoire is ASCII, but archives often hold undeclared UTF-8 (Devanagari
    institution names) or Latin-1; valid UTF-8 is almost never Latin-1 text by accident.
    """
    if _has_value(ds, _TAG_CHARSET):  # raw bytes, or already converted by pydicom
        declared = ds.original_character_set
        encodings = [declared] if isinstance(declared, str) else list(declared)
        return decode_bytes(value, encodings, TEXT_VR_DELIMS)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _has_value(ds: Dataset, tag: int) -> bool:
    """True when the element carries a non-empty value; the value itself is never decoded."""
    elem = ds.get_item(tag, keep_deferred=True)
    if elem is None:
        return False
    value = elem.value
    if value is None:
        return bool(getattr(elem, "length", 0))  # deferred: only its length is known
    if isinstance(value, bytes) and value and _is_sequence(elem.VR, tag):
        try:
            value = ds[tag].value  # parse the raw sequence into items
        except Exception:
            return True  # cannot prove it is empty: flag it
    return not _is_blank(value)


def _is_blank(value: Any) -> bool:
    """Empty, padding or separators only; for sequences and multi-values, every part blank."""
    if isinstance(value, bytes):
        return not value.strip(_BLANK_BYTES)
    if isinstance(value, str):
        return not value.strip(_BLANK_TEXT)
    if isinstance(value, Dataset):
        return not any(_has_value(value, t) for t in list(value.keys()))
    if isinstance(value, Iterable):
        return all(_is_blank(v) for v in value)
    return value is None


def _is_sequence(vr: str | None, tag: int) -> bool:
    if vr == "SQ":
        return True
    return vr in (None, "UN") and dictionary_has_tag(tag) and dictionary_VR(tag) == "SQ"


def _phi_tags(ds: Dataset) -> tuple[str, ...]:
    flagged = [k for k, t in PHI_TAGS.items() if k != "BurnedInAnnotation" and _has_value(ds, t)]
    burned = _text(ds, PHI_TAGS["BurnedInAnnotation"])
    if burned is not None and burned.upper() == "YES":
        flagged.append("BurnedInAnnotation")
    return tuple(sorted(flagged))


def dicom_date(value: str | None) -> str | None:
    """A DA value as 'YYYYMMDD' (old 'YYYY.MM.DD' too); anything else is returned unchanged."""
    if value is None:
        return None
    match = _DA.match(value)
    return "".join(match.groups()) if match else value


def age_from_dates(birth: str | None, on: str | None) -> str | None:
    """Whole years between two DA values, as text; None when either is missing or malformed."""
    born, then = _parse_da(birth), _parse_da(on)
    if born is None or then is None:
        return None
    return str(then.year - born.year - ((then.month, then.day) < (born.month, born.day)))


def _parse_da(value: str | None) -> dt.date | None:
    match = _DA.match(value or "")
    try:
        return dt.date(*map(int, match.groups())) if match else None
    except ValueError:
        return None


def _study_date(ds: Dataset) -> tuple[str | None, bool]:
    for key in ("StudyDate", "SeriesDate", "AcquisitionDate"):
        value = _text(ds, _TAG[key])
        if value is not None:
            return dicom_date(value), key == "StudyDate"
    return None, False


def _is_dicomdir(ds: Dataset) -> bool:
    sop_class = _raw_value(ds.file_meta, 0x00020002)  # MediaStorageSOPClassUID
    if isinstance(sop_class, bytes) and sop_class.rstrip(b" \x00") == _DICOMDIR_CLASS:
        return True
    return _TAG["FileSetID"] in ds or _TAG["RootDirectoryOffset"] in ds


class CorruptHeaderError(ValueError):
    """Elements out of order, or one value running into the next: the header cannot be trusted.

    A corrupt length can swallow the following elements (a name among them) into a value this
    reader keeps, so such a file is skipped ("unreadable: CorruptHeaderError"), not indexed.
    Not detectable: a tag repeated with no kept element between the copies (pydicom keeps the
    last copy, in the first one's place).
    """


def _check_structure(ds: Dataset) -> None:
    """Tags must ascend in file order, each once (a repeat replaces the first in place)."""
    # keys() keeps first-seen order (iterating a Dataset sorts); the command set comes last
    elements = [ds.get_item(t, keep_deferred=True) for t in ds.keys() if t > 0xFFFF]  # noqa: SIM118
    offsets = [getattr(e, "value_tell", None) or getattr(e, "file_tell", None) for e in elements]
    for (a, b), (pa, pb) in zip(
        itertools.pairwise(e.tag for e in elements), itertools.pairwise(offsets), strict=True
    ):
        if a >= b or (pa is not None and pb is not None and pa >= pb):
            raise CorruptHeaderError("elements out of order or repeated")


def _clean(value: str | None) -> str | None:
    """A kept value, refused when it holds control characters (swallowed element headers)."""
    if value is not None and _CONTROL.search(value):
        raise CorruptHeaderError("control characters in a value")
    return value


def instance_from_dataset(ds: Dataset) -> Instance | str:
    """The instance a header describes, or a skip reason (DICOMDIR, no StudyInstanceUID).

    Raises CorruptHeaderError for a header whose structure cannot be trusted.
    """
    if _is_dicomdir(ds):
        return DICOMDIR
    _check_structure(ds)
    study_uid = _text(ds, _TAG["StudyInstanceUID"])
    if study_uid is None:
        return NO_STUDY_UID
    study_date, is_study_date = _study_date(ds)
    age = _text(ds, _TAG["PatientAge"])
    if age is None:
        age = age_from_dates(_text(ds, _TAG["PatientBirthDate"]), study_date)
    body_part = _text(ds, _TAG["BodyPartExamined"])
    return Instance(
        study_uid=study_uid,
        series_uid=_text(ds, _TAG["SeriesInstanceUID"]),
        sop_uid=_text(ds, _TAG["SOPInstanceUID"]),
        patient_id=_text(ds, _TAG["PatientID"]),
        sex=_text(ds, _TAG["PatientSex"]),
        age=age,
        study_date=study_date,
        date_is_study_date=is_study_date,
        modality=_text(ds, _TAG["Modality"]),
        body_part=body_part.upper() if body_part else None,
        manufacturer=_text(ds, _TAG["Manufacturer"]),
        device_model=_text(ds, _TAG["ManufacturerModelName"]),
        institution_name=_text(ds, _TAG["InstitutionName"]),
        phi_tags=_phi_tags(ds),
    )


def read_instance(path: str) -> Instance | str:
    """Read one file's header: an :class:`Instance`, or the reason the file was skipped."""
    try:
        ds = _read_header(path)
        return ds if isinstance(ds, str) else instance_from_dataset(ds)
    except Exception as exc:  # every file is accounted for; only the class name is kept
        return _unreadable(exc)


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence warnings and pydicom's logger, and validation on read, for the duration."""
    logger = logging.getLogger("pydicom")
    settings = pydicom_config.settings
    saved = (logger.disabled, settings.reading_validation_mode)
    logger.disabled = True
    settings.reading_validation_mode = pydicom_config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.disabled, settings.reading_validation_mode = saved


def read_chunk(paths: list[str]) -> list[Instance | str]:
    """Read a batch of files (the unit of work handed to a worker process)."""
    with quiet_pydicom():
        return [read_instance(p) for p in paths]


# --- walking ----------------------------------------------------------------------------------


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[str, str | None]]:
    """(path, None) for each file under `paths`, sorted; (path, reason) for what cannot be listed.

    Directories are walked recursively without following directory symlinks; a path that is
    not a directory is yielded as a file (a missing one is then skipped as unreadable).
    """
    seen: set[str] = set()
    for root in paths:
        root = os.fspath(root)
        if not Path(root).is_dir():
            if root not in seen:
                seen.add(root)
                yield root, None
            continue
        errors: list[OSError] = []
        for top, dirs, names in os.walk(root, onerror=errors.append):
            dirs.sort()
            for err in errors:
                yield err.filename or top, _unreadable(err)
            errors.clear()
            for name in sorted(names):
                path = os.path.join(top, name)  # noqa: PTH118 (str paths: millions of files)
                if path not in seen:
                    seen.add(path)
                    yield path, None
        for err in errors:
            yield err.filename or root, _unreadable(err)


# --- aggregation ------------------------------------------------------------------------------


def _most_common(counter: Counter[Any]) -> Any:
    """The most frequent key; ties go to the alphabetically first."""
    if not counter:
        return None
    return min(counter.items(), key=lambda kv: (-kv[1], _sort_key(kv[0])))[0]


def _sort_key(key: Any) -> Any:
    return tuple("" if k is None else k for k in key) if isinstance(key, tuple) else key


@dataclass
class _Study:
    sops: set[str] = field(default_factory=set)
    unnamed: int = 0
    series: set[str | None] = field(default_factory=set)
    modality: Counter[str] = field(default_factory=Counter)
    patient_id: Counter[str] = field(default_factory=Counter)
    sex: Counter[str] = field(default_factory=Counter)
    age: Counter[str] = field(default_factory=Counter)
    study_date: Counter[str] = field(default_factory=Counter)
    fallback_date: Counter[str] = field(default_factory=Counter)
    body_part: Counter[str] = field(default_factory=Counter)
    device: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    institution: Counter[str] = field(default_factory=Counter)
    phi_files: int = 0
    phi_tags: Counter[str] = field(default_factory=Counter)  # keyword → files carrying it

    def add(self, inst: Instance) -> None:
        if inst.phi_tags:
            self.phi_files += 1
            self.phi_tags.update(inst.phi_tags)
        if inst.sop_uid is not None:
            if inst.sop_uid in self.sops:
                return  # the same instance in another file: counted once
            self.sops.add(inst.sop_uid)
        else:
            self.unnamed += 1
        self.series.add(inst.series_uid)
        dates = self.study_date if inst.date_is_study_date else self.fallback_date
        for counter, value in (
            (self.modality, inst.modality),
            (self.patient_id, inst.patient_id),
            (self.sex, inst.sex),
            (self.age, inst.age),
            (dates, inst.study_date),
            (self.body_part, inst.body_part),
            (self.institution, inst.institution_name),
        ):
            if value is not None:
                counter[value] += 1
        if inst.manufacturer is not None or inst.device_model is not None:
            self.device[(inst.manufacturer, inst.device_model)] += 1

    @property
    def n_instances(self) -> int:
        return len(self.sops) + self.unnamed

    def primary_modality(self) -> str | None:
        """Most instances among the contract's codes (else among all); ties alphabetical."""
        known = Counter({m: n for m, n in self.modality.items() if m in MODALITY_CODES})
        return _most_common(known or self.modality)

    def row(self, study_uid: str) -> dict[str, Any]:
        manufacturer, device_model = _most_common(self.device) or (None, None)
        fallback = min(self.fallback_date) if self.fallback_date else None
        return {
            "study_uid": study_uid,
            "patient_id": _most_common(self.patient_id),
            "study_date": _most_common(self.study_date) or fallback,
            "modality": self.primary_modality(),
            "modalities": ";".join(sorted(self.modality)) or None,
            "sex": _most_common(self.sex),
            "age": _most_common(self.age),
            "body_part": _most_common(self.body_part),
            "body_parts": ";".join(sorted(self.body_part)) or None,
            "manufacturer": manufacturer,
            "device_model": device_model,
            "institution_name": _most_common(self.institution),
            "n_images": str(self.n_instances),
            "n_series": len(self.series),
            "n_instances": self.n_instances,
            "phi_files": self.phi_files,
            "phi_tags": ";".join(sorted(self.phi_tags)) or None,
        }


@dataclass
class ScanResult:
    """Everything a scan found: one row per study, and the account of every file."""

    studies: pl.DataFrame
    files_seen: int
    files_indexed: int
    files_skipped: int
    skipped: list[dict[str, str]]
    series: int
    instances: int
    phi_flagged_files: int
    phi_tag_files: dict[str, int] = field(default_factory=dict)  # keyword → files flagged
    phi_flags: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PHI_FLAG_SCHEMA))
    """Per study and keyword, the files flagged (keywords only, never values)."""

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        """How many files were skipped for each reason, most frequent first."""
        return dict(Counter(s["reason"] for s in self.skipped).most_common())

    def to_report(self) -> dict[str, Any]:
        """A JSON-ready summary: the counts, every skipped file with its reason, the studies."""
        return {
            "files_seen": self.files_seen,
            "files_indexed": self.files_indexed,
            "files_skipped": self.files_skipped,
            "skipped_by_reason": self.skipped_by_reason,
            "skipped": [dict(s) for s in self.skipped],
            "series": self.series,
            "instances": self.instances,
            "phi_flagged_files": self.phi_flagged_files,
            "phi_tag_files": dict(self.phi_tag_files),
            "studies": self.studies.to_dicts(),
        }


class _Aggregator:
    def __init__(self) -> None:
        self.studies: dict[str, _Study] = {}
        self.skipped: list[dict[str, str]] = []
        self.indexed = 0
        self.phi_files = 0
        self.phi_tags: Counter[str] = Counter()

    def add(self, path: str, outcome: Instance | str) -> None:
        if isinstance(outcome, str):
            self.skipped.append({"path": path, "reason": outcome})
            return
        self.indexed += 1
        self.phi_files += bool(outcome.phi_tags)
        self.phi_tags.update(outcome.phi_tags)
        self.studies.setdefault(outcome.study_uid, _Study()).add(outcome)

    def result(self) -> ScanResult:
        rows = [self.studies[uid].row(uid) for uid in sorted(self.studies)]
        frame = pl.DataFrame(rows, schema=STUDY_SCHEMA, orient="row")
        flags = [
            (uid, tag, n)
            for uid in sorted(self.studies)
            for tag, n in sorted(self.studies[uid].phi_tags.items())
        ]
        return ScanResult(
            studies=frame,
            files_seen=self.indexed + len(self.skipped),
            files_indexed=self.indexed,
            files_skipped=len(self.skipped),
            skipped=self.skipped,
            series=sum(len(s.series) for s in self.studies.values()),
            instances=sum(s.n_instances for s in self.studies.values()),
            phi_flagged_files=self.phi_files,
            phi_tag_files=dict(sorted(self.phi_tags.items())),
            phi_flags=pl.DataFrame(flags, schema=PHI_FLAG_SCHEMA, orient="row"),
        )


# --- scanning ---------------------------------------------------------------------------------


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _results_inline(files: list[str], size: int) -> Iterator[list[Instance | str]]:
    for chunk in _chunks(files, size):
        yield read_chunk(chunk)


def _results_in_processes(
    files: list[str], size: int, workers: int
) -> Iterator[list[Instance | str]]:
    """Chunk results in input order, with a bounded number of chunks in flight."""
    context = multiprocessing.get_context("spawn")  # no fork of a process with polars threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: deque[Future[list[Instance | str]]] = deque()
        for chunk in _chunks(files, size):
            pending.append(pool.submit(read_chunk, chunk))
            if len(pending) >= workers * 3:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def scan_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    workers: int = 1,
    progress: Progress | None = None,
) -> ScanResult:
    """Read the headers of every file under `paths` into studies; see the module docstring.

    `workers` > 1 reads in that many processes (pydicom holds the GIL); the result is the same
    as with one. `progress(files_done, files_total)` is called as chunks of files finish.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    agg = _Aggregator()
    files: list[str] = []
    for path, reason in iter_files(paths):
        if reason is None:
            files.append(path)
        else:
            agg.add(path, reason)
    total = len(files)
    if progress is not None:
        progress(0, total)
    size = max(1, min(256, -(-total // (workers * 8)))) if total else 1
    results = (
        _results_inline(files, size)
        if workers == 1 or total <= size
        else _results_in_processes(files, size, workers)
    )
    done = 0
    for chunk, outcomes in zip(_chunks(files, size), results, strict=True):
        for path, outcome in zip(chunk, outcomes, strict=True):
            agg.add(path, outcome)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    return agg.result()


def aggregate(outcomes: Iterable[tuple[str, Instance | str]]) -> ScanResult:
    """Studies from (name, instance or skip reason) pairs, aggregated exactly as files are.

    For headers that do not come from files (DICOMweb metadata): `name` stands for the path.
    """
    agg = _Aggregator()
    for name, outcome in outcomes:
        agg.add(name, outcome)
    return agg.result()


# --- manifest ---------------------------------------------------------------------------------


def join_manifest(studies: pl.DataFrame, manifest: pl.DataFrame) -> pl.DataFrame:
    """Add institution_id, state, district, area_type, diagnosis_icd10 and facility_type.

    `manifest` uses canonical column names and is matched on trimmed ``study_uid``. Missing
    manifest columns, and studies without a manifest row, give nulls (unknown); where `studies`
    already has one of these columns (say institution_id from ``--institution``) the manifest
    value wins and the existing value fills the gaps. A study_uid with two different manifest
    rows is an error rather than a silent pick.
    """
    if "study_uid" not in manifest.columns:
        raise ValueError("manifest has no study_uid column")
    right = (
        manifest.select(
            pl.col("study_uid").cast(pl.String).str.strip_chars(),
            *(_manifest_column(manifest, c) for c in MANIFEST_JOIN_COLUMNS),
        )
        .filter(pl.col("study_uid").is_not_null() & (pl.col("study_uid") != ""))
        .unique(maintain_order=True)
    )
    conflicts = right.filter(pl.col("study_uid").is_duplicated())["study_uid"].unique().sort()
    if len(conflicts):
        raise ValueError(
            f"manifest has conflicting rows for {len(conflicts)} study_uid value(s), "
            f"e.g. {conflicts[0]!r}"
        )
    both = [c for c in MANIFEST_JOIN_COLUMNS if c in studies.columns]
    joined = studies.join(right, on="study_uid", how="left", maintain_order="left", suffix="_m")
    return joined.with_columns(pl.coalesce(f"{c}_m", c).alias(c) for c in both).drop(
        [f"{c}_m" for c in both]
    )


def _manifest_column(manifest: pl.DataFrame, column: str) -> pl.Expr:
    if column in manifest.columns:
        return pl.col(column).cast(pl.String)
    return pl.lit(None, pl.String).alias(column)
