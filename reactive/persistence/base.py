"""The Persistence protocol: the multi-version log that every storage backend implements.

Storage is a plain MVCC log, identical on every backend:
  documents(table_id, id, ts, value, deleted, prev_ts)   primary key (table_id, id, ts)
  indexes(index_id, key, ts, deleted, document_id)        primary key (index_id, key, ts)
  commits(ts, written)                                    one row per commit
  mutation_results(session_id, request_id, ts, result, identity)  exactly-once record of mutations
  tables, index_meta, meta                                small metadata
A read at snapshot `ts` sees, for each document id / index key, its newest row with
row.ts <= ts, unless that row is a tombstone (deleted). Backends never check conflicts:
the committer does, inside `write_commits`.

Any number of processes may open one database. The database orders their commits: a commit
holds the database's commit lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: a row lock on the
one-row `commit_clock` table), learns every commit made since the committer last looked, and
only then writes. `watch_commits` tells a process, cheaply, that another one committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import orjson

from reactive.errors import PersistenceError
from reactive.types import IndexKey, Order

__all__ = [
    "CommitNews",
    "CommitRecord",
    "CommitWrite",
    "DocumentWrite",
    "HeldCommitLock",
    "IndexEntry",
    "IndexMeta",
    "IndexState",
    "IndexWrite",
    "MutationKeysStored",
    "MutationRecord",
    "Persistence",
    "Revise",
    "StoredDocument",
    "TableMeta",
]


@dataclass(frozen=True, slots=True)
class DocumentWrite:
    """One new version of a document; `value` is None for a deletion (tombstone)."""

    table_number: int
    id: str
    value: bytes | None
    prev_ts: int | None


@dataclass(frozen=True, slots=True)
class IndexWrite:
    """One new version of an index entry; `deleted` marks the key as no longer present."""

    index_id: int
    key: IndexKey
    deleted: bool
    document_id: str


@dataclass(frozen=True, slots=True)
class MutationRecord:
    """The stored outcome of a mutation, keyed by the client's (session_id, request_id).

    `identity` is the token identifier of the identity that ran it ("" for none), so that the
    outcome is never handed to another identity that reuses the key."""

    session_id: str
    request_id: int
    ts: int
    result: bytes
    identity: str = ""


@dataclass(frozen=True, slots=True)
class CommitWrite:
    """Everything one commit persists atomically at timestamp `ts`.

    `written` is the serialized list of index keys the commit wrote (see recent_writes.py); it lets
    another process sharing the database learn what changed.
    """

    ts: int
    documents: list[DocumentWrite]
    indexes: list[IndexWrite]
    written: bytes = b""
    mutation: MutationRecord | None = None


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """A stored commit as any process reads it back: its ts and the keys it wrote."""

    ts: int
    written: bytes


@dataclass(frozen=True, slots=True)
class CommitNews:
    """What `watch_commits` heard: some process committed up to `newest`.

    When the announcement carried the commits themselves (PostgreSQL, when they fit in a
    notification), `commits` are they, oldest first, and `after` is the ts of the commit just
    before them: a process that has learnt every commit up to at least `after` can learn these
    without reading the commit table. Otherwise `commits` is empty."""

    newest: int
    after: int | None = None
    commits: tuple[CommitRecord, ...] = ()


#: Called by `write_commits`, with the commit lock held, when other commits landed after the
#: committer's `seen_ts`: given them (oldest first), it returns the commits to write instead.
Revise = Callable[[list[CommitRecord]], Awaitable[list[CommitWrite]]]


class HeldCommitLock(Protocol):
    """The database's commit lock, held: no process can commit until it is released."""

    #: Commits other processes made after the holder's `seen_ts`, oldest first.
    newer: list[CommitRecord]

    async def write(self, commits: list[CommitWrite]) -> None:
        """Persist `commits` durably and release the lock (at most once)."""


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A document version as read back: its encoded value and the ts that wrote it."""

    id: str
    ts: int
    value: bytes


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One live index entry at a snapshot, joined with the document version it points to."""

    key: IndexKey
    document: StoredDocument


class IndexState(StrEnum):
    """Lifecycle of an index: BACKFILLING -> READY; only READY indexes serve queries."""

    BACKFILLING = "backfilling"
    READY = "ready"


@dataclass(frozen=True, slots=True)
class TableMeta:
    name: str
    number: int


@dataclass(frozen=True, slots=True)
class IndexMeta:
    index_id: int
    table_number: int
    name: str
    fields: tuple[str, ...] = field(default_factory=tuple)
    state: IndexState = IndexState.READY


class MutationKeysStored(PersistenceError):
    """`write_commits` wrote nothing: a mutation key of the group is stored already (a resent
    mutation that ran before). Only raised by backends that `check_mutation_keys`."""


