"""Small asyncio helpers for the tasks the lifespan owns."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def finish(task: asyncio.Task[Any], timeout: float) -> None:
    """Wait up to ``timeout`` for ``task`` (asked to stop already) to end, else cancel it;
    either way it has ended when this returns. Its exception, if any, is not raised here:
    the loops log their own failures."""
    if not task.done():
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
        except BaseException:
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise
    await asyncio.gather(task, return_exceptions=True)
