"""Chart builders: specs compile, encodings and titles are right, and the map really draws."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import altair as alt
import polars as pl
import pyarrow as pa
import pytest
import vl_convert as vlc
from PIL import Image
from playwright.sync_api import Page
from shapely.geometry import mapping, shape
from shapely.ops import orient
from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec

from dashboard import charts, geo
from dashboard.contract import AGE_BANDS
from dashboard.formatting import format_number
from dashboard.reference import GEO_ATTRIBUTION, load_reference
from dashboard.views.widgets import natural_size

STATIC_DIR = geo.STATIC_BOUNDARIES.parent
MISSING_STATES = ("IN-UP", "IN-KA", "IN-LD")


# --------------------------------------------------------------------------------------------
# Helpers


def units(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every unit (single-mark) spec inside a possibly layered/concatenated spec."""
    if "mark" in spec:
        yield spec
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for child in spec.get(key, []):
            yield from units(child)


def params(spec: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(spec.get("params", []))
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for child in spec.get(key, []):
            found += params(child)
    return found


def mark_type(unit: dict[str, Any]) -> str:
    mark = unit["mark"]
    return mark if isinstance(mark, str) else mark["type"]


def units_of(spec: dict[str, Any], mark: str) -> list[dict[str, Any]]:
    return [u for u in units(spec) if mark_type(u) == mark]


def inline_rows(spec: dict[str, Any], unit: dict[str, Any]) -> list[dict[str, Any]]:
    data = unit.get("data") or spec["data"]
    return data["values"]


def compiles_to_vega(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """Vega-Lite → Vega with the real compiler (catches errors that to_dict() does not)."""
    return vlc.vegalite_to_vega(chart.to_json(indent=None))


def png_pixels(chart: alt.TopLevelMixin, path: Path) -> Image.Image:
    path.write_bytes(vlc.vegalite_to_png(chart.to_json(indent=None), scale=1))
    return Image.open(path).convert("RGB")


def ink_fraction(image: Image.Image) -> float:
    """Share of pixels that are not (near) white background."""
    pixels = image.get_flattened_data()
    return sum(1 for r, g, b in pixels if min(r, g, b) < 235) / len(pixels)


def colour_patches(image: Image.Image, min_pixels: int = 200) -> int:
    """How many distinct saturated colours (quantised) cover at least ``min_pixels`` each.

    Greys (no data, text, borders) and anti-aliasing fringes do not count: a choropleth of
    India shows a dozen or more patches, a map drawn wrong shows one or none.
    """
    counts = Counter(
        (r // 16, g // 16, b // 16)
        for r, g, b in image.get_flattened_data()
        if max(r, g, b) - min(r, g, b) > 40
    )
    return sum(1 for n in counts.values() if n >= min_pixels)


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def state_values() -> pl.DataFrame:
    codes = [c for c in geo.state_table()["iso_code"].to_list() if c not in MISSING_STATES]
    n = len(codes)
    return pl.DataFrame(
        {
            "iso_code": codes,
            "patients": [(i * 7919) % 250_000 + 12 for i in range(n)],
            "per_100k": [round(3 + (i * 37) % 180 + 0.37, 2) for i in range(n)],
            "rr": [
                0.0 if c == "IN-BR" else round(0.2 + (i * 0.173) % 3, 3)
                for i, c in enumerate(codes)
            ],
        }
    )


@pytest.fixture(scope="module")
def pyramid_frame() -> pl.DataFrame:
    census = load_reference().age_sex.filter(
        pl.col("iso_code") == "IN", pl.col("age_band").is_in(AGE_BANDS)
    )
    census = census.with_columns(reference_share=pl.col("population") / pl.col("population").sum())
    bump = pl.Series([0.5 + (i % 5) * 0.3 for i in range(census.height)])
    observed = census.with_columns(observed_share=pl.col("reference_share") * bump)
    observed = observed.with_columns(
        observed_share=pl.col("observed_share") / pl.col("observed_share").sum(),
        sex=pl.col("sex").replace({"male": "M", "female": "F"}),
    ).select("age_band", "sex", "observed_share", "reference_share")
    other = pl.DataFrame(
        {"age_band": ["0-4"], "sex": ["O"], "observed_share": [0.001], "reference_share": [0.0]}
    )
    return pl.concat([observed, other])


@pytest.fixture(scope="module")
def sequential_map(state_values: pl.DataFrame) -> tuple[alt.LayerChart, dict[str, Any]]:
    """The map is slow to serialise (~60,000 coordinates): build and serialise it once."""
    chart = charts.choropleth(
        state_values,
        value_col="patients",
        value_title="Patients",
        title="Patients by state/UT",
        tooltip={"per_100k": "Per 100,000"},
    )
    return chart, chart.to_dict()


@pytest.fixture
def gaps() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "label": [
                "Women 60+ · Bihar",
                "Men 0-4 · Assam",
                "Women 20-39 · Kerala",
                "Men · Delhi",
            ],
            "rr": [0.14, 0.0, 0.95, 2.6],
            "rr_low": [0.12, 0.0, 0.85, 2.3],
            "rr_high": [0.16, 0.1, 1.05, 2.9],
            "flag": ["under", "insufficient", "ok", "over"],
            "n": [212, 0, 5000, 3000],
        }
    )


# --------------------------------------------------------------------------------------------
# Map and its companion bars


def map_rows(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The map's value rows (its top-level inline data) by iso_code."""
    return {row["iso_code"]: row for row in spec["data"]["values"]}


def test_choropleth_sequential(
    state_values: pl.DataFrame, sequential_map: tuple[alt.LayerChart, dict[str, Any]]
) -> None:
    chart, spec = sequential_map
    compiles_to_vega(chart)
    assert spec["title"]["text"] == "Patients by state/UT"
    assert "Grey: no data (3 of 36 states/UTs)" in spec["title"]["subtitle"]
    assert spec["projection"]["type"] == "conicEqualArea"
    # The data is one flat row per state/UT (the rows the suppression helpers edit) ...
    assert isinstance(chart.data.values, list) and len(chart.data.values) == 36
    rows = map_rows(spec)
    assert len(rows) == 36
    assert rows["IN-UP"]["value"] is None
    assert rows["IN-UP"]["value_label"] == "no data"
    assert rows["IN-UP"]["name"] == "Uttar Pradesh"
    first = state_values.row(0, named=True)
    assert rows[first["iso_code"]]["value"] == first["patients"]
    # ... and each row looks its shape up, once for every layer, in the boundaries (inline
    # here: no URL given).
    [lookup] = spec["transform"]
    assert lookup["lookup"] == "iso_code" and lookup["as"] == "geo"
    assert lookup["from"]["key"] == "properties.iso_code"
    source = lookup["from"]["data"]
    assert source["format"] == {"type": "json", "property": "features"}
    assert source["values"] == geo.feature_collection()
    shapes = units_of(spec, "geoshape")
    assert len(shapes) == 2
    base, coloured = shapes
    assert base["mark"]["fill"] == charts.NO_DATA_COLOUR
    assert {"filter": "isValid(datum.geo) && isValid(datum.value)"} in coloured["transform"]
    for unit in shapes:
        assert unit["encoding"]["shape"] == {"field": "geo", "type": "geojson"}
    colour = coloured["encoding"]["color"]
    assert colour["field"] == "value"
    assert colour["scale"]["scheme"] == charts.SEQUENTIAL_SCHEME
    assert colour["legend"]["title"] == "Patients"
    tips = {t["title"]: t["field"] for t in coloured["encoding"]["tooltip"]}
    assert tips == {"State/UT": "name", "Patients": "value_label", "Per 100,000": "tip_0"}
    assert rows["IN-KL"]["tip_0"] == format_number(
        state_values.filter(pl.col("iso_code") == "IN-KL")["per_100k"].item()
    )
    assert GEO_ATTRIBUTION not in json.dumps(spec)  # the page shows the attribution


def test_choropleth_with_boundaries_url_differs_only_in_the_lookup_source(
    state_values: pl.DataFrame, sequential_map: tuple[alt.LayerChart, dict[str, Any]]
) -> None:
    """The app's map: same spec, but the browser fetches the geometry from the static file."""
    chart = charts.choropleth(
        state_values,
        value_col="patients",
        value_title="Patients",
        title="Patients by state/UT",
        tooltip={"per_100k": "Per 100,000"},
        boundaries=geo.BOUNDARIES_URL,
    )
    spec = chart.to_dict()
    compiles_to_vega(chart)
    source = spec["transform"][0]["from"]["data"]
    assert source == {
        "url": geo.BOUNDARIES_URL,
        "format": {"type": "json", "property": "features"},
    }
    text = json.dumps(spec)
    assert "coordinates" not in text and len(text) < 30_000  # ~600 kB with the features inline
    inline = json.loads(json.dumps(sequential_map[1]))
    inline["transform"][0]["from"]["data"] = source
    assert spec == inline


def test_choropleth_selection_param_on_iso_code(
    sequential_map: tuple[alt.LayerChart, dict[str, Any]],
) -> None:
    spec = sequential_map[1]
    selections = [p for p in params(spec) if p["name"] == charts.STATE_SELECTION]
    assert len(selections) == 1
    assert selections[0]["select"] == {"type": "point", "fields": ["iso_code"], "on": "click"}


def test_choropleth_marks_small_states(
    state_values: pl.DataFrame, sequential_map: tuple[alt.LayerChart, dict[str, Any]]
) -> None:
    spec = sequential_map[1]
    circles = units_of(spec, "circle")
    texts = units_of(spec, "text")
    assert len(circles) == 2 and len(texts) == 2  # grey + coloured rings; halo + code
    for unit in circles + texts:
        assert "data" not in unit  # the same value rows as the shapes
        assert unit["transform"][0]["filter"].startswith("datum.small")
    rows = map_rows(spec)
    assert {code for code, row in rows.items() if row["small"]} == set(geo.small_states())
    assert rows["IN-LD"]["short"] == "LD" and rows["IN-LD"]["label_lon"] < 75
    plain = charts.choropleth(
        state_values, value_col="patients", value_title="Patients", mark_small_states=False
    ).to_dict()
    assert not units_of(plain, "circle")


def test_choropleth_diverging_log_scale_centred_on_parity(state_values: pl.DataFrame) -> None:
    chart = charts.choropleth(
        state_values, value_col="rr", value_title="Representation ratio", diverging=True
    )
    spec = chart.to_dict()
    compiles_to_vega(chart)
    scale = units_of(spec, "geoshape")[1]["encoding"]["color"]["scale"]
    assert scale["type"] == "log"
    assert scale["domainMid"] == 1
    assert scale["scheme"] == charts.DIVERGING_SCHEME
    low, high = scale["domain"]
    assert low * high == pytest.approx(1.0)  # symmetric about parity in log space
    rows = map_rows(spec)
    # RR = 0 cannot sit on a log scale: drawn at the floor, labelled with the true value.
    assert rows["IN-BR"]["value"] == pytest.approx(0.05)
    assert rows["IN-BR"]["value_label"] == "0.00"


def test_choropleth_label_column_and_validation(state_values: pl.DataFrame) -> None:
    suppressed = state_values.with_columns(
        shown=pl.when(pl.col("patients") < 1000)
        .then(pl.lit("< 10"))
        .otherwise(pl.col("patients").cast(pl.String)),
        patients=pl.when(pl.col("patients") < 1000).then(None).otherwise(pl.col("patients")),
    )
    spec = charts.choropleth(
        suppressed, value_col="patients", value_title="Patients", label_col="shown"
    ).to_dict()
    labels = [row["value_label"] for row in spec["data"]["values"]]
    assert "< 10" in labels
    with pytest.raises(ValueError, match="IN-XX"):
        charts.choropleth(
            pl.DataFrame({"iso_code": ["IN-XX"], "n": [1]}), value_col="n", value_title="n"
        )
    with pytest.raises(ValueError, match="one row per iso_code"):
        charts.choropleth(
            pl.DataFrame({"iso_code": ["IN-UP", "IN-UP"], "n": [1, 2]}),
            value_col="n",
            value_title="n",
        )
    empty = pl.DataFrame({"iso_code": [], "n": []}, schema={"iso_code": pl.String, "n": pl.Int64})
    compiles_to_vega(charts.choropleth(empty, value_col="n", value_title="n"))


def test_state_bars_sorted_with_selection(state_values: pl.DataFrame) -> None:
    chart = charts.state_bars(state_values, value_col="patients", value_title="Patients")
    spec = chart.to_dict()
    compiles_to_vega(chart)
    assert [p["name"] for p in params(spec)] == [charts.STATE_SELECTION]
    bars = units_of(spec, "bar")[0]
    order = bars["encoding"]["y"]["sort"]
    assert len(order) == 36
    rows = {r["name"]: r["value"] for r in inline_rows(spec, bars)}
    shown = [rows[name] for name in order if rows[name] is not None]
    assert shown == sorted(shown, reverse=True)
    assert {rows[name] for name in order[-3:]} == {None}  # no-data states listed last
    assert bars["encoding"]["x"]["axis"]["title"] == "Patients"
    assert "labelExpr" in bars["encoding"]["x"]["axis"]  # Indian grouping on the axis
    texts = units_of(spec, "text")
    assert texts and texts[0]["encoding"]["text"]["field"] == "value_label"


def test_state_bars_diverging_from_parity(state_values: pl.DataFrame) -> None:
    chart = charts.state_bars(
        state_values, value_col="rr", value_title="Representation ratio", diverging=True
    )
    spec = chart.to_dict()
    compiles_to_vega(chart)
    bars = units_of(spec, "bar")[0]
    assert bars["encoding"]["x"]["scale"]["type"] == "log"
    assert bars["encoding"]["x2"] == {"datum": 1}
    assert bars["encoding"]["color"]["scale"]["domainMid"] == 1
    order = bars["encoding"]["y"]["sort"]
    assert order[0] == "Bihar"  # most under-represented first
    assert any(r["encoding"]["x"] == {"datum": 1} for r in units_of(spec, "rule"))


def test_map_and_bars_concatenate_into_one_selection(state_values: pl.DataFrame) -> None:
    kwargs = {"value_col": "patients", "value_title": "Patients"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Altair notes that it merged the params
        both = alt.hconcat(
            charts.choropleth(state_values, **kwargs), charts.state_bars(state_values, **kwargs)
        )
        spec = both.to_dict()
        vega = compiles_to_vega(both)
    assert [p["name"] for p in params(spec)] == [charts.STATE_SELECTION]
    assert len(spec["params"][0]["views"]) >= 2
    assert any(s["name"] == charts.STATE_SELECTION for s in vega["signals"])


# --------------------------------------------------------------------------------------------
# Distributions


def test_category_bars_follow_census_order() -> None:
    frame = pl.DataFrame({"age_band": list(reversed(AGE_BANDS)), "n": range(len(AGE_BANDS))})
    chart = charts.category_bars(
        frame,
        category_col="age_band",
        count_col="n",
        category_title="Age band (years)",
        order=AGE_BANDS,
        horizontal=False,
        title="Patients by age band",
    )
    spec = chart.to_dict()
    compiles_to_vega(chart)
    bar = units_of(spec, "bar")[0]
    assert bar["encoding"]["x"]["sort"] == list(AGE_BANDS)
    assert bar["encoding"]["x"]["title"] == "Age band (years)"
    assert bar["encoding"]["y"]["axis"]["title"] == "Patients"
    assert spec["title"]["text"] == "Patients by age band"


def test_category_bars_sorted_by_count_with_indian_labels() -> None:
    frame = pl.DataFrame({"modality": ["CT", "DX", "MR"], "n": [123456, 1234567, 45678]})
    spec = charts.category_bars(
        frame, category_col="modality", count_col="n", category_title="Modality"
    ).to_dict()
    bar = units_of(spec, "bar")[0]
    assert bar["encoding"]["y"]["sort"] == ["DX", "CT", "MR"]
    rows = {r["category"]: r for r in inline_rows(spec, bar)}
    assert rows["DX"]["count_label"] == "12,34,567"
    assert rows["DX"]["share_label"] == "88.0%"  # 12,34,567 of 14,03,701
    tips = [t["title"] for t in bar["encoding"]["tooltip"]]
    assert tips == ["Modality", "Patients", "Share of total"]


def test_share_vs_reference_groups_observed_and_reference() -> None:
    frame = pl.DataFrame(
        {
            "area": ["urban", "rural"],
            "observed_share": [0.71, 0.29],
            "reference_share": [0.31, 0.69],
        }
    )
    chart = charts.share_vs_reference(frame, category_col="area", category_title="Area")
    spec = chart.to_dict()
    compiles_to_vega(chart)
    enc = spec["encoding"]
    assert enc["yOffset"]["field"] == "series"
    assert enc["color"]["scale"]["domain"] == ["This dataset", "Population (Census 2011)"]
    assert enc["x"]["axis"]["format"] == ".0%"
    rows = spec["data"]["values"]
    assert len(rows) == 4
    urban = next(r for r in rows if r["category"] == "urban")
    assert urban["rr_label"] == "2.29"
    assert urban["observed_label"] == "71.0%"


def test_age_sex_pyramid_males_left_females_right(pyramid_frame: pl.DataFrame) -> None:
    chart = charts.age_sex_pyramid(pyramid_frame, title="Age and sex")
    spec = chart.to_dict()
    compiles_to_vega(chart)
    bars = units_of(spec, "bar")
    assert len(bars) == 2  # census underneath, the data's shares on top
    rows = spec["data"]["values"]
    assert {r["side"] for r in rows} == {"Male", "Female"}  # "O" left out of the pyramid
    assert all(r["signed"] <= 0 for r in rows if r["side"] == "Male")
    assert all(r["signed"] >= 0 for r in rows if r["side"] == "Female")
    y = bars[0]["encoding"]["y"]
    assert y["sort"] == list(reversed(AGE_BANDS))  # oldest on top
    x_axis = bars[0]["encoding"]["x"]["axis"]
    assert "abs(datum.value)" in x_axis["labelExpr"]
    assert "Males" in x_axis["title"] and "Females" in x_axis["title"]
    domain = bars[0]["encoding"]["color"]["scale"]["domain"]
    assert domain == ["Male – This dataset", "Female – This dataset", "Census 2011"]
    assert bars[1]["mark"]["height"] == {"band": 0.5}


def test_accrual_line_and_cumulative() -> None:
    frame = pl.DataFrame({"month": ["2025-01", "2025-02", "2025-03"], "studies": [10, 20, 5]})
    chart = charts.accrual_chart(frame, cumulative=True, title="Cumulative studies")
    spec = chart.to_dict()
    compiles_to_vega(chart)
    points = units_of(spec, "point")[0]
    rows = inline_rows(spec, points)
    assert [r["count"] for r in rows] == [10, 30, 35]
    assert [r["month"] for r in rows] == [
        "2025-01-01T00:00:00",
        "2025-02-01T00:00:00",
        "2025-03-01T00:00:00",
    ]
    assert rows[0]["month_label"] == "Jan 2025"
    assert points["encoding"]["y"]["axis"]["title"] == "Studies, cumulative"


def test_accrual_stacked_by_category_lumps_small_ones() -> None:
    months = [dt.date(2025, m, 15) for m in range(1, 7)]
    categories = ["CT", "MR", "DX", "US", "MG", "OP", "SM", "XA", "NM"]
    frame = pl.DataFrame(
        [
            {"month": m, "modality": c, "studies": 100 * (len(categories) - i)}
            for m in months
            for i, c in enumerate(categories)
        ]
    )
    chart = charts.accrual_chart(
        frame, category_col="modality", category_title="Modality", title="By modality"
    )
    spec = chart.to_dict()
    compiles_to_vega(chart)
    assert mark_type(spec) == "area"
    colour = spec["encoding"]["color"]
    assert colour["scale"]["domain"][0] == "Other"
    assert len(colour["scale"]["domain"]) == 7
    assert colour["scale"]["range"][0] == charts.OTHER_COLOUR
    assert spec["encoding"]["y"]["stack"] is True
    assert {r["month"][:10] for r in spec["data"]["values"]} == {
        f"2025-0{m}-01" for m in range(1, 7)
    }


def test_heatmap_greys_missing_cells() -> None:
    frame = pl.DataFrame(
        {
            "modality": ["CT", "CT", "MR", "MR"],
            "condition": ["TB", "stroke", "TB", "stroke"],
            "n": [1234567, 50, None, 8],
        }
    )
    chart = charts.heatmap(
        frame,
        x_col="condition",
        y_col="modality",
        value_col="n",
        x_title="Condition",
        y_title="Modality",
        value_title="Studies",
    )
    spec = chart.to_dict()
    compiles_to_vega(chart)
    grey, cells = units_of(spec, "rect")
    assert grey["mark"]["color"] == charts.NO_DATA_COLOUR
    assert cells["encoding"]["color"]["scale"]["scheme"] == charts.SEQUENTIAL_SCHEME
    assert cells["encoding"]["x"]["title"] == "Condition"
    labels = {r["value_label"] for r in spec["data"]["values"]}
    assert {"12,34,567", "–"} <= labels


def test_representation_ratio_chart(gaps: pl.DataFrame) -> None:
    chart = charts.representation_ratio_chart(
        gaps, tau=0.8, title="Gaps", extra_tooltip={"n": "Patients"}
    )
    spec = chart.to_dict()
    compiles_to_vega(chart)
    band = units_of(spec, "rect")[0]
    assert band["data"]["values"] == [{"low": 0.8, "high": 1.25}]
    assert band["encoding"]["x"]["scale"]["type"] == "log"
    parity = units_of(spec, "rule")[0]
    assert parity["encoding"]["x"] == {"datum": 1}
    interval = units_of(spec, "rule")[1]
    assert interval["encoding"]["x"]["field"] == "rr_low"
    assert interval["encoding"]["x2"]["field"] == "rr_high"
    points = units_of(spec, "point")[0]
    assert points["encoding"]["y"]["sort"][0] == "Men 0-4 · Assam"  # lowest RR on top
    assert points["encoding"]["shape"]["field"] == "flag"
    assert points["encoding"]["color"]["scale"]["domain"] == list(charts.FLAG_ORDER)
    rows = {r["label"]: r for r in inline_rows(spec, points)}
    assert rows["Men 0-4 · Assam"]["rr"] == 0.01  # drawn at the floor
    assert rows["Women 60+ · Bihar"]["rr_label"] == "0.14 (0.12–0.16)"
    assert rows["Women 60+ · Bihar"]["tip_0"] == "212"
    assert "0.80–1.25" in spec["title"]["subtitle"][0]


def test_log_ticks() -> None:
    assert charts.log_ticks([0.08, 3]) == [0.1, 0.2, 0.5, 1, 2]


# --------------------------------------------------------------------------------------------
# The app's fast path: the same specs as Altair's own, without its per-run costs


def every_builder(
    state_values: pl.DataFrame, pyramid_frame: pl.DataFrame, gaps: pl.DataFrame
) -> list[alt.TopLevelMixin]:
    """One chart from every builder, with selections, conditions, datums and tooltips."""
    months = pl.DataFrame(
        {
            "month": ["2025-01", "2025-02", "2025-01", "2025-02"],
            "modality": ["CT", "CT", "MR", "MR"],
            "studies": [10, 20, 5, 7],
            "jsd": [0.1, 0.2, 0.3, 0.25],
        }
    )
    ratio = {"value_col": "rr", "value_title": "RR", "diverging": True}
    return [
        charts.choropleth(state_values, **ratio, tooltip={"patients": "Patients"}),
        charts.choropleth(state_values, value_col="patients", value_title="Patients"),
        charts.state_bars(state_values, **ratio),
        charts.state_bars(state_values, value_col="patients", value_title="Patients"),
        charts.category_bars(
            pl.DataFrame({"c": ["CT", "MR"], "n": [3, 4]}),
            category_col="c",
            count_col="n",
            category_title="Modality",
        ),
        charts.share_vs_reference(
            pl.DataFrame(
                {
                    "area": ["urban", "rural"],
                    "observed_share": [0.7, 0.3],
                    "reference_share": [0.3, 0.7],
                }
            ),
            category_col="area",
            category_title="Area",
        ),
        charts.age_sex_pyramid(pyramid_frame, title="Age and sex"),
        charts.accrual_chart(months, cumulative=True, title="Cumulative"),
        charts.accrual_chart(months, category_col="modality", category_title="Modality"),
        charts.heatmap(
            months,
            x_col="month",
            y_col="modality",
            value_col="studies",
            x_title="Month",
            y_title="Modality",
            value_title="Studies",
        ),
        charts.representation_ratio_chart(gaps, tau=0.8, extra_tooltip={"n": "Patients"}),
        charts.series_over_time(
            months, value_col="jsd", series_col="modality", value_title="JSD", series_title="Dim"
        ),
    ]


def test_channel_objects_give_the_same_specs_as_altairs_encode(
    state_values: pl.DataFrame,
    pyramid_frame: pl.DataFrame,
    gaps: pl.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """charts._Chart.encode (channel objects, microseconds) = alt.Chart.encode (~5 ms each)."""

    def specs() -> list[str]:
        built = every_builder(state_values, pyramid_frame, gaps)
        # Altair names a selection's views by a hash of the chart object (class included);
        # Streamlit renames them anyway.
        return [re.sub(r"view_[0-9a-f]+_", "view_", c.to_json()) for c in built]

    fast = specs()
    monkeypatch.setattr(charts._Chart, "encode", alt.Chart.encode)
    assert fast == specs()


def test_app_draws_what_st_altair_chart_would_send(
    state_values: pl.DataFrame, pyramid_frame: pl.DataFrame, gaps: pl.DataFrame
) -> None:
    """widgets.natural_size skips Altair's validation (done above, for every builder) but
    sends Streamlit the very spec st.altair_chart would, autosize and axis config included."""

    def altair_way(chart: alt.TopLevelMixin) -> dict[str, Any]:
        sized = (
            chart.properties(autosize=alt.AutoSizeParams(type="pad", contains="padding"))
            .configure_axis(labelLimit=200)
            .configure_axisBand(labelOverlap=False, labelLimit=200)
        )
        spec = _convert_altair_to_vega_lite_spec(sized)
        if not spec["datasets"]:  # Arrow copies of data frames only: these charts have none
            del spec["datasets"]
        return spec

    for chart in every_builder(state_values, pyramid_frame, gaps):
        spec = natural_size(chart)
        if "data" in spec:  # the rows as an Arrow table, which Streamlit sends as it is
            assert isinstance(spec["data"]["values"], pa.Table)
            spec["data"]["values"] = spec["data"]["values"].to_pylist()
        assert spec == altair_way(chart)
    mixed = alt.Chart(alt.Data(values=[{"a": 1}, {"a": "< 10"}])).mark_bar().encode(x="a:N")
    assert natural_size(mixed)["data"]["values"] == [{"a": 1}, {"a": "< 10"}]


# --------------------------------------------------------------------------------------------
# Rendering: look at the pixels, because an empty or inverted map still compiles


def test_choropleth_renders_india_in_colour(state_values: pl.DataFrame, tmp_path: Path) -> None:
    chart = charts.choropleth(state_values, value_col="per_100k", value_title="Per 100,000")
    image = png_pixels(chart, tmp_path / "map.png")
    assert image.width > 400 and image.height > 450
    assert 0.2 < ink_fraction(image) < 0.8  # India covers about a third of its box
    assert colour_patches(image) >= 10


@pytest.fixture
def static_server() -> Iterator[str]:
    """The app's static/ folder over HTTP on a free loopback port, as Streamlit serves it.

    In its own process: vl-convert holds the GIL while it fetches, so a server thread in
    this process could never answer.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--directory", str(STATIC_DIR)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_choropleth_from_the_static_boundaries_renders_india_in_colour(
    state_values: pl.DataFrame, tmp_path: Path, static_server: str
) -> None:
    """The geometry the browser fetches (static/india_states.json) draws the same map."""
    url = f"{static_server}/{geo.STATIC_BOUNDARIES.name}"
    chart = charts.choropleth(
        state_values, value_col="per_100k", value_title="Per 100,000", boundaries=url
    )
    image = png_pixels(chart, tmp_path / "map.png")
    assert 0.2 < ink_fraction(image) < 0.8
    assert colour_patches(image) >= 10
    inline = png_pixels(
        charts.choropleth(state_values, value_col="per_100k", value_title="Per 100,000"),
        tmp_path / "inline.png",
    )
    assert image.tobytes() == inline.tobytes()  # pixel for pixel


def test_counter_clockwise_rings_would_be_caught(
    state_values: pl.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pixel check has teeth: with rewound rings every state becomes the whole globe."""
    clockwise = geo._base_features

    def rewound(path: Path) -> tuple[dict[str, Any], ...]:
        return tuple(
            {**f, "geometry": json.loads(json.dumps(mapping(orient(shape(f["geometry"]), 1.0))))}
            for f in clockwise(path)
        )

    monkeypatch.setattr(geo, "_base_features", rewound)
    chart = charts.choropleth(state_values, value_col="per_100k", value_title="Per 100,000")
    assert colour_patches(png_pixels(chart, tmp_path / "ccw.png")) <= 2


def test_pyramid_renders(pyramid_frame: pl.DataFrame, tmp_path: Path) -> None:
    image = png_pixels(
        charts.age_sex_pyramid(pyramid_frame, title="Age and sex"), tmp_path / "p.png"
    )
    assert 0.08 < ink_fraction(image) < 0.7
    blue, orange = (0x00, 0x72, 0xB2), (0xE6, 0x9F, 0x00)
    colours = set(image.get_flattened_data())
    assert blue in colours and orange in colours  # both sexes drawn in their colours


# --------------------------------------------------------------------------------------------
# In a real browser: clicks on every layer of the map feed the selection


@pytest.mark.e2e
@pytest.mark.xdist_group("browser")
def test_clicks_select_states_in_a_browser(
    state_values: pl.DataFrame, tmp_path: Path, page: Page
) -> None:
    chart = charts.choropleth(state_values, value_col="patients", value_title="Patients")
    html = vlc.vegalite_to_html(chart.to_json(indent=None), bundle=True).replace(
        ".catch(console.error);", ".then(r => { window.VIEW = r.view; });"
    )
    page_file = tmp_path / "map.html"
    page_file.write_text(html)
    selected: dict[str, list[str]] = {}
    page.set_viewport_size({"width": 900, "height": 900})
    page.goto(page_file.as_uri())
    page.wait_for_function("window.VIEW !== undefined", timeout=30_000)
    # A state with data (coloured layer), one without (grey layer), a small-UT marker.
    for name, role in [
        ("Rajasthan", "geoshape"),
        ("Uttar Pradesh", "geoshape"),
        ("Lakshadweep", "circle"),
    ]:
        target = page.locator(f'[aria-roledescription="{role}"][aria-label*="{name}"]')
        target.first.click(force=True)
        page.wait_for_timeout(100)
        store = page.evaluate("JSON.stringify(VIEW.data('state_select_store'))")
        selected[name] = [v for t in json.loads(store) for v in t["values"]]
    assert selected == {
        "Rajasthan": ["IN-RJ"],
        "Uttar Pradesh": ["IN-UP"],
        "Lakshadweep": ["IN-LD"],
    }
