"""Building a report from where the records are: the Redis stream (with a progress bar)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import redis
from tqdm import tqdm  # type: ignore[import-untyped]

from gateway.analysis.document import Report
from gateway.analysis.report import build_report
from gateway.analysis.slices import SliceSource
from gateway.config.load import LoadedConfig
from gateway.predlog import keys

PROGRESS_DELAY_S = 1.0  # a report that reads quickly shows no bar


async def report_from_redis(loaded: LoadedConfig, deployment: str, url: str, *,
                            since: float | None, until: float | None,
                            candidate: str | None = None, progress: bool = False,
                            now: float | None = None, workers: int | None = None) -> Report:
    """The report of ``deployment`` over its stream in the Redis at ``url``; ``progress``
    shows a bar on stderr (a terminal only) when reading takes more than a second;
    ``workers``: processes reading a long stream (default: the cores, at most 4)."""
    update: Callable[[int], None] | None = None
    bar = None
    if progress and sys.stderr.isatty():
        with redis.Redis.from_url(url) as client:
            total = int(client.xlen(keys.pairs(deployment)))
        bar = tqdm(total=total, unit="record", file=sys.stderr, delay=PROGRESS_DELAY_S,
                   desc=f"reading {deployment}")
        update = bar.update
    try:
        source = SliceSource(url, deployment, since=since, until=until, progress=update,
                             workers=workers)
        return await build_report(loaded, deployment, source, since=since, until=until,
                                  candidate=candidate, now=now)
    finally:
        if bar is not None:
            bar.close()
