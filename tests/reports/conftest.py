from __future__ import annotations

import pytest

from gateway.analysis.document import Report
from tests.reports import documents

EDGE_CASES = ["sample", "no_records", "no_labels", "one_candidate", "without_classes", "bare",
              "hostile"]


@pytest.fixture(scope="session")
def sample() -> Report:
    return documents.sample()


@pytest.fixture(scope="session")
def reports(sample: Report) -> dict[str, Report]:
    """Every document the renderers must handle, by name (built once per session)."""
    return {
        "sample": sample,
        "no_records": documents.no_records(),
        "no_labels": documents.no_labels(),
        "one_candidate": documents.one_candidate(),
        "without_classes": documents.without_classes(sample),
        "bare": documents.bare(sample),
        "hostile": documents.hostile(sample),
    }


@pytest.fixture(scope="session")
def html(reports: dict[str, Report]) -> dict[str, str]:
    """Each document rendered to HTML once per session."""
    from gateway.reports import render

    return {name: render(report, "html") for name, report in reports.items()}
