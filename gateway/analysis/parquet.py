"""Reports over the Parquet archive: ParquetSource reads a deployment's files into the same
Batches as the Redis stream (gateway/analysis/sources.py), so the statistics cannot tell them
apart.

The files are those ``shadowgate export --format parquet`` writes (layout and columns:
gateway/predlog/parquet.py). The days of the window are picked from the directory names; one
DuckDB query then reads only the columns the report needs, by name across files whose schemas
differ (``union_by_name``: a model added later is null in older files), filtered on ``ts``
(``since <= ts < until``) in the scan, and turns them into the Batch's codes in SQL: statuses,
roles and labels become small integers, scores and inputs fixed-size float32 arrays, so that
no string and no per-row Python object crosses into the report. Batches are large
(:data:`BATCH_ROWS` rows) so that per-batch costs vanish; memory holds a few of them.

Each request is read once: the exporter wrote each request id once (its day's files are
replaced whole), so unlike the stream there is nothing to count twice and no set of ids to hold.

Engine: DuckDB, over pyarrow.dataset. Measured on 10M generated records (5 days, 62 columns,
2 GB of zstd files; loadtests/report_bench.py) on a shared 2-core machine, both engines feeding
the same Arrow-to-Batch code: reading and converting took 17 s of CPU with DuckDB and 18 s with
pyarrow (the scan alone 9.7 s and 12.2 s; the 30 input columns of one day 1.1 s and 3.1 s), and
the whole report 40 s and 45 s; but the pyarrow scanner reads ahead of a slow consumer, and the
report peaked at 2.2 GB RSS with it (over the 2 GB bar) against 0.67 GB with DuckDB. DuckDB
also brings union by name, the ``ts`` filter pushed into the scan, and SQL that turns strings
into codes inside the engine, on its threads: less Python per batch, no code of ours for any of
it. The files stay plain Parquet written by pyarrow, for any other engine.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gateway.analysis.batch import (
    CANARY,
    CHAMPION,
    ROLE_CODES,
    STATUS_CODES,
    Batch,
    ModelColumns,
)
from gateway.analysis.decode import Layout
from gateway.analysis.document import Report
from gateway.analysis.plan import card_of, plan_for
from gateway.analysis.sources import SourceStats, no_cyclic_gc
from gateway.config.load import LoadedConfig
from gateway.predlog.parquet import day_of, input_column, model_column, outcome_column

BATCH_ROWS = 65_536
_DAY = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_NAN = "'NaN'::FLOAT"
_UNKNOWN = -1  # a status not in STATUS_CODES: the model was there (ABSENT only for null)


def day_files(directory: Path, deployment: str, since: float | None, until: float | None
              ) -> list[Path]:
    """The Parquet files of the days that overlap ``[since, until)``, oldest day first."""
    root = Path(directory) / f"deployment={deployment}"
    first = None if since is None else day_of(since)
    last = None if until is None else day_of(until)  # inclusive: until may fall mid-day
    out: list[Path] = []
    if not root.is_dir():
        return out
    for entry in sorted(root.iterdir()):
        match = _DAY.match(entry.name)
        if match is None or not entry.is_dir():
            continue
        day = match.group(1)
        if (first is not None and day < first) or (last is not None and day > last):
            continue
        out.extend(sorted(entry.glob("*.parquet"), key=_part_number))
    return out


def _part_number(path: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", path.stem)
    return (int(digits[-1]) if digits else 0, path.name)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _case(column: str, codes: dict[str, int], other: int, null: int, sql_type: str) -> str:
    """SQL mapping a string column to codes: ``other`` for unknown strings, ``null`` for null."""
    whens = " ".join(f"WHEN {_text(k)} THEN {v}" for k, v in codes.items())
    return (f"(CASE WHEN {_q(column)} IS NULL THEN {null} "
            f"ELSE (CASE {_q(column)} {whens} ELSE {other} END) END)::{sql_type}")


def _floats(columns: Sequence[str | None]) -> str:
    """SQL for a FLOAT[n] array of the columns (NaN for nulls and absent columns)."""
    items = [f"coalesce({_q(c)}::FLOAT, {_NAN})" if c else _NAN for c in columns]
    return f"[{', '.join(items)}]::FLOAT[{len(items)}]"


@dataclass
class Query:
    """The SELECT that turns the archive's columns into a Batch's, for one layout."""

    select: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)  # layout outcome of column o<i>
    models: list[str] = field(default_factory=list)  # model key of columns s<i>, r<i>, ...
    inputs: bool = False
    keys: bool = False  # the routing-key hashes as text (Batch.keys), for canary splits

    @classmethod
    def plan(cls, schema: pa.Schema, layout: Layout, features: Sequence[str],
             keys: bool = True) -> Query:
        names = set(schema.names)

        def have(name: str) -> str | None:
            return name if name in names else None

        classes = {c: i for i, c in enumerate(layout.classes)}
        k = len(layout.classes)
        q = cls()
        q.select = [
            "ts", f"(CASE WHEN variant = 'canary' THEN {CANARY} ELSE {CHAMPION} END)::TINYINT"
            " AS variant",
            "coalesce(bucket, 0)::INTEGER AS bucket", "(key_hash IS NOT NULL) AS has_key",
            "coalesce(rows, 1)::INTEGER AS rows", "row::INTEGER AS row",
            "label_received::DOUBLE AS label_received" if have("label_received") else
            "NULL::DOUBLE AS label_received",
            "coalesce(label_ts, 0)::DOUBLE AS label_ts" if have("label_ts") else
            "0::DOUBLE AS label_ts"]
        value = "label_value" if have("label_value") else "NULL::DOUBLE"
        if not have("label"):
            q.select.append("-1::SMALLINT AS truth" if k else "NULL::DOUBLE AS truth_value")
        elif k:  # a label posted as an integer is a class index, as the stream reader reads it
            q.select.append(
                "(CASE WHEN label IS NULL THEN -1 ELSE (CASE label "
                + " ".join(f"WHEN {_text(c)} THEN {i}" for c, i in classes.items())
                + f" ELSE (CASE WHEN {value} >= 0 AND {value} < {k} AND "
                f"regexp_full_match(label, '-?[0-9]+') THEN {value} ELSE -1 END) END) END)"
                "::SMALLINT AS truth")
        else:
            q.select.append(f"{value}::DOUBLE AS truth_value")
        for name in layout.outcomes:
            column = have(outcome_column(name))
            if column is not None:
                q.select.append(f"{_q(column)}::DOUBLE AS o{len(q.outcomes)}")
                q.outcomes.append(name)
        if keys:
            q.select.append("key_hash")
            q.keys = True
        inputs = _inputs(names, features, layout.features)
        if inputs:
            q.select.append(f"{_floats(inputs)} AS inputs")
            q.inputs = True
        for name in schema.names:
            if not (name.startswith("m.") and name.endswith(".status")):
                continue
            key = name[2:-len(".status")]
            i = len(q.models)
            q.models.append(key)
            role = have(model_column(key, "role"))
            latency = have(model_column(key, "latency_ms"))
            label = have(model_column(key, "label"))
            values = have(model_column(key, "value"))
            q.select += [
                f"{_case(name, STATUS_CODES, _UNKNOWN, 0, 'TINYINT')} AS s{i}",
                (f"{_case(role, ROLE_CODES, 0, 0, 'TINYINT')} AS r{i}" if role else
                 f"0::TINYINT AS r{i}"),
                f"coalesce({_q(latency)}::FLOAT, {_NAN}) AS l{i}" if latency else
                f"{_NAN} AS l{i}",
                f"{_case(label, classes, -1, -1, 'SMALLINT')} AS p{i}" if label and k else
                f"-1::SMALLINT AS p{i}",
                f"{_q(values)}::DOUBLE AS v{i}" if values else f"NULL::DOUBLE AS v{i}"]
            if k:
                scores = [have(model_column(key, f"score.{c}")) or
                          have(model_column(key, f"score.{j}")) for j, c in
                          enumerate(layout.classes)]
                q.select.append(f"{_floats(scores)} AS c{i}")
        return q


def _inputs(names: set[str], features: Sequence[str], width: int) -> list[str]:
    """The input columns, in the layout's order: ``in.<feature>`` by the champion card's
    names, else the ``in.<tensor>.<j>`` of the only tensor when it has ``width`` columns."""
    if not width:
        return []
    named = [input_column(f) for f in features]
    if len(named) == width and all(c in names for c in named):
        return named
    tensors = {n[3:].rsplit(".", 1)[0] for n in names
               if n.startswith("in.") and n.rsplit(".", 1)[-1].isdigit()}
    if len(tensors) != 1:
        return []
    tensor = tensors.pop()
    columns = [input_column(f"{tensor}.{j}") for j in range(width + 1)]
    if all(c in names for c in columns[:width]) and columns[width] not in names:
        return columns[:width]
    return []


def _numpy(rb: pa.RecordBatch, name: str, dtype: type[np.generic]) -> np.ndarray:
    """A column as numpy (NaN for null floats), writable like the stream reader's."""
    return np.require(rb.column(name).to_numpy(zero_copy_only=False), dtype, "W")


