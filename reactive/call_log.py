"""A record of every function call (time, kind, path, duration, status, log lines).

Kept in a ring bounded in entries and in bytes (knobs.CALL_LOG_MAX_ENTRIES / _BYTES) for
`reactive logs`-style followers, and written to the `reactive.calls` logger so `reactive dev`
can print one readable line per call. A record's path and error are cut to a bounded length, so
no caller decides how much of it the server keeps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from reactive import knobs

__all__ = ["CallLog", "CallRecord"]

log = logging.getLogger("reactive.calls")

_KIND_LETTER = {
    "query": "Q",
    "mutation": "M",
    "action": "A",
    "http": "H",
    "scheduled": "S",
    "cron": "C",
}
#: Longest error message a record keeps (a traceback in dev mode fits).
MAX_ERROR_CHARS = 16_384
#: What a record costs beyond its strings (the object, its fields, the ring's slot).
_RECORD_OVERHEAD = 200


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__, and one
# record is made per call. Nothing changes a record once made.
@dataclass(slots=True)
class CallRecord:
    at: float  # unix seconds when the call finished
    kind: str
    path: str
    duration_ms: float
    ok: bool
    error: str | None = None
    log_lines: list[str] = field(default_factory=list)
    #: Scheduled and cron runs: how long after their due time they started.
    lateness_ms: float | None = None

    def size(self) -> int:
        """Roughly the bytes this record holds (characters of its strings plus overhead)."""
        lines = sum(map(len, self.log_lines))
        return _RECORD_OVERHEAD + len(self.path) + len(self.error or "") + lines

    def line(self) -> str:
        status = "ok" if self.ok else f"error: {(self.error or '').splitlines()[0][:200]}"
        letter = _KIND_LETTER.get(self.kind, "?")
        late = "" if self.lateness_ms is None else f" (late {self.lateness_ms:.1f} ms)"
        return f"{letter} {self.path} {self.duration_ms:.1f} ms{late} {status}"


class CallLog:
    def __init__(self, max_entries: int | None = None, max_bytes: int | None = None) -> None:
        self.max_entries = knobs.CALL_LOG_MAX_ENTRIES if max_entries is None else max_entries
        self.max_bytes = knobs.CALL_LOG_MAX_BYTES if max_bytes is None else max_bytes
        #: Each record with the size it was counted at (CallRecord.size), so dropping it is free.
        self._recent: deque[tuple[CallRecord, int]] = deque()
        self._recent_bytes = 0
        self._followers: set[_Follower] = set()

    def record(
        self,
        kind: str,
        path: str,
        started: float,
        ok: bool,
        error: str | None,
        log_lines: list[str],
        *,
        lateness_ms: float | None = None,
    ) -> CallRecord:
        entry = CallRecord(
            time.time(),
            kind,
            _cut(path, knobs.MAX_FUNCTION_PATH_CHARS),
            (time.perf_counter() - started) * 1000,
            ok,
            None if error is None else _cut(error, MAX_ERROR_CHARS),
            list(log_lines) if log_lines else [],  # bounded where captured (log_capture)
            lateness_ms,
        )
        self._remember(entry)
        if log.isEnabledFor(logging.INFO):  # the line is formatted only for a reader
            log.info("%s", entry.line(), extra={"call": entry})
        for follower in self._followers:
            follower.offer(entry, self.max_entries, self.max_bytes)
        return entry

    def _remember(self, entry: CallRecord) -> None:
        size = entry.size()
        self._recent.append((entry, size))
        self._recent_bytes += size
        while len(self._recent) > self.max_entries or self._recent_bytes > self.max_bytes:
            self._recent_bytes -= self._recent.popleft()[1]

    def recent(self) -> list[CallRecord]:
        return [entry for entry, _ in self._recent]

    def recent_bytes(self) -> int:
        """What the kept records hold, as CallRecord.size counts it."""
        return self._recent_bytes

    async def follow(self) -> AsyncIterator[CallRecord]:
        """Every call from now on, as it finishes."""
        follower = _Follower()
        self._followers.add(follower)
        try:
            while True:
                yield await follower.take()
        finally:
            self._followers.discard(follower)


class _Follower:
    """The records one follower has yet to read, bounded as the ring is: a follower that
    stopped reading loses records, the server does not gain memory."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[CallRecord] = asyncio.Queue()
        self._bytes = 0

    def offer(self, entry: CallRecord, max_entries: int, max_bytes: int) -> None:
        size = entry.size()
        if self._queue.qsize() < max_entries and self._bytes + size <= max_bytes:
            self._bytes += size
            self._queue.put_nowait(entry)

    async def take(self) -> CallRecord:
        entry = await self._queue.get()
        self._bytes -= entry.size()
        return entry


def _cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"