@runtime_checkable
class Persistence(Protocol):
    """A storage backend. All methods are coroutines; every write is durable when it returns."""

    url: str
    #: Whether `write_commits` checks, in the round trip of its write, that no mutation key of
    #: the group is stored yet, raising MutationKeysStored (nothing written) if one is: then
    #: a mutation need not be looked up before it runs (`Database.run_mutation`).
    check_mutation_keys: bool

    async def open(self) -> None:
        """Connect and create the tables if they do not exist."""

    async def close(self) -> None: ...

    # -- metadata --------------------------------------------------------------------------
    async def load_tables(self) -> list[TableMeta]: ...

    async def create_table(self, name: str, number: int | None = None) -> TableMeta:
        """The table called `name`, creating it (numbered `number`, or one past the highest)
        if no process has yet. Atomic across processes. PersistenceError if `number` is
        taken by another table."""

    async def load_indexes(self) -> list[IndexMeta]: ...

    async def create_index(
        self, table_number: int, name: str, fields: tuple[str, ...], state: IndexState
    ) -> IndexMeta:
        """The index `name` of a table, creating it with a fresh id if no process has yet.
        Atomic across processes; an existing index is returned as it is stored."""

    async def save_index(self, index: IndexMeta) -> None:
        """Replace the metadata row of an existing index (its state, say)."""

    async def drop_index(self, index_id: int) -> None:
        """Remove an index's metadata and every entry it has."""

    async def get_meta(self, key: str) -> bytes | None: ...

    async def set_meta(self, key: str, value: bytes) -> None: ...

    async def meta_items(self, prefix: str) -> list[tuple[str, bytes]]:
        """Every (key, value) whose key starts with `prefix`, by key."""

    async def delete_meta(self, key: str) -> None: ...

    async def setdefault_meta(self, key: str, value: bytes) -> bytes:
        """The value stored under `key`, storing `value` first if there is none (atomic: of
        two processes racing, both get the first one's value)."""

    # -- writes ----------------------------------------------------------------------------
    async def write_commits(
        self,
        commits: list[CommitWrite],
        *,
        seen_ts: int | None = None,
        revise: Revise | None = None,
        alone: bool = False,
    ) -> list[CommitWrite]:
        """Persist several commits in ONE database transaction (group commit), durably, under
        the database's commit lock; returns the commits written.

        With `seen_ts`, commits other processes made after it are first handed to `revise`
        (still under the lock), and what it returns is written instead; without `revise`
        that is an error. Either all of them are stored or none is (the error propagates).
        `alone` says that no other transaction of this process is running: a backend whose
        write blocks may then do it on the event loop, which has nothing else to do.
        """

    def hold_commit_lock(self, seen_ts: int) -> AbstractAsyncContextManager[HeldCommitLock]:
        """Take the commit lock and keep it until the block ends (or `write` is called): for a
        transaction that must not lose to any commit, of any process. Nothing written by the
        end of the block is rolled back. Other writes by the holding task (a table its
        transaction creates, say) must not wait for the lock: a backend whose lock they would
        wait for runs them inside the held transaction."""

    def exclusive(self, name: str, *, wait: bool) -> AbstractAsyncContextManager[bool]:
        """A lock named `name` shared by every process on the database, held for the block:
        yields True once held, or (with `wait=False`) False at once if another holds it.
        For work that must happen once, not once per node (schema changes, pruning)."""

    async def watch_commits(
        self, hint: Callable[[CommitNews | None], None], active: Callable[[], bool]
    ) -> None:
        """Run until cancelled, calling `hint(news)` when some process may have committed
        (`None`: look at the commit table). A hint may be lost or repeated; the caller
        catches up from `commits_after`. `active()` says whether anyone is waiting for news
        (a backend that polls may then poll more often)."""

    async def write_index_entries(self, entries: list[tuple[IndexWrite, int]]) -> None:
        """Store index entries at given timestamps (used to backfill a new index).

        An entry whose (index_id, key, ts) is already stored is left as it is, so an
        interrupted backfill can simply be run again.
        """

    # -- reads at a snapshot ---------------------------------------------------------------
    async def max_commit_ts(self) -> int:
        """The ts of the newest commit, or 0 for an empty database."""

    async def get_document(self, table_number: int, id: str, ts: int) -> StoredDocument | None:
        """Newest version of `id` with version ts <= `ts`; None if absent or deleted."""

    async def index_scan(
        self,
        index_id: int,
        table_number: int,
        start: IndexKey,
        end: IndexKey,
        ts: int,
        order: Order,
        limit: int,
    ) -> list[IndexEntry]:
        """Up to `limit` live entries with start <= key < end at snapshot `ts`, in `order`.

        For each key only its newest row with row.ts <= ts counts; tombstones are skipped
        (and do not count towards `limit`). Each entry carries the document version written
        at the same ts as the index row.
        """

    async def index_keys_ranges(
        self,
        index_id: int,
        ranges: Sequence[tuple[IndexKey, IndexKey]],
        ts: int,
        limit: int,
    ) -> list[list[IndexKey]]:
        """The live keys of each (start, end) range at snapshot `ts`, ascending, up to `limit`
        each (the rule of `index_scan`, without the documents: every index key ends with its
        document's id), in one read: a search's terms cost one round trip rather than one
        each, and it ranks from its postings' keys alone."""

    async def get_documents(
        self, table_number: int, ids: Sequence[str], ts: int
    ) -> list[StoredDocument | None]:
        """`get_document` of each id, in the order given, in one read."""

    async def table_scan(
        self, table_number: int, ts: int, after_id: str | None, limit: int
    ) -> list[StoredDocument]:
        """Live documents of a table at snapshot `ts`, ordered by id, strictly after `after_id`."""

    async def count_index(self, index_id: int, ts: int) -> int:
        """How many live entries the index holds at snapshot `ts`: for a table's `by_id`
        index, its documents (the dashboard's counts; one pass over the index, no values)."""

    async def get_mutation(self, session_id: str, request_id: int) -> MutationRecord | None: ...

    async def get_mutations(self, keys: list[tuple[str, int]]) -> list[MutationRecord]:
        """The stored records among `keys` ((session_id, request_id) pairs), in one read."""

    async def commits_after(self, ts: int) -> list[CommitRecord]:
        """Every commit with ts > `ts`, oldest first."""

    # -- maintenance -----------------------------------------------------------------------
    async def prune(self, before_ts: int) -> int:
        """Delete versions no snapshot >= `before_ts` can see; returns how many rows went.

        Also deletes commit records with ts < `before_ts`, except the newest commit, which is
        kept so that `max_commit_ts` never goes backwards. Mutation records are left alone.
        """

    async def prune_mutations(self, before_ts: int) -> int:
        """Delete mutation records with ts < `before_ts`; returns how many rows went."""

    # -- file bytes --------------------------------------------------------------------------
    # Outside the MVCC log: a blob is written before the `_storage` row that names it commits
    # and deleted after the row's deletion commits, so it needs no versions of its own. In the
    # database, every process sharing it reads every process's files.
    async def put_blob(self, key: str, data: bytes) -> None:
        """Store `data` under `key` durably, replacing bytes stored under it before."""

    async def get_blob(self, key: str) -> bytes | None:
        """The bytes stored under `key`, or None."""

    async def delete_blob(self, key: str) -> None:
        """Remove the bytes under `key`, if any."""


