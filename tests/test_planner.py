"""Tests for dashboard.planner: exact optimum, fast path, baseline, institution split, forecast."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr, xlogy

from dashboard import planner
from dashboard.metrics import divergence
from dashboard.planner import (
    Method,
    allocate,
    capacity_by_cell,
    forecast_month,
    js_distance_after,
    months_to_target,
    plan,
    proportional_baseline,
    split_across_institutions,
)

Caps = list[int | None] | None
METHODS: tuple[Method, ...] = ("greedy", "lagrange", "auto")


def objective(n: Sequence[int], x: Sequence[int], q: Sequence[float]) -> float:
    """JS divergence (base 2) of n + x from q: the squared distance, without the square root.

    scipy's jensenshannon takes sqrt(js / 2) and returns NaN when rounding makes a zero
    divergence slightly negative, so the oracle sums scipy's rel_entr terms itself.
    """
    p = np.add(n, x) / np.sum(np.add(n, x))
    r = np.asarray(q, dtype=float) / np.sum(q)
    m = (p + r) / 2
    js = (rel_entr(p, m).sum() + rel_entr(r, m).sum()) / 2 / np.log(2)
    return max(float(js), 0.0)


def compositions(total: int, limits: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every x with Σx = total and 0 ≤ x_i ≤ limits_i."""
    if len(limits) == 1:
        if total <= limits[0]:
            yield (total,)
        return
    for first in range(min(total, limits[0]) + 1):
        for rest in compositions(total - first, limits[1:]):
            yield (first, *rest)


def limits_of(caps: Caps, cells: int, budget: int) -> list[int]:
    """Most patients each cell can take: its cap, and never more than the budget."""
    return [budget if c is None else min(c, budget) for c in (caps or [None] * cells)]


def brute_force(n: Sequence[int], q: Sequence[float], budget: int, caps: Caps) -> float:
    limits = limits_of(caps, len(n), budget)
    total = min(budget, sum(limits))
    return min(objective(n, x, q) for x in compositions(total, limits))


def step_costs(c: np.ndarray, big_q: np.ndarray) -> np.ndarray:
    """g(c + 1) − g(c), g(c) = c·ln(2c/(c + Q)) + Q·ln(2Q/(c + Q)), written out plainly."""

    def g(v: np.ndarray) -> np.ndarray:
        both = np.maximum(v + big_q, 1e-300)  # v = Q = 0 contributes 0
        return xlogy(v, 2 * v / both) + xlogy(big_q, 2 * big_q / both)

    return g(c + 1) - g(c)


def is_integer_optimum(
    n: Sequence[int], q: Sequence[float], x: np.ndarray, caps: Caps, tol: float = 1e-7
) -> bool:
    """No single transfer of one patient between two cells lowers the objective.

    For a separable convex objective over {Σx = B, 0 ≤ x ≤ cap} that is global optimality.
    """
    counts = np.asarray(n, dtype=float)
    shares = np.asarray(q, dtype=float) / np.sum(q)
    room = np.array([np.inf if caps is None or c is None else c for c in (caps or [None] * len(n))])
    big_q = shares * (counts.sum() + x.sum())
    c = counts + x
    last_unit = step_costs(c - 1, big_q)[x > 0]
    next_unit = step_costs(c, big_q)[x < room]
    if last_unit.size == 0 or next_unit.size == 0:
        return True
    return bool(last_unit.max() <= next_unit.min() + tol * max(1.0, abs(next_unit.min())))


# ----------------------------------------------------------------------------- strategies


@st.composite
def small_problems(draw: st.DrawFn, capped: bool) -> tuple[list[int], list[int], int, Caps]:
    cells = draw(st.integers(1, 4))
    n = draw(st.lists(st.integers(0, 15), min_size=cells, max_size=cells))
    weights = draw(
        st.lists(st.integers(0, 30), min_size=cells, max_size=cells).filter(lambda w: sum(w) > 0)
    )
    budget = draw(st.integers(0, 12))
    caps: Caps = None
    if capped:
        caps = draw(
            st.lists(st.one_of(st.none(), st.integers(0, 12)), min_size=cells, max_size=cells)
        )
    return n, weights, budget, caps


