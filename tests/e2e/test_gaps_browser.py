"""The Gaps and Planner pages in real Chromium: they draw, react to the sort and the budget,
write the choice into the URL, and download what they show."""

from __future__ import annotations

import csv
import io
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page

from dashboard.formatting import format_indian
from dashboard.reference import load_reference
from tests.e2e.conftest import screenshot, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

CHART = "[data-testid='stVegaLiteChart']"


def shot(element: Locator, tmp_path: Path, name: str) -> Path:
    """An element screenshot (the page body scrolls inside Streamlit's own container)."""
    element.evaluate("e => e.scrollIntoView({block: 'center'})")
    path = tmp_path / f"{name}.png"
    element.screenshot(path=path)
    if target := os.environ.get("E2E_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / path.name)
    return path


def download(page: Page, label: str) -> bytes:
    button = page.locator("[data-testid='stDownloadButton']", has_text=label)
    button.scroll_into_view_if_needed()
    with page.expect_download() as info:
        button.locator("button").click()
    return Path(info.value.path()).read_bytes()


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def metric(page: Page, label: str) -> str:
    card = page.locator("[data-testid='stMetric']", has_text=label).first
    return card.locator("[data-testid='stMetricValue']").inner_text()


def test_gaps_in_chromium(page: Page, app_url: str, tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{app_url}/gaps")
    wait_idle(page)
    assert page.get_by_role("heading", name="Gaps").is_visible()
    page.wait_for_selector(f"{CHART} canvas, {CHART} svg")
    screenshot(page, tmp_path, "gaps_top")
    shot(page.locator(CHART).first, tmp_path, "gaps_chart")
    by_shortfall = csv_rows(download(page, "Download CSV"))
    assert len(by_shortfall) >= 36
    shortfalls = [int(r["shortfall"]) for r in by_shortfall if r["shortfall"]]
    assert shortfalls == sorted(shortfalls, reverse=True)
    names = load_reference().state_names
    assert by_shortfall[0]["state_label"] == names[by_shortfall[0]["state"]]

    page.get_by_text("Representation ratio", exact=True).click()
    wait_idle(page)
    assert "gaps_sort=Representation" in page.url
    by_rr = csv_rows(download(page, "Download CSV"))
    ratios = [float(r["rr"]) for r in by_rr if r["rr"]]
    assert ratios == sorted(ratios)
    assert by_rr[0]["state"] != by_shortfall[0]["state"]
    shot(page.locator(CHART).first, tmp_path, "gaps_chart_by_rr")
    shot(page.locator("[data-testid='stDataFrame']").first, tmp_path, "gaps_table_by_rr")
    assert not page.locator("[data-testid='stException']").count()
    assert errors == []


def test_gaps_cross_from_the_url(page: Page, app_url: str, tmp_path: Path) -> None:
    page.goto(f"{app_url}/gaps?gaps_by=State%2FUT&gaps_by=Sex&gaps_by=Age+band")
    wait_idle(page)
    page.wait_for_selector(f"{CHART} canvas, {CHART} svg")
    rows = csv_rows(download(page, "Download CSV"))
    assert len([r for r in rows if r["ref_share"]]) == 36 * 2 * 17
    shot(page.locator(CHART).first, tmp_path, "gaps_chart_state_sex_age")
    page.goto(f"{app_url}/gaps?gaps_by=Urban%2Frural&gaps_by=Sex")
    wait_idle(page)
    assert page.get_by_text("do not cross urban/rural with sex or age").is_visible()


def test_planner_in_chromium(page: Page, app_url: str, tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{app_url}/planner")
    wait_idle(page)
    assert page.get_by_role("heading", name="Collection planner").is_visible()
    assert metric(page, "Allocated") == format_indian(20_000)
    screenshot(page, tmp_path, "planner_top")

    budget = page.get_by_label("Budget (new patients)")
    budget.fill("5000")
    budget.press("Enter")
    wait_idle(page)
    assert metric(page, "Allocated") == format_indian(5_000)
    assert "plan_budget=5000" in page.url
    cells = csv_rows(download(page, "Cells (CSV)"))
    assert sum(int(r["allocated"]) for r in cells) == 5_000
    partners = csv_rows(download(page, "Per partner (CSV)"))
    assert sum(int(r["allocated"]) for r in partners) == 5_000
    book = zipfile.ZipFile(io.BytesIO(download(page, "Plan (XLSX)")))
    workbook = book.read("xl/workbook.xml").decode()
    assert all(f'name="{name}"' in workbook for name in ("cells", "per-partner", "summary"))
    page.wait_for_selector(f"{CHART} canvas, {CHART} svg")
    shot(page.locator(CHART).first, tmp_path, "planner_partner_chart")
    shot(page.locator("[data-testid='stDataFrame']").first, tmp_path, "planner_cells_table")
    assert not page.locator("[data-testid='stException']").count()
    assert errors == []


STATE_MODALITY_TARGETS = (
    "state,modality,target\n"
    "Uttar Pradesh,CT,20\nUttar Pradesh,DX,30\nBihar,CT,10\nBihar,DX,20\n"
    "Karnataka,CT,5\nKarnataka,MR,5\nAssam,DX,10\n"
)


def upload(page: Page, tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    page.locator("[data-testid='stFileUploader'] input[type='file']").first.set_input_files(path)
    # the upload is an HTTP request before the rerun: an idle page alone may still be the old run
    page.locator("[data-testid='stFileUploader']").get_by_text(name).wait_for(timeout=30_000)
    wait_idle(page)


def test_gaps_against_uploaded_targets(page: Page, app_url: str, tmp_path: Path) -> None:
    page.goto(f"{app_url}/gaps?gaps_ref=Targets+CSV&gaps_by=State%2FUT&gaps_by=Modality")
    wait_idle(page)
    assert page.get_by_text("Upload a targets CSV").first.is_visible()
    upload(page, tmp_path, "state_modality.csv", STATE_MODALITY_TARGETS)
    rows = csv_rows(download(page, "Download CSV"))
    listed = {(r["state"], r["modality"]) for r in rows if r["ref_share"]}
    assert listed == {
        ("IN-UP", "CT"), ("IN-UP", "DX"), ("IN-BR", "CT"), ("IN-BR", "DX"),
        ("IN-KA", "CT"), ("IN-KA", "MR"), ("IN-AS", "DX"),
    }  # fmt: skip
    assert {float(r["ref_share"]) for r in rows if r["state"] == "IN-AS" and r["ref_share"]} == {
        0.1
    }
    screenshot(page, tmp_path, "gaps_targets")


def test_planner_state_by_modality_against_targets(
    page: Page, app_url: str, tmp_path: Path
) -> None:
    """USERS.md path 8: budget 20,000, state × modality, per cell and per partner, XLSX."""
    page.goto(f"{app_url}/planner?plan_ref=Targets+CSV&plan_by=State%2FUT&plan_by=Modality")
    wait_idle(page)
    upload(page, tmp_path, "state_modality.csv", STATE_MODALITY_TARGETS)
    assert metric(page, "Allocated") == format_indian(20_000)
    assert page.get_by_text("After this plan").is_visible()
    partners = csv_rows(download(page, "Per partner (CSV)"))
    assert sum(int(r["allocated"]) for r in partners) == 20_000
    cells = csv_rows(download(page, "Cells (CSV)"))
    assert {r["modality"] for r in cells if int(r["allocated"])} <= {"CT", "DX", "MR"}
    assert any(r["forecast_month"] for r in cells if int(r["allocated"]))
    book = zipfile.ZipFile(io.BytesIO(download(page, "Plan (XLSX)")))
    assert "Programme targets from state_modality.csv" in book.read("xl/sharedStrings.xml").decode()
    shot(page.locator("[data-testid='stDataFrame']").first, tmp_path, "planner_targets_cells")
    screenshot(page, tmp_path, "planner_targets")
