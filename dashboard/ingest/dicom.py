"""Read DICOM file headers into one row per study, in the data contract's column names.

``scan_files`` walks directories (sorted, so two runs see the same order), reads each file's
header without pixel data, and accounts for every file: indexed, or skipped with a reason from
:data:`SKIP_REASONS` (or ``"unreadable: <exception class>"``). It never raises for a bad file.
Two readers give the same Instance for every file: pydicom here, and the compiled reader of
``dicom_fast`` (``reader="auto"``: used where it reads a file exactly, pydicom for the rest);
both hand the header's raw values to one field mapping, :func:`instance_from_values`.
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
import functools
import gc
import io
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
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import polars as pl
import pydicom
from pydicom import config as pydicom_config
from pydicom.charset import decode_bytes
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataset import Dataset
from pydicom.filereader import read_partial
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
_TAG_BIRTH_DATE = _TAG["PatientBirthDate"]
_READ_TAGS: list[int] = sorted({*_TAG.values(), *PHI_TAGS.values()})
# Flagged when non-empty (BurnedInAnnotation only when "YES").
_PHI_PRESENCE = {k: t for k, t in PHI_TAGS.items() if k != "BurnedInAnnotation"}

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


_SOP_FIELD = Instance._fields.index("sop_uid")


class ChunkOutcomes(NamedTuple):
    """A chunk's outcomes, compact for the trip from a worker process to the parent.

    The files of a series give the same outcome but for the SOPInstanceUID, so each distinct
    outcome travels once: a skip reason, or an Instance's fields without ``sop_uid``.
    """

    distinct: list[tuple[Any, ...] | str]
    which: list[int]  # per file, in order: its outcome's index in `distinct`
    sops: list[str | None]  # per file: its SOPInstanceUID (None for a skipped file)


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
    return fragments_complete(fp, pos + hdr, size, u16, u32)


def fragments_complete(
    fp: Any, pos: int, size: int, u16: struct.Struct, u32: struct.Struct
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


def regular_size(fd: int) -> int | None:
    """The size of an open regular file; None for a FIFO, device or directory (not DICOM)."""
    info = os.fstat(fd)
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def skip_reason(head: bytes, size: int) -> str | None:
    """NOT_DICOM or TRUNCATED, judged from the first 132 bytes (fewer in a short file)."""
    if not _looks_like_dicom(head, size):
        return NOT_DICOM
    if head[128:132] == b"DICM" and size < 140:
        return TRUNCATED
    return None


def open_nonblocking(path: str) -> int:
    """A read-only descriptor; a FIFO must not block the scan."""
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


# Prefixes of a file tried in memory before pydicom reads the file itself (see _read_prefix).
PREFIX_READS: tuple[int, ...] = (16 * 1024, 1024 * 1024)
_READ_TAG_SET = frozenset(_READ_TAGS)


def _read_header(path: str) -> Dataset | str:
    """The header as a pydicom dataset of the wanted elements, or a skip reason."""
    fd = open_nonblocking(path)
    with os.fdopen(fd, "rb") as raw:
        size = regular_size(fd)
        if size is None:
            return NOT_DICOM
        head = raw.read(max(132, PREFIX_READS[0]) if PREFIX_READS else 132)
        reason = skip_reason(head[:132], size)
        if reason is not None:
            return reason
        for want in PREFIX_READS:
            if len(head) < want:
                head += raw.read(want - len(head))
            if len(head) >= size:
                break  # the whole file: read below, where a cut-off element is noticed
            ds = _read_prefix(head, size, raw)
            if ds is not None:
                return ds
        raw.seek(0)
        fp = _GuardedFile(raw, size, armed=head[128:132] == b"DICM")
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


def _read_prefix(head: bytes, size: int, raw: Any) -> Dataset | str | None:
    """pydicom's reading of the file, from `head` (its first bytes) in memory; None if unsure.

    pydicom moves forward through a file (its look-aheads step back a few bytes at most), so
    when it stops at the pixel data with that element's header inside `head`, every byte it
    read lies in `head` and it read exactly what it reads from the file, with no read cut
    short and no seek past the end (what the file-based reading calls truncated). Anything
    else (the dataset running past `head`, an error, a deflated dataset, which pydicom reads
    whole) returns None, and the file is read as before. In memory, pydicom's many small
    reads, seeks and tells cost a fraction of a file object's.
    """
    fp = io.BytesIO(head)
    stopped = False

    def at_pixel_data(tag: int, _vr: str | None, _length: int) -> bool:
        nonlocal stopped
        if tag in _PIXEL_TAGS:
            stopped = True
            return True
        return False

    try:
        ds = read_partial(fp, at_pixel_data, force=True, specific_tags=_READ_TAG_SET)  # type: ignore[arg-type]
    except Exception:
        return None
    pos = fp.tell()
    if not stopped or pos + 12 > len(head):
        return None
    raw.seek(pos)  # the pixel data header, and encapsulated fragments, are checked in the file
    return ds if _pixel_data_complete(raw, ds, size) else TRUNCATED


# --- values -----------------------------------------------------------------------------------
#
# The field mapping below reads a header through :class:`HeaderValues`, so the pydicom reader
# and the compiled one (dashboard.ingest.dicom_fast) share one definition of every field.


class HeaderValues(Protocol):
    """What the field mapping needs from one header, whichever reader parsed it."""

    def raw(self, tag: int) -> Any:
        """The element's value as stored (bytes; str or a list from JSON); None when absent."""
        ...

    def has_value(self, tag: int) -> bool:
        """True when the element carries a non-empty value (never decoded)."""
        ...

    def encodings(self) -> list[str] | None:
        """Python codecs of the declared Specific Character Set; None when none is declared."""
        ...


