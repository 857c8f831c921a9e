"""Exports defuse spreadsheet formulas in text cells and keep everything else as it was."""

from __future__ import annotations

import polars as pl

from dashboard.export import defuse_formulas, to_csv_bytes


def test_formula_payloads_are_escaped() -> None:
    payloads = ["=1+1", "+91 98", "-2", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x")']
    frame = pl.DataFrame({"value": [*payloads, "Karnataka", "a=b"], "n": list(range(9))})
    out = defuse_formulas(frame)
    assert out["value"].to_list() == [*("'" + p for p in payloads), "Karnataka", "a=b"]
    assert out["n"].to_list() == list(range(9))


def test_csv_bytes_have_bom_and_escapes() -> None:
    data = to_csv_bytes(pl.DataFrame({"reason": ["=cmd|' /C calc'!A0"], "row": [3]}))
    assert data.startswith("\ufeff".encode())
    assert data.decode("utf-8-sig").splitlines() == ["reason,row", "'=cmd|' /C calc'!A0,3"]
