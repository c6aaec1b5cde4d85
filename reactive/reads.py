"""Read set tracking for a transaction: per index, the key intervals it actually scanned.

The same read set serves two purposes: the committer checks it against later commits (OCC),
and the subscription index checks later commits against it (reactivity).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from reactive.index_keys import Interval, IntervalSet

__all__ = ["ReadSet", "ReadToken", "index_ref"]


def index_ref(table: str, index: str) -> str:
    """The name under which reads and writes of one index meet: "table.index".

    Names rather than numeric ids so that a read of a table that does not exist yet still
    conflicts with (and is invalidated by) the first insert into it.
    """
    return f"{table}.{index}"


class ReadSet:
    """Mapping index ref -> IntervalSet of keys read; only grows."""

    __slots__ = ("_by_index",)

    def __init__(self) -> None:
        self._by_index: dict[str, IntervalSet] = {}

    def record(self, index: str, interval: Interval) -> None:
        if interval.is_empty:
            return
        intervals = self._by_index.get(index)
        if intervals is None:
            intervals = self._by_index[index] = IntervalSet()
        intervals.add(interval)

    def intervals(self, index: str) -> IntervalSet | None:
        return self._by_index.get(index)

    def contains(self, index: str, key: bytes) -> bool:
        intervals = self._by_index.get(index)
        return intervals is not None and intervals.contains(key)

    def items(self) -> Iterator[tuple[str, IntervalSet]]:
        return iter(self._by_index.items())

    def merge(self, other: ReadSet) -> None:
        for index, intervals in other.items():
            for interval in intervals:
                self.record(index, interval)

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_index.values())

    def __repr__(self) -> str:
        return f"ReadSet({ {k: list(v) for k, v in self._by_index.items()} })"


@dataclass(frozen=True, slots=True)
class ReadToken:
    """A read set together with the snapshot it was read at: what a subscription watches."""

    read_set: ReadSet
    ts: int