@st.composite
def medium_problems(draw: st.DrawFn) -> tuple[list[int], list[float], int, Caps]:
    cells = draw(st.integers(1, 40))
    n = draw(
        st.lists(
            st.one_of(st.just(0), st.integers(0, 50), st.integers(0, 100_000)),
            min_size=cells,
            max_size=cells,
        )
    )
    weights = draw(
        st.lists(
            st.one_of(st.just(0.0), st.floats(1e-7, 1e-3), st.floats(1e-3, 1.0)),
            min_size=cells,
            max_size=cells,
        ).filter(lambda w: sum(w) > 0)
    )
    budget = draw(st.integers(0, 3_000))
    caps: Caps = draw(
        st.one_of(
            st.none(),
            st.lists(st.one_of(st.none(), st.integers(0, 400)), min_size=cells, max_size=cells),
        )
    )
    return n, weights, budget, caps


# ----------------------------------------------------------------------------- allocate


@settings(max_examples=300, deadline=None)
@given(small_problems(capped=False))
def test_uncapped_allocation_is_the_brute_force_optimum(
    problem: tuple[list[int], list[int], int, Caps],
) -> None:
    n, weights, budget, _ = problem
    assume(sum(n) + budget > 0)
    for method in METHODS:
        x = allocate(n, weights, budget, method=method)
        assert x.dtype == np.int64
        assert x.sum() == budget and (x >= 0).all()
        assert objective(n, x, weights) == pytest.approx(
            brute_force(n, weights, budget, None), abs=1e-12
        )
        # Cells without reference weight never receive anyone while others can.
        assert x[np.asarray(weights) == 0].sum() == 0


@settings(max_examples=300, deadline=None)
@given(small_problems(capped=True))
def test_capped_allocation_is_the_brute_force_optimum(
    problem: tuple[list[int], list[int], int, Caps],
) -> None:
    n, weights, budget, caps = problem
    limits = limits_of(caps, len(n), budget)
    assume(sum(n) + min(budget, sum(limits)) > 0)
    for method in METHODS:
        x = allocate(n, weights, budget, caps, method=method)
        assert x.sum() == min(budget, sum(limits)) and (x >= 0).all()
        assert (x <= limits).all()
        assert objective(n, x, weights) == pytest.approx(
            brute_force(n, weights, budget, caps), abs=1e-12
        )


def test_fast_path_needs_the_exchange_pass() -> None:
    # Found by search: the floored continuous optimum plus greedy gives (1, 6, 1, 0), one patient
    # too many in cell 1 that only a removal can take back. The optimum is (1, 5, 1, 1).
    n, weights, budget = [0, 4, 1, 2], [1, 18, 3, 5], 8
    q = np.array(weights) / sum(weights)
    big_q = q * (sum(n) + budget)
    counts, room = np.array(n, dtype=float), np.full(4, np.inf)
    start = planner._lagrange_floor(counts, big_q, room, budget)
    planner._greedy_fill(counts, big_q, room, start, budget - int(start.sum()))
    assert start.tolist() == [1, 6, 1, 0]
    assert not is_integer_optimum(n, weights, start, None)

    x = allocate(n, weights, budget, method="lagrange")
    assert x.tolist() == [1, 5, 1, 1]
    assert objective(n, x, weights) == pytest.approx(brute_force(n, weights, budget, None))
    assert objective(n, x, weights) < objective(n, start, weights) - 1e-3


