"""Entry script: page config, shared filters bound to the URL, navigation. Run with `make run`."""

from __future__ import annotations

import streamlit as st

from dashboard.views import (
    data_quality,
    demographics,
    gaps,
    geography,
    institution,
    modality_disease,
    overview,
    planner,
    submit,
    trends,
)
from dashboard.views.common import CONTEXT_KEY, PageContext, snapshot_or_none
from dashboard.views.sidebar import render_filters

st.set_page_config(
    page_title="Imaging data diversity — India",
    page_icon=":material/diversity_3:",
    layout="wide",
)

pages = [
    st.Page(
        overview.render,
        title="Overview",
        icon=":material/dashboard:",
        url_path="overview",
        default=True,
    ),
    st.Page(
        geography.render,
        title="Geography",
        icon=":material/map:",
        url_path="geography",
    ),
    st.Page(
        demographics.render,
        title="Demographics",
        icon=":material/groups:",
        url_path="demographics",
    ),
    st.Page(
        modality_disease.render,
        title="Modality and disease",
        icon=":material/radiology:",
        url_path="modality-disease",
    ),
    st.Page(
        trends.render,
        title="Trends",
        icon=":material/trending_up:",
        url_path="trends",
    ),
    st.Page(
        institution.render,
        title="Institution",
        icon=":material/local_hospital:",
        url_path="institution",
    ),
    st.Page(
        data_quality.render,
        title="Data quality",
        icon=":material/fact_check:",
        url_path="data-quality",
    ),
    st.Page(
        gaps.render,
        title="Gaps",
        icon=":material/troubleshoot:",
        url_path="gaps",
    ),
    st.Page(
        planner.render,
        title="Planner",
        icon=":material/event_note:",
        url_path="planner",
    ),
    st.Page(
        submit.render,
        title="Submit",
        icon=":material/upload_file:",
        url_path="submit",
    ),
]
navigation = st.navigation(pages)
key = snapshot_or_none()
if key is None:
    st.session_state[CONTEXT_KEY] = PageContext(key=None)
else:
    filters, unit = render_filters(key)
    st.session_state[CONTEXT_KEY] = PageContext(key=key, filters=filters, unit=unit)
navigation.run()
