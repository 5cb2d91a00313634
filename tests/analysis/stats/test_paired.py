from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from gateway.analysis.stats.paired import PairedTable, mcnemar, paired_difference


def _table(t: PairedTable) -> list[list[int]]:
    return [[t.both, t.first_only], [t.second_only, t.neither]]


def test_from_outcomes_and_merge() -> None:
    first = [True, True, False, False, True]
    second = [True, False, True, False, False]
    t = PairedTable.from_outcomes(first, second)
    assert t == PairedTable(both=1, first_only=2, second_only=1, neither=1)
    assert t.merge(t) == PairedTable(2, 4, 2, 2)
    assert (t.n, t.discordant) == (5, 3)


def test_from_outcomes_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        PairedTable.from_outcomes([True], [True, False])
    with pytest.raises(ValueError):
        PairedTable(1, -1, 0, 0)


def test_paired_difference_matches_textbook_example() -> None:
    # Cavo et al. (2012), complete response before and after consolidation therapy, as worked
    # in Fagerland, Lydersen & Laake (2017), "Statistical Analysis of Contingency Tables",
    # ch. 8: Newcombe square-and-add estimate -0.0621 (95% CI -0.1186 to -0.0046).
    e = paired_difference(PairedTable(both=59, first_only=6, second_only=16, neither=80))
    assert e.value == pytest.approx(-0.0621, abs=5e-5)
    assert (e.low, e.high) == pytest.approx((-0.1186, -0.0046), abs=5e-5)


def test_paired_difference_empty_and_all_agree() -> None:
    assert not paired_difference(PairedTable()).defined
    e = paired_difference(PairedTable(both=40, neither=10))
    assert e.value == 0.0 and e.low < 0.0 < e.high and e.note == "no discordant pairs"
    one = paired_difference(PairedTable(first_only=1))  # n = 1: one pair says almost nothing
    assert one.value == 1.0 and one.low < 0.0 and one.high == pytest.approx(1.0)


def _coverage(probs: list[float], n: int, draws: int, seed: int, confidence: float) -> float:
    rng = np.random.default_rng(seed)
    tables = rng.multinomial(n, probs, size=draws)
    truth = probs[1] - probs[2]
    cache: dict[tuple[int, ...], bool] = {}
    hits = 0
    for row in tables:
        key = tuple(int(v) for v in row)
        if key not in cache:
            e = paired_difference(PairedTable(*key), confidence)
            cache[key] = e.low <= truth <= e.high
        hits += cache[key]
    return hits / draws


@pytest.mark.parametrize(
    ("probs", "n"),
    [
        ([0.80, 0.06, 0.03, 0.11], 200),
        ([0.45, 0.10, 0.10, 0.35], 60),
        ([0.9, 0.02, 0.01, 0.07], 1000),
    ],
)
def test_paired_interval_has_nominal_coverage(probs: list[float], n: int) -> None:
    coverage = _coverage(probs, n, draws=3000, seed=20240611, confidence=0.95)
    assert 0.93 <= coverage <= 0.975, coverage


TABLES = [
    PairedTable(10, 3, 5, 20),
    PairedTable(100, 0, 7, 50),
    PairedTable(100, 12, 12, 50),
    PairedTable(500, 40, 21, 300),
    PairedTable(500, 90, 60, 300),
]


@pytest.mark.parametrize("table", TABLES)
def test_mcnemar_matches_statsmodels(table: PairedTable) -> None:
    exact = sm_mcnemar(_table(table), exact=True)
    ours = mcnemar(table, exact=True)
    assert (ours.statistic, ours.p_value) == pytest.approx((exact.statistic, exact.pvalue))
    if table.first_only != table.second_only:  # we floor |b - c| - 1 at 0, statsmodels does not
        chi = sm_mcnemar(_table(table), exact=False, correction=True)
        ours = mcnemar(table, exact=False)
        assert (ours.statistic, ours.p_value) == pytest.approx((chi.statistic, chi.pvalue))


def test_mcnemar_picks_exact_below_25_discordant_pairs() -> None:
    assert mcnemar(PairedTable(0, 12, 12, 0)).exact
    assert mcnemar(PairedTable(0, 12, 12, 0)).p_value == 1.0
    assert not mcnemar(PairedTable(0, 13, 12, 0)).exact
    assert mcnemar(PairedTable(0, 13, 12, 0)).p_value == 1.0  # (|1| - 1)^2 = 0


def test_mcnemar_mid_p() -> None:
    # Fagerland et al. (2013): mid-p = 2 * [P(X <= b) - P(X = b) / 2] for X ~ Bin(b + c, 1/2).
    r = mcnemar(PairedTable(0, 1, 9, 0), mid_p=True)
    assert r.p_value == pytest.approx(2 * (binom.cdf(1, 10, 0.5) - 0.5 * binom.pmf(1, 10, 0.5)))
    assert r.p_value < mcnemar(PairedTable(0, 1, 9, 0)).p_value


def test_mcnemar_without_discordant_pairs() -> None:
    r = mcnemar(PairedTable(both=30, neither=3))
    assert (r.statistic, r.p_value, r.discordant) == (0.0, 1.0, 0)
    assert r.note == "no discordant pairs"
    assert not math.isnan(r.p_value)
