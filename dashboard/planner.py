"""Collection planner of shared/spec/METRICS.md: where the next B patients should come from.

:func:`allocate` returns the integers x ≥ 0, Σx = B, minimising JSD((n + x)/(N + B), q).
With T = N + B fixed and Q_i = q_i·T, the JS divergence is, up to the factor 1/T, the sum over
cells of the convex g_i(c) = ½[c·ln(2c/(c + Q_i)) + Q_i·ln(2Q_i/(c + Q_i))] at c = n_i + x_i.
For a separable convex sum under Σx = B and 0 ≤ x ≤ cap, giving each next patient to the cell
whose term falls most (greedy) is exact, and so is any allocation from which no single
transfer of one patient between two cells lowers the objective.

For large B the greedy's O(B log C) is too slow, so the fast path solves the continuous problem
(g_i'(c) = ½·ln(2c/(c + Q_i)) equal across cells, which gives c_i = clip(s·Q_i, n_i, n_i + cap_i)
for one level s, found by bisection), floors it and greedily places the few remaining patients.
Flooring can leave a cell one patient *above* every integer optimum (terms are more curved
below their optimum than above it, and a large cell whose continuous optimum is a whole number
gets no rounding slack), and the greedy only adds. So a last pass moves single patients from the
cell with the highest last-step cost to the one with the lowest next-step cost while that lowers
the objective; it stops exactly at the integer optimum.

The rest splits the per-cell plan across partner institutions, derives cell caps from stated
capacities, forecasts when a cell reaches its target, and compares with the proportional baseline.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from dashboard.metrics import align_cells, jensen_shannon_distance, sum_by_cell

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Method = Literal["auto", "greedy", "lagrange"]

INSTITUTION = "institution_id"
_LN2 = math.log(2.0)
# Step costs are O(1) numbers; transfers gaining less than this are rounding noise.
_EXCHANGE_TOL = 1e-12
_BISECTION_STEPS = 200


# --------------------------------------------------------------------------- step costs


def _h(c: float) -> float:
    """c·ln(1 + 1/c), continuous at 0."""
    return c * math.log1p(1.0 / c) if c > 0 else 0.0


def _step(c: float, big_q: float) -> float:
    """2·(g(c + 1) − g(c)) for one cell, arranged so that no term is large or cancels badly.

    2Δ = ln 2 − ln(1 + Q/(c + 1)) − h(c + Q) + h(c) with h(c) = c·ln(1 + 1/c); increasing in c,
    always below ln 2 when Q > 0.
    """
    return _LN2 - math.log1p(big_q / (c + 1.0)) - _h(c + big_q) + _h(c)


def _steps(c: FloatArray, big_q: FloatArray) -> FloatArray:
    """Vectorised :func:`_step`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        h_c = np.where(c > 0, c * np.log1p(1.0 / c), 0.0)
        cq = c + big_q
        h_cq = np.where(cq > 0, cq * np.log1p(1.0 / cq), 0.0)
    return _LN2 - np.log1p(big_q / (c + 1.0)) - h_cq + h_c


# --------------------------------------------------------------------------- validation


