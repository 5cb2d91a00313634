"""The report as one self-contained HTML file: a Jinja2 template, inline CSS, inline SVG charts.

Nothing in the page refers to anything outside it (no scripts, fonts, stylesheets, images or
links to other hosts), so it can be mailed, archived or opened offline. Autoescaping is on:
every string from the document (model, class, feature and outcome names come from users) is
escaped; only the charts, drawn here by matplotlib, are inserted as markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from gateway.analysis.document import CandidateReport, Report
from gateway.reports import charts, formatting

FILTERS = {
    "count": formatting.count,
    "pct": formatting.pct,
    "signed_pct": formatting.signed_pct,
    "points": formatting.points,
    "num": formatting.number,
    "signed": formatting.signed,
    "metric": formatting.metric,
    "signed_metric": formatting.signed_metric,
    "money": formatting.money,
    "ms": formatting.ms,
    "ratio": formatting.ratio,
    "pvalue": formatting.p_value,
    "when": formatting.when,
    "hours": formatting.hours,
    "seconds": formatting.seconds,
    "iv": formatting.interval,
    "styled": formatting.styled,
    "bounds": formatting.bounds,
    "check_label": formatting.check_label,
    "drift_level": formatting.drift_level,
    "verdict_word": formatting.VERDICT_WORDS.get,
    "verdict_mark": formatting.VERDICT_MARKS.get,
    "result_mark": formatting.RESULT_MARKS.get,
}


@dataclass(frozen=True)
class CandidateCharts:
    score_difference: Markup | None
    prediction_drift: Markup | None
    outcomes: Markup | None
    segments: Markup | None


@cache
def _environment() -> Environment:
    env = Environment(loader=PackageLoader("gateway.reports", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    env.globals["check_value"] = formatting.check_value
    return env


def _markup(svg: str | None) -> Markup | None:
    return None if svg is None else Markup(svg)  # drawn here; matplotlib escapes text


def _candidate_charts(c: CandidateReport, i: int) -> CandidateCharts:
    positive = c.agreement.positive_class
    drift = None
    if c.drift is not None:
        drift = charts.prediction_drift(c.drift.champion_histogram, c.drift.candidate_histogram,
                                        (c.champion.model, c.model), positive, f"c{i}d")
    return CandidateCharts(
        score_difference=_markup(charts.score_difference(
            c.agreement.score_difference_histogram, positive, f"c{i}s")),
        prediction_drift=_markup(drift),
        outcomes=_markup(charts.outcomes(c.ab.outcomes, f"c{i}o") if c.ab else None),
        segments=_markup(charts.segments(c.segments, f"c{i}g")))


def render_html(report: Report) -> str:
    """The whole report as one HTML document (a str; encode it as UTF-8)."""
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        candidate_charts=[_candidate_charts(c, i) for i, c in enumerate(report.candidates)],
        psi_chart=_markup(charts.feature_psi(report.drift, "psi")),
        top_features=charts.TOP_FEATURES)
