"""State/UT boundaries prepared for Altair maps: loading, joining values, label points, small UTs.

Vega draws a GeoJSON polygon whose exterior ring runs counter-clockwise as "the whole globe minus
this state", and it draws nothing at all from a GeoDataFrame handed to Altair directly (the chart
compiles and tests pass, but the map is empty). So the boundaries are read once with geopandas,
forced to EPSG:4326 with clockwise exterior rings, and handed to Altair as a plain list of GeoJSON
features inside ``alt.Data(values=..., format=alt.DataFormat(property="features"))``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
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


def _value_lookup(values: pl.DataFrame, columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    if "iso_code" not in values.columns:
        raise ValueError("values need an 'iso_code' column to join onto the map")
    clashes = sorted(set(columns) & set(BASE_PROPERTIES))
    if clashes:
        raise ValueError(f"value columns clash with boundary properties: {clashes}")
    missing = sorted(set(columns) - set(values.columns))
    if missing:
        raise ValueError(f"value columns not in the frame: {missing}")
    if values["iso_code"].is_duplicated().any():
        raise ValueError("values must have one row per iso_code")
    rows = records(values.select("iso_code", *columns))
    return {row.pop("iso_code"): row for row in rows}


def feature_collection(
    values: pl.DataFrame | None = None,
    *,
    columns: Sequence[str] | None = None,
    path: Path = GEOJSON_PATH,
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of all 36 states/UTs with ``values`` joined into properties.

    ``values`` has one row per ``iso_code``; ``columns`` (default: all but iso_code) are copied
    into each feature's properties. States without a row get None (null) for those columns, so
    they stay on the map and can be drawn as "no data".
    """
    if values is None:
        values = pl.DataFrame({"iso_code": []}, schema={"iso_code": pl.String})
    cols = [c for c in values.columns if c != "iso_code"] if columns is None else list(columns)
    lookup = _value_lookup(values, cols)
    features = []
    for base in _base_features(Path(path)):
        joined = lookup.get(base["properties"]["iso_code"], {})
        properties = {**base["properties"], **{c: joined.get(c) for c in cols}}
        # Geometry dicts are shared between calls and never modified.
        features.append({"type": "Feature", "geometry": base["geometry"], "properties": properties})
    return {"type": "FeatureCollection", "features": features}


def altair_data(
    values: pl.DataFrame | None = None,
    *,
    columns: Sequence[str] | None = None,
    path: Path = GEOJSON_PATH,
) -> alt.Data:
    """The features (with joined values) as Altair inline data that ``mark_geoshape`` draws.

    Fields then live under ``properties``; use :func:`property_calcs` with
    ``transform_calculate`` to lift them to the top level before selections or encodings.
    """
    return _FeatureData(
        values=feature_collection(values, columns=columns, path=path),
        format=alt.DataFormat(property="features"),
    )


class _FeatureData(alt.Data):
    """``alt.Data`` minus Altair's eager validation at construction.

    Altair walks every one of the ~62,000 coordinates when a data object is built and again
    when the chart is serialised, at about 0.7 s each; the walk at serialisation still checks
    the whole spec, so the first one is pure cost.
    """

    _class_is_valid_at_instantiation = False


def property_calcs(names: Iterable[str]) -> dict[str, str]:
    """``transform_calculate`` arguments that lift ``properties.<name>`` to top-level fields.

    Selections and tooltips on nested fields (``properties.iso_code``) break in Vega-Lite and in
    Streamlit's selection state; flat fields work.
    """
    return {name: f"datum.properties[{json.dumps(name)}]" for name in names}


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
