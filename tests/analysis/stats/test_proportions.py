from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from gateway.analysis.stats.proportions import (
    difference_of_proportions,
    lift_of_proportions,
    wilson,
)

GRID = [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (1, 50), (37, 200), (4_900, 5_000)]


@pytest.mark.parametrize(("x", "n"), GRID)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_statsmodels(x: int, n: int, confidence: float) -> None:
    e = wilson(x, n, confidence)
    low, high = proportion_confint(x, n, alpha=1 - confidence, method="wilson")
    assert e.value == pytest.approx(x / n)
    assert (e.low, e.high) == pytest.approx((low, high), abs=1e-12)
    assert e.confidence == confidence


def test_wilson_no_data_is_undefined() -> None:
    e = wilson(0, 0)
    assert not e.defined and e.note == "no observations"


@pytest.mark.parametrize(("x", "n"), [(-1, 5), (6, 5), (0, -1)])
def test_wilson_rejects_impossible_counts(x: int, n: int) -> None:
    with pytest.raises(ValueError):
        wilson(x, n)


# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score).
NEWCOMBE_1998 = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_1998)
def test_difference_matches_newcombe_1998_table(
    counts: tuple[int, int, int, int], expected: tuple[float, float]
) -> None:
    e = difference_of_proportions(*counts)
    assert (e.low, e.high) == pytest.approx(expected, abs=6e-5)
    assert e.value == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])


@pytest.mark.parametrize("counts", [(56, 70, 48, 80), (120, 1000, 95, 1010), (3, 40, 0, 35)])
def test_difference_matches_statsmodels(counts: tuple[int, int, int, int]) -> None:
    e = difference_of_proportions(*counts, confidence=0.9)
    low, high = confint_proportions_2indep(*counts, method="newcomb", compare="diff", alpha=0.1)
    assert (e.low, e.high) == pytest.approx((low, high), abs=1e-12)


def test_difference_with_an_empty_group_is_undefined() -> None:
    assert not difference_of_proportions(1, 10, 0, 0).defined
    assert not lift_of_proportions(0, 0, 1, 10).defined


@pytest.mark.parametrize("counts", [(56, 70, 48, 80), (130, 1000, 100, 1000)])
def test_lift_matches_statsmodels_log_ratio(counts: tuple[int, int, int, int]) -> None:
    e = lift_of_proportions(*counts)
    low, high = confint_proportions_2indep(*counts, method="log", compare="ratio")
    assert e.value == pytest.approx(counts[0] / counts[1] / (counts[2] / counts[3]) - 1)
    assert (e.low, e.high) == pytest.approx((low - 1, high - 1), abs=1e-12)


def test_lift_without_successes_is_undefined() -> None:
    e = lift_of_proportions(5, 100, 0, 100)
    assert not e.defined and "unbounded" in e.note


@pytest.mark.parametrize(("p", "n"), [(0.1, 50), (0.02, 500), (0.5, 20), (0.9, 200)])
def test_wilson_has_nominal_coverage(p: float, n: int) -> None:
    rng = np.random.default_rng(19270101)
    draws = rng.binomial(n, p, size=4000)
    covered = {x: wilson(x, n).low <= p <= wilson(x, n).high for x in np.unique(draws).tolist()}
    coverage = float(np.mean([covered[x] for x in draws.tolist()]))
    assert 0.93 <= coverage <= 0.98, coverage  # Wilson is a little conservative near 0 and 1
