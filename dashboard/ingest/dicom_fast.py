"""The compiled header reader: dicomsdl locates the elements, the shared mapping reads them.

One job: for a file it can read exactly as the pydicom reader does, give the same
:class:`~dashboard.ingest.dicom.Instance` (or skip reason) several times faster; for any other
file, decline (``None``) and leave it to pydicom. :func:`read_instance` does both, and is what
``reader="auto"`` uses. The field mapping is not repeated here: the element values found are
handed to :func:`dashboard.ingest.dicom.instance_from_values` through :class:`_Values`.

How a file is read: its first 8 KiB (more if the header is longer), then

1. the start of the dataset and its encoding exactly as pydicom decides them: after a File
   Meta group (walked here) whose transfer syntax is implicit or explicit VR little endian or
   an encapsulated one, with the first element looking like that encoding; or, without
   preamble and File Meta, implicit VR little endian (a File Meta group naming it is prefixed,
   since dicomsdl would otherwise guess explicit VR per element);
2. the Pixel Data element, found by its tag bytes: it must be the first such bytes after the
   File Meta, no other pixel-data tag may come before it, and its length must end exactly at
   the end of the file (or, encapsulated, its fragments must be complete); a file with no
   pixel-data tag at all is read to its end;
3. dicomsdl parses everything before it, to the end (an empty element appended after it must
   be found where it was put), without one error or warning;
4. the elements the mapping reads (and Specific Character Set) must lie in ascending order,
   each value's header in the bytes must give the tag and length dicomsdl reports, their tags'
   bytes may occur nowhere else in the header (a repeated element: pydicom keeps its first
   place, dicomsdl only its last), no value may be a sequence or have an undefined length,
   and the file is no DICOMDIR.

A header whose bytes equal, outside element values, those of a header already read this way
(its *layout*: the files of one series usually differ only in values) is not parsed again: its
values are taken from where the layout has them (see "layouts" below). This is most of the
speed on a real archive.

Anything else (big endian, deflated, truncated, trailing data after the pixels, private
sequences of identifying values, a header over 8 MiB, anything dicomsdl complains about) goes
to pydicom. Values are the raw bytes of the file, so they are decoded by the same code as
pydicom's; identifying values are only tested for emptiness, as there.

dicomsdl's log messages (which can quote values) are routed to a function that keeps their
level only, never their text, so nothing reaches stderr.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import struct
from typing import Any, NamedTuple

from pydicom import config as pydicom_config

from dashboard.ingest.dicom import (
    _DICOMDIR_CLASS,
    _LONG_VRS,
    _PHI_PRESENCE,
    _READ_TAGS,
    _TAG,
    _TAG_BIRTH_DATE,
    _TAG_CHARSET,
    _U16_LE,
    _U32_LE,
    _UNDEFINED,
    PHI_TAGS,
    Instance,
    age_from_dates,
    fragments_complete,
    instance_from_values,
    is_blank,
    open_nonblocking,
    read_instance_pydicom,
    regular_size,
    skip_reason,
    study_date_of,
    text_value,
)

try:
    import dicomsdl
except ImportError:  # pragma: no cover - a pinned dependency; pydicom reads everything then
    dicomsdl = None

FIRST_READ = 8 * 1024  # most headers; the physical limit of the benchmark reads as much
MAX_HEADER = 8 * 1024 * 1024
_PIXEL = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian
_OTHER_PIXELS = (b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")  # float / double float pixel data
_PIXEL_GROUP = _PIXEL[:2]
_IMPLICIT_TS = b"1.2.840.10008.1.2"
_REFUSED_TS = frozenset({b"1.2.840.10008.1.2.2", b"1.2.840.10008.1.2.1.99"})  # BE, deflated
_UID = re.compile(rb"[0-9][0-9.]*\Z")
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS",
                        b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL",
                        b"US"})  # fmt: skip
# File Meta naming implicit VR little endian, for a file that has none (see step 1).
_IMPLICIT_META = (
    bytes(128) + b"DICM" + struct.pack("<HH2sH", 0x0002, 0x0010, b"UI", 18) + _IMPLICIT_TS + b"\0"
)
# Elements whose presence sends the file to pydicom: DICOMDIR records, a sequence of IDs.
_DECLINE_TAGS = frozenset({_TAG["FileSetID"], _TAG["RootDirectoryOffset"],
                           PHI_TAGS["OtherPatientIDsSequence"]})  # fmt: skip
# (0001,0001), a group no file may use, empty: appended after the header (see _Values).
_SENTINEL_TAG = 0x00010001
_SENTINEL = {True: b"\x01\x00\x01\x00" + bytes(4), False: b"\x01\x00\x01\x00UN" + bytes(6)}
_CHECKED_TAGS: tuple[int, ...] = tuple(sorted({*_READ_TAGS, _TAG_CHARSET}))
_LONG_NOT_SQ = _LONG_VRS - {b"SQ"}
_LOAD_ALL = 0xFFFFFFFF

_levels: list[Any] = []  # levels of dicomsdl's messages during the current parse
_logger_installed = False


class _Decline(Exception):  # noqa: N818 (a signal, not an error)
    """This file is left to pydicom."""


def available() -> bool:
    """True when dicomsdl imported (it is pinned; pydicom reads everything without it)."""
    return dicomsdl is not None


def _keep_level(level: Any, _message: str) -> None:
    _levels.append(level)  # the text may quote a value: never kept


def _install_logger() -> None:
    global _logger_installed
    if not _logger_installed:
        dicomsdl.set_logger_function(_keep_level)
        dicomsdl.set_loglevel(dicomsdl.LogLevel.WARN)
        # a Python logger left installed hangs the interpreter's exit
        atexit.register(dicomsdl.set_default_logger_function)
        _logger_installed = True


def read_instance(path: str) -> Instance | str:
    """``reader="auto"`` for one file: the compiled reader, else pydicom.

    Call it inside :func:`dashboard.ingest.dicom.quiet_pydicom` (as ``read_chunk`` does).
    """
    try:
        outcome = read_instance_fast(path)
    except Exception:  # anything unexpected: pydicom decides
        outcome = None
    return read_instance_pydicom(path) if outcome is None else outcome


def read_instance_fast(path: str) -> Instance | str | None:
    """The same outcome as the pydicom reader, or None when this file is left to pydicom."""
    try:
        fd = open_nonblocking(path)
    except OSError:
        return None  # pydicom's reader words the reason
    try:
        size = regular_size(fd)
        if size is None:
            return None  # a FIFO, device or folder: pydicom's reader words it
        want = min(size, FIRST_READ)
        buf = os.read(fd, want)
        if len(buf) < want:
            buf = _read_more(fd, buf, want)
        reason = skip_reason(buf[:132], size)
        if reason is not None:
            return reason
        values = _last_layout_values(buf, size)
        if values is not None:
            return _instance(values)
        return _read(fd, buf, size)
    except _Decline:
        return None
    finally:
        os.close(fd)


def _read_more(fd: int, buf: bytes, want: int) -> bytes:
    parts = [buf]
    have = len(buf)
    while have < want:
        part = os.read(fd, want - have)
        if not part:
            raise _Decline  # the file shrank while being read
        parts.append(part)
        have += len(part)
    return b"".join(parts)


def _read(fd: int, buf: bytes, size: int) -> Instance | str:
    start, implicit = _dataset_start(buf)
    end = _pixel_header(fd, buf, start, size, implicit)
    while end is None:  # the header goes on past what was read
        if len(buf) == size:
            if buf.find(_PIXEL, start) >= 0:
                raise _Decline  # a pixel data header cut short: pydicom says truncated
            end = size  # no pixel data: the dataset runs to the end of the file
        elif len(buf) >= MAX_HEADER:
            raise _Decline  # a header too long for this reader
        else:
            buf = _read_more(fd, buf, min(size, MAX_HEADER, 4 * len(buf)))
            end = _pixel_header(fd, buf, start, size, implicit)
    return _instance(_Values(buf, end, implicit=implicit, prefixed=start == 0))


def _looks_explicit(buf: bytes, pos: int) -> bool:
    """pydicom's test: the two bytes after the first tag are capital letters."""
    return 0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B


