"""Small-cell suppression: hand-made known answers and properties checked by linear programming.

The checker here is independent of the algorithm in dashboard/privacy.py: it writes down the
published totals of METRICS.md's rule as linear equations over the suppressed cells, adds what
the labels tell (a "< k" cell holds 1 … k-1, a "withheld" one k or more) and asks scipy's LP
solver for the smallest and largest value each suppressed cell can take. A cell whose range is
a single value could be worked out; none may be. (The equations are those of a network, whose
extreme points are whole numbers: a range of at least 1 holds at least two whole values.)
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from dashboard import privacy
from dashboard.privacy import GAPS, SECONDARY, SMALL, Withheld

K = 10


# --------------------------------------------------------------------------- the checker


def _unknown(frame: pl.DataFrame, dim: str) -> np.ndarray:
    return frame.select(privacy.is_unknown(dim)).to_series().to_numpy()


def published_lines(frame: pl.DataFrame, dims: list[str], result: privacy.Suppression) -> list:
    """Index arrays of the cells whose total is published, straight from the rule's words."""
    values = frame["n"].to_numpy()
    everything = np.arange(frame.height)
    if result.withheld is Withheld.TOTALS:
        # N withheld; margins below k are small counts (hidden where shown); the margins the
        # result names are withheld too. Unknown values are plain categories.
        def groups(columns: list[str]) -> list[tuple[dict, np.ndarray]]:
            keys = list(zip(*(frame[c].to_list() for c in columns), strict=True))
            return [
                (dict(zip(columns, key, strict=True)), np.array([i for i, x in enumerate(keys)
                                                                 if x == key]))
                for key in set(keys)
            ]  # fmt: skip

        candidates = [({}, everything)] if len(dims) == 1 else groups(dims[:-1]) + groups(dims[-1:])
        return [
            members
            for key, members in candidates
            if not 0 < values[members].sum() < result.k and key not in result.withheld_lines
        ]
    withheld = result.withheld
    unknown_any = np.zeros(frame.height, dtype=bool)
    for d in dims:
        unknown_any |= _unknown(frame, d)
    known = everything[~unknown_any]
    if len(dims) == 1:
        return [known] if withheld is Withheld.UNKNOWN else [everything, known]
    head, last = dims[:-1], dims[-1]
    row_keys = list(zip(*(frame[d].to_list() for d in head), strict=True))
    row_unknown = np.zeros(frame.height, dtype=bool)
    for d in head:
        row_unknown |= _unknown(frame, d)
    col_unknown = _unknown(frame, last)
    col_keys = frame[last].to_list()
    lines = [known]
    for key in set(row_keys):
        members = np.array([i for i, r in enumerate(row_keys) if r == key])
        if withheld is Withheld.NONE or not row_unknown[members[0]]:
            lines.append(members)
    for key in set(col_keys):
        members = np.array([i for i, c in enumerate(col_keys) if c == key])
        if withheld is Withheld.NONE or not col_unknown[members[0]]:
            lines.append(members)
    return lines


def ranges(
    frame: pl.DataFrame, dims: list[str], result: privacy.Suppression
) -> dict[int, tuple[float, float]]:
    """Smallest and largest value of each suppressed cell consistent with what is published."""
    reason = result.cells[privacy.SUPPRESSION].to_list()
    values = frame["n"].to_numpy()
    hidden = [i for i, r in enumerate(reason) if r is not None]
    if not hidden:
        return {}
    position = {cell: j for j, cell in enumerate(hidden)}
    rows, rhs = [], []
    for line in published_lines(frame, dims, result):
        members = [position[i] for i in line if i in position]
        if members:
            row = np.zeros(len(hidden))
            row[members] = 1
            rows.append(row)
            rhs.append(sum(values[hidden[j]] for j in members))
    bounds = [(1, result.k - 1) if reason[i] == SMALL else (result.k, None) for i in hidden]
    found = {}
    for j, cell in enumerate(hidden):
        cost = np.zeros(len(hidden))
        cost[j] = 1
        eq = {"A_eq": np.array(rows), "b_eq": np.array(rhs)} if rows else {}
        low = linprog(cost, bounds=bounds, method="highs", **eq)
        high = linprog(-cost, bounds=bounds, method="highs", **eq)
        assert low.status == 0, "the true values must be feasible"
        found[cell] = (low.fun, float("inf") if high.status == 3 else -high.fun)
    return found


