"""Small-cell suppression (METRICS.md, "Privacy") as pure functions over polars frames.

Who may see what is decided in :mod:`dashboard.roles`; this module hides what a viewer may not
see. The rule, exactly:

**Primary.** A cell the viewer is not entitled to see in full (see roles.py) is suppressed when
``0 < n < k`` (k = settings.small_cell_k, 10 by default). Zeros are shown as 0 and are never
suppressed; a cell the viewer is entitled to is never suppressed.

**What an attacker is assumed to know.** Every shown number, that shown zeros are zero, that a
cell shown as "< k" holds 1 … k-1, that a cell shown as "withheld" (a complement) holds k or
more, and these published totals ("lines"):

- one dimension: the table total (unknown values included) and N, the total over the cells
  with a known value (shares reveal it: N = n / share);
- two or more dimensions: the table is read as rows × columns, the rows being the combinations
  of every dimension but the last and the columns the values of the last one; every row total,
  every column total (unknown values included) and N are assumed published. Other margins of a
  three-way cross (e.g. state × age summed over sex) are not: show them only through their own
  suppressed table.

**Secondary.** Complements are suppressed until no suppressed cell's value can be worked out
from the lines and the bounds above, not even by combining several lines. A cell can be worked
out exactly when no cycle of suppressed cells runs through it along which values can move
without changing any published total (the network view of a two-way table: rows and columns
are vertices, cells are edges; a cycle raises and lowers cells in turn, each within its
bounds). So for every pinned small cell the cheapest such cycle is found with Dijkstra, a cell
not yet hidden costing its count (the smallest non-zero cells are preferred, as METRICS.md
asks), and the whole cycle is suppressed. Complements are non-zero cells the viewer is not
entitled to: a zero hides nothing (its value is known), nor does a cell the viewer sees in
full. Hence every published line holding a suppressed cell holds at least two; a one-way table
with one small cell also loses its next-smallest non-zero cell that can hide it (1 + 10 = 11
cannot: with the complement at least 10 both are pinned); two small cells protect each other
unless both are 1.

**When cells cannot protect each other**, totals are withheld instead, in two steps, and
:attr:`Suppression.withheld` says which:

- ``unknown``: totals that run through unknown values: the table total, the totals of rows
  with an unknown value and of the unknown column, and the count of unknowns itself (say the
  small cell is the lone "unknown" cell: it is the table total minus N). N and the other
  margins stay published.
- ``totals``: N is withheld (so shares and everything computed from N are nulled for every
  cell, entitled ones included) and so is the count of unknowns; rows and columns are
  protected as plain categories, a margin below k counting as unpublished (it is a small
  count, hidden wherever it is shown); a margin that still pins a small cell (a row of twelve
  1s totalling 12) is withheld and listed in :attr:`Suppression.withheld_lines`.

Display: a small cell is shown as "< k" and a complement as "withheld", never as 0; in JSON
both have ``n`` (and what would reveal it) null with ``"suppressed": true``.

Caveats the callers keep: a table is protected against its own lines only; two tables of the
same counts shown together must come from the same pattern (compute the pattern once on the
coverage frame and apply it to every table of those dims, as the CLI does for gaps and plan).
Filters that can move by one step (a day, a year of age) allow differencing two views; that is
a page concern, not a cell rule. k must be at least 3 for "< k" to hide anything (with k = 2,
"< 2" and non-zero means 1).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import polars as pl

from dashboard.coverage import DIMENSIONS

SMALL = "small"
"""Suppression reason of a primary cell: 0 < n < k."""
SECONDARY = "secondary"
"""Suppression reason of a complement: hidden so that a small cell cannot be worked out."""
WITHHELD_LABEL = "withheld"
"""How a complement (and a withheld total) is shown in tables and CSV."""
SUPPRESSED = "suppressed"
SUPPRESSION = "suppression"
_ENTITLED = "_entitled"


class Withheld(StrEnum):
    """Which published totals the viewer must not be shown (see the module docstring)."""

    NONE = "none"
    UNKNOWN = "unknown"
    TOTALS = "totals"


@dataclass(frozen=True)
class Suppression:
    """The suppression pattern of one table of counts for one viewer."""

    dims: tuple[str, ...]
    k: int
    cells: pl.DataFrame
    """dims…, n, suppression (null, "small" or "secondary"), _entitled."""
    withheld: Withheld
    withheld_lines: tuple[dict[str, object], ...] = ()
    """With ``totals``: margins of at least k (a row's or a column's key; ``{}`` is the table
    total) that must not be shown either, because no pattern of cells protects them."""

    @property
    def suppressed(self) -> int:
        """Number of suppressed cells."""
        return int(self.cells[SUPPRESSION].is_not_null().sum())

    @property
    def totals_withheld(self) -> bool:
        """N is withheld: shares and what derives from N must not be shown, for any cell."""
        return self.withheld is Withheld.TOTALS

    @property
    def unknown_withheld(self) -> bool:
        """The count of unknowns (and totals that include them) must not be shown."""
        return self.withheld is not Withheld.NONE


@dataclass(frozen=True)
class TableRule:
    """Which columns of a table reveal a suppressed cell, and which reveal N."""

    cell: tuple[str, ...]
    """Nulled in the rows of a suppressed cell."""
    totals: tuple[str, ...] = ()
    """Nulled in every row when N is withheld (they are computed from N)."""


COVERAGE = TableRule(cell=("n", "share"), totals=("share",))
"""coverage(): dims…, n, share."""
GAPS = TableRule(
    cell=("n", "share", "rr", "rr_low", "rr_high", "flag", "shortfall"),
    totals=("share", "expected", "rr", "rr_low", "rr_high", "flag", "shortfall"),
)
"""GapsResult.table: ``expected`` = ref_share × N does not depend on the cell's own n."""
PLAN_ROWS = TableRule(
    cell=(
        "n",
        "cell_allocated",
        "target",
        "forecast_month",
        "allocated",
        "monthly_rate",
        "delivery_month",
    ),
    totals=("cell_allocated", "target", "forecast_month", "allocated", "delivery_month"),
)
"""PlanOutcome.rows() (after :func:`merge_partners`): the allocation is computed from n and N."""
PLAN_CELLS = TableRule(
    cell=(
        "n",
        "allocated",
        "proportional",
        "target",
        "share_after",
        "monthly_rate",
        "forecast_month",
        "partners",
    ),
    totals=("allocated", "proportional", "target", "share_after", "forecast_month"),
)
"""PlanOutcome.cells, for the planner page."""


