"""Running the app under Streamlit's AppTest, on any page, with a shared link's parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")


def run_page(
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
    page: str = "overview",
    **query_params: str | list[str],
) -> AppTest:
    """Run the app on one page of st.navigation over ``db``, as a browser opening a link would.

    AppTest.switch_page only finds file-based pages; a st.Page(callable) is identified by the
    hash of its url_path, which is what a browser asks for.
    """
    monkeypatch.setenv("DIVERSITY_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120)
    at._page_hash = calc_hash(page)
    for key, value in query_params.items():
        at.query_params[key] = value
    return at.run()


def metrics(at: AppTest) -> dict[str, str]:
    """Metric cards by label."""
    return {m.label: m.value for m in at.metric}
