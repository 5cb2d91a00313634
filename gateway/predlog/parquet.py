"""Paired records (joined with their feedback) -> Parquet files, partitioned by deployment and day.

Layout (Hive-style partitions, one directory per UTC day of the record's ``ts``)::

    DIR/deployment=<name>/date=<YYYY-MM-DD>/part-<n>.parquet

One row per (request, row index); a request of several rows is several consecutive rows of one
file, ``row`` 0 first. Columns (``?``: null when unknown):

``request_id``, ``id``?         the request id; the V2 body ``id`` when the caller sent one
``ts``                          request time, Unix seconds (float64; ``to_timestamp(ts)`` in SQL)
``revision``, ``variant``       config revision; who answered: ``champion`` or ``canary``
``bucket``, ``key_hash``?       sticky bucket; digest of the routing key
``rows``, ``row``               the request's row count; this row's index in it
``label``?                      the posted label as text (numbers in their JSON spelling)
``label_value``?                the label as float64 when it is a number (not a boolean)
``label_ts``?, ``label_received``?   feedback times (non-null: feedback was posted)
``outcome.<name>``?             each numeric outcome posted as feedback (float64)
``m.<model>:<version>.status``? ``ok`` | ``error`` | ``timeout`` | ``dropped`` | ...; null: the
                                model did not see the request
``m.<key>.role``?               ``champion`` | ``canary`` | ``shadow``
``m.<key>.latency_ms``?         float64
``m.<key>.label``?              the predicted class name
``m.<key>.score.<class>``?      float64 per class (``score.<j>`` when the record names no classes)
``m.<key>.value``?              models without classes: the first value of the first output
``in.<feature>``?               inputs by the champion card's feature names, when the request
                                had one input tensor of that width
``in.<tensor>.<j>``?            otherwise: element ``j`` of each row of each input tensor

A multi-row request with one label (not one per row) leaves ``label`` null: which row it
belongs to is unknown (the report does the same). Inputs are float32 for FP32/FP16 and small
integer tensors, float64 otherwise.

Columns come and go with the models of the window, so files of one deployment can have
different schemas (a model added later): read them by column name (DuckDB
``union_by_name=true``, Spark ``mergeSchema``). A new column mid-export closes the day's file
and starts the next part.

Export works in whole UTC days: the window is widened to midnights, every day is written under
a hidden temporary directory and swapped in whole when complete (an atomic directory exchange
on Linux), so readers see the old day or the new one, never a mix. A day already archived
with more rows than the stream still holds (retention trimmed it) is kept, not replaced.
Memory is bounded: at most :data:`MAX_OPEN` days are open at once, each buffering at most
one row group (:data:`ROW_GROUP` rows) as Arrow columns.

pyarrow is the writer because it is the reference Parquet implementation (Arrow's C++
library): DuckDB, Spark, BigQuery and pandas all read its files.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from redis.asyncio import Redis

from gateway.predlog.feedback import StoredLabel, get_feedback
from gateway.predlog.reader import DEFAULT_PAGE, ScanStats, iter_pages

log = logging.getLogger(__name__)

LAYOUT_VERSION = "1"
ROW_GROUP = 65_536
MAX_OPEN = 4
COMPRESSION = "zstd"
DAY_S = 86_400
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")  # config's Name: safe in a path

RECORD_TYPES: dict[str, pa.DataType] = {
    "request_id": pa.string(), "id": pa.string(), "ts": pa.float64(),
    "revision": pa.string(), "variant": pa.string(), "bucket": pa.int32(),
    "key_hash": pa.string(), "rows": pa.int32(), "row": pa.int32(),
    "label": pa.string(), "label_value": pa.float64(), "label_ts": pa.float64(),
    "label_received": pa.float64(),
}
MODEL_TYPES: dict[str, pa.DataType] = {
    "status": pa.string(), "role": pa.string(), "latency_ms": pa.float64(),
    "label": pa.string(), "value": pa.float64(),
}
_NARROW = frozenset({"FP32", "FP16", "BF16", "INT8", "INT16", "UINT8", "UINT16", "BOOL"})


def model_column(key: str, name: str) -> str:
    """``m.<model>:<version>.<name>`` (name: status, role, latency_ms, label, value, score.<c>)."""
    return f"m.{key}.{name}"


def input_column(name: str) -> str:
    return f"in.{name}"


def outcome_column(name: str) -> str:
    return f"outcome.{name}"


def column_type(name: str) -> pa.DataType:
    """The Arrow type of a column by its name (inputs: see :func:`input_type`)."""
    if name in RECORD_TYPES:
        return RECORD_TYPES[name]
    if name.startswith("m."):
        tail = name.rsplit(".", 1)[-1]
        if ".score." in name:
            return pa.float64()
        return MODEL_TYPES.get(tail, pa.float64())
    if name.startswith("in."):
        return pa.float32()
    return pa.float64()


def input_type(datatype: str) -> pa.DataType:
    return pa.float32() if datatype in _NARROW else pa.float64()


def day_of(ts: float) -> str:
    """UTC day of a Unix time, ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


