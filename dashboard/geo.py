"""State/UT boundaries prepared for Altair maps: loading, the geometry source, label points.

Vega draws a GeoJSON polygon whose exterior ring runs counter-clockwise as "the whole globe minus
this state", and it draws nothing at all from a GeoDataFrame handed to Altair directly (the chart
compiles and tests pass, but the map is empty). So the boundaries are read once with geopandas,
forced to EPSG:4326 with clockwise exterior rings, and handed to Vega as a plain GeoJSON
FeatureCollection (:func:`boundaries_json`).

A map's spec carries only its 36 value rows; each row looks its geometry up by ``iso_code``
(:func:`boundaries`) in that FeatureCollection, which is either inline in the spec (the
datasheet, rendered without a server) or the static file ``static/india_states.json`` that the
app serves (Streamlit's ``server.enableStaticServing``), so the ~62,000 coordinates are not
serialised into every page run. :func:`write_static_boundaries` writes that file from data/;
a test regenerates it and compares.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import altair as alt
import geopandas as gpd
import polars as pl
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.ops import orient, polylabel

from dashboard.reference import GEOJSON_PATH

# Albers equal-area conic for India (standard parallels 12° N and 28° N, central meridian 80° E):
# areas in km² are only meaningful in an equal-area projection, not in degrees.
ALBERS_INDIA = "+proj=aea +lat_1=12 +lat_2=28 +lat_0=20 +lon_0=80 +datum=WGS84 +units=m +no_defs"

# Below this area a state/UT is a few pixels wide on a dashboard-sized map of India (about
# 6 km per pixel at 500 px): too small to see its colour or to click it. 12,000 km² falls in the
# wide gap between Tripura (~10,400 km²) and Nagaland (~16,600 km²).
SMALL_STATE_MAX_KM2 = 12_000.0

BASE_PROPERTIES: tuple[str, ...] = ("iso_code", "name", "type")

BOUNDARIES_FILE = "india_states.json"
STATIC_BOUNDARIES = Path(__file__).resolve().parents[1] / "static" / BOUNDARIES_FILE
"""The prepared boundaries as the app serves them (generated: :func:`write_static_boundaries`)."""
# Relative, so it resolves under any server.baseUrlPath or proxy prefix: page URLs are one
# segment deep (/geography, /dash/geography), so "app/static/…" lands next to them.
BOUNDARIES_URL = f"app/static/{BOUNDARIES_FILE}"
"""The static file's URL for Vega in the browser (Streamlit serves static/ at app/static/)."""


@cache
def _read_states(path: Path) -> gpd.GeoDataFrame:
    gdf = gpd.read_file(path)
    gdf = gdf.set_crs("EPSG:4326") if gdf.crs is None else gdf.to_crs("EPSG:4326")
    # Clockwise exterior rings (sign -1): the d3-geo / Vega convention, opposite to RFC 7946.
    gdf["geometry"] = [orient(geom, -1.0) for geom in gdf.geometry]
    return gdf.sort_values("iso_code").reset_index(drop=True)


def load_states(path: Path = GEOJSON_PATH) -> gpd.GeoDataFrame:
    """The 36 states/UTs (iso_code, name, type, geometry), EPSG:4326, exterior rings clockwise.

    The file is read once per process; each call returns a copy, so callers may modify it.
    """
    return _read_states(Path(path)).copy()


@cache
def _base_features(path: Path) -> tuple[dict[str, Any], ...]:
    collection = _read_states(path)[[*BASE_PROPERTIES, "geometry"]].__geo_interface__
    # A JSON round trip turns shapely's nested coordinate tuples into plain lists and drops
    # nothing but the per-feature bbox/id, which Vega does not use.
    features = json.loads(json.dumps(collection["features"]))
    return tuple(
        {"type": "Feature", "geometry": f["geometry"], "properties": f["properties"]}
        for f in features
    )


