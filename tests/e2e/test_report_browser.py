"""The diversity datasheet in real Chromium: opened as a file it draws everything offline, and
the Overview's button hands the browser the same document."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page

from dashboard.db import connect_readonly
from dashboard.formatting import format_indian
from dashboard.report import write_report
from dashboard.roles import Role
from tests.e2e.conftest import screenshot, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def element_shot(locator: Locator, tmp_path: Path, name: str) -> Path:
    """Screenshot of one element (kept in $E2E_SCREENSHOTS too, like the full-page ones)."""
    path = tmp_path / f"{name}.png"
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=path)
    if target := os.environ.get("E2E_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / path.name)
    return path


def test_datasheet_file_in_chromium(page: Page, demo_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "datasheet.html"
    sheet = write_report(demo_db, out)
    with connect_readonly(demo_db) as con:
        studies = con.sql("SELECT count(*) FROM study").fetchall()[0][0]
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(out.as_uri())
    page.wait_for_load_state("load")
    assert page.title() == f"Diversity datasheet · snapshot {sheet.snapshot.id}"
    assert page.locator("#total-studies").inner_text() == format_indian(studies)
    assert page.locator("#synthetic-notice").is_visible()
    # nothing but the file itself was fetched: the document is self-contained
    assert [u for u in requests if not u.startswith("file://")] == []
    assert errors == []
    # every chart is drawn at a readable size
    charts = page.locator("figure .chart svg")
    assert charts.count() >= 8
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box and box["width"] > 250 and box["height"] > 100, i
    # the contents links jump to their sections
    page.get_by_role("link", name="3. Collection process").click()
    assert page.evaluate("location.hash") == "#collection"
    page.evaluate("window.scrollTo(0, 0)")
    full = screenshot(page, tmp_path, "datasheet_full")
    assert full.stat().st_size > 200_000
    element_shot(page.locator("header"), tmp_path, "datasheet_header")
    summary = page.locator("h2#summary ~ .cards").first
    assert summary.is_visible()
    element_shot(summary, tmp_path, "datasheet_cards")
    element_shot(page.locator("#fig-map"), tmp_path, "datasheet_map")
    element_shot(page.locator("#fig-gaps"), tmp_path, "datasheet_gaps")
    element_shot(page.locator("#fig-age_band"), tmp_path, "datasheet_age")
    element_shot(page.locator("#deidentification ~ ul").first, tmp_path, "datasheet_deid")


def test_print_layout_keeps_the_charts(page: Page, demo_db: Path, tmp_path: Path) -> None:
    """Printed (or saved as PDF from the browser), the charts fit the A4 page width."""
    out = tmp_path / "datasheet.html"
    write_report(demo_db, out)
    page.goto(out.as_uri())
    page.emulate_media(media="print")
    width = page.evaluate("document.body.getBoundingClientRect().width")
    for i in range(page.locator("figure .chart svg").count()):
        box = page.locator("figure .chart svg").nth(i).bounding_box()
        assert box and box["width"] <= width + 1, i
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 100_000


def test_overview_button_downloads_the_datasheet(
    page: Page, app_url: str, demo_db: Path, tmp_path: Path
) -> None:
    page.goto(app_url)
    wait_idle(page)
    button = page.get_by_role("button", name="Download the diversity datasheet (HTML)")
    button.scroll_into_view_if_needed()
    assert button.is_visible()
    with page.expect_download(timeout=90_000) as info:
        button.click()
    download = info.value
    assert download.suggested_filename.startswith("diversity-datasheet-")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    html = saved.read_text(encoding="utf-8")
    ident = download.suggested_filename.removeprefix("diversity-datasheet-").removesuffix(".html")
    assert f'<meta name="snapshot-id" content="{ident}">' in html
    with connect_readonly(demo_db) as con:
        studies = con.sql("SELECT count(*) FROM study").fetchall()[0][0]
    assert f'id="total-studies">{format_indian(studies)}<' in html
    # the same document laid out as a PDF, generated on the server when clicked
    pdf_button = page.get_by_role("button", name="PDF")
    with page.expect_download(timeout=120_000) as info:
        pdf_button.click()
    pdf = tmp_path / info.value.suggested_filename
    info.value.save_as(pdf)
    assert pdf.name == f"diversity-datasheet-{ident}.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    caption = page.get_by_text(f"Datasheet of snapshot {ident}")
    assert caption.is_visible()
    element_shot(
        page.locator("[data-testid='stHorizontalBlock']").filter(has=pdf_button).first,
        tmp_path,
        "overview_datasheet_buttons",
    )
    assert not page.locator("[data-testid='stException']").count()


def test_public_datasheet_in_chromium(page: Page, demo_db: Path, tmp_path: Path) -> None:
    """The public edition: small states read "< 10" in the rendered table, the header says for
    whom it was made and what was withheld, and no rendered count cell is below k."""
    out = tmp_path / "public.html"
    write_report(demo_db, out, role=Role.parse("public"))
    with connect_readonly(demo_db) as con:
        karnataka = con.sql(
            "SELECT count(DISTINCT (institution_id, patient_id)) FROM study WHERE state = 'IN-KA'"
        ).fetchall()[0][0]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(out.as_uri())
    page.wait_for_load_state("load")
    assert "public" in page.locator("#made-for").inner_text()
    assert "state/UT" in page.locator("#withheld").inner_text()
    table = page.locator("h3#dim-state ~ table").first
    nagaland = table.locator("tr", has=page.locator("td", has_text="Nagaland"))
    assert nagaland.locator("td").nth(1).inner_text() == "< 10"
    karnataka_row = table.locator("tr", has=page.locator("td", has_text="Karnataka"))
    assert karnataka_row.locator("td").nth(1).inner_text() == format_indian(karnataka)
    # every rendered table cell headed as a count of people or studies
    small = page.evaluate(
        """() => {
          const out = [];
          for (const t of document.querySelectorAll('table')) {
            const heads = [...t.querySelectorAll('thead th')].map(h => h.innerText.trim());
            for (const tr of t.querySelectorAll('tbody tr')) {
              [...tr.children].forEach((td, i) => {
                const v = td.innerText.trim().replace(/,/g, '');
                if (/^(Patients|Studies|Rows to fix|Files flagged|Unknown, left out)/
                      .test(heads[i] || '') && /^[1-9]$/.test(v)) out.push([heads[i], v]);
              });
            }
          }
          return out;
        }"""
    )
    assert small == []
    assert errors == []
    element_shot(page.locator("header"), tmp_path, "public_datasheet_header")
    element_shot(page.locator("#fig-map"), tmp_path, "public_datasheet_map")
    element_shot(table, tmp_path, "public_datasheet_states")
    element_shot(page.locator("h3#gaps").locator("xpath=.."), tmp_path, "public_datasheet_page")
    screenshot(page, tmp_path, "public_datasheet_full")