# --------------------------------------------------------------------------- the pattern


def is_unknown(dim: str) -> pl.Expr:
    """True where ``dim`` holds its unknown value (null, or the marker of coverage.DIMENSIONS)."""
    marker = DIMENSIONS.get(dim)
    col = pl.col(dim)
    return col.is_null() | (col == marker) if marker is not None else col.is_null()


class _UnprotectableError(Exception):
    """A small cell has no cycle of complements through it under the current lines."""


_NO_PATH = math.inf


class _Network:
    """Cells as edges between line vertices (rows one side, columns the other), plus a hub
    joined to every line whose total is not published. A suppressed cell can move by one
    (without any published total changing) exactly when it lies on a cycle where a row→column
    step raises a cell (below its upper bound) and a column→row step lowers one (above its
    lower bound); through the hub, a cycle may leave and re-enter at unpublished lines."""

    def __init__(
        self,
        values: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        n_vertices: int,
        free: Iterable[int],
        usable: np.ndarray,
        status: np.ndarray,
        k: int,
    ) -> None:
        self.values = [int(v) for v in values]
        self.rows = [int(r) for r in rows]
        self.cols = [int(c) for c in cols]
        self.status = bytearray(status.astype(np.uint8).tobytes())  # 0 shown, 1 small, 2 second.
        self.k = k
        self.hub = n_vertices
        # adj[vertex]: (next vertex, cell or -1 for a hub link, cost while the cell is shown)
        self.adj: list[list[tuple[int, int, int]]] = [[] for _ in range(n_vertices + 1)]
        for cell in np.flatnonzero(usable).tolist():
            v, r, c = self.values[cell], self.rows[cell], self.cols[cell]
            small = self.status[cell] == 1
            if v < (k - 1 if small else math.inf):  # can go up by one
                self.adj[r].append((c, cell, v))
            if v > (1 if small else k):  # can go down by one
                self.adj[c].append((r, cell, v))
        self.free_lines: set[int] = set()
        for vertex in sorted(set(free)):
            self.free(vertex)

    def free(self, vertex: int) -> None:
        """Treat the line ``vertex`` as unpublished: its total may change."""
        if vertex not in self.free_lines:
            self.free_lines.add(vertex)
            self.adj[vertex].append((self.hub, -1, 0))
            self.adj[self.hub].append((vertex, -1, 0))

    def cheapest_path(self, source: int, target: int, exclude: int) -> tuple[float, list[int]]:
        """Dijkstra from ``source`` to ``target`` not using cell ``exclude``: (cost, new cells)."""
        status = self.status
        best = {source: 0}
        back: dict[int, tuple[int, int]] = {}
        heap = [(0, source)]
        done: set[int] = set()
        while heap:
            cost, vertex = heapq.heappop(heap)
            if vertex in done:
                continue
            if vertex == target:
                cells = []
                while vertex != source:
                    vertex, cell = back[vertex]
                    if cell >= 0 and not status[cell]:
                        cells.append(cell)
                return cost, cells
            done.add(vertex)
            for nxt, cell, price in self.adj[vertex]:
                if cell == exclude or nxt in done:
                    continue
                new = cost if cell < 0 or status[cell] else cost + price
                if new < best.get(nxt, _NO_PATH):
                    best[nxt] = new
                    back[nxt] = (vertex, cell)
                    heapq.heappush(heap, (new, nxt))
        return _NO_PATH, []

    def protect(self, cell: int) -> None:
        """Suppress the cheapest cycle through ``cell`` (nothing when one already exists)."""
        v, r, c = self.values[cell], self.rows[cell], self.cols[cell]
        options = []
        if v < self.k - 1:  # raise this cell, lower the cycle's others: a path column → row
            options.append(self.cheapest_path(c, r, cell))
        if v > 1:
            options.append(self.cheapest_path(r, c, cell))
        cost, cells = min(options, default=(_NO_PATH, []), key=lambda o: o[0])
        if cost == _NO_PATH:
            raise _UnprotectableError
        for new in cells:
            self.status[new] = 2

    def statuses(self) -> np.ndarray:
        return np.frombuffer(bytes(self.status), dtype=np.uint8).astype(np.int8)