def day_path(directory: Path, deployment: str, day: str) -> Path:
    return directory / f"deployment={deployment}" / f"date={day}"


def label_text(label: Any) -> tuple[str | None, float | None]:
    """A label as (text, number): names as given, numbers in their JSON spelling."""
    if label is None:
        return None, None
    if isinstance(label, str):
        return label, None
    if isinstance(label, bool):
        return ("true" if label else "false"), None
    if isinstance(label, int | float):
        return orjson.dumps(label).decode(), float(label)
    return orjson.dumps(label).decode(), None


def first_values(data: Any, rows: int) -> list[float] | None:
    """Per row, the first value of an output tensor's data (flat or nested), as the report
    reads models without classes; None when the data is not one value per row."""
    if not isinstance(data, list):
        return None
    flat = data if data and not isinstance(data[0], list) else [
        v[0] if isinstance(v, list) and v else math.nan for v in data]
    if len(flat) != rows:
        return None
    return [float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan
            for v in flat]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _per_row(data: Any, rows: int) -> list[list[Any]] | None:
    """A tensor's data as ``rows`` lists (nested or flat data), or None."""
    if not isinstance(data, list) or not data:
        return None
    if all(isinstance(v, list) for v in data):
        if len(data) != rows:
            return None
        out = []
        for v in data:  # deeper nesting: flattened per row
            while v and isinstance(v[0], list):
                v = [x for part in v for x in part]
            out.append(v)
        return out
    if len(data) % rows:
        return None
    width = len(data) // rows
    return [data[i * width:(i + 1) * width] for i in range(rows)]


class Rows:
    """Turns joined records into row dicts and remembers each input column's type."""

    def __init__(self, features: Sequence[str] = ()) -> None:
        self.features = tuple(features)
        self._feature_columns = [input_column(f) for f in self.features]
        self.input_types: dict[str, pa.DataType] = {}

    def of(self, record: Mapping[str, Any], stored: Mapping[str, Any] | None
           ) -> list[dict[str, Any]]:
        count = int(record.get("rows") or 0)
        count = count if count > 0 else 1
        base: dict[str, Any] = {
            "request_id": record["request_id"], "id": record.get("id"), "ts": record["ts"],
            "revision": record.get("revision"), "variant": record.get("variant"),
            "bucket": record.get("bucket"), "key_hash": record.get("key_hash"), "rows": count}
        labels: list[Any] = [None] * count
        if stored is not None:
            base["label_ts"] = _number(stored.get("ts")) or 0.0
            base["label_received"] = _number(stored.get("received")) or 0.0
            outcomes = stored.get("outcomes")
            for name, value in (outcomes.items() if isinstance(outcomes, dict) else ()):
                number = _number(value)
                if number is not None:
                    base[outcome_column(name)] = number
            label = stored.get("label")
            if isinstance(label, list):
                if len(label) == count:
                    labels = label
            elif count == 1:
                labels = [label]
        rows = []
        for i in range(count):
            row = dict(base)
            row["row"] = i
            row["label"], row["label_value"] = label_text(labels[i])
            rows.append(row)
        for p in record.get("predictions") or ():
            self._model(rows, p, count)
        inputs = record.get("inputs")
        if isinstance(inputs, dict):
            self._inputs(rows, inputs, count)
        return rows

    def _model(self, rows: list[dict[str, Any]], p: Mapping[str, Any], count: int) -> None:
        key = f"{p.get('model')}:{p.get('version')}"
        head = {model_column(key, "status"): p.get("status"),
                model_column(key, "role"): p.get("role"),
                model_column(key, "latency_ms"): _number(p.get("latency_ms"))}
        for row in rows:
            row.update(head)
        output = p.get("output")
        if not isinstance(output, dict):
            return
        labels = output.get("label")
        if isinstance(labels, list):
            if len(labels) == count:
                column = model_column(key, "label")
                for row, label in zip(rows, labels, strict=True):
                    row[column] = label_text(label)[0]
            scores = output.get("scores")
            if isinstance(scores, list) and len(scores) == count:
                classes = output.get("classes")
                for row, values in zip(rows, scores, strict=True):
                    if not isinstance(values, list):
                        continue
                    names = (classes if isinstance(classes, list) and len(classes) == len(values)
                             else range(len(values)))
                    for name, value in zip(names, values, strict=True):
                        row[model_column(key, f"score.{name}")] = _number(value)
            return
        tensors = output.get("tensors")
        if isinstance(tensors, dict) and tensors:
            first = next(iter(tensors.values()))
            values = first_values(first.get("data") if isinstance(first, dict) else None, count)
            if values is not None:
                column = model_column(key, "value")
                for row, value in zip(rows, values, strict=True):
                    row[column] = value

    def _inputs(self, rows: list[dict[str, Any]], inputs: dict[str, Any], count: int) -> None:
        named = len(inputs) == 1 and bool(self.features)
        for name, tensor in inputs.items():
            if not isinstance(tensor, dict) or tensor.get("datatype") == "BYTES":
                continue
            per_row = _per_row(tensor.get("data"), count)
            if per_row is None:
                continue
            shape = tensor.get("shape")
            width = len(per_row[0]) if per_row else 0
            if (named and isinstance(shape, list) and shape == [count, len(self.features)]
                    and width == len(self.features)):
                columns = self._feature_columns
            else:
                columns = [input_column(f"{name}.{j}") for j in range(width)]
            kind = input_type(str(tensor.get("datatype")))
            for column in columns:
                known = self.input_types.get(column)
                if known is None or (known != kind and kind == pa.float64()):
                    self.input_types[column] = kind
            for row, values in zip(rows, per_row, strict=True):
                if len(values) == width:
                    row.update(zip(columns, map(_number, values), strict=True))

    def table(self, rows: list[dict[str, Any]]) -> pa.Table:
        """Rows as an Arrow table, missing cells null; columns in the documented order (record,
        feedback, outcomes, models, inputs), first seen first within each group."""
        names = sorted(dict.fromkeys(name for row in rows for name in row), key=_rank)
        schema = pa.schema([(n, self.input_types.get(n) or column_type(n)) for n in names])
        return pa.Table.from_pylist(rows, schema=schema)