def _dataset_start(buf: bytes) -> tuple[int, bool]:
    """Where the dataset starts and whether it is implicit VR, as pydicom decides; else decline."""
    if buf[128:132] != b"DICM":
        if len(buf) < 8 or _U16_LE.unpack_from(buf, 0)[0] == 0x0002 or _looks_explicit(buf, 0):
            raise _Decline  # File Meta without preamble, or explicit VR (maybe big endian)
        return 0, True
    pos, syntax = 132, None
    while True:
        if pos + 8 > len(buf):
            raise _Decline
        (group,) = _U16_LE.unpack_from(buf, pos)
        if group != 0x0002:
            break
        vr = buf[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(buf):
                raise _Decline
            (length,), head = _U32_LE.unpack_from(buf, pos + 8), 12
        elif vr in _SHORT_VRS:
            (length,), head = _U16_LE.unpack_from(buf, pos + 6), 8
        else:
            raise _Decline
        end = pos + head + length
        if length == _UNDEFINED or end > len(buf):
            raise _Decline
        elem = buf[pos + 2 : pos + 4]
        if elem == b"\x02\x00" and buf[pos + head : end].rstrip(b" \0") == _DICOMDIR_CLASS:
            raise _Decline
        if elem == b"\x10\x00":
            syntax = buf[pos + head : end].rstrip(b" \0")
        pos = end
    if syntax is None or not _syntax_accepted(syntax):
        raise _Decline
    implicit = syntax == _IMPLICIT_TS
    if _looks_explicit(buf, pos) == implicit:
        raise _Decline  # pydicom would switch encodings here
    return pos, implicit


@functools.cache
def _syntax_accepted(syntax: bytes) -> bool:
    """Implicit or explicit VR little endian, or encapsulated (which pydicom reads as explicit)."""
    from pydicom.uid import PrivateTransferSyntaxes

    private = {str(uid) for uid in PrivateTransferSyntaxes}
    return (
        syntax not in _REFUSED_TS
        and _UID.match(syntax) is not None
        and syntax.decode() not in private
    )


def _pixel_element(buf: bytes, pos: int, implicit: bool) -> tuple[int, int] | None:
    """The value length of the Pixel Data element at ``pos`` and the size of its header, or
    None when an explicit-VR header does not have a 4-byte length (not pixel data pydicom
    reads as such)."""
    if implicit:
        return _U32_LE.unpack_from(buf, pos + 4)[0], 8
    if buf[pos + 4 : pos + 6] not in _LONG_VRS or buf[pos + 6 : pos + 8] != b"\0\0":
        return None
    return _U32_LE.unpack_from(buf, pos + 8)[0], 12


def _pixel_header(fd: int, buf: bytes, start: int, size: int, implicit: bool) -> int | None:
    """Where Pixel Data starts; None when it is not in `buf` yet; decline when in doubt."""
    # Every pixel-data tag starts with the bytes of group 7FE0, rare in a header: one search
    pos = buf.find(_PIXEL_GROUP, start)
    while pos >= 0:
        tag = buf[pos : pos + 4]
        if tag == _PIXEL:
            break
        if tag in _OTHER_PIXELS:
            raise _Decline  # pydicom stops at float pixel data
        pos = buf.find(_PIXEL_GROUP, pos + 1)
    if pos < 0 or pos + 12 > len(buf):
        return None
    element = _pixel_element(buf, pos, implicit)
    if element is None:
        raise _Decline
    length, head = element
    if length == _UNDEFINED:
        with os.fdopen(os.dup(fd), "rb") as fp:
            if implicit or not fragments_complete(fp, pos + head, size, _U16_LE, _U32_LE):
                raise _Decline  # pydicom says truncated
    elif pos + head + length != size:
        raise _Decline  # truncated, or data after the pixels: pydicom judges
    return pos


@functools.cache
def _encodings(raw: bytes) -> list[str]:
    """Python codecs of a Specific Character Set value, computed as pydicom does."""
    from pydicom.charset import convert_encodings
    from pydicom.values import convert_string

    return list(convert_encodings(convert_string(raw, True)))


def _data(buf: bytes, end: int, implicit: bool, prefixed: bool) -> bytes:
    """The header as parsed: File Meta prefixed when it has none, then a sentinel element."""
    # a last element of its own proves dicomsdl parsed the header to its very end
    return b"".join(
        (_IMPLICIT_META, buf[:end], _SENTINEL[implicit])
        if prefixed
        else (buf[:end], _SENTINEL[implicit])
    )


class _Values:
    """:class:`~dashboard.ingest.dicom.HeaderValues` of a header dicomsdl parsed."""

    __slots__ = ("_codecs", "_values")

    def __init__(self, buf: bytes, end: int, *, implicit: bool, prefixed: bool) -> None:
        data = _data(buf, end, implicit, prefixed)
        self._codecs: list[str] | bool | None = False
        key = (end, implicit, prefixed)
        if key not in _last_keys:
            _last_keys.insert(0, key)
            del _last_keys[_LAST_KEYS:]
        known = _layouts.get(key)
        if known is not None:
            values = known.values_of(data)
            if values is not None:
                self._values = values
                return
        sentinel_at = len(data) - len(_SENTINEL[implicit]) + (8 if implicit else 12)
        _install_logger()
        _levels.clear()
        try:
            ds = dicomsdl.open_memory(data, False, _LOAD_ALL, False)
        except Exception as exc:  # dicomsdl could not parse to the pixel data
            raise _Decline from exc
        get = ds.getDataElement
        if _levels or get(_SENTINEL_TAG).offset() != sentinel_at:
            raise _Decline  # dicomsdl warned, or stopped short: its reading may differ
        values: dict[int, bytes] = {}
        spans: list[tuple[int, int, int]] = []
        last = 0
        for tag in _CHECKED_TAGS:
            offset = get(tag).offset()
            if offset == 0:
                continue  # absent
            if offset <= last or tag in _DECLINE_TAGS:
                raise _Decline  # elements out of order, DICOMDIR, or a sequence of IDs
            last = offset
            value = values[tag] = _value(data, offset, _TAG_BYTES[tag], implicit)
            spans.append((tag, offset, len(value)))
        if known is None:
            if key not in _seen:  # the first header of this size: no layout yet
                if len(_seen) < _MAX_KEYS:
                    _seen.add(key)
            elif len(_layouts) < _MAX_KEYS:
                known = _layouts[key] = _Layouts()
        if known is not None and known.worth_adding():
            layout = _layout(data, tuple(spans), implicit)
            if layout is not None:
                known.add(layout, 2 * len(data))
        del ds  # it points into `data`
        self._values = values

    @classmethod
    def of(cls, values: dict[int, bytes]) -> _Values:
        """The values a layout gave."""
        self = cls.__new__(cls)
        self._codecs = False
        self._values = values
        return self

    def raw(self, tag: int) -> Any:
        return self._values.get(tag)

    def has_value(self, tag: int) -> bool:
        value = self._values.get(tag)
        return value is not None and not is_blank(value)

    def encodings(self) -> list[str] | None:
        if self._codecs is False:
            declared = self._values.get(_TAG_CHARSET)
            self._codecs = None if declared is None or is_blank(declared) else _encodings(declared)
        return self._codecs  # type: ignore[return-value]


# --- the field mapping, once per series ------------------------------------------------------
#
# The files of a series repeat every value the mapping reads but SOPInstanceUID: the Instance
# is kept per distinct set of those values and only its SOPInstanceUID is read per file. The
# key holds no identifying value (only whether each is present) and no birth date (only the
# age it gives, when the mapping would compute one).

_SOP = _TAG["SOPInstanceUID"]
_AGE = _TAG["PatientAge"]
_KEY_TAGS: tuple[int, ...] = tuple(
    t for t in _CHECKED_TAGS if t not in (_SOP, _TAG_BIRTH_DATE, *_PHI_PRESENCE.values())
)
_PRESENCE_TAGS: tuple[int, ...] = tuple(_PHI_PRESENCE.values())
_SOP_FIELD = Instance._fields.index("sop_uid")
_MAX_MAPPED = 8192
_mapped: dict[tuple[Any, ...], Instance] = {}


def _instance(values: _Values) -> Instance | str:
    """``instance_from_values(values)``, from the Instance of an earlier file where it can be."""
    raw = values.raw
    birth_age = None
    if raw(_TAG_BIRTH_DATE) is not None and text_value(values, _AGE) is None:
        birth_age = age_from_dates(text_value(values, _TAG_BIRTH_DATE), study_date_of(values))
    key = (
        tuple(map(raw, _KEY_TAGS)),
        tuple(map(values.has_value, _PRESENCE_TAGS)),
        birth_age,
        pydicom_config.settings.reading_validation_mode,  # text decoding depends on it
    )
    known = _mapped.get(key)
    if known is None:
        outcome = instance_from_values(values)
        if isinstance(outcome, Instance):
            if len(_mapped) >= _MAX_MAPPED:
                _mapped.clear()
            _mapped[key] = outcome
        return outcome
    sop = text_value(values, _SOP)
    if known.sop_uid == sop:
        return known
    return Instance(*known[:_SOP_FIELD], sop, *known[_SOP_FIELD + 1 :])  # (_replace is slower)


# --- layouts: the files of a series share one header layout ------------------------------------
#
# Files written by one device for one series usually differ only in element values (instance
# UIDs and numbers, positions, times), never in structure: the same elements, in the same
# order, with the same lengths. A header dicomsdl has read (and every check above passed) leaves
# its layout: the header's bytes with every plain element value blanked out, and where the
# values read lie. A later header of the same length whose bytes equal that layout everywhere
# outside those values has, byte for byte, the same tags, VRs, lengths, sequences and items, so
# pydicom and dicomsdl parse it into the same elements at the same places: its values are read
# from those places directly (one big-integer comparison instead of a parse). Kept structural
# (compared, never skipped): File Meta but the instance UID, Specific Character Set, group
# lengths and sequences (their items, whole). A layout lives in the reading process's memory
# only; the top-level values it blanks out (names, addresses, birth dates among them) are not
# in it, and nothing of it is ever written or logged.

_MAX_KEYS = 4096  # header sizes with layouts (and as many seen once)
_PER_KEY = 4  # layouts kept per header size (studies of one size, several layouts)
_MAX_LAYOUT_BYTES = 64 * 1024 * 1024  # headers kept as layouts, per process (two numbers each)
_layout_bytes = 0
_STRUCTURAL_TAGS = frozenset({_TAG_CHARSET, _SENTINEL_TAG})
_META_INSTANCE_UID = 0x00020003


class _Layout(NamedTuple):
    """One header layout: the bytes that must match, and where the wanted values lie."""

    mask: int  # 0xFF over every structural byte, 0 over free values (little endian)
    reference: int  # the structural bytes (free values blanked out)
    spans: tuple[tuple[int, int, int], ...]  # (tag, offset, length) of each wanted element


class _Layouts:
    """The layouts of one header size, the last matched first."""

    __slots__ = ("added", "hits", "layouts")

    def __init__(self) -> None:
        self.layouts: list[_Layout] = []
        self.hits = self.added = 0

    def values_of(self, data: bytes) -> dict[int, bytes] | None:
        """The wanted raw values of `data` when it has one of these layouts, else None."""
        number = int.from_bytes(data, "little")
        for i, layout in enumerate(self.layouts):
            if number & layout.mask == layout.reference:
                if i:
                    self.layouts.insert(0, self.layouts.pop(i))
                self.hits += 1
                return {tag: data[offset : offset + length] for tag, offset, length in layout.spans}
        return None

    def worth_adding(self) -> bool:
        """Another layout, unless this size has mostly given layouts that never match."""
        return self.added <= self.hits + 8

    def add(self, layout: _Layout, size: int) -> None:
        global _layout_bytes
        if len(self.layouts) >= _PER_KEY:
            self.layouts.pop()  # the least recently matched
            _layout_bytes -= size  # every layout of one key has the same size
        if _layout_bytes + size > _MAX_LAYOUT_BYTES:
            return  # memory for layouts is spent: headers beyond are parsed
        self.layouts.insert(0, layout)
        _layout_bytes += size
        self.added += 1


_layouts: dict[tuple[int, bool, bool], _Layouts] = {}  # per process; key: (end, implicit, prefixed)
_seen: set[tuple[int, bool, bool]] = set()  # keys read once (layouts from the second on)
_LAST_KEYS = 4
_last_keys: list[tuple[int, bool, bool]] = []  # the keys of the headers parsed last, newest first


def _last_layout_values(buf: bytes, size: int) -> _Values | None:
    """The values of a header with a layout of a key parsed lately, found before any parsing.

    The next file of a series usually has the key (and a layout) of a file just before it
    (instance UIDs of two or three lengths: as many keys). A header matching a layout has the
    structure of the header the layout was made from, which passed every check of this
    reader: the same File Meta (so the same dataset start and encoding, as
    :func:`_dataset_start` would find), the same top-level elements tiling the bytes up to
    ``end``, where the Pixel Data element is. Checked here, as :func:`_pixel_header` checks
    it: that element's tag, VR and a defined length that ends exactly at the end of the
    file; and, for a header without File Meta, that it has none. (The byte search of
    ``_pixel_header`` is not needed: the layout fixes where the top-level elements are,
    whatever bytes the values hold.) Anything else: None, and the file is read as any other.
    """
    for key in _last_keys:
        values = _key_values(buf, size, key)
        if values is not None:
            return values
    return None


def _key_values(buf: bytes, size: int, key: tuple[int, bool, bool]) -> _Values | None:
    end, implicit, prefixed = key
    if end + 12 > len(buf) or not buf.startswith(_PIXEL, end):
        return None
    if prefixed:
        if buf[128:132] == b"DICM" or _U16_LE.unpack_from(buf, 0)[0] == 0x0002:
            return None
        if _looks_explicit(buf, 0):
            return None
    elif buf[128:132] != b"DICM":
        return None
    element = _pixel_element(buf, end, implicit)
    if element is None:
        return None
    length, head = element
    if length == _UNDEFINED or end + head + length != size:
        return None
    known = _layouts.get(key)
    if known is None:
        return None
    values = known.values_of(_data(buf, end, implicit, prefixed))
    return None if values is None else _Values.of(values)


def _layout(data: bytes, spans: tuple[tuple[int, int, int], ...], implicit: bool) -> _Layout | None:
    """The layout of a header dicomsdl has just read, every check passed; None when in doubt.

    The top-level elements are walked here (cheaper than asking dicomsdl for each), from the
    File Meta (always explicit VR) to the sentinel; the walk must find every wanted element
    where dicomsdl did, and end exactly at the sentinel. Values of sequences stay structural.
    """
    size = len(data)
    mask = bytearray(b"\xff") * size
    wanted = {offset: (tag, length) for tag, offset, length in spans}
    pos, found, tag, meta = 132, 0, 0, True
    while pos < size:
        if pos + 8 > size:
            return None
        group, element = _TAG_PAIR.unpack_from(data, pos)
        tag = group << 16 | element
        if meta and group != 0x0002:
            meta = False  # the dataset starts
        elif not meta and group == 0x0002:
            return None  # File Meta elements in the dataset: no layout
        if implicit and not meta:
            vr, (length,), offset = None, _U32_LE.unpack_from(data, pos + 4), pos + 8
        else:
            vr = data[pos + 4 : pos + 6]
            if vr in _SHORT_VRS:
                (length,), offset = _U16_LE.unpack_from(data, pos + 6), pos + 8
            elif vr in _LONG_VRS and data.startswith(b"\0\0", pos + 6) and pos + 12 <= size:
                (length,), offset = _U32_LE.unpack_from(data, pos + 8), pos + 12
            else:
                return None
        if length == _UNDEFINED or offset + length > size:
            return None
        if offset in wanted:
            if wanted[offset] != (tag, length):
                return None
            found += 1
        if (
            length
            and element  # not a group length
            and (group != 0x0002 or tag == _META_INSTANCE_UID)  # File Meta: structural
            and tag not in _STRUCTURAL_TAGS
            and vr != b"SQ"
            and not (vr is None and _is_sequence_tag(tag))
        ):
            mask[offset : offset + length] = bytes(length)
        pos = offset + length
    if pos != size or found != len(wanted) or tag != _SENTINEL_TAG:
        return None
    mask_int = int.from_bytes(mask, "little")
    return _Layout(mask_int, int.from_bytes(data, "little") & mask_int, spans)


@functools.cache
def _is_sequence_tag(tag: int) -> bool:
    """Implicit VR: a sequence by the dictionary (its value stays structural)."""
    from pydicom.datadict import dictionary_has_tag, dictionary_VR

    return dictionary_has_tag(tag) and dictionary_VR(tag) == "SQ"


_TAG_PAIR = struct.Struct("<HH")
_TAG_BYTES: dict[int, bytes] = {t: struct.pack("<HH", t >> 16, t & 0xFFFF) for t in _CHECKED_TAGS}


def _could_be_element(data: bytes, pos: int, implicit: bool) -> bool:
    """Whether the tag bytes at `pos` could start an element (else they are part of values)."""
    if implicit:
        (length,) = _U32_LE.unpack_from(data, pos + 4) if pos + 8 <= len(data) else (_UNDEFINED,)
        return length == _UNDEFINED or pos + 8 + length <= len(data)
    return data[pos + 4 : pos + 6] in _SHORT_VRS or data[pos + 4 : pos + 6] in _LONG_VRS


def _value(data: bytes, offset: int, tag_bytes: bytes, implicit: bool) -> bytes:
    """The raw value at `offset`, after checking its element header names the tag.

    The tag's bytes must occur nowhere before it where an element could start: a repeated
    element keeps its first place in pydicom's dataset (where its order is checked), and only
    its last copy in dicomsdl's.
    """
    if implicit:
        start = offset - 8
        if not data.startswith(tag_bytes, start):
            raise _Decline
        (length,) = _U32_LE.unpack_from(data, offset - 4)
    elif data.startswith(tag_bytes, offset - 8) and data[offset - 4 : offset - 2] in _SHORT_VRS:
        start, (length,) = offset - 8, _U16_LE.unpack_from(data, offset - 2)
    elif (
        data.startswith(tag_bytes, offset - 12)
        and data[offset - 8 : offset - 6] in _LONG_NOT_SQ
        and data.startswith(b"\0\0", offset - 6)
    ):
        start, (length,) = offset - 12, _U32_LE.unpack_from(data, offset - 4)
    else:
        raise _Decline  # a sequence, or a header that is not what dicomsdl reported
    if length == _UNDEFINED or offset + length > len(data):
        raise _Decline
    pos = data.find(tag_bytes, 0, start)  # dicomsdl keeps the last copy: others come before
    while pos >= 0:
        if _could_be_element(data, pos, implicit):
            raise _Decline
        pos = data.find(tag_bytes, pos + 1, start)
    return data[offset : offset + length]
