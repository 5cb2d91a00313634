"""Exporting a deployment's paired records, joined with their labels, as JSONL, CSV or Parquet.

Memory stays bounded: records are read, joined and written one stream page at a time.
JSONL writes each record as logged plus ``"feedback": {"label", "outcomes", "ts"} | null``.
CSV writes one row per (request, row index); text cells that a spreadsheet would run as a
formula get a leading ``'`` (records and labels hold what callers sent). Its columns are
fixed by the first :data:`CSV_SAMPLE` records, because a CSV header cannot grow once
written: a model first seen later gets no columns (counted and logged), and score columns are
named by ``output.classes`` when the record has them, else by class index.
Parquet writes a directory partitioned by deployment and day (gateway/predlog/parquet.py).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TextIO, cast

import orjson
from redis.asyncio import Redis
from tqdm import tqdm  # type: ignore[import-untyped]

from gateway.predlog import keys
from gateway.predlog.feedback import StoredLabel
from gateway.predlog.reader import DEFAULT_PAGE, Joined, ScanStats, iter_joined_pages
from gateway.predlog.record import PairedRecord, Prediction

if TYPE_CHECKING:  # pyarrow is an extra (shadowgate[parquet]): imported when asked for
    from gateway.predlog.parquet import ParquetExport

log = logging.getLogger(__name__)

Format = Literal["jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv")
CSV_SAMPLE = 1000
FIXED_COLUMNS = ("request_id", "ts", "deployment", "revision", "variant", "bucket", "row",
                 "served_model", "served_version")
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_time(text: str, now: float) -> float:
    """Unix seconds from ISO 8601 (``2026-11-20``, ``2026-11-20T10:00:00Z``; naive means UTC)
    or a duration before ``now`` (``30m``, ``24h``, ``7d``); raises ValueError."""
    text = text.strip()
    match = _RELATIVE.fullmatch(text)
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r}: expected an ISO 8601 time (2026-11-20T10:00:00Z) or a "
                         "duration ago (30m, 24h, 7d)") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def iso_utc(ts: float) -> str:
    """``2026-11-20T10:00:00.000Z``; a ts out of datetime's range is written as the number."""
    try:
        return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    except (OverflowError, OSError, ValueError):
        return repr(ts)


