"""Page sections cached per (snapshot, filters, unit, role): a role never gets another's.

The pages keep display-ready results (cards, chart specs, downloads) in st.cache_data, keyed
by the page context, role included. Two roles in turn in one process, with the caches warm
from the first, must each get exactly what they get on cold caches; the public must never be
shown a count below k that the admin's run left in the cache (METRICS.md "Privacy").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import streamlit as st

from tests.apptest import run_page
from tests.test_pages_privacy import chart_rows, downloads, run_as, small_counts  # noqa: F401

CACHED_PAGES = (
    "overview",
    "demographics",
    "modality-disease",
    "institution",
    "trends",
    "geography",
    "data-quality",
    "gaps",
    "planner",
)


def _rounded(node: Any) -> Any:
    """Floats to 10 significant digits: polars' parallel sums differ in the last bits from one
    computation to the next (so do two cold runs), the figures do not."""
    if isinstance(node, float):
        return float(f"{node:.10g}")
    if isinstance(node, dict):
        return {k: _rounded(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_rounded(v) for v in node]
    return node


def _canonical(row: dict[str, Any]) -> str:
    """A chart row as text: some charts' row order is not fixed (a join's), the rows are."""
    return json.dumps(_rounded(row), sort_keys=True, default=str)


def rendered(at: Any) -> dict[str, list]:
    """What a viewer reads: cards, text, charts (spec and rows)."""
    return {
        "metrics": [(m.label, m.value, m.proto.help) for m in at.metric],
        "text": [e.value for kind in ("markdown", "info", "caption") for e in getattr(at, kind)],
        "charts": [
            (_rounded(json.loads(c.proto.spec)), sorted(map(_canonical, chart_rows(c))))
            for c in at.get("vega_lite_chart")
        ],
    }


@pytest.mark.parametrize("page", CACHED_PAGES)
def test_two_roles_in_turn_get_their_own_results(
    demo_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    downloads: dict[str, bytes],  # noqa: F811 (the fixture imported above)
    page: str,
) -> None:
    public_cold = rendered(run_as(demo_db, monkeypatch, "public", page))
    st.cache_data.clear()
    admin_cold = rendered(run_page(demo_db, monkeypatch, page))
    downloads.clear()
    # Caches now warm with the admin's sections: the public still gets its own.
    public = run_as(demo_db, monkeypatch, "public", page)
    assert small_counts(public, downloads) == []
    assert rendered(public) == public_cold
    # And the other way round: the admin, after the public, sees everything again.
    admin = run_page(demo_db, monkeypatch, page)
    assert rendered(admin) == admin_cold


def test_the_admin_sees_what_the_public_may_not(demo_db: Path, monkeypatch) -> None:
    """The premise of the test above: on Overview the two roles' results differ."""
    admin = run_page(demo_db, monkeypatch, "overview")
    public = run_as(demo_db, monkeypatch, "public", "overview")
    assert small_counts(admin) != [] and small_counts(public) == []
    assert rendered(admin)["charts"] != rendered(public)["charts"]
