"""The report's charts, drawn by matplotlib as inline SVG (text stays text; no images, no fonts).

Only matplotlib's object-oriented API is used (``Figure``, never ``pyplot``): no GUI backend
is ever selected and no global figure state is kept. The SVG settings are process-wide
rcParams, so drawing holds a lock (matplotlib is not thread-safe anyway). Every chart function
returns None when it has nothing to draw, so the template says so in words instead.

Margins are set from the length of the labels rather than by a layout engine: constrained
layout draws each figure twice and doubled the time a report takes to render.

Colours are the Okabe-Ito palette (safe for colour-blind readers); the two models also differ
by line style, so no chart relies on colour alone.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import (
    Formatter,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    NullLocator,
)
from matplotlib.typing import RcKeyType

from gateway.analysis.document import FeatureDrift, Histogram, Interval, Outcome, Segments
from gateway.analysis.stats import PSI_MAJOR, PSI_MODERATE

BLUE, ORANGE, VERMILLION, SKY, GREY = "#0072B2", "#E69F00", "#D55E00", "#56B4E9", "#555555"
LEVEL_COLOURS = {"none": SKY, "moderate": ORANGE, "major": VERMILLION}
WIDTH_IN = 7.6
FONT_PT = 9.0
CHAR_IN = FONT_PT * 0.56 / 72  # mean width of a character of the tick labels
TOP_FEATURES = 15
LABEL_CHARS = 34

RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text as <text>, not glyph paths: small, selectable, searchable
    "svg.hashsalt": "shadowgate",  # deterministic element ids
    "text.parse_math": False,  # "$" in a model or feature name is a dollar sign
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Verdana", "Arial", "Helvetica"],
    "font.size": FONT_PT,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": GREY,
    "axes.labelcolor": "#222222",
    "xtick.color": GREY,
    "ytick.color": GREY,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
}

_lock = threading.Lock()
_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


@contextmanager
def _axes(title: str, height_in: float, *, left_in: float = 0.7, bottom_in: float = 0.48,
          legend_in: float = 0.0) -> Iterator[Axes]:
    """One axes with fixed margins (inches) and the title at the figure's top left."""
    top_in, right_in = 0.34, 0.22
    with _lock, matplotlib.rc_context(RC):
        fig = Figure(figsize=(WIDTH_IN, height_in))
        bottom = bottom_in + legend_in
        ax = fig.add_axes((left_in / WIDTH_IN, bottom / height_in,
                           1 - (left_in + right_in) / WIDTH_IN,
                           1 - (bottom + top_in) / height_in))
        fig.text(0.08 / WIDTH_IN, 1 - 0.1 / height_in, title, ha="left", va="top",
                 fontsize=9.5, fontweight="bold", color="#111111")
        yield ax


def _legend_below(ax: Axes) -> None:
    """The legend in the space ``legend_in`` kept at the bottom of the figure."""
    handles, labels = ax.get_legend_handles_labels()
    cast(Figure, ax.figure).legend(handles, labels, loc="lower center", ncols=len(labels),
                     bbox_to_anchor=(0.5, 0.0))


def _category_margin(labels: Sequence[str]) -> float:
    return 0.25 + CHAR_IN * max((len(s) for s in labels), default=4)


