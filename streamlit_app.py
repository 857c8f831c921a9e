"""Entry script: page config, shared state, navigation. Run with `make run`."""

from __future__ import annotations

import streamlit as st

from dashboard.views import overview

st.set_page_config(
    page_title="Imaging data diversity — India",
    page_icon=":material/diversity_3:",
    layout="wide",
)

pages = [
    st.Page(overview.render, title="Overview", icon=":material/dashboard:", url_path="overview",
            default=True),
]
st.navigation(pages).run()
