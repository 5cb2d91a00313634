from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from gateway.analysis.stats.paired import PairedTable, mcnemar
from gateway.analysis.stats.power import labels_needed, mcnemar_sample_size


def test_matches_the_published_example() -> None:
    # powerandsamplesize.com (HyLown), "Compare Paired Proportions: McNemar's Z-test, 2-Sided",
    # after Connor (1987) p. 209: p01 = 0.45, p10 = 0.05, alpha 0.05, power 0.8 -> 23 pairs.
    assert mcnemar_sample_size(0.50, 0.40) == 23
    # Its 1-sided page: power 0.9 -> 23 as well.
    assert mcnemar_sample_size(0.50, -0.40, power=0.9, alternative="greater") == 23


def test_formula_by_hand() -> None:
    psi, delta = 0.08, 0.02
    n = (norm.ppf(0.975) * math.sqrt(psi) + norm.ppf(0.8) * math.sqrt(psi - delta**2)) ** 2
    assert mcnemar_sample_size(psi, delta) == math.ceil(n / delta**2)


def test_power_is_reached_by_simulation() -> None:
    # At the computed n, McNemar's test rejects in ~80% of simulated paired samples.
    psi, delta = 0.10, 0.04
    n = mcnemar_sample_size(psi, delta)
    rng = np.random.default_rng(1987)
    cells = rng.multinomial(n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], size=2000)
    cache: dict[tuple[int, int], bool] = {}
    rejections = 0
    for b, c, _ in cells.tolist():
        if (b, c) not in cache:
            cache[(b, c)] = mcnemar(PairedTable(0, b, c, 0)).p_value < 0.05
        rejections += cache[(b, c)]
    assert 0.75 <= rejections / 2000 <= 0.85


def test_labels_needed_from_a_table() -> None:
    table = PairedTable(both=800, first_only=60, second_only=40, neither=100)
    r = labels_needed(table, 0.02)
    assert r.discordance == pytest.approx(0.1)
    assert r.required == mcnemar_sample_size(0.1, 0.02)
    assert r.additional == r.required - 1000
    enough = labels_needed(table, 0.1)  # a 10-point difference needs only ~77 pairs
    assert enough.required < 100 and enough.additional == 0


def test_labels_needed_without_data_or_discordance() -> None:
    empty = labels_needed(PairedTable(), 0.05)
    assert empty.discordance == 0.05 and "no labelled pairs" in empty.note
    assert empty.required == mcnemar_sample_size(0.05, 0.05)
    agree = labels_needed(PairedTable(both=500, neither=20), 0.05)
    assert agree.discordance == 0.05 and agree.additional == max(0, agree.required - 520)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        mcnemar_sample_size(0.1, 0.0)
    with pytest.raises(ValueError):
        mcnemar_sample_size(0.01, 0.05)
    with pytest.raises(ValueError):
        mcnemar_sample_size(0.1, 0.05, power=1.0)
