"""gateway/inferstats.py: Triton's statistics from plain numbers, its nv_inference_* metric
families at scrape time (exact names), and real gauges under multiprocess mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.inferstats import FAMILIES, ModelStats, StatsBook
from tests.helpers import ROOT


def test_requests_and_batches_add_up_as_triton_counts_them() -> None:
    stats = ModelStats("m", "1")
    stats.succeeded(rows=3, duration_s=0.002, compute_s=0.0005)
    stats.failed(0.001)
    stats.executed(ok=4, failed=1, rows=7, compute_s=0.001)  # one micro-batch of 5 requests
    got = stats.as_triton()
    assert (got["name"], got["version"]) == ("m", "1")
    assert (got["inference_count"], got["execution_count"]) == (10, 2)
    inference = got["inference_stats"]
    assert inference["success"] == {"count": 5, "ns": 2_000_000 + 4 * 1_000_000}
    assert inference["fail"] == {"count": 2, "ns": 1_000_000 + 1_000_000}
    assert inference["compute_infer"] == {"count": 5, "ns": 500_000 + 4 * 1_000_000}
    assert inference["queue"] == {"count": 5, "ns": 0}
    assert got["last_inference"] > 0 and got["batch_stats"] == []


def test_the_collector_exposes_triton_names_untouched() -> None:
    registry = CollectorRegistry()
    book = StatsBook(registry, multiprocess=False)
    book.get("bc-logreg", "1").succeeded(2, 0.001, 0.0004)
    book.get("breast-cancer", "").failed(0.003)
    text = generate_latest(registry).decode()
    assert 'nv_inference_request_success{model="bc-logreg",version="1"} 1.0' in text
    assert 'nv_inference_request_failure{model="breast-cancer",version=""} 1.0' in text
    assert 'nv_inference_count{model="bc-logreg",version="1"} 2.0' in text
    assert 'nv_inference_request_duration_us{model="bc-logreg",version="1"} 1000.0' in text
    assert "_total" not in text  # Triton's names, as its dashboards query them
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {name for name, _, _ in FAMILIES} <= families
    assert book.get("bc-logreg", "1") is book.get("bc-logreg", "1")


SCRIPT = """
import json, sys
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from gateway.inferstats import CountedStats, StatsBook

stats = StatsBook(CollectorRegistry(), multiprocess=True).get("bc-logreg", "1")
assert isinstance(stats, CountedStats)
stats.succeeded(3, 0.002, 0.001)
stats.executed(2, 1, 5, 0.001)
stats.failed(0.001)
merged = CollectorRegistry()
MultiProcessCollector(merged, sys.argv[1])
text = generate_latest(merged).decode()
print(json.dumps({s.name: s.value for f in text_string_to_metric_families(text)
                  for s in f.samples if s.labels.get("model") == "bc-logreg"}))
"""


def test_multiprocess_mode_falls_back_to_gauges_summed_over_processes(tmp_path: Path) -> None:
    # prometheus_client picks its value class at import: a process of its own.
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT,
                          env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=60, check=True)
    values = json.loads(done.stdout)
    assert values["nv_inference_request_success"] == 3
    assert values["nv_inference_request_failure"] == 2
    assert values["nv_inference_count"] == 8
    assert values["nv_inference_exec_count"] == 2
    assert values["nv_inference_request_duration_us"] == pytest.approx(4000)