class DatasetValues:
    """:class:`HeaderValues` of a pydicom dataset (from a file, or DICOMweb JSON)."""

    __slots__ = ("_codecs", "_elements", "ds")

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self._elements = ds._dict  # raw elements, without get_item's per-call cost
        self._codecs: list[str] | bool | None = False  # False: not looked up yet

    def raw(self, tag: int) -> Any:
        elem = self._elements.get(tag)  # type: ignore[call-overload]
        return None if elem is None else elem.value

    def has_value(self, tag: int) -> bool:
        return _has_value(self.ds, tag)

    def encodings(self) -> list[str] | None:
        if self._codecs is False:
            if _has_value(self.ds, _TAG_CHARSET):  # raw bytes, or already converted by pydicom
                declared = self.ds.original_character_set
                self._codecs = [declared] if isinstance(declared, str) else list(declared)
            else:
                self._codecs = None
        return self._codecs  # type: ignore[return-value]


def text_value(values: HeaderValues, tag: int) -> str | None:
    """A text value, trimmed; LO elements decoded per Specific Character Set, others ASCII."""
    value = values.raw(tag)
    if isinstance(value, bytes):
        if tag == _TAG_BIRTH_DATE:
            return _ascii_text.__wrapped__(value)  # not cached: dropped once the age is known
        if tag in _CHARSET_TAGS:
            codecs = values.encodings()
            mode = pydicom_config.settings.reading_validation_mode
            return _charset_text(value, None if codecs is None else tuple(codecs), mode)
        return _ascii_text(value)
    if isinstance(value, str):
        return _clean(value.strip(" \x00")) or None
    return None


# Files of one series repeat most values: each distinct raw value is decoded once per process.
# Identifying values never come here (they are only tested for emptiness), nor birth dates.
@functools.lru_cache(maxsize=16384)
def _ascii_text(value: bytes) -> str | None:
    return _clean(value.decode("ascii", "replace").strip(" \x00")) or None


