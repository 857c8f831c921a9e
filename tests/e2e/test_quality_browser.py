"""The Data quality and Institution pages in real Chromium: charts, rows-to-fix CSVs, the URL."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from playwright.sync_api import Download, Page

from dashboard.db import connect_readonly
from dashboard.formatting import format_indian
from tests.e2e.conftest import screenshot, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

CHART = "[data-testid='stVegaLiteChart']"


def sql(db: Path, query: str) -> list[tuple]:
    with connect_readonly(db) as con:
        return con.sql(query).fetchall()


def tall_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its own container, so grow the viewport first."""
    height = page.evaluate("() => document.querySelector(\"[data-testid='stMain']\").scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 100, 12_000)})
    page.wait_for_timeout(800)
    shot = screenshot(page, tmp_path, name)
    page.set_viewport_size({"width": 1400, "height": 1000})
    return shot


def element_screenshot(page: Page, selector_index: int, tmp_path: Path, name: str) -> Path:
    """One chart on its own (kept in $E2E_SCREENSHOTS too, like the page shots)."""
    chart = page.locator(CHART).nth(selector_index)
    chart.scroll_into_view_if_needed()
    path = tmp_path / f"{name}.png"
    chart.screenshot(path=path)
    if target := os.environ.get("E2E_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / path.name)
    return path


def download(page: Page, label: str, tmp_path: Path) -> pl.DataFrame:
    """Click a download button and read the CSV the browser received."""
    button = page.locator("[data-testid='stDownloadButton']", has_text=label).locator("button")
    button.scroll_into_view_if_needed()
    with page.expect_download() as info:
        button.click()
    received: Download = info.value
    target = tmp_path / received.suggested_filename
    received.save_as(target)
    return pl.read_csv(target, infer_schema_length=0)


def open_page(page: Page, url: str, errors: list[str]) -> None:
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    wait_idle(page)
    page.wait_for_selector(f"{CHART} canvas, {CHART} svg")
    wait_idle(page)


def test_data_quality_in_chromium(page: Page, app_url: str, demo_db: Path, tmp_path: Path) -> None:
    open_rows = sql(demo_db, 'SELECT DISTINCT file, "row" FROM quarantine ORDER BY 1, 2')
    studies = sql(demo_db, "SELECT count(*) FROM study")[0][0]
    errors: list[str] = []
    open_page(page, f"{app_url}/data-quality", errors)
    assert page.get_by_role("heading", name="Data quality").is_visible()
    card = page.locator("[data-testid='stMetric']", has_text="Studies checked")
    assert card.locator("[data-testid='stMetricValue']").inner_text() == format_indian(studies)
    assert page.locator(CHART).count() >= 3
    assert page.get_by_text("DICOM header auditing has not been ingested yet").is_visible()

    assert element_screenshot(page, 0, tmp_path, "data_quality_heatmap").stat().st_size > 20_000
    screenshot(page, tmp_path, "data_quality_top")

    everything = download(page, f"Download the {len(open_rows)} rows to fix", tmp_path)
    assert everything.height == len(open_rows)
    assert list(zip(everything["file"], everything["row"].cast(pl.Int64), strict=True)) == [
        (f, r) for f, r in open_rows
    ]
    assert everything["reasons"].str.len_chars().min() > 0

    # Narrow the rows to one institution through the page's own selector.
    ka_rows = sql(
        demo_db,
        "SELECT DISTINCT \"row\" FROM quarantine WHERE institution_id = 'DEMO-KA-01' ORDER BY 1",
    )
    chooser = page.locator("[data-testid='stSelectbox']", has_text="Rows to fix for")
    chooser.scroll_into_view_if_needed()
    chooser.click()
    page.keyboard.type("DEMO-KA-01")
    page.keyboard.press("Enter")
    wait_idle(page)
    ka = download(page, f"Download the {len(ka_rows)} rows to fix", tmp_path)
    assert ka["row"].cast(pl.Int64).to_list() == [r for (r,) in ka_rows]
    assert set(ka["file"]) == {"DEMO-KA-01.parquet"}

    tall_screenshot(page, tmp_path, "data_quality")
    assert not page.locator("[data-testid='stException']").count()
    assert errors == []


def test_institution_in_chromium(page: Page, app_url: str, demo_db: Path, tmp_path: Path) -> None:
    name, studies = sql(
        demo_db,
        "SELECT i.name, count(*) FROM institution i JOIN study s USING (institution_id) "
        "WHERE institution_id = 'DEMO-KA-01' GROUP BY i.name",
    )[0]
    open_rows = sql(
        demo_db,
        "SELECT DISTINCT \"row\" FROM quarantine WHERE institution_id = 'DEMO-KA-01' ORDER BY 1",
    )
    errors: list[str] = []
    open_page(page, f"{app_url}/institution?partner=DEMO-KA-01", errors)
    assert page.get_by_role("heading", name="Institution", exact=True).is_visible()
    assert page.get_by_role("heading", name=name).is_visible()
    card = page.locator("[data-testid='stMetric']", has_text="Studies")
    assert card.first.locator("[data-testid='stMetricValue']").inner_text() == format_indian(
        studies
    )
    assert page.locator(CHART).count() >= 6
    screenshot(page, tmp_path, "institution_top")
    element_screenshot(page, page.locator(CHART).count() - 1, tmp_path, "institution_gaps")

    rows = download(page, f"Download the {len(open_rows)} rows to fix", tmp_path)
    assert rows["row"].cast(pl.Int64).to_list() == [r for (r,) in open_rows]
    assert set(rows["institution_id"].str.to_uppercase()) == {"DEMO-KA-01"}
    tall_screenshot(page, tmp_path, "institution")

    # Choosing another partner writes it to the URL, so the page can be shared or bookmarked.
    other = sql(demo_db, "SELECT name FROM institution WHERE institution_id = 'DEMO-TN-02'")[0][0]
    page.locator("[data-testid='stMain']").evaluate("m => m.scrollTo(0, 0)")
    chooser = page.locator("[data-testid='stSelectbox']", has_text="Partner institution")
    chooser.click()
    page.keyboard.type("DEMO-TN-02")
    page.keyboard.press("Enter")
    wait_idle(page)
    page.wait_for_function("() => window.location.search.includes('partner=DEMO-TN-02')")
    assert page.get_by_role("heading", name=other).is_visible()
    assert not page.locator("[data-testid='stException']").count()
    assert errors == []
