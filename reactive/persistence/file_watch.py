"""Hearing, on the event loop, that a file was written: an inotify descriptor (Linux).

SQLite tells another connection of a commit only when asked (`PRAGMA data_version`), so the
commit watcher used to ask every 2 ms in a thread of its own: 500 wake-ups a second, each
taking the GIL from the event loop. Every process now writes a commit bell after each commit;
the event loop watches the bell's inotify descriptor like a socket (`loop.add_reader`), so it
looks exactly when some process committed, with no thread and no poll. Where there is no
inotify, `FileWatch.open` says so and the caller polls.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys

__all__ = ["FileWatch"]

log = logging.getLogger("reactive.persistence")

_IN_MODIFY = 0x00000002
_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000


class FileWatch:
    """A non-blocking inotify descriptor watching one file for writes: readable (for
    `select` or `loop.add_reader`) once the file was written since the last `drain`."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def open(cls, path: str) -> FileWatch | None:
        """A watch of `path`, or None where there can be none (not Linux, no such file, or
        no inotify watches left: `fs.inotify.max_user_watches`)."""
        fd = _inotify_watching(path)
        return None if fd is None else cls(fd)

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("the watch is closed")
        return self._fd

    def drain(self) -> None:
        """Read the pending events: what they say is not needed, only that they came."""
        if self._fd is None:
            return
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 65536):
                pass

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _inotify_watching(path: str) -> int | None:
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