@functools.lru_cache(maxsize=16384)
def _charset_text(value: bytes, codecs: tuple[str, ...] | None, _mode: int) -> str | None:
    text = decode_text(value, None if codecs is None else list(codecs))
    return _clean(text.strip(" \x00")) or None


def decode_text(value: bytes, encodings: list[str] | None) -> str:
    """Decode per the declared character set; undeclared, try UTF-8 before Latin-1.

    The default repertoire is ASCII, but archives often hold undeclared UTF-8 (Devanagari
    institution names) or Latin-1; valid UTF-8 is almost never Latin-1 text by accident.
    """
    if encodings is not None:
        return decode_bytes(value, encodings, TEXT_VR_DELIMS)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _has_value(ds: Dataset, tag: int) -> bool:
    """True when the element carries a non-empty value; the value itself is never decoded."""
    elem = ds._dict.get(tag)  # type: ignore[call-overload]  # get_item(tag, keep_deferred=True)
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
    return not is_blank(value)


def is_blank(value: Any) -> bool:
    """Empty, padding or separators only; for sequences and multi-values, every part blank."""
    if isinstance(value, bytes):
        return not value.strip(_BLANK_BYTES)
    if isinstance(value, str):
        return not value.strip(_BLANK_TEXT)
    if isinstance(value, Dataset):
        return not any(_has_value(value, t) for t in list(value.keys()))
    if isinstance(value, Iterable):
        return all(is_blank(v) for v in value)
    return value is None


def _is_sequence(vr: str | None, tag: int) -> bool:
    if vr == "SQ":
        return True
    return vr in (None, "UN") and dictionary_has_tag(tag) and dictionary_VR(tag) == "SQ"


def _phi_tags(values: HeaderValues) -> tuple[str, ...]:
    flagged = [k for k, t in _PHI_PRESENCE.items() if values.has_value(t)]
    burned = text_value(values, PHI_TAGS["BurnedInAnnotation"])
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


def study_date_of(values: HeaderValues) -> str | None:
    """The date the mapping gives a header (StudyDate, else SeriesDate, else AcquisitionDate)."""
    return _study_date(values)[0]


def _study_date(values: HeaderValues) -> tuple[str | None, bool]:
    for key in ("StudyDate", "SeriesDate", "AcquisitionDate"):
        value = text_value(values, _TAG[key])
        if value is not None:
            return dicom_date(value), key == "StudyDate"
    return None, False


def _is_dicomdir(ds: Dataset) -> bool:
    elem = ds.file_meta.get_item(0x00020002, keep_deferred=True)  # MediaStorageSOPClassUID
    sop_class = None if elem is None else elem.value
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
    # keys() keeps first-seen order (iterating a Dataset sorts); the command set comes last.
    # Tags as plain ints: comparing pydicom's BaseTag runs Python code (this runs per file).
    last_tag, last_offset = -1, None
    for key, elem in ds._dict.items():  # as get_item(keep_deferred)
        if int(key) <= 0xFFFF:
            continue
        tag = int(elem.tag)
        offset = getattr(elem, "value_tell", None) or getattr(elem, "file_tell", None)
        if last_tag >= 0 and (
            last_tag >= tag
            or (last_offset is not None and offset is not None and last_offset >= offset)
        ):
            raise CorruptHeaderError("elements out of order or repeated")
        last_tag, last_offset = tag, offset


def _clean(value: str | None) -> str | None:
    """A kept value, refused when it holds control characters (swallowed element headers)."""
    if value is not None and not value.isprintable() and _CONTROL.search(value):
        raise CorruptHeaderError("control characters in a value")
    return value


def instance_from_dataset(ds: Dataset) -> Instance | str:
    """The instance a pydicom header describes, or a skip reason (DICOMDIR, no StudyInstanceUID).

    Raises CorruptHeaderError for a header whose structure cannot be trusted.
    """
    if _is_dicomdir(ds):
        return DICOMDIR
    _check_structure(ds)
    return instance_from_values(DatasetValues(ds))


