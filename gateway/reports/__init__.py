"""Rendering of the comparison report (gateway.analysis.document.Report): JSON, HTML, Markdown.

The CLI and the web endpoint call `render`; everything that computes lives in
gateway.analysis, everything that presents lives here.
"""

from __future__ import annotations

from typing import Literal, get_args

from gateway.analysis.document import Report

Format = Literal["html", "json", "md"]
FORMATS: tuple[Format, ...] = get_args(Format)

CONTENT_TYPES: dict[Format, str] = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "md": "text/markdown; charset=utf-8",
}


def render(report: Report, fmt: Format) -> str:
    """The report as text in ``fmt``; serve it with ``CONTENT_TYPES[fmt]``.

    >>> render(report, "md").splitlines()[0]  # doctest: +SKIP
    '## Model comparison: breast-cancer'
    """
    if fmt == "json":
        from gateway.reports.json import to_json

        return to_json(report)
    if fmt == "html":  # matplotlib and Jinja2 are imported only when a page is drawn
        from gateway.reports.html import render_html

        return render_html(report)
    if fmt == "md":
        from gateway.reports.markdown import render_markdown

        return render_markdown(report)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


def content_type(fmt: Format) -> str:
    return CONTENT_TYPES[fmt]


__all__ = ["CONTENT_TYPES", "FORMATS", "Format", "content_type", "render"]