def _matrix(rb: pa.RecordBatch, name: str, width: int) -> np.ndarray:
    """A FLOAT[width] column as an [n, width] float32 array."""
    values = rb.column(name).flatten().to_numpy(zero_copy_only=False)
    return np.require(values, np.float32, "W").reshape(rb.num_rows, width)


def to_batch(rb: pa.RecordBatch, query: Query, layout: Layout) -> Batch:
    """One Arrow batch of the query's columns, whole records only, as a Batch."""
    n = rb.num_rows
    first = _numpy(rb, "row", np.int32) == 0
    starts = np.flatnonzero(first)
    whole = len(starts) == n  # one row per request: record and row columns coincide

    def rec_level(name: str, dtype: type[np.generic]) -> np.ndarray:
        values = _numpy(rb, name, dtype)
        return values if whole else values[starts]

    ts = rec_level("ts", np.float64)
    received = rec_level("label_received", np.float64)
    received = np.where(received != 0, received, rec_level("label_ts", np.float64))
    k = len(layout.classes)
    batch = Batch(
        ts=ts, variant=rec_level("variant", np.int8), bucket=rec_level("bucket", np.int32),
        has_key=rec_level("has_key", np.bool_),
        label_delay_s=received - ts,  # NaN without feedback (label_received is null)
        outcomes={name: np.full(len(starts), np.nan) for name in layout.outcomes},
        rec=(np.cumsum(first) - 1).astype(np.int32),
        truth=_numpy(rb, "truth", np.int16) if k else np.full(n, -1, np.int16),
        truth_value=np.full(n, np.nan) if k else _numpy(rb, "truth_value", np.float64),
        inputs=(_matrix(rb, "inputs", layout.features) if query.inputs else
                np.full((n, layout.features), np.nan, np.float32)))
    if query.keys:
        hashes = rb.column("key_hash")
        batch.keys = hashes.to_pylist() if whole else hashes.take(starts).to_pylist()
    for i, name in enumerate(query.outcomes):
        batch.outcomes[name] = rec_level(f"o{i}", np.float64)
    for i, key in enumerate(query.models):
        status = rec_level(f"s{i}", np.int8)
        present = status != 0
        if not present.any():
            continue  # not in these records: the stream's batches would not name it either
        status[status == _UNKNOWN] = 0  # as the stream reader codes a status it does not know
        batch.models[key] = ModelColumns(
            status=status, role=rec_level(f"r{i}", np.int8),
            latency_ms=rec_level(f"l{i}", np.float32), pred=_numpy(rb, f"p{i}", np.int16),
            scores=_matrix(rb, f"c{i}", k) if k else np.full((n, 0), np.nan, np.float32),
            value=_numpy(rb, f"v{i}", np.float64))
    return batch


