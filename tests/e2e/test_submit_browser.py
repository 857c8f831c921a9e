"""The Submit page in real Chromium: upload, preview, download the quarantine, confirm, success.

The app is served on a private copy of the demo index (confirming writes to it), so the shared
demo index of the other browser tests stays as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from dashboard.db import connect_readonly
from dashboard.formatting import format_indian
from tests.e2e.conftest import screenshot, serve_app, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

PARTNER = "DEMO-MH-01"
HEADER = "StudyInstanceUID,PatientID,site,StudyDate,Modality,PatientSex,PatientAge,state,batch"
ROWS = [
    *(
        f"9.8.{i},WEB-P{i},{PARTNER},2026-10-0{i},CT,{'MF'[i % 2]},{30 + i},Maharashtra,b1"
        for i in range(1, 6)
    ),
    f"9.8.6,WEB-P6,{PARTNER},2026-10-06,CT,F,40,Orisa,b1",
    f"9.8.7,WEB-P7,{PARTNER},2026-10-07,MR,M,41,Orisa,b1",
    f"9.8.8,WEB-P8,{PARTNER},2026-10-08,CT,F,150,Maharashtra,b1",
]


@pytest.fixture
def own_app(demo_db: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The app on a free loopback port over a private copy of the demo index."""
    db = tmp_path / "index.duckdb"
    shutil.copyfile(demo_db, db)
    with serve_app(db, tmp_path / "home") as url:
        yield url, db


def studies(db: Path) -> int:
    with connect_readonly(db) as con:
        return con.sql("SELECT count(*) FROM study").fetchall()[0][0]


def test_submit_preview_download_confirm(page: Page, own_app, tmp_path: Path) -> None:
    url, db = own_app
    before = studies(db)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{url}/submit")
    wait_idle(page)
    assert page.get_by_role("heading", name="Submit a manifest").is_visible()
    assert page.get_by_text("Local single-admin mode").is_visible()

    picker = page.locator("[data-testid='stSelectbox']").filter(
        has_text="Institution this manifest is for"
    )
    picker.click()
    page.keyboard.type(PARTNER)
    page.keyboard.press("Enter")
    wait_idle(page)

    manifest = tmp_path / "october.csv"
    manifest.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(manifest)
    page.get_by_text("5 accepted, 3 quarantined").wait_for(timeout=30_000)
    wait_idle(page)
    # the preview is for the institution picked above
    assert page.get_by_role("heading", name=f"Preview of october.csv for {PARTNER}").is_visible()
    assert page.get_by_text("2 × state 'Orisa' is not a state or UT of India").is_visible()
    assert page.get_by_text("1 × age '150' is outside 0–120 years").is_visible()
    assert studies(db) == before  # the preview wrote nothing
    screenshot(page, tmp_path, "submit_preview")
    confirm = page.get_by_role("button", name="Confirm and ingest 5 accepted rows")
    confirm.scroll_into_view_if_needed()
    screenshot(page, tmp_path, "submit_preview_bottom")

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the quarantined rows (CSV)").click()
    download = download_info.value
    assert download.suggested_filename == "quarantine_october.csv"
    lines = Path(download.path()).read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "row,column,value,reason"
    assert [line.split(",")[:3] for line in lines[1:]] == [
        ["6", "state", "Orisa"],
        ["7", "state", "Orisa"],
        ["8", "age", "150"],
    ]

    confirm.click()
    page.locator("[data-testid='stAlertContentSuccess']").wait_for(timeout=60_000)
    wait_idle(page)
    assert studies(db) == before + 5
    success = page.locator("[data-testid='stAlertContentSuccess']").inner_text()
    assert "october.csv ingested: 5 accepted" in success
    assert f"{format_indian(before + 5)} studies in the index" in success
    shot = screenshot(page, tmp_path, "submit_success")
    assert shot.stat().st_size > 20_000
    assert not page.locator("[data-testid='stException']").count()

    page.goto(url)
    wait_idle(page)
    studies_card = page.locator("[data-testid='stMetric']").filter(
        has=page.get_by_text("Studies", exact=True)
    )
    assert studies_card.locator("[data-testid='stMetricValue']").inner_text() == format_indian(
        before + 5
    )
    assert errors == []


def test_foreign_rows_refused_in_browser(page: Page, own_app, tmp_path: Path) -> None:
    url, db = own_app
    before = db.read_bytes()
    page.goto(f"{url}/submit")
    wait_idle(page)
    manifest = tmp_path / "mixed.csv"
    foreign = [r.replace(PARTNER, "DEMO-DL-01") for r in ROWS[:2]]
    manifest.write_text("\n".join([HEADER, *foreign]) + "\n", encoding="utf-8")
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(manifest)
    error = page.locator("[data-testid='stAlertContentError']")
    error.wait_for(timeout=30_000)
    wait_idle(page)
    assert "name another institution: DEMO-DL-01 (2 rows)" in error.inner_text()
    assert not page.get_by_role("button", name="Confirm and ingest").count()
    screenshot(page, tmp_path, "submit_refused")
    assert db.read_bytes() == before
