"""Shared fixtures: real DuckDB index files built through the real ingestion code."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from hypothesis import settings
from playwright.sync_api import Browser, Page, sync_playwright

from dashboard.ingest.demo_index import build_demo_index
from dashboard.ingest.institutions import ingest_institutions
from dashboard.ingest.writer import index_writer

REGISTRY_CSV = """institution_id,name,state,city,facility_type,sector,joined_date
TEST-KA-01,Test College Bengaluru (fictional),Karnataka,Bengaluru,medical college,public,2023-01-01
TEST-OD-01,Test District Hospital (fictional),Orissa,Cuttack,district hospital,public,2023-06-01
"""

TODAY = dt.date(2026, 11, 30)

# CI replays the same examples on every run (a failure found locally stays reproducible, and a
# loaded 2-core machine does not trip hypothesis's per-example deadline).
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(autouse=True)
def fresh_streamlit_caches() -> None:
    """st.cache_* survive across AppTest runs in one process: start every test clean."""
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[..., Path]:
    """Write text (or bytes) to a file under the test's tmp folder and return its path."""

    def write(name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
        return path

    return write


@pytest.fixture
def registered_db(tmp_path: Path, write_file: Callable[..., Path]) -> Path:
    """An index file holding only the two-institution test registry and the reference tables."""
    db = tmp_path / "index.duckdb"
    with index_writer(db) as con:
        ingest_institutions(con, write_file("registry.csv", REGISTRY_CSV))
    return db


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic index built by the real demo path, shared by the page tests."""
    db = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    build_demo_index(db, studies=20_000, seed=11, today=TODAY)
    return db


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    yield tab
    context.close()
