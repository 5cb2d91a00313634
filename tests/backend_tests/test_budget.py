"""The shadows' CPU budget: a token bucket of CPU seconds, on an injected clock."""

from __future__ import annotations

from gateway.backends.budget import CpuBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_share_never_sheds_but_still_counts() -> None:
    budget = CpuBudget(None)
    budget.charge(50.0)
    assert budget.available() and budget.spent_s == 50.0


def test_a_batch_runs_while_tokens_last_and_refills_at_the_share() -> None:
    clock = Clock()
    budget = CpuBudget(0.5, window_s=0.2, clock=clock)  # holds at most 0.1 CPU-second
    assert budget.available()
    budget.charge(0.3)  # one expensive batch overdraws the bucket
    assert not budget.available()
    clock.now += 0.39  # refills 0.195 of the 0.2 owed: still short
    assert not budget.available()
    clock.now += 0.02
    assert budget.available()


def test_idle_time_banks_no_more_than_one_window() -> None:
    clock = Clock()
    budget = CpuBudget(0.5, window_s=0.2, clock=clock)
    clock.now += 3600  # an idle hour
    budget.charge(0.1)  # the whole window's worth
    assert not budget.available()
    clock.now += 0.01
    assert budget.available()


def test_a_new_share_caps_what_is_banked() -> None:
    clock = Clock()
    budget = CpuBudget(2.0, window_s=0.2, clock=clock)  # 0.4 banked
    budget.set_share(0.1)  # at most 0.02 now
    budget.charge(0.03)
    assert not budget.available()
    budget.set_share(None)
    assert budget.available()