def _line_vertices(
    frame: pl.DataFrame, dims: Sequence[str], withheld: Withheld
) -> tuple[np.ndarray, np.ndarray, int, set[int]]:
    """Each cell's row and column vertex, the vertex count and the unpublished (free) lines,
    with N published (stages ``none`` and ``unknown``)."""
    if len(dims) == 1:
        # Row 0: the table total; column 1: N (known cells); column 2: the unknowns, in no line
        # of their own (their total is the table total minus N).
        unknown = frame.select(is_unknown(dims[0])).to_series().to_numpy()
        rows = np.zeros(frame.height, dtype=np.int64)
        cols = np.where(unknown, 2, 1)
        free = {2} | ({0} if withheld is Withheld.UNKNOWN else set())
        return rows, cols, 3, free
    head, last = list(dims[:-1]), dims[-1]
    row_unknown = (
        frame.select(pl.any_horizontal(is_unknown(d) for d in head)).to_series().to_numpy()
    )
    col_unknown = frame.select(is_unknown(last)).to_series().to_numpy()
    row_ids: dict[tuple, int] = {}
    rows = np.array(
        [row_ids.setdefault(tuple(key), len(row_ids)) for key in frame.select(head).iter_rows()],
        dtype=np.int64,
    )
    n_rows = len(row_ids)
    # N with every row and column total publishes the unknown column's part in the rows with
    # every value known: so the unknown column is two lines, A (known rows) and B (the rest).
    col_ids: dict[tuple, int] = {}
    cols = np.empty(frame.height, dtype=np.int64)
    for i, value in enumerate(frame[last].to_list()):
        key = (("B" if row_unknown[i] else "A"),) if col_unknown[i] else ("v", value)
        cols[i] = n_rows + col_ids.setdefault(key, len(col_ids))
    free: set[int] = set()
    if withheld is Withheld.UNKNOWN:
        free |= {int(r) for r in rows[row_unknown]}
        if ("B",) in col_ids:
            free.add(n_rows + col_ids[("B",)])
    return rows, cols, n_rows + len(col_ids), free