def assert_protected(frame: pl.DataFrame, dims: list[str], result: privacy.Suppression) -> None:
    reason = result.cells[privacy.SUPPRESSION].to_list()
    values = frame["n"].to_list()
    entitled = result.cells["_entitled"].to_list()
    for i, (r, v, e) in enumerate(zip(reason, values, entitled, strict=True)):
        if e or v == 0:
            assert r is None, f"cell {i} ({v}, entitled={e}) must not be suppressed"
        elif v < K:
            assert r == SMALL, f"cell {i} ({v}) is small and must be suppressed"
        else:
            assert r in (None, SECONDARY), f"cell {i} ({v}) is not small"
    for line in result.withheld_lines:
        members = frame.filter(*(pl.col(d).eq_missing(v) for d, v in line.items()))
        assert members["n"].sum() >= K, f"a small margin {line} is hidden anyway, not withheld"
    for line in published_lines(frame, dims, result):
        hidden = [i for i in line if reason[i] is not None]
        assert len(hidden) != 1, f"line {list(line)} has one suppressed cell: {hidden}"
    for cell, (low, high) in ranges(frame, dims, result).items():
        assert high - low >= 1 - 1e-7, f"cell {cell} ({values[cell]}) pinned to [{low}, {high}]"
        assert low - 1e-7 <= values[cell] <= high + 1e-7


def table(dims: list[str], cells: dict[tuple, int]) -> pl.DataFrame:
    keys = list(cells)
    return pl.DataFrame(
        {**{d: [key[i] for key in keys] for i, d in enumerate(dims)}, "n": list(cells.values())},
        schema={**dict.fromkeys(dims, pl.String), "n": pl.Int64},
    )


def reasons(result: privacy.Suppression) -> dict[tuple, str | None]:
    dims = list(result.dims)
    return {
        tuple(row[d] for d in dims): row[privacy.SUPPRESSION]
        for row in result.cells.iter_rows(named=True)
    }


# --------------------------------------------------------------------------- known answers


def test_nothing_small_nothing_hidden() -> None:
    frame = table(["state"], {("KA",): 10, ("TN",): 0, ("OD",): 250})
    result = privacy.protect(frame, ["state"], k=K)
    assert result.suppressed == 0 and result.withheld is Withheld.NONE


def test_one_small_cell_takes_the_smallest_cell_that_can_hide_it() -> None:
    # 4 alone would be the total minus the rest. 11 could not hide it: 4 + 11 = 15 with 11 ≥ 10
    # leaves 4 ∈ [1, 5], fine, so the smallest non-zero cell, 11, is the complement.
    frame = table(["state"], {("KA",): 4, ("TN",): 11, ("OD",): 250, ("AP",): 0})
    result = privacy.protect(frame, ["state"], k=K)
    assert reasons(result) == {("KA",): SMALL, ("TN",): SECONDARY, ("OD",): None, ("AP",): None}
    assert_protected(frame, ["state"], result)


def test_a_complement_at_exactly_k_cannot_hide_a_one() -> None:
    # 1 + 10 = 11 with the complement ≥ 10 pins both; the next cell, 12, can: 1 + 12 = 13 leaves
    # the small cell in [1, 3].
    frame = table(["state"], {("KA",): 1, ("TN",): 10, ("OD",): 12, ("AP",): 400})
    result = privacy.protect(frame, ["state"], k=K)
    assert reasons(result) == {("KA",): SMALL, ("TN",): None, ("OD",): SECONDARY, ("AP",): None}
    assert_protected(frame, ["state"], result)


def test_two_small_cells_protect_each_other_unless_both_are_one() -> None:
    frame = table(["state"], {("KA",): 3, ("TN",): 4, ("OD",): 250})
    result = privacy.protect(frame, ["state"], k=K)
    assert reasons(result) == {("KA",): SMALL, ("TN",): SMALL, ("OD",): None}
    ones = table(["state"], {("KA",): 1, ("TN",): 1, ("OD",): 250, ("AP",): 300})
    result = privacy.protect(ones, ["state"], k=K)
    # 1 + 1 = 2 with both ≥ 1 pins both: the smallest cell that can move joins them.
    assert reasons(result) == {("KA",): SMALL, ("TN",): SMALL, ("OD",): SECONDARY, ("AP",): None}
    assert_protected(ones, ["state"], result)


