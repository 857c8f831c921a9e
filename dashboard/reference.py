"""Reference tables shipped in data/: population, state aliases, disease burden, conditions.

The CSVs are copied unchanged from the programme's sourced reference set (see data/*/SOURCES.md);
this module only reads them, so every figure on screen traces back to a cited source.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

from dashboard.config import DATA_DIR

REFERENCE_DIR = DATA_DIR / "reference"
GEOJSON_PATH = DATA_DIR / "geo" / "india_states.geojson"
GEO_ATTRIBUTION = (
    "State/UT boundaries derived from datta07/INDIAN-SHAPEFILES "
    "(https://github.com/datta07/INDIAN-SHAPEFILES), © 2022 Akula Guru Datta, MIT License; "
    "simplified and re-attributed."
)


def alias_key(expr: pl.Expr) -> pl.Expr:
    """Normalise state names for lookup: casefold, '&' as 'and', '.' as space, single spaces.

    The same rule check_reference.py uses to prove that no alias maps to two codes.
    """
    return (
        expr.str.to_lowercase()
        .str.replace_all("&", " and ", literal=True)
        .str.replace_all(".", " ", literal=True)
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


@dataclass(frozen=True)
class ReferenceData:
    """The reference tables as polars frames, read once per process."""

    states: pl.DataFrame
    """36 current states/UTs: iso_code, name, type, census2011_*, proj2026_* columns."""
    aliases: pl.DataFrame
    """alias_key (see :func:`alias_key`) → iso_code; includes every name and ISO code."""
    age_sex: pl.DataFrame
    """Census 2011 population by iso_code (IN or a state), age_band, sex (male/female)."""
    disease_burden: pl.DataFrame
    conditions: pl.DataFrame

    @property
    def state_names(self) -> dict[str, str]:
        """ISO code → official name."""
        return dict(zip(self.states["iso_code"], self.states["name"], strict=True))


def _read(name: str, directory: Path) -> pl.DataFrame:
    return pl.read_csv(directory / name, infer_schema_length=10_000)


@cache
def load_reference(directory: Path = REFERENCE_DIR) -> ReferenceData:
    """Read every reference CSV from ``directory`` (data/reference by default)."""
    states = _read("state_population.csv", directory)
    raw_aliases = _read("state_aliases.csv", directory).select("alias", "iso_code")
    names = states.select(pl.col("name").alias("alias"), "iso_code")
    codes = states.select(pl.col("iso_code").alias("alias"), "iso_code")
    aliases = (
        pl.concat([raw_aliases, names, codes])
        .with_columns(alias_key=alias_key(pl.col("alias")))
        .unique(subset=["alias_key"], keep="first")
        .select("alias_key", "iso_code")
        .sort("alias_key")
    )
    return ReferenceData(
        states=states,
        aliases=aliases,
        age_sex=_read("age_sex_population.csv", directory),
        disease_burden=_read("disease_burden.csv", directory).with_columns(
            pl.col("year").cast(pl.String)
        ),
        conditions=_read("conditions.csv", directory),
    )
