"""Linux inotify on the event loop: changes of a directory's entries, with no thread and no timer.

The config watcher's needs are small (one directory, names of changed entries), and watching
them with the kernel's file descriptor on the loop (``add_reader``) costs nothing while nothing
changes: no thread that wakes every few ms and takes the GIL from the request path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import sys
from pathlib import Path

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of NUL-padded name)
MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
        | IN_DELETE)


class Inotify:
    """A non-blocking inotify descriptor watching one directory's entries."""

    def __init__(self, directory: Path) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.fd: int = fd
        if libc.inotify_add_watch(fd, os.fsencode(directory), MASK) < 0:
            errno = ctypes.get_errno()
            os.close(fd)
            raise OSError(errno, f"inotify_add_watch {directory} failed")

    def read_names(self) -> set[str]:
        """Names of the entries changed since the last call (empty when none)."""
        names: set[str] = set()
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return names
            offset = 0
            while offset + EVENT.size <= len(data):
                _, _, _, length = EVENT.unpack_from(data, offset)
                start = offset + EVENT.size
                names.add(os.fsdecode(data[start:start + length].rstrip(b"\0")))
                offset = start + length

    def close(self) -> None:
        os.close(self.fd)


def available() -> bool:
    return sys.platform.startswith("linux") and ctypes.util.find_library("c") is not None