def _order(values: np.ndarray, primary: np.ndarray) -> list[int]:
    return sorted(np.flatnonzero(primary).tolist(), key=lambda i: (int(values[i]), i))


def _pattern(
    frame: pl.DataFrame,
    dims: Sequence[str],
    values: np.ndarray,
    usable: np.ndarray,
    primary: np.ndarray,
    k: int,
    withheld: Withheld,
) -> np.ndarray:
    rows, cols, n_vertices, free = _line_vertices(frame, dims, withheld)
    network = _Network(values, rows, cols, n_vertices, free, usable, primary.astype(np.int8), k)
    for cell in _order(values, primary):
        network.protect(cell)
    return network.statuses()


def _totals_pattern(
    frame: pl.DataFrame,
    dims: Sequence[str],
    values: np.ndarray,
    usable: np.ndarray,
    primary: np.ndarray,
    k: int,
) -> tuple[np.ndarray, list[dict[str, object]]]:
    """N withheld: rows and columns only, unknown values as plain categories. A margin below k
    is a small count, hidden wherever it is shown, so it is not taken as published; a margin
    that still pins a small cell is withheld (the smaller of the cell's two) and reported."""
    keys: list[dict[str, object] | None]
    if len(dims) == 1:
        rows = np.zeros(frame.height, dtype=np.int64)
        cols = np.ones(frame.height, dtype=np.int64)  # one free vertex: no column totals
        keys, n_vertices = [{}, None], 2
    else:
        head, last = list(dims[:-1]), dims[-1]
        row_ids: dict[tuple, int] = {}
        rows = np.array(
            [row_ids.setdefault(tuple(r), len(row_ids)) for r in frame.select(head).iter_rows()],
            dtype=np.int64,
        )
        col_ids: dict[object, int] = {}
        cols = np.array(
            [len(row_ids) + col_ids.setdefault(v, len(col_ids)) for v in frame[last].to_list()],
            dtype=np.int64,
        )
        keys = [dict(zip(head, r, strict=True)) for r in row_ids]
        keys += [{last: v} for v in col_ids]
        n_vertices = len(keys)
    totals = np.bincount(rows, values, n_vertices) + np.bincount(cols, values, n_vertices)
    free = {v for v in range(n_vertices) if keys[v] is None or 0 < totals[v] < k}
    network = _Network(values, rows, cols, n_vertices, free, usable, primary.astype(np.int8), k)
    withheld: list[dict[str, object]] = []
    for cell in _order(values, primary):
        while True:
            try:
                network.protect(cell)
                break
            except _UnprotectableError:
                lines = [v for v in (rows[cell], cols[cell]) if v not in network.free_lines]
                if not lines:  # both lines free: only k <= 2 gets here ("< 2" means 1)
                    break
                line = int(min(lines, key=lambda v: (totals[v], v)))
                network.free(line)
                withheld.append(keys[line] or {})
    return network.statuses(), withheld


