"""Where a report's time goes: wall and main-thread CPU per stage, without a profiler.

cProfile charges every Python call (a list ``append`` included) and so inflates the per-record
loops of the decoder several times over; these timers wrap whole calls (a page, a batch), so
their cost is a few microseconds per page. The report's functions are wrapped where the report
looks them up (module globals), in the benchmark's own process only.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Any


class Stages:
    """Accumulated (wall, CPU) seconds by stage name."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)

    def add(self, name: str, wall0: float, cpu0: float) -> None:
        self.wall[name] += time.perf_counter() - wall0
        self.cpu[name] += time.thread_time() - cpu0

    def wrap(self, module: ModuleType | type, attr: str, name: str) -> None:
        """Time every call of ``module.attr`` (a function, coroutine function, async generator
        function or generator function; or a class's method) as stage ``name``."""
        fn = getattr(module, attr)
        import inspect

        if inspect.isasyncgenfunction(fn):
            setattr(module, attr, self._agen(fn, name))
        elif inspect.iscoroutinefunction(fn):
            setattr(module, attr, self._coro(fn, name))
        elif inspect.isgeneratorfunction(fn):
            setattr(module, attr, self._gen(fn, name))
        else:
            setattr(module, attr, self._call(fn, name))

    def _call(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, wall0, cpu0)
        return timed

    def _coro(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.add(name, wall0, cpu0)
        return timed

    def _agen(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            async for item in self.iterate(fn(*args, **kwargs), name):
                yield item
        return timed

    def _gen(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            inner = fn(*args, **kwargs)
            while True:
                wall0, cpu0 = time.perf_counter(), time.thread_time()
                try:
                    item = next(inner)
                except StopIteration:
                    self.add(name, wall0, cpu0)
                    return
                self.add(name, wall0, cpu0)
                yield item
        return timed

    async def iterate(self, inner: AsyncIterator[Any], name: str) -> AsyncIterator[Any]:
        """``inner``'s items, the time spent producing them counted as stage ``name``."""
        while True:
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            try:
                item = await inner.__anext__()
            except StopAsyncIteration:
                self.add(name, wall0, cpu0)
                return
            self.add(name, wall0, cpu0)
            yield item

    def table(self, order: list[str], records: int, total: tuple[float, float]) -> list[str]:
        """Lines: each stage's wall and CPU seconds and microseconds per record."""
        n = max(1, records)
        lines = [f"  {'stage (cpu: this thread only)':40} {'wall s':>7} {'cpu s':>7} "
                 f"{'wall us/rec':>12} {'cpu us/rec':>11}"]
        for name in [*order, "total"]:
            wall, cpu = total if name == "total" else (self.wall[name], self.cpu[name])
            lines.append(f"  {name:40} {wall:7.2f} {cpu:7.2f} {wall * 1e6 / n:12.2f} "
                         f"{cpu * 1e6 / n:11.2f}")
        return lines