def instance_from_values(values: HeaderValues) -> Instance | str:
    """The field mapping: the instance a header's values describe, or NO_STUDY_UID.

    Both readers call it (pydicom through :class:`DatasetValues`, the compiled reader through
    its own :class:`HeaderValues`), so every field is defined once.
    """
    study_uid = text_value(values, _TAG["StudyInstanceUID"])
    if study_uid is None:
        return NO_STUDY_UID
    study_date, is_study_date = _study_date(values)
    age = text_value(values, _TAG["PatientAge"])
    if age is None:
        age = age_from_dates(text_value(values, _TAG["PatientBirthDate"]), study_date)
    body_part = text_value(values, _TAG["BodyPartExamined"])
    return Instance(
        study_uid=study_uid,
        series_uid=text_value(values, _TAG["SeriesInstanceUID"]),
        sop_uid=text_value(values, _TAG["SOPInstanceUID"]),
        patient_id=text_value(values, _TAG["PatientID"]),
        sex=text_value(values, _TAG["PatientSex"]),
        age=age,
        study_date=study_date,
        date_is_study_date=is_study_date,
        modality=text_value(values, _TAG["Modality"]),
        body_part=body_part.upper() if body_part else None,
        manufacturer=text_value(values, _TAG["Manufacturer"]),
        device_model=text_value(values, _TAG["ManufacturerModelName"]),
        institution_name=text_value(values, _TAG["InstitutionName"]),
        phi_tags=_phi_tags(values),
    )


READERS: tuple[str, ...] = ("auto", "pydicom")
"""``auto``: the compiled reader (dicomsdl) where it reads a file exactly, pydicom for the rest."""


def read_instance_pydicom(path: str) -> Instance | str:
    """Read one file's header with pydicom (call it inside :func:`quiet_pydicom`)."""
    try:
        ds = _read_header(path)
        return ds if isinstance(ds, str) else instance_from_dataset(ds)
    except Exception as exc:  # every file is accounted for; only the class name is kept
        return _unreadable(exc)


def _reader(reader: str) -> Callable[[str], Instance | str]:
    if reader == "pydicom":
        return read_instance_pydicom
    if reader != "auto":
        raise ValueError(f"reader must be one of {', '.join(READERS)}, got {reader!r}")
    from dashboard.ingest import dicom_fast  # here: it imports this module

    return dicom_fast.read_instance if dicom_fast.available() else read_instance_pydicom


def read_instance(path: str, reader: str = "auto") -> Instance | str:
    """Read one file's header: an :class:`Instance`, or the reason the file was skipped.

    The per-file extraction entry point (a plain function of a path, so it pickles for any
    process pool or cluster). ``reader="auto"`` uses the compiled reader where it can read
    the file and pydicom for the rest; both give the same Instance for every file.
    """
    read = _reader(reader)
    with quiet_pydicom():
        return read(path)


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


def read_chunk(paths: list[str], reader: str = "auto") -> list[Instance | str]:
    """Read a batch of files: one outcome per file (the unit of work of a Dask task)."""
    read = _reader(reader)
    with quiet_pydicom():
        return [read(p) for p in paths]


def read_chunk_compact(paths: list[str], reader: str = "auto") -> ChunkOutcomes:
    """Read a batch of files into :class:`ChunkOutcomes` (the unit of work of a local worker)."""
    read = _reader(reader)
    distinct: list[tuple[Any, ...] | str] = []
    index: dict[tuple[Any, ...] | str, int] = {}
    which: list[int] = []
    sops: list[str | None] = []
    with quiet_pydicom():
        for path in paths:
            outcome = read(path)
            if isinstance(outcome, str):
                key: tuple[Any, ...] | str = outcome
                sops.append(None)
            else:
                key = outcome[:_SOP_FIELD] + outcome[_SOP_FIELD + 1 :]
                sops.append(outcome[_SOP_FIELD])
            i = index.get(key)
            if i is None:
                i = index[key] = len(distinct)
                distinct.append(key)
            which.append(i)
    return ChunkOutcomes(distinct, which, sops)


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
        for path, error in _walk(root):
            if error is not None:
                yield error.filename or path, _unreadable(error)
            elif path not in seen:
                seen.add(path)
                yield path, None


