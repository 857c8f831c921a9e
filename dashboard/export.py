"""Tables leaving the product (CSV, XLSX): text cells that a spreadsheet would run are defused.

A cell starting with =, +, -, @, a tab or a carriage return is read by Excel, LibreOffice and
Google Sheets as a formula; such text cells get a leading apostrophe (OWASP's advice), so the
partner sees the text and nothing runs. Numbers are left as numbers.
"""

from __future__ import annotations

import io

import polars as pl

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def defuse_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """The same frame with every text cell that starts like a formula prefixed with "'"."""
    pattern = "^[" + "".join("\\" + c if c in "-+" else c for c in FORMULA_STARTS) + "]"
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(pattern)).then("'" + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c, dtype in frame.schema.items()
        if dtype == pl.String
    )


def to_csv_bytes(frame: pl.DataFrame) -> bytes:
    """CSV (UTF-8 with BOM, so Excel reads Indian-language text right) with formulas defused."""
    buffer = io.BytesIO()
    buffer.write("\ufeff".encode())
    defuse_formulas(frame).write_csv(buffer)
    return buffer.getvalue()
