"""The Overview page in real Chromium: it loads, says the data is synthetic, draws its charts."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from dashboard.db import connect_readonly
from dashboard.formatting import format_indian
from tests.e2e.conftest import screenshot, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def test_overview_in_chromium(page: Page, app_url: str, demo_db: Path, tmp_path: Path) -> None:
    with connect_readonly(demo_db) as con:
        studies = con.sql("SELECT count(*) FROM study").fetchall()[0][0]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(app_url)
    wait_idle(page)
    assert page.get_by_role("heading", name="Overview").is_visible()
    assert page.get_by_text("Synthetic demo data").is_visible()
    studies_card = page.locator("[data-testid='stMetric']").filter(
        has=page.get_by_text("Studies", exact=True)
    )
    assert studies_card.locator("[data-testid='stMetricValue']").inner_text() == format_indian(
        studies
    )
    page.wait_for_selector(
        "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg"
    )
    assert page.locator("[data-testid='stVegaLiteChart']").count() >= 3
    assert page.get_by_text("Akula Guru Datta").is_visible()
    shot = screenshot(page, tmp_path, "overview")
    assert shot.stat().st_size > 20_000
    assert not page.locator("[data-testid='stException']").count()
    assert errors == []