def _holds(test: Callable[[], bool]) -> bool:
    """A directory entry's test, false when it fails (as os.walk takes it)."""
    try:
        return test()
    except OSError:
        return False


def _walk(root: str) -> Iterator[tuple[str, OSError | None]]:
    """``os.walk(root)`` top-down with sorted names, as (file path, None) or (folder, error).

    One ``scandir`` per folder, whose entries already say what is a folder or a link (os.walk
    stats every subfolder again to see whether it is a link): a folder's files come in name
    order, then its subfolders, each walked in name order; folder symlinks are not followed;
    a folder that cannot be listed (or fails part-way, as os.walk drops it) gives its error.
    """
    stack = [root]
    while stack:
        top = stack.pop()
        names: list[str] = []
        folders: list[str] = []
        try:
            with os.scandir(top) as entries:
                for entry in entries:
                    if not _holds(entry.is_dir):
                        names.append(entry.name)
                    elif not _holds(entry.is_symlink):
                        folders.append(entry.name)
        except OSError as error:
            yield top, error
            continue
        for name in sorted(names):
            yield os.path.join(top, name), None  # noqa: PTH118 (str paths: millions of files)
        stack.extend(os.path.join(top, name) for name in sorted(folders, reverse=True))  # noqa: PTH118


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
        self.add_phi(inst.phi_tags, 1)
        if inst.sop_uid is not None:
            if inst.sop_uid in self.sops:
                return  # the same instance in another file: counted once
            self.sops.add(inst.sop_uid)
        else:
            self.unnamed += 1
        self.count(inst, 1)

    def add_phi(self, phi_tags: tuple[str, ...], files: int) -> None:
        """`files` files carrying these identifying tags (duplicate instances included)."""
        if phi_tags:
            self.phi_files += files
            for tag in phi_tags:
                self.phi_tags[tag] += files

    def count(self, inst: Instance, n: int) -> None:
        """`n` distinct instances with the fields of `inst` (already counted in sops/unnamed)."""
        self.series.add(inst.series_uid)
        # one statement per field (no loop)
        if inst.modality is not None:
            self.modality[inst.modality] += n
        if inst.patient_id is not None:
            self.patient_id[inst.patient_id] += n
        if inst.sex is not None:
            self.sex[inst.sex] += n
        if inst.age is not None:
            self.age[inst.age] += n
        if inst.study_date is not None:
            dates = self.study_date if inst.date_is_study_date else self.fallback_date
            dates[inst.study_date] += n
        if inst.body_part is not None:
            self.body_part[inst.body_part] += n
        if inst.institution_name is not None:
            self.institution[inst.institution_name] += n
        if inst.manufacturer is not None or inst.device_model is not None:
            self.device[(inst.manufacturer, inst.device_model)] += n

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
        if outcome.phi_tags:
            self.phi_files += 1
            self.phi_tags.update(outcome.phi_tags)
        study = self.studies.get(outcome.study_uid)
        if study is None:
            study = self.studies[outcome.study_uid] = _Study()
        study.add(outcome)

    def add_chunk(self, paths: list[str], chunk: ChunkOutcomes) -> None:
        """A chunk's outcomes, aggregated exactly as :meth:`add` would one file at a time.

        Each distinct outcome is counted once with its number of files: per file only the
        instance UID is checked (a duplicate instance counts once, the first file in order).
        """
        distinct = chunk.distinct
        studies: list[_Study | None] = []
        for key in distinct:
            if isinstance(key, str):
                studies.append(None)
                continue
            study = self.studies.get(key[0])
            if study is None:
                study = self.studies[key[0]] = _Study()
            studies.append(study)
        files = [0] * len(distinct)
        kept = [0] * len(distinct)
        skipped = self.skipped
        for path, i, sop in zip(paths, chunk.which, chunk.sops, strict=True):
            study = studies[i]
            if study is None:
                skipped.append({"path": path, "reason": distinct[i]})  # type: ignore[dict-item]
                continue
            files[i] += 1
            if sop is not None:
                if sop in study.sops:
                    continue  # the same instance in another file: counted once
                study.sops.add(sop)
            else:
                study.unnamed += 1
            kept[i] += 1
        for key, study, n_files, n_kept in zip(distinct, studies, files, kept, strict=True):
            if study is None or not n_files:
                continue
            inst = Instance(*key[:_SOP_FIELD], None, *key[_SOP_FIELD:])
            self.indexed += n_files
            if inst.phi_tags:
                self.phi_files += n_files
                for tag in inst.phi_tags:
                    self.phi_tags[tag] += n_files
            study.add_phi(inst.phi_tags, n_files)
            if n_kept:
                study.count(inst, n_kept)

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


