"""The shared filters every page and read command applies, as SQL parameters.

An empty selection means "no filter"; the SQL side is one table macro, `filtered_study`
(queries/schema/030_views.sql), so every query filters the same way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

FILTER_PARAMS: tuple[str, ...] = (
    "f_states",
    "f_institutions",
    "f_modalities",
    "f_sexes",
    "f_age_min",
    "f_age_max",
    "f_area_types",
    "f_facility_types",
    "f_conditions",
    "f_date_from",
    "f_date_to",
)


@dataclass(frozen=True)
class Filters:
    """What the user narrowed the data to; defaults select everything."""

    states: tuple[str, ...] = ()
    institutions: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    sexes: tuple[str, ...] = ()
    age_min: float | None = None
    age_max: float | None = None
    area_types: tuple[str, ...] = ()
    facility_types: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def params(self) -> dict[str, Any]:
        """The filter as the $f_* parameters of the `filtered_study` macro (None = no filter)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {
            f"f_{name}": (list(value) or None) if isinstance(value, tuple) else value
            for name, value in values.items()
        }

    @property
    def is_empty(self) -> bool:
        return all(value is None for value in self.params().values())


NO_FILTERS = Filters()
