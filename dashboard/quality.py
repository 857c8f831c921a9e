"""Data quality and partner profiles as pure functions over the frames the named queries return.

The Data quality and Institution pages (and any command that wants the same numbers) call these:
missing-value rates per field and institution, quarantine rates, per-file acceptance, a
partner's share of the programme and its trend, and the programme's gaps a partner can reach.
No Streamlit and no database here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from dashboard.coverage import known_mask
from dashboard.formatting import format_indian, format_percent, format_ratio

# Column of the `dq_missing_by_institution` query → how the field is named on screen.
MISSING_FIELDS: dict[str, str] = {
    "sex": "Sex",
    "age": "Age",
    "state": "State/UT",
    "area_type": "Urban/rural",
    "diagnosis": "Diagnosis",
    "body_part": "Body part",
    "manufacturer": "Manufacturer",
    "n_images": "Number of images",
    "facility_type": "Facility type",
}
ALL_INSTITUTIONS = "All institutions"
NO_INSTITUTION = "(no institution id)"
GAP_FLAGS: tuple[str, ...] = ("under",)


def _rate(part: pl.Expr, whole: pl.Expr) -> pl.Expr:
    """part / whole, null where whole is 0."""
    return pl.when(whole > 0).then(part / whole).otherwise(None)


# --------------------------------------------------------------------------- missing values


def missing_rates(wide: pl.DataFrame) -> pl.DataFrame:
    """Long table of missing values: institution, field, missing, studies, rate.

    ``wide`` is the `dq_missing_by_institution` result (institution, studies, one count of
    unknown values per field). A first block of rows, institution :data:`ALL_INSTITUTIONS`,
    sums every institution. Fields keep the order of :data:`MISSING_FIELDS`.
    """
    fields = list(MISSING_FIELDS)
    schema = {
        "institution": pl.String,
        "field": pl.String,
        "missing": pl.Int64,
        "studies": pl.Int64,
        "rate": pl.Float64,
    }
    if wide.height == 0:
        return pl.DataFrame(schema=schema)
    total = wide.select(
        pl.lit(ALL_INSTITUTIONS).alias("institution"),
        *(pl.col(c).sum() for c in ["studies", *fields]),
    )
    both = pl.concat([total, wide.select("institution", "studies", *fields)], how="vertical")
    long = both.unpivot(
        index=["institution", "studies"], on=fields, variable_name="key", value_name="missing"
    )
    order = {key: i for i, key in enumerate(fields)}
    return (
        long.with_columns(
            _order=pl.col("key").replace_strict(order, return_dtype=pl.Int64),
            _block=pl.col("institution") != ALL_INSTITUTIONS,
        )
        .sort("_block", "institution", "_order")
        .select(
            "institution",
            pl.col("key").replace_strict(MISSING_FIELDS, return_dtype=pl.String).alias("field"),
            pl.col("missing").cast(pl.Int64),
            pl.col("studies").cast(pl.Int64),
            _rate(pl.col("missing").cast(pl.Float64), pl.col("studies").cast(pl.Float64)).alias(
                "rate"
            ),
        )
    )


def missing_by_field(rates: pl.DataFrame) -> pl.DataFrame:
    """The programme-wide rows of :func:`missing_rates`: field, missing, studies, rate."""
    return rates.filter(pl.col("institution") == ALL_INSTITUTIONS).drop("institution")


# --------------------------------------------------------------------------- quarantine


def quarantine_by_institution(by_file: pl.DataFrame, studies: pl.DataFrame) -> pl.DataFrame:
    """Open quarantine and its rate per institution.

    ``by_file``: `dq_quarantine_by_file` (institution_id, file, rows_to_fix, …); ``studies``:
    institution, studies (accepted studies in the index). Returns institution, studies,
    rows_to_fix, files, rate = rows_to_fix / (studies + rows_to_fix), sorted by rows to fix.
    Institutions without any open row get 0; rows without an institution id are one row,
    :data:`NO_INSTITUTION`.
    """
    open_rows = (
        by_file.with_columns(pl.col("institution_id").fill_null(NO_INSTITUTION))
        .group_by("institution_id")
        .agg(pl.col("rows_to_fix").sum().cast(pl.Int64), pl.col("file").n_unique().alias("files"))
        .rename({"institution_id": "institution"})
    )
    accepted = studies.select("institution", pl.col("studies").cast(pl.Int64))
    joined = accepted.join(open_rows, on="institution", how="full", coalesce=True).with_columns(
        pl.col("studies", "rows_to_fix").fill_null(0),
        pl.col("files").fill_null(0).cast(pl.Int64),
    )
    submitted = (pl.col("studies") + pl.col("rows_to_fix")).cast(pl.Float64)
    return joined.with_columns(rate=_rate(pl.col("rows_to_fix").cast(pl.Float64), submitted)).sort(
        ["rows_to_fix", "institution"], descending=[True, False]
    )


def reason_summary(reasons: pl.DataFrame) -> pl.DataFrame:
    """`dq_quarantine_reasons` summed over institutions and files, most frequent first.

    Returns reason, column, rows_to_fix, institutions, files.
    """
    return (
        reasons.group_by("reason", "column")
        .agg(
            pl.col("rows_to_fix").sum().cast(pl.Int64),
            pl.col("institution_id").drop_nulls().n_unique().alias("institutions"),
            pl.col("file").n_unique().alias("files"),
        )
        .sort(["rows_to_fix", "reason"], descending=[True, False])
    )


def file_rates(files: pl.DataFrame) -> pl.DataFrame:
    """`dq_ingest_files` with accepted and quarantined shares of the rows read.

    Files with the highest quarantined share come first (then the most recent), so the files
    to look at are on top.
    """
    read = pl.col("rows_read").cast(pl.Float64)
    return files.with_columns(
        accepted_rate=_rate(pl.col("accepted").cast(pl.Float64), read),
        quarantined_rate=_rate(pl.col("quarantined").cast(pl.Float64), read),
    ).sort(
        ["quarantined_rate", "finished_at", "file"],
        descending=[True, True, False],
        nulls_last=True,
    )


# --------------------------------------------------------------------------- a partner


def complete_months(frame: pl.DataFrame, category_col: str, count_col: str = "n") -> pl.DataFrame:
    """Every month × category of ``frame`` present, with 0 where nothing was counted.

    A stacked area chart needs the zeros: a missing row would bridge the gap with a slope.
    Months run from the first to the last month present ('YYYY-MM'), without holes.
    """
    if frame.height == 0:
        return frame
    first, last = (
        frame["month"].min(),
        frame["month"].max(),
    )
    months = pl.date_range(
        pl.lit(f"{first}-01").str.to_date(), pl.lit(f"{last}-01").str.to_date(), "1mo", eager=True
    ).dt.strftime("%Y-%m")
    grid = months.to_frame("month").join(frame.select(category_col).unique(), how="cross")
    return (
        grid.join(
            frame.select("month", category_col, count_col), on=["month", category_col], how="left"
        )
        .with_columns(pl.col(count_col).fill_null(0))
        .sort("month", category_col)
    )


def default_partner(options: Sequence[str], chosen: Sequence[str]) -> int:
    """Index of the partner to show first: the first one chosen in the shared filter, else 0."""
    for institution in chosen:
        if institution in options:
            return list(options).index(institution)
    return 0


def programme_share(monthly: pl.DataFrame, partner: str) -> dict[str, dict[str, int | float]]:
    """A partner's totals and share of the programme per unit (studies, patients, images).

    ``monthly``: `partner_monthly` (institution, month, studies, patients = new patients that
    month, images), so sums are exact distinct patients. Share is None when the programme is 0.
    """
    result: dict[str, dict[str, int | float]] = {}
    mine = monthly.filter(pl.col("institution") == partner)
    for unit in ("studies", "patients", "images"):
        own, total = int(mine[unit].sum()), int(monthly[unit].sum())
        result[unit] = {"partner": own, "programme": total, "share": own / total if total else None}
    return result


def share_trend(monthly: pl.DataFrame, partner: str, unit: str) -> pl.DataFrame:
    """Per month from the partner's first contribution: its count, the programme's, its share.

    Returns month ('YYYY-MM'), partner, programme, share (0–1), share_pct (0–100), ascending;
    later months in which the partner contributed nothing have partner = 0. Empty when the
    partner has contributed nothing.
    """
    programme = monthly.group_by("month").agg(pl.col(unit).sum().cast(pl.Int64).alias("programme"))
    mine = (
        monthly.filter(pl.col("institution") == partner)
        .group_by("month")
        .agg(pl.col(unit).sum().cast(pl.Int64).alias("partner"))
    )
    share = _rate(pl.col("partner").cast(pl.Float64), pl.col("programme").cast(pl.Float64))
    first = mine.filter(pl.col("partner") > 0)["month"].min()
    trend = (
        programme.join(mine, on="month", how="left")
        .with_columns(pl.col("partner").fill_null(0))
        .with_columns(share=share)
        .with_columns(share_pct=pl.col("share") * 100)
        .select("month", "partner", "programme", "share", "share_pct")
        .sort("month")
    )
    return trend.clear() if first is None else trend.filter(pl.col("month") >= first)


def recent_share(trend: pl.DataFrame, months: int = 3) -> tuple[float | None, float | None]:
    """The partner's share over the last ``months`` months and over the ``months`` before."""

    def share(frame: pl.DataFrame) -> float | None:
        total = int(frame["programme"].sum())
        return int(frame["partner"].sum()) / total if frame.height and total else None

    ordered = trend.sort("month")
    last = ordered.tail(months)
    before = ordered.head(max(ordered.height - months, 0)).tail(months)
    return share(last), share(before)


