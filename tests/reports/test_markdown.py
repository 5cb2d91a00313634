from __future__ import annotations

import re

from gateway.analysis.document import Report
from gateway.reports import render
from gateway.reports.markdown import escape

PIPE = re.compile(r"(?<!\\)\|")


def tables(text: str) -> list[list[str]]:
    """The Markdown's tables, each as its lines."""
    out: list[list[str]] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            out.append(current)
            current = []
    return out + ([current] if current else [])


def test_sample_has_verdicts_reasons_and_key_numbers(sample: Report) -> None:
    text = render(sample, "md")
    assert text.startswith("## Model comparison: breast-cancer\n")
    assert "| bc-gbt:1 (shadow) | \u274c **Do not promote** |" in text
    assert "| bc-rf:1 (canary) | \u2705 **Ready to promote** |" in text
    reasons = tables(text)[1]
    assert reasons[0] == "| Check | Result | Measured | Bound | Condition | In words |"
    assert len(reasons) == 2 + len(sample.candidates[0].verdict.reasons)
    assert "\u274c fail" in text and "**Agreement** with the champion: " in text
    assert "(95% interval " in text and "points" in text
    assert "<svg" not in text and "http" not in text


def test_pipes_and_markup_in_names_are_escaped(reports: dict[str, Report]) -> None:
    text = render(reports["hostile"], "md")
    for table in tables(text):
        columns = len(PIPE.findall(table[0]))
        assert all(len(PIPE.findall(line)) == columns for line in table), table
    assert "\\<script\\>alert(1)\\</script\\>\\|gbt" in text
    assert "<script" not in text.replace("\\<script", "")
    assert "\\$radius\\$" in text and "\\[x\\](http://example.invalid)" in text
    assert "\\`\\#" in text


def test_escape() -> None:
    assert escape("a|b") == "a\\|b"
    assert escape("*x* _y_ [l](u) <b> `c` ~s~ @team $m$ #1 \\") == (
        "\\*x\\* \\_y\\_ \\[l\\](u) \\<b\\> \\`c\\` \\~s\\~ \\@team \\$m\\$ \\#1 \\\\")
    assert escape("two\nlines") == "two lines"


def test_edge_cases_say_what_is_missing(reports: dict[str, Report]) -> None:
    assert "No candidate model answered any request" in render(reports["no_records"], "md")
    bare = render(reports["bare"], "md")
    assert "About 1,234 more labelled requests are needed (about 6 hours" in bare
    assert "A note with \\<b\\>markup\\</b\\> \\| and a pipe." in bare
    assert "**Correlation** with the champion: 0.93" in render(reports["without_classes"], "md")
