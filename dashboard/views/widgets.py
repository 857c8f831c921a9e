"""Widgets and chart helpers the pages share: pickers, the state-click filter, chart sizing.

Clicking a state on any state chart sets the shared State/UT multiselect (bound to the URL),
so every page and the shareable link follow the click.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import altair as alt
import streamlit as st

from dashboard import charts
from dashboard.baselines import POPULATION_SOURCES
from dashboard.config import load_settings
from dashboard.filters import Filters
from dashboard.gaps import burden_conditions
from dashboard.reference import load_reference
from dashboard.views import sidebar
from dashboard.views.common import describe_filters

DEFAULT_CONDITION = "tuberculosis"


def show_no_studies(filters: Filters) -> None:
    """The message for an index without studies, or for filters that match none."""
    if filters.is_empty:
        st.info("The index has no studies yet. Ingest a manifest to see coverage.")
    else:
        st.info(
            f"No studies match the filters ({describe_filters(filters)}). Widen or clear "
            "filters in the sidebar.",
            icon=":material/filter_alt_off:",
        )


def source_picker(key: str) -> str:
    """The population reference: the MoHFW 2026 projection or Census 2011."""
    options = list(POPULATION_SOURCES)
    default = load_settings().population_reference
    return st.radio(
        "Population reference",
        options,
        index=options.index(default) if default in options else 0,
        format_func=lambda s: {"proj2026": "2026 projection", "census2011": "Census 2011"}[s],
        key=key,
        horizontal=True,
        help="MoHFW projection for 1 March 2026, or the Census of India 2011 count.",
    )


def condition_label(condition: str) -> str:
    """'cancer_cervix_uteri' → 'Cancer cervix uteri'."""
    return condition.replace("_", " ").capitalize()


def condition_picker(key: str) -> str:
    """A condition with state-wise burden figures, tuberculosis first by default."""
    options = burden_conditions()
    return st.selectbox(
        "Condition",
        options,
        index=options.index(DEFAULT_CONDITION) if DEFAULT_CONDITION in options else 0,
        format_func=condition_label,
        key=key,
        help="Conditions with state-wise case estimates or notifications in the reference data.",
    )


def clicked_state(selection: Any) -> str | None:
    """The iso_code of the state a click selected, from a chart's ``state_select`` value."""
    if isinstance(selection, Mapping):
        value = selection.get("iso_code")
        if isinstance(value, list):
            return str(value[0]) if value else None
        return str(value) if value else None
    if isinstance(selection, list) and selection:
        return clicked_state(selection[0])
    return None


def _on_click(chart_key: str) -> Callable[[], None]:
    def callback() -> None:
        event = st.session_state.get(chart_key)
        if event is None:
            return
        state = clicked_state(event["selection"].get(charts.STATE_SELECTION))
        if state:
            # The shared multiselect is bound to the URL: every page and the link follow.
            st.session_state[sidebar.STATE_KEY] = [state]

    return callback


def _show_all_states() -> None:
    st.session_state[sidebar.STATE_KEY] = []


def state_filter_note(filters: Filters, key: str) -> None:
    """Say which states the page is narrowed to, with a button back to all of India."""
    if not filters.states:
        return
    names = load_reference().state_names
    chosen = ", ".join(names.get(s, s) for s in filters.states)
    left, right = st.columns([4, 1])
    left.info(f"Showing **{chosen}** only (State/UT filter).", icon=":material/filter_alt:")
    right.button("Show all states", on_click=_show_all_states, key=key, icon=":material/public:")


def natural_size(chart: Any) -> Any:
    """The chart at the size charts.py gave it, every category label shown.

    Streamlit's default autosize "fit" squeezes legends, titles and axes into the plot size
    (a map shrinks to half), and its theme hides "overlapping" band-axis labels, which drops
    every other state name at 18 px per row.
    """
    return (
        chart.properties(autosize=alt.AutoSizeParams(type="pad", contains="padding"))
        .configure_axis(labelLimit=200)
        .configure_axisBand(labelOverlap=False, labelLimit=200)
    )


def show_chart(chart: Any) -> None:
    """Draw a chart at its natural size."""
    st.altair_chart(natural_size(chart), width="content")


def clickable_state_chart(chart: Any, key: str) -> None:
    """Draw a state chart whose click sets the shared State/UT filter."""
    st.altair_chart(
        natural_size(chart),
        width="content",
        on_select=_on_click(key),
        selection_mode=charts.STATE_SELECTION,
        key=key,
    )
