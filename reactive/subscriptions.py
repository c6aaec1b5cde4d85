"""The subscription index: which subscriptions' read sets contain a key a commit wrote.

Per index, the distinct read intervals live in an interval tree (a treap ordered by interval
start, each node knowing the largest end in its subtree), so one written key finds the
intervals containing it in O(log n + matches) instead of a scan of every subscription.
Subscriptions are one-shot: once invalidated they leave the index; the owner re-runs its query
and subscribes again with the new read set.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reactive.reads import ReadSet, ReadToken
from reactive.recent_writes import RecentWrites, WrittenKeys

__all__ = ["IntervalTree", "Subscription", "SubscriptionManager"]


# -- interval tree ---------------------------------------------------------------------------


class _Node:
    __slots__ = ("end", "left", "max_end", "priority", "right", "start")

    def __init__(self, start: bytes, end: bytes) -> None:
        self.start = start
        self.end = end
        self.max_end = end
        self.priority = random.random()
        self.left: _Node | None = None
        self.right: _Node | None = None

    def update(self) -> None:
        best = self.end
        if self.left is not None and self.left.max_end > best:
            best = self.left.max_end
        if self.right is not None and self.right.max_end > best:
            best = self.right.max_end
        self.max_end = best


def _split(node: _Node | None, key: tuple[bytes, bytes]) -> tuple[_Node | None, _Node | None]:
    """Split into (intervals < key, intervals >= key) by (start, end)."""
    if node is None:
        return None, None
    if (node.start, node.end) < key:
        node.right, right = _split(node.right, key)
        node.update()
        return node, right
    left, node.left = _split(node.left, key)
    node.update()
    return left, node


def _merge(a: _Node | None, b: _Node | None) -> _Node | None:
    """Join two treaps where every interval of `a` sorts before every interval of `b`."""
    if a is None:
        return b
    if b is None:
        return a
    if a.priority > b.priority:
        a.right = _merge(a.right, b)
        a.update()
        return a
    b.left = _merge(a, b.left)
    b.update()
    return b


class IntervalTree:
    """A set of distinct half-open byte intervals with stabbing queries."""

    __slots__ = ("_root", "_size")

    def __init__(self) -> None:
        self._root: _Node | None = None
        self._size = 0

    def add(self, start: bytes, end: bytes) -> None:
        """Insert [start, end); the caller guarantees it is not already present."""
        left, right = _split(self._root, (start, end))
        self._root = _merge(_merge(left, _Node(start, end)), right)
        self._size += 1

    def remove(self, start: bytes, end: bytes) -> None:
        """Remove [start, end), which must be present."""
        left, rest = _split(self._root, (start, end))
        node, right = _split(rest, (start, end + b"\x00"))
        if node is not None:
            self._size -= 1
        self._root = _merge(left, right)

    def stab(self, key: bytes, out: list[tuple[bytes, bytes]]) -> None:
        """Append every interval containing `key` to `out`."""
        stack = [self._root] if self._root is not None else []
        while stack:
            node = stack.pop()
            if node.max_end <= key:
                continue  # nothing in this subtree reaches past key
            if node.left is not None:
                stack.append(node.left)
            if node.start <= key:
                if key < node.end:
                    out.append((node.start, node.end))
                if node.right is not None:
                    stack.append(node.right)

    def __len__(self) -> int:
        return self._size


# -- subscriptions ---------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Subscription:
    """A read set at `ts` watched for changes; `on_invalidate(sub, ts)` fires at most once."""

    id: int
    token: ReadToken
    on_invalidate: Callable[[Subscription, int], None]
    #: Whatever the subscriber wants back with the callback (a socket's query state): one
    #: callback for many subscriptions, where a closure each would cost ~300 bytes.
    owner: object = None
    invalidated_at: int | None = None
    _entries: tuple[tuple[str, bytes, bytes], ...] = ()

    @property
    def active(self) -> bool:
        return self.invalidated_at is None


class SubscriptionManager:
    """Indexes every live subscription's read intervals and invalidates them on commits."""

    def __init__(self, recent_writes: RecentWrites, *, table_level: bool = False) -> None:
        self._recent_writes = recent_writes
        #: Baseline mode for benchmarks: a write to a table invalidates every subscription that
        #: read anything of that table (what trigger + LISTEN/NOTIFY systems do).
        self.table_level = table_level
        self._by_table: dict[str, set[Subscription]] = {}
        self._ids = itertools.count(1)
        self._trees: dict[str, IntervalTree] = {}
        #: (index ref, start, end) -> subscriptions reading exactly that interval.
        self._holders: dict[tuple[str, bytes, bytes], set[Subscription]] = {}
        self._live: dict[int, Subscription] = {}
        #: The newest commit advance() has seen. Later write-log entries are still being made
        #: durable; they invalidate through the index when advance() publishes them.
        self._published_ts = 0

    def subscribe(
        self,
        token: ReadToken,
        on_invalidate: Callable[[Subscription, int], None],
        owner: object = None,
    ) -> Subscription:
        """Watch `token`. If a published commit after token.ts already hit it, it fires right
        away (a commit not yet published would only make the caller re-run at the same ts)."""
        sub = Subscription(next(self._ids), token, on_invalidate, owner)
        published = max(self._published_ts, self._recent_writes.floor_ts)
        conflict = self._recent_writes.find_conflict(token.read_set, token.ts, published)
        if conflict is not None:
            sub.invalidated_at = conflict.ts
            on_invalidate(sub, conflict.ts)
            return sub
        self._index(sub, token.read_set)
        self._live[sub.id] = sub
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if self._live.pop(sub.id, None) is None:
            return
        if self.table_level:
            for index, _, _ in sub._entries:
                self._by_table.get(index.partition(".")[0], set()).discard(sub)
        for entry in sub._entries:
            holders = self._holders.get(entry)
            if holders is None:
                continue
            holders.discard(sub)
            if not holders:
                del self._holders[entry]
                self._trees[entry[0]].remove(entry[1], entry[2])
        sub._entries = ()

    def advance(self, ts: int, written: WrittenKeys) -> list[Subscription]:
        """Invalidate (and drop) every subscription whose read set holds a written key."""
        self._published_ts = ts
        hits = self.matching(written)
        for sub in hits:
            self.unsubscribe(sub)
            sub.invalidated_at = ts
        for sub in hits:
            sub.on_invalidate(sub, ts)
        return hits

    def matching(self, written: WrittenKeys) -> list[Subscription]:
        if self.table_level:
            tables = {index.partition(".")[0] for index in written}
            return list({sub for table in tables for sub in self._by_table.get(table, ())})
        found: dict[int, Subscription] = {}
        intervals: list[tuple[bytes, bytes]] = []
        for index, keys in written.items():
            tree = self._trees.get(index)
            if tree is None:
                continue
            for key in keys:
                intervals.clear()
                tree.stab(key, intervals)
                for start, end in intervals:
                    for sub in self._holders[(index, start, end)]:
                        found[sub.id] = sub
        return list(found.values())

    def _index(self, sub: Subscription, read_set: ReadSet) -> None:
        entries = []
        for index, intervals in read_set.items():
            if self.table_level:
                self._by_table.setdefault(index.partition(".")[0], set()).add(sub)
            tree = self._trees.get(index)
            if tree is None:
                tree = self._trees[index] = IntervalTree()
            for interval in intervals:
                entry = (index, interval.start, interval.end)
                holders = self._holders.get(entry)
                if holders is None:
                    holders = self._holders[entry] = set()
                    tree.add(interval.start, interval.end)
                holders.add(sub)
                entries.append(entry)
        sub._entries = tuple(entries)  # a tuple: no spare capacity, kept as long as sub lives

    def __len__(self) -> int:
        return len(self._live)

    def interval_count(self) -> int:
        return len(self._holders)


def naive_matching(subs: Iterable[Subscription], written: WrittenKeys) -> list[Subscription]:
    """Reference implementation: check every subscription (used by tests and benchmarks)."""
    return [
        sub
        for sub in subs
        if any(
            sub.token.read_set.contains(index, key)
            for index, keys in written.items()
            for key in keys
        )
    ]
