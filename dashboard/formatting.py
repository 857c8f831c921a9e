"""Numbers as Indian readers write them: 12,34,567, "12.3 lakh", "1.23 crore", "12.3%".

Vega's d3-format only knows groups of three digits, so charts get Indian grouping in one of two
ways: a pre-formatted string column (:func:`with_labels`) for tooltips and text marks, or a Vega
expression (:func:`indian_number_expr`, :func:`lakh_crore_expr`) for axis ``labelExpr``.
Python and Vega use the same grouping regex, so both agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import polars as pl

MISSING = "–"
LAKH = 100_000
CRORE = 10_000_000

# A comma goes before every position followed by 3, 5, 7, … digits up to the end of the integer
# part (but never at its start): 1234567 → 12,34,567.
_INDIAN_GROUPING = r"\B(?=(?:\d{2})*\d{3}$)"

Formatter = Callable[[Any], str]


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, float) and not math.isfinite(value)


def _as_float(value: Any) -> float:
    return float(value) if isinstance(value, Decimal) else value


def group_indian(digits: str) -> str:
    """Insert Indian group separators into a string of digits: '1234567' → '12,34,567'."""
    return re.sub(_INDIAN_GROUPING, ",", digits)


def format_indian(value: float | int | None, decimals: int = 0, *, missing: str = MISSING) -> str:
    """Indian digit grouping: 1234567 → '12,34,567'; -1234.5 with 1 decimal → '-1,234.5'."""
    if _is_missing(value):
        return missing
    # Half-up rounding of the shortest decimal form (2.5 → 3, 1.005 → 1.01), as people round;
    # float formatting would round half to even on the binary value instead.
    exact = Decimal(str(abs(value)))
    text = f"{exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP):f}"
    integer, _, fraction = text.partition(".")
    # Rounding can reach zero (-0.4 → "0"): print "0", never "-0".
    negative = value < 0 and any(ch not in "0." for ch in text)
    return ("-" if negative else "") + group_indian(integer) + (f".{fraction}" if fraction else "")


def _significant(value: float, digits: int) -> str:
    """``value`` (≥ 1) with ``digits`` significant figures and no trailing zeros."""
    decimals = max(digits - len(str(int(value))), 0)
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_lakh_crore(
    value: float | int | None, significant: int = 3, *, missing: str = MISSING
) -> str:
    """Large numbers in lakh/crore: 1234567 → '12.3 lakh', 12345678 → '1.23 crore'.

    Below one lakh the number is written out with Indian grouping ('99,999'); from 1,000 crore
    the crore figure is grouped too ('1,234 crore').
    """
    if _is_missing(value):
        return missing
    magnitude = abs(_as_float(value))
    sign = "-" if value < 0 else ""
    if magnitude < LAKH:
        return format_indian(value, 0, missing=missing)
    word, unit = ("crore", CRORE) if magnitude >= CRORE else ("lakh", LAKH)
    number = _significant(magnitude / unit, significant)
    if word == "lakh" and float(number) >= 100:  # 99,99,999 rounds to '1 crore', not '100 lakh'
        word, number = "crore", _significant(magnitude / CRORE, significant)
    integer, _, fraction = number.partition(".")
    return f"{sign}{group_indian(integer)}{'.' + fraction if fraction else ''} {word}"


def format_number(
    value: float | int | None,
    decimals: int | None = None,
    *,
    compact: bool = False,
    missing: str = MISSING,
) -> str:
    """A count or measure for display. ``decimals=None`` picks: 0 for whole numbers, else 2
    below 10 and 1 from 10 up. ``compact`` switches to lakh/crore from one lakh up."""
    if _is_missing(value):
        return missing
    if compact and abs(_as_float(value)) >= LAKH:
        return format_lakh_crore(value, missing=missing)
    if decimals is None:
        number = float(value)
        decimals = 0 if number.is_integer() else 2 if abs(number) < 10 else 1
    return format_indian(value, decimals, missing=missing)


def format_percent(fraction: float | None, decimals: int = 1, *, missing: str = MISSING) -> str:
    """A share (0–1) as a percentage: 0.1234 → '12.3%'."""
    if _is_missing(fraction):
        return missing
    return format_indian(_as_float(fraction) * 100, decimals, missing=missing) + "%"


def format_ratio(value: float | None, decimals: int = 2, *, missing: str = MISSING) -> str:
    """A representation ratio: 0.1449 → '0.14'."""
    return format_indian(value, decimals, missing=missing)


def format_interval(
    low: float | None, high: float | None, decimals: int = 2, *, missing: str = MISSING
) -> str:
    """An interval with an en dash: (0.12, 0.16) → '0.12–0.16'."""
    if _is_missing(low) or _is_missing(high):
        return missing
    return f"{format_indian(low, decimals)}–{format_indian(high, decimals)}"


def with_labels(
    frame: pl.DataFrame, formats: Mapping[str, Formatter], *, suffix: str = "_label"
) -> pl.DataFrame:
    """Add a string column ``<col><suffix>`` per entry of ``formats`` (column → formatter).

    For tooltips and text marks: ``with_labels(df, {"patients": format_indian})`` adds
    ``patients_label`` with '12,34,567'. Nulls become the formatter's missing marker.
    """
    return frame.with_columns(
        pl.Series(f"{col}{suffix}", [fmt(v) for v in frame[col].to_list()], dtype=pl.String)
        for col, fmt in formats.items()
    )


def indian_number_expr(value: str = "datum.value", decimals: int = 0) -> str:
    """A Vega expression writing ``value`` with Indian grouping, e.g. for an axis ``labelExpr``.

    ``indian_number_expr("datum.value")`` renders 1234567 as '12,34,567'; null as '–'.
    """
    fixed = f"format(abs({value}), '.{decimals}f')"
    if decimals:
        integer = f"slice({fixed}, 0, indexof({fixed}, '.'))"
        fraction = f"slice({fixed}, indexof({fixed}, '.'))"
    else:
        integer, fraction = fixed, "''"
    zero = f"format(0, '.{decimals}f')"
    sign = f"({value} < 0 && {fixed} != {zero} ? '-' : '')"
    pattern = _INDIAN_GROUPING.replace("\\", "\\\\")  # backslashes escaped for a Vega string
    grouped = f"replace({integer}, regexp('{pattern}', 'g'), ',')"
    valid = f"isValid({value}) && isFinite({value})"
    return f"({valid} ? {sign} + {grouped} + {fraction} : '{MISSING}')"


def lakh_crore_expr(value: str = "datum.value") -> str:
    """A Vega expression for compact axis labels: '50,000', '2.5 lakh', '1.2 crore'.

    Uses d3's ``~`` format to drop trailing zeros; crore figures above 999 keep Western grouping
    (a tick of 1,000 crore is rare on this programme's axes).
    """
    magnitude = f"abs({value})"
    sign = f"({value} < 0 ? '-' : '')"
    crore_from = f"{CRORE * 0.9995:.0f}"  # 99,95,000 and up reads '1 crore', not '100 lakh'
    return (
        f"({magnitude} >= {crore_from} ? {sign} + format({magnitude} / {CRORE}, ',.3~r') + ' crore'"
        f" : {magnitude} >= {LAKH} ? {sign} + format({magnitude} / {LAKH}, '.3~r') + ' lakh'"
        f" : {indian_number_expr(value)})"
    )
