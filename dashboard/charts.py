"""Chart builders: pure functions from polars frames to Altair charts (no Streamlit here).

Conventions shared by every chart:

- Data goes in as inline JSON-safe rows (see :func:`dashboard.geo.records`); Decimal columns
  (DuckDB's HUGEINT sums) and NaN are made safe on the way.
- Numbers in tooltips and text marks are pre-formatted strings with Indian digit grouping
  (d3-format cannot group in lakh); count axes use a Vega ``labelExpr`` that does the same.
- Palettes are colour-blind safe: Okabe–Ito for categories, ColorBrewer YlGnBu for sequential
  values, blue–orange for ratios (orange = under-represented, blue = over-represented), and a
  redundant shape for representation flags.
- State charts carry a point selection named :data:`STATE_SELECTION` on ``iso_code``, so a
  Streamlit page can pass ``on_select="rerun"`` and read the clicked state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import altair as alt
import polars as pl

from dashboard import geo
from dashboard.contract import AGE_BANDS
from dashboard.formatting import (
    MISSING,
    format_interval,
    format_number,
    format_percent,
    format_ratio,
    indian_number_expr,
)

STATE_SELECTION = "state_select"

OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
OTHER_COLOUR = "#9E9E9E"
NO_DATA_COLOUR = "#D0D0D0"
REFERENCE_COLOUR = "#B8B8B8"
SEQUENTIAL_SCHEME = "yellowgreenblue"
DIVERGING_SCHEME = "blueorange"  # reversed below: orange for RR < 1, blue for RR > 1
MALE_COLOUR, FEMALE_COLOUR = "#0072B2", "#E69F00"

FLAG_ORDER: tuple[str, ...] = ("under", "uncertain", "ok", "over", "insufficient")
FLAG_COLOURS: tuple[str, ...] = ("#D55E00", "#E69F00", "#009E73", "#0072B2", "#9E9E9E")
FLAG_SHAPES: tuple[str, ...] = ("triangle-left", "diamond", "circle", "triangle-right", "cross")

# India on an equal-area conic (as in geo.ALBERS_INDIA), so state areas on screen are honest.
INDIA_PROJECTION: dict[str, Any] = {
    "type": "conicEqualArea",
    "parallels": [12, 28],
    "rotate": [-80, 0],
}

SequentialScale = Literal["linear", "sqrt", "symlog"]


# --------------------------------------------------------------------------------------------
# Shared helpers


class _Chart(alt.Chart):
    """``alt.Chart`` whose ``encode`` builds channel objects directly.

    Altair turns each shorthand string ("value:Q") or plain dict (``alt.when(...)``,
    ``alt.datum(...)``) handed to ``encode`` into a channel object by rebuilding a lookup
    table of its whole schema, about 5 ms per channel: most of a page run's CPU. Wrapping
    them in their channel class (``alt.X("value:Q")``) gives the same spec in microseconds.
    """

    def encode(self, *args: Any, **channels: Any) -> Any:  # type: ignore[override]
        """As ``alt.Chart.encode``; strings and dicts become channel objects first."""
        return super().encode(*args, **{k: _channel(k, v) for k, v in channels.items()})


def _channel(encoding: str, value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_channel(encoding, v) for v in value]
    if not isinstance(value, str | dict):
        return value
    name = encoding[0].upper() + encoding[1:]
    if isinstance(value, str):
        kind, kwargs = name, {"shorthand": value}
    else:
        kind = name + ("Value" if "value" in value else "Datum" if "datum" in value else "")
        kwargs = value
    cls = getattr(alt, kind, None)
    return value if cls is None else cls(**kwargs)


def state_selection() -> alt.Parameter:
    """The click selection on ``iso_code`` shared by the map and the state bar chart.

    Each chart gets its own (identically configured) parameter; when two such charts are
    concatenated, Altair merges them into one selection across both views.
    """
    return alt.selection_point(fields=["iso_code"], name=STATE_SELECTION, on="click")


def _inline(frame: pl.DataFrame) -> alt.Data:
    return geo.InlineData(values=geo.records(frame))


def _title(title: str | None, subtitle: str | Sequence[str] | None = None) -> alt.TitleParams:
    return alt.TitleParams(text=title or "", subtitle=subtitle or alt.Undefined, anchor="start")


def _require(frame: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs columns {missing}; got {frame.columns}")


def _as_float(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    return frame.with_columns(pl.col(c).cast(pl.Float64) for c in columns)


def _labels(values: Sequence[Any], fmt: Any) -> list[str]:
    return [fmt(v) for v in values]


def _count_axis(title: str, decimals: int = 0, **kwargs: Any) -> alt.Axis:
    return alt.Axis(title=title, labelExpr=indian_number_expr("datum.value", decimals), **kwargs)


def _label_decimals(values: Sequence[float | None]) -> int:
    """Decimals for axis/legend labels of rates: 0 from 10 up, else enough to tell ticks apart
    (a rate of 0.23 per 100,000 would otherwise get ticks all labelled "0")."""
    top = max([abs(v) for v in values if v is not None and math.isfinite(v)] or [0.0])
    return 0 if top >= 10 else 1 if top >= 1 else 2


def _percent_axis(title: str, **kwargs: Any) -> alt.Axis:
    return alt.Axis(title=title, format=".0%", **kwargs)


def _category_order(frame: pl.DataFrame, column: str, order: Sequence[str] | None) -> list[str]:
    """``order`` restricted to the values present, followed by any values it does not list."""
    present = [v for v in frame[column].unique(maintain_order=True).to_list() if v is not None]
    if order is None:
        return present
    listed = [v for v in order if v in set(present)]
    return listed + [v for v in present if v not in set(listed)]


def _ratio_domain(values: Sequence[float | None], floor: float, at_least: float) -> list[float]:
    """A log-scale domain symmetric about 1 that covers the values (clipped to [floor, 1/floor])."""
    finite = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    spread = max([at_least, *(max(v, 1 / v) for v in finite)])
    spread = min(spread, 1 / floor)
    return [1 / spread, spread]


def log_ticks(domain: Sequence[float]) -> list[float]:
    """1-2-5 tick values inside a positive log-scale domain: [0.1, 0.2, 0.5, 1, 2, 5, …]."""
    low, high = domain
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            tick = round(mantissa * 10.0**exponent, 10)
            if low <= tick <= high:
                ticks.append(tick)
    return ticks


def _clip_ratio(value: float | None, floor: float) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return min(max(value, floor), 1 / floor)


# --------------------------------------------------------------------------------------------
# Geography


def _state_values(
    values: pl.DataFrame,
    *,
    value_col: str,
    label_col: str | None,
    tooltip: Mapping[str, str] | None,
    diverging: bool,
    ratio_floor: float,
) -> pl.DataFrame:
    """One row per state/UT in the boundary file: iso_code, name, value (clipped to the
    log colour range for ratios), raw_value, value_label, tip_0…"""
    _require(values, ["iso_code", value_col, *(tooltip or {})], "a state chart")
    # Rows without a state (unknown residence) belong in the missing rate, not on the map.
    frame = _as_float(values.filter(pl.col("iso_code").is_not_null()), [value_col])
    states = geo.state_table().select("iso_code", "name")
    unknown = sorted(set(frame["iso_code"]) - set(states["iso_code"]))
    if unknown:
        raise ValueError(f"iso_code values not in the boundary file: {unknown}")
    if frame["iso_code"].is_duplicated().any():
        raise ValueError("a state chart needs one row per iso_code")
    fmt = format_ratio if diverging else format_number
    raw = frame[value_col].to_list()
    # A label column can explain a null value (a suppressed count shows "< 10").
    labels = frame[label_col].to_list() if label_col else _labels(raw, fmt)
    columns: dict[str, Any] = {
        "iso_code": frame["iso_code"].to_list(),
        "value": [_clip_ratio(v, ratio_floor) for v in raw] if diverging else raw,
        "raw_value": raw,  # unclipped, for sorting
        "value_label": [
            "no data" if lab is None or (v is None and not label_col) else str(lab)
            for v, lab in zip(raw, labels, strict=True)
        ],
    }
    for i, column in enumerate(tooltip or {}):
        tips = frame[column].to_list()
        columns[f"tip_{i}"] = [t if isinstance(t, str) else format_number(t) for t in tips]
    joined = pl.DataFrame(columns).with_columns(
        pl.col("iso_code").cast(pl.String), pl.col("value", "raw_value").cast(pl.Float64)
    )
    return states.join(joined, on="iso_code", how="left").with_columns(
        pl.col("value_label").fill_null("no data"),
        *(pl.col(c).fill_null(MISSING) for c in columns if c.startswith("tip_")),
    )


def _colour_scale(
    diverging: bool, domain: list[float] | None, sequential_scale: SequentialScale
) -> alt.Scale:
    if diverging:
        return alt.Scale(
            type="log",
            scheme=DIVERGING_SCHEME,
            reverse=True,
            domain=domain or alt.Undefined,
            domainMid=1,
            clamp=True,
        )
    return alt.Scale(type=sequential_scale, scheme=SEQUENTIAL_SCHEME, zero=True)


def _state_tooltip(value_title: str, tooltip: Mapping[str, str] | None) -> list[alt.Tooltip]:
    tips = [
        alt.Tooltip("name:N", title="State/UT"),
        alt.Tooltip("value_label:N", title=value_title),
    ]
    tips += [alt.Tooltip(f"tip_{i}:N", title=t) for i, t in enumerate((tooltip or {}).values())]
    return tips


def _no_data_note(frame: pl.DataFrame) -> str | None:
    missing = frame.filter(pl.col("value").is_null()).height
    return f"Grey: no data ({missing} of {frame.height} states/UTs)" if missing else None


def choropleth(
    values: pl.DataFrame,
    *,
    value_col: str,
    value_title: str,
    diverging: bool = False,
    label_col: str | None = None,
    tooltip: Mapping[str, str] | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    sequential_scale: SequentialScale = "linear",
    ratio_floor: float = 0.05,
    mark_small_states: bool = True,
    width: int = 460,
    height: int = 500,
    boundaries: str | None = None,
) -> alt.LayerChart:
    """India map by state/UT, coloured by ``values[value_col]`` (one row per ``iso_code``).

    Sequential (YlGnBu) for counts and rates; ``diverging=True`` for representation ratios: a
    log scale centred on parity (domainMid 1), symmetric about 1 and clamped to
    [ratio_floor, 1/ratio_floor] so a ratio of 0 still gets the darkest "under" colour (the
    tooltip shows the true value). States without a row or with a null value are grey.
    ``label_col`` holds pre-formatted value strings (default: formatted here); ``tooltip`` maps
    extra columns to tooltip titles. Small states/UTs get a marker circle so they can be seen
    and clicked. Clicking sets the ``state_select`` selection (field ``iso_code``).

    The chart's data is the 36 value rows (one per state/UT, inline: ``chart.data.values``);
    each row looks its shape up by ``iso_code`` in the boundaries, which are ``boundaries``, a
    URL the browser fetches (the app: :data:`geo.BOUNDARIES_URL`), or inline in the spec when
    ``None`` (rendering without a server, as the datasheet does).
    """
    frame = _state_values(
        values,
        value_col=value_col,
        label_col=label_col,
        tooltip=tooltip,
        diverging=diverging,
        ratio_floor=ratio_floor,
    )
    domain = (
        _ratio_domain(frame["value"].to_list(), ratio_floor, at_least=2.0) if diverging else None
    )
    scale = _colour_scale(diverging, domain, sequential_scale)
    legend = alt.Legend(
        title=value_title,
        orient="top",
        direction="horizontal",
        gradientLength=160,
        titleLimit=220,
        format="~g" if diverging else alt.Undefined,
        labelExpr=alt.Undefined
        if diverging
        else indian_number_expr("datum.value", _label_decimals(frame["value"].to_list())),
    )
    colour = alt.Color("value:Q", scale=scale, legend=legend)
    tips = _state_tooltip(value_title, tooltip)
    selection = state_selection()
    highlight = alt.when(selection, empty=False)
    stroke = highlight.then(alt.value("#1a1a1a")).otherwise(alt.value("white"))
    stroke_width = highlight.then(alt.value(1.6)).otherwise(alt.value(0.4))
    opacity = alt.when(selection).then(alt.value(1.0)).otherwise(alt.value(0.35))
    # Two layers, because Vega-Lite drops (or recolours as zero) rows whose colour field is
    # null: every state drawn grey first, coloured states on top. Clicks on any layer of the
    # same view feed the selection, which is defined on the base layer.
    base = (
        _Chart()
        .mark_geoshape(fill=NO_DATA_COLOUR)
        .transform_filter("isValid(datum.geo)")
        .encode(
            shape=alt.Shape("geo:G"),
            stroke=stroke,
            strokeWidth=stroke_width,
            opacity=opacity,
            tooltip=tips,
        )
        .add_params(selection)
    )
    coloured = (
        _Chart()
        .mark_geoshape()
        .transform_filter("isValid(datum.geo) && isValid(datum.value)")
        .encode(
            shape=alt.Shape("geo:G"),
            color=colour,
            stroke=stroke,
            strokeWidth=stroke_width,
            opacity=opacity,
            tooltip=tips,
        )
    )
    layers: list[alt.Chart] = [base, coloured]
    if mark_small_states:
        layers += _small_state_markers(colour, opacity, tips)
    notes = [n for n in (subtitle, _no_data_note(frame)) if n]
    return alt.layer(
        *layers,
        data=_inline(_with_label_points(frame)),
        # One lookup for every layer: each value row gets its state's feature as "geo".
        transform=[geo.boundary_lookup(boundaries, as_="geo")],
        projection=alt.Projection(**INDIA_PROJECTION),
        width=width,
        height=height,
        title=_title(title, notes),
    )


def _with_label_points(frame: pl.DataFrame) -> pl.DataFrame:
    """The value rows plus where a small state's marker goes (``small``, label_lon/lat, the
    short code), so markers read the same rows as the shapes."""
    small = set(geo.small_states())
    points = geo.state_table().select(
        "iso_code",
        "label_lon",
        "label_lat",
        small=pl.col("iso_code").is_in(small),
        short=pl.col("iso_code").str.replace("IN-", "", literal=True),
    )
    return frame.join(points, on="iso_code", how="left")


def _small_state_markers(
    colour: alt.Color, opacity: Any, tips: list[alt.Tooltip]
) -> list[alt.Chart]:
    position = {"longitude": "label_lon:Q", "latitude": "label_lat:Q"}
    ring = {"stroke": "#333333", "strokeWidth": 0.8, "size": 70}
    grey = (
        _Chart()
        .mark_circle(color=NO_DATA_COLOUR, fillOpacity=1, **ring)
        .transform_filter("datum.small")
        .encode(**position, opacity=opacity, tooltip=tips)
    )
    filled = (
        _Chart()
        .mark_circle(fillOpacity=1, **ring)
        .transform_filter("datum.small && isValid(datum.value)")
        .encode(**position, color=colour, opacity=opacity, tooltip=tips)
    )
    text = {"align": "left", "dx": 7, "fontSize": 9, "fontWeight": "bold"}
    # A white halo under the code keeps it legible over dark states.
    halo = (
        _Chart()
        .mark_text(**text, color="white", stroke="white", strokeWidth=3, strokeJoin="round")
        .transform_filter("datum.small")
        .encode(**position, text="short:N", tooltip=tips)
    )
    codes = (
        _Chart()
        .mark_text(**text, color="#1a1a1a")
        .transform_filter("datum.small")
        .encode(**position, text="short:N", tooltip=tips)
    )
    return [grey, filled, halo, codes]


def state_bars(
    values: pl.DataFrame,
    *,
    value_col: str,
    value_title: str,
    diverging: bool = False,
    label_col: str | None = None,
    tooltip: Mapping[str, str] | None = None,
    title: str | None = None,
    sequential_scale: SequentialScale = "linear",
    ratio_floor: float = 0.05,
    include_missing: bool = True,
    width: int = 300,
    row_height: int = 15,
) -> alt.LayerChart:
    """Sorted horizontal bars by state/UT, the map's companion: small UTs stay visible/clickable.

    Sequential values are bars from 0, largest first; ratios are bars from parity (1) on a log
    scale, smallest (most under-represented) first. Each row ends in its value label, which
    is also clickable when the bar is too short to hit. States without data are listed last
    as "no data" (unless ``include_missing=False``). Bars take the map's colours (pass the
    same ``sequential_scale``) and the same ``state_select`` selection.
    """
    frame = _state_values(
        values,
        value_col=value_col,
        label_col=label_col,
        tooltip=tooltip,
        diverging=diverging,
        ratio_floor=ratio_floor,
    )
    if not include_missing:
        frame = frame.filter(pl.col("value").is_not_null())
    frame = frame.sort(["raw_value", "name"], descending=[not diverging, False], nulls_last=True)
    order = frame["name"].to_list()
    values_list = frame["value"].to_list()
    if diverging:
        finite = [v for v in values_list if v is not None]
        # Room for the value labels beyond the longest bars on either side of parity.
        domain = [min([0.5, *finite]) / 2.5, max([2.0, *finite]) * 2.5]
        x_scale = alt.Scale(type="log", domain=domain, nice=False)
        x_axis = alt.Axis(title=value_title, values=log_ticks(domain), format="~g", grid=True)
        baseline: Any = alt.datum(1)
        frame = frame.with_columns(label_at=pl.col("value").fill_null(1.0))
    else:
        top = max([v for v in values_list if v is not None] or [1.0]) or 1.0
        x_scale = alt.Scale(domain=[0, top * 1.25], nice=False)
        x_axis = _count_axis(value_title, _label_decimals(values_list), grid=True)
        baseline = alt.datum(0)
        frame = frame.with_columns(label_at=pl.col("value").fill_null(0.0))
    y = alt.Y("name:N", sort=order, title=None, axis=alt.Axis(labelLimit=200))
    x = alt.X("value:Q", scale=x_scale, axis=x_axis)
    selection = state_selection()
    opacity = alt.when(selection).then(alt.value(1.0)).otherwise(alt.value(0.35))
    tips = _state_tooltip(value_title, tooltip)
    colour_domain = _ratio_domain(values_list, ratio_floor, 2.0) if diverging else None
    colour = alt.Color(
        "value:Q", scale=_colour_scale(diverging, colour_domain, sequential_scale), legend=None
    )
    bars = (
        _Chart()
        .mark_bar(stroke="#555555", strokeWidth=0.3)
        .transform_filter("isValid(datum.value)")
        .encode(y=y, x=x, x2=baseline, color=colour, opacity=opacity, tooltip=tips)
        .add_params(selection)
    )
    labels = [
        chart.encode(opacity=opacity, tooltip=tips)
        for chart in _bar_end_labels(y, x_scale, diverging)
    ]
    layers = [bars, *labels]
    if diverging:
        layers.append(_Chart().mark_rule(color="#333333").encode(x=alt.datum(1)))
    return alt.layer(
        *layers,
        data=_inline(frame),
        width=width,
        height=alt.Step(row_height),
        title=_title(title),
    )


def _bar_end_labels(y: alt.Y, x_scale: alt.Scale, diverging: bool) -> list[alt.Chart]:
    """Value labels just past each bar end (left of the bar for ratios below parity).

    Vega-Lite cannot switch text alignment per row, so ratios get two filtered text layers.
    """
    x = alt.X("label_at:Q", scale=x_scale)
    text = alt.Text("value_label:N")
    right = _Chart().mark_text(align="left", dx=3, fontSize=10).encode(y=y, x=x, text=text)
    if not diverging:
        return [right]
    left = _Chart().mark_text(align="right", dx=-3, fontSize=10).encode(y=y, x=x, text=text)
    return [
        left.transform_filter("datum.label_at < 1"),
        right.transform_filter("datum.label_at >= 1"),
    ]


# --------------------------------------------------------------------------------------------
# Distributions


def category_bars(
    frame: pl.DataFrame,
    *,
    category_col: str,
    count_col: str,
    category_title: str,
    count_title: str = "Patients",
    order: Sequence[str] | None = None,
    horizontal: bool = True,
    title: str | None = None,
    subtitle: str | None = None,
    colour: str = OKABE_ITO[0],
) -> alt.LayerChart:
    """Counts by a category (modality, sex, age band, facility type …) with value labels.

    Bars follow ``order`` (e.g. :data:`~dashboard.contract.AGE_BANDS` for census order; values
    it does not list come last) or, without it, descending count. Tooltips give the count with
    Indian grouping and its share of the total shown.
    """
    _require(frame, [category_col, count_col], "category_bars")
    data = _as_float(frame.select(category_col, count_col), [count_col]).rename(
        {category_col: "category", count_col: "count"}
    )
    if order is None:
        data = data.sort(["count", "category"], descending=[True, False], nulls_last=True)
    total = data["count"].sum() or None
    counts = data["count"].to_list()
    data = data.with_columns(
        count_label=pl.Series(_labels(counts, format_number), dtype=pl.String),
        share_label=pl.Series(
            [format_percent(c / total if total and c is not None else None) for c in counts],
            dtype=pl.String,
        ),
    )
    sort = _category_order(data, "category", order)
    cat = {"field": "category", "type": "nominal", "sort": sort, "title": category_title}
    top = max([c for c in counts if c is not None] or [1.0]) or 1.0
    value = {
        "field": "count",
        "type": "quantitative",
        "axis": _count_axis(count_title),
        "scale": alt.Scale(domain=[0, top * (1.18 if horizontal else 1.08)]),  # label room
    }
    tips = [
        alt.Tooltip("category:N", title=category_title),
        alt.Tooltip("count_label:N", title=count_title),
        alt.Tooltip("share_label:N", title="Share of total"),
    ]
    if horizontal:
        position = {"y": alt.Y(**cat), "x": alt.X(**value)}
        text_mark = _Chart().mark_text(align="left", dx=3, fontSize=10)
        size = {"height": alt.Step(18), "width": 360}
    else:
        position = {"x": alt.X(**cat, axis=alt.Axis(labelAngle=0)), "y": alt.Y(**value)}
        text_mark = _Chart().mark_text(baseline="bottom", dy=-2, fontSize=9)
        size = {"width": alt.Step(34), "height": 260}
    bars = _Chart().mark_bar(color=colour).encode(**position, tooltip=tips)
    text = text_mark.encode(**position, text=alt.Text("count_label:N"), tooltip=tips)
    return alt.layer(bars, text, data=_inline(data), **size, title=_title(title, subtitle))


def _long_shares(
    frame: pl.DataFrame,
    keys: Sequence[str],
    observed_col: str,
    reference_col: str,
    observed_title: str,
    reference_title: str,
) -> pl.DataFrame:
    """One row per key and series (observed/reference) with share, labels and the ratio."""
    _require(frame, [*keys, observed_col, reference_col], "a share chart")
    shares = [observed_col, reference_col]
    wide = _as_float(frame.select(*keys, *shares), shares)
    observed, reference = wide[observed_col].to_list(), wide[reference_col].to_list()
    ratios = [
        o / r if o is not None and r else None for o, r in zip(observed, reference, strict=True)
    ]
    wide = wide.with_columns(
        observed_label=pl.Series(_labels(observed, format_percent), dtype=pl.String),
        reference_label=pl.Series(_labels(reference, format_percent), dtype=pl.String),
        rr_label=pl.Series(_labels(ratios, format_ratio), dtype=pl.String),
    )
    parts = [
        wide.with_columns(series=pl.lit(title), share=pl.col(col))
        for title, col in ((observed_title, observed_col), (reference_title, reference_col))
    ]
    return pl.concat(parts).drop(observed_col, reference_col)


def _share_tooltip(
    category_title: str, observed_title: str, reference_title: str, extra: Sequence[Any] = ()
) -> list[alt.Tooltip]:
    return [
        alt.Tooltip("category:N", title=category_title),
        *extra,
        alt.Tooltip("observed_label:N", title=observed_title),
        alt.Tooltip("reference_label:N", title=reference_title),
        alt.Tooltip("rr_label:N", title="Representation ratio"),
    ]


def share_vs_reference(
    frame: pl.DataFrame,
    *,
    category_col: str,
    category_title: str,
    observed_col: str = "observed_share",
    reference_col: str = "reference_share",
    observed_title: str = "This dataset",
    reference_title: str = "Population (Census 2011)",
    order: Sequence[str] | None = None,
    title: str | None = None,
    subtitle: str | None = None,
) -> alt.Chart:
    """Grouped horizontal bars: the data's share of each category beside the reference share.

    Shares are fractions (0–1) of the whole, e.g. from the gap table; the tooltip adds the
    representation ratio observed/reference. Categories follow ``order`` or the frame's order.
    """
    data = _long_shares(
        frame.rename({category_col: "category"}),
        ["category"],
        observed_col,
        reference_col,
        observed_title,
        reference_title,
    )
    series = alt.Color(
        "series:N",
        scale=alt.Scale(
            domain=[observed_title, reference_title], range=[OKABE_ITO[0], REFERENCE_COLOUR]
        ),
        legend=alt.Legend(title=None, orient="top"),
    )
    return (
        _Chart(_inline(data))
        .mark_bar()
        .encode(
            y=alt.Y(
                "category:N", sort=_category_order(data, "category", order), title=category_title
            ),
            yOffset=alt.YOffset("series:N", sort=[observed_title, reference_title]),
            x=alt.X("share:Q", axis=_percent_axis("Share of total (%)")),
            color=series,
            tooltip=_share_tooltip(category_title, observed_title, reference_title),
        )
        .properties(width=360, height=alt.Step(11), title=_title(title, subtitle))
    )


_SEX_SIDES = {"m": "Male", "male": "Male", "f": "Female", "female": "Female"}


def age_sex_pyramid(
    frame: pl.DataFrame,
    *,
    age_col: str = "age_band",
    sex_col: str = "sex",
    observed_col: str = "observed_share",
    reference_col: str = "reference_share",
    observed_title: str = "This dataset",
    reference_title: str = "Census 2011",
    age_order: Sequence[str] = AGE_BANDS,
    title: str | None = None,
    subtitle: str | None = None,
) -> alt.LayerChart:
    """Age–sex pyramid: males left, females right, youngest at the bottom.

    Wide grey bars are the reference (census) shares, narrower coloured bars the data's shares
    on top of them, so a coloured bar short of its grey bar is an under-represented group.
    Shares are fractions of the whole (males and females together sum to 1 in each series).
    Sex may be coded M/F or male/female; other values (O, U) are left out of the pyramid.
    """
    _require(frame, [age_col, sex_col], "age_sex_pyramid")
    sides = frame.with_columns(
        side=pl.col(sex_col)
        .cast(pl.String)
        .str.to_lowercase()
        .replace_strict(_SEX_SIDES, default=None)
    ).filter(pl.col("side").is_not_null())
    data = _long_shares(
        sides.rename({age_col: "category"}),
        ["category", "side"],
        observed_col,
        reference_col,
        observed_title,
        reference_title,
    ).with_columns(
        signed=pl.when(pl.col("side") == "Male").then(-pl.col("share")).otherwise(pl.col("share")),
        colour_key=pl.when(pl.col("series") == reference_title)
        .then(pl.lit(reference_title))
        .otherwise(pl.col("side") + " – " + pl.col("series")),
    )
    extent = max([abs(v) for v in data["signed"].to_list() if v is not None] or [0.01]) * 1.08
    male_key, female_key = f"Male – {observed_title}", f"Female – {observed_title}"
    colour = alt.Color(
        "colour_key:N",
        scale=alt.Scale(
            domain=[male_key, female_key, reference_title],
            range=[MALE_COLOUR, FEMALE_COLOUR, REFERENCE_COLOUR],
        ),
        legend=alt.Legend(title=None, orient="top"),
    )
    y = alt.Y(
        "category:N",
        sort=list(reversed(_category_order(data, "category", age_order))),
        title="Age band (years)",
        axis=alt.Axis(ticks=False, domain=False),
    )
    x = alt.X(
        "signed:Q",
        scale=alt.Scale(domain=[-extent, extent], nice=False),
        axis=alt.Axis(
            title="← Males · share of all people (%) · Females →",
            labelExpr="format(abs(datum.value), '.0%')",
            tickCount=8,
        ),
    )
    tips = _share_tooltip(
        "Age band", observed_title, reference_title, [alt.Tooltip("side:N", title="Sex")]
    )
    reference = (
        _Chart()
        .mark_bar(opacity=0.9)
        .transform_filter(alt.datum.series == reference_title)
        .encode(x=x, y=y, color=colour, tooltip=tips)
    )
    observed = (
        _Chart()
        .mark_bar(height=alt.RelativeBandSize(0.5))
        .transform_filter(alt.datum.series == observed_title)
        .encode(x=x, y=y, color=colour, tooltip=tips)
    )
    centre = _Chart().mark_rule(color="#333333", strokeWidth=0.8).encode(x=alt.datum(0))
    return alt.layer(
        reference,
        observed,
        centre,
        data=_inline(data),
        width=420,
        height=alt.Step(18),
        title=_title(title, subtitle),
    )


# --------------------------------------------------------------------------------------------
# Time, crosses and gaps


def _limit_categories(frame: pl.DataFrame, max_categories: int) -> pl.DataFrame:
    """Keep the largest ``max_categories - 1`` categories and lump the rest into "Other"."""
    totals = (
        frame.group_by("category")
        .agg(pl.col("count").sum())
        .sort(["count", "category"], descending=[True, False])
    )
    if totals.height <= max_categories:
        return frame
    keep = totals["category"].head(max_categories - 1).to_list()
    lumped = frame.with_columns(
        category=pl.when(pl.col("category").is_in(keep))
        .then(pl.col("category"))
        .otherwise(pl.lit("Other"))
    )
    return lumped.group_by("month", "category").agg(pl.col("count").sum())


def accrual_chart(
    frame: pl.DataFrame,
    *,
    month_col: str = "month",
    count_col: str = "studies",
    count_title: str = "Studies",
    category_col: str | None = None,
    category_title: str | None = None,
    cumulative: bool = False,
    title: str | None = None,
    subtitle: str | None = None,
    max_categories: int = 7,
) -> alt.Chart | alt.LayerChart:
    """Monthly accrual: a line with points, or areas stacked by ``category_col``.

    ``month_col`` holds dates (any day of the month) or 'YYYY-MM' strings. ``cumulative``
    plots running totals. With more than ``max_categories`` categories the smallest are
    lumped into "Other" so every colour stays distinguishable.
    """
    _require(frame, [month_col, count_col, *([category_col] if category_col else [])], "accrual")
    month = pl.col(month_col)
    if frame.schema[month_col] == pl.String:
        month = (month + "-01").str.slice(0, 10).str.to_date("%Y-%m-%d")
    data = (
        frame.select(
            month=month.cast(pl.Date).dt.truncate("1mo"),
            category=pl.col(category_col).cast(pl.String) if category_col else pl.lit("all"),
            count=pl.col(count_col).cast(pl.Float64),
        )
        .group_by("month", "category")
        .agg(pl.col("count").sum())
    )
    # One colour per category at most: the palette has eight.
    data = _limit_categories(data, min(max_categories, len(OKABE_ITO))).sort("category", "month")
    if cumulative:
        data = data.with_columns(pl.col("count").cum_sum().over("category"))
    data = data.with_columns(
        month_label=pl.col("month").dt.strftime("%b %Y"),
        count_label=pl.Series(_labels(data["count"].to_list(), format_number), dtype=pl.String),
    )
    what = f"{count_title}, cumulative" if cumulative else f"{count_title} per month"
    x = alt.X("month:T", timeUnit="yearmonth", title="Month", axis=alt.Axis(format="%b %Y"))
    y = alt.Y("count:Q", stack=bool(category_col) or None, axis=_count_axis(what))
    tips = [alt.Tooltip("month_label:N", title="Month"), alt.Tooltip("count_label:N", title=what)]
    chart = _Chart(_inline(data)).properties(width=560, height=260, title=_title(title, subtitle))
    if category_col:
        totals = data.group_by("category").agg(pl.col("count").sum())
        ranked = totals.filter(pl.col("category") != "Other").sort(
            ["count", "category"], descending=[True, False]
        )["category"]
        colours = dict(zip(ranked, OKABE_ITO, strict=False)) | {"Other": OTHER_COLOUR}
        # Legend top-down = stack top-down: "Other" on top, the largest category on the flat
        # baseline where its trend is easiest to read.
        other = ["Other"] if "Other" in set(totals["category"]) else []
        stack = [*other, *reversed(ranked)]
        colour = alt.Color(
            "category:N",
            scale=alt.Scale(domain=stack, range=[colours[c] for c in stack]),
            sort=stack,
            legend=alt.Legend(title=category_title or category_col),
        )
        return chart.mark_area(opacity=0.9, line={"color": "white", "strokeWidth": 0.5}).encode(
            x=x,
            y=y,
            color=colour,
            tooltip=[alt.Tooltip("category:N", title=category_title or category_col), *tips],
        )
    line = chart.mark_area(line={"color": OKABE_ITO[0]}, color=OKABE_ITO[0], opacity=0.15).encode(
        x=x, y=y
    )
    points = chart.mark_point(filled=True, color=OKABE_ITO[0], size=30).encode(
        x=x, y=y, tooltip=tips
    )
    return alt.layer(line, points)


def heatmap(
    frame: pl.DataFrame,
    *,
    x_col: str,
    y_col: str,
    value_col: str,
    x_title: str,
    y_title: str,
    value_title: str,
    label_col: str | None = None,
    x_order: Sequence[str] | None = None,
    y_order: Sequence[str] | None = None,
    show_values: bool = True,
    title: str | None = None,
    subtitle: str | None = None,
) -> alt.LayerChart:
    """A heatmap of ``value_col`` over two categories (e.g. modality × condition).

    Cells print their value (Indian grouping, or ``label_col`` such as a privacy-suppressed
    "< 10"); cells whose value is null are grey. Dark cells get white text.
    """
    _require(frame, [x_col, y_col, value_col], "heatmap")
    data = _as_float(frame, [value_col]).select(
        x=pl.col(x_col).cast(pl.String),
        y=pl.col(y_col).cast(pl.String),
        value=pl.col(value_col),
        value_label=(
            pl.col(label_col).cast(pl.String)
            if label_col
            else pl.Series(_labels(frame[value_col].to_list(), format_number), dtype=pl.String)
        ),
    )
    top = max([v for v in data["value"].to_list() if v is not None] or [0.0])
    x = alt.X(
        "x:N",
        sort=_category_order(data, "x", x_order),
        title=x_title,
        axis=alt.Axis(labelAngle=-40, orient="top"),
    )
    y = alt.Y("y:N", sort=_category_order(data, "y", y_order), title=y_title)
    tips = [
        alt.Tooltip("y:N", title=y_title),
        alt.Tooltip("x:N", title=x_title),
        alt.Tooltip("value_label:N", title=value_title),
    ]
    colour = alt.Color(
        "value:Q",
        scale=alt.Scale(scheme=SEQUENTIAL_SCHEME, zero=True),
        legend=alt.Legend(title=value_title, labelExpr=indian_number_expr("datum.value")),
    )
    grey = _Chart().mark_rect(color=NO_DATA_COLOUR).encode(x=x, y=y, tooltip=tips)
    cells = (
        _Chart()
        .mark_rect(stroke="white", strokeWidth=1)
        .transform_filter("isValid(datum.value)")
        .encode(x=x, y=y, color=colour, tooltip=tips)
    )
    layers = [grey, cells]
    if show_values:
        text_colour = (
            alt.when(f"datum.value > {top * 0.55}")
            .then(alt.value("white"))
            .otherwise(alt.value("#1a1a1a"))
        )
        layers.append(
            _Chart()
            .mark_text(fontSize=10)
            .encode(x=x, y=y, text="value_label:N", color=text_colour, tooltip=tips)
        )
    return alt.layer(
        *layers,
        data=_inline(data),
        width=alt.Step(52),
        height=alt.Step(26),
        title=_title(title, subtitle),
    )


def representation_ratio_chart(
    gaps: pl.DataFrame,
    *,
    tau: float = 0.8,
    label_title: str = "Group",
    title: str | None = None,
    subtitle: str | None = None,
    ratio_floor: float = 0.01,
    extra_tooltip: Mapping[str, str] | None = None,
) -> alt.LayerChart:
    """Representation ratios with 95 % Wilson intervals against the tolerance band [τ, 1/τ].

    ``gaps`` has columns label, rr, rr_low, rr_high, flag (under, uncertain, ok, over,
    insufficient). Rows are sorted by rr, most under-represented on top; the x axis is
    logarithmic, so halving and doubling sit equally far from the parity line at 1. Ratios
    below ``ratio_floor`` (including 0) are drawn at the floor; tooltips show true values.
    ``extra_tooltip`` maps further columns (n, expected, shortfall …) to tooltip titles.
    """
    columns = ["label", "rr", "rr_low", "rr_high", "flag"]
    _require(gaps, [*columns, *(extra_tooltip or {})], "representation_ratio_chart")
    data = _as_float(gaps, ["rr", "rr_low", "rr_high"]).sort("rr", nulls_last=True)
    rr, low, high = (data[c].to_list() for c in ("rr", "rr_low", "rr_high"))
    tips_extra = {
        f"tip_{i}": [v if isinstance(v, str) else format_number(v) for v in data[c].to_list()]
        for i, c in enumerate(extra_tooltip or {})
    }
    data = data.select("label", pl.col("flag").cast(pl.String)).with_columns(
        rr=pl.Series([_clip_ratio(v, ratio_floor) for v in rr], dtype=pl.Float64),
        rr_low=pl.Series([_clip_ratio(v, ratio_floor) for v in low], dtype=pl.Float64),
        rr_high=pl.Series([_clip_ratio(v, ratio_floor) for v in high], dtype=pl.Float64),
        rr_label=pl.Series(
            [
                f"{format_ratio(r)} ({format_interval(lo, hi)})" if r is not None else MISSING
                for r, lo, hi in zip(rr, low, high, strict=True)
            ],
            dtype=pl.String,
        ),
        **{k: pl.Series(v, dtype=pl.String) for k, v in tips_extra.items()},
    )
    finite = [v for v in [*data["rr_low"].to_list(), *data["rr_high"].to_list()] if v]
    domain = [min([tau, *finite]) / 1.3, max([1 / tau, *finite]) * 1.3]
    x_scale = alt.Scale(type="log", domain=domain, nice=False)
    x_axis = alt.Axis(
        title="Representation ratio (observed share ÷ reference share, log scale)",
        values=log_ticks(domain),
        format="~g",
    )
    y = alt.Y(
        "label:N", sort=data["label"].to_list(), title=label_title, axis=alt.Axis(labelLimit=260)
    )
    flags = alt.Scale(domain=list(FLAG_ORDER), range=list(FLAG_COLOURS))
    flag_legend = alt.Legend(title="Flag", orient="top")
    tips = [
        alt.Tooltip("label:N", title=label_title),
        alt.Tooltip("rr_label:N", title="RR (95% CI)"),
        alt.Tooltip("flag:N", title="Flag"),
        *(alt.Tooltip(f"tip_{i}:N", title=t) for i, t in enumerate((extra_tooltip or {}).values())),
    ]
    band = (
        _Chart(alt.Data(values=[{"low": tau, "high": 1 / tau}]))
        .mark_rect(color="#009E73", opacity=0.12)
        .encode(x=alt.X("low:Q", scale=x_scale, axis=x_axis), x2="high:Q")
    )
    parity = _Chart().mark_rule(color="#333333", strokeWidth=1).encode(x=alt.datum(1))
    bars = (
        _Chart(_inline(data))
        .mark_rule(strokeWidth=2)
        .encode(
            y=y,
            x=alt.X("rr_low:Q", scale=x_scale),
            x2="rr_high:Q",
            color=alt.Color("flag:N", scale=flags, legend=flag_legend),
            tooltip=tips,
        )
    )
    points = (
        _Chart(_inline(data))
        .mark_point(filled=True, size=70, opacity=1)
        .encode(
            y=y,
            x=alt.X("rr:Q", scale=x_scale),
            color=alt.Color("flag:N", scale=flags, legend=flag_legend),
            shape=alt.Shape(
                "flag:N",
                scale=alt.Scale(domain=list(FLAG_ORDER), range=list(FLAG_SHAPES)),
                legend=flag_legend,
            ),
            tooltip=tips,
        )
    )
    band_note = (
        f"Shaded: tolerance band {format_ratio(tau)}–{format_ratio(1 / tau)} (τ = {tau:g}); "
        "lines: 95% Wilson intervals"
    )
    notes = [n for n in (subtitle, band_note) if n]
    return alt.layer(
        band, parity, bars, points, width=420, height=alt.Step(20), title=_title(title, notes)
    )


def series_over_time(
    frame: pl.DataFrame,
    *,
    month_col: str = "month",
    value_col: str,
    series_col: str,
    value_title: str,
    series_title: str,
    label_col: str | None = None,
    series_order: Sequence[str] | None = None,
    value_format: str = ".2f",
    title: str | None = None,
    subtitle: str | None = None,
) -> alt.LayerChart:
    """A measure per month, one line per series (e.g. the JS distance per dimension).

    For rates and scores rather than counts (counts go in :func:`accrual_chart`). ``month_col``
    holds dates or 'YYYY-MM' strings; null values leave a gap. Lines take the Okabe–Ito
    colours in ``series_order`` and carry points with tooltips (``label_col``: pre-formatted
    values; default: the value with ``value_format``). The y axis starts at 0.
    """
    _require(frame, [month_col, value_col, series_col], "series_over_time")
    month = pl.col(month_col)
    if frame.schema[month_col] == pl.String:
        month = (month + "-01").str.slice(0, 10).str.to_date("%Y-%m-%d")
    values = frame[value_col].cast(pl.Float64).to_list()
    labels = (
        frame[label_col].cast(pl.String).to_list()
        if label_col
        else [MISSING if v is None else format(v, value_format) for v in values]
    )
    data = frame.select(
        month=month.cast(pl.Date),
        series=pl.col(series_col).cast(pl.String),
        value=pl.col(value_col).cast(pl.Float64),
    ).with_columns(
        value_label=pl.Series(labels, dtype=pl.String),
        month_label=pl.col("month").dt.strftime("%b %Y"),
    )
    order = _category_order(data, "series", series_order)
    colour = alt.Color(
        "series:N",
        scale=alt.Scale(domain=order, range=list(OKABE_ITO[: len(order)])),
        sort=order,
        legend=alt.Legend(title=series_title, orient="top"),
    )
    x = alt.X("month:T", timeUnit="yearmonth", title="Month", axis=alt.Axis(format="%b %Y"))
    y = alt.Y("value:Q", title=value_title, scale=alt.Scale(zero=True))
    tips = [
        alt.Tooltip("series:N", title=series_title),
        alt.Tooltip("month_label:N", title="Month"),
        alt.Tooltip("value_label:N", title=value_title),
    ]
    base = _Chart().encode(x=x, y=y, color=colour)
    lines = base.mark_line(strokeWidth=2).transform_filter("isValid(datum.value)")
    points = (
        base.mark_point(filled=True, size=22)
        .transform_filter("isValid(datum.value)")
        .encode(tooltip=tips)
    )
    return alt.layer(
        lines, points, data=_inline(data), width=560, height=260, title=_title(title, subtitle)
    )
