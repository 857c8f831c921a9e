"""Entry script: page config, shared filters bound to the URL, navigation. Run with `make run`."""

from __future__ import annotations

import streamlit as st

from dashboard.views import overview
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
]
navigation = st.navigation(pages)
key = snapshot_or_none()
if key is None:
    st.session_state[CONTEXT_KEY] = PageContext(key=None)
else:
    filters, unit = render_filters(key)
    st.session_state[CONTEXT_KEY] = PageContext(key=key, filters=filters, unit=unit)
navigation.run()
