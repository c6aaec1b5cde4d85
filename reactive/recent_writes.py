"""The in-memory log of recent commits and the index keys each wrote.

Invariant: it holds every commit with ts > `floor_ts`, in ts order. A read set taken at
`begin_ts >= floor_ts` can be checked against all later commits; an older one cannot
(and is treated as conflicting).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import orjson

from reactive.reads import ReadSet

__all__ = ["Conflict", "RecentWrites", "WrittenKeys", "decode_written", "encode_written"]

#: index ref ("table.index") -> sorted distinct keys written in that index by one commit.
WrittenKeys = dict[str, list[bytes]]


@dataclass(frozen=True, slots=True)
class Conflict:
    """Which commit wrote into which read range."""

    ts: int
    index: str
    key: bytes | None  # None when the read set is older than the log reaches


@dataclass(slots=True)
class _Entry:
    ts: int
    written: WrittenKeys = field(default_factory=dict)


class RecentWrites:
    __slots__ = ("_entries", "_timestamps", "floor_ts")

    def __init__(self, floor_ts: int = 0) -> None:
        self._entries: list[_Entry] = []
        self._timestamps: list[int] = []
        self.floor_ts = floor_ts

    def append(self, ts: int, written: WrittenKeys) -> None:
        if self._timestamps and ts <= self._timestamps[-1]:
            raise ValueError(f"write log: ts {ts} is not after {self._timestamps[-1]}")
        self._entries.append(_Entry(ts, written))
        self._timestamps.append(ts)

    def truncate_after(self, ts: int) -> None:
        """Forget commits with ts > `ts` (a group that failed to persist)."""
        cut = bisect.bisect_right(self._timestamps, ts)
        del self._entries[cut:]
        del self._timestamps[cut:]

    def trim_before(self, ts: int) -> None:
        """Drop commits with ts <= `ts`; transactions older than that will be retried."""
        cut = bisect.bisect_right(self._timestamps, ts)
        del self._entries[:cut]
        del self._timestamps[:cut]
        self.floor_ts = max(self.floor_ts, ts)

    def find_conflict(
        self, read_set: ReadSet, since_ts: int, until_ts: int | None = None
    ) -> Conflict | None:
        """The first commit in (since_ts, until_ts] that wrote a key inside `read_set`."""
        if since_ts < self.floor_ts:
            return Conflict(self.floor_ts, "*", None)
        start = bisect.bisect_right(self._timestamps, since_ts)
        stop = (
            len(self._entries)
            if until_ts is None
            else bisect.bisect_right(self._timestamps, until_ts)
        )
        for entry in self._entries[start:stop]:
            hit = _first_hit(read_set, entry.written)
            if hit is not None:
                return Conflict(entry.ts, hit[0], hit[1])
        return None

    @property
    def last_ts(self) -> int:
        return self._timestamps[-1] if self._timestamps else self.floor_ts

    def __len__(self) -> int:
        return len(self._entries)


def _first_hit(read_set: ReadSet, written: WrittenKeys) -> tuple[str, bytes] | None:
    for index, keys in written.items():
        intervals = read_set.intervals(index)
        if intervals is None:
            continue
        for key in keys:
            if intervals.contains(key):
                return index, key
    return None


def encode_written(written: WrittenKeys) -> bytes:
    """Serialize written keys for the commit record (hex keys in JSON: compact enough)."""
    return orjson.dumps({index: [key.hex() for key in keys] for index, keys in written.items()})


def decode_written(data: bytes) -> WrittenKeys:
    return {index: [bytes.fromhex(k) for k in keys] for index, keys in orjson.loads(data).items()}
