"""Live agreement metrics: how a candidate's answers differ from the champion's, as they come.

Updated once per shadow micro-batch (a few numpy operations, never per request on the
request path), so dashboards and alerts see divergence without waiting for a report:

- ``shadowgate_agreement_rows_total{deployment,candidate}``: rows both models answered;
- ``shadowgate_agreement_same_total{...}``: rows where they gave the same label;
- ``shadowgate_decision_flips_total{...}``: rows whose configured decision (``decision`` in
  the deployment: act when P(positive class) >= threshold) would change with the candidate;
- ``shadowgate_score_difference{...}``: histogram of candidate minus champion score of the
  positive class (buckets from -1 to 1).

The pair is always (champion, other model): when a canary answered and the champion ran as
its shadow, the canary is the candidate.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.metrics import SCORE_DIFF_BUCKETS, Metrics, observe_counts

_EDGES = np.asarray(SCORE_DIFF_BUCKETS, np.float64)


@dataclass(frozen=True)
class DecisionRule:
    """Which class is positive (by name) and the score at which the action is taken."""

    positive: str | None  # None: the second class of a binary classifier
    threshold: float | None  # None: no decision configured (no flips counted)


class LiveAgreement:
    """Counters per (deployment, candidate); rules per deployment (from the snapshot)."""

    def __init__(self, metrics: Metrics, rules: Mapping[str, DecisionRule]) -> None:
        self._metrics = metrics
        self._rules = dict(rules)
        self._children: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {}

    def set_rules(self, rules: Mapping[str, DecisionRule]) -> None:
        """The decision rules of a new config (a reload)."""
        self._rules = dict(rules)

    def observe(self, deployment: str, champion_role: bool, model: str,
                pairs: Sequence[tuple[dict[str, Any], dict[str, Any], str]]) -> None:
        """``pairs``: (this model's output, the served model's output, the served model's
        name) per job of one batch; ``champion_role``: this model ran as the champion."""
        if not pairs:
            return
        rule = self._rules.get(deployment, DecisionRule(None, None))
        by_candidate: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        for mine, served, served_name in pairs:
            if champion_role:  # the served canary is the candidate
                by_candidate.setdefault(served_name, []).append((mine, served))
            else:
                by_candidate.setdefault(model, []).append((served, mine))
        for candidate, outputs in by_candidate.items():
            self._count(deployment, candidate, rule, outputs)

    def _count(self, deployment: str, candidate: str, rule: DecisionRule,
               outputs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        champ_labels: list[Any] = []
        cand_labels: list[Any] = []
        champ_scores: list[Any] = []
        cand_scores: list[Any] = []
        classes = None
        same_classes: dict[tuple[int, int], bool] = {}  # a batch shares a few class lists
        for champ, cand in outputs:
            champ_label, cand_label = champ.get("label"), cand.get("label")
            if champ_label is None or cand_label is None or len(champ_label) != len(cand_label):
                continue
            champ_labels += champ_label
            cand_labels += cand_label
            key = (id(champ["classes"]), id(cand["classes"]))
            same = same_classes.get(key)
            if same is None:
                same = same_classes[key] = tuple(champ["classes"]) == tuple(cand["classes"])
            if same:
                classes = champ["classes"]
                champ_scores.append(champ["scores"])
                cand_scores.append(cand["scores"])
        if not champ_labels:
            return
        rows_c, same_c, flips_c, hist = self._child(deployment, candidate)
        rows_c.inc(len(champ_labels))
        same_c.inc(sum(map(operator.eq, champ_labels, cand_labels)))
        if not champ_scores or classes is None:
            return
        column = _positive(classes, rule.positive)
        if column is None:
            return
        # Score rows are numpy arrays (or lists, from a remote model): one conversion each
        # for the whole batch.
        a = np.concatenate(champ_scores, dtype=np.float64)[:, column]
        b = np.concatenate(cand_scores, dtype=np.float64)[:, column]
        diff = b - a
        counts = np.bincount(np.searchsorted(_EDGES, diff, side="left"),
                             minlength=len(_EDGES) + 1)
        observe_counts(hist, counts, float(diff.sum()))
        if rule.threshold is not None:
            flips_c.inc(int(((a >= rule.threshold) != (b >= rule.threshold)).sum()))

    def _child(self, deployment: str, candidate: str) -> tuple[Any, Any, Any, Any]:
        key = (deployment, candidate)
        child = self._children.get(key)
        if child is None:
            m = self._metrics
            child = self._children[key] = (
                m.agreement_rows.labels(deployment, candidate),
                m.agreement_same.labels(deployment, candidate),
                m.decision_flips.labels(deployment, candidate),
                m.score_difference.labels(deployment, candidate))
        return child


def _positive(classes: Sequence[str], positive: str | None) -> int | None:
    if positive is not None:
        return list(classes).index(positive) if positive in classes else None
    return 1 if len(classes) == 2 else None
