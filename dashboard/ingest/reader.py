"""Read a submitted table (CSV, TSV or Parquet) into a frame of text columns.

Every value is read as text so that validation sees exactly what the partner wrote. CSV may be
UTF-8 (with or without BOM) or UTF-16 (with BOM); anything else is a clear error for the file.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import polars as pl

TABULAR_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None}
PARQUET_SUFFIXES = {".parquet", ".pq"}


class FileRefusedError(ValueError):
    """The file as a whole cannot be read or must not be ingested; nothing was written."""

    def __init__(self, file: str, message: str) -> None:
        super().__init__(f"{file}: {message}")
        self.file = file
        self.message = message


def utf8_bytes(data: bytes, file: str) -> bytes:
    """The file's text as UTF-8 bytes without BOM; UTF-16 (with BOM) is converted.

    Anything that is neither is refused with the offending byte and line.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as err:
            raise FileRefusedError(file, f"invalid UTF-16 at byte {err.start}") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        if not data.isascii():  # ASCII is UTF-8, and checking it is ~100x cheaper
            data.decode("utf-8")  # validation only: polars reads the bytes themselves
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise FileRefusedError(
            file,
            f"is not UTF-8 or UTF-16: byte 0x{data[err.start]:02x} on line {line} "
            "(save the file as CSV UTF-8 and submit it again)",
        ) from None
    return data


def _sniff_separator(first_line: bytes) -> str:
    counts = {sep: first_line.count(sep.encode()) for sep in (",", "\t", ";")}
    return max(counts, key=lambda sep: counts[sep]) if any(counts.values()) else ","


def _read_delimited(path: Path, separator: str | None, data: bytes | None) -> pl.DataFrame:
    data = utf8_bytes(path.read_bytes() if data is None else data, path.name)
    if not data or data.isspace():  # (strip() would copy the whole file)
        raise FileRefusedError(path.name, "is empty")
    if separator is None:
        separator = _sniff_separator(data.split(b"\n", 1)[0])
    try:
        return pl.read_csv(
            data,
            separator=separator,
            infer_schema=False,
            truncate_ragged_lines=False,
            empty_string_is_null=True,
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as err:
        first = str(err).strip().splitlines()[0]
        raise FileRefusedError(path.name, f"is not a well-formed table: {first}") from None


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # polars raises several unrelated types for a corrupt file
        raise FileRefusedError(path.name, f"is not a readable Parquet file ({err})") from None
    return frame.with_columns(
        pl.col(c).cast(pl.String) for c, dtype in frame.schema.items() if dtype != pl.String
    )


def read_table(path: Path, data: bytes | None = None) -> pl.DataFrame:
    """The file's rows as text columns, trimmed, with blank values as null.

    ``data``: the file's bytes when the caller has read them already (a CSV is not read twice).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        frame = _read_parquet(path)
    elif suffix in TABULAR_SUFFIXES:
        frame = _read_delimited(path, TABULAR_SUFFIXES[suffix], data)
    else:
        raise FileRefusedError(
            path.name, f"has extension {suffix or '(none)'}; submit .csv, .tsv or .parquet"
        )
    return frame.with_columns(
        pl.col(pl.String).str.strip_chars().replace("", None),
    )