# -- helpers shared by the backends ----------------------------------------------------------
# Not in __all__: they serve the modules that implement Persistence, not its callers. A row's
# `deleted` flag is a Python bool on both backends: asyncpg binds it as a boolean, and sqlite3
# binds it as the integer 0/1 that SQLite's `deleted` column holds.
Row = tuple[Any, ...]


def empty_limit(limit: int) -> bool:
    """True for limit 0; a negative limit is a caller bug (SQLite would read it as unbounded)."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return limit == 0


def check_after(commits: list[CommitWrite], last_ts: int) -> None:
    """Commit timestamps increase across every process sharing the database: a commit at or
    before the stored newest one is a bug, refused before anything is written."""
    if commits and commits[0].ts <= last_ts:
        raise PersistenceError(f"commit ts {commits[0].ts} is not after the stored {last_ts}")


def document_rows(commits: list[CommitWrite]) -> list[Row]:
    """(table_id, id, ts, value, deleted, prev_ts) of every document version in `commits`."""
    return [
        (d.table_number, d.id, c.ts, d.value, d.value is None, d.prev_ts)
        for c in commits
        for d in c.documents
    ]


def index_rows(commits: list[CommitWrite]) -> list[Row]:
    """(index_id, key, ts, deleted, document_id) of every index entry in `commits`."""
    return [(i.index_id, i.key, c.ts, i.deleted, i.document_id) for c in commits for i in c.indexes]


def backfill_rows(entries: list[tuple[IndexWrite, int]]) -> list[Row]:
    """The rows of `index_rows` for index entries given each with its own ts."""
    return [(e.index_id, e.key, ts, e.deleted, e.document_id) for e, ts in entries]


def mutation_rows(commits: list[CommitWrite]) -> list[Row]:
    """(session_id, request_id, ts, result, identity) of the commits that record a mutation."""
    return [
        (m.session_id, m.request_id, m.ts, m.result, m.identity)
        for m in (c.mutation for c in commits)
        if m is not None
    ]


def index_meta_row(index: IndexMeta) -> Row:
    """(index_id, table_id, name, fields, state) of an index_meta row; fields as a JSON list."""
    fields = orjson.dumps(list(index.fields)).decode()
    return (index.index_id, index.table_number, index.name, fields, IndexState(index.state).value)


def index_meta_from_row(row: Iterable[Any]) -> IndexMeta:
    """The inverse of `index_meta_row`, for a row as either driver returns it."""
    index_id, table_number, name, fields, state = row
    return IndexMeta(index_id, table_number, name, tuple(orjson.loads(fields)), IndexState(state))
