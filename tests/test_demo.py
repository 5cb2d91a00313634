"""shadowgate demo: a real gateway and Redis, the bundled rows and labels, a full report."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from gateway.cli import main
from tests.helpers import ROOT


@pytest.mark.slow
def test_demo_writes_a_report_of_both_candidates(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    assert main(["demo", "--config", str(ROOT / "config" / "example.yaml"), "--out", str(out),
                 "--format", "json", "--passes", "2"]) == 0
    report = orjson.loads(out.read_bytes())
    assert report["traffic"]["records"] == report["traffic"]["labelled"] == 286
    assert {v["candidate"] for v in report["verdicts"]} == {"bc-gbt:1", "bc-rf:1"}
    assert report["candidates"][0]["business"]["decision"].startswith("refer for biopsy")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("bc-" in line for line in lines)