def _results_inline(chunks: list[list[str]], reader: str) -> Iterator[ChunkOutcomes]:
    for chunk in chunks:
        yield read_chunk_compact(chunk, reader)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Fork: a worker starts in milliseconds with every module already imported.

    Spawned workers would each import pydicom and polars again (about a second of CPU apiece,
    as long as a fast scan of 20,000 files takes). The workers only read headers: they never
    touch polars, DuckDB or the progress bar whose threads the parent may hold.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _results_in_processes(
    chunks: list[list[str]], reader: str, workers: int
) -> Iterator[ChunkOutcomes]:
    """Chunk results in input order, with a bounded number of chunks in flight.

    A worker that dies (a crash in the compiled reader) breaks the pool: the first unfinished
    chunk is then read again with pydicom alone, and a new pool takes the rest.
    """
    done = 0
    while done < len(chunks):
        try:
            # gc.freeze in each worker: its collections skip the objects inherited from the
            # parent (scanning them would copy every page of the parent's heap); ~15 % less CPU
            with ProcessPoolExecutor(
                max_workers=workers, mp_context=_worker_context(), initializer=gc.freeze
            ) as pool:
                pending: deque[Future[ChunkOutcomes]] = deque()
                ahead = done
                while done < len(chunks):
                    while ahead < len(chunks) and len(pending) < workers * 3:
                        pending.append(pool.submit(read_chunk_compact, chunks[ahead], reader))
                        ahead += 1
                    result = pending.popleft().result()
                    done += 1
                    yield result
        except BrokenProcessPool:
            if reader == "pydicom":
                raise
            yield read_chunk_compact(chunks[done], "pydicom")
            done += 1


def chunk_size(total: int, workers: int) -> int:
    """Files per unit of work: enough chunks to balance the workers, few enough to be cheap."""
    return max(1, min(512, -(-total // (workers * 8)))) if total else 1


def scan_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    workers: int = 1,
    progress: Progress | None = None,
    reader: str = "auto",
) -> ScanResult:
    """Read the headers of every file under `paths` into studies; see the module docstring.

    `workers` > 1 reads in that many processes (the readers hold the GIL); the result is the
    same as with one. `reader`: see :data:`READERS` (the same result with either).
    `progress(files_done, files_total)` is called as chunks of files finish.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    _reader(reader)  # refuse an unknown reader before walking
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
    size = chunk_size(total, workers)
    chunks = list(_chunks(files, size))
    results = (
        _results_inline(chunks, reader)
        if workers == 1 or len(chunks) <= 1
        else _results_in_processes(chunks, reader, workers)
    )
    done = 0
    for chunk, outcomes in zip(chunks, results, strict=True):
        agg.add_chunk(chunk, outcomes)
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
