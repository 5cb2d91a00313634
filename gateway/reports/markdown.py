"""The report as GitHub-flavoured Markdown for pull requests and chat: verdicts, reasons, key
numbers; no charts (the HTML report has them).

Every string from the document is escaped (model, class, feature and outcome names come from
users, and the sentences quote them): a name cannot break a table, open a link, mention
someone or start math.
"""

from __future__ import annotations

import re

from gateway.analysis.document import CandidateReport, Check, Report, Verdict
from gateway.reports import formatting as f

VERDICT_EMOJI = {"ready_to_promote": "\u2705", "needs_more_data": "\u23f3",
                 "do_not_promote": "\u274c"}
RESULT_EMOJI = {"pass": "\u2705", "fail": "\u274c", "hold": "\u23f3", "info": "\u2139\ufe0f"}
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#&@$!{}])")


def escape(text: str) -> str:
    """Backslash-escape Markdown's inline syntax; newlines become spaces (tables are one line
    per row)."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _verdict(v: Verdict) -> str:
    return f"{VERDICT_EMOJI[v.verdict]} **{f.VERDICT_WORDS[v.verdict]}**"


def render_markdown(report: Report) -> str:
    """The report as Markdown text (ends with a newline)."""
    lines = [f"## Model comparison: {escape(report.deployment)}", ""]
    t = report.traffic
    seen = f"{f.count(t.records)} requests"
    if t.first is not None:
        seen += f" from {f.when(t.first)} to {f.when(t.last)}"
    lines += [f"Champion **{escape(report.champion)}** \u00b7 {seen} \u00b7 "
              f"generated {f.when(report.generated_at)}", ""]
    if not report.candidates:
        lines += ["No candidate model answered any request in this window, so there is "
                  "nothing to compare with the champion yet.", ""]
    else:
        lines += [_row(["Candidate", "Verdict", "Why"]), _row(["---"] * 3)]
        for c in report.candidates:
            lines.append(_row([f"{escape(c.model)} ({escape(c.role)})", _verdict(c.verdict),
                               escape(c.verdict.headline)]))
        lines.append("")
    for c in report.candidates:
        lines += _candidate(c)
    lines += _drift(report)
    if report.rollout is not None:
        r = report.rollout
        lines += [f"**Rollout of {escape(r.candidate)}**: {escape(r.status.replace('_', ' '))}"
                  + (f" in {escape(r.stage)}" if r.stage else ""), ""]
        for d in r.decisions[-10:]:
            lines.append(f"- {escape(d.action)} ({escape(d.stage or '')}, by {escape(d.by)}): "
                         f"{escape(d.summary)}")
        lines.append("")
    if report.notes:
        lines += ["**Notes**", ""] + [f"- {escape(n)}" for n in report.notes] + [""]
    lines.append(f"_{escape(report.report_schema)} \u00b7 config revision "
                 f"{escape(report.revision or 'n/a')}_")  # plain text: chat shows no HTML
    return "\n".join(lines) + "\n"


def _candidate(c: CandidateReport) -> list[str]:
    v = c.verdict
    out = [f"### {escape(c.model)} ({escape(c.role)}): {_verdict(v)}", "",
           escape(v.headline), ""]
    if v.more_labels:
        more = f"About {f.count(v.more_labels)} more labelled requests are needed"
        if v.more_hours is not None:
            more += f" ({f.hours(v.more_hours)} at the current rate of labels)"
        out += [more + ".", ""]
    if v.reasons:
        unit = c.business.unit if c.business else ""
        out += [_row(["Check", "Result", "Measured", "Bound", "Condition", "In words"]),
                _row(["---", "---", "--:", "--:", "---", "---"])]
        out += [_check(r, unit) for r in v.reasons]
        out.append("")
    numbers = _key_numbers(c)
    if numbers:
        out += ["**Key numbers**", ""] + [f"- {n}" for n in numbers] + [""]
    return out


def _check(r: Check, unit: str) -> str:
    return _row([f"{escape(f.check_label(r.name))}", f"{RESULT_EMOJI[r.result]} {r.result}",
                 escape(f.check_value(r, r.measured, unit)),
                 escape(f.check_value(r, r.bound, unit)), escape(r.condition),
                 escape(r.sentence)])


def _key_numbers(c: CandidateReport) -> list[str]:
    out = []
    a = c.agreement
    if a.rate is not None:
        out.append(f"**Agreement** with the champion: {escape(f.interval(a.rate))} on "
                   f"{f.count(a.pairs)} requests")
    elif a.correlation is not None:
        out.append(f"**Correlation** with the champion: "
                   f"{escape(f.interval(a.correlation, 'number'))} on {f.count(a.pairs)} "
                   "requests")
    acc = c.accuracy
    if acc is not None and acc.difference is not None and acc.difference.value is not None:
        champ, cand = acc.champion.accuracy, acc.candidate.accuracy
        out.append(f"**Accuracy** {f.pct(cand.value if cand else None)} against "
                   f"{f.pct(champ.value if champ else None)} for the champion: "
                   f"{escape(f.interval(acc.difference, 'points'))} on "
                   f"{f.count(acc.labelled)} labelled requests")
    elif acc is not None:
        out.append(f"**Labels**: {f.count(acc.labelled)} of the compared requests")
    b = c.business
    if b is not None:
        text = (f"**Decisions that would change** ({escape(b.decision)}): "
                f"{escape(f.interval(b.flip_rate))}")
        if b.value_difference_per_1000 is not None:
            text += (f"; value per 1,000 requests "
                     f"{escape(f.interval(b.value_difference_per_1000, 'money', unit=b.unit))}")
        if b.value_difference_per_day is not None:
            per_day = b.value_difference_per_day
            text += (f", per day at current traffic {escape(f.money(per_day.value, b.unit))}"
                     + (f" ({escape(per_day.note)})" if per_day.note else ""))
        out.append(text)
    model, champion = c.candidate, c.champion
    out.append(f"**Errors** {f.pct(model.coverage.error_rate.value)} against "
               f"{f.pct(champion.coverage.error_rate.value)} for the champion; **p99 latency** "
               f"{f.ms(model.latency.p99_ms)} against {f.ms(champion.latency.p99_ms)}"
               + (" (micro-batched shadow)" if c.role == "shadow" else ""))
    if c.ab is not None:
        s = c.ab.srm
        out.append(f"**Canary split**: {f.pct(s.observed_share)} of users (configured "
                   f"{f.pct(s.expected_share)}), {f.p_value(s.p_value)}"
                   + (": broken" if s.flagged else ""))
        for o in c.ab.outcomes:
            out.append(f"**{escape(o.name)}** ({o.better} is better) for canary users: "
                       + escape(f.interval(o.sequential_lift, "signed_pct", always_valid=True)))
    return out


def _drift(report: Report) -> list[str]:
    drifted = [d for d in report.drift if d.level in ("moderate", "major")]
    if not report.drift:
        return []
    if not drifted:
        return [f"**Input drift**: none of {len(report.drift)} features drifted "
                "(PSI below 0.1).", ""]
    top = ", ".join(f"{escape(d.feature)} (PSI {f.number(d.psi)}, {d.level})"
                    for d in drifted[:5])
    return [f"**Input drift**: {len(drifted)} of {len(report.drift)} features drifted; "
            f"most: {top}.", ""]
