"""Tables leaving the product (CSV, XLSX): text cells that a spreadsheet would run are defused.

A cell starting with =, +, -, @, a tab or a carriage return is read by Excel, LibreOffice and
Google Sheets as a formula; such text cells get a leading apostrophe (OWASP's advice), so the
partner sees the text and nothing runs. Numbers are left as numbers.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import polars as pl
import xlsxwriter

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


def to_xlsx_bytes(sheets: Mapping[str, pl.DataFrame]) -> bytes:
    """An XLSX workbook with one sheet per table (name → frame), formulas defused.

    Text is written as text (xlsxwriter's formula and URL detection is off) and also goes
    through :func:`defuse_formulas`, so a cell reading "=cmd|…" can never run, even after a
    partner re-saves the sheet as CSV. Numbers stay numbers; nulls are blank cells. Sheet names
    are cut to Excel's 31 characters.
    """
    buffer = io.BytesIO()
    options = {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    with xlsxwriter.Workbook(buffer, options) as workbook:
        header = workbook.add_format({"bold": True, "bottom": 1})
        for name, frame in sheets.items():
            sheet = workbook.add_worksheet(name[:31])
            safe = defuse_formulas(frame)
            for col, column in enumerate(safe.columns):
                sheet.write_string(0, col, column, header)
                values = safe.get_column(column).to_list()
                for row, value in enumerate(values, start=1):
                    if value is None or (isinstance(value, float) and not math.isfinite(value)):
                        continue
                    if isinstance(value, bool | int | float):
                        sheet.write_number(row, col, float(value))
                    else:
                        sheet.write_string(row, col, str(value))
                width = max([len(column), *(len(str(v)) for v in values[:500] if v is not None)])
                sheet.set_column(col, col, min(width + 2, 60))
            sheet.freeze_panes(1, 0)
    return buffer.getvalue()
