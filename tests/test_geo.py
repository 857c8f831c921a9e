"""State boundaries for Altair: 36 features, clockwise rings, inline or served as a static file."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import mimetypes
import tomllib
from decimal import Decimal
from pathlib import Path
from urllib.parse import urljoin

import altair as alt
import geopandas as gpd
import polars as pl
import pytest
from shapely.geometry import Point, shape
from streamlit.file_util import get_app_static_dir
from streamlit.url_util import STATIC_SERVING_ENDPOINT
from streamlit.web.server.starlette.starlette_server_config import MAX_APP_STATIC_FILE_SIZE

from dashboard import geo
from dashboard.views.pages import PAGES

REPO = Path(__file__).resolve().parents[1]

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


def test_boundaries_inline_or_from_a_url() -> None:
    """Vega gets a plain FeatureCollection (never a GeoDataFrame), inline or from a URL."""
    fmt = {"type": "json", "property": "features"}
    inline = geo.boundaries()
    assert isinstance(inline, alt.Data)
    spec = inline.to_dict()
    assert spec["format"] == fmt
    assert spec["values"]["type"] == "FeatureCollection"
    assert len(spec["values"]["features"]) == 36
    assert {f["type"] for f in spec["values"]["features"]} == {"Feature"}
    assert geo.boundaries(geo.BOUNDARIES_URL).to_dict() == {
        "url": geo.BOUNDARIES_URL,
        "format": fmt,
    }


def test_boundary_lookup_gives_each_row_its_feature() -> None:
    lookup = geo.boundary_lookup("x.json", as_="geo").to_dict()
    assert lookup == {
        "lookup": "iso_code",
        "from": {
            "data": {"url": "x.json", "format": {"type": "json", "property": "features"}},
            "key": "properties.iso_code",
        },
        "as": "geo",
    }


def test_static_boundaries_file_is_generated_from_data(tmp_path: Path) -> None:
    """static/india_states.json is what ``python -m dashboard.geo`` writes from data/geo."""
    assert geo.STATIC_BOUNDARIES.is_file(), "run: python -m dashboard.geo"
    shipped = geo.STATIC_BOUNDARIES.read_text(encoding="utf-8")
    assert shipped == geo.boundaries_json(), (
        "static boundaries out of date: python -m dashboard.geo"
    )
    regenerated = geo.write_static_boundaries(tmp_path / "b.json")
    assert regenerated.read_bytes() == geo.STATIC_BOUNDARIES.read_bytes()
    # The same features the datasheet gets inline: one geometry for both.
    assert json.loads(shipped) == geo.feature_collection()


def test_streamlit_serves_the_boundaries_at_their_url() -> None:
    """Static serving is on in the script's own config (read from any working directory),
    Streamlit serves static/ at app/static/, and the relative URL resolves from every page."""
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["enableStaticServing"] is True
    assert geo.STATIC_BOUNDARIES.parent == Path(get_app_static_dir(str(REPO / "streamlit_app.py")))
    assert f"/{geo.BOUNDARIES_URL}".startswith(STATIC_SERVING_ENDPOINT)
    assert geo.STATIC_BOUNDARIES.stat().st_size < MAX_APP_STATIC_FILE_SIZE
    assert mimetypes.guess_type(geo.STATIC_BOUNDARIES.name)[0] == "application/json"
    served = f"http://h:8501/app/static/{geo.STATIC_BOUNDARIES.name}"
    for page in PAGES:
        for query in ("", "?state=Kerala"):
            assert urljoin(f"http://h:8501/{page.url_path}{query}", geo.BOUNDARIES_URL) == served
    assert urljoin("http://h:8501/", geo.BOUNDARIES_URL) == served
    # Under a base path (server.baseUrlPath = "dash") the file moves with the pages.
    assert urljoin("http://h/dash/geography", geo.BOUNDARIES_URL).startswith("http://h/dash/app/")


def test_inline_data_is_passed_through_but_still_validated() -> None:
    rows = [{"a": 1, "b": "x"}]
    spec = alt.Chart(geo.InlineData(values=rows)).mark_bar().encode(x="a:Q").to_dict()
    assert spec["data"] == {"values": rows}
    assert spec["data"]["values"] is rows  # not copied cell by cell
    with pytest.raises(alt.utils.schemapi.SchemaValidationError):
        alt.Chart(geo.InlineData(values=5)).mark_bar().encode(x="a:Q").to_dict()


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