def _svg(ax: Axes, label: str, key: str) -> str:
    """The figure as an <svg> element for inlining in HTML: no XML prolog, DOCTYPE or
    metadata (they carry URLs), ids prefixed with ``key`` so charts on one page never share
    one, sized by CSS (the viewBox keeps the aspect ratio)."""
    buf = io.StringIO()
    cast(Figure, ax.figure).savefig(buf, format="svg", metadata=_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    head_end = text.index(">")
    head = text[:head_end]
    width = re.search(r'width="([\d.]+)pt"', head)
    head = re.sub(r'\s(?:xmlns(?::xlink)?|version|width|height)="[^"]*"', "", head)
    style = f"max-width:{float(width.group(1)) * 4 / 3:.0f}px" if width else ""
    head += f' role="img" aria-label="{_attr(label)}" style="{style}"'
    text = head + text[head_end:]
    text = text.replace('id="', f'id="{key}-').replace("url(#", f"url(#{key}-")
    return text.replace('href="#', f'href="#{key}-')


def _attr(text: str) -> str:
    return (text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
            .replace(">", "&gt;"))


class _Percent(Formatter):
    """Shares as percentages with as many decimals as the tick spacing needs; maybe signed."""

    def __init__(self, signed: bool) -> None:
        self.signed = signed
        self.decimals = 0

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        steps = np.abs(np.diff(np.asarray(values, dtype=float))) * 100
        step = float(steps.min()) if steps.size else 1.0
        self.decimals = 0 if step >= 1 or step <= 0 else min(3, -math.floor(math.log10(step)))
        return [self(v, i) for i, v in enumerate(values)]

    def __call__(self, x: float, pos: int | None = None) -> str:
        if abs(x) < 1e-12:
            return "0%"
        return f"{x * 100:{'+' if self.signed else ''}.{self.decimals}f}%"


def _percent_axis(ax: Axes, axis: str, signed: bool = False) -> None:
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(_Percent(signed))


def _log_axis(ax: Axes, axis: str) -> None:
    """A log scale with labelled decades only (minor tick labels cost much time to lay out)."""
    which = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    which.set_major_locator(LogLocator(base=10, numticks=8))
    which.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    which.set_minor_locator(NullLocator())
    which.set_minor_formatter(NullFormatter())


def score_difference(hist: Histogram | None, positive: str | None, key: str) -> str | None:
    """Histogram of candidate score - champion score, cropped to where there are requests."""
    if hist is None or sum(hist.counts) == 0:
        return None
    counts = np.asarray(hist.counts, dtype=float)
    edges = np.asarray(hist.edges, dtype=float)
    used = np.flatnonzero(counts)
    reach = max(abs(edges[used[0]]), abs(edges[used[-1] + 1]), 0.05)
    keep = (edges[:-1] >= -reach - 1e-9) & (edges[1:] <= reach + 1e-9)
    first = int(np.flatnonzero(keep)[0])
    counts, edges = counts[keep], edges[first:first + int(keep.sum()) + 1]
    what = f"score of {_short(positive, 20)!r}" if positive else "score"
    nonzero = counts[counts > 0]
    log = bool(nonzero.max() > 100 * max(nonzero.min(), 1))
    with _axes("How far the candidate's scores are from the champion's", 2.4,
               left_in=0.95) as ax:
        ax.stairs(counts, edges, fill=True, color=BLUE)
        ax.set_xlim(-reach, reach)
        if log:
            _log_axis(ax, "y")
            ax.set_ylim(bottom=0.8)
        ax.axvline(0, color=GREY, lw=0.8, ls=":")
        ax.set_xlabel(f"Candidate {what} minus champion {what}")
        ax.set_ylabel("Requests (log scale)" if log else "Requests")
        return _svg(ax, "Histogram of the difference between the candidate's and the "
                    "champion's scores", key)


def prediction_drift(champion: Histogram, candidate: Histogram, names: tuple[str, str],
                     positive: str | None, key: str) -> str | None:
    """Both models' score distributions, overlaid (shares of requests per bin)."""
    champ = np.asarray(champion.counts, dtype=float)
    cand = np.asarray(candidate.counts, dtype=float)
    if champ.sum() == 0 or cand.sum() == 0:
        return None
    edges = np.asarray(champion.edges, dtype=float)
    with _axes("How often each model gives each score", 2.6, left_in=0.85,
               legend_in=0.3) as ax:
        ax.stairs(champ / champ.sum(), edges, fill=True, facecolor="#cfe3f1", edgecolor=BLUE,
                  lw=1.0, label=f"champion {_short(names[0])}")
        ax.stairs(cand / cand.sum(), edges, color=ORANGE, lw=1.5, ls="--",
                  label=f"candidate {_short(names[1])}")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(bottom=0)
        _percent_axis(ax, "y")
        ax.set_xlabel(f"Predicted probability of {_short(positive, 30)!r}" if positive
                      else "Predicted score")
        ax.set_ylabel("Share of requests")
        _legend_below(ax)
        return _svg(ax, "Score distributions of the champion and the candidate", key)


def _forest(ax: Axes, labels: Sequence[str], intervals: Sequence[Interval | None],
            scale: float) -> None:
    ys = np.arange(len(labels))[::-1]
    for y, iv in zip(ys, intervals, strict=True):
        if iv is None or iv.value is None:
            continue
        if iv.low is not None and iv.high is not None:
            ax.plot([iv.low * scale, iv.high * scale], [y, y], color=BLUE, lw=2.2,
                    solid_capstyle="butt")
        ax.plot([iv.value * scale], [y], "o", color="#000000", ms=4.5)
    ax.axvline(0, color=GREY, lw=0.9, ls="--")
    ax.set_yticks(ys, labels)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.xaxis.set_major_locator(MaxNLocator(7))
    ax.margins(x=0.08)


def outcomes(items: Sequence[Outcome], key: str) -> str | None:
    """Forest plot of each outcome's lift, canary users vs champion users, always-valid."""
    shown = [o for o in items if o.sequential_lift.value is not None]
    if not shown:
        return None
    labels = [_short(o.name) for o in shown]
    level = round(shown[0].sequential_lift.confidence * 100)
    with _axes(f"Change for canary users ({level}% always-valid intervals)",
               0.95 + 0.32 * len(shown), left_in=_category_margin(labels)) as ax:
        _forest(ax, labels, [o.sequential_lift for o in shown], 1.0)
        _percent_axis(ax, "x", signed=True)
        ax.set_xlabel("Canary users compared with champion users (0% = no change)")
        return _svg(ax, "Forest plot of the change of each outcome for canary users", key)


def segments(section: Segments | None, key: str) -> str | None:
    """Forest plot of the accuracy difference (candidate - champion) in each segment."""
    if section is None:
        return None
    shown = [(s.name, s.accuracy_difference) for s in section.segments
             if s.accuracy_difference is not None and s.accuracy_difference.value is not None]
    if not shown:
        return None
    labels = [_short(name) for name, _ in shown]
    level = round(shown[0][1].confidence * 100)
    with _axes(f"Accuracy difference by {_short(section.by, 50)} ({level}% intervals)",
               0.95 + 0.3 * len(shown), left_in=_category_margin(labels)) as ax:
        _forest(ax, labels, [iv for _, iv in shown], 100.0)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:+g}" if v else "0"))
        ax.set_xlabel("Candidate accuracy minus champion accuracy (percentage points)")
        return _svg(ax, "Forest plot of the accuracy difference per segment", key)