@settings(max_examples=150, deadline=None)
@given(medium_problems())
def test_fast_path_equals_pure_greedy(problem: tuple[list[int], list[float], int, Caps]) -> None:
    n, weights, budget, caps = problem
    greedy = allocate(n, weights, budget, caps, method="greedy")
    fast = allocate(n, weights, budget, caps, method="lagrange")
    assert fast.sum() == greedy.sum()
    assume(sum(n) + greedy.sum() > 0)
    assert objective(n, fast, weights) == pytest.approx(objective(n, greedy, weights), abs=1e-13)
    assert is_integer_optimum(n, weights, fast, caps)
    assert is_integer_optimum(n, weights, greedy, caps)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_path_equals_pure_greedy_on_a_large_budget(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cells = 300
    n = rng.integers(0, 2_000, cells)
    q = rng.dirichlet(np.full(cells, 0.3))
    caps = [None if rng.random() < 0.7 else int(c) for c in rng.integers(0, 2_000, cells)]
    for budget_caps in (None, caps):
        greedy = allocate(n, q, 150_000, budget_caps, method="greedy")
        fast = allocate(n, q, 150_000, budget_caps, method="lagrange")
        assert fast.sum() == greedy.sum() == 150_000
        assert objective(n, fast, q) == pytest.approx(objective(n, greedy, q), abs=1e-13)
        assert np.abs(fast - greedy).max() <= 1  # at most near-ties differ


def test_twenty_million_over_five_thousand_cells_is_fast_and_optimal() -> None:
    rng = np.random.default_rng(7)
    n = rng.integers(0, 4_000, 5_000)
    q = rng.dirichlet(np.full(5_000, 0.5))
    started = time.perf_counter()
    x = allocate(n, q, 20_000_000)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert x.sum() == 20_000_000 and (x >= 0).all()
    assert is_integer_optimum(n, q, x, None)
    baseline = proportional_baseline(q, 20_000_000)
    assert objective(n, x, q) < objective(n, baseline, q)


def test_zero_share_cells_only_take_what_nobody_else_can() -> None:
    assert allocate([100, 0, 0], [0.5, 0.5, 0.0], 50).tolist() == [0, 50, 0]
    # Cells 0 and 1 take 10 each; the remaining 30 must go somewhere: to the q = 0 cells in order.
    assert allocate([0, 0, 0, 0], [0.5, 0.5, 0, 0], 50, [10, 10, 20, None]).tolist() == [
        10,
        10,
        20,
        10,
    ]


def test_caps_short_of_the_budget_allocate_what_they_can() -> None:
    x = allocate([5, 5], [0.5, 0.5], 100, [10, 20])
    assert x.tolist() == [10, 20]
    assert proportional_baseline([0.5, 0.5], 100, [10, 20]).tolist() == [10, 20]


def test_allocation_hand_computed() -> None:
    # From (10, 0) towards q = (½, ½) with 10 more: (10, 10) is parity.
    assert allocate([10, 0], [1, 1], 10).tolist() == [0, 10]
    # Past parity the rest splits evenly: 20 more from (10, 0) ends at (15, 15).
    assert allocate([10, 0], [1, 1], 20).tolist() == [5, 15]
    assert allocate([1, 2, 3], [1, 1, 1], 0).tolist() == [0, 0, 0]


def test_allocate_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        allocate([1, 2], [0.5], 3)
    with pytest.raises(ValueError):
        allocate([1, 2], [0, 0], 3)
    with pytest.raises(ValueError):
        allocate([1, -2], [1, 1], 3)
    with pytest.raises(ValueError):
        allocate([1, 2], [1, 1], -3)
    with pytest.raises(ValueError):
        allocate([1, 2], [1, 1], 3, [1, -1])
    with pytest.raises(ValueError):
        allocate([1, 2], [1, 1], 3, method="magic")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- baseline


def test_proportional_baseline_hand_computed() -> None:
    assert proportional_baseline([0.5, 0.3, 0.2], 10).tolist() == [5, 3, 2]
    # Quotas 3.5, 2.1, 1.4 → floors 3, 2, 1 and the one left over to the largest fraction (0.5).
    assert proportional_baseline([0.5, 0.3, 0.2], 7).tolist() == [4, 2, 1]
    # Cell 0 capped at 2; the other 8 split 3:2 → 4.8, 3.2 → 5, 3.
    assert proportional_baseline([0.5, 0.3, 0.2], 10, [2, None, None]).tolist() == [2, 5, 3]
    assert proportional_baseline([1, 0], 5).tolist() == [5, 0]


@settings(max_examples=200, deadline=None)
@given(medium_problems())
def test_capped_plan_is_never_worse_than_proportional(
    problem: tuple[list[int], list[float], int, Caps],
) -> None:
    n, weights, budget, caps = problem
    x = allocate(n, weights, budget, caps)
    baseline = proportional_baseline(weights, budget, caps)
    assert x.sum() == baseline.sum()
    assert (baseline >= 0).all()
    if caps is not None:
        assert all(c is None or b <= c for b, c in zip(baseline, caps, strict=True))
    assume(sum(n) + x.sum() > 0)
    assert objective(n, x, weights) <= objective(n, baseline, weights) + 1e-13


# ----------------------------------------------------------------------------- plan


def test_plan_on_frames() -> None:
    observed = pl.DataFrame({"sex": ["M", "F", "O"], "n": [600, 300, 10]})
    reference = pl.DataFrame({"sex": ["M", "F"], "ref_weight": [1, 1]})
    result = plan(observed, reference, ["sex"], 500)
    assert result.cells.columns == [
        "sex", "n", "ref_share", "x", "x_proportional", "target", "share_after",
    ]  # fmt: skip
    # F reaches parity with M at 600 (300 more); the other 200 split evenly: F 400, M 100.
    assert result.cells.select("sex", "x", "x_proportional", "target").rows() == [
        ("M", 100, 250, 700),
        ("F", 400, 250, 700),
        ("O", 0, 0, 10),
    ]
    assert result.allocated == 500 and result.unallocated == 0
    assert result.jsd_before == pytest.approx(divergence(observed, reference, ["sex"])["jsd"])
    assert result.jsd_after == pytest.approx(jensenshannon([700, 700, 10], [1, 1, 0], base=2))
    assert result.jsd_after_proportional == pytest.approx(
        jensenshannon([850, 550, 10], [1, 1, 0], base=2)
    )
    assert result.jsd_after is not None and result.jsd_after_proportional is not None
    assert result.jsd_after < result.jsd_after_proportional < (result.jsd_before or 0)


def test_plan_with_caps_frame() -> None:
    observed = pl.DataFrame({"g": ["A", "B", "C"], "n": [0, 0, 0]})
    reference = pl.DataFrame({"g": ["A", "B", "C"], "ref_weight": [1, 1, 1]})
    # B's caps are summed (3 + 4), C has a null cap (uncapped), A is absent (takes none).
    caps = pl.DataFrame({"g": ["B", "B", "C"], "cap": [3, 4, None]})
    result = plan(observed, reference, ["g"], 30, caps)
    assert result.cells["x"].to_list() == [0, 7, 23]
    assert result.cells["x_proportional"].to_list() == [0, 7, 23]
    tight = plan(observed, reference, ["g"], 30, caps.with_columns(pl.col("cap").fill_null(5)))
    assert tight.allocated == 12 and tight.unallocated == 18


def test_plan_without_data() -> None:
    observed = pl.DataFrame({"g": [], "n": []}, schema={"g": pl.String, "n": pl.Int64})
    reference = pl.DataFrame({"g": ["A", "B"], "ref_weight": [1, 3]})
    result = plan(observed, reference, ["g"], 8)
    assert result.jsd_before is None
    assert result.cells["x"].to_list() == [2, 6]
    assert result.jsd_after == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------------------- institutions

CONTRIBUTIONS = pl.DataFrame(
    {
        "institution_id": ["A", "B", "B", "A"],
        "state": ["KA", "KA", "OD", "TN"],
        "n": [30, 10, 5, 0],  # A's zero row in TN does not make TN reachable
    }
)
ALLOCATION = pl.DataFrame({"state": ["KA", "OD", "MH", "TN"], "x": [7, 3, 4, 0]})


def test_split_in_proportion_to_contribution() -> None:
    split = split_across_institutions(ALLOCATION, CONTRIBUTIONS, ["state"])
    # KA: 7 × 30/40 = 5.25, 7 × 10/40 = 1.75 → 5, 1 and the spare unit to B (0.75 > 0.25).
    assert split.rows() == [("KA", "A", 5), ("KA", "B", 2), ("OD", "B", 3), ("MH", None, 4)]


def test_capacity_by_cell_divides_each_partner_once() -> None:
    capacity = pl.DataFrame({"institution_id": ["A", "B", "C"], "capacity": [4, 6, 9]})
    caps = capacity_by_cell(CONTRIBUTIONS, capacity, ["state"])
    # A reaches only KA; B's 6 split 10:5 over KA and OD; C has contributed nowhere.
    assert caps.rows() == [("KA", "A", 4), ("KA", "B", 4), ("OD", "B", 2)]


def test_split_with_capacity_never_exceeds_it() -> None:
    capacity = pl.DataFrame({"institution_id": ["A", "B"], "capacity": [4, 6]})
    split = split_across_institutions(ALLOCATION, CONTRIBUTIONS, ["state"], capacity)
    # KA: 7 over caps 4:4 → 3.5 each; the tie goes to A. OD: 3 > B's 2 there, 1 unassigned.
    assert split.rows() == [
        ("KA", "A", 4),
        ("KA", "B", 3),
        ("OD", "B", 2),
        ("OD", None, 1),
        ("MH", None, 4),
    ]


def test_split_refuses_duplicated_capacity() -> None:
    capacity = pl.DataFrame({"institution_id": ["A", "A"], "capacity": [4, 6]})
    with pytest.raises(ValueError, match="twice"):
        split_across_institutions(ALLOCATION, CONTRIBUTIONS, ["state"], capacity)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("PQRS"),
            st.sampled_from("abc"),
            st.sampled_from("MF"),
            st.integers(0, 300),
        ),
        max_size=20,
    ),
    st.dictionaries(
        st.tuples(st.sampled_from("abcd"), st.sampled_from("MF")), st.integers(0, 10_000)
    ),
    st.one_of(st.none(), st.dictionaries(st.sampled_from("PQRST"), st.integers(0, 5_000))),
)
def test_split_sums_exactly_to_the_cell_allocation(
    rows: list[tuple[str, str, str, int]],
    allocation: dict[tuple[str, str], int],
    capacities: dict[str, int] | None,
) -> None:
    contributions = pl.DataFrame(
        rows,
        schema={"institution_id": pl.String, "state": pl.String, "sex": pl.String, "n": pl.Int64},
        orient="row",
    )
    cells = pl.DataFrame(
        [(s, g, x) for (s, g), x in allocation.items()],
        schema={"state": pl.String, "sex": pl.String, "x": pl.Int64},
        orient="row",
    )
    capacity = None
    if capacities is not None:
        capacity = pl.DataFrame(
            {"institution_id": list(capacities), "capacity": list(capacities.values())},
            schema={"institution_id": pl.String, "capacity": pl.Int64},
        )
    dims = ["state", "sex"]
    split = split_across_institutions(cells, contributions, dims, capacity)
    per_cell = {(s, g): x for s, g, x in split.group_by(dims).agg(pl.col("x").sum()).iter_rows()}
    assert per_cell == {cell: x for cell, x in allocation.items() if x > 0}
    assert (split["x"] > 0).all()
    reach = {(i, s, g) for i, s, g, n in rows if n > 0}
    for state, sex, institution, _ in split.iter_rows():
        assert institution is None or (institution, state, sex) in reach
    if capacities is not None:
        per_institution = (
            split.drop_nulls("institution_id").group_by("institution_id").agg(pl.col("x").sum())
        )
        for institution, used in per_institution.iter_rows():
            assert used <= capacities[institution]


# ----------------------------------------------------------------------------- forecast


def test_forecast_month() -> None:
    # 100 now, target 160, 20 a month: 120, 140, 160 → reached in the third month after Nov 2026.
    assert months_to_target(100, 160, 20) == 3
    assert forecast_month(100, 160, 20, date(2026, 11, 1)) == date(2027, 2, 1)
    assert forecast_month(100, 161, 20, date(2026, 11, 15)) == date(2027, 3, 1)
    assert forecast_month(200, 160, 0, date(2026, 11, 1)) == date(2026, 11, 1)
    assert forecast_month(100, 160, 0, date(2026, 11, 1)) is None
    # 7/0.7 is 10.000000000000002 in floats: still 10 months.
    assert months_to_target(0, 7, 0.7) == 10
    with pytest.raises(ValueError):
        months_to_target(0, 7, -1)


def test_js_distance_after() -> None:
    assert js_distance_after([3, 0], [0, 3], [1, 1]) == 0.0
    assert js_distance_after([4, 0], [0, 0], [1, 1]) == pytest.approx(
        jensenshannon([1, 0], [1, 1], base=2)
    )
    assert js_distance_after([0, 0], [0, 0], [1, 1]) is None
