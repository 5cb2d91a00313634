from __future__ import annotations

from pathlib import Path

import pytest

from gateway.metrics import Metrics
from gateway.predlog.spool import Spool


def frames(start: int, n: int) -> list[bytes]:
    return [b'{"i":%d,"pad":"%s"}' % (i, b"x" * 50) for i in range(start, start + n)]


def dropped(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "shadowgate_predlog_records_dropped_total", {"reason": reason})
    return value or 0.0


def drain(spool: Spool, chunk: int = 1000) -> list[bytes]:
    out = []
    while (c := spool.read_chunk(chunk)) is not None:
        out += c.frames
        spool.commit(c)
    return out


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def segments(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("seg-*.log"))


def test_append_then_replay_in_order_and_delete(tmp_path: Path, metrics: Metrics) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, metrics=metrics)
    spool.append(frames(0, 3))
    spool.append(frames(3, 2))
    assert spool.bytes_held() > 0
    assert metrics.registry.get_sample_value("shadowgate_predlog_spool_bytes") == spool.bytes_held()
    assert drain(spool) == frames(0, 5)
    assert spool.bytes_held() == 0
    assert segments(tmp_path) == []
    assert metrics.registry.get_sample_value("shadowgate_predlog_spool_bytes") == 0
    spool.close()


def test_rotates_by_size_and_replays_in_chunks(tmp_path: Path, metrics: Metrics) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=500, metrics=metrics)
    for i in range(10):
        spool.append(frames(i * 4, 4))
    assert len(segments(tmp_path)) >= 4
    assert drain(spool, chunk=3) == frames(0, 40)
    assert segments(tmp_path) == []
    spool.close()


def test_cap_deletes_oldest_and_counts_the_loss(tmp_path: Path, metrics: Metrics) -> None:
    spool = Spool(tmp_path, max_bytes=2000, segment_bytes=500, metrics=metrics)
    for i in range(20):
        spool.append(frames(i * 4, 4))
        assert spool.bytes_held() <= 2000
    kept = drain(spool)
    lost = dropped(metrics, "spool_full")
    assert lost > 0
    assert len(kept) + lost == 80
    assert kept == frames(80 - len(kept), len(kept))  # the newest survive
    spool.close()


def test_torn_last_line_is_skipped_and_counted(tmp_path: Path, metrics: Metrics) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, metrics=metrics)
    spool.append(frames(0, 3))
    spool.close()
    with open(tmp_path / segments(tmp_path)[0], "ab") as f:
        f.write(b'{"i":3,"pa')  # a crash in the middle of an append
    spool = Spool(tmp_path, max_bytes=1 << 20, metrics=metrics)
    assert drain(spool) == frames(0, 3)
    assert dropped(metrics, "spool_corrupt") == 1
    spool.close()


def test_a_new_process_picks_up_and_resumes_where_replay_stopped(
    tmp_path: Path, metrics: Metrics
) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, metrics=metrics)
    spool.append(frames(0, 5))
    chunk = spool.read_chunk(2)
    assert chunk is not None and chunk.frames == frames(0, 2)
    spool.commit(chunk)
    spool.close()

    spool = Spool(tmp_path, max_bytes=1 << 20, metrics=metrics)
    assert spool.bytes_held() > 0
    spool.append(frames(5, 1))  # goes to a new segment, after the old one
    assert drain(spool) == frames(2, 4)
    spool.close()


def test_uncertain_windows_and_attempts_survive_a_restart(tmp_path: Path, metrics: Metrics) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, metrics=metrics)
    spool.append(frames(0, 2), uncertain=(100, 200))
    spool.append(frames(2, 2))
    chunk = spool.read_chunk(1)
    assert chunk is not None
    assert chunk.frames == frames(0, 2)  # an uncertain group is never split
    assert chunk.windows == [(100, 200)]
    spool.begin_attempt(chunk, (300, 400))
    spool.close()

    spool = Spool(tmp_path, max_bytes=1 << 20, metrics=metrics)
    chunk = spool.read_chunk(1)
    assert chunk is not None
    assert chunk.windows == [(300, 400), (100, 200)]
    assert chunk.attempts == [(300, 400)]
    spool.commit(chunk)
    chunk = spool.read_chunk(10)
    assert chunk is not None and chunk.frames == frames(2, 2) and chunk.windows == []
    spool.close()


def test_one_process_per_directory(tmp_path: Path, metrics: Metrics) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, metrics=metrics)
    with pytest.raises(RuntimeError, match="in use"):
        Spool(tmp_path, max_bytes=1 << 20, metrics=Metrics())
    spool.close()


def test_chunks_span_read_blocks_and_keep_uncertain_groups_whole(
        tmp_path: Path, metrics: Metrics) -> None:
    # Records of ~10 KB: a chunk of 40 spans several read blocks, and a block boundary falls
    # inside records; an uncertain group is never split between two chunks.
    big = [b'{"i":%d,"pad":"%s"}' % (i, b"y" * (10_000 + i)) for i in range(120)]
    spool = Spool(tmp_path, max_bytes=1 << 30, metrics=metrics)
    spool.append(big[:50])
    spool.append(big[50:95], uncertain=(1, 2))
    spool.append(big[95:])
    sizes, out = [], []
    while (chunk := spool.read_chunk(40)) is not None:
        sizes.append((len(chunk.frames), chunk.windows))
        out += chunk.frames
        spool.commit(chunk)
    assert out == big
    assert sizes == [(40, []), (10 + 45, [(1, 2)]), (25, [])]
    spool.close()
