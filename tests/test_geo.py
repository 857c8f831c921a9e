"""State boundaries for Altair: 36 features, clockwise rings, features (not a GeoDataFrame)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from decimal import Decimal

import altair as alt
import geopandas as gpd
import polars as pl
import pytest
from shapely.geometry import Point, shape

from dashboard import geo

ALL_SMALL = {"IN-LD", "IN-CH", "IN-PY", "IN-DH", "IN-DL", "IN-GA", "IN-SK", "IN-AN", "IN-TR"}


def signed_area(ring: list[list[float]]) -> float:
    """Shoelace area in lon/lat: positive for counter-clockwise, negative for clockwise."""
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(ring)) / 2


def polygons(geometry: dict) -> list[list[list[list[float]]]]:
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    assert geometry["type"] == "MultiPolygon"
    return geometry["coordinates"]


def test_load_states_has_36_unique_states_in_wgs84() -> None:
    gdf = geo.load_states()
    assert isinstance(gdf, gpd.GeoDataFrame)
    assert len(gdf) == 36
    assert gdf["iso_code"].is_unique
    assert gdf.crs.to_epsg() == 4326
    assert set(gdf.geom_type) <= {"Polygon", "MultiPolygon"}


def test_load_states_returns_a_copy() -> None:
    first = geo.load_states()
    first.loc[0, "name"] = "changed"
    assert geo.load_states().loc[0, "name"] != "changed"


def test_feature_collection_is_plain_geojson_with_36_features() -> None:
    collection = geo.feature_collection()
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert len(features) == 36
    codes = [f["properties"]["iso_code"] for f in features]
    assert len(set(codes)) == 36
    assert all(f["properties"]["name"] for f in features)
    json.dumps(collection, allow_nan=False)  # plain JSON, nothing geopandas-specific


def test_every_exterior_ring_is_clockwise_and_every_hole_counter_clockwise() -> None:
    rings = 0
    for feature in geo.feature_collection()["features"]:
        for polygon in polygons(feature["geometry"]):
            exterior, *holes = polygon
            assert signed_area(exterior) < 0, feature["properties"]["iso_code"]
            assert all(signed_area(hole) > 0 for hole in holes)
            rings += 1
    assert rings >= 36


def test_altair_gets_a_features_list_not_a_geodataframe() -> None:
    data = geo.altair_data()
    assert isinstance(data, alt.Data)
    chart = alt.Chart(data).mark_geoshape().transform_calculate(**geo.property_calcs(["iso_code"]))
    spec = chart.to_dict()
    assert spec["data"]["format"] == {"property": "features"}
    values = spec["data"]["values"]
    assert isinstance(values, dict)
    assert values["type"] == "FeatureCollection"
    assert len(values["features"]) == 36
    assert {f["type"] for f in values["features"]} == {"Feature"}
    assert spec["transform"] == [{"calculate": 'datum.properties["iso_code"]', "as": "iso_code"}]


def test_join_values_into_properties() -> None:
    values = pl.DataFrame(
        {
            "iso_code": ["IN-UP", "IN-KL", "IN-LD"],
            "patients": [1200, None, 3],
            "rate": [1.5, math.nan, 0.25],
        }
    )
    features = geo.feature_collection(values)["features"]
    props = {f["properties"]["iso_code"]: f["properties"] for f in features}
    assert props["IN-UP"]["patients"] == 1200
    assert props["IN-KL"]["patients"] is None
    assert props["IN-KL"]["rate"] is None  # NaN is not valid JSON
    assert props["IN-LD"]["rate"] == 0.25
    assert props["IN-BR"]["patients"] is None  # no row: still on the map, as no data
    assert props["IN-BR"]["name"] == "Bihar"
    only = geo.feature_collection(values, columns=["rate"])["features"][0]["properties"]
    assert "patients" not in only and "rate" in only


def test_join_refuses_bad_frames() -> None:
    with pytest.raises(ValueError, match="iso_code"):
        geo.feature_collection(pl.DataFrame({"state": ["IN-UP"], "n": [1]}))
    with pytest.raises(ValueError, match="one row per iso_code"):
        geo.feature_collection(pl.DataFrame({"iso_code": ["IN-UP", "IN-UP"], "n": [1, 2]}))
    with pytest.raises(ValueError, match="clash"):
        geo.feature_collection(pl.DataFrame({"iso_code": ["IN-UP"], "name": ["x"]}))
    with pytest.raises(ValueError, match="not in the frame"):
        geo.feature_collection(pl.DataFrame({"iso_code": ["IN-UP"]}), columns=["n"])


def test_property_calcs_flatten_nested_fields() -> None:
    assert geo.property_calcs(["iso_code", "value"]) == {
        "iso_code": 'datum.properties["iso_code"]',
        "value": 'datum.properties["value"]',
    }


def test_small_states_are_computed_from_area() -> None:
    small = geo.small_states()
    assert {"IN-DL", "IN-CH", "IN-LD"} <= set(small)
    assert set(small) == ALL_SMALL
    areas = dict(zip(*geo.state_table().select("iso_code", "area_km2"), strict=True))
    assert [areas[c] for c in small] == sorted(areas[c] for c in small)
    assert small[0] == "IN-LD"
    assert geo.small_states(max_area_km2=200) == ["IN-LD", "IN-CH"]
    assert not {"IN-UP", "IN-RJ", "IN-NL", "IN-KL"} & set(small)


def test_state_table_areas_and_label_points() -> None:
    table = geo.state_table()
    assert table.height == 36
    areas = dict(zip(*table.select("iso_code", "area_km2"), strict=True))
    assert areas["IN-DL"] == pytest.approx(1_483, rel=0.02)
    assert areas["IN-RJ"] == pytest.approx(342_239, rel=0.02)
    assert sum(areas.values()) == pytest.approx(3_270_000, rel=0.01)
    shapes = {
        f["properties"]["iso_code"]: shape(f["geometry"])
        for f in geo.feature_collection()["features"]
    }
    for row in table.iter_rows(named=True):
        point = Point(row["label_lon"], row["label_lat"])
        # Inside the state (within the 1e-4° rounding of the label point).
        assert shapes[row["iso_code"]].distance(point) < 1e-3, row["iso_code"]


def test_records_are_json_safe() -> None:
    frame = pl.DataFrame(
        {
            "x": [math.nan, 1.5],
            "d": [dt.date(2025, 3, 1), None],
            "m": [Decimal("12.5"), Decimal("1")],
        }
    )
    rows = geo.records(frame)
    assert rows[0] == {"x": None, "d": "2025-03-01T00:00:00", "m": 12.5}
    assert rows[1]["x"] == 1.5
    json.dumps(rows, allow_nan=False)
