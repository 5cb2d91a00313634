"""The report as JSON, and its JSON Schema (committed as docs/report-schema.json).

Regenerate the committed schema after changing gateway/analysis/document.py:
``python -m gateway.reports.json docs/report-schema.json`` (a test fails while it is stale).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from gateway.analysis.document import Report

SCHEMA_PATH = Path("docs") / "report-schema.json"


def to_json(report: Report, indent: int | None = None) -> str:
    """The document with its field aliases (``"schema": "shadowgate.report/1"``)."""
    return report.model_dump_json(by_alias=True, indent=indent)


def schema() -> dict[str, Any]:
    return Report.model_json_schema(by_alias=True)


def schema_text() -> str:
    """The JSON Schema as committed: two-space indents, a final newline."""
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stdout.write(schema_text())
        return 0
    Path(args[0]).write_text(schema_text(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