def test_small_unknown_cell_withholds_the_total_not_the_table() -> None:
    # total − N = the unknown count: with both published the 3 is known whatever else is hidden.
    frame = table(["state"], {("KA",): 500, ("TN",): 300, ("AP",): 40, (None,): 3})
    result = privacy.protect(frame, ["state"], k=K)
    assert reasons(result) == {("KA",): None, ("TN",): None, ("AP",): None, (None,): SMALL}
    assert result.withheld is Withheld.UNKNOWN and result.unknown_withheld
    assert not result.totals_withheld
    assert_protected(frame, ["state"], result)


def test_unknown_cell_cannot_be_the_complement_of_a_known_one() -> None:
    # N = KA + TN + AP is published through the shares: KA's complement must be a known cell.
    frame = table(["state"], {("KA",): 5, ("TN",): 300, ("AP",): 40, (None,): 30})
    result = privacy.protect(frame, ["state"], k=K)
    assert reasons(result) == {("KA",): SMALL, ("TN",): None, ("AP",): SECONDARY, (None,): None}
    assert_protected(frame, ["state"], result)


def test_tiny_table_withholds_every_total() -> None:
    frame = table(["state"], {("KA",): 1, ("TN",): 1, ("OD",): 1, (None,): 1})
    result = privacy.protect(frame, ["state"], k=K)
    assert set(reasons(result).values()) == {SMALL}
    assert result.withheld is Withheld.TOTALS and result.totals_withheld
    assert result.withheld_lines == ()  # the total, 4, is itself small: hidden where shown


def test_entitled_cells_are_shown_and_never_complements() -> None:
    frame = table(["institution"], {("A",): 3, ("B",): 4, ("C",): 15, ("D",): 30})
    own = privacy.protect(frame, ["institution"], k=K, entitled=[True, False, False, False])
    # The partner knows its own 3: B (4) alone would be the total minus what is shown.
    assert reasons(own) == {("A",): None, ("B",): SMALL, ("C",): SECONDARY, ("D",): None}
    assert_protected(frame, ["institution"], own)
    public = privacy.protect(frame, ["institution"], k=K)
    assert reasons(public) == {("A",): SMALL, ("B",): SMALL, ("C",): None, ("D",): None}


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        pytest.param(
            {
                ("KA", "F"): 3,
                ("KA", "M"): 40,
                ("TN", "F"): 20,
                ("TN", "M"): 30,
                ("OD", "F"): 200,
                ("OD", "M"): 150,
            },
            {
                ("KA", "F"): SMALL,
                ("KA", "M"): SECONDARY,
                ("TN", "F"): SECONDARY,
                ("TN", "M"): SECONDARY,
                ("OD", "F"): None,
                ("OD", "M"): None,
            },
            # KA/F = 3 is small; its row and its column each need a second hidden cell, and
            # those need a fourth: the cheapest rectangle is KA/M (40), TN/F (20) and TN/M
            # (30): the one through OD (200, 150) costs more.
            id="one-small-cell-cheapest-rectangle",
        ),
        pytest.param(
            {
                ("KA", "F"): 2,
                ("KA", "M"): 50,
                ("TN", "F"): 60,
                ("TN", "M"): 5,
                ("OD", "F"): 70,
                ("OD", "M"): 80,
            },
            {
                ("KA", "F"): SMALL,
                ("KA", "M"): SECONDARY,
                ("TN", "F"): SECONDARY,
                ("TN", "M"): SMALL,
                ("OD", "F"): None,
                ("OD", "M"): None,
            },
            # Two small cells on a diagonal close a rectangle with two complements, not six.
            id="diagonal-small-cells-share-complements",
        ),
    ],
)
def test_two_way_table_known_answers(
    cells: dict[tuple[str, ...], int], expected: dict[tuple[str, ...], str | None]
) -> None:
    """state × sex with margins published."""
    frame = table(["state", "sex"], cells)
    result = privacy.protect(frame, ["state", "sex"], k=K)
    assert reasons(result) == expected
    assert_protected(frame, ["state", "sex"], result)


def test_sex_unknown_marker_counts_as_unknown() -> None:
    frame = table(["sex"], {("F",): 400, ("M",): 300, ("U",): 2})
    result = privacy.protect(frame, ["sex"], k=K)
    assert result.withheld is Withheld.UNKNOWN
    assert reasons(result) == {("F",): None, ("M",): None, ("U",): SMALL}