def json_safe(value: Any) -> Any:
    """A value JSON can carry and Vega can read: NaN/inf → None, Decimal → float, dates → ISO."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return json_safe(float(value))
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        # Without a time part JavaScript would read the date as UTC midnight, which is the
        # previous day (or month) west of Greenwich; a local-time datetime avoids that.
        return f"{value.isoformat()}T00:00:00"
    return value


def records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows of a polars frame as JSON-safe dicts (see :func:`json_safe`)."""
    return [{k: json_safe(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]


def feature_collection(path: Path = GEOJSON_PATH) -> dict[str, Any]:
    """The 36 states/UTs as a GeoJSON FeatureCollection (properties iso_code, name, type).

    Feature dicts are shared between calls: do not modify them.
    """
    return {"type": "FeatureCollection", "features": list(_base_features(Path(path)))}


def boundaries_json(path: Path = GEOJSON_PATH) -> str:
    """:func:`feature_collection` as compact JSON text: the content of the static file."""
    return json.dumps(feature_collection(path), separators=(",", ":"), allow_nan=False) + "\n"


def write_static_boundaries(target: Path = STATIC_BOUNDARIES, path: Path = GEOJSON_PATH) -> Path:
    """Write :func:`boundaries_json` to ``target`` (default: the app's ``static/`` folder).

    Run ``python -m dashboard.geo`` after changing data/geo; a test fails until it is run.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(boundaries_json(path), encoding="utf-8")
    return target


def boundaries(url: str | None = None, *, path: Path = GEOJSON_PATH) -> alt.Data:
    """Where a map finds its geometry: the features list, keyed by ``properties.iso_code``.

    ``url`` (e.g. :data:`BOUNDARIES_URL`): Vega fetches the static file; ``None``: the features
    are inline (for rendering without a server, as the datasheet does).
    """
    fmt = alt.DataFormat(type="json", property="features")
    if url is not None:
        return alt.UrlData(url=url, format=fmt)
    return InlineData(values=feature_collection(path), format=fmt)


def boundary_lookup(
    url: str | None = None, *, as_: str = "geo", path: Path = GEOJSON_PATH
) -> alt.LookupTransform:
    """A lookup transform that gives each row (with an ``iso_code``) its state's GeoJSON
    feature as field ``as_``, for ``mark_geoshape().encode(shape=f"{as_}:G")``.

    ``url`` and ``path`` as in :func:`boundaries`.
    """
    source = _LookupData(data=boundaries(url, path=path), key="properties.iso_code")
    return _LookupTransform(lookup="iso_code", **{"from": source, "as": as_})


class InlineData(alt.Data):
    """Inline JSON-safe rows (``values``) as Altair data, passed to the spec as they are.

    Altair checks every schema object when it is built, and when it serialises a chart it
    walks every cell of inline data (a slow generic walk, then a schema check of the whole
    spec). For rows that are plain JSON already (:func:`records`, the boundaries) the build
    check and the walk are pure cost: hundreds of ms per chart, ~1 s for the map's ~62,000
    coordinates. This class skips both; ``chart.to_dict()`` still validates the whole spec,
    rows included, and tests/test_charts.py does so for every chart builder.
    """

    _class_is_valid_at_instantiation = False

    def to_dict(
        self,
        validate: bool = True,
        *,
        ignore: list[str] | None = None,
        context: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``{"values": <the rows, not copied>, ...}``; other properties as Altair makes them."""
        spec = {
            key: value.to_dict(validate=False) if isinstance(value, alt.SchemaBase) else value
            for key, value in self._kwds.items()
            if value is not alt.Undefined
        }
        if validate:
            self.validate(spec)
        return spec


# Altair checks every object against the schema when it is built; a lookup holding inline
# boundaries would walk all their coordinates (about 0.7 s) each time a map is built.


class _LookupData(alt.LookupData):
    _class_is_valid_at_instantiation = False


class _LookupTransform(alt.LookupTransform):
    _class_is_valid_at_instantiation = False


def _largest_part(geom: Polygon | MultiPolygon) -> Polygon:
    if isinstance(geom, Polygon):
        return geom
    return max(geom.geoms, key=lambda part: part.area)


@cache
def _state_table(path: Path) -> pl.DataFrame:
    gdf = _read_states(path)
    projected = gdf.to_crs(ALBERS_INDIA)
    # Label point: the pole of inaccessibility of the largest part, computed in metres, so a
    # label or marker sits well inside the main landmass (a centroid can fall in the sea for
    # multi-part UTs such as Puducherry or Andaman and Nicobar).
    points = gpd.GeoSeries(
        [polylabel(_largest_part(g), tolerance=500.0) for g in projected.geometry],
        crs=ALBERS_INDIA,
    ).to_crs("EPSG:4326")
    return pl.DataFrame(
        {
            "iso_code": gdf["iso_code"].tolist(),
            "name": gdf["name"].tolist(),
            "type": gdf["type"].tolist(),
            "area_km2": (projected.area / 1e6).tolist(),
            "n_parts": [shapely.get_num_geometries(g) for g in gdf.geometry],
            "label_lon": points.x.round(4).tolist(),
            "label_lat": points.y.round(4).tolist(),
        }
    )


def state_table(path: Path = GEOJSON_PATH) -> pl.DataFrame:
    """One row per state/UT: iso_code, name, type, area_km2 (equal-area), n_parts, label_lon/lat.

    ``label_lon``/``label_lat`` is a point well inside the state's largest part, for labels and
    markers on the map.
    """
    return _state_table(Path(path))


def small_states(
    max_area_km2: float = SMALL_STATE_MAX_KM2, *, path: Path = GEOJSON_PATH
) -> list[str]:
    """ISO codes of states/UTs smaller than ``max_area_km2`` (hard to see or click), smallest first.

    With the default threshold: Lakshadweep, Chandigarh, Puducherry, DNH&DD, Delhi, Goa,
    Sikkim, Andaman and Nicobar Islands and Tripura.
    """
    table = state_table(path).filter(pl.col("area_km2") < max_area_km2).sort("area_km2")
    return table["iso_code"].to_list()


if __name__ == "__main__":
    print(write_static_boundaries())
