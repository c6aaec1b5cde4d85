"""Capture what a function prints or logs as Convex `logLines` ("[LEVEL] text").

The capture is per asyncio task (a ContextVar), so concurrent functions never mix their lines;
output outside a function goes where it always went.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["LogCollector", "capture_logs"]

MAX_LINES = 256
MAX_LINE_CHARS = 4096

_LEVELS = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "ERROR",
}


class LogCollector:
    """The log lines of one function run; partial printed lines are kept until a newline."""

    __slots__ = ("_partial", "dropped", "lines")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._partial = ""
        self.dropped = 0

    def add(self, level: str, text: str) -> None:
        if len(self.lines) >= MAX_LINES:
            self.dropped += 1
            return
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + " (truncated)"
        self.lines.append(f"[{level}] {text}")

    def write(self, text: str) -> None:
        pieces = (self._partial + text).split("\n")
        self._partial = pieces.pop()
        for piece in pieces:
            self.add("LOG", piece)

    def finish(self) -> list[str]:
        if self._partial:
            self.add("LOG", self._partial)
            self._partial = ""
        if self.dropped:
            self.lines.append(f"[WARN] {self.dropped} more log lines were dropped")
            self.dropped = 0
        return self.lines


_current: ContextVar[LogCollector | None] = ContextVar("reactive_log_collector", default=None)


class _RoutingStream(io.TextIOBase):
    """Stands in for sys.stdout: text written inside a function goes to its collector."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    def write(self, text: str) -> int:
        collector = _current.get()
        if collector is None:
            return int(self.fallback.write(text))
        collector.write(text)
        return len(text)

    def flush(self) -> None:
        if _current.get() is None:
            self.fallback.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


class _CollectorHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        collector = _current.get()
        if collector is not None and not record.name.startswith("reactive."):
            collector.add(_LEVELS.get(record.levelno, "LOG"), record.getMessage())


_handler = _CollectorHandler()


def _install() -> None:
    # Re-checked on every capture: test runners and servers may swap sys.stdout at any time.
    if not isinstance(sys.stdout, _RoutingStream):
        sys.stdout = _RoutingStream(sys.stdout)
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)


@contextlib.contextmanager
def capture_logs() -> Iterator[LogCollector]:
    _install()
    collector = LogCollector()
    token = _current.set(collector)
    try:
        yield collector
    finally:
        _current.reset(token)
