"""Indian number formatting: known answers, properties, and Python/Vega agreement."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import altair as alt
import polars as pl
import pytest
import vl_convert as vlc
from hypothesis import given
from hypothesis import strategies as st

from dashboard.formatting import (
    MISSING,
    format_indian,
    format_interval,
    format_lakh_crore,
    format_number,
    format_percent,
    format_ratio,
    group_indian,
    indian_number_expr,
    lakh_crore_expr,
    with_labels,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (7, "7"),
        (999, "999"),
        (1000, "1,000"),
        (12345, "12,345"),
        (99999, "99,999"),
        (100000, "1,00,000"),
        (1234567, "12,34,567"),
        (12_345_678, "1,23,45,678"),
        (1_000_000_000, "1,00,00,00,000"),
        (-1234567, "-12,34,567"),
        (-999, "-999"),
        (Decimal("1234567"), "12,34,567"),
        (1234567.4, "12,34,567"),
    ],
)
def test_indian_grouping_known_answers(value: float, expected: str) -> None:
    assert format_indian(value) == expected


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (1234.5, 1, "1,234.5"),
        (1234567.891, 2, "12,34,567.89"),
        (0.5, 0, "1"),  # half up, as people round, not half to even
        (2.5, 0, "3"),
        (1.005, 2, "1.01"),
        (-0.4, 0, "0"),  # never "-0"
        (-0.04, 1, "0.0"),
        (-1234.56, 1, "-1,234.6"),
    ],
)
def test_indian_grouping_with_decimals(value: float, decimals: int, expected: str) -> None:
    assert format_indian(value, decimals) == expected


@pytest.mark.parametrize("missing", [None, math.nan, math.inf])
def test_missing_values(missing: float | None) -> None:
    assert format_indian(missing) == MISSING
    assert format_lakh_crore(missing) == MISSING
    assert format_percent(missing) == MISSING
    assert format_number(missing, missing="n/a") == "n/a"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (99_999, "99,999"),
        (100_000, "1 lakh"),
        (1_234_567, "12.3 lakh"),
        (2_500_000, "25 lakh"),
        (9_999_999, "1 crore"),  # not "100 lakh"
        (10_000_000, "1 crore"),
        (12_345_678, "1.23 crore"),
        (123_456_789, "12.3 crore"),
        (123_456_789_012, "12,346 crore"),
        (-2_500_000, "-25 lakh"),
        (-12_345_678, "-1.23 crore"),
    ],
)
def test_lakh_crore(value: int, expected: str) -> None:
    assert format_lakh_crore(value) == expected


def test_lakh_crore_significant_digits() -> None:
    assert format_lakh_crore(12_345_678, significant=2) == "1.2 crore"
    assert format_lakh_crore(1_234_567, significant=4) == "12.35 lakh"


def test_format_number_picks_decimals_and_compact_form() -> None:
    assert format_number(1234567) == "12,34,567"
    assert format_number(1234567.0) == "12,34,567"
    assert format_number(12.345) == "12.3"
    assert format_number(0.1449) == "0.14"
    assert format_number(12.345, 2) == "12.35"
    assert format_number(12_345_678, compact=True) == "1.23 crore"
    assert format_number(54_321, compact=True) == "54,321"


def test_percent_ratio_interval() -> None:
    assert format_percent(0.1234) == "12.3%"
    assert format_percent(1.0) == "100.0%"
    assert format_percent(0, 0) == "0%"
    assert format_percent(123.4567) == "12,345.7%"
    assert format_ratio(0.1449) == "0.14"
    assert format_interval(0.12, 0.164) == "0.12–0.16"
    assert format_interval(None, 0.2) == MISSING


def test_with_labels_adds_string_columns() -> None:
    frame = pl.DataFrame({"n": [1234567, None], "share": [0.25, 0.5]})
    labelled = with_labels(frame, {"n": format_indian, "share": format_percent})
    assert labelled["n_label"].to_list() == ["12,34,567", MISSING]
    assert labelled["share_label"].to_list() == ["25.0%", "50.0%"]
    assert labelled["n_label"].dtype == pl.String


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_grouping_keeps_digits_and_follows_the_indian_pattern(n: int) -> None:
    text = format_indian(n)
    assert int(text.replace(",", "")) == n
    assert re.fullmatch(r"-?(\d{1,3}|\d{1,2}(,\d{2})*,\d{3})", text)


def test_group_indian_on_digit_strings() -> None:
    assert group_indian("1234567") == "12,34,567"
    assert group_indian("123") == "123"


VEGA_CASES = [0, 7, 999, 1234, 99999, 250000, 1234567, -1234567, 12_345_678, 1234.5, -0.2]


def _render_texts(expr_for: str) -> list[str]:
    """Evaluate a Vega expression (over ``datum.v``) for VEGA_CASES by rendering text marks."""
    rows = [{"i": i, "v": v} for i, v in enumerate(VEGA_CASES)]
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_text()
        .transform_calculate(label=expr_for)
        .encode(y=alt.Y("i:O", axis=None), text="label:N")
    )
    svg = vlc.vegalite_to_svg(chart.to_json())
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


@pytest.mark.parametrize("decimals", [0, 2])
def test_vega_expression_matches_python(decimals: int) -> None:
    texts = _render_texts(indian_number_expr("datum.v", decimals))
    # d3's toFixed rounds half away from zero, like format_indian.
    assert texts == [format_indian(v, decimals) for v in VEGA_CASES]


def test_vega_lakh_crore_expression() -> None:
    texts = _render_texts(lakh_crore_expr("datum.v"))
    assert texts[VEGA_CASES.index(250000)] == "2.5 lakh"
    assert texts[VEGA_CASES.index(1234567)] == "12.3 lakh"
    assert texts[VEGA_CASES.index(-1234567)] == "-12.3 lakh"
    assert texts[VEGA_CASES.index(12_345_678)] == "1.23 crore"
    assert texts[VEGA_CASES.index(99999)] == "99,999"
