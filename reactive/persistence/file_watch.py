"""Waiting, in a thread, until a file is written: inotify on Linux, the timeout elsewhere.

SQLite tells another connection of a commit only when asked (`PRAGMA data_version`), so the
commit watcher used to ask every 2 ms while anyone was subscribed: 500 wake-ups a second, each
taking the GIL from the event loop, for commits that mostly never came. Every commit writes the
database's WAL file; with inotify the watcher sleeps in the kernel until it is written, and
other processes' commits are seen at once rather than after up to one poll interval.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import logging
import os
import select
import sys
import threading

__all__ = ["FileWatch", "Woken"]

log = logging.getLogger("reactive.persistence")

_IN_MODIFY = 0x00000002
_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000


class Woken(enum.Enum):
    WRITTEN = "written"
    TIMED_OUT = "timed out"
    CLOSED = "closed"


class FileWatch:
    """`wait(timeout)` blocks (without the GIL) until `path` is written, `timeout` passes, or
    `close()` is called; `event_driven` says whether writes wake it (else only the timeout)."""

    def __init__(self, path: str) -> None:
        self._inotify = _inotify_watching(path)
        self._wake_read, self._wake_write = os.pipe()
        #: Guards the descriptors: `close` may come from another thread after `release`, and a
        #: freed descriptor's number may already belong to something else.
        self._lock = threading.Lock()
        self._released = False

    @property
    def event_driven(self) -> bool:
        return self._inotify is not None

    def wait(self, timeout: float) -> Woken:
        """Until the file is written, `timeout` passes, or `close()`."""
        watched = [self._wake_read] if self._inotify is None else [self._wake_read, self._inotify]
        ready, _, _ = select.select(watched, [], [], timeout)
        if self._wake_read in ready:
            return Woken.CLOSED
        if self._inotify is not None and self._inotify in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._inotify, 65536)  # the events themselves say nothing we need
            return Woken.WRITTEN
        return Woken.TIMED_OUT

    def close(self) -> None:
        """Wake `wait` for good (from any thread)."""
        with self._lock, contextlib.suppress(OSError):
            if not self._released:
                os.write(self._wake_write, b"x")

    def release(self) -> None:
        """Free the descriptors; for the thread that waited, once it is done."""
        with self._lock:
            self._released = True
            for fd in (self._inotify, self._wake_read, self._wake_write):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)


def _inotify_watching(path: str) -> int | None:
    """An inotify descriptor watching `path` for writes, or None where there is none (not
    Linux, no such file, or no watches left: `fs.inotify.max_user_watches`)."""
    if not sys.platform.startswith("linux") or not os.path.exists(path):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK))
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(path), _IN_MODIFY) < 0:
        log.info("cannot watch %s (%s): polling it instead", path, os.strerror(ctypes.get_errno()))
        os.close(fd)
        return None
    return fd
