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

# (page, title, icon, url path); the first is the landing page.
PAGES = [
    (overview.render, "Overview", ":material/dashboard:", "overview"),
    (geography.render, "Geography", ":material/map:", "geography"),
    (demographics.render, "Demographics", ":material/groups:", "demographics"),
    (modality_disease.render, "Modality and disease", ":material/radiology:", "modality-disease"),
    (trends.render, "Trends", ":material/trending_up:", "trends"),
    (institution.render, "Institution", ":material/local_hospital:", "institution"),
    (data_quality.render, "Data quality", ":material/fact_check:", "data-quality"),
    (gaps.render, "Gaps", ":material/troubleshoot:", "gaps"),
    (planner.render, "Planner", ":material/event_note:", "planner"),
    (submit.render, "Submit", ":material/upload_file:", "submit"),
]
pages = [
    st.Page(render, title=title, icon=icon, url_path=path, default=i == 0)
    for i, (render, title, icon, path) in enumerate(PAGES)
]
navigation = st.navigation(pages)
key = snapshot_or_none()
if key is None:
    st.session_state[CONTEXT_KEY] = PageContext(key=None)
else:
    filters, unit = render_filters(key)
    st.session_state[CONTEXT_KEY] = PageContext(key=key, filters=filters, unit=unit)
navigation.run()
