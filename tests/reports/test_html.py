from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from gateway.analysis.document import Report
from gateway.reports import render
from tests.reports.conftest import EDGE_CASES


class Page(HTMLParser):
    """Tags, attributes and visible text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.mark.parametrize("name", EDGE_CASES)
def test_self_contained(html: dict[str, str], name: str) -> None:
    page = Page(html[name])
    assert not page.all("script") and not page.all("img") and not page.all("iframe")
    for tag, attrs in page.tags:
        for attr, value in attrs.items():
            value = value or ""
            assert "http:" not in value and "https:" not in value and "//" not in value, (
                f"<{tag} {attr}={value!r}>")
            if attr == "src":
                assert value.startswith("data:"), f"<{tag} src={value!r}>"
            if attr in ("href", "xlink:href"):
                assert value.startswith(("#", "data:")), f"<{tag} {attr}={value!r}>"
    styles = " ".join(re.findall(r"<style>(.*?)</style>", html[name], flags=re.S))
    assert styles and "@import" not in styles and "@font-face" not in styles
    for ref in re.findall(r"url\(([^)]*)\)", html[name]):
        assert ref.startswith("#"), ref
    csp = [a for a in page.all("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")
    if name != "hostile":  # there the names quote URLs as (escaped) text
        assert "http://" not in html[name] and "https://" not in html[name]


def test_names_are_escaped(html: dict[str, str]) -> None:
    text = html["hostile"]
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;|gbt" in text
    assert '<b>"mal"' not in text and "&lt;b&gt;" in text
    assert "<img" not in text
    page = Page(text)
    assert "<script>alert(1)</script>|gbt" in page.words  # shown as text
    assert not page.all("script")
    assert all(not attrs for attrs in page.all("b"))  # only the template's own <b>
    assert "$radius$ &" in page.words  # matplotlib's mathtext is off: "$" is a dollar


def test_sample_has_every_chart(html: dict[str, str], sample: Report) -> None:
    text = html["sample"]
    charts = re.findall(r'<figure class="chart"><svg[^>]*>', text)
    # two candidates x (score difference, prediction drift, segments), the canary's
    # outcomes, the input drift
    assert len(charts) == 2 * 3 + 1 + 1
    for head in charts:
        assert 'role="img"' in head and "aria-label=" in head and "viewBox=" in head
    svgs = re.findall(r"<svg.*?</svg>", text, flags=re.S)
    assert all("<text" in s and "<path" in s for s in svgs)  # text stays text
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "element ids repeat across charts"


def test_layout_puts_the_verdict_first(html: dict[str, str]) -> None:
    headings = [Page(h).words for h in re.findall(r"<h[23][^>]*>.*?</h[23]>", html["sample"])]
    first = headings.index("bc-gbt:1 (shadow) against bc-logreg:1")
    assert headings[:first] == ["Verdict", "How to read this report"]
    assert [h.split(":")[0] for h in headings[first + 1:first + 10]] == [
        "Why", "What promotion changes", "Agreement with the champion",
        "Accuracy on labelled requests", "Canary", "Latency and errors", "Prediction drift",
        "Segments", "bc-rf"]
    assert [h.split(":")[0] for h in headings[-2:]] == ["Input drift", "Traffic"]
    words = Page(html["sample"]).words
    assert words.index("\u2717 Do not promote") < words.index("How to read this report")


def test_reasons_and_numbers_read_well(html: dict[str, str], sample: Report) -> None:
    words = Page(html["sample"]).words
    for check in sample.candidates[0].verdict.reasons:
        assert check.condition in words and check.sentence in words
    assert "\u2717 Do not promote" in words and "\u2713 Ready to promote" in words
    assert "2,000" in words and "points" in words
    # every interval names its confidence
    for m in re.finditer(r"interval:? [-+\d]", words):
        before = words[max(0, m.start() - 20):m.start()]
        assert re.search(r"\d+% (always-valid )?$", before), before + m[0]
    assert "estimate" in words and "Estimated accuracy without labels" in words


def test_sections_without_data_say_so(html: dict[str, str]) -> None:
    words = Page(html["bare"]).words
    assert "<figure" not in html["bare"]
    for line in ("No request was answered by both models", "No accuracy",
                 "No business view", "is a shadow: it answers no users",
                 "No score distributions to compare", "No breakdown by segment",
                 "No input drift measured", "About 1,234 more labelled requests"):
        assert line in words
    assert "A note with <b>markup</b> | and a pipe." in words
    empty = Page(html["no_records"]).words
    assert "No candidate model answered any request" in empty


def test_model_without_classes_shows_correlation(html: dict[str, str]) -> None:
    words = Page(html["without_classes"]).words
    assert "Correlation with the champion" in words and "0.93" in words
    assert "Mean absolute error" in words and "Squared error" in words
    assert "Log-loss" not in words
    assert "Same answer as the champion" not in words


def test_prints_cleanly(html: dict[str, str]) -> None:
    css = html["sample"]
    assert "@media print" in css and "break-before: page" in css
    assert "break-inside: avoid" in css


def test_rendering_is_deterministic(reports: dict[str, Report], html: dict[str, str]) -> None:
    assert render(reports["one_candidate"], "html") == html["one_candidate"]
