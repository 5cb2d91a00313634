"""Disk spool for records that could not reach Redis: fsynced segments, replayed oldest first.

Layout of the spool directory (one directory per process; a lock file enforces it):

``seg-<20 digits>.log``  segments, appended by one batch per ``fsync``; a new process starts a
                         new segment, so a torn line (crash mid-write) can only end a segment
``cursor.json``          replay progress inside the oldest segment, and the replay attempts of
                         the chunk at that offset whose outcome is unknown

A segment holds one encoded record (orjson bytes, which never contain a raw newline) per line.
A batch whose Redis write may have been applied (its EXEC reply was lost) is preceded by the line
``#u <lo_ms> <hi_ms> <count>``: its records may already sit in the stream with ids in that window,
and replay checks before sending them again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from gateway.metrics import Metrics
from gateway.predlog.redisconn import Window

log = logging.getLogger(__name__)

READ_BLOCK = 1 << 18
MAX_ATTEMPTS_KEPT = 16  # windows of unknown outcome remembered per chunk; older ones are forgotten


@dataclass(frozen=True)
class SpoolChunk:
    """Records read for replay, the windows where they may already be, and where they end."""

    seq: int
    start: int
    end: int
    last: bool  # the chunk reaches the end of its segment
    frames: list[bytes]
    windows: list[Window] = field(default_factory=list)  # from markers and from attempts
    attempts: list[Window] = field(default_factory=list)  # earlier sends of unknown outcome
    corrupt: int = 0


class Spool:
    """Append-only, fsynced segment files holding encoded records while Redis is away."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int,
        segment_bytes: int = 8 << 20,
        *,
        metrics: Metrics,
    ) -> None:
        self._dir = Path(directory)
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._metrics = metrics
        # The writer's loop and its replay task reach the spool from worker threads.
        self._lock = threading.Lock()
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self._dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise RuntimeError(f"spool {self._dir} is in use by another process") from None
        self._sizes: dict[int, int] = {}  # seq -> bytes, oldest first
        for path in sorted(self._dir.glob("seg-*.log")):
            self._sizes[int(path.stem[4:])] = path.stat().st_size
        self._last_seq = max(self._sizes, default=0)
        self._active: int | None = None
        self._fd: int | None = None
        self._cursor = self._load_cursor()
        self._held = 0  # kept apart from _sizes so that other threads can read it unlocked
        self._update_gauge()
        if self._sizes:
            log.info("spool %s: %d bytes left by an earlier run will be replayed",
                     self._dir, self._held)

    def bytes_held(self) -> int:
        """Bytes in segment files (replayed parts of the oldest segment included)."""
        return self._held

    def append(self, frames: list[bytes], uncertain: Window | None = None) -> None:
        """Write one batch and fsync it; ``uncertain`` is the window where it may already be."""
        if not frames:
            return
        data = b"\n".join(frames) + b"\n"
        if uncertain is not None:
            data = f"#u {uncertain[0]} {uncertain[1]} {len(frames)}\n".encode() + data
        with self._lock:
            if len(data) > self._max_bytes:
                self._drop("spool_full", len(frames), "a batch larger than the whole spool")
                return
            self._make_room(len(data))
            if self._fd is None or self._sizes[self._seq()] + len(data) > self._segment_bytes:
                self._open_segment()
            assert self._fd is not None
            seq = self._seq()
            pos = self._sizes[seq]
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
                os.fsync(self._fd)
            except OSError:
                # Cut the partial batch off so that the next batch starts on a line of its own.
                os.ftruncate(self._fd, pos)
                raise
            self._sizes[seq] = pos + len(data)
            self._update_gauge()

    def read_chunk(self, max_records: int) -> SpoolChunk | None:
        """The next records to replay (whole uncertain groups), or None when the spool is empty."""
        with self._lock:
            if not self._sizes:
                return None
            seq = next(iter(self._sizes))
            if seq == self._active:
                if self._sizes[seq] == 0:
                    return None
                self._seal()  # replay the active segment too: new batches go to a new one
            start, attempts = 0, []
            if self._cursor is not None and self._cursor[0] == seq:
                start, attempts = self._cursor[1], list(self._cursor[2])
            return self._read(seq, start, max_records, attempts)

    def begin_attempt(self, chunk: SpoolChunk, window: Window) -> None:
        """Persist, before a send, where ``chunk`` lands if the reply of this attempt is lost."""
        with self._lock:
            attempts = [*chunk.attempts[-MAX_ATTEMPTS_KEPT + 1:], window]
            self._cursor = (chunk.seq, chunk.start, attempts)
            self._save_cursor()

    def commit(self, chunk: SpoolChunk) -> None:
        """Mark ``chunk`` as replayed; a fully replayed segment is deleted."""
        with self._lock:
            if chunk.corrupt:
                self._drop("spool_corrupt", chunk.corrupt, f"torn lines in segment {chunk.seq}")
            if chunk.seq not in self._sizes:
                return  # deleted meanwhile to make room; already counted then
            if chunk.last:
                self._delete(chunk.seq)
                self._cursor = None
            else:
                self._cursor = (chunk.seq, chunk.end, [])
            self._save_cursor()
            self._update_gauge()

    def close(self) -> None:
        """Close the active segment and release the directory lock."""
        with self._lock:
            self._seal()
            os.close(self._lock_fd)

    # -- internals (called with the lock held) --

    def _seq(self) -> int:
        assert self._active is not None
        return self._active

    def _open_segment(self) -> None:
        self._seal()
        self._last_seq += 1
        seq = self._last_seq
        self._fd = os.open(self._dir / f"seg-{seq:020d}.log",
                           os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._active = seq
        self._sizes[seq] = 0
        self._fsync_dir()  # the new file's name must survive a crash as well as its bytes

    def _seal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._active = None, None

    def _make_room(self, incoming: int) -> None:
        while self._sizes and sum(self._sizes.values()) + incoming > self._max_bytes:
            seq = next(iter(self._sizes))
            if seq == self._active:
                self._seal()
            start = self._cursor[1] if self._cursor and self._cursor[0] == seq else 0
            lost = self._read(seq, start, 1 << 62, []).frames
            self._drop("spool_full", len(lost), f"spool over {self._max_bytes} bytes")
            self._delete(seq)
        self._update_gauge()

    def _read(self, seq: int, start: int, max_records: int, attempts: list[Window]) -> SpoolChunk:
        """Whole lines from ``start``: read in blocks and split in C, because this runs
        beside the event loop and a Python loop of readline() holds the GIL for long."""
        frames: list[bytes] = []
        windows = list(attempts)
        corrupt, group_left, pos = 0, 0, start
        with open(self._path(seq), "rb") as f:
            f.seek(start)
            tail = b""
            while len(frames) < max_records or group_left > 0:
                block = f.read(READ_BLOCK)
                if not block:
                    if tail:  # torn by a crash mid-append: the batch never got its fsync
                        corrupt += 1
                        pos += len(tail)
                    break
                lines = (tail + block).split(b"\n")
                tail = lines.pop()  # what follows the last newline: b"" or a partial line
                for line in lines:
                    if len(frames) >= max_records and group_left == 0:
                        break  # enough: stop at this line boundary
                    pos += len(line) + 1
                    if line.startswith(b"#u "):
                        try:
                            _, lo, hi, count = line.split()
                            windows.append((int(lo), int(hi)))
                            group_left = int(count)
                        except ValueError:
                            corrupt += 1
                        continue
                    frames.append(line)
                    group_left = max(0, group_left - 1)
        last = pos >= self._sizes[seq]
        return SpoolChunk(seq, start, pos, last, frames, windows, attempts, corrupt)

    def _delete(self, seq: int) -> None:
        self._path(seq).unlink(missing_ok=True)
        del self._sizes[seq]
        if self._cursor is not None and self._cursor[0] == seq:
            self._cursor = None
            self._save_cursor()
        self._fsync_dir()

    def _drop(self, reason: str, records: int, why: str) -> None:
        if records:
            self._metrics.log_dropped.labels(reason).inc(records)
            log.error("spool %s: dropped %d records (%s): %s", self._dir, records, reason, why)

    def _path(self, seq: int) -> Path:
        return self._dir / f"seg-{seq:020d}.log"

    def _load_cursor(self) -> tuple[int, int, list[Window]] | None:
        try:
            data = orjson.loads((self._dir / "cursor.json").read_bytes())
            cursor = (int(data["seq"]), int(data["offset"]),
                      [(int(lo), int(hi)) for lo, hi in data["attempts"]])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            log.error("spool %s: unreadable cursor.json, replaying its segment from the start",
                      self._dir)
            return None
        return cursor if cursor[0] in self._sizes else None

    def _save_cursor(self) -> None:
        path = self._dir / "cursor.json"
        if self._cursor is None:
            path.unlink(missing_ok=True)
            return
        seq, offset, attempts = self._cursor
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps({"seq": seq, "offset": offset, "attempts": attempts}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _fsync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _update_gauge(self) -> None:
        self._held = sum(self._sizes.values())
        self._metrics.log_spool_bytes.set(self._held)
