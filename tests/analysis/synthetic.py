"""Synthetic paired records for report tests: candidates of known quality, seeded.

Records are built as the gateway writes them (encoded JSON, schema v1) and go through the
real decoder, so tests exercise the same path as a report over the Redis stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import orjson

from gateway.analysis.batch import Batch
from gateway.analysis.decode import Feedback, Layout, decode_page, to_batch
from gateway.analysis.sources import SourceStats

CLASSES = ["malignant", "benign"]
CHAMPION = "bc-logreg"


@dataclass
class Candidate:
    """A candidate model: ``flip`` share of the champion's labels flipped (worse), ``fix``
    share of the champion's mistakes corrected (better), ``fail`` share of calls failing,
    ``slow`` latency factor; ``canary`` weight in percent (0: a shadow)."""

    name: str
    flip: float = 0.0
    fix: float = 0.0
    fail: float = 0.0
    slow: float = 1.0
    canary: float = 0.0
    lift: float = 0.0  # relative change of the outcome for its canary users


@dataclass
class World:
    records: int = 2000
    champion_accuracy: float = 0.93
    labelled: float = 1.0  # share of requests with a label
    conversion: float = 0.10  # outcome rate of champion users
    features: int = 30
    start: float = 1_800_000_000.0
    rate: float = 10.0  # requests per second
    candidates: list[Candidate] = field(default_factory=list)
    seed: int = 0


def generate(world: World) -> tuple[list[bytes], dict[str, Feedback]]:
    """Encoded records and the feedback posted for them."""
    rng = np.random.default_rng(world.seed)
    n = world.records
    truth = rng.integers(0, 2, n)
    champ_right = rng.random(n) < world.champion_accuracy
    champ_pred = np.where(champ_right, truth, 1 - truth)
    conf = rng.uniform(0.55, 0.99, n)
    bucket = rng.integers(0, 10_000, n)
    payloads: list[bytes] = []
    feedback: dict[str, Feedback] = {}
    served_by = np.full(n, -1)
    edge = 0
    for j, c in enumerate(world.candidates):
        width = round(c.canary * 100)
        if width:
            served_by[(bucket >= edge) & (bucket < edge + width)] = j
            edge += width
    for i in range(n):
        rid = f"req-{world.seed}-{i}"
        preds = []
        variant = "champion" if served_by[i] < 0 else "canary"
        champ_role = "champion"
        preds.append(_entry(CHAMPION, champ_role, int(champ_pred[i]), conf[i],
                            rng.gamma(4.0, 0.1), "ok"))
        for j, c in enumerate(world.candidates):
            pred = int(champ_pred[i])
            if rng.random() < c.flip:
                pred = 1 - pred
            if pred != truth[i] and rng.random() < c.fix:
                pred = int(truth[i])
            status = "error" if rng.random() < c.fail else "ok"
            role = "canary" if served_by[i] == j else "shadow"
            preds.append(_entry(c.name, role, pred, conf[i], rng.gamma(4.0, 0.1) * c.slow,
                                status))
        if variant == "canary":  # the answering model first, as the gateway writes it
            k = 1 + int(served_by[i])
            preds.insert(0, preds.pop(k))
        record = {
            "v": 1, "request_id": rid, "ts": world.start + i / world.rate,
            "deployment": "breast-cancer", "revision": "r1",
            "key_hash": f"user-{i}" if i % 3 else None,
            "bucket": int(bucket[i]), "variant": variant, "rows": 1, "predictions": preds,
            "inputs": {"input": {"datatype": "FP32", "shape": [1, world.features],
                                 "data": [rng.normal(0, 1, world.features).round(4).tolist()]}},
        }
        payloads.append(orjson.dumps(record))
        lift = world.candidates[served_by[i]].lift if served_by[i] >= 0 else 0.0
        converted = float(rng.random() < world.conversion * (1 + lift))
        if rng.random() < world.labelled:
            feedback[rid] = Feedback(CLASSES[int(truth[i])], {"converted": converted},
                                     world.start + i / world.rate + 60.0)
    return payloads, feedback


def _entry(model: str, role: str, pred: int, conf: float, latency: float,
           status: str) -> dict[str, object]:
    p = float(conf) if pred == 1 else 1 - float(conf)
    ok = status == "ok"
    return {"role": role, "model": model, "version": "1", "served": role != "shadow",
            "status": status, "latency_ms": round(float(latency), 4) if ok else 0.0,
            "error": None if ok else "boom",
            "output": {"label": [CLASSES[pred]], "scores": [[1 - p, p]], "classes": CLASSES}
            if ok else None}


class MemorySource:
    """A Source over encoded records held in memory, paged as the Redis source pages."""

    name = "memory"

    def __init__(self, payloads: list[bytes], feedback: dict[str, Feedback],
                 page: int = 500) -> None:
        self.payloads, self.feedback, self.page = payloads, feedback, page
        self.stats = SourceStats()

    async def batches(self, layout: Layout) -> AsyncIterator[Batch]:
        for start in range(0, len(self.payloads), self.page):
            records, bad = decode_page(self.payloads[start:start + self.page])
            self.stats.undecodable += bad
            self.stats.records += len(records)
            yield to_batch(records, self.feedback, layout)