def furthest_below(table: pl.DataFrame, dims: Sequence[str], limit: int = 6) -> pl.DataFrame:
    """The ``limit`` cells of a representation table with the lowest ratio (reference known)."""
    return table.filter(pl.col("rr").is_not_null()).sort(["rr", *dims]).head(limit)


def gaps_within_reach(
    table: pl.DataFrame,
    partner_cells: pl.DataFrame,
    dims: Sequence[str],
    flags: Sequence[str] = GAP_FLAGS,
) -> pl.DataFrame:
    """Programme gaps the partner is placed to fill, largest shortfall first.

    ``table``: metrics.representation_table of the whole programme; a cell is a gap when its
    flag is in ``flags`` (under-represented) or its shortfall is positive. ``partner_cells``:
    dims…, n (the partner's own counts; unknown values are dropped here). The partner reaches a
    cell it has contributed to before (n > 0), as in planner.split_across_institutions.
    Returns the table's columns plus expected (q_i·N, the count at parity) and partner_n.
    """
    dims = list(dims)
    reach = (
        partner_cells.filter(known_mask(dims))
        .group_by(dims)
        .agg(pl.col("n").sum().cast(pl.Int64).alias("partner_n"))
        .filter(pl.col("partner_n") > 0)
    )
    gap = pl.col("flag").is_in(list(flags)) | (pl.col("shortfall").fill_null(0) > 0)
    total = int(table["n"].sum())
    return (
        table.with_columns(expected=pl.col("ref_share") * total)
        .filter(gap)
        .join(reach, on=dims, how="inner")
        .sort(["shortfall", *dims], descending=[True] + [False] * len(dims), nulls_last=True)
    )


