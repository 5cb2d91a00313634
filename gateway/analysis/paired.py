"""The paired comparison: champion and candidate on the same requests.

One pass over batches keeps sufficient statistics only: the flip matrix, histograms of score
differences and of each model's scores, paired correctness counts and per-row differences as
mean/variance accumulators, decision counts and values; plus, for labelled rows only, the
(label, score, score) triples that DeLong's test needs. ``finish`` turns them into the
document's sections (gateway/analysis/document.py) with gateway/analysis/stats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from gateway.analysis.batch import OK, Batch
from gateway.analysis.stats import CoMoments, MeanVariance, PairedTable, cs_samples_needed
from gateway.config.schema import DecisionSpec

SCORE_BINS = 100  # histogram of each model's positive-class score on [0, 1]
DIFF_BINS = 200  # histogram of candidate - champion score on [-1, 1]
LOG_EPS = 1e-15


@dataclass
class PairAccumulator:
    """Sufficient statistics of champion vs one candidate over every batch seen."""

    champion: str
    candidate: str
    classes: tuple[str, ...]
    positive: int  # index of the positive class (for scores, AUC and decisions)
    decision: DecisionSpec | None = None
    segment_edges: NDArray[np.float64] | None = None  # on the segment column
    segment_feature: int | None = None  # input column; None: the champion's confidence
    pairs: int = 0
    flips: NDArray[np.int64] = field(init=False)
    diff_hist: NDArray[np.int64] = field(default_factory=lambda: np.zeros(DIFF_BINS, np.int64))
    champ_hist: NDArray[np.int64] = field(default_factory=lambda: np.zeros(SCORE_BINS, np.int64))
    cand_hist: NDArray[np.int64] = field(default_factory=lambda: np.zeros(SCORE_BINS, np.int64))
    diff: MeanVariance = field(default_factory=MeanVariance)
    co: CoMoments = field(default_factory=CoMoments)  # models without classes
    champ_conf: MeanVariance = field(default_factory=MeanVariance)
    cand_conf: MeanVariance = field(default_factory=MeanVariance)
    table: PairedTable = field(default_factory=PairedTable)
    correct_diff: MeanVariance = field(default_factory=MeanVariance)  # cand - champ, 0/1
    loss_diff: MeanVariance = field(default_factory=MeanVariance)  # log-loss or squared error
    champ_loss: MeanVariance = field(default_factory=MeanVariance)
    cand_loss: MeanVariance = field(default_factory=MeanVariance)
    champ_brier: MeanVariance = field(default_factory=MeanVariance)
    cand_brier: MeanVariance = field(default_factory=MeanVariance)
    champ_abs: MeanVariance = field(default_factory=MeanVariance)
    cand_abs: MeanVariance = field(default_factory=MeanVariance)
    labelled: list[NDArray[np.float64]] = field(default_factory=list)  # [truth, champ, cand]
    acts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(4, np.int64))
    champ_value: MeanVariance = field(default_factory=MeanVariance)
    cand_value: MeanVariance = field(default_factory=MeanVariance)
    value_diff: MeanVariance = field(default_factory=MeanVariance)
    seg_rows: NDArray[np.int64] = field(init=False)
    seg_agree: NDArray[np.int64] = field(init=False)
    seg_tables: list[PairedTable] = field(init=False)

    def __post_init__(self) -> None:
        k = max(1, len(self.classes))
        self.flips = np.zeros((k, k), np.int64)
        segments = 0 if self.segment_edges is None else len(self.segment_edges) - 1
        self.seg_rows = np.zeros(segments, np.int64)
        self.seg_agree = np.zeros(segments, np.int64)
        self.seg_tables = [PairedTable() for _ in range(segments)]

    @property
    def classifier(self) -> bool:
        return bool(self.classes)

    def add(self, batch: Batch) -> None:
        champ = batch.models.get(self.champion)
        cand = batch.models.get(self.candidate)
        if champ is None or cand is None:
            return
        answered = (champ.status == OK) & (cand.status == OK)
        both_rec = answered[batch.rec]
        if self.classifier:
            self._add_classes(batch, both_rec & (champ.pred >= 0) & (cand.pred >= 0))
        else:
            self._add_values(batch, both_rec & np.isfinite(champ.value) & np.isfinite(cand.value))

    def _add_classes(self, batch: Batch, both: NDArray[np.bool_]) -> None:
        champ, cand = batch.models[self.champion], batch.models[self.candidate]
        n = int(both.sum())
        if n == 0:
            return
        k = len(self.classes)
        cp, dp = champ.pred[both].astype(np.int64), cand.pred[both].astype(np.int64)
        self.pairs += n
        self.flips += np.bincount(cp * k + dp, minlength=k * k).reshape(k, k)
        cs, ds = champ.scores[both].astype(np.float64), cand.scores[both].astype(np.float64)
        cpos, dpos = cs[:, self.positive], ds[:, self.positive]
        scored = np.isfinite(cpos) & np.isfinite(dpos)
        delta = dpos[scored] - cpos[scored]
        self.diff = self.diff.add(delta)
        self.diff_hist += np.histogram(delta, DIFF_BINS, (-1.0, 1.0))[0]
        self.champ_hist += np.histogram(cpos[scored], SCORE_BINS, (0.0, 1.0))[0]
        self.cand_hist += np.histogram(dpos[scored], SCORE_BINS, (0.0, 1.0))[0]
        rows = np.arange(n)
        cconf, dconf = cs[rows, cp], ds[rows, dp]
        self.champ_conf = self.champ_conf.add(cconf[np.isfinite(cconf)])
        self.cand_conf = self.cand_conf.add(dconf[np.isfinite(dconf)])
        truth = batch.truth[both].astype(np.int64)
        labelled = truth >= 0
        champ_right, cand_right = cp == truth, dp == truth
        if labelled.any():
            self._add_labelled(truth[labelled], champ_right[labelled], cand_right[labelled],
                               cs[labelled], ds[labelled])
        if self.decision is not None:
            self._add_decisions(cpos, dpos, truth)
        if self.segment_edges is not None:
            column = (cconf if self.segment_feature is None
                      else batch.inputs[both, self.segment_feature].astype(np.float64))
            self._add_segments(column, cp == dp, labelled, champ_right, cand_right)

    def _add_labelled(self, truth: NDArray[np.int64], champ_right: NDArray[np.bool_],
                      cand_right: NDArray[np.bool_], cs: NDArray[np.float64],
                      ds: NDArray[np.float64]) -> None:
        self.table = self.table.merge(PairedTable.from_outcomes(cand_right, champ_right))
        self.correct_diff = self.correct_diff.add(
            cand_right.astype(np.float64) - champ_right.astype(np.float64))
        rows = np.arange(truth.shape[0])
        cp_true = np.clip(cs[rows, truth], LOG_EPS, 1.0)
        dp_true = np.clip(ds[rows, truth], LOG_EPS, 1.0)
        ok = np.isfinite(cp_true) & np.isfinite(dp_true)
        champ_loss, cand_loss = -np.log(cp_true[ok]), -np.log(dp_true[ok])
        self.champ_loss = self.champ_loss.add(champ_loss)
        self.cand_loss = self.cand_loss.add(cand_loss)
        self.loss_diff = self.loss_diff.add(cand_loss - champ_loss)
        onehot = np.zeros_like(cs)
        onehot[rows, truth] = 1.0
        self.champ_brier = self.champ_brier.add(np.nansum((cs - onehot) ** 2, axis=1)[ok])
        self.cand_brier = self.cand_brier.add(np.nansum((ds - onehot) ** 2, axis=1)[ok])
        self.labelled.append(np.column_stack([
            (truth == self.positive).astype(np.float64), cs[:, self.positive],
            ds[:, self.positive]])[ok])

    def _add_decisions(self, cpos: NDArray[np.float64], dpos: NDArray[np.float64],
                       truth: NDArray[np.int64]) -> None:
        assert self.decision is not None
        threshold = self.decision.threshold
        champ_act, cand_act = cpos >= threshold, dpos >= threshold
        # [champion acts, candidate acts, the decision flips, rows]
        self.acts += np.array([champ_act.sum(), cand_act.sum(), (champ_act != cand_act).sum(),
                               champ_act.shape[0]])
        labelled = truth >= 0
        if labelled.any():
            positive = truth[labelled] == self.positive
            champ_v = _values(self.decision, champ_act[labelled], positive)
            cand_v = _values(self.decision, cand_act[labelled], positive)
            self.champ_value = self.champ_value.add(champ_v)
            self.cand_value = self.cand_value.add(cand_v)
            self.value_diff = self.value_diff.add(cand_v - champ_v)

    def _add_segments(self, column: NDArray[np.float64], agree: NDArray[np.bool_],
                      labelled: NDArray[np.bool_], champ_right: NDArray[np.bool_],
                      cand_right: NDArray[np.bool_]) -> None:
        assert self.segment_edges is not None
        segments = len(self.segment_edges) - 1
        seg = np.clip(np.searchsorted(self.segment_edges, column, side="right") - 1, 0,
                      segments - 1)
        seg[~np.isfinite(column)] = -1
        known = seg >= 0
        self.seg_rows += np.bincount(seg[known], minlength=segments)
        self.seg_agree += np.bincount(seg[known & agree], minlength=segments)
        for s in range(segments):
            mask = (seg == s) & labelled
            if mask.any():
                self.seg_tables[s] = self.seg_tables[s].merge(
                    PairedTable.from_outcomes(cand_right[mask], champ_right[mask]))

    def _add_values(self, batch: Batch, both: NDArray[np.bool_]) -> None:
        champ = batch.models[self.champion].value[both]
        cand = batch.models[self.candidate].value[both]
        if champ.size == 0:
            return
        self.pairs += int(champ.size)
        self.diff = self.diff.add(cand - champ)
        self.co = self.co.merge(CoMoments.of(champ, cand))
        truth = batch.truth_value[both]
        labelled = np.isfinite(truth)
        if labelled.any():
            champ_err = np.abs(champ[labelled] - truth[labelled])
            cand_err = np.abs(cand[labelled] - truth[labelled])
            self.champ_abs = self.champ_abs.add(champ_err)
            self.cand_abs = self.cand_abs.add(cand_err)
            self.champ_loss = self.champ_loss.add(champ_err ** 2)
            self.cand_loss = self.cand_loss.add(cand_err ** 2)
            self.loss_diff = self.loss_diff.add(cand_err ** 2 - champ_err ** 2)

    def labels_to_decide(self, margin: float, min_labels: int, confidence: float) -> int | None:
        """About how many more labelled rows the accuracy gate needs before it can decide
        either way, given the spread seen so far (None: it may never: the difference sits on
        the margin); 0 when it can decide now."""
        labelled = self.labelled_rows()
        if labelled < min_labels or self.correct_diff.n < 2:
            return max(min_labels - labelled, 0) or None
        diff = self.correct_diff if self.classifier else self.loss_diff
        mean = diff.mean if self.classifier else -diff.mean
        needed = cs_samples_needed(diff.variance, abs(mean + margin), confidence)
        return None if math.isinf(needed) else max(0, int(needed) - diff.n)

    def labelled_rows(self) -> int:
        return self.table.n if self.classifier else self.loss_diff.n

    def triples(self) -> NDArray[np.float64]:
        """[truth is positive, champion score, candidate score] of every labelled row."""
        if not self.labelled:
            return np.zeros((0, 3))
        return np.concatenate(self.labelled)


def _values(decision: DecisionSpec, act: NDArray[np.bool_],
            positive: NDArray[np.bool_]) -> NDArray[np.float64]:
    v = decision.values
    tp, fp = v.get("true_positive", 0.0), v.get("false_positive", 0.0)
    tn, fn = v.get("true_negative", 0.0), v.get("false_negative", 0.0)
    return np.where(act, np.where(positive, tp, fp), np.where(positive, fn, tn)).astype(
        np.float64)

