"""Hearing, on the event loop, that another process wrote a file in a directory: an inotify
descriptor (Linux).

SQLite tells another connection of a commit only when asked (`PRAGMA data_version`), so the
commit watcher used to ask every 2 ms in a thread of its own: 500 wake-ups a second, each
taking the GIL from the event loop. Every process now has a commit bell of its own, a file in
one directory beside the database, and writes it after each commit; the event loop watches
the inotify descriptor like a socket (`loop.add_reader`). It watches the directory for new
bells and every bell but its own for writes, so only *another* process's commit wakes it: its
own commits (the common case, which it knows already) cost it nothing. Where there is no
inotify, `FileWatch.open` says so and the caller polls.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import struct
import sys

__all__ = ["FileWatch"]

log = logging.getLogger("reactive.persistence")

_IN_MODIFY = 0x00000002
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_Q_OVERFLOW = 0x00004000
_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000
#: struct inotify_event: wd, mask, cookie, len, then `len` bytes of NUL-padded name.
_EVENT = struct.Struct("iIII")


class FileWatch:
    """A non-blocking inotify descriptor watching one directory: readable (for `select` or
    `loop.add_reader`) once a file in it but `own` was written, or a file appeared, since the
    last `drain`."""

    def __init__(self, fd: int, directory: str, own: str | None, libc: ctypes.CDLL) -> None:
        self._fd: int | None = fd
        self._directory = directory
        self._own = None if own is None else os.fsencode(own)
        self._libc = libc
        self._directory_wd = -1

    @classmethod
    def open(cls, directory: str, own: str | None = None) -> FileWatch | None:
        """A watch of the files in `directory` but `own`, or None where there can be none (not
        Linux, no such directory, or no inotify watches left: `fs.inotify.max_user_watches`)."""
        if not sys.platform.startswith("linux") or not os.path.isdir(directory):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = int(libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK))
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        watch = cls(fd, directory, own, libc)
        # The directory first, then the files already there: a file created in between is
        # heard of either way (watching one twice is harmless).
        watch._directory_wd = watch._add(directory, _IN_CREATE | _IN_MOVED_TO)
        if watch._directory_wd < 0:
            reason = os.strerror(ctypes.get_errno())
            log.info("cannot watch %s (%s): polling it instead", directory, reason)
            watch.close()
            return None
        for name in os.listdir(directory):
            watch._watch_file(os.fsencode(name))
        return watch

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("the watch is closed")
        return self._fd

    def drain(self) -> bool:
        """Read the pending events; whether another file was written or a new one appeared
        (True too when the kernel's queue overflowed: who wrote is then unknown)."""
        if self._fd is None:
            return False
        others = False
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._fd, 65536):
                others = self._heard_others(data) or others
        return others

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _heard_others(self, data: bytes) -> bool:
        """Whether the events in `data` (whole events, as one read returns them) tell of a
        write to a watched file, a new file (now watched too) or lost events."""
        others = False
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size
            name = data[offset : offset + length].rstrip(b"\0")
            offset += length
            if mask & _IN_Q_OVERFLOW or mask & _IN_MODIFY:
                others = True
            elif wd == self._directory_wd and mask & (_IN_CREATE | _IN_MOVED_TO):
                # A new process's bell: it may have rung before its watch was added.
                others = self._watch_file(name) or others
        return others

    def _watch_file(self, name: bytes) -> bool:
        """Watch the file `name` for writes, unless it is our own; whether it was another's."""
        if name == self._own:
            return False
        self._add(os.path.join(os.fsencode(self._directory), name), _IN_MODIFY)
        return True

    def _add(self, path: str | bytes, mask: int) -> int:
        assert self._fd is not None
        return int(self._libc.inotify_add_watch(self._fd, os.fsencode(path), mask))
