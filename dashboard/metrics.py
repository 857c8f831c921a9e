"""Representation metrics of shared/spec/METRICS.md as pure functions over polars frames.

Conventions shared by every function here:

* ``observed`` holds the dimension columns and ``n``, the count per cell (patients, or studies
  when the user picks that unit). Rows with an unknown value have been removed by the caller, who
  reports them as the missing rate; a null in a dimension column is refused, never dropped.
  Repeated cells are summed, so a finer table (per institution, per month) can be passed as is.
* ``reference`` holds the dimension columns and ``ref_weight`` (population, cases or a target
  share). Repeated cells are summed, so a state × age × sex population also serves ``["state"]``.
  Weights are normalised to q_i with Σ q = 1 over the reference cells.
* N = Σ n over every observed cell, including cells the reference does not list: METRICS.md
  defines N over the cells with a known value, and such a cell's value is known.

No Streamlit, no database: the pages and the CLI call these same functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.special import rel_entr

Z_95 = 1.96
MAX_JOINT_DIMS = 4

UNDER = "under"
OVER = "over"
UNCERTAIN = "uncertain"
OK = "ok"
INSUFFICIENT = "insufficient"
NO_REFERENCE = "no_reference"
FLAGS: tuple[str, ...] = (UNDER, OVER, UNCERTAIN, OK, INSUFFICIENT, NO_REFERENCE)

# Relative slack when taking the ceiling of a float that is an integer in exact arithmetic
# (e.g. (q·N − n)/(1 − q) = 20 computed as 20.000000000000004): without it the shortfall
# would overshoot by one patient.
_CEIL_SLACK = 1e-12

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


class DivergenceResult(TypedDict):
    """Jensen–Shannon distance of the observed distribution from the reference."""

    jsd: float | None
    """Base-2 JS distance in [0, 1]; None when there is no data (N = 0)."""
    representativeness: float | None
    """1 − jsd."""
    n: int
    """N, the observed total the distance was computed over."""


# --------------------------------------------------------------------------- intervals


def wilson_interval(
    n: ArrayLike, total: ArrayLike, z: float = Z_95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for p = n / total, element-wise; NaN where total = 0.

    low, high = (p + z²/2N ± z·√(p(1 − p)/N + z²/4N²)) / (1 + z²/N), clipped to [0, 1].
    """
    n_arr, total_arr = np.broadcast_arrays(
        np.asarray(n, dtype=np.float64), np.asarray(total, dtype=np.float64)
    )
    if np.any(n_arr < 0) or np.any(n_arr > total_arr):
        raise ValueError("wilson_interval needs 0 <= n <= total")
    if z <= 0:
        raise ValueError("z must be positive")
    with np.errstate(divide="ignore", invalid="ignore"):
        p = n_arr / total_arr
        z2_over_n = z * z / total_arr
        denominator = 1.0 + z2_over_n
        centre = (p + z2_over_n / 2.0) / denominator
        half = z * np.sqrt(p * (1.0 - p) / total_arr + z2_over_n / (4.0 * total_arr)) / denominator
    # At n = 0 and n = N the bounds are exactly 0 and 1; rounding would leave 1e-17 off.
    low = np.where(n_arr == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    high = np.where(n_arr == total_arr, 1.0, np.clip(centre + half, 0.0, 1.0))
    empty = total_arr == 0
    low, high = np.where(empty, np.nan, low), np.where(empty, np.nan, high)
    return low, high


# --------------------------------------------------------------------------- cell alignment


def sum_by_cell(frame: pl.DataFrame, dims: Sequence[str], value: str, name: str) -> pl.DataFrame:
    """``frame`` reduced to one row per cell of ``dims`` with ``value`` summed.

    Refuses missing columns, null dimension values (unknowns are the caller's to report) and
    null or negative values; ``name`` labels the frame in the error message.
    """
    missing = [c for c in (*dims, value) if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}")
    if frame.select(pl.any_horizontal(pl.col(list(dims)).is_null()).any()).item():
        raise ValueError(
            f"{name} has null dimension values: remove unknowns and report them separately"
        )
    values = frame.get_column(value)
    if values.null_count():
        raise ValueError(f"{name}.{value} has nulls")
    if (values < 0).any():
        raise ValueError(f"{name}.{value} has negative values")
    return frame.group_by(list(dims), maintain_order=True).agg(pl.col(value).sum())


def _check_dims(dims: Sequence[str]) -> list[str]:
    dims = list(dims)
    if not dims:
        raise ValueError("at least one dimension is needed")
    if len(set(dims)) != len(dims):
        raise ValueError(f"repeated dimension in {dims}")
    if len(dims) > MAX_JOINT_DIMS:
        raise ValueError(f"at most {MAX_JOINT_DIMS} joint dimensions, got {len(dims)}")
    return dims


def align_cells(
    observed: pl.DataFrame, reference: pl.DataFrame, dims: Sequence[str]
) -> pl.DataFrame:
    """One row per cell: every reference cell (n = 0 when unseen), then observed-only cells.

    Columns: dims…, ``n`` (Int64), ``ref_share`` (q_i, Float64, null where the reference lacks
    the cell). Reference cells keep the reference's order, observed-only cells follow in order.
    """
    dims = _check_dims(dims)
    obs = sum_by_cell(observed, dims, "n", "observed").with_row_index("_obs_order")
    ref = sum_by_cell(reference, dims, "ref_weight", "reference").with_row_index("_ref_order")
    if ref.height == 0:
        raise ValueError("reference has no cells")
    total_weight = float(ref.get_column("ref_weight").sum())
    if not total_weight > 0 or not math.isfinite(total_weight):
        raise ValueError("reference weights must have a positive, finite total")
    cells = ref.join(obs, on=dims, how="full", coalesce=True).sort(
        "_ref_order", "_obs_order", nulls_last=True
    )
    # Divided in numpy: polars 2.1 divides floats through the reciprocal (49/49 = 0.9999…).
    weights = cells.get_column("ref_weight").cast(pl.Float64).fill_null(np.nan).to_numpy()
    return cells.select(
        *dims,
        pl.col("n").fill_null(0).cast(pl.Int64),
        pl.Series("ref_share", weights / total_weight, nan_to_null=True),
    )


# --------------------------------------------------------------------------- representation


def _flags(
    n: FloatArray,
    total: float,
    q: FloatArray,
    rr: FloatArray,
    rr_low: FloatArray,
    rr_high: FloatArray,
    tau: float,
    n_min: int,
) -> list[str]:
    flag = np.full(n.shape, OK, dtype=object)
    with np.errstate(invalid="ignore"):
        flag[(rr < tau) | (rr > 1.0 / tau)] = UNCERTAIN
        flag[rr_high < tau] = UNDER
        flag[rr_low > 1.0 / tau] = OVER
    flag[np.isnan(q)] = NO_REFERENCE
    flag[(n < n_min) | (total == 0)] = INSUFFICIENT
    return flag.tolist()


def shortfall(n: ArrayLike, q: ArrayLike, total: float) -> FloatArray:
    """x_i = ceil((q_i·N − n_i) / (1 − q_i)) where positive, else 0 (METRICS.md, Shortfall).

    The patients cell i alone would need so that (n_i + x_i) / (N + x_i) ≥ q_i, with N the
    current total. NaN where q_i is unknown, or q_i = 1 while other cells hold data (then no
    number of patients suffices).
    """
    n_arr = np.asarray(n, dtype=np.float64)
    q_arr = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Scale the slack with q·N, not with the result: q·N − n cancels and keeps q·N's error.
        raw = (q_arr * total - n_arr) / (1.0 - q_arr)
        slack = _CEIL_SLACK * (1.0 + q_arr * total) / (1.0 - q_arr)
        need = np.maximum(np.ceil(raw - slack), 0.0)
    whole = q_arr >= 1.0
    need = np.where(whole, np.where(n_arr >= total, 0.0, np.nan), need)
    return np.where(np.isnan(q_arr), np.nan, need)


def representation_table(
    observed: pl.DataFrame,
    reference: pl.DataFrame,
    dims: Sequence[str],
    *,
    tau: float = 0.8,
    n_min: int = 50,
    z: float = Z_95,
) -> pl.DataFrame:
    """Representation ratio, Wilson interval, flag and shortfall per cell (METRICS.md).

    One row per reference cell, unseen ones included with n = 0, then observed cells the
    reference lacks (ref_share, rr… null, flag ``no_reference``). Columns: dims…, n, share,
    ref_share, rr, rr_low, rr_high, flag, shortfall.

    Flags: ``under`` when rr_high < τ, ``over`` when rr_low > 1/τ, ``uncertain`` when rr lies
    outside [τ, 1/τ] but the interval reaches into it, ``ok`` otherwise; ``insufficient`` whenever
    n < n_min, overriding every other flag (``no_reference`` included). With N = 0 shares and
    ratios are null and every cell is ``insufficient``. A reference cell with q = 0 gets rr = inf
    when observed (flag ``over``). Shortfall uses the current N (see :func:`shortfall`).
    """
    if not 0 < tau <= 1:
        raise ValueError("tau must be in (0, 1]")
    if n_min < 0:
        raise ValueError("n_min must be >= 0")
    cells = align_cells(observed, reference, dims)
    n = cells.get_column("n").to_numpy().astype(np.float64)
    q = cells.get_column("ref_share").fill_null(np.nan).to_numpy()
    total = float(n.sum())
    low, high = wilson_interval(n, np.full_like(n, total), z)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = n / total if total > 0 else np.full_like(n, np.nan)
        rr, rr_low, rr_high = share / q, low / q, high / q
    need = shortfall(n, q, total)

    def column(name: str, values: FloatArray) -> pl.Series:
        return pl.Series(name, values, dtype=pl.Float64, nan_to_null=True)

    return cells.select(
        *dims,
        "n",
        column("share", share),
        "ref_share",
        column("rr", rr),
        column("rr_low", rr_low),
        column("rr_high", rr_high),
        pl.Series("flag", _flags(n, total, q, rr, rr_low, rr_high, tau, n_min), dtype=pl.String),
        column("shortfall", need).cast(pl.Int64),
    )


# --------------------------------------------------------------------------- divergence


def _js_distance_rows(p: FloatArray, q: FloatArray) -> FloatArray:
    """Base-2 JS distance of each row of ``p`` from ``q`` (rows normalised, as scipy does).

    Rows summing to 0 give NaN. Same operations, in the same order, as
    scipy.spatial.distance.jensenshannon, so values agree to the last bits.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        p = p / p.sum(axis=-1, keepdims=True)
        q = q / q.sum(axis=-1, keepdims=True)
        m = (p + q) / 2.0
        js = rel_entr(p, m).sum(axis=-1) + rel_entr(q, m).sum(axis=-1)
    js = js / np.log(2.0)
    # Rounding can leave -1e-17 for identical distributions; the distance is then 0.
    return np.sqrt(np.maximum(js / 2.0, 0.0))


def jensen_shannon_distance(p: ArrayLike, q: ArrayLike) -> float:
    """Base-2 Jensen–Shannon distance in [0, 1]; inputs are normalised to sum to 1.

    Equal to ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
    """
    p_arr = np.asarray(p, dtype=np.float64)
    q_arr = np.asarray(q, dtype=np.float64)
    if p_arr.ndim != 1 or p_arr.shape != q_arr.shape:
        raise ValueError("p and q must be 1-d arrays of the same length")
    for name, arr in (("p", p_arr), ("q", q_arr)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0) or not arr.sum() > 0:
            raise ValueError(f"{name} must be finite, non-negative, with a positive sum")
    return float(_js_distance_rows(p_arr, q_arr))


def divergence(
    observed: pl.DataFrame, reference: pl.DataFrame, dims: Sequence[str]
) -> DivergenceResult:
    """JS distance between observed and reference over the joint cells of ``dims`` (≤ 4).

    A cell missing from either side counts as 0 there. With N = 0 the distance is None.
    """
    cells = align_cells(observed, reference, dims)
    n = cells.get_column("n").to_numpy().astype(np.float64)
    q = cells.get_column("ref_share").fill_null(0.0).to_numpy()
    total = int(n.sum())
    if total == 0:
        return {"jsd": None, "representativeness": None, "n": 0}
    jsd = jensen_shannon_distance(n, q)
    return {"jsd": jsd, "representativeness": 1.0 - jsd, "n": total}


def jsd_over_time(
    monthly: pl.DataFrame,
    reference: pl.DataFrame,
    dims: Sequence[str],
    month_col: str = "month",
) -> pl.DataFrame:
    """JS distance of the cumulative data at the end of each month present in ``monthly``.

    ``monthly`` holds ``month_col``, dims… and ``n`` (new patients that month). Returns one row
    per month, ascending: month_col, n (cumulative N), jsd, representativeness.
    """
    if month_col not in monthly.columns:
        raise ValueError(f"monthly lacks column {month_col!r}")
    if monthly.get_column(month_col).null_count():
        raise ValueError(f"monthly.{month_col} has nulls")
    cells = align_cells(monthly, reference, dims).with_row_index("_cell")
    dims = list(dims)
    months = monthly.get_column(month_col).unique().sort()
    counts = (
        monthly.group_by(month_col, *dims)
        .agg(pl.col("n").sum())
        .join(cells.select("_cell", *dims), on=dims, how="inner")
        .join(months.to_frame().with_row_index("_month"), on=month_col, how="inner")
    )
    matrix = np.zeros((months.len(), cells.height), dtype=np.float64)
    np.add.at(
        matrix,
        (counts.get_column("_month").to_numpy(), counts.get_column("_cell").to_numpy()),
        counts.get_column("n").to_numpy(),
    )
    cumulative = np.cumsum(matrix, axis=0)
    q = cells.get_column("ref_share").fill_null(0.0).to_numpy()
    jsd = _js_distance_rows(cumulative, q)
    return pl.DataFrame(
        {
            month_col: months,
            "n": cumulative.sum(axis=1).astype(np.int64),
            "jsd": pl.Series(jsd, nan_to_null=True),
            "representativeness": pl.Series(1.0 - jsd, nan_to_null=True),
        }
    )
