"""One rollout decision from the stage's evidence: advance, hold, roll back, promote, wait.

Pure: the controller gathers the evidence (the candidate's comparison since the stage began,
built by gateway/analysis) and applies the decision. The rules, in order:

1. a guardrail that failed rolls back at once (every guardrail decides on an always-valid
   confidence sequence, so looking every few seconds does not inflate false alarms);
2. a failed health check (split, coverage, too few pairs) holds: it never rolls back;
3. the stage's minimum time and samples hold until reached;
4. an inconclusive guardrail holds; past the stage's ``max_duration_s`` the stage rolls back
   or waits for a person, as ``on_timeout`` says;
5. otherwise the rollout advances to the next stage, or promotes when that is the last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.analysis.document import Check
from gateway.config.rollout import RolloutSpec, StageSpec

Action = Literal["advance", "hold", "rollback", "promote", "wait"]


@dataclass(frozen=True)
class Decision:
    """What the controller does now, why, and every gate's value, bound and result."""

    action: Action
    stage: int  # the stage evaluated
    stage_name: str
    summary: str  # one line a person reads
    gates: list[Check] = field(default_factory=list)

    @property
    def failing(self) -> Check | None:
        return next((g for g in self.gates if g.result == "fail"), None)


def stage_checks(stage: StageSpec, elapsed_s: float, samples: int) -> list[Check]:
    """The stage's own gates: enough time and enough samples (health: they hold)."""
    return [
        Check(name="stage_duration", kind="health", measured=elapsed_s,
              bound=stage.min_duration_s,
              condition=f"time in stage >= {stage.min_duration_s:g} s",
              result="pass" if elapsed_s >= stage.min_duration_s else "hold",
              sentence=f"{elapsed_s:,.0f} s in {stage.label} of at least "
                       f"{stage.min_duration_s:,.0f} s."),
        Check(name="stage_samples", kind="health", measured=samples, bound=stage.min_samples,
              condition=f"requests compared in this stage >= {stage.min_samples}",
              result="pass" if samples >= stage.min_samples else "hold",
              sentence=f"{samples:,} requests compared in {stage.label} of at least "
                       f"{stage.min_samples:,}."),
    ]


def decide(plan: RolloutSpec, index: int, elapsed_s: float, samples: int,
           guardrails: list[Check]) -> Decision:
    """The decision for stage ``index`` after ``elapsed_s`` in it, with ``samples`` compared
    requests and the candidate's ``guardrails`` checks (gateway/analysis/verdict.py)."""
    stage = plan.stages[index]
    gates = [*stage_checks(stage, elapsed_s, samples), *guardrails]
    failed = [g for g in gates if g.result == "fail"]
    if failed:
        first = failed[0]
        return Decision("rollback", index, stage.label,
                        f"Rolled back in {stage.label}: {first.name} failed "
                        f"(measured {_fmt(first.measured)}, bound {_fmt(first.bound)}: "
                        f"{first.condition}). {first.sentence}", gates)
    held = [g for g in gates if g.result == "hold"]
    if held:
        timed_out = stage.max_duration_s is not None and elapsed_s >= stage.max_duration_s
        first = held[0]
        if timed_out and stage.on_timeout == "rollback":
            return Decision("rollback", index, stage.label,
                            f"Rolled back: {stage.label} reached its maximum of "
                            f"{stage.max_duration_s:g} s without a conclusion "
                            f"({first.name}: {first.sentence})", gates)
        if timed_out:
            return Decision("wait", index, stage.label,
                            f"Waiting for a person: {stage.label} reached its maximum of "
                            f"{stage.max_duration_s:g} s without a conclusion "
                            f"({first.name}: {first.sentence})", gates)
        return Decision("hold", index, stage.label,
                        f"Holding in {stage.label}: {first.name}: {first.sentence}", gates)
    following = index + 1
    if following >= len(plan.stages) or plan.stages[following].kind == "promote":
        return Decision("promote", index, stage.label,
                        f"Promoted after {stage.label}: every gate passed.", gates)
    return Decision("advance", index, stage.label,
                    f"Advanced from {stage.label} to {plan.stages[following].label}: every "
                    "gate passed.", gates)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"
