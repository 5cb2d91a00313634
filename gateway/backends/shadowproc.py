"""ShadowProcess: a child process that runs ONNX shadow micro-batches off the gateway's CPU lane.

The gateway sends a batch (model path, output names, input arrays) down the child's stdin and
reads the answer (outputs, or an error, and the CPU time the call took) from its stdout, both
on the event loop: no thread in the gateway process, so no GIL hand-off stretches the
champion's latency. The child holds one onnxruntime session per model and runs at the lowest
scheduling priority (SCHED_IDLE on Linux, else ``nice``), so that on a busy machine the kernel
serves the request path first and shadow work takes the cycles that are left. A child that
dies fails the batches in flight (recorded as errors) and is started again by the next batch.
The child also exits when its stdin closes, so it never outlives the gateway.

Run as ``python -m gateway.backends.shadowproc [--nice N]`` (the parent does).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import struct
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np

log = logging.getLogger(__name__)

HEADER = struct.Struct("!I")
Request = tuple[int, str, int, list[str], dict[str, np.ndarray]]
Reply = tuple[int, list[np.ndarray] | None, str | None, float]


class ShadowProcessError(RuntimeError):
    """The child could not run a batch (its message), or died with batches in flight."""


class ShadowProcess:
    """The parent's handle: started on first use, restarted after a crash, closed once."""

    def __init__(self, nice: int = 10, python: str = sys.executable, *,
                 idle: bool = True) -> None:
        """``idle``: schedule the child SCHED_IDLE (Linux), so that it runs only on CPU time
        that nothing else wants; ``nice``: its niceness otherwise (or where there is no
        SCHED_IDLE)."""
        self.nice = nice
        self.idle = idle
        self.python = python
        self.starts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._ids = itertools.count()
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and \
            self._reader is not None and not self._reader.done()

    async def start(self) -> None:
        """Start the child unless it runs (idempotent)."""
        async with self._lock:
            if self.alive or self._closed:
                return
            self._proc = await asyncio.create_subprocess_exec(
                self.python, "-m", "gateway.backends.shadowproc", "--nice", str(self.nice),
                *(["--idle"] if self.idle else []),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                start_new_session=True)  # a Ctrl-C for the gateway is the gateway's to handle
            self.starts += 1
            self._reader = asyncio.create_task(self._read(self._proc), name="shadow-process")
            log.info("shadow process started (pid %d, %s)", self._proc.pid,
                     "SCHED_IDLE" if self.idle else f"nice {self.nice}")

    async def run(self, path: str, threads: int, names: Sequence[str],
                  inputs: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], float]:
        """One batch in the child: (outputs in ``names`` order, CPU seconds it took there)."""
        if self._closed:
            raise ShadowProcessError("the shadow process is closed")
        if not self.alive:
            await self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        request_id = next(self._ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            data = pickle.dumps((request_id, path, threads, list(names), dict(inputs)),
                                protocol=5)
            proc.stdin.write(HEADER.pack(len(data)) + data)
            _, outputs, error, cpu_s = await future
        finally:
            self._pending.pop(request_id, None)
        if error is not None or outputs is None:
            raise ShadowProcessError(error or "no outputs")
        return outputs, cpu_s

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                (size,) = HEADER.unpack(await proc.stdout.readexactly(HEADER.size))
                reply: Reply = pickle.loads(await proc.stdout.readexactly(size))
                future = self._pending.pop(reply[0], None)
                if future is not None and not future.done():
                    future.set_result(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            code = proc.returncode
            if not self._closed:
                log.error("shadow process (pid %d) exited (%s); %d batch(es) failed",
                          proc.pid, code, len(self._pending))
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ShadowProcessError(
                        f"the shadow process exited ({code}) before answering"))
            self._pending.clear()

    async def close(self, timeout: float = 5.0) -> None:
        """Close its stdin (it exits), wait up to ``timeout``, then kill it."""
        self._closed = True
        proc, reader = self._proc, self._reader
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if reader is not None:
            await asyncio.gather(reader, return_exceptions=True)


# -- the child --


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer batches until ``requests`` ends."""
    import onnxruntime as ort

    sessions: dict[tuple[str, int], Any] = {}
    while True:
        header = _read_exactly(requests, HEADER.size)
        if header is None:
            return
        body = _read_exactly(requests, HEADER.unpack(header)[0])
        if body is None:
            return
        request_id, path, threads, names, inputs = pickle.loads(body)
        start = time.thread_time()
        reply: Reply
        try:
            session = sessions.get((path, threads))
            if session is None:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                session = sessions[path, threads] = ort.InferenceSession(
                    path, options, providers=["CPUExecutionProvider"])
            outputs = session.run(names, inputs)
            reply = (request_id, outputs, None, time.thread_time() - start)
        except Exception as exc:  # reported to the parent, recorded as the batch's error
            reply = (request_id, None, f"{type(exc).__name__}: {exc}",
                     time.thread_time() - start)
        data = pickle.dumps(reply, protocol=5)
        replies.write(HEADER.pack(len(data)) + data)
        replies.flush()


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="run ONNX shadow batches for a gateway")
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--idle", action="store_true", help="SCHED_IDLE where there is one")
    args = parser.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    if args.idle and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    # The protocol owns the original stdout; anything printed (a library's warning) goes to
    # stderr instead of corrupting it.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
