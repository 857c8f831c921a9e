"""Widgets and chart helpers the pages share: pickers, the state-click filter, chart sizing.

Clicking a state on any state chart sets the shared State/UT multiselect (bound to the URL),
so every page and the shareable link follow the click.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt
import polars as pl
import pyarrow as pa
import streamlit as st
from streamlit import dataframe_util

from dashboard import charts, privacy
from dashboard.baselines import POPULATION_SOURCES
from dashboard.config import load_settings
from dashboard.filters import Filters
from dashboard.formatting import format_percent
from dashboard.gaps import burden_conditions
from dashboard.reference import load_reference
from dashboard.views import sidebar
from dashboard.views.common import about, describe_filters, download_csv

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


def text_column(values: pl.Series, fmt: Callable[[Any], str | None], name: str = "") -> pl.Series:
    """``fmt`` of each value of ``values`` (null stays null), as a String column: display
    labels ("12,34,567", "45%") for tables and tooltips.

    Computed in plain Python, never with polars' ``map_elements``: a Python callback runs on
    polars' shared thread pool and takes the GIL there, and with many sessions' script threads
    using polars at once that can deadlock the whole server (pola-rs/polars#10970, #26832)."""
    return pl.Series(
        name or values.name,
        [None if v is None else fmt(v) for v in values.to_list()],
        dtype=pl.String,
    )


def screen_table(frame: pl.DataFrame) -> pa.Table:
    """``frame`` as st.dataframe sends it to the browser (Streamlit's own conversion, through
    pandas), done once when a section is cached instead of on every run."""
    return dataframe_util.convert_pandas_df_to_arrow_table(
        dataframe_util.convert_anything_to_pandas_df(frame, ensure_copy=False)
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


def natural_size(chart: Any) -> dict[str, Any]:
    """The chart's Vega-Lite spec at the size charts.py gave it, every category label shown.

    Streamlit's default autosize "fit" squeezes legends, titles and axes into the plot size
    (a map shrinks to half), and its theme hides "overlapping" band-axis labels, which drops
    every other state name at 18 px per row.

    The spec is what ``st.altair_chart`` would send, without Altair's schema validation: at
    a few hundred ms per chart it was most of a page run's CPU, and every chart builder is
    validated in tests/test_charts.py. The chart's top-level rows come as an Arrow table,
    which Streamlit sends as it is; from a list of dicts it builds a pandas frame first
    (36 ms for 2,000 rows, against 1 ms).
    """
    import pyarrow as pa

    spec = chart.to_dict(validate=False)
    data = spec.get("data")
    rows = data.get("values") if isinstance(data, dict) else None
    if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
        names = list(dict.fromkeys(name for row in rows for name in row))
        try:
            table = pa.Table.from_pydict({n: [row.get(n) for row in rows] for n in names})
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            table = None  # a column of mixed types: Streamlit's own conversion copes
        if table is not None and "geometry" not in names:
            spec["data"] = {**data, "values": table}
    if alt.theme.active == "default":
        # st.altair_chart serialises with the theme "none"; drop what the default theme adds.
        view = spec.get("config", {}).get("view", {})
        for option in ("continuousWidth", "continuousHeight"):
            view.pop(option, None)
    spec["autosize"] = {"type": "pad", "contains": "padding"}
    config = spec.setdefault("config", {})
    config["axis"] = {"labelLimit": 200}
    config["axisBand"] = {"labelOverlap": False, "labelLimit": 200}
    if not config.get("view", True):
        del config["view"]
    return spec


def show_chart(chart: Any) -> None:
    """Draw a chart at its natural size."""
    show_spec(natural_size(chart))


def show_spec(spec: dict[str, Any]) -> None:
    """Draw a :func:`natural_size` spec (Streamlit changes it: pass a copy of a kept one,
    such as an ``st.cache_data`` hit)."""
    st.vega_lite_chart(spec=spec, width="content")


def clickable_state_chart(chart: Any, key: str) -> None:
    """Draw a state chart whose click sets the shared State/UT filter."""
    clickable_state_spec(natural_size(chart), key)


def clickable_state_spec(spec: dict[str, Any], key: str) -> None:
    """:func:`clickable_state_chart` of a :func:`natural_size` spec (a copy: see show_spec)."""
    st.vega_lite_chart(
        spec=spec,
        width="content",
        on_select=_on_click(key),
        selection_mode=charts.STATE_SELECTION,
        key=key,
    )


# --------------------------------------------------------------------------------------------
# Suppressed cells in charts (METRICS.md "Privacy"): never drawn as 0, labelled "< k"

HIDDEN_COLOUR = "#616161"


def mark_hidden(
    chart: Any, keys: Sequence[str], labels: Mapping[tuple, str], columns: Sequence[str]
) -> Any:
    """Write the "< k"/"withheld" label of each hidden cell into ``columns`` (tooltip and text
    fields) of the chart's inline rows; ``labels`` maps the cell's values of ``keys``."""
    if not labels:
        return chart
    for row in chart.data.values:
        label = labels.get(tuple(row.get(k) for k in keys))
        if label is not None:
            row.update(dict.fromkeys(columns, label))
    return chart


def hidden_labels(frame: pl.DataFrame, keys: Sequence[str], k: int) -> dict[tuple, str]:
    """Cell values of ``keys`` → "< k" or "withheld", for the hidden rows of a Shown frame."""
    hidden = frame.filter(pl.col(privacy.SUPPRESSION).is_not_null())
    return {
        tuple(row[:-1]): privacy.label(row[-1], k) or privacy.WITHHELD_LABEL
        for row in hidden.select(*keys, privacy.SUPPRESSION).iter_rows()
    }


def share_labels(frame: pl.DataFrame, keys: Sequence[str]) -> dict[tuple, str]:
    """Cell values of ``keys`` → its share of the table (the Shown frame's ``share``: over N,
    not over the bars drawn, which leave hidden cells out); "withheld" where it is null."""
    return {
        tuple(row[:-1]): privacy.WITHHELD_LABEL if row[-1] is None else format_percent(row[-1])
        for row in frame.select(*keys, "share").iter_rows()
    }


def category_bars_hidden(
    chart: Any, labels: Mapping[tuple, str], shares: Mapping[tuple, str] | None = None
) -> Any:
    """A :func:`charts.category_bars` chart whose hidden categories read "< k" (grey, italic)
    at the baseline, with the same tooltip, instead of a bar; their share is withheld, and
    the others' shares are of N (``shares``), not of the bars left."""
    chart = mark_hidden(chart, ["category"], labels, ["count_label"])
    if not labels:
        return chart
    for row in chart.data.values:
        key = (row.get("category"),)
        if key in labels or row.get("count") is None:
            row["share_label"] = privacy.WITHHELD_LABEL
        elif shares is not None:
            row["share_label"] = shares.get(key, privacy.WITHHELD_LABEL)
        else:
            row["share_label"] = privacy.WITHHELD_LABEL
    bars = chart.layer[0].encoding
    horizontal = getattr(bars.x, "field", None) == "count"
    position = {"y": bars.y, "x": alt.datum(0)} if horizontal else {"x": bars.x, "y": alt.datum(0)}
    mark = (
        {"align": "left", "dx": 3, "baseline": "middle"}
        if horizontal
        else {"baseline": "bottom", "dy": -2}
    )
    note = (
        alt.Chart()
        .mark_text(fontSize=10, fontStyle="italic", color=HIDDEN_COLOUR, **mark)
        .encode(**position, text=alt.Text("count_label:N"), tooltip=bars.tooltip)
        .transform_filter("!isValid(datum.count)")
    )
    chart.layer = [*chart.layer, note]
    return chart


def explain_grey(chart: Any, hidden: int, k: int) -> Any:
    """A choropleth whose grey states include hidden ones: say so in its "Grey: no data" note."""
    if not hidden:
        return chart
    subtitle = chart.title.subtitle
    lines = [subtitle] if isinstance(subtitle, str) else list(subtitle or [])
    chart.title.subtitle = [
        f"Grey: no data, or hidden ({hidden} with fewer than {k} or withheld; hover: “< {k}”)"
        if str(line).startswith("Grey: no data")
        else line
        for line in lines
    ]
    return chart


# --------------------------------------------------------------------------------------------
# Sections computed once per (snapshot, filters, unit, role): a warm run only draws them


@dataclass(frozen=True)
class Section:
    """What a chart section draws, display-ready, so that an ``st.cache_data`` function keyed
    by the page context (role included: what one role sees never reaches another) can build
    it once: an info message instead of the chart, or the chart's :func:`natural_size` spec,
    its "about this number" note and its CSV download."""

    info: str | None = None
    spec: dict[str, Any] | None = None
    about: tuple[str, str | None, str | None] | None = None
    csv: bytes | None = None
    csv_name: str = ""


def draw_section(section: Section, chart_key: str | None = None) -> None:
    """Draw a :class:`Section` (``chart_key``: its chart is a clickable state chart)."""
    if section.info is not None:
        st.info(section.info)
        return
    if section.spec is not None:
        if chart_key is None:
            show_spec(section.spec)
        else:
            clickable_state_spec(section.spec, chart_key)
    if section.about is not None:
        about(*section.about)
    if section.csv is not None:
        download_csv(section.csv, section.csv_name, protected=True)
