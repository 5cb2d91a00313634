from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from gateway.analysis.stats.classification import (
    LOG_LOSS_EPS,
    accuracy,
    brier_score,
    brier_terms,
    log_loss,
    log_loss_terms,
)


def test_accuracy_is_a_wilson_interval() -> None:
    e = accuracy(["a", "b", "b", "c"], ["a", "b", "c", "c"])
    assert e.value == 0.75
    assert (e.low, e.high) == pytest.approx(proportion_confint(3, 4, method="wilson"))
    assert not accuracy([], []).defined
    single = accuracy([1], [1])
    assert single.value == 1.0 and single.high == 1.0
    with pytest.raises(ValueError):
        accuracy([1, 2], [1])


def test_binary_log_loss_and_brier_by_hand() -> None:
    y = [1, 0, 1, 0]
    p = [0.9, 0.2, 0.6, 0.5]
    expected = [-math.log(0.9), -math.log(0.8), -math.log(0.6), -math.log(0.5)]
    assert log_loss_terms(y, p) == pytest.approx(expected)
    assert log_loss(y, p).value == pytest.approx(np.mean(expected))
    assert brier_terms(y, p) == pytest.approx([0.01, 0.04, 0.16, 0.25])
    assert brier_score(y, p).value == pytest.approx(0.115)


def test_multiclass_terms() -> None:
    y = [0, 2]
    p = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]
    assert log_loss_terms(y, p) == pytest.approx([-math.log(0.7), -math.log(0.6)])
    # Brier (1950): sum over classes of squared error.
    assert brier_terms(y, p) == pytest.approx([0.09 + 0.04 + 0.01, 0.01 + 0.09 + 0.16])


def test_log_loss_clips_confident_mistakes() -> None:
    terms = log_loss_terms([1, 0], [0.0, 1.0])
    assert terms == pytest.approx([-math.log(LOG_LOSS_EPS)] * 2)
    assert np.isfinite(terms).all()


def test_edges() -> None:
    assert not log_loss([], []).defined
    one = brier_score([1], [0.8])
    assert one.value == pytest.approx(0.04) and math.isnan(one.low)
    perfect = log_loss([1, 0, 1], [1.0, 0.0, 1.0])
    assert perfect.value == pytest.approx(-math.log(1 - LOG_LOSS_EPS))
    assert perfect.note == "zero variance"


@pytest.mark.parametrize(
    ("y", "p"),
    [
        ([2, 0], [0.5, 0.5]),
        ([1, 0], [1.2, 0.5]),
        ([0.5], [0.5]),
        ([1, 0], [0.5]),
        ([3], [[0.5, 0.5]]),
    ],
)
def test_rejects_invalid_input(y: list[float], p: list[object]) -> None:
    with pytest.raises(ValueError):
        log_loss_terms(y, p)