def protect(
    counts: pl.DataFrame,
    dims: Sequence[str],
    *,
    k: int,
    entitled: pl.Series | Sequence[bool] | None = None,
    count: str = "n",
) -> Suppression:
    """The suppression pattern of ``counts`` (dims…, ``count``; one row per cell, unknown
    values included) for a viewer entitled to the cells flagged in ``entitled`` (None: none).

    Pass the coverage frame with its unknown cells: the pattern is computed once and applied to
    every table of those cells (:func:`apply`), so two tables never hide different cells.
    """
    dims = list(dims)
    if not dims:
        raise ValueError("suppression needs at least one dimension")
    if k < 1:
        raise ValueError("k must be at least 1")
    if counts.select(pl.struct(dims).is_duplicated().any()).item():
        raise ValueError(f"counts have more than one row per cell of {dims}")
    flags = pl.Series(
        _ENTITLED,
        [False] * counts.height if entitled is None else list(entitled),
        dtype=pl.Boolean,
    )
    if flags.len() != counts.height:
        raise ValueError("entitled must have one flag per row of counts")
    values = counts[count].fill_null(0).cast(pl.Int64).to_numpy()
    if (values < 0).any():
        raise ValueError("counts cannot be negative")
    usable = ~flags.to_numpy() & (values > 0)
    primary = usable & (values < k)
    has_unknown = bool(counts.select(pl.any_horizontal(is_unknown(d) for d in dims).any()).item())
    status = primary.astype(np.int8)
    withheld, lines = Withheld.NONE, []
    if primary.any():
        stages = [Withheld.NONE, Withheld.UNKNOWN] if has_unknown else [Withheld.NONE]
        for stage in stages:
            try:
                status = _pattern(counts, dims, values, usable, primary, k, stage)
            except _UnprotectableError:
                continue
            withheld = stage
            break
        else:
            status, lines = _totals_pattern(counts, dims, values, usable, primary, k)
            withheld = Withheld.TOTALS
    reason = np.array([None, SMALL, SECONDARY], dtype=object)[status]
    cells = counts.select(*dims, pl.col(count).alias("n")).with_columns(
        pl.Series(SUPPRESSION, reason.tolist(), dtype=pl.String), flags
    )
    return Suppression(
        dims=tuple(dims), k=k, cells=cells, withheld=withheld, withheld_lines=tuple(lines)
    )


# --------------------------------------------------------------------------- applying it


def apply(
    table: pl.DataFrame, suppression: Suppression, rule: TableRule, *, count: str = "n"
) -> pl.DataFrame:
    """``table`` (one or more rows per cell of the pattern's dims) with what the viewer may not
    see nulled, plus ``suppressed`` (bool) and ``suppression`` (null, "small", "secondary").

    A row whose cell the pattern does not know and whose ``count`` is small is refused (an
    error, not a leak): the pattern must come from the same counts as the table.
    """
    dims = list(suppression.dims)
    pattern = suppression.cells.select(*dims, SUPPRESSION, _ENTITLED)
    joined = table.join(pattern, on=dims, how="left", nulls_equal=True, maintain_order="left")
    if count in table.columns:
        stray = joined.filter(
            pl.col(SUPPRESSION).is_null()
            & ~pl.col(_ENTITLED).fill_null(False)
            & (pl.col(count) > 0)
            & (pl.col(count) < suppression.k)
        )
        if stray.height:
            raise ValueError(
                f"{stray.height} small cell(s) are missing from the suppression pattern"
            )
    hidden = pl.col(SUPPRESSION).is_not_null()
    nulled = {c for c in rule.cell if c in table.columns}
    everywhere = (
        {c for c in rule.totals if c in table.columns} if suppression.totals_withheld else set()
    )
    return joined.with_columns(
        *(
            pl.lit(None, dtype=table.schema[c]).alias(c)
            if c in everywhere
            else pl.when(hidden).then(None).otherwise(pl.col(c)).alias(c)
            for c in sorted(nulled | everywhere)
        ),
        hidden.alias(SUPPRESSED),
    ).select(*table.columns, SUPPRESSED, SUPPRESSION)


