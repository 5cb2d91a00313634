"""The rollout plan of a deployment: a candidate and the ordered stages it goes through.

    rollout:
      candidate: bc-gbt
      stages:
        - {kind: shadow, min_duration_s: 600, min_samples: 2000}
        - {kind: canary, weight: 1, min_duration_s: 300}
        - {kind: canary, weight: 5}
        - {kind: canary, weight: 25}
        - {kind: canary, weight: 50}
        - {kind: promote}

Each stage holds until its minimum time and samples are reached and every gate passes (the
deployment's ``guardrails``, which a stage may tighten or loosen with ``gates``); a failed
guardrail rolls back at once; a stage past ``max_duration_s`` rolls back or waits for a person
(``on_timeout``). Cross-field checks (the candidate is a declared model, not the champion, not
already a shadow or canary; weights rise; promotion comes last) are in load.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageSpec(_Strict):
    """One step of the rollout."""

    kind: Literal["shadow", "canary", "promote"]
    name: str | None = Field(None, description="default: 'shadow', 'canary-<weight>%', "
                             "'promote'")
    weight: Annotated[float, Field(gt=0, le=100)] | None = Field(
        None, description="canary stages: percent of users the candidate answers")
    min_duration_s: Annotated[float, Field(ge=0)] = 300.0
    min_samples: Annotated[int, Field(ge=0)] = 500
    max_duration_s: Annotated[float, Field(gt=0)] | None = None
    on_timeout: Literal["rollback", "wait"] = "wait"
    gates: dict[str, Any] = Field(default_factory=dict, description="guardrail overrides for "
                                  "this stage (same keys as the deployment's guardrails)")

    @field_validator("weight")
    @classmethod
    def _hundredths(cls, value: float | None) -> float | None:
        if value is not None and abs(value * 100 - round(value * 100)) > 1e-6:
            raise ValueError(f"weight must be a multiple of 0.01 percent, got {value}")
        return value

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.kind == "canary":
            return f"canary-{self.weight:g}%"
        return self.kind


class WebhookSpec(_Strict):
    """Where decisions are posted (JSON with a ``text`` line that chat tools show)."""

    url: Annotated[str, Field(pattern=r"^https?://")]
    timeout_s: Annotated[float, Field(gt=0)] = 5.0
    headers: dict[str, str] = Field(default_factory=dict)


class RolloutSpec(_Strict):
    """A candidate taken from shadow through canary steps to promotion, by the gates."""

    candidate: str
    stages: list[StageSpec] = Field(min_length=1)
    dry_run: bool = Field(False, description="evaluate and record decisions, never act")
    evaluate_every_s: Annotated[float, Field(gt=0)] = 5.0
    label_wait_s: Annotated[float, Field(ge=0)] = Field(
        60.0, description="records count once they are this old, so that their labels and "
        "outcomes have had time to arrive")
    webhook: WebhookSpec | None = None
