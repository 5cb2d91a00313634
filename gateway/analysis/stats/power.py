"""How many labelled requests a paired accuracy comparison needs: McNemar sample size."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.analysis.stats.interval import Alternative, critical_value
from gateway.analysis.stats.paired import PairedTable


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Pairs needed in all, how many more than `have`, and the discordance rate assumed."""

    required: int
    additional: int
    discordance: float
    note: str = ""


def mcnemar_sample_size(
    discordance: float,
    difference: float,
    confidence: float = 0.95,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
) -> int:
    """Pairs needed for McNemar's test to detect `difference` = p10 - p01 with `power`.

    Connor, R. J. (1987). "Sample size for testing differences in proportions for the
    paired-sample design". Biometrics 43, 207-211:
    n = (z_a sqrt(psi) + z_b sqrt(psi - delta^2))^2 / delta^2, psi = p10 + p01 the
    discordance rate, delta the accuracy difference. Needs |delta| <= psi <= 1.
    """
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    d = abs(difference)
    if d == 0 or not d <= discordance <= 1:
        raise ValueError(
            f"need 0 < |difference| <= discordance <= 1, got {difference}, {discordance}"
        )
    z_a = critical_value(confidence, alternative)
    z_b = critical_value(power, "greater")
    n = (z_a * math.sqrt(discordance) + z_b * math.sqrt(discordance - d * d)) ** 2 / (d * d)
    return math.ceil(n - 1e-9)


def labels_needed(
    table: PairedTable,
    difference: float,
    confidence: float = 0.95,
    power: float = 0.8,
) -> SampleSize:
    """Labelled pairs needed to detect an accuracy difference of `difference`, given the data.

    The discordance rate comes from `table` (the models' disagreement on correctness so far),
    raised to |difference| when lower (a difference cannot exceed the discordance); with no
    data yet it is |difference|, the optimistic minimum, and the note says so.
    """
    d = abs(difference)
    if table.n == 0:
        psi, note = d, "no labelled pairs yet: assumes discordance = the difference"
    else:
        psi, note = max(table.discordant / table.n, d), ""
    required = mcnemar_sample_size(min(psi, 1.0), d, confidence, power)
    return SampleSize(required, max(0, required - table.n), psi, note)