def feature_psi(drift: Sequence[FeatureDrift], key: str) -> str | None:
    """Bars of each input feature's PSI (most drifted first) with the thresholds drawn."""
    shown = [f for f in drift if f.psi is not None][:TOP_FEATURES]
    if not shown:
        return None
    values = np.array([f.psi for f in shown], dtype=float)
    labels = [_short(f.feature) for f in shown]
    log = bool(values.max() > 1.0)
    floor = 1e-3
    more = f" (top {len(shown)} of {len(drift)})" if len(drift) > len(shown) else ""
    with _axes(f"Input drift by feature, most drifted first{more}", 1.2 + 0.2 * len(shown),
               left_in=_category_margin(labels), legend_in=0.25) as ax:
        ys = np.arange(len(shown))[::-1]
        colours = [LEVEL_COLOURS.get(f.level or "none", SKY) for f in shown]
        ax.barh(ys, np.maximum(values, floor) if log else values, color=colours, height=0.7)
        ax.axvline(PSI_MODERATE, color="#000000", lw=1.0, ls="--",
                   label=f"{PSI_MODERATE:g}: moderate drift")
        ax.axvline(PSI_MAJOR, color="#000000", lw=1.0, ls=":",
                   label=f"{PSI_MAJOR:g}: major drift")
        if log:
            _log_axis(ax, "x")
            ax.set_xlim(floor, values.max() * 2)
        else:
            ax.set_xlim(0, max(values.max(), PSI_MAJOR) * 1.1)
        ax.set_yticks(ys, labels)
        ax.set_ylim(-0.6, len(shown) - 0.4)
        ax.set_xlabel("Population stability index, PSI" + (" (log scale)" if log else ""))
        _legend_below(ax)
        return _svg(ax, "Bar chart of the population stability index of each input feature",
                    key)


def _short(text: str | None, limit: int = LABEL_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"