def _as_counts(values: Sequence[int] | npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be a 1-d sequence of non-negative numbers")
    if np.any(arr != np.floor(arr)):
        raise ValueError(f"{name} must hold whole numbers")
    return arr


def _as_shares(q: Sequence[float] | npt.ArrayLike, size: int | None = None) -> FloatArray:
    arr = np.asarray(q, dtype=np.float64)
    if arr.ndim != 1 or (size is not None and arr.size != size):
        raise ValueError("q must be a 1-d sequence with one share per cell")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or not arr.sum() > 0:
        raise ValueError("q must be finite, non-negative, with a positive sum")
    return arr / arr.sum()


def _as_room(caps: Sequence[int | None] | None, size: int) -> FloatArray:
    """Caps as floats, +inf for an uncapped cell."""
    if caps is None:
        return np.full(size, np.inf)
    if len(caps) != size:
        raise ValueError("caps must have one entry per cell")
    room = np.array([np.inf if c is None else c for c in caps], dtype=np.float64)
    finite = room[np.isfinite(room)]
    if np.any(np.isnan(room)) or np.any(finite < 0) or np.any(finite != np.floor(finite)):
        raise ValueError("caps must be non-negative whole numbers or None")
    return room


def _check_budget(budget: int) -> int:
    if isinstance(budget, bool) or int(budget) != budget or budget < 0:
        raise ValueError("budget must be a non-negative whole number")
    return int(budget)


# --------------------------------------------------------------------------- allocation


def _fill_in_order(room: FloatArray, units: int) -> IntArray:
    """Up to ``units`` handed out in cell order, each cell up to its room."""
    take = np.minimum(room, units)
    before = np.cumsum(take) - take
    return np.clip(units - before, 0, take).astype(np.int64)


def _saturate(room: FloatArray, weighted: npt.NDArray[np.bool_], units: int) -> IntArray | None:
    """When the referenced cells' room cannot take the budget: fill them all, then the q = 0
    cells in order; None when there is a choice to make (the allocators' shared edge case)."""
    usable = float(room[weighted].sum())
    if usable > units:
        return None
    x = np.zeros(room.size, dtype=np.int64)
    x[weighted] = room[weighted]
    x[~weighted] = _fill_in_order(room[~weighted], units - int(usable))
    return x


def _greedy_fill(
    counts: FloatArray, big_q: FloatArray, room: FloatArray, x: IntArray, units: int
) -> None:
    """Add ``units`` patients one at a time to the cell with the cheapest next step (in place)."""
    c_list, q_list, room_list = counts.tolist(), big_q.tolist(), room.tolist()
    x_list = x.tolist()
    open_cells = [i for i in range(len(x_list)) if x_list[i] < room_list[i]]
    first = _steps(counts[open_cells] + x[open_cells], big_q[open_cells]).tolist()
    heap = list(zip(first, open_cells, strict=True))
    heapq.heapify(heap)
    for _ in range(units):
        i = heap[0][1]
        x_list[i] += 1
        if x_list[i] < room_list[i]:
            heapq.heapreplace(heap, (_step(c_list[i] + x_list[i], q_list[i]), i))
        else:
            heapq.heappop(heap)
    x[:] = x_list


def _exchange_repair(counts: FloatArray, big_q: FloatArray, room: FloatArray, x: IntArray) -> int:
    """Move single patients between cells while that lowers the objective; returns the moves.

    Entries are (cost, cell, x at push time) and go stale when the cell's x changes.
    """
    c_list, q_list, room_list = counts.tolist(), big_q.tolist(), room.tolist()
    x_list = x.tolist()
    add: list[tuple[float, int, int]] = []
    remove: list[tuple[float, int, int]] = []

    def push(i: int) -> None:
        xi = x_list[i]
        if xi < room_list[i]:
            heapq.heappush(add, (_step(c_list[i] + xi, q_list[i]), i, xi))
        if xi > 0:
            heapq.heappush(remove, (-_step(c_list[i] + xi - 1, q_list[i]), i, xi))

    for i in range(len(x_list)):
        push(i)
    moves = 0
    while True:
        while add and x_list[add[0][1]] != add[0][2]:
            heapq.heappop(add)
        while remove and x_list[remove[0][1]] != remove[0][2]:
            heapq.heappop(remove)
        if not add or not remove:
            break
        cheapest_add, j, _ = add[0]
        dearest_remove, i, _ = remove[0]
        if -dearest_remove - cheapest_add <= _EXCHANGE_TOL or i == j:
            break
        x_list[i] -= 1
        x_list[j] += 1
        push(i)
        push(j)
        moves += 1
    x[:] = x_list
    return moves


def _lagrange_floor(
    counts: FloatArray, big_q: FloatArray, room: FloatArray, units: int
) -> IntArray:
    """Floor of the continuous optimum, which never places more than ``units`` patients.

    Needs room.sum() > units and big_q > 0. The continuous optimum is
    c_i = clip(s·Q_i, n_i, n_i + room_i) at the level s where Σ(c_i − n_i) = units.
    """

    def added(level: float) -> float:
        return float((np.minimum(np.maximum(level * big_q, counts), counts + room) - counts).sum())

    low, high = 0.0, 1.0  # s = 1 suffices without caps: Σ max(n_i, Q_i) − n_i ≥ T − N = B
    while added(high) < units:
        high *= 2.0
    for _ in range(_BISECTION_STEPS):
        mid = (low + high) / 2.0
        if not low < mid < high:
            break
        if added(mid) <= units:
            low = mid
        else:
            high = mid
    level = np.minimum(np.maximum(low * big_q, counts), counts + room)
    return np.floor(level - counts).astype(np.int64)


def allocate(
    n: Sequence[int] | npt.ArrayLike,
    q: Sequence[float] | npt.ArrayLike,
    budget: int,
    caps: Sequence[int | None] | None = None,
    *,
    method: Method = "auto",
) -> IntArray:
    """Integer x ≥ 0 with Σx = budget minimising JSD((n + x)/(N + budget), q).

    ``q`` is normalised. ``caps`` bounds x_i (None: uncapped). When the caps of the cells with
    q > 0 cannot take the whole budget, those cells are filled to their caps and the rest goes
    to q = 0 cells in order, up to their caps; if even that is not enough, Σx < budget and the
    difference is the unallocated budget. A q = 0 cell never receives a patient otherwise.
    ``method``: "greedy" (one patient at a time, O(B log C)), "lagrange" (bisection, floor,
    greedy remainder, exchange pass) or "auto" (greedy for small budgets). All give the optimum.
    """
    counts = _as_counts(n, "n")
    shares = _as_shares(q, counts.size)
    room = _as_room(caps, counts.size)
    units = _check_budget(budget)

    weighted = shares > 0
    saturated = _saturate(room, weighted, units)
    if saturated is not None:
        return saturated
    x = np.zeros(counts.size, dtype=np.int64)

    cells = np.flatnonzero(weighted)
    sub_n, sub_room = counts[cells], room[cells]
    sub_q = shares[cells] * (counts.sum() + units)
    if method == "greedy" or (method == "auto" and units <= 2 * cells.size):
        sub_x = np.zeros(cells.size, dtype=np.int64)
        _greedy_fill(sub_n, sub_q, sub_room, sub_x, units)
    elif method in ("auto", "lagrange"):
        sub_x = _lagrange_floor(sub_n, sub_q, sub_room, units)
        _greedy_fill(sub_n, sub_q, sub_room, sub_x, units - int(sub_x.sum()))
        _exchange_repair(sub_n, sub_q, sub_room, sub_x)
    else:
        raise ValueError(f"unknown method {method!r}")
    x[cells] = sub_x
    return x


def _largest_remainder(quota: FloatArray, room: FloatArray, total: int) -> IntArray:
    """Integers summing to ``total``: floors of ``quota``, then +1 by largest fraction.

    Needs quota ≤ room and Σquota = total (up to rounding); ties go to the earlier cell.
    """
    base = np.minimum(np.floor(quota), room)
    x = base.astype(np.int64)
    fraction = quota - base
    left = total - int(x.sum())
    if left < 0:  # quotas summing a hair above total: take back from the smallest fractions
        order = np.argsort(fraction, kind="stable")
        x[order[x[order] > 0][:-left]] -= 1
        left = 0
    while left > 0:
        order = np.argsort(-fraction, kind="stable")
        eligible = order[x[order] < room[order]][:left]
        x[eligible] += 1
        fraction[eligible] = -1.0
        left -= eligible.size
    return x


def _capped_proportional(weights: FloatArray, room: FloatArray, total: int) -> IntArray:
    """x_i ∝ w_i, capped by room_i, the excess spread over the others; largest-remainder."""
    ratio = room / weights
    order = np.argsort(ratio, kind="stable")
    sorted_room, sorted_w, sorted_ratio = room[order], weights[order], ratio[order]
    capped_before = np.concatenate(([0.0], np.cumsum(sorted_room)[:-1]))
    weight_after = np.cumsum(sorted_w[::-1])[::-1]
    with np.errstate(invalid="ignore"):
        level = (total - capped_before) / weight_after
    # The first k cells are capped and the rest share what is left; k is the first place where
    # the common level does not push the next cell over its cap.
    k = int(np.flatnonzero(level <= sorted_ratio)[0])
    quota = np.minimum(room, level[k] * weights)
    return _largest_remainder(quota, room, total)


def proportional_baseline(
    q: Sequence[float] | npt.ArrayLike, budget: int, caps: Sequence[int | None] | None = None
) -> IntArray:
    """The budget allocated in proportion to q, largest-remainder rounding, caps respected.

    What a cap cuts off is spread over the other cells in proportion to q; q = 0 cells take
    patients only once every other cell is full, as in :func:`allocate`.
    """
    shares = _as_shares(q)
    room = _as_room(caps, shares.size)
    units = _check_budget(budget)
    weighted = shares > 0
    saturated = _saturate(room, weighted, units)
    if saturated is not None:
        return saturated
    x = np.zeros(shares.size, dtype=np.int64)
    x[weighted] = _capped_proportional(shares[weighted], room[weighted], units)
    return x


def js_distance_after(
    n: Sequence[int] | npt.ArrayLike, x: Sequence[int] | npt.ArrayLike, q: Sequence[float]
) -> float | None:
    """JSD((n + x)/Σ(n + x), q); None when there is nothing to compare."""
    after = np.asarray(n, dtype=np.float64) + np.asarray(x, dtype=np.float64)
    return jensen_shannon_distance(after, q) if after.sum() > 0 else None


# --------------------------------------------------------------------------- frame-level plan


@dataclass(frozen=True)
class PlanResult:
    """A collection plan and how much it improves on the present and on the naive plan."""

    cells: pl.DataFrame
    """dims…, n, ref_share, x (new patients), x_proportional, target (n + x), share_after."""
    budget: int
    allocated: int
    """Σx; below ``budget`` only when caps cannot take it all."""
    jsd_before: float | None
    jsd_after: float | None
    jsd_after_proportional: float | None

    @property
    def unallocated(self) -> int:
        """Budget the caps left without a cell."""
        return self.budget - self.allocated


def _cell_caps(cells: pl.DataFrame, caps: pl.DataFrame, dims: list[str]) -> list[int | None]:
    """Caps aligned to ``cells``: summed per cell, null = uncapped, absent cell = 0."""
    cap = pl.col("cap").cast(pl.Int64)
    if caps.height and (caps.select(cap.min()).item() or 0) < 0:
        raise ValueError("caps must be non-negative")
    per_cell = caps.group_by(dims).agg(
        pl.when(cap.is_null().any()).then(None).otherwise(cap.sum()).alias("cap"),
        pl.lit(True).alias("_listed"),
    )
    aligned = cells.join(per_cell, on=dims, how="left", maintain_order="left")
    listed = aligned.get_column("_listed").fill_null(False).to_list()
    values = aligned.get_column("cap").to_list()
    return [value if is_listed else 0 for is_listed, value in zip(listed, values, strict=True)]


def plan(
    observed: pl.DataFrame,
    reference: pl.DataFrame,
    dims: Sequence[str],
    budget: int,
    caps: pl.DataFrame | None = None,
) -> PlanResult:
    """Optimal and proportional allocation of ``budget`` new patients over the cells of ``dims``.

    Frames as in :mod:`dashboard.metrics`. ``caps`` (dims…, cap) limits new patients per cell;
    rows of one cell are summed (so :func:`capacity_by_cell` output fits), a null cap means
    uncapped, and a cell absent from ``caps`` takes none. Observed cells the reference lacks
    count with q = 0.
    """
    dims = list(dims)
    cells = align_cells(observed, reference, dims)
    n = cells.get_column("n").to_numpy()
    q = cells.get_column("ref_share").fill_null(0.0).to_numpy()
    cell_caps = None
    if caps is not None:
        if "cap" not in caps.columns or any(d not in caps.columns for d in dims):
            raise ValueError("caps needs the dimension columns and 'cap'")
        cell_caps = _cell_caps(cells, caps, dims)
    x = allocate(n, q, budget, cell_caps)
    x_prop = proportional_baseline(q, budget, cell_caps)
    after = n + x
    with np.errstate(invalid="ignore"):
        share_after = after / after.sum()
    table = cells.with_columns(
        pl.Series("x", x),
        pl.Series("x_proportional", x_prop),
        pl.Series("target", after),
        pl.Series("share_after", share_after, nan_to_null=True),
    )
    return PlanResult(
        cells=table,
        budget=_check_budget(budget),
        allocated=int(x.sum()),
        jsd_before=js_distance_after(n, np.zeros_like(n), q),
        jsd_after=js_distance_after(n, x, q),
        jsd_after_proportional=js_distance_after(n, x_prop, q),
    )


# --------------------------------------------------------------------------- institutions


def _split_proportionally(
    frame: pl.DataFrame, group: list[str], total: str, weight: str, out: str, tie: list[str]
) -> pl.DataFrame:
    """Largest-remainder split of ``total`` (constant within a group) in proportion to ``weight``.

    Integer arithmetic throughout, so each group's parts sum to its total exactly; ties in the
    remainder go to the larger weight, then by ``tie`` columns ascending.
    """
    group_weight = pl.col(weight).sum().over(group)
    share = pl.col(total) * pl.col(weight)
    return (
        frame.with_columns(
            (share // group_weight).alias("_base"), (share % group_weight).alias("_rem")
        )
        .with_columns((pl.col(total) - pl.col("_base").sum().over(group)).alias("_left"))
        .sort(
            [*group, "_rem", weight, *tie],
            descending=[False] * len(group) + [True, True] + [False] * len(tie),
        )
        .with_columns(
            (
                pl.col("_base")
                + (pl.int_range(pl.len()).over(group) < pl.col("_left")).cast(pl.Int64)
            ).alias(out)
        )
        .drop("_base", "_rem", "_left")
    )


def _reach(contributions: pl.DataFrame, dims: list[str]) -> pl.DataFrame:
    """dims…, institution_id, n > 0: who has contributed to which cell, and how much."""
    if INSTITUTION not in contributions.columns:
        raise ValueError(f"contributions lacks column {INSTITUTION!r}")
    if contributions.get_column(INSTITUTION).null_count():
        raise ValueError(f"contributions.{INSTITUTION} has nulls")
    return (
        sum_by_cell(contributions, [INSTITUTION, *dims], "n", "contributions")
        .filter(pl.col("n") > 0)
        .with_columns(pl.col("n").cast(pl.Int64))
    )


def capacity_by_cell(
    contributions: pl.DataFrame, capacity: pl.DataFrame, dims: Sequence[str]
) -> pl.DataFrame:
    """Each partner's stated capacity divided over the cells it reaches.

    Returns dims…, institution_id, cap.

    ``capacity``: institution_id, capacity (new patients the partner can add over the plan).
    A partner reaches the cells it has contributed to and its capacity is divided in proportion
    to those past contributions (largest remainder), so summing ``cap`` per cell gives caps for
    :func:`plan` that never count one partner's capacity twice. Partners without a stated
    capacity get none.
    """
    dims = list(dims)
    if {INSTITUTION, "capacity"} - set(capacity.columns):
        raise ValueError(f"capacity needs columns {INSTITUTION!r} and 'capacity'")
    stated = capacity.select(INSTITUTION, pl.col("capacity").cast(pl.Int64))
    if stated.null_count().sum_horizontal().item() or (stated.get_column("capacity") < 0).any():
        raise ValueError("capacity must hold a non-negative number for every institution")
    if stated.get_column(INSTITUTION).is_duplicated().any():
        raise ValueError("capacity lists an institution twice")
    return (
        _split_proportionally(
            _reach(contributions, dims).join(stated, on=INSTITUTION, how="inner"),
            group=[INSTITUTION],
            total="capacity",
            weight="n",
            out="cap",
            tie=dims,
        )
        .select(*dims, INSTITUTION, "cap")
        .sort(INSTITUTION, *dims)
    )


def split_across_institutions(
    cell_allocation: pl.DataFrame,
    contributions: pl.DataFrame,
    dims: Sequence[str],
    capacity: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Each cell's x split across the partners that reach it (dims…, institution_id, x).

    ``cell_allocation``: dims…, x. ``contributions``: institution_id, dims…, n (past patients
    per partner per cell; a partner reaches the cells it has contributed to). The split is in
    proportion to past contribution, or with ``capacity`` (institution_id, capacity) in
    proportion to each partner's capacity in the cell (:func:`capacity_by_cell`), never beyond
    it. Largest-remainder rounding keeps every cell's parts summing to its x. Whatever no
    partner can take is a row with institution_id null ("unassigned"). Rows with x = 0 are left
    out.
    """
    dims = list(dims)
    alloc = (
        sum_by_cell(cell_allocation, dims, "x", "cell_allocation")
        .with_columns(pl.col("x").cast(pl.Int64))
        .filter(pl.col("x") > 0)
        .with_row_index("_cell")
    )
    if capacity is None:
        weights = _reach(contributions, dims).rename({"n": "_w"})
    else:
        weights = capacity_by_cell(contributions, capacity, dims).rename({"cap": "_w"})
    weights = weights.filter(pl.col("_w") > 0)
    pairs = alloc.join(weights, on=dims, how="inner")
    reach = pairs.group_by("_cell").agg(pl.col("_w").sum().alias("_reach"))
    assignable = pl.col("x") if capacity is None else pl.min_horizontal("x", "_reach")
    alloc = alloc.join(reach, on="_cell", how="left").with_columns(
        pl.when(pl.col("_reach").is_null()).then(0).otherwise(assignable).alias("_assign")
    )
    split = _split_proportionally(
        pairs.join(alloc.select("_cell", "_assign"), on="_cell"),
        group=["_cell"],
        total="_assign",
        weight="_w",
        out="_part",
        tie=[INSTITUTION],
    )
    institution_dtype = contributions.schema[INSTITUTION]
    assigned = split.filter(pl.col("_part") > 0).select(
        "_cell", *dims, INSTITUTION, pl.col("_part").alias("x")
    )
    unassigned = alloc.filter(pl.col("x") > pl.col("_assign")).select(
        "_cell",
        *dims,
        pl.lit(None, dtype=institution_dtype).alias(INSTITUTION),
        (pl.col("x") - pl.col("_assign")).alias("x"),
    )
    return (
        pl.concat([assigned, unassigned]).sort("_cell", INSTITUTION, nulls_last=True).drop("_cell")
    )


# --------------------------------------------------------------------------- forecast


def months_to_target(current: int, target: int, monthly_rate: float) -> int | None:
    """Whole months until ``current`` reaches ``target`` at ``monthly_rate``; None if never.

    0 when the target is already met.
    """
    if monthly_rate < 0 or not math.isfinite(monthly_rate):
        raise ValueError("monthly_rate must be finite and non-negative")
    if current >= target:
        return 0
    if monthly_rate == 0:
        return None
    months = (target - current) / monthly_rate
    # 7 / 0.7 is 10.000000000000002 in floats; that is 10 months, not 11.
    return math.ceil(months - 1e-9 * max(1.0, months))


def forecast_month(current: int, target: int, monthly_rate: float, start: date) -> date | None:
    """First day of the month in which the cell reaches its target; None if accrual is 0.

    ``current`` is the count at the end of the month of ``start``; each later month adds
    ``monthly_rate``. A target already met gives the month of ``start``.
    """
    months = months_to_target(current, target, monthly_rate)
    if months is None:
        return None
    index = start.year * 12 + start.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)
