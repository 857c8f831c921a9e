"""The shared sidebar filters, bound to the URL so that any view is a shareable link.

Widget keys are the URL parameter names (``?state=IN-AS&unit=studies``). A page changes a
filter (a click on the map) by setting the widget's session state in a callback.
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from dashboard.contract import AREA_TYPES, FACILITY_TYPES, MODALITY_CODES, SEX_CODES
from dashboard.coverage import UNITS
from dashboard.filters import Filters
from dashboard.reference import load_reference
from dashboard.views.common import SnapshotKey, cached_query

SEX_LABELS = {"M": "Male", "F": "Female", "O": "Other", "U": "Unknown"}
AGE_RANGE = (0, 120)
STATE_KEY = "state"


def _multiselect(label: str, options: list[str], key: str, **kwargs) -> tuple[str, ...]:
    return tuple(
        st.sidebar.multiselect(
            label, options, key=key, bind="query-params", placeholder="All", **kwargs
        )
    )


def render_filters(key: SnapshotKey) -> tuple[Filters, str]:
    """Draw the shared filters; return them and the counting unit."""
    options = cached_query(key, "filter_options").row(0, named=True)
    names = load_reference().state_names
    institution_names = dict(
        zip(options["institutions"] or [], options["institution_names"] or [], strict=True)
    )
    st.sidebar.header("Filters")
    unit = (
        st.sidebar.segmented_control(
            "Count",
            list(UNITS),
            key="unit",
            bind="query-params",
            default="patients",
            help="Patients are distinct (institution, pseudonymous patient id).",
        )
        or "patients"
    )
    states = _multiselect("State/UT", sorted(names), STATE_KEY, format_func=names.get)
    institutions = _multiselect(
        "Institution",
        list(institution_names),
        "institution",
        format_func=lambda i: f"{institution_names[i]} ({i})",
    )
    modalities = _multiselect("Modality", list(MODALITY_CODES), "modality")
    sexes = _multiselect("Sex", list(SEX_CODES), "sex", format_func=SEX_LABELS.get)
    age = st.sidebar.slider(
        "Age (years)", *AGE_RANGE, value=AGE_RANGE, key="age", bind="query-params"
    )
    areas = _multiselect("Urban/rural", list(AREA_TYPES), "area")
    facilities = _multiselect("Facility type", list(FACILITY_TYPES), "facility")
    conditions = _multiselect(
        "Condition", [*(options["conditions"] or []), "normal", "other"], "condition"
    )
    first, last = options["first_date"], options["last_date"]
    dates = (
        st.sidebar.date_input(
            "Study dates",
            value=(first, last),
            min_value=first,
            max_value=last,
            key="dates",
            bind="query-params",
        )
        if first and last
        else ()
    )
    filters = Filters(
        states=states,
        institutions=institutions,
        modalities=modalities,
        sexes=sexes,
        age_min=age[0] if age[0] > AGE_RANGE[0] else None,
        age_max=age[1] if age[1] < AGE_RANGE[1] else None,
        area_types=areas,
        facility_types=facilities,
        conditions=conditions,
        date_from=_narrowed(dates, 0, first),
        date_to=_narrowed(dates, 1, last),
    )
    return filters, unit


def _narrowed(dates: tuple | dt.date, index: int, bound: dt.date | None) -> dt.date | None:
    """The chosen end of the date range, or None when it is the index's own bound."""
    if not isinstance(dates, tuple) or len(dates) <= index:
        return None
    chosen = dates[index]
    return None if chosen == bound else chosen
