"""Input drift: each feature's live distribution against the champion's training data.

The model card holds, per feature, the training deciles (``bin_edges``, 11 edges) and the
share of training rows in each bin (``bin_fractions``); live rows are counted in the same
bins (values below the first edge in the first bin, above the last in the last) and compared
with PSI and a chi-squared test (gateway/analysis/stats/drift.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gateway.analysis.batch import Batch


@dataclass(frozen=True)
class Reference:
    """One feature's training bins."""

    feature: str
    edges: NDArray[np.float64]
    fractions: NDArray[np.float64]


def references(card: dict[str, Any]) -> list[Reference]:
    """The features of a card that carry training bins, in input column order."""
    stats = card.get("feature_stats") or {}
    out = []
    for name in card.get("features") or ():
        entry = stats.get(name) or {}
        edges, fractions = entry.get("bin_edges"), entry.get("bin_fractions")
        if (isinstance(edges, list) and isinstance(fractions, list) and len(edges) >= 2
                and len(fractions) == len(edges) - 1):
            out.append(Reference(name, np.asarray(edges, np.float64),
                                 np.asarray(fractions, np.float64)))
        else:
            out.append(Reference(name, np.zeros(0), np.zeros(0)))
    return out


def bin_index(edges: NDArray[np.float64], values: NDArray[Any]) -> NDArray[np.int64]:
    """Bin of each value: edges[i] <= x < edges[i+1]; outside values go to the end bins."""
    bins = len(edges) - 1
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)


@dataclass
class DriftAccumulator:
    """Live counts per feature in its training bins."""

    refs: list[Reference]
    counts: list[NDArray[np.int64]] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = [np.zeros(max(0, len(r.edges) - 1), np.int64) for r in self.refs]

    def add(self, batch: Batch) -> None:
        if batch.inputs.shape[1] != len(self.refs):
            return
        logged = np.isfinite(batch.inputs).all(axis=1)
        if not logged.any():
            return
        rows = batch.inputs[logged]
        for j, ref in enumerate(self.refs):
            if ref.edges.size:
                self.counts[j] += np.bincount(bin_index(ref.edges, rows[:, j]),
                                              minlength=len(ref.edges) - 1)
