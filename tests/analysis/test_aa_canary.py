"""An A/A canary, looked at 20 times during its run, is rarely called worse.

The verdict's outcome guardrail (checks.outcome over the always-valid lift) must reach a false
"do not promote" in at most 5% of runs however often the report is refreshed; the same
guardrail built on an ordinary fixed-n interval is shown to fail that bar, so this test can
fail.
"""

from __future__ import annotations

import numpy as np

from gateway.analysis import checks
from gateway.analysis.stats import MeanVariance, cs_relative_lift, relative_lift
from gateway.config.schema import OutcomeSpec

RUNS = 240
LOOKS = 20
USERS = 40_000  # requests in a run
CANARY = 0.10  # share of users the canary answers
RATE = 0.10  # conversion, the same for both arms (A/A)
SPEC = OutcomeSpec(name="converted", better="higher", missing=0)


def false_alarms(sequential: bool, seed: int = 11) -> float:
    rng = np.random.default_rng(seed)
    looks = np.linspace(USERS / LOOKS, USERS, LOOKS).astype(int)
    alarms = 0
    for _ in range(RUNS):
        canary = rng.random(USERS) < CANARY
        converted = rng.random(USERS) < RATE
        c_n, c_s = np.cumsum(canary), np.cumsum(canary & converted)
        p_n, p_s = np.cumsum(~canary), np.cumsum(~canary & converted)
        for look in looks - 1:
            first = MeanVariance.from_counts(int(c_s[look]), int(c_n[look]))
            second = MeanVariance.from_counts(int(p_s[look]), int(p_n[look]))
            lift = (cs_relative_lift if sequential else relative_lift)(first, second)
            check = checks.outcome("converted", SPEC, lift, enough=True)
            if check.result == "fail":
                alarms += 1
                break
    return alarms / RUNS


def test_aa_canary_peeked_twenty_times_is_rarely_rejected() -> None:
    assert false_alarms(sequential=True) <= 0.05


def test_a_fixed_interval_peeked_twenty_times_would_fail_the_bar() -> None:
    # The one-sided rejection of a 95% two-sided interval alone errs 2.5% of the time at a
    # single look; peeking 20 times multiplies that.
    assert false_alarms(sequential=False) > 0.05


def test_a_real_harm_is_caught() -> None:
    rng = np.random.default_rng(5)
    canary = rng.random(USERS) < CANARY
    converted = rng.random(USERS) < np.where(canary, RATE * 0.7, RATE)  # 30% fewer
    first = MeanVariance.of(converted[canary].astype(float))
    second = MeanVariance.of(converted[~canary].astype(float))
    check = checks.outcome("converted", SPEC, cs_relative_lift(first, second), enough=True)
    assert check.result == "fail" and "significantly worse" in check.sentence