def whole_records(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Re-cut batches so that no request's rows are split between two of them (its rows are
    consecutive, ``row`` 0 first)."""
    carry: pa.RecordBatch | None = None
    for rb in batches:
        if carry is not None:
            rb = pa.Table.from_batches([carry, rb]).combine_chunks().to_batches()[0]
            carry = None
        if rb.num_rows == 0:
            continue
        firsts = np.flatnonzero(_numpy(rb, "row", np.int32) == 0)
        last = int(firsts[-1]) if len(firsts) else 0
        if rb.num_rows - last < int(rb.column("rows")[last].as_py() or 1):
            carry = rb.slice(last)
            rb = rb.slice(0, last)
        if rb.num_rows:
            yield rb
    if carry is not None and carry.num_rows:
        yield carry


class ParquetSource:
    """A deployment's records in a Parquet archive directory (see the module docstring).

    ``features``: the champion card's feature names (the ``in.<feature>`` columns; without
    them the report gets no inputs); ``keys``: give the batches their routing-key hashes
    (Python strings, a cost per record that only canary splits need); ``threads``: DuckDB's
    (default: one per core).
    """

    name = "parquet"

    def __init__(self, directory: Path | str, deployment: str, *, since: float | None,
                 until: float | None, features: Sequence[str] = (), keys: bool = True,
                 batch_rows: int = BATCH_ROWS, threads: int | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        self.directory = Path(directory)
        self.deployment = deployment
        self.since, self.until = since, until
        self.features = tuple(features)
        self.keys = keys
        self.batch_rows, self.threads = batch_rows, threads
        self.progress = progress
        self.stats = SourceStats()

    def files(self) -> list[Path]:
        return day_files(self.directory, self.deployment, self.since, self.until)

    async def batches(self, layout: Layout) -> AsyncIterator[Batch]:
        files = self.files()
        self.stats.extra["files"] = len(files)
        if not files:
            return
        schema = pa.unify_schemas([pq.read_schema(f) for f in files],
                                  promote_options="permissive")
        query = Query.plan(schema, layout, self.features, self.keys)
        for rb in whole_records(self._scan(files, query)):
            with no_cyclic_gc():
                batch = to_batch(rb, query, layout)
            self.stats.entries += batch.records
            self.stats.records += batch.records
            if self.progress is not None:
                self.progress(batch.rows)
            yield batch

    def _scan(self, files: list[Path], query: Query) -> Iterator[pa.RecordBatch]:
        import duckdb

        config: dict[str, Any] = {"preserve_insertion_order": True}  # rows of a request together
        if self.threads:
            config["threads"] = self.threads
        terms, params = [], []
        if self.since is not None:
            terms.append("ts >= ?")
            params.append(self.since)
        if self.until is not None:
            terms.append("ts < ?")
            params.append(self.until)
        where = f" WHERE {' AND '.join(terms)}" if terms else ""
        con = duckdb.connect(config=config)
        try:
            relation: Any = con.sql(
                f"SELECT {', '.join(query.select)} FROM read_parquet(?, union_by_name=true, "
                "hive_partitioning=false)"
                f"{where}", params=[[str(f) for f in files], *params])
            # to_arrow_reader: DuckDB 2.0's name for what 1.x called fetch_record_batch
            reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
            yield from reader(self.batch_rows)
        finally:
            con.close()


def champion_features(loaded: LoadedConfig, deployment: str) -> tuple[str, ...]:
    """The feature names of the deployment's champion card (the ``in.<feature>`` columns);
    raises KeyError for a deployment not in the config."""
    plan = plan_for(loaded, deployment)
    return tuple(str(f) for f in card_of(loaded, plan.champion).get("features") or ())


def parquet_source(loaded: LoadedConfig, directory: Path | str, deployment: str, *,
                   since: float | None, until: float | None,
                   progress: Callable[[int], None] | None = None) -> ParquetSource:
    """The source for ``shadowgate report --parquet DIR``: raises ValueError when ``directory``
    holds no archive of ``deployment``, KeyError for a deployment not in the config."""
    features = champion_features(loaded, deployment)
    canaries = bool(plan_for(loaded, deployment).canary_weights)
    root = Path(directory) / f"deployment={deployment}"
    if not root.is_dir():
        raise ValueError(f"{directory}: no Parquet archive of {deployment!r} (expected "
                         f"{root}/date=YYYY-MM-DD/*.parquet, as `shadowgate export --format "
                         "parquet` writes)")
    return ParquetSource(directory, deployment, since=since, until=until, features=features,
                         keys=canaries, progress=progress)


def archived_rows(files: Sequence[Path]) -> int:
    """Rows in the files, from their footers (for a progress bar's total)."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


async def report_from_parquet(loaded: LoadedConfig, deployment: str, directory: Path | str, *,
                              since: float | None, until: float | None,
                              candidate: str | None = None, progress: bool = False,
                              now: float | None = None) -> Report:
    """The report of ``deployment`` over its Parquet archive under ``directory``;
    ``progress`` shows a bar on stderr (a terminal only) when reading takes over a second.
    Raises ValueError when there is no archive of the deployment there."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    from gateway.analysis.report import build_report
    from gateway.analysis.run import PROGRESS_DELAY_S

    source = parquet_source(loaded, directory, deployment, since=since, until=until)
    bar = None
    if progress and sys.stderr.isatty():
        bar = tqdm(total=archived_rows(source.files()), unit="row", file=sys.stderr,
                   delay=PROGRESS_DELAY_S, desc=f"reading {deployment}")
        source.progress = bar.update
    try:
        return await build_report(loaded, deployment, source, since=since, until=until,
                                  candidate=candidate, now=now)
    finally:
        if bar is not None:
            bar.close()
