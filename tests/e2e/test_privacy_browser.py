"""The public view in real Chromium: walk every page, scan what is rendered for counts below k.

The app is served with an ``[auth]`` section (its provider is never contacted: nobody logs in
here), so a visitor who has not logged in gets the public role, as on a deployment. What is
scanned is the page's text as a reader sees it: metric cards, captions, notes and lists. (Table
cells and chart tooltips are drawn on canvas; tests/test_pages_privacy.py scans their data.)
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from dashboard.views.pages import PAGES as APP_PAGES
from tests.e2e.conftest import free_port, screenshot, serve_app, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

K = 10
# Every page the public is offered (not Submit); the landing page by its URL, "".
PAGES = tuple(
    "" if i == 0 else page.url_path for i, page in enumerate(APP_PAGES) if page.url_path != "submit"
)
MAIN = "[data-testid='stMain']"
# Cards that count institutions, states or table cells, not people.
NOT_PEOPLE = ("Institutions", "States/UTs", "cells")
COUNT_IN_TEXT = re.compile(
    r"(?<![\d.,:–-])(\d{1,3}(?:,\d{2})*(?:,\d{3})?|\d+)\s+(patients|studies|images)\b"
)


@pytest.fixture(scope="module")
def public_url(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app with login configured and nobody logged in: the public view."""
    folder = tmp_path_factory.mktemp("public")
    port = free_port()
    secrets = folder / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        'cookie_secret = "e2e-cookie-secret-0123456789abcdef"\n'
        'client_id = "diversity-dashboard"\n'
        'client_secret = "e2e-client-secret"\n'
        'server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    users = folder / "users.csv"
    users.write_text("email,role,institution\n", encoding="utf-8")
    env = {"DIVERSITY_USERS": str(users), "DIVERSITY_UNKNOWN_USERS": "public"}
    with serve_app(
        demo_db, folder / "home", port=port, args=["--secrets.files", str(secrets)], env=env
    ) as url:
        yield url


def _small(text: str) -> bool:
    value = text.strip()
    return bool(re.fullmatch(r"\d{1,3}(?:,\d{2})*(?:,\d{3})?|\d+", value)) and (
        0 < int(value.replace(",", "")) < K
    )


def small_counts(page: Page) -> list[str]:
    """Metric values and "N patients/studies/images" phrases with 0 < N < k."""
    hits = []
    for card in page.locator("[data-testid='stMetric']").all():
        label = card.locator("[data-testid='stMetricLabel']").inner_text()
        value = card.locator("[data-testid='stMetricValue']").inner_text()
        if not any(word in label for word in NOT_PEOPLE) and _small(value):
            hits.append(f"{label}: {value}")
    text = page.locator(MAIN).inner_text()
    hits += [m.group(0) for m in COUNT_IN_TEXT.finditer(text) if _small(m.group(1))]
    return hits


def charts(page: Page, tmp_path: Path, name: str) -> None:
    """Each chart of the page as its own picture (the page body scrolls inside Streamlit)."""
    for i, chart in enumerate(page.locator("[data-testid='stVegaLiteChart']").all()):
        chart.scroll_into_view_if_needed()
        path = tmp_path / f"{name}_chart{i}.png"
        chart.screenshot(path=path)
        if target := os.environ.get("E2E_SCREENSHOTS"):
            shutil.copyfile(path, Path(target) / path.name)


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    wait_idle(page)
    page.wait_for_selector("h1", timeout=30_000)


def test_public_walks_every_page_and_sees_no_count_below_k(
    page: Page, public_url: str, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 1500, "height": 1100})
    seen_below_k = False
    for path in PAGES:
        open_page(page, f"{public_url}/{path}")
        assert page.locator("[data-testid='stException']").count() == 0, path
        assert "Page not found" not in page.content(), path
        assert "public view" in page.locator("[data-testid='stSidebar']").inner_text()
        assert small_counts(page) == [], path
        seen_below_k |= "< 10" in page.locator(MAIN).inner_text()
        if path in ("", "geography"):
            name = path or "overview"
            screenshot(page, tmp_path, f"privacy_public_{name}")
            charts(page, tmp_path, f"privacy_public_{name}")
    assert seen_below_k  # suppressed counts are labelled somewhere, not silently dropped


def test_public_narrowed_to_a_tiny_state_by_url(page: Page, public_url: str) -> None:
    """Nagaland has 2 studies of 1 patient in the demo index."""
    open_page(page, f"{public_url}/?state=Nagaland")
    cards = {
        c.locator("[data-testid='stMetricLabel']").inner_text(): c.locator(
            "[data-testid='stMetricValue']"
        ).inner_text()
        for c in page.locator("[data-testid='stMetric']").all()
    }
    assert cards["Studies"] == "< 10" and cards["Patients"] == "< 10"
    assert small_counts(page) == []
