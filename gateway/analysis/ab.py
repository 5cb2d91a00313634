"""The A/B comparison: users the canary answered vs users the champion answered.

Different users saw different models, so this compares what happened to them: business
outcomes posted as feedback, and the served answers' errors and latency, per request. The
split itself is checked first (sample-ratio mismatch against the configured weight).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gateway.analysis.batch import ABSENT, CANARY, CHAMPION, Batch
from gateway.analysis.calls import Calls
from gateway.analysis.stats import MeanVariance
from gateway.config.schema import OutcomeSpec


@dataclass
class ABAccumulator:
    """Per arm (champion-served, canary-served): requests, outcomes, served calls."""

    champion: str
    canary: str
    outcomes: tuple[OutcomeSpec, ...]
    arms: dict[int, int] = field(default_factory=lambda: {CHAMPION: 0, CANARY: 0})  # requests
    users: dict[int, set[str]] = field(default_factory=lambda: {CHAMPION: set(), CANARY: set()})
    keyless: dict[int, int] = field(default_factory=lambda: {CHAMPION: 0, CANARY: 0})
    values: dict[tuple[str, int], MeanVariance] = field(default_factory=dict)
    calls: dict[int, Calls] = field(default_factory=lambda: {CHAMPION: Calls(), CANARY: Calls()})

    def units(self, arm: int) -> int:
        """Users in an arm: distinct routing keys, plus one per request without a key (the
        unit that was randomised, so the split check counts it once however often it came)."""
        return len(self.users[arm]) + self.keyless[arm]

    def add(self, batch: Batch) -> None:
        champ = batch.models.get(self.champion)
        if champ is None:
            return
        canary = batch.models.get(self.canary)
        arms = {CHAMPION: (batch.variant == CHAMPION) & (champ.status != ABSENT)}
        if canary is not None:
            arms[CANARY] = ((batch.variant == CANARY) & (canary.status != ABSENT)
                            & (canary.role == CANARY))
        for arm, mask in arms.items():
            self.arms[arm] += int(mask.sum())
            if batch.keys is None:
                self.keyless[arm] += int(mask.sum())
            else:
                keys = [batch.keys[i] for i in np.flatnonzero(mask)]
                self.users[arm].update(k for k in keys if k is not None)
                self.keyless[arm] += sum(k is None for k in keys)
            served = champ if arm == CHAMPION else canary
            assert served is not None
            self.calls[arm].add(served.status[mask], served.latency_ms[mask])
            for spec in self.outcomes:
                column = batch.outcomes.get(spec.name)
                if column is None:
                    continue
                values = column[mask]
                if spec.missing is not None:
                    values = np.where(np.isnan(values), spec.missing, values)
                values = values[np.isfinite(values)]
                key = (spec.name, arm)
                self.values[key] = self.values.get(key, MeanVariance()).add(values)