def test_apply_nulls_what_reveals_a_hidden_cell() -> None:
    counts = table(["state"], {("KA",): 4, ("TN",): 11, ("OD",): 250})
    result = privacy.protect(counts, ["state"], k=K)
    gaps = pl.DataFrame(
        {
            "state": ["KA", "TN", "OD", "AP"],
            "n": [4, 11, 250, 0],
            "share": [4 / 265, 11 / 265, 250 / 265, 0.0],
            "expected": [10.0, 20.0, 200.0, 35.0],
            "rr": [0.4, 0.5, 1.2, 0.0],
            "flag": ["insufficient"] * 4,
            "shortfall": [6, 9, -50, 35],
        }
    )
    out = privacy.apply(gaps, result, GAPS)
    rows = {r["state"]: r for r in out.iter_rows(named=True)}
    assert rows["KA"] == {
        "state": "KA",
        "n": None,
        "share": None,
        "expected": 10.0,  # ref_share × N: not the cell's own count
        "rr": None,
        "flag": None,
        "shortfall": None,
        "suppressed": True,
        "suppression": SMALL,
    }
    assert rows["TN"]["n"] is None and rows["TN"]["suppression"] == SECONDARY
    assert rows["OD"]["n"] == 250 and rows["OD"]["suppressed"] is False
    assert rows["AP"]["n"] == 0 and rows["AP"]["suppressed"] is False  # a zero is a zero
    shown = privacy.shown_counts(out, K)
    assert shown["n"].to_list() == ["< 10", "withheld", "250", "0"]
    assert "suppressed" not in shown.columns


def test_apply_with_every_total_withheld_nulls_shares_everywhere() -> None:
    counts = table(["institution"], {("A",): 40, ("B",): 2})
    own = privacy.protect(counts, ["institution"], k=K, entitled=[True, False])
    # 42 − 40 = 2 whatever else is hidden: the total (42, not small) must be withheld.
    assert own.withheld is Withheld.TOTALS and own.withheld_lines == ({},)
    out = privacy.apply(counts.with_columns(share=pl.col("n") / 42), own, privacy.COVERAGE)
    assert out.select("institution", "n", "share", "suppressed").rows() == [
        ("A", 40, None, False),
        ("B", None, None, True),
    ]


def test_apply_refuses_a_small_cell_the_pattern_does_not_know() -> None:
    result = privacy.protect(table(["state"], {("KA",): 400}), ["state"], k=K)
    stray = table(["state"], {("KA",): 400, ("TN",): 3})
    with pytest.raises(ValueError, match="missing from the suppression pattern"):
        privacy.apply(stray, result, privacy.COVERAGE)


def test_shown_totals() -> None:
    assert privacy.shown_total(4, K) == "< 10"
    assert privacy.shown_total(0, K) == 0
    assert privacy.shown_total(10, K) == 10
    assert privacy.shown_total(500, K, withheld=True) == "withheld"


def test_merge_partners_hides_other_institutions() -> None:
    rows = pl.DataFrame(
        {
            "sex": ["F", "F", "F", "F", "M"],
            "n": [100, 100, 100, 100, 80],
            "ref_share": [0.5] * 4 + [0.5],
            "cell_allocated": [60, 60, 60, 60, 0],
            "target": [160, 160, 160, 160, 80],
            "forecast_month": ["2027-01"] * 4 + [None],
            "institution": ["A", "B", "C", None, None],
            "institution_name": ["a", "b", "c", None, None],
            "allocated": [30, 20, 5, 5, 0],
            "monthly_rate": [4.0, 2.0, 1.0, 0.0, 0.0],
            "delivery_month": ["2027-01", "2027-03", "2027-09", None, None],
        }
    )
    merged = privacy.merge_partners(rows, ["sex"], {"A"}, k=K, months=3)
    got = merged.select("sex", "institution", "allocated", "monthly_rate").rows()
    # B and C: 3 + 6 = 9 studies over three months: a small count, so the rate is hidden.
    assert got == [
        ("F", "A", 30, 4.0),
        ("F", None, 5, 0.0),
        ("M", None, 0, 0.0),
        ("F", privacy.OTHER_PARTNERS, 25, None),
    ]