def _model_key(p: Prediction) -> str:
    return f"{p['model']}:{p['version']}"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell: numbers stay numbers; text that a spreadsheet would run as a formula
    (starting with = + - @, tab or CR: OWASP's list) gets a leading ``'``."""
    if isinstance(value, bool):
        return "true" if value else "false"  # the JSON spelling, as in the JSONL export
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_START) else value
    if isinstance(value, int | float):
        return value
    return _cell(str(value))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _csv(rows: Iterable[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def _jsonl(batch: Sequence[Joined]) -> str:
    lines = []
    for record, stored in batch:
        feedback = None if stored is None else {
            "label": stored["label"], "outcomes": stored["outcomes"], "ts": stored["ts"]}
        lines.append(orjson.dumps({**record, "feedback": feedback}).decode() + "\n")
    return "".join(lines)


def _writer(out: BinaryIO | TextIO) -> Callable[[str], object]:
    """Text streams take the text as is, binary ones as UTF-8."""
    if isinstance(out, io.TextIOBase):
        return out.write
    binary = cast(BinaryIO, out)
    return lambda chunk: binary.write(chunk.encode())


class _CsvTable:
    """Holds back the first records until they fix the columns, then writes page by page."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self._write = write
        self._pending: list[Joined] = []
        self._classes: dict[str, list[str]] | None = None  # model key -> score class names
        self.unknown_models = 0  # model results left out: the model had no columns

    def feed(self, batch: list[Joined]) -> None:
        if self._classes is not None:
            self._write(_csv(row for joined in batch for row in self._rows(*joined)))
            return
        self._pending += batch
        if len(self._pending) >= CSV_SAMPLE:
            self.flush()

    def flush(self) -> None:
        """Fix the columns now (from what is held back) and write the held-back records."""
        if self._classes is None:
            pending, self._pending = self._pending, []
            self._start(pending[:CSV_SAMPLE])
            self.feed(pending)

    def _start(self, sample: list[Joined]) -> None:
        self._classes = classes = dict[str, list[str]]()
        for record, _ in sample:
            for p in record["predictions"]:
                names = classes.setdefault(_model_key(p), [])
                output = p.get("output") or {}
                if not names and isinstance(output.get("classes"), list):
                    names.extend(str(c) for c in output["classes"])
                for row in _list(output.get("scores")):
                    if isinstance(row, dict):
                        names.extend(str(c) for c in row if str(c) not in names)
                    elif isinstance(row, list) and len(row) > len(names):
                        names.extend(str(j) for j in range(len(names), len(row)))
        header = list(FIXED_COLUMNS)
        for key, names in classes.items():
            header += [f"{key}_status", f"{key}_latency_ms", f"{key}_label"]
            header += [f"{key}_score_{name}" for name in names]
        self._write(_csv([[_cell(c) for c in [*header, "feedback_label"]]]))

    def _rows(self, record: PairedRecord, stored: StoredLabel | None) -> list[list[Any]]:
        assert self._classes is not None
        by_key = {_model_key(p): p for p in record["predictions"]}
        self.unknown_models += len(by_key.keys() - self._classes.keys())
        served = next((p for p in record["predictions"] if p.get("served")), None)
        head = [record["request_id"], iso_utc(record["ts"]), record["deployment"],
                record["revision"], record["variant"], record["bucket"]]
        served_cells = ["", ""] if served is None else [served["model"], served["version"]]
        label = None if stored is None else stored["label"]
        rows = []
        for i in range(max(1, int(record.get("rows") or 0))):
            row = [*head, i, *served_cells]
            for key, names in self._classes.items():
                row += _model_cells(by_key.get(key), i, names)
            rows.append([_cell(v) for v in [*row, label]])
        return rows


def _model_cells(p: Prediction | None, i: int, names: list[str]) -> list[Any]:
    if p is None:
        return [""] * (3 + len(names))
    output = p.get("output") or {}
    labels, scores_rows = _list(output.get("label")), _list(output.get("scores"))
    scores = scores_rows[i] if i < len(scores_rows) else None
    if isinstance(scores, dict):
        score_cells = [scores.get(name, "") for name in names]
    else:
        scores = _list(scores)
        score_cells = [scores[j] if j < len(scores) else "" for j in range(len(names))]
    label = labels[i] if i < len(labels) else ""
    return [p["status"], p["latency_ms"], label, *score_cells]


async def export(
    redis: Redis,
    deployment: str,
    *,
    since: float | None,
    until: float | None,
    fmt: Format,
    out: BinaryIO | TextIO,
    progress: bool,
    page: int = DEFAULT_PAGE,
    stats: ScanStats | None = None,
) -> int:
    """Stream the records with ``since <= ts < until`` to ``out``; returns how many were written.

    ``progress`` shows a tqdm bar on stderr (only when it is a terminal; total = XLEN);
    ``page`` bounds the stream entries held at once; ``stats`` (optional) receives the counters.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    stats = ScanStats() if stats is None else stats
    write = _writer(out)
    table = _CsvTable(write) if fmt == "csv" else None
    bar = None
    if progress and sys.stderr.isatty():
        bar = tqdm(total=await redis.xlen(keys.pairs(deployment)), file=sys.stderr, unit="entry")
    written = shown = 0
    try:
        async for batch in iter_joined_pages(redis, deployment, since=since, until=until,
                                             page=page, stats=stats):
            if table is None:
                write(_jsonl(batch))
            else:
                table.feed(batch)
            written += len(batch)
            if bar is not None:
                bar.update(stats.entries - shown)
                shown = stats.entries
        if table is not None:
            table.flush()
        if bar is not None:  # entries before since - skew were never read, but are done with
            bar.update(max(0, bar.total - bar.n))
    finally:
        if bar is not None:
            bar.close()
    if table is not None and table.unknown_models:
        log.warning("export %s: %d model results had no CSV column (models first seen after "
                    "the first %d records)", deployment, table.unknown_models, CSV_SAMPLE)
    return written


async def _run(url: str, deployment: str, since: float | None, until: float | None, fmt: Format,
               out: BinaryIO) -> int:
    redis = Redis.from_url(url)
    try:
        return await export(redis, deployment, since=since, until=until, fmt=fmt, out=out,
                            progress=True)
    finally:
        await redis.aclose()


def window(since: str | None, until: str | None, now: float) -> tuple[float | None, float | None]:
    """``--since``/``--until`` as Unix seconds; raises ValueError naming the bad one."""
    start = None if since is None else parse_time(since, now)
    end = None if until is None else parse_time(until, now)
    if start is not None and end is not None and start >= end:
        raise ValueError(f"--since ({since}) must be before --until ({until})")
    return start, end


def check_parquet_output(output: str | None) -> Path:
    """The directory a Parquet export writes to; raises ValueError when it cannot be one."""
    if output in (None, "-"):
        raise ValueError("--format parquet writes a directory: give --output DIR")
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--output {output}: exists and is not a directory (--format parquet "
                         "writes a directory of files)")
    return path


def run_parquet_export(url: str, deployment: str, since: str | None, until: str | None,
                       output: str | None, features: Sequence[str] = ()) -> ParquetExport:
    """``export --format parquet``: the whole UTC days of the window under ``output``.

    ``features``: the champion card's feature names (``in.<feature>`` columns). Raises
    ValueError for a bad time, output directory or deployment name.
    """
    from gateway.predlog.parquet import NAME, export_parquet

    start, end = window(since, until, time.time())
    directory = check_parquet_output(output)
    if not NAME.fullmatch(deployment):
        raise ValueError(f"--deployment {deployment!r}: expected letters, digits, '_', '.', '-'")

    async def run() -> ParquetExport:
        redis = Redis.from_url(url)
        try:
            return await export_parquet(redis, deployment, directory, since=start, until=end,
                                        features=features)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def run_export(url: str, deployment: str, since: str | None, until: str | None, fmt: str,
               output: str | None) -> int:
    """Export for the CLI: parse the times, write to ``output`` (None or "-": stdout), return
    the count.

    A file is written under a temporary name and renamed when complete, so a failed export never
    leaves a truncated file behind. Raises ValueError for a bad time or format.
    """
    start, end = window(since, until, time.time())
    if fmt not in FORMATS:
        raise ValueError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    chosen: Format = "csv" if fmt == "csv" else "jsonl"
    if output in (None, "-"):
        sys.stdout.flush()  # text already buffered there must come before our bytes
        count = asyncio.run(_run(url, deployment, start, end, chosen, sys.stdout.buffer))
        sys.stdout.buffer.flush()
        return count
    partial = f"{output}.partial"
    try:
        with open(partial, "wb") as out:
            count = asyncio.run(_run(url, deployment, start, end, chosen, out))
        os.replace(partial, output)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return count
