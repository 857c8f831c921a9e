"""The coverage pages in real Chromium: the steering-meeting path of USERS.md (per 100,000 map,
click Assam, every page shows Assam, the URL carries it), map clicks, filters in the URL,
CSV downloads, and every page opening without errors.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page

from dashboard.db import connect_readonly
from dashboard.formatting import format_indian
from tests.e2e.conftest import screenshot, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

CHART = "[data-testid='stVegaLiteChart']"


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def goto(page: Page, url: str) -> list[str]:
    """Open a URL, wait for the run to finish; returns the list page errors are appended to."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    wait_idle(page)
    page.wait_for_selector(f"{CHART} svg, {CHART} canvas", timeout=30_000)
    return errors


def metric(page: Page, label: str) -> str:
    card = page.locator("[data-testid='stMetric']", has_text=label).first
    return card.locator("[data-testid='stMetricValue']").inner_text()


def state_mark(page: Page, role: str, state: str):
    """A state's bar or map shape: Vega's SVG marks carry their tooltip as aria-label."""
    return page.locator(
        f"{CHART} path[aria-roledescription='{role}'][aria-label*='State/UT: {state};']"
    ).first


def click_centre(page: Page, locator) -> None:
    """Click the middle of a mark (a real mouse click; layers above it get it as a user's would)."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_idle(page)


def tall_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """The page body scrolls inside Streamlit's container: make the window tall enough."""
    height = page.evaluate(
        "() => Math.max(...Array.from(document.querySelectorAll('section, .main, "
        "[data-testid=stMain], [data-testid=stMainBlockContainer]')).map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": 1400, "height": min(max(int(height) + 120, 1000), 6000)})
    page.wait_for_timeout(500)
    return screenshot(page, tmp_path, name)


def no_exceptions(page: Page, errors: list[str]) -> None:
    assert not page.locator("[data-testid='stException']").count()
    assert errors == []


def test_steering_meeting_path(page: Page, app_url: str, demo_db: Path, tmp_path: Path) -> None:
    """USERS.md path 2: per 100,000 map, north-east nearly empty, click Assam, copy the URL."""
    errors = goto(page, f"{app_url}/geography")
    assert page.get_by_role("heading", name="Geography").is_visible()
    page.get_by_text("Per 100,000 population", exact=True).click()
    wait_idle(page)
    with connect_readonly(demo_db) as con:
        lowest = con.sql(
            "SELECT r.name FROM study s JOIN ref_state r ON r.iso_code = s.state "
            "GROUP BY r.name, r.proj2026_total "
            "ORDER BY count(DISTINCT s.patient_key) / r.proj2026_total, r.name LIMIT 1"
        ).fetchall()[0][0]
        assam = con.sql(
            "SELECT count(DISTINCT patient_key) FROM study WHERE state = 'IN-AS'"
        ).fetchall()[0][0]
    # The least covered state per head is a north-eastern or island one, far below India's.
    assert lowest in {
        "Andaman and Nicobar Islands",
        "Arunachal Pradesh",
        "Lakshadweep",
        "Manipur",
        "Meghalaya",
        "Mizoram",
        "Nagaland",
        "Sikkim",
        "Tripura",
        "Assam",
    }
    assert metric(page, "Lowest (with data)") == lowest
    shot = tall_screenshot(page, tmp_path, "geography_per_100k")
    assert shot.stat().st_size > 50_000

    click_centre(page, state_mark(page, "bar", "Assam"))
    assert query(page)["state"] == ["Assam"]
    assert metric(page, "States/UTs with data") == "1 of 36"
    assert metric(page, "Patients with a known state") == format_indian(assam)
    assert page.get_by_text("only (State/UT filter)").is_visible()
    tall_screenshot(page, tmp_path, "geography_assam")

    # Every page now shows Assam only: the Overview headline, via the sidebar link.
    page.get_by_role("link", name="Overview").click()
    wait_idle(page)
    assert query(page)["state"] == ["Assam"]
    assert metric(page, "States/UTs covered") == "1 of 36"
    # The copied URL opens the same view for someone else.
    shared = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        goto(shared, f"{app_url}/trends?state=Assam")
        assert shared.get_by_role("heading", name="Trends").is_visible()
        assert metric(shared, "State/UT: distance now") == "0.000"
        assert shared.get_by_text("only (State/UT filter)").is_visible()
    finally:
        shared.close()
    no_exceptions(page, errors)


