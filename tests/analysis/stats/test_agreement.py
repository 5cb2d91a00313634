from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa
from statsmodels.stats.proportion import proportion_confint

from gateway.analysis.stats.agreement import agreement, cohens_kappa, flip_matrix


def test_flip_matrix_counts_pairs_in_class_order() -> None:
    m = flip_matrix(
        ["cat", "dog", "dog", "cat", "bird"],
        ["cat", "cat", "dog", "bird", "bird"],
        ["cat", "dog", "bird"],
    )
    assert m.tolist() == [[1, 0, 1], [1, 1, 0], [0, 0, 1]]
    assert flip_matrix([], [], [0, 1]).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="not in classes"):
        flip_matrix([0, 2], [0, 1], [0, 1])
    with pytest.raises(ValueError):
        flip_matrix([0], [0, 1], [0, 1])


def test_agreement_is_wilson_on_the_diagonal() -> None:
    m = [[50, 3], [7, 40]]
    e = agreement(m)
    assert e.value == 0.9
    assert (e.low, e.high) == pytest.approx(proportion_confint(90, 100, method="wilson"))
    assert not agreement([[0, 0], [0, 0]]).defined


@pytest.mark.parametrize(
    "table",
    [
        [[50, 3], [7, 40]],
        [[20, 5, 1], [4, 30, 6], [2, 3, 29]],
        # skewed margins and a sparse corner
        [[106, 10, 4], [22, 28, 10], [2, 12, 6]],
    ],
)
def test_kappa_matches_statsmodels(table: list[list[int]]) -> None:
    ref = sm_kappa(np.array(table))
    e = cohens_kappa(table)
    assert e.value == pytest.approx(ref.kappa)
    assert (e.low, e.high) == pytest.approx((ref.kappa_low, ref.kappa_upp))
    assert e.p_value == pytest.approx(ref.pvalue_two_sided)


def test_kappa_edges() -> None:
    assert not cohens_kappa([[0, 0], [0, 0]]).defined
    assert "one class only" in cohens_kappa([[10, 0], [0, 0]]).note
    perfect = cohens_kappa([[10, 0], [0, 10]])
    assert perfect.value == 1.0 and perfect.low == perfect.high == 1.0
    with pytest.raises(ValueError):
        cohens_kappa([[1, 2, 3]])
