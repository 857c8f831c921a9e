"""Reading submitted tables: encodings, separators, Parquet, and clear refusals."""

from __future__ import annotations

import codecs

import polars as pl
import pytest

from dashboard.ingest.reader import FileRefusedError, read_table

CSV = "study_uid,state,age\n1.2.3, Karnataka ,45\n1.2.4,,\n"


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
    ],
)
def test_reads_utf8_and_utf16_alike(write_file, encoding: str, prefix: bytes) -> None:
    frame = read_table(write_file("m.csv", prefix + CSV.encode(encoding)))
    assert frame.columns == ["study_uid", "state", "age"]
    assert frame.rows() == [("1.2.3", "Karnataka", "45"), ("1.2.4", None, None)]


def test_non_utf_bytes_name_the_file_and_line(write_file) -> None:
    path = write_file(
        "latin.csv", "study_uid,state\n1,Tamil Nadu\n2,Puducherry\xe9\n".encode("latin-1")
    )
    with pytest.raises(FileRefusedError) as refused:
        read_table(path)
    assert str(refused.value).startswith("latin.csv: is not UTF-8 or UTF-16: byte 0xe9 on line 3")


def test_tsv_and_sniffed_txt(write_file) -> None:
    text = CSV.replace(",", "\t")
    assert read_table(write_file("m.tsv", text)).height == 2
    assert read_table(write_file("m.txt", text)).columns == ["study_uid", "state", "age"]


def test_parquet_values_become_text(tmp_path) -> None:
    path = tmp_path / "m.parquet"
    pl.DataFrame({"study_uid": ["9"], "age": [45.5], "n_images": [3]}).write_parquet(path)
    assert read_table(path).row(0) == ("9", "45.5", "3")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.xlsx", b"PK\x03\x04", "m.xlsx: has extension .xlsx; submit .csv, .tsv or .parquet"),
        ("m.csv", b"   \n", "m.csv: is empty"),
        ("m.parquet", b"not parquet", "m.parquet: is not a readable Parquet file"),
    ],
)
def test_refusals_are_clear(write_file, name: str, content: bytes, message: str) -> None:
    with pytest.raises(FileRefusedError, match="^" + message.replace(".", r"\.")):
        read_table(write_file(name, content))


def test_ragged_rows_are_refused_not_truncated(write_file) -> None:
    with pytest.raises(FileRefusedError, match=r"m\.csv: is not a well-formed table"):
        read_table(write_file("m.csv", "a,b\n1,2,3,4\n"))