def label(reason: str | None, k: int) -> str | None:
    """How a suppressed count is shown: "< k" for a small cell, "withheld" for a complement."""
    if reason == SMALL:
        return f"< {k}"
    if reason == SECONDARY:
        return WITHHELD_LABEL
    return None


def shown_counts(
    frame: pl.DataFrame, k: int, columns: Sequence[str] = ("n",), *, keep_flags: bool = False
) -> pl.DataFrame:
    """For tables and CSV: ``columns`` as text, suppressed ones "< k" or "withheld"; the
    ``suppressed``/``suppression`` columns dropped unless ``keep_flags``. A frame without them
    (a viewer entitled to everything) is returned as it is."""
    if SUPPRESSION not in frame.columns:
        return frame
    text = pl.col(SUPPRESSION).replace_strict(
        {SMALL: f"< {k}", SECONDARY: WITHHELD_LABEL}, default=None, return_dtype=pl.String
    )
    out = frame.with_columns(
        pl.when(pl.col(SUPPRESSION).is_not_null())
        .then(text)
        .otherwise(pl.col(c).cast(pl.String))
        .alias(c)
        for c in columns
        if c in frame.columns
    )
    return out if keep_flags else out.drop(SUPPRESSED, SUPPRESSION)


def shown_total(value: int | None, k: int, *, withheld: bool = False) -> int | str | None:
    """A single total (N, the unknown count): "withheld", "< k" when 0 < value < k, else it."""
    if withheld:
        return WITHHELD_LABEL
    if value is not None and 0 < value < k:
        return f"< {k}"
    return value


def coarse(value: float | None, digits: int = 2) -> float | None:
    """A divergence rounded for viewers who may not see every cell (JSD is a smooth function
    of the counts: at full precision it can pin a suppressed cell between two candidates)."""
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------- the planner


OTHER_PARTNERS = "(other partners)"


def merge_partners(
    rows: pl.DataFrame,
    dims: Sequence[str],
    shown: Iterable[str],
    *,
    k: int,
    months: int,
) -> pl.DataFrame:
    """PlanOutcome.rows() with the partners the viewer may not see one by one merged, per cell,
    into one row "(other partners)" (their allocations and accrual summed).

    A partner's split of a cell's allocation follows its own past contribution to the cell;
    merged, no other institution's figures show. The merged accrual (``monthly_rate`` ×
    ``months`` studies or patients) is itself a count: null when 0 < count < k.
    """
    dims = list(dims)
    keep = list(set(shown))
    institution = pl.col("institution")
    separate = rows.filter(institution.is_null() | institution.is_in(keep))
    others = rows.filter(institution.is_not_null() & ~institution.is_in(keep))
    cell_columns = ["n", "ref_share", "cell_allocated", "target", "forecast_month"]
    merged = others.group_by(dims, maintain_order=True).agg(
        *(pl.col(c).first() for c in cell_columns),
        pl.lit(OTHER_PARTNERS).alias("institution"),
        pl.lit("other partners, merged").alias("institution_name"),
        pl.col("allocated").sum(),
        pl.col("monthly_rate").sum(),
        pl.lit(None, dtype=pl.String).alias("delivery_month"),
    )
    accrual = (pl.col("monthly_rate") * months).round(0)
    merged = merged.with_columns(
        pl.when((accrual > 0) & (accrual < k))
        .then(None)
        .otherwise(pl.col("monthly_rate"))
        .alias("monthly_rate")
    )
    return pl.concat([separate, merged.select(rows.columns)], how="vertical_relaxed")
