from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from gateway.analysis.stats.multiple import benjamini_hochberg, holm

CASES = [
    [0.01, 0.04, 0.03, 0.005, 0.5],
    [0.2, 0.2, 0.2, 0.01],
    [0.001],
    list(np.random.default_rng(1995).uniform(size=40) ** 3),
    [1.0, 0.0, 0.049, 0.051, 0.049],
]


@pytest.mark.parametrize("p", CASES)
def test_matches_statsmodels(p: list[float]) -> None:
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    assert benjamini_hochberg(p) == pytest.approx(multipletests(p, method="fdr_bh")[1])


def test_nan_is_kept_and_not_counted() -> None:
    p = [0.01, math.nan, 0.04]
    h, bh = holm(p), benjamini_hochberg(p)
    assert math.isnan(h[1]) and math.isnan(bh[1])
    assert [h[0], h[2]] == pytest.approx(multipletests([0.01, 0.04], method="holm")[1])
    assert [bh[0], bh[2]] == pytest.approx(multipletests([0.01, 0.04], method="fdr_bh")[1])


def test_empty_and_invalid() -> None:
    assert holm([]).size == 0 and benjamini_hochberg([]).size == 0
    with pytest.raises(ValueError):
        holm([0.5, 1.5])
    with pytest.raises(ValueError):
        benjamini_hochberg([[0.1]])