def cell_labels(
    frame: pl.DataFrame, dims: Sequence[str], names: Mapping[str, Mapping[str, str]]
) -> pl.Series:
    """'Bihar · F · 60-64': the cell's values joined, each mapped through ``names[dim]``."""
    parts = [
        pl.col(d).cast(pl.String).replace(dict(names.get(d, {}))).fill_null("unknown") for d in dims
    ]
    return frame.select(pl.concat_str(parts, separator=" · ").alias("label")).to_series()


def display_table(
    frame: pl.DataFrame,
    counts: Sequence[str] = (),
    percents: Sequence[str] = (),
    titles: Mapping[str, str] | None = None,
    ratios: Sequence[str] = (),
) -> pl.DataFrame:
    """A table for the screen: counts with Indian grouping, shares as '12.3%', ratios as '0.14',
    columns renamed. Downloads keep the raw frame; this one is only for reading.
    """
    shown = frame.with_columns(
        *(
            pl.Series(c, [format_ratio(v) for v in frame[c].to_list()], dtype=pl.String)
            for c in ratios
        ),
        *(
            pl.Series(c, [format_indian(v) for v in frame[c].to_list()], dtype=pl.String)
            for c in counts
        ),
        *(
            pl.Series(c, [format_percent(v) for v in frame[c].to_list()], dtype=pl.String)
            for c in percents
        ),
    )
    return shown.rename(dict(titles or {}), strict=False)


def rows_phrase(n: int) -> str:
    """'1 row', '1,234 rows'."""
    return f"{format_indian(n)} row{'' if n == 1 else 's'}"
