"""The load driver of benchmarks/load.py against the real app: 20 concurrent sessions."""

from __future__ import annotations

import pytest

from benchmarks.load import PAGE_PATHS, report, run_load
from dashboard.views.pages import PAGES

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def test_twenty_sessions_at_once(app_url: str) -> None:
    pages = ("overview", "geography", "gaps")
    result = run_load(app_url, sessions=20, pages=pages, queries=("", "state=Kerala"), timeout=120)
    assert len(result.visits) == 20 * len(pages)
    assert result.errors == [], report(result, 20, 0)
    assert {v.page for v in result.visits} == set(pages)
    assert 0 < result.percentile(50) <= result.percentile(95)


def test_a_visit_without_an_answer_is_counted_as_an_error(app_url: str) -> None:
    result = run_load(app_url, sessions=2, pages=("overview",), timeout=0.001)
    assert [v.error for v in result.visits] == ["no answer within 0.001 s"] * 2


def test_every_page_of_the_app_is_driven() -> None:
    assert len(PAGE_PATHS) == len(PAGES) == 10
    assert {"overview", "planner", "submit"} <= set(PAGE_PATHS)
