from __future__ import annotations

import pytest

from gateway.analysis.document import Report
from gateway.reports import CONTENT_TYPES, FORMATS, content_type, render
from tests.reports.conftest import EDGE_CASES


@pytest.mark.parametrize("name", EDGE_CASES)
@pytest.mark.parametrize("fmt", ["json", "md"])
def test_every_format_renders_every_document(reports: dict[str, Report], name: str,
                                             fmt: str) -> None:
    text = render(reports[name], fmt)  # type: ignore[arg-type]
    assert isinstance(text, str) and text.strip()


@pytest.mark.parametrize("name", EDGE_CASES)
def test_html_renders_every_document(html: dict[str, str], name: str) -> None:
    assert html[name].startswith("<!DOCTYPE html>") and html[name].rstrip().endswith("</html>")


def test_content_types() -> None:
    assert content_type("html") == "text/html; charset=utf-8"
    assert content_type("json") == "application/json"
    assert content_type("md").startswith("text/markdown")
    assert set(CONTENT_TYPES) == set(FORMATS)


def test_unknown_format_is_refused(sample: Report) -> None:
    with pytest.raises(ValueError, match="html, json, md"):
        render(sample, "pdf")  # type: ignore[arg-type]
