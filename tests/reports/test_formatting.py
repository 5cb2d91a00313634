from __future__ import annotations

import math

import pytest

from gateway.analysis import words
from gateway.analysis.document import Check, Interval
from gateway.reports import formatting as f


@pytest.mark.parametrize(("x", "text"), [
    (0.9712, "97.1%"), (0.0, "0%"), (1.0, "100%"), (0.5, "50.0%"), (-0.0, "0%"),
    (0.00019, "0.019%"), (0.99981, "99.98%"), (0.99999, "99.999%"), (None, "n/a"),
    (math.nan, "n/a"), (math.inf, "n/a"),
])
def test_pct(x: float | None, text: str) -> None:
    assert f.pct(x) == text


def test_points_numbers_money_and_times() -> None:
    assert f.points(-0.021) == "-2.1 points"
    assert f.points(0.0) == "0.0 points" and f.points(-0.0) == "0.0 points"
    assert f.points(0.0004) == "+0.04 points"
    assert f.signed_pct(0.023) == "+2.3%"
    assert f.count(1234) == "1,234"
    assert [f.number(x) for x in (0.9302, 12.34, 1234.5, -1.8e-05, 0)] == [
        "0.93", "12.3", "1,234", "-0.000018", "0"]
    assert f.metric(0.93) == "0.930" and f.signed_metric(-0.0887) == "-0.089"
    assert f.money(-5_953_905.7, "EUR") == "-5.95 million EUR"
    assert f.money(2913.0, "EUR") == "+2,913 EUR" and f.money(0.0, "EUR") == "0 EUR"
    assert [f.ms(x) for x in (0.3687, 12.34, 1204.2)] == ["0.37 ms", "12.3 ms", "1,204 ms"]
    assert f.p_value(0.69) == "p = 0.69" and f.p_value(0.012) == "p = 0.012"
    assert f.p_value(1e-200) == "p < 0.001" and f.p_value(None) == "p: n/a"
    assert f.when(1_800_000_000) == "2027-01-15 08:00:00 UTC"
    assert [f.hours(h) for h in (0.01, 0.5, 1.2, 5.4, 72.0, None)] == [
        "about a minute", "about 30 minutes", "about an hour", "about 5 hours",
        "about 3 days", "an unknown time"]


def iv(value: float | None, low: float | None, high: float | None, note: str = "") -> Interval:
    return Interval(value=value, low=low, high=high, confidence=0.95, note=note)


def test_intervals_name_their_confidence() -> None:
    assert f.interval(iv(0.971, 0.968, 0.974)) == "97.1% (95% interval 96.8 to 97.4%)"
    assert f.interval(iv(0.971, 0.968, 0.974), always_valid=True) == (
        "97.1% (95% always-valid interval 96.8 to 97.4%)")
    assert f.interval(iv(-0.02, -0.03, -0.01), "points") == (
        "-2.0 points (95% interval -3.0 to -1.0 points)")
    assert f.interval(iv(-6890.75, -7584.1, -6197.4), "money", unit="EUR") == (
        "-6,891 EUR (95% interval -7,584 EUR to -6,197 EUR)")
    assert f.interval(iv(-0.02, None, 0.01), "points") == (
        "-2.0 points (95% interval: at most +1.0 points)")
    assert f.interval(iv(0.3, None, None)) == "30.0% (no interval: too few data)"
    assert f.interval(iv(None, None, None, "too few pairs")) == "n/a (too few pairs)"
    assert f.interval(None) == "n/a"
    assert f.bounds(iv(0.0, 0.0, 0.000192)) == "0 to 0.019%"


def test_check_values_take_the_unit_of_their_check() -> None:
    def check(name: str) -> Check:
        return Check(name=name, kind="guardrail", measured=None, bound=None, condition="",
                     result="pass", sentence="")

    assert f.check_value(check("coverage"), 0.9) == "90.0%"
    assert f.check_value(check("pairs"), 20000.0) == "20,000"
    assert f.check_value(check("sample_ratio"), 0.6886) == "0.69"
    assert f.check_value(check("sample_ratio"), 1e-9) == "< 0.001"
    assert f.check_value(check("accuracy"), -0.01) == "-1.0 points"
    assert f.check_value(check("latency_p99"), 0.98) == "0.98x"
    assert f.check_value(check("business_value"), -6.89, "EUR") == (
        "-6,890 EUR per 1,000 requests")
    assert f.check_value(check("outcome:converted"), -0.0) == "0%"
    assert f.check_value(check("something_new"), 3.14159) == "3.14"
    assert f.check_value(check("accuracy"), None) == "n/a"
    assert f.check_label("outcome:converted") == "Outcome: converted"
    assert f.check_label("latency_p99") == "Latency (p99)"


def test_durations_in_words() -> None:
    assert [words.duration(h) for h in (5 / 3600, 0.01, 0.5, 30.0, 72.0, None)] == [
        "less than a minute", "about a minute", "about 30 minutes", "about 30 hours",
        "about 3 days", "an unknown time"]
