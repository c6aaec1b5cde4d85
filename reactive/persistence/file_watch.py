"""Hearing, on the event loop, that another process wrote a file in a directory: an inotify
descriptor (Linux).

SQLite tells another connection of a commit only when asked (`PRAGMA data_version`), so the
commit watcher used to ask every 2 ms in a thread of its own: 500 wake-ups a second, each
taking the GIL from the event loop. Every process now has a commit bell of its own, a file in
one directory beside the database, and writes it after each commit; the event loop watches the
directory's inotify descriptor like a socket (`loop.add_reader`), and each event names the bell
written, so a process looks when some *other* process committed: its own commits (the common
case, which it knows already) wake it for a moment and cost no look. Where there is no
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
_IN_Q_OVERFLOW = 0x00004000
_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000
#: struct inotify_event: wd, mask, cookie, len, then `len` bytes of NUL-padded name.
_EVENT = struct.Struct("iIII")


class FileWatch:
    """A non-blocking inotify descriptor watching one directory for writes to its files:
    readable (for `select` or `loop.add_reader`) once a file in it was written since the last
    `drain`."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def open(cls, directory: str) -> FileWatch | None:
        """A watch of the files in `directory`, or None where there can be none (not Linux,
        no such directory, or no inotify watches left: `fs.inotify.max_user_watches`)."""
        fd = _inotify_watching(directory)
        return None if fd is None else cls(fd)

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("the watch is closed")
        return self._fd

    def drain(self, ignore: str | None = None) -> bool:
        """Read the pending events; whether one was a write to a file other than `ignore`
        (True too when the kernel's queue overflowed: who wrote is then unknown)."""
        if self._fd is None:
            return False
        others = False
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._fd, 65536):
                others = others or _names_other_than(data, ignore)
        return others

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _names_other_than(data: bytes, ignore: str | None) -> bool:
    """Whether the events in `data` (whole events, as one read returns them) name a file
    other than `ignore`, or say that events were lost."""
    own = None if ignore is None else os.fsencode(ignore)
    offset = 0
    while offset + _EVENT.size <= len(data):
        _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
        offset += _EVENT.size
        name = data[offset : offset + length].rstrip(b"\0")
        offset += length
        if mask & _IN_Q_OVERFLOW or name != own:
            return True
    return False


def _inotify_watching(directory: str) -> int | None:
    if not sys.platform.startswith("linux") or not os.path.isdir(directory):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK))
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(directory), _IN_MODIFY) < 0:
        reason = os.strerror(ctypes.get_errno())
        log.info("cannot watch %s (%s): polling it instead", directory, reason)
        os.close(fd)
        return None
    return fd