# --------------------------------------------------------------------------- properties

VALUES = st.one_of(
    st.just(0),
    st.integers(1, K - 1),
    st.integers(K, 2 * K),
    st.integers(2 * K, 400),
)


@st.composite
def one_way(draw: st.DrawFn) -> tuple[pl.DataFrame, list[bool]]:
    size = draw(st.integers(1, 9))
    names = [f"c{i}" for i in range(size)] + ([None] if draw(st.booleans()) else [])
    values = draw(st.lists(VALUES, min_size=len(names), max_size=len(names)))
    entitled = draw(st.lists(st.booleans(), min_size=len(names), max_size=len(names)))
    if draw(st.booleans()):
        entitled = [False] * len(names)
    frame = pl.DataFrame({"a": names, "n": values}, schema={"a": pl.String, "n": pl.Int64})
    return frame, entitled


@st.composite
def crosses(draw: st.DrawFn, dims: int) -> tuple[pl.DataFrame, list[bool]]:
    axes = []
    for _ in range(dims):
        size = draw(st.integers(1, 4 if dims == 2 else 3))
        axes.append([f"v{i}" for i in range(size)] + ([None] if draw(st.booleans()) else []))
    keys = list(itertools.product(*axes))
    present = draw(st.lists(st.booleans(), min_size=len(keys), max_size=len(keys)))
    keys = [key for key, keep in zip(keys, present, strict=True) if keep] or keys[:1]
    values = draw(st.lists(VALUES, min_size=len(keys), max_size=len(keys)))
    entitled = [False] * len(keys)
    if draw(st.booleans()):  # a partner: its own first-dimension value in full
        entitled = [key[0] == "v0" for key in keys]
    names = [f"d{i}" for i in range(dims)]
    frame = pl.DataFrame(
        {**{d: [key[i] for key in keys] for i, d in enumerate(names)}, "n": values},
        schema={**dict.fromkeys(names, pl.String), "n": pl.Int64},
    )
    return frame, entitled


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(one_way())
def test_one_way_tables_hide_every_small_cell_for_good(case: tuple) -> None:
    frame, entitled = case
    result = privacy.protect(frame, ["a"], k=K, entitled=entitled)
    assert_protected(frame, ["a"], result)


@PROPERTY
@given(crosses(2))
def test_two_way_tables_hide_every_small_cell_for_good(case: tuple) -> None:
    frame, entitled = case
    result = privacy.protect(frame, ["d0", "d1"], k=K, entitled=entitled)
    assert_protected(frame, ["d0", "d1"], result)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(crosses(3))
def test_three_way_tables_protected_as_rows_by_last_dimension(case: tuple) -> None:
    frame, entitled = case
    result = privacy.protect(frame, ["d0", "d1", "d2"], k=K, entitled=entitled)
    assert_protected(frame, ["d0", "d1", "d2"], result)


@PROPERTY
@given(crosses(2), st.integers(3, 12))
def test_any_k(case: tuple, k: int) -> None:
    frame, _ = case
    result = privacy.protect(frame, ["d0", "d1"], k=k)
    values = frame["n"].to_list()
    for value, reason in zip(values, result.cells[privacy.SUPPRESSION].to_list(), strict=True):
        assert (reason == SMALL) == (0 < value < k)


def test_a_state_sex_age_cross_is_fast_enough() -> None:
    """37 states × 3 sexes × 18 age bands, a fifth of the cells small: well under a second."""
    rng = np.random.default_rng(3)
    keys = list(
        itertools.product([f"S{i}" for i in range(37)], "FMU", [f"A{i}" for i in range(18)])
    )
    values = np.where(
        rng.random(len(keys)) < 0.2, rng.integers(1, K, len(keys)), rng.integers(K, 900, len(keys))
    )
    frame = table(["state", "sex", "age_band"], dict(zip(keys, values.tolist(), strict=True)))
    start = time.perf_counter()
    result = privacy.protect(frame, ["state", "sex", "age_band"], k=K)
    elapsed = time.perf_counter() - start
    assert result.withheld is Withheld.UNKNOWN or result.withheld is Withheld.NONE
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    reason = result.cells[privacy.SUPPRESSION].to_list()
    for line in published_lines(frame, ["state", "sex", "age_band"], result):
        assert sum(reason[i] is not None for i in line) != 1
