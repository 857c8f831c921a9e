"""The app's page table: what each page draws, its title, icon and URL path.

Kept apart from the entry script so that tools that only need the pages' URL paths (the load
benchmark, the tests) can read them without running the app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from dashboard.views import (
    data_quality,
    demographics,
    gaps,
    geography,
    institution,
    modality_disease,
    overview,
    planner,
    submit,
    trends,
)


class PageSpec(NamedTuple):
    """One page of the navigation."""

    render: Callable[[], None]
    title: str
    icon: str
    url_path: str


PAGES: tuple[PageSpec, ...] = (
    PageSpec(overview.render, "Overview", ":material/dashboard:", "overview"),
    PageSpec(geography.render, "Geography", ":material/map:", "geography"),
    PageSpec(demographics.render, "Demographics", ":material/groups:", "demographics"),
    PageSpec(
        modality_disease.render, "Modality and disease", ":material/radiology:", "modality-disease"
    ),
    PageSpec(trends.render, "Trends", ":material/trending_up:", "trends"),
    PageSpec(institution.render, "Institution", ":material/local_hospital:", "institution"),
    PageSpec(data_quality.render, "Data quality", ":material/fact_check:", "data-quality"),
    PageSpec(gaps.render, "Gaps", ":material/troubleshoot:", "gaps"),
    PageSpec(planner.render, "Planner", ":material/event_note:", "planner"),
    PageSpec(submit.render, "Submit", ":material/upload_file:", "submit"),
)
"""The pages in navigation order; the first is the landing page."""
