from __future__ import annotations

import json
from pathlib import Path

import orjson

from gateway.analysis.document import SCHEMA, Report
from gateway.reports import render
from gateway.reports.json import SCHEMA_PATH, schema_text

ROOT = Path(__file__).resolve().parents[2]


def test_json_round_trips_with_the_schema_name(sample: Report) -> None:
    text = render(sample, "json")
    data = orjson.loads(text)
    assert data["schema"] == SCHEMA == "shadowgate.report/1"
    assert Report.model_validate_json(text) == sample


def test_committed_schema_is_current() -> None:
    committed = (ROOT / SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == schema_text(), (
        "docs/report-schema.json is stale: run python -m gateway.reports.json "
        "docs/report-schema.json and commit it")


def test_schema_describes_every_top_level_field(sample: Report) -> None:
    schema = json.loads(schema_text())
    emitted = set(orjson.loads(render(sample, "json")))
    assert emitted == set(schema["properties"])
    assert schema["additionalProperties"] is False