_FIXED = {name: i for i, name in enumerate(RECORD_TYPES)}
_GROUPS = ("outcome.", "m.", "in.")


def _rank(name: str) -> tuple[int, int]:
    if name in _FIXED:
        return 0, _FIXED[name]
    return next((1 + i for i, prefix in enumerate(_GROUPS) if name.startswith(prefix)), 9), 0


@dataclass
class DayStats:
    rows: int = 0
    parts: int = 0


class _Day:
    """One day's files under the temporary directory: a buffer of Arrow tables and the part
    being written."""

    def __init__(self, directory: Path, row_group: int) -> None:
        self.directory = directory
        self.row_group = row_group
        self.buffer: list[pa.Table] = []
        self.buffered = 0
        self.writer: pq.ParquetWriter | None = None
        self.stats = DayStats()

    def add(self, table: pa.Table) -> None:
        self.buffer.append(table)
        self.buffered += table.num_rows
        if self.buffered >= self.row_group:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        table = pa.concat_tables(self.buffer, promote_options="permissive")
        self.buffer, self.buffered = [], 0
        if self.writer is not None and not _fits(table.schema, self.writer.schema):
            self.close()
        if self.writer is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"part-{self.stats.parts}.parquet"
            self.stats.parts += 1
            metadata = {b"shadowgate.layout": LAYOUT_VERSION.encode()}
            self.writer = pq.ParquetWriter(path, table.schema.with_metadata(metadata),
                                           compression=COMPRESSION)
        schema = self.writer.schema
        columns = [table.column(f.name) if f.name in table.column_names
                   else pa.nulls(table.num_rows, f.type) for f in schema]
        self.writer.write_table(pa.Table.from_arrays(columns, schema=schema),
                                row_group_size=self.row_group)
        self.stats.rows += table.num_rows

    def close(self) -> None:
        """Flush and close the part (a later record of this day starts the next part)."""
        self.flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _fits(schema: pa.Schema, target: pa.Schema) -> bool:
    """Every column of ``schema`` exists in ``target`` with the same type."""
    index = {f.name: f.type for f in target}
    return all(index.get(f.name) == f.type for f in schema)


@dataclass
class ParquetExport:
    """What an export wrote: records, and per day the rows written or kept."""

    records: int = 0
    written: dict[str, int] = field(default_factory=dict)  # day -> rows now in the archive
    kept: dict[str, int] = field(default_factory=dict)  # day -> rows of the archived day kept


