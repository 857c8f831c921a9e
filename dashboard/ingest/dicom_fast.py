"""The compiled header reader: dicomsdl locates the elements, the shared mapping reads them.

One job: for a file it can read exactly as the pydicom reader does, give the same
:class:`~dashboard.ingest.dicom.Instance` (or skip reason) several times faster; for any other
file, decline (``None``) and leave it to pydicom. :func:`read_instance` does both, and is what
``reader="auto"`` uses. The field mapping is not repeated here: the element values found are
handed to :func:`dashboard.ingest.dicom.instance_from_values` through :class:`_Values`.

How a file is read: its first 16 KiB (more if the header is longer), then

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
from typing import Any

from dashboard.ingest.dicom import (
    _DICOMDIR_CLASS,
    _LONG_VRS,
    _READ_TAGS,
    _TAG,
    _TAG_CHARSET,
    _U16_LE,
    _U32_LE,
    _UNDEFINED,
    PHI_TAGS,
    Instance,
    fragments_complete,
    instance_from_values,
    is_blank,
    open_nonblocking,
    read_instance_pydicom,
    regular_size,
    skip_reason,
)

try:
    import dicomsdl
except ImportError:  # pragma: no cover - a pinned dependency; pydicom reads everything then
    dicomsdl = None

FIRST_READ = 16 * 1024
MAX_HEADER = 8 * 1024 * 1024
_PIXEL = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian
_OTHER_PIXELS = (b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")  # float / double float pixel data
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
        buf = _read_more(fd, b"", min(size, FIRST_READ))
        reason = skip_reason(buf[:132], size)
        if reason is not None:
            return reason
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
    values = _Values(buf, end, implicit=implicit, prefixed=start == 0)
    return instance_from_values(values)


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


def _pixel_header(fd: int, buf: bytes, start: int, size: int, implicit: bool) -> int | None:
    """Where Pixel Data starts; None when it is not in `buf` yet; decline when in doubt."""
    pos = buf.find(_PIXEL, start)
    if any(buf.find(tag, start, len(buf) if pos < 0 else pos) >= 0 for tag in _OTHER_PIXELS):
        raise _Decline  # pydicom stops at float pixel data
    if pos < 0 or pos + 12 > len(buf):
        return None
    if implicit:
        (length,), head = _U32_LE.unpack_from(buf, pos + 4), 8
    else:
        if buf[pos + 4 : pos + 6] not in _LONG_VRS or buf[pos + 6 : pos + 8] != b"\0\0":
            raise _Decline
        (length,), head = _U32_LE.unpack_from(buf, pos + 8), 12
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


class _Values:
    """:class:`~dashboard.ingest.dicom.HeaderValues` of a header dicomsdl parsed."""

    __slots__ = ("_codecs", "_values")

    def __init__(self, buf: bytes, end: int, *, implicit: bool, prefixed: bool) -> None:
        # a last element of its own proves dicomsdl parsed the header to its very end
        data = b"".join(
            (_IMPLICIT_META, buf[:end], _SENTINEL[implicit])
            if prefixed
            else (buf[:end], _SENTINEL[implicit])
        )
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
        last = 0
        for tag in _CHECKED_TAGS:
            offset = get(tag).offset()
            if offset == 0:
                continue  # absent
            if offset <= last or tag in _DECLINE_TAGS:
                raise _Decline  # elements out of order, DICOMDIR, or a sequence of IDs
            last = offset
            values[tag] = _value(data, offset, _TAG_BYTES[tag], implicit)
        del ds  # it points into `data`
        self._values = values
        self._codecs: list[str] | bool | None = False

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
        if data[start : offset - 4] != tag_bytes:
            raise _Decline
        (length,) = _U32_LE.unpack_from(data, offset - 4)
    else:
        head = data[offset - 12 : offset]
        if head[4:8] == tag_bytes and head[8:10] in _SHORT_VRS:
            start, (length,) = offset - 8, _U16_LE.unpack_from(head, 10)
        elif head[:4] == tag_bytes and head[4:6] in _LONG_NOT_SQ and head[6:8] == b"\0\0":
            start, (length,) = offset - 12, _U32_LE.unpack_from(head, 8)
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
