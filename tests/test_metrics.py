"""Known-answer and property tests for dashboard.metrics (METRICS.md, representation metrics)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from dashboard.metrics import (
    align_cells,
    divergence,
    jensen_shannon_distance,
    jsd_over_time,
    representation_table,
    shortfall,
    wilson_interval,
)

# ----------------------------------------------------------------------------- Wilson interval

# n = 30, N = 100, z = 1.96, by hand:
#   p = 0.3, z² = 3.8416, z²/N = 0.038416, denominator 1 + z²/N = 1.038416
#   centre = (p + z²/2N) / 1.038416 = (0.3 + 0.019208) / 1.038416 = 0.3073989614952004
#   half   = z·√(p(1−p)/N + z²/4N²) / 1.038416 = 1.96·√(0.0021 + 0.00009604) / 1.038416
#          = 1.96 · 0.046861924843096234 / 1.038416 = 0.08845142283291919
#   low = 0.2189475386622812, high = 0.3958503843281196
WILSON_30_100 = (0.2189475386622812, 0.3958503843281196)
# n = 400, N = 1000: centre 0.4003826898586391, half 0.030308449519261629
WILSON_400_1000 = (0.3700742403393774, 0.4306911393779007)
# n = 0, N = 20: centre = half = (z²/2N)/(1 + z²/N) = 0.09604/1.19208 = 0.0805650627474666
WILSON_0_20 = (0.0, 0.1611301254949332)


def test_wilson_hand_computed() -> None:
    low, high = wilson_interval(30, 100)
    assert float(low) == pytest.approx(WILSON_30_100[0], abs=1e-9)
    assert float(high) == pytest.approx(WILSON_30_100[1], abs=1e-9)


def test_wilson_is_vectorised_and_handles_edges() -> None:
    low, high = wilson_interval([30, 400, 0, 20, 0], [100, 1000, 20, 20, 0])
    np.testing.assert_allclose(low[:3], [WILSON_30_100[0], WILSON_400_1000[0], 0.0], atol=1e-9)
    np.testing.assert_allclose(high[:3], [WILSON_30_100[1], WILSON_400_1000[1], WILSON_0_20[1]])
    # n = N mirrors n = 0: (1 − 0.16113…, 1).
    assert low[3] == pytest.approx(1.0 - WILSON_0_20[1], abs=1e-9)
    assert high[3] == 1.0
    assert math.isnan(low[4]) and math.isnan(high[4])


def test_wilson_z_changes_width() -> None:
    # z = 1: centre (0.3 + 0.005)/1.01 = 0.301980198…, half √(0.0021 + 0.000025)/1.01
    low, high = wilson_interval(30, 100, z=1.0)
    half = math.sqrt(0.0021 + 0.000025) / 1.01
    assert float(low) == pytest.approx(0.305 / 1.01 - half, abs=1e-12)
    assert float(high) == pytest.approx(0.305 / 1.01 + half, abs=1e-12)


def test_wilson_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson_interval(5, 4)
    with pytest.raises(ValueError):
        wilson_interval(-1, 4)


# ----------------------------------------------------------------------------- representation


def two_cells(
    n: int, total: int, q: float, *, tau: float = 0.8, n_min: int = 50
) -> dict[str, object]:
    """Row of cell A when A holds n of total patients and has reference share q."""
    observed = pl.DataFrame({"g": ["A", "B"], "n": [n, total - n]})
    reference = pl.DataFrame({"g": ["A", "B"], "ref_weight": [q, 1.0 - q]})
    table = representation_table(observed, reference, ["g"], tau=tau, n_min=n_min)
    return table.row(0, named=True)


def test_table_columns_and_ratio_interval() -> None:
    row = two_cells(30, 100, 0.5)
    assert list(row) == [
        "g", "n", "share", "ref_share", "rr", "rr_low", "rr_high", "flag", "shortfall",
    ]  # fmt: skip
    assert row["share"] == pytest.approx(0.3)
    assert row["ref_share"] == pytest.approx(0.5)
    assert row["rr"] == pytest.approx(0.6)
    assert row["rr_low"] == pytest.approx(WILSON_30_100[0] / 0.5, abs=1e-9)
    assert row["rr_high"] == pytest.approx(WILSON_30_100[1] / 0.5, abs=1e-9)


@pytest.mark.parametrize(
    ("n", "total", "q", "flag"),
    [
        # p = 0.06, rr = 0.3; Wilson (0.0469, 0.0766) / 0.2 → (0.23, 0.38) < 0.8
        (60, 1000, 0.2, "under"),
        # p = 0.6, rr = 3; interval (0.569, 0.630) / 0.2 → lower 2.85 > 1.25
        (600, 1000, 0.2, "over"),
        # p = 0.6, rr = 0.75 < 0.8, but Wilson high 0.6906 / 0.8 = 0.863 reaches past 0.8
        (60, 100, 0.8, "uncertain"),
        # p = 0.7, rr = 1.4 > 1.25, but Wilson low 0.6042 / 0.5 = 1.208 reaches below 1.25
        (70, 100, 0.5, "uncertain"),
        # rr = 1.1, inside [0.8, 1.25] although the interval (0.90, 1.29) is wide
        (55, 100, 0.5, "ok"),
        # rr exactly τ = 0.8 lies inside the closed band; rr_high 0.861 > τ so not under
        (400, 1000, 0.5, "ok"),
        # would be under (rr 0.098) and over (rr 9.8), but n = 49 < n_min = 50
        (49, 1000, 0.5, "insufficient"),
        (49, 50, 0.1, "insufficient"),
        (0, 1000, 0.5, "insufficient"),
        # n = 50 is enough: p = 0.05, rr = 0.1 → under
        (50, 1000, 0.5, "under"),
    ],
)
def test_flags(n: int, total: int, q: float, flag: str) -> None:
    assert two_cells(n, total, q)["flag"] == flag


def test_boundary_case_is_exactly_tau() -> None:
    row = two_cells(400, 1000, 0.5)
    assert row["rr"] == 0.8
    assert row["rr_high"] == pytest.approx(WILSON_400_1000[1] / 0.5, abs=1e-9)


def test_tau_is_configurable() -> None:
    # rr = 0.75 with interval (0.627, 0.863): uncertain at τ 0.8, ok at τ 0.7 (band 0.7–1.43),
    # under at τ 0.9 (0.863 < 0.9).
    assert two_cells(60, 100, 0.8)["flag"] == "uncertain"
    assert two_cells(60, 100, 0.8, tau=0.7)["flag"] == "ok"
    assert two_cells(60, 100, 0.8, tau=0.9)["flag"] == "under"


def test_n_min_is_configurable() -> None:
    assert two_cells(49, 1000, 0.5, n_min=10)["flag"] == "under"
    assert two_cells(60, 1000, 0.2, n_min=61)["flag"] == "insufficient"


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError):
        two_cells(60, 100, 0.8, tau=1.2)
    with pytest.raises(ValueError):
        two_cells(60, 100, 0.8, tau=0.0)


def test_all_reference_cells_appear_and_unreferenced_cells_follow() -> None:
    observed = pl.DataFrame({"sex": ["F", "O", "M"], "n": [300, 10, 600]})
    reference = pl.DataFrame({"sex": ["M", "F", "X"], "ref_weight": [500, 450, 50]})
    table = representation_table(observed, reference, ["sex"])
    assert table.get_column("sex").to_list() == ["M", "F", "X", "O"]
    assert table.get_column("n").to_list() == [600, 300, 0, 10]
    np.testing.assert_allclose(
        table.get_column("share").to_numpy(), np.array([600, 300, 0, 10]) / 910
    )
    assert table.get_column("ref_share").to_list()[:3] == pytest.approx([0.5, 0.45, 0.05])
    unreferenced = table.row(3, named=True)
    assert unreferenced["ref_share"] is None and unreferenced["rr"] is None
    assert unreferenced["shortfall"] is None
    # n = 10 < n_min: insufficient overrides no_reference.
    assert unreferenced["flag"] == "insufficient"
    # With n_min lowered the missing reference shows.
    lowered = representation_table(observed, reference, ["sex"], n_min=5)
    assert lowered.get_column("flag").to_list() == [
        "over",
        "uncertain",
        "insufficient",
        "no_reference",
    ]


def test_reference_and_observed_are_summed_per_cell() -> None:
    observed = pl.DataFrame(
        {"state": ["KA", "KA", "OD"], "site": ["a", "b", "c"], "n": [40, 20, 40]}
    )
    reference = pl.DataFrame(
        {"state": ["KA", "KA", "OD", "OD"], "sex": ["M", "F", "M", "F"], "ref_weight": [3, 3, 2, 2]}
    )
    table = representation_table(observed, reference, ["state"], n_min=0)
    assert table.select("state", "n", "ref_share").rows() == [("KA", 60, 0.6), ("OD", 40, 0.4)]
    assert table.get_column("rr").to_list() == pytest.approx([1.0, 1.0])


def test_shortfall_hand_computed() -> None:
    # q_A = 3/10, n_A = 20, N = 100 (no_reference cell O included: N counts every known value).
    # x = ceil((0.3·100 − 20) / (1 − 0.3)) = ceil(14.2857…) = 15:
    # (20 + 15)/(100 + 15) = 0.3043 ≥ 0.3 while (20 + 14)/(114) = 0.2982 < 0.3.
    # Had N left out the 10 unreferenced patients: ceil((27 − 20)/0.7) = 10, which is wrong.
    observed = pl.DataFrame({"g": ["A", "B", "O"], "n": [20, 70, 10]})
    reference = pl.DataFrame({"g": ["A", "B"], "ref_weight": [3, 7]})
    table = representation_table(observed, reference, ["g"])
    assert table.get_column("shortfall").to_list() == [15, 0, None]
    assert (20 + 15) / 115 >= 0.3 > (20 + 14) / 114


def test_shortfall_exact_integers_are_not_overshot() -> None:
    # q = 0.2, N = 57, n = 9: (11.4 − 9)/0.8 = 3 exactly; floats give 3.0000000000000004.
    assert (0.2 * 57 - 9) / 0.8 > 3
    observed = pl.DataFrame({"g": ["A", "B"], "n": [9, 48]})
    reference = pl.DataFrame({"g": ["A", "B"], "ref_weight": [1, 4]})
    assert representation_table(observed, reference, ["g"])["shortfall"][0] == 3
    assert (9 + 3) / (57 + 3) == 0.2
    # q = 0.5, N = 100, n = 40: (50 − 40)/0.5 = 20.
    assert shortfall([40], [0.5], 100.0).tolist() == [20.0]


def test_shortfall_when_one_cell_holds_the_whole_reference() -> None:
    assert shortfall([10, 10], [1.0, 1.0], 10.0).tolist() == [0.0, 0.0]
    assert math.isnan(shortfall([5], [1.0], 10.0)[0])


def test_no_data_at_all() -> None:
    observed = pl.DataFrame({"g": [], "n": []}, schema={"g": pl.String, "n": pl.Int64})
    reference = pl.DataFrame({"g": ["A", "B"], "ref_weight": [1, 3]})
    table = representation_table(observed, reference, ["g"], n_min=0)
    assert table.get_column("n").to_list() == [0, 0]
    for column in ("share", "rr", "rr_low", "rr_high"):
        assert table.get_column(column).to_list() == [None, None]
    assert table.get_column("flag").to_list() == ["insufficient", "insufficient"]
    assert table.get_column("shortfall").to_list() == [0, 0]


def test_zero_weight_reference_cell() -> None:
    observed = pl.DataFrame({"g": ["A", "Z"], "n": [100, 60]})
    reference = pl.DataFrame({"g": ["A", "Z", "Y"], "ref_weight": [1.0, 0.0, 0.0]})
    table = representation_table(observed, reference, ["g"], n_min=0)
    z_row, y_row = table.row(1, named=True), table.row(2, named=True)
    assert z_row["rr"] == math.inf and z_row["flag"] == "over"
    assert y_row["rr"] is None and y_row["flag"] == "ok"


def test_unknowns_and_bad_input_are_refused() -> None:
    reference = pl.DataFrame({"g": ["A"], "ref_weight": [1]})
    with pytest.raises(ValueError, match="unknowns"):
        representation_table(pl.DataFrame({"g": ["A", None], "n": [1, 2]}), reference, ["g"])
    with pytest.raises(ValueError, match="negative"):
        representation_table(pl.DataFrame({"g": ["A"], "n": [-1]}), reference, ["g"])
    with pytest.raises(ValueError, match="lacks"):
        representation_table(pl.DataFrame({"h": ["A"], "n": [1]}), reference, ["g"])
    with pytest.raises(ValueError, match="positive"):
        representation_table(
            pl.DataFrame({"g": ["A"], "n": [1]}), reference.with_columns(ref_weight=0), ["g"]
        )


# ----------------------------------------------------------------------------- divergence

SCIPY_CASES = [
    ([0.5, 0.5], [0.5, 0.5]),
    ([1.0, 0.0], [0.0, 1.0]),
    ([0.2, 0.3, 0.5], [0.3, 0.3, 0.4]),
    ([10, 0, 5, 1], [1, 2, 3, 4]),  # unnormalised, with a zero
    ([600, 300, 0, 10], [0.5, 0.45, 0.05, 0.0]),
]


@pytest.mark.parametrize(("p", "q"), SCIPY_CASES)
def test_jsd_matches_scipy(p: list[float], q: list[float]) -> None:
    expected = jensenshannon(p, q, base=2)
    assert jensen_shannon_distance(p, q) == pytest.approx(expected, abs=1e-12)


def test_jsd_known_values() -> None:
    assert jensen_shannon_distance([1, 1], [2, 2]) == 0.0
    assert jensen_shannon_distance([1, 0], [0, 1]) == pytest.approx(1.0, abs=1e-15)
    # p = (1, 0), q = (½, ½): m = (¾, ¼); JS = ½·log2(4/3) + ½·(½·log2(2/3) + ½·log2 2)
    js = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5)
    assert jensen_shannon_distance([1, 0], [1, 1]) == pytest.approx(math.sqrt(js), abs=1e-15)


@given(
    # counts and population weights: whole numbers (subnormal floats make scipy's own sqrt NaN)
    st.lists(
        st.tuples(st.integers(0, 10**7), st.integers(0, 10**9)), min_size=1, max_size=30
    ).filter(lambda pairs: sum(a for a, _ in pairs) > 0 and sum(b for _, b in pairs) > 0)
)
def test_jsd_equals_scipy_property(pairs: list[tuple[float, float]]) -> None:
    p, q = zip(*pairs, strict=True)
    assert jensen_shannon_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    assert 0.0 <= jensen_shannon_distance(p, q) <= 1.0


def test_jsd_refuses_bad_vectors() -> None:
    with pytest.raises(ValueError):
        jensen_shannon_distance([0, 0], [1, 1])
    with pytest.raises(ValueError):
        jensen_shannon_distance([1, -1], [1, 1])
    with pytest.raises(ValueError):
        jensen_shannon_distance([1, 2, 3], [1, 1])


def test_divergence_over_joint_cells() -> None:
    observed = pl.DataFrame(
        {
            "state": ["KA", "KA", "OD", "MH"],
            "sex": ["M", "F", "M", "M"],
            "n": [50, 30, 20, 7],
        }
    )
    reference = pl.DataFrame(
        {
            "state": ["KA", "KA", "OD", "OD"],
            "sex": ["M", "F", "M", "F"],
            "ref_weight": [30, 30, 20, 20],
        }
    )
    result = divergence(observed, reference, ["state", "sex"])
    # Cells KA-M, KA-F, OD-M, OD-F, MH-M; OD-F unseen, MH-M absent from the reference.
    expected = jensenshannon([50, 30, 20, 0, 7], [30, 30, 20, 20, 0], base=2)
    assert result["jsd"] == pytest.approx(expected, abs=1e-12)
    assert result["representativeness"] == pytest.approx(1 - expected, abs=1e-12)
    assert result["n"] == 107
    by_state = divergence(observed, reference, ["state"])
    assert by_state["jsd"] == pytest.approx(jensenshannon([80, 20, 7], [60, 40, 0], base=2))


def test_divergence_without_data_and_dimension_limit() -> None:
    reference = pl.DataFrame({"a": ["x"], "b": ["x"], "c": ["x"], "d": ["x"], "e": ["x"]})
    reference = reference.with_columns(ref_weight=pl.lit(1))
    empty = reference.rename({"ref_weight": "n"}).with_columns(n=pl.lit(0))
    assert divergence(empty, reference, ["a", "b", "c", "d"]) == {
        "jsd": None, "representativeness": None, "n": 0,
    }  # fmt: skip
    with pytest.raises(ValueError, match="at most 4"):
        divergence(empty, reference, ["a", "b", "c", "d", "e"])


def test_jsd_over_time_is_cumulative() -> None:
    reference = pl.DataFrame({"g": ["A", "B", "C"], "ref_weight": [2, 1, 1]})
    monthly = pl.DataFrame(
        {
            "month": ["2025-02", "2025-01", "2025-01", "2025-03", "2025-03"],
            "g": ["B", "A", "A", "C", "D"],
            "n": [5, 3, 4, 2, 1],
        }
    )
    result = jsd_over_time(monthly, reference, ["g"])
    assert result.get_column("month").to_list() == ["2025-01", "2025-02", "2025-03"]
    assert result.get_column("n").to_list() == [7, 12, 15]
    q = [2, 1, 1, 0]  # cells A, B, C, then D which the reference lacks
    expected = [
        jensenshannon([7, 0, 0, 0], q, base=2),
        jensenshannon([7, 5, 0, 0], q, base=2),
        jensenshannon([7, 5, 2, 1], q, base=2),
    ]
    np.testing.assert_allclose(result.get_column("jsd").to_numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(
        result.get_column("representativeness").to_numpy(), 1 - np.array(expected), atol=1e-12
    )
    # The last month agrees with the one-shot divergence of all the data.
    assert result["jsd"][-1] == pytest.approx(divergence(monthly, reference, ["g"])["jsd"])


def test_align_cells_fills_both_sides() -> None:
    observed = pl.DataFrame({"g": ["C", "A"], "n": [4, 6]})
    reference = pl.DataFrame({"g": ["A", "B"], "ref_weight": [1, 3]})
    cells = align_cells(observed, reference, ["g"])
    assert cells.rows() == [("A", 6, 0.25), ("B", 0, 0.75), ("C", 4, None)]


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.sampled_from("ABCDEFG"), st.integers(0, 500), min_size=1),
    st.dictionaries(st.sampled_from("ABCDEFG"), st.integers(1, 100), min_size=1),
    st.floats(0.5, 1.0),
)
def test_table_properties(obs: dict[str, int], ref: dict[str, int], tau: float) -> None:
    observed = pl.DataFrame({"g": list(obs), "n": list(obs.values())})
    reference = pl.DataFrame({"g": list(ref), "ref_weight": list(ref.values())})
    table = representation_table(observed, reference, ["g"], tau=tau, n_min=20)
    assert set(table["g"]) == set(obs) | set(ref)
    assert table["n"].sum() == sum(obs.values())
    total = sum(obs.values())
    if total == 0:
        assert set(table["flag"]) == {"insufficient"}
        return
    for row in table.iter_rows(named=True):
        if row["n"] < 20:
            assert row["flag"] == "insufficient"
        elif row["ref_share"] is None:
            assert row["flag"] == "no_reference"
        else:
            assert row["rr_low"] <= row["rr"] <= row["rr_high"]
            expected = (
                "under" if row["rr_high"] < tau
                else "over" if row["rr_low"] > 1 / tau
                else "ok" if tau <= row["rr"] <= 1 / tau
                else "uncertain"
            )  # fmt: skip
            assert row["flag"] == expected
        if row["ref_share"] is not None and row["ref_share"] < 1:
            x = row["shortfall"]
            q = row["ref_share"]
            # x is the least number of patients that lifts the cell to its share.
            assert (row["n"] + x) / (total + x) >= q - 1e-12
            if x > 0:
                assert (row["n"] + x - 1) / (total + x - 1) < q
