"""Entry script: page config, shared filters bound to the URL, navigation. Run with `make run`."""

from __future__ import annotations

import streamlit as st

from dashboard.views.auth import may_submit, viewer_role
from dashboard.views.common import CONTEXT_KEY, PageContext, snapshot_or_none
from dashboard.views.pages import PAGES
from dashboard.views.sidebar import render_filters

st.set_page_config(
    page_title="Imaging data diversity — India",
    page_icon=":material/diversity_3:",
    layout="wide",
)

key = snapshot_or_none()
# Local mode (no [auth]): the single admin, with a banner; else the logged-in user's role from
# the users file, the public role, or a refusal page (the run stops there).
role = viewer_role(key)
# A partner lands on its own Institution page (USERS.md, path 4); everyone else on the first.
landing = "institution" if role.institution else PAGES[0].url_path
pages = [
    st.Page(
        page.render,
        title=page.title,
        icon=page.icon,
        url_path=page.url_path,
        default=page.url_path == landing,
    )
    for page in PAGES
    # Only the admin and partners submit; the page is not even registered for the others, so
    # its URL falls back to the landing page.
    if page.url_path != "submit" or may_submit(role)
]
navigation = st.navigation(pages)
if key is None:
    st.session_state[CONTEXT_KEY] = PageContext(key=None, role=role)
else:
    filters, unit = render_filters(key)
    st.session_state[CONTEXT_KEY] = PageContext(key=key, filters=filters, unit=unit, role=role)
navigation.run()
