"""The config file watcher: a change (written in place or renamed over) reloads, once settled;
on Linux it waits on inotify, with no thread and no timer while nothing changes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from gateway.rollout import inotify
from gateway.rollout.watcher import FileWatcher

DEADLINE = 10.0


def pending_timers() -> int:
    loop = asyncio.get_running_loop()
    return sum(1 for handle in loop._scheduled if not handle.cancelled())  # type: ignore[attr-defined]


async def test_changes_reload_and_other_files_do_not(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("a: 1\n")
    reloads: asyncio.Queue[int] = asyncio.Queue()
    count = 0

    async def reload() -> None:
        nonlocal count
        count += 1
        await reloads.put(count)

    watcher = FileWatcher(path, reload)
    task = asyncio.create_task(watcher.run())
    try:
        for _ in range(5):
            await asyncio.sleep(0)  # the watcher is set up and waits
        if inotify.available():
            assert pending_timers() == 0
        (tmp_path / "other.yaml").write_text("b: 2\n")
        path.write_text("a: 2\n")  # in place
        assert await asyncio.wait_for(reloads.get(), DEADLINE) == 1
        temporary = tmp_path / ".gateway.yaml.swp"
        temporary.write_text("a: 3\n")
        os.replace(temporary, path)  # as editors save
        assert await asyncio.wait_for(reloads.get(), DEADLINE) == 2
        assert reloads.empty()
    finally:
        watcher.stop.set()
        await asyncio.wait_for(task, DEADLINE)


@pytest.mark.skipif(not inotify.available(), reason="inotify is Linux only")
def test_inotify_names_the_changed_entries(tmp_path: Path) -> None:
    notify = inotify.Inotify(tmp_path)
    try:
        assert notify.read_names() == set()
        (tmp_path / "x.yaml").write_text("1")
        (tmp_path / "y").mkdir()
        assert notify.read_names() == {"x.yaml", "y"}
        assert notify.read_names() == set()
    finally:
        notify.close()