class DayWriter:
    """Writes rows to per-day files under a temporary directory; :meth:`commit` swaps them in."""

    def __init__(self, directory: Path, deployment: str, *, features: Sequence[str] = (),
                 row_group: int = ROW_GROUP, max_open: int = MAX_OPEN) -> None:
        if not NAME.fullmatch(deployment):
            raise ValueError(f"deployment {deployment!r}: expected letters, digits, '_', '.', "
                             "'-' (as in the config)")
        if row_group < 1 or max_open < 1:
            raise ValueError("row_group and max_open must be at least 1")
        self.root = directory / f"deployment={deployment}"
        self.root.mkdir(parents=True, exist_ok=True)
        self.deployment = deployment
        self.temp = self.root / f".export-{os.getpid()}-{secrets.token_hex(4)}"
        self.temp.mkdir()
        self.rows = Rows(features)
        self.row_group, self.max_open = row_group, max_open
        self._open: dict[str, _Day] = {}  # least recently written first
        self._days: dict[str, _Day] = {}

    def add(self, joined: Iterable[tuple[Mapping[str, Any], Mapping[str, Any] | None]]) -> int:
        """Buffer a page of joined records; returns how many."""
        by_day: dict[str, list[dict[str, Any]]] = {}
        count = 0
        for record, stored in joined:
            by_day.setdefault(day_of(record["ts"]), []).extend(
                self.rows.of(record, stored))
            count += 1
        for day, rows in by_day.items():
            self._day(day).add(self.rows.table(rows))
        return count

    def _day(self, day: str) -> _Day:
        found = self._open.pop(day, None)
        if found is None:
            found = self._days.get(day) or _Day(self.temp / f"date={day}", self.row_group)
            self._days[day] = found
            while len(self._open) >= self.max_open:
                oldest = next(iter(self._open))
                self._open.pop(oldest).close()
        self._open[day] = found  # most recently written last
        return found

    def commit(self) -> ParquetExport:
        """Close every file and swap each day in (see the module docstring)."""
        for day in self._open.values():
            day.close()
        self._open.clear()
        result = ParquetExport()
        for name, day in sorted(self._days.items()):
            if not day.stats.rows:
                continue
            target = self.root / f"date={name}"
            existing = archived_rows(target)
            if existing > day.stats.rows:
                log.warning("export %s: kept the archived %s (%d rows); the stream now holds "
                            "%d of its rows", self.deployment, name, existing, day.stats.rows)
                result.kept[name] = existing
                continue
            replace_dir(day.directory, target)
            result.written[name] = day.stats.rows
        self.discard()
        return result

    def discard(self) -> None:
        """Drop what is not committed (also after an error)."""
        for day in self._open.values():
            with contextlib.suppress(Exception):  # closing a broken file on the way out
                day.close()
        self._open.clear()
        shutil.rmtree(self.temp, ignore_errors=True)


def archived_rows(directory: Path) -> int:
    """Rows in a day's Parquet files (from their footers); 0 when there is none."""
    if not directory.is_dir():
        return 0
    return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(directory.glob("*.parquet")))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(result == 0)


def replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``, atomically where the system allows; the old one is deleted."""
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # the old day, now under the temporary name
        return
    old = new.with_name(new.name + ".old")  # a reader listing in between sees no day
    os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)


def whole_days(since: float | None, until: float | None) -> tuple[float | None, float | None]:
    """The window widened to UTC midnights (the unit of a Parquet export)."""
    start = None if since is None else math.floor(since / DAY_S) * DAY_S
    end = None if until is None else math.ceil(until / DAY_S) * DAY_S
    return start, end


async def joined_page(redis: Redis, deployment: str, records: Sequence[Mapping[str, Any]]
                      ) -> list[tuple[Mapping[str, Any], StoredLabel | None]]:
    """Each record with its feedback, found by request id or else by the V2 body ``id`` (one
    HMGET per page, then one for the ids still without feedback), as the report joins them."""
    found: dict[str, StoredLabel] = await get_feedback(
        redis, deployment, (r["request_id"] for r in records))
    by_v2 = [r["id"] for r in records if r.get("id") and r["request_id"] not in found]
    if by_v2:
        found.update(await get_feedback(redis, deployment, by_v2))
    out: list[tuple[Mapping[str, Any], StoredLabel | None]] = []
    for record in records:
        stored = found.get(record["request_id"])
        if stored is None and record.get("id") is not None:
            stored = found.get(record["id"])
        out.append((record, stored))
    return out


async def export_parquet(redis: Redis, deployment: str, directory: Path, *,
                         since: float | None, until: float | None,
                         features: Sequence[str] = (), page: int = DEFAULT_PAGE,
                         row_group: int = ROW_GROUP, stats: ScanStats | None = None
                         ) -> ParquetExport:
    """Export the whole UTC days of ``[since, until)`` (None: open) under ``directory``.

    ``features``: the champion card's feature names, for ``in.<feature>`` columns; ``page``:
    stream entries read at once; ``stats`` (optional) receives the scan's counters.
    """
    since, until = whole_days(since, until)
    writer = DayWriter(directory, deployment, features=features, row_group=row_group)
    records = 0
    try:
        async for page_records in iter_pages(redis, deployment, since=since, until=until,
                                             page=page, stats=stats):
            if page_records:
                records += writer.add(await joined_page(
                    redis, deployment, cast(list[Mapping[str, Any]], page_records)))
        result = writer.commit()
    finally:
        writer.discard()
    result.records = records
    return result
