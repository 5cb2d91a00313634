"""A stage's evidence: the candidate against the champion since the stage began, read as it comes.

Each evaluation reads only the stream entries added since the last one, and only those at
least ``label_wait_s`` old, so that their labels and outcomes have had time to be posted
(feedback is joined when a record is read). The accumulators are those of the reports
(gateway/analysis), so a rollout gate and a report agree on the same records.
"""

from __future__ import annotations

from redis.asyncio import Redis

from gateway.analysis.batch import CANARY
from gateway.analysis.calls import TrafficAccumulator
from gateway.analysis.document import CandidateReport, Check
from gateway.analysis.plan import Plan, accumulators, plan_for
from gateway.analysis.report import candidate_report
from gateway.analysis.sources import RedisSource
from gateway.config.load import LoadedConfig
from gateway.config.schema import DeploymentSpec

DAY_S = 86_400.0


class StageEvidence:
    """Accumulated comparison of one candidate in one stage (``started``: Unix seconds)."""

    def __init__(self, loaded: LoadedConfig, spec: DeploymentSpec, candidate: str,
                 started: float, label_wait_s: float, start_id: str = "0-0") -> None:
        """``start_id``: the stream's last id when the stage began; only later entries are
        read (then kept when their request time is at least ``started``)."""
        self.plan: Plan = plan_for(loaded, spec.name, candidate, spec)
        self.candidate = self.plan.only or candidate
        self.started = started
        self.label_wait_s = label_wait_s
        self.traffic = TrafficAccumulator()
        accumulators(self.plan, self.candidate)
        self._source: RedisSource | None = None
        self._start_id = start_id

    async def catch_up(self, redis: Redis, now: float) -> int:
        """Read what arrived since the last call and is old enough; returns records read."""
        if self._source is None:
            self._source = RedisSource(redis, self.plan.spec.name, since=self.started,
                                       until=None, skew_s=None)
            self._source.last_id = self._start_id
        cutoff_ms = max(0, int((now - self.label_wait_s) * 1000))
        before = self._source.stats.records
        async for batch in self._source.batches(self.plan.layout, end=f"{cutoff_ms}"):
            self.traffic.add(batch)
            for acc in self.plan.pairs.values():
                acc.add(batch)
            for ab in self.plan.abs.values():
                ab.add(batch)
        return self._source.stats.records - before

    @property
    def samples(self) -> int:
        """Requests compared: pairs in a shadow stage, users the canary answered in a canary
        stage."""
        ab = self.plan.abs.get(self.candidate)
        if ab is not None:
            return ab.arms[CANARY]
        acc = self.plan.pairs.get(self.candidate)
        return acc.pairs if acc is not None else 0

    def report(self) -> CandidateReport:
        acc = self.plan.pairs[self.candidate]
        t = self.traffic
        span = t.last - t.first
        per_day = t.records / span * DAY_S if t.records > 1 and span > 0 else None
        label_rate = (t.labelled_records / span if t.labelled_records > 1 and span > 0
                      else None)
        return candidate_report(self.plan, self.candidate, acc, t, per_day, label_rate,
                                full=False)

    def checks(self) -> list[Check]:
        """The candidate's health and guardrail checks for this stage."""
        return list(self.report().verdict.reasons)
