"""The HTML report in headless Chromium: no console errors, no network requests, charts drawn,
a screenshot and a PDF. How Chromium is driven and observed: tests/reports/chromium.py.

Without Chromium the tests skip, unless SHADOWGATE_TEST_CHROMIUM=required (CI sets it), where
they fail. SHADOWGATE_TEST_ARTIFACTS=DIR keeps the screenshot and the PDF there.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reports.chromium import CHROMIUM, Chromium, find_chromium

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    if find_chromium() is None:
        message = (f"Chromium not found at {CHROMIUM} (set SHADOWGATE_CHROMIUM to its path; "
                   "on Debian: apt-get install chromium)")
        if os.environ.get("SHADOWGATE_TEST_CHROMIUM") == "required":
            pytest.fail(f"SHADOWGATE_TEST_CHROMIUM=required: {message}")
        pytest.skip(message)
    with Chromium() as chromium:
        yield chromium


def keep(*paths: Path) -> None:
    where = os.environ.get("SHADOWGATE_TEST_ARTIFACTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copy(path, Path(where) / path.name)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_renders_in_chromium(browser: Chromium, html: dict[str, str],
                                    tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(html["sample"], encoding="utf-8")
    shot, pdf = tmp_path / "report-screenshot.png", tmp_path / "report.pdf"
    page = browser.load(path, width=1280, height=2400, screenshot=shot, pdf=pdf)
    keep(path, shot, pdf)
    assert page.console == [] and page.exceptions == [] and page.log == []
    assert page.requests == [] and page.dom["resources"] == []
    assert page.dom["scripts"] == 0
    assert page.dom["charts"] == page.dom["chartsDrawn"] == 8  # laid out, not empty
    assert page.dom["verdicts"][:2] == ["\u2717 Do not promote", "\u2713 Ready to promote"]
    assert not page.dom["wider"], "the page scrolls sideways at 1280 px"
    width, height = png_size(shot.read_bytes())
    assert (width, height) == (1280, 2400)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", data))
    assert pages >= 3  # the summary, then a page break before each candidate


def test_hostile_names_stay_text(browser: Chromium, html: dict[str, str],
                                 tmp_path: Path) -> None:
    path = tmp_path / "hostile.html"
    path.write_text(html["hostile"], encoding="utf-8")
    page = browser.load(path, width=800)
    assert page.console == [] and page.exceptions == [] and page.log == []
    assert page.requests == [] and page.dom["scripts"] == 0


def test_the_harness_sees_errors_and_requests(browser: Chromium, tmp_path: Path) -> None:
    """The checks above are not vacuous: a page that logs an error and loads an image is
    caught (the image points at a closed local port; nothing leaves the machine)."""
    path = tmp_path / "bad.html"
    path.write_text('<!DOCTYPE html><title>bad</title><script>console.error("boom")</script>'
                    '<img src="http://127.0.0.1:9/x.png">', encoding="utf-8")
    page = browser.load(path, width=400, height=300)
    assert any("boom" in line for line in page.console)
    assert "http://127.0.0.1:9/x.png" in page.requests