def test_clicking_the_map_filters_and_show_all_clears(
    page: Page, app_url: str, tmp_path: Path
) -> None:
    errors = goto(page, f"{app_url}/geography")
    click_centre(page, state_mark(page, "geoshape", "Madhya Pradesh"))
    assert query(page)["state"] == ["Madhya Pradesh"]
    assert metric(page, "States/UTs with data") == "1 of 36"
    tall_screenshot(page, tmp_path, "geography_map_click")
    page.get_by_role("button", name="Show all states").click()
    wait_idle(page)
    assert "state" not in query(page)
    assert metric(page, "States/UTs with data").endswith("of 36")
    assert metric(page, "States/UTs with data") != "1 of 36"
    no_exceptions(page, errors)


def test_changing_a_filter_changes_the_url(page: Page, app_url: str, demo_db: Path) -> None:
    errors = goto(page, f"{app_url}/geography")
    page.locator("[data-testid='stSidebar']").get_by_text("studies", exact=True).click()
    wait_idle(page)
    assert query(page)["unit"] == ["studies"]
    with connect_readonly(demo_db) as con:
        studies = con.sql("SELECT count(*) FROM study WHERE state IS NOT NULL").fetchall()[0][0]
    assert metric(page, "Studies with a known state") == format_indian(studies)
    no_exceptions(page, errors)


def test_download_the_table_behind_the_map(page: Page, app_url: str, demo_db: Path) -> None:
    errors = goto(page, f"{app_url}/geography")
    page.get_by_text("Ratio vs population share", exact=True).click()
    wait_idle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    assert download.value.suggested_filename == "coverage_by_state_ratio.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text("utf-8-sig"))))
    assert len(rows) == 36
    assert {"state_ut", "patients", "population", "representation_ratio", "flag"} <= set(rows[0])
    with connect_readonly(demo_db) as con:
        karnataka = con.sql(
            "SELECT count(DISTINCT patient_key) FROM study WHERE state = 'IN-KA'"
        ).fetchall()[0][0]
    by_name = {r["state_ut"]: r for r in rows}
    assert int(by_name["Karnataka"]["patients"]) == karnataka
    assert int(float(by_name["Karnataka"]["population"])) == 68_962_000
    no_exceptions(page, errors)


@pytest.mark.parametrize(
    ("path", "heading", "bar_state"),
    [
        ("demographics", "Demographics", "Kerala"),
        ("modality-disease", "Modality and disease", "Kerala"),
        ("trends", "Trends", None),
    ],
)
def test_every_coverage_page_opens(
    page: Page, app_url: str, tmp_path: Path, path: str, heading: str, bar_state: str | None
) -> None:
    errors = goto(page, f"{app_url}/{path}")
    assert page.get_by_role("heading", name=heading).is_visible()
    assert page.get_by_text("Synthetic demo data").is_visible()
    assert page.locator(CHART).count() >= 3
    assert page.get_by_role("button", name="Download CSV").count() >= 2
    assert page.get_by_text("Akula Guru Datta").is_visible()
    tall_screenshot(page, tmp_path, path.replace("-", "_"))
    if bar_state:
        # State bars on other pages set the same shared filter.
        click_centre(page, state_mark(page, "bar", bar_state))
        assert query(page)["state"] == [bar_state]
        assert page.get_by_text("only (State/UT filter)").is_visible()
    no_exceptions(page, errors)
