"""The load driver of benchmarks/load.py against the real app: 20 concurrent sessions."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

import pytest

from benchmarks.load import PAGE_PATHS, report, run_load, think_range
from dashboard.views.pages import PAGES

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def test_twenty_sessions_at_once(app_url: str) -> None:
    pages = ("overview", "geography", "gaps")
    result = run_load(app_url, sessions=20, pages=pages, queries=("", "state=Kerala"), timeout=120)
    assert len(result.visits) == 20 * len(pages)
    assert result.errors == [], report(result, 20, 0)
    assert {v.page for v in result.visits} == set(pages)
    assert 0 < result.percentile(50) <= result.percentile(95)
    # each (page, link) pair is a first visit once, whichever viewer got there first
    assert sum(v.first for v in result.visits) == len(pages) * 2
    assert "first visits" in report(result, 20, 1.0)


def test_a_visit_without_an_answer_is_counted_as_an_error(app_url: str) -> None:
    result = run_load(app_url, sessions=2, pages=("overview",), timeout=0.001)
    assert [v.error for v in result.visits] == ["no answer within 0.001 s"] * 2


def test_every_page_of_the_app_is_driven() -> None:
    assert len(PAGE_PATHS) == len(PAGES) == 10
    assert {"overview", "planner", "submit"} <= set(PAGE_PATHS)


def test_think_time_is_between_pages_and_not_in_page_times(app_url: str) -> None:
    start = time.perf_counter()
    result = run_load(
        app_url,
        sessions=2,
        pages=("submit",),
        rounds=3,
        think=(0.5, 0.5),
        warmed=frozenset({("submit", "")}),
    )
    elapsed = time.perf_counter() - start
    assert len(result.visits) == 6 and result.errors == []
    assert not any(v.first for v in result.visits)  # warmed before: no first visit
    assert elapsed >= 2 * 0.5  # two pauses per viewer, the viewers side by side
    # a page time is the page's own run: the 0.5 s pauses are not in it
    assert sum(v.seconds for v in result.visits) < elapsed * 2


def test_think_range_reads_seconds() -> None:
    assert think_range("2-5") == (2.0, 5.0)
    assert think_range("3") == (3.0, 3.0)
    assert think_range("0.5-1.5") == (0.5, 1.5)
    for text in ("5-2", "a-b", "-1"):
        with pytest.raises(Exception, match="not a range of seconds"):
            think_range(text)


def test_no_full_garbage_collection_after_every_run() -> None:
    # Streamlit's default gc.collect(2) after each script run was most of the server's CPU
    # under load (149 ms per page run with it, 61 ms without, 20 sessions on the 10M demo).
    config = tomllib.loads((Path(__file__).parents[2] / ".streamlit/config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
