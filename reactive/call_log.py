"""A record of every function call (time, kind, path, duration, status, log lines).

Kept in a bounded ring for `reactive logs`-style followers, and written to the
`reactive.calls` logger so `reactive dev` can print one readable line per call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["CallLog", "CallRecord"]

log = logging.getLogger("reactive.calls")

_KIND_LETTER = {"query": "Q", "mutation": "M", "action": "A", "http": "H"}


@dataclass(frozen=True, slots=True)
class CallRecord:
    at: float  # unix seconds when the call finished
    kind: str
    path: str
    duration_ms: float
    ok: bool
    error: str | None = None
    log_lines: list[str] = field(default_factory=list)

    def line(self) -> str:
        status = "ok" if self.ok else f"error: {(self.error or '').splitlines()[0][:200]}"
        letter = _KIND_LETTER.get(self.kind, "?")
        return f"{letter} {self.path} {self.duration_ms:.1f} ms {status}"


class CallLog:
    def __init__(self, size: int = 1000) -> None:
        self._recent: deque[CallRecord] = deque(maxlen=size)
        self._followers: set[asyncio.Queue[CallRecord]] = set()

    def record(
        self,
        kind: str,
        path: str,
        started: float,
        ok: bool,
        error: str | None,
        log_lines: list[str],
    ) -> CallRecord:
        entry = CallRecord(
            time.time(),
            kind,
            path,
            (time.perf_counter() - started) * 1000,
            ok,
            error,
            list(log_lines),
        )
        self._recent.append(entry)
        log.info("%s", entry.line(), extra={"call": entry})
        for queue in self._followers:
            if queue.qsize() < 10_000:  # a follower that stopped reading loses lines, not memory
                queue.put_nowait(entry)
        return entry

    def recent(self) -> list[CallRecord]:
        return list(self._recent)

    async def follow(self) -> AsyncIterator[CallRecord]:
        """Every call from now on, as it finishes."""
        queue: asyncio.Queue[CallRecord] = asyncio.Queue()
        self._followers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._followers.discard(queue)
