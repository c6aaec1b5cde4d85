"""PostgreSQL storage: the MVCC log of base.py through an asyncpg pool; a write is committed
(and so durable, with the server's default synchronous_commit) before it returns.

Bytes are stored unchanged as bytea, which compares bytewise; text ids use COLLATE "C" so they
sort bytewise as on SQLite. `?schema=name` in the URL puts every table in that schema.

Many processes may share the database: a commit takes the row lock of the one-row
`commit_clock` table (which holds the newest commit's ts) inside its transaction, and announces
itself with NOTIFY on a channel of the schema, delivered to listeners when it commits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from reactive import knobs
from reactive.errors import DatabaseUnavailableError, PersistenceError
from reactive.persistence.base import (
    CommitNews,
    CommitRecord,
    CommitWrite,
    HeldCommitLock,
    IndexEntry,
    IndexMeta,
    IndexState,
    IndexWrite,
    MutationKeysStored,
    MutationRecord,
    Revise,
    Row,
    StoredDocument,
    TableMeta,
    backfill_rows,
    check_after,
    document_rows,
    empty_limit,
    index_meta_from_row,
    index_meta_row,
    index_rows,
    mutation_rows,
)
from reactive.types import IndexKey, Order

__all__ = ["LISTENER_APPLICATION_NAME", "PostgresPersistence", "split_schema"]

log = logging.getLogger("reactive.persistence.postgres")
T = TypeVar("T")

URL_SCHEMES = ("postgresql", "postgres")
#: How the connection that LISTENs for commits names itself (in pg_stat_activity).
LISTENER_APPLICATION_NAME = "reactive-commit-listener"
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Failures of the server, of the driver, or of the network: all surface as PersistenceError.
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
# Of those, the ones saying the server cannot be reached now (refused, lost, shutting down,
# starting up): DatabaseUnavailableError, which clients are told to retry.
_UNREACHABLE_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    OSError,
    TimeoutError,
)
# What a statement on a connection whose protocol an unexpected message left mid-state raises.
_BROKEN_CONNECTION = asyncpg.InternalClientError


def split_schema(url: str) -> tuple[str, str | None]:
    """Split `?schema=name` off a postgresql:// URL: (URL for asyncpg, schema or None)."""
    parts = urlsplit(url)
    if parts.scheme not in URL_SCHEMES:
        raise ValueError(
            f"not a PostgreSQL URL: expected postgresql://user@host:port/db, got {parts.scheme}://..."
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for name, value in query if name == "schema"]
    if len(schemas) > 1:
        raise ValueError("PostgreSQL URL has more than one ?schema= parameter")
    if schemas and not _SCHEMA_NAME.fullmatch(schemas[0]):
        raise ValueError(
            f"invalid schema name {schemas[0]!r} in PostgreSQL URL: use letters, digits and _,"
            " not starting with a digit, at most 63 characters"
        )
    rest = urlencode([(name, value) for name, value in query if name != "schema"])
    return urlunsplit(parts._replace(query=rest)), (schemas[0] if schemas else None)


class PostgresPersistence:
    """The Persistence protocol on PostgreSQL (see the module docstring)."""

    #: `reactive_write_group` checks the group's mutation keys: no round trip of their own.
    check_mutation_keys = True

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._dsn, self.schema = split_schema(url)
        self._min_size = min_size
        self._max_size = max_size
        #: None before open() and after close().
        self._pool: asyncpg.Pool | None = None
        #: The committer's own connection (a pool of one, so that it is replaced like any
        #: other): its group writes never queue behind reads for one of `_pool`'s.
        self._commit_pool: asyncpg.Pool | None = None
        #: The NOTIFY channel commits are announced on: one per schema.
        self.channel = commit_channel(self.schema)

    @property
    def _where(self) -> str:
        """Host/port/db for messages; never the password."""
        parts = urlsplit(self._dsn)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            raise PersistenceError(f"PostgreSQL database {self._where} is already open")
        self._pool = await self._create_pool(self._min_size, self._max_size)
        try:
            self._commit_pool = await self._create_pool(1, 1)
            await self._create_schema()
        except BaseException:
            await self.close()
            raise

    async def _create_pool(self, min_size: int, max_size: int) -> asyncpg.Pool:
        try:
            return await asyncpg.create_pool(
                self._dsn,
                min_size=min_size,
                max_size=max_size,
                server_settings=self._settings(),
                reset=_keep_released,
            )
        except _DRIVER_ERRORS as exc:
            raise _failure(f"could not connect to PostgreSQL at {self._where}: {exc}", exc) from exc

    def _settings(self) -> dict[str, str]:
        # JIT compilation costs far more than our short statements save: the planner's row
        # estimates for the per-key newest-version filter are pessimistic, which would trigger
        # it (~150 ms) on scans that take well under a millisecond.
        settings = {"jit": "off"}
        # A transaction whose client vanished (a cut network) would keep the commit lock until
        # TCP gives up, hours later; the server ends it after this long idle instead.
        idle_ms = int(knobs.POSTGRES_IDLE_TX_TIMEOUT_S * 1000)
        settings["idle_in_transaction_session_timeout"] = str(idle_ms)
        if self.schema:
            settings["search_path"] = f'"{self.schema}"'
        return settings

    async def _create_schema(self) -> None:
        async with self._transaction("open") as conn:
            # Serialises concurrent openers: CREATE ... IF NOT EXISTS can race on the catalog.
            await conn.execute(LOCK_SCHEMA_CREATION)
            if self.schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute(CREATE_SCHEMA)
            await conn.execute(ADD_MUTATION_IDENTITY)
            await _cover_index_deletions(conn)
            await conn.execute(CREATE_ANNOUNCE_TRIGGER.format(channel=self.channel))
            await conn.execute(CREATE_WRITE_GROUP)

    async def close(self) -> None:
        """Close the pool; safe to call twice."""
        pools = [pool for pool in (self._commit_pool, self._pool) if pool is not None]
        self._pool = self._commit_pool = None
        for pool in pools:
            await pool.close()

    # -- plumbing --------------------------------------------------------------------------
    def _require_pool(self, operation: str, *, committer: bool = False) -> asyncpg.Pool:
        pool = self._commit_pool if committer else self._pool
        if pool is None:
            raise PersistenceError(
                f"cannot {operation}: PostgreSQL database {self._where} is not open"
            )
        return pool

    @asynccontextmanager
    async def _transaction(self, operation: str) -> AsyncIterator[asyncpg.Connection]:
        async with self._connection(operation) as conn:
            with self._wrapping(operation):
                async with conn.transaction():
                    yield conn

    async def _fetch(self, operation: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Rows of one read. A pooled connection can break while it sits idle: the FATAL of a
        backend killed under it leaves asyncpg's protocol mid-message until the socket's end
        arrives, and a statement on it fails with InternalClientError before anything is sent.
        Such a connection is closed and the read tried on another (every pooled one may be
        broken at once: up to the pool's size, then a new connection)."""
        with self._wrapping(operation):
            for _ in range(self._max_size):
                try:
                    return await self._fetch_once(operation, sql, args)
                except _BROKEN_CONNECTION:
                    log.info("PostgreSQL %s: a pooled connection was broken; retrying", operation)
            return await self._fetch_once(operation, sql, args)

    async def _fetch_once(self, operation: str, sql: str, args: Any) -> list[asyncpg.Record]:
        async with self._connection(operation) as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows

    # -- metadata --------------------------------------------------------------------------
    async def load_tables(self) -> list[TableMeta]:
        rows = await self._fetch("load_tables", SELECT_TABLES)
        return [TableMeta(name=name, number=number) for number, name in rows]

    async def create_table(self, name: str, number: int | None = None) -> TableMeta:
        async with self._transaction("create_table") as conn:
            await conn.execute(LOCK_CATALOG)
            existing = await conn.fetchval(SELECT_TABLE_NUMBER, name)
            if existing is not None:
                return TableMeta(name=name, number=existing)
            if number is None:
                number = await conn.fetchval(NEXT_TABLE_NUMBER)
            else:
                taken = await conn.fetchval(SELECT_TABLE_NAME, number)
                if taken is not None:
                    raise PersistenceError(f"table number {number} belongs to {taken!r}")
            await conn.execute(INSERT_TABLE, number, name)
            return TableMeta(name=name, number=number)

    async def load_indexes(self) -> list[IndexMeta]:
        return [
            index_meta_from_row(row) for row in await self._fetch("load_indexes", SELECT_INDEXES)
        ]

    async def create_index(
        self, table_number: int, name: str, fields: tuple[str, ...], state: IndexState
    ) -> IndexMeta:
        async with self._transaction("create_index") as conn:
            await conn.execute(LOCK_CATALOG)
            existing = await conn.fetchrow(SELECT_INDEX_BY_NAME, table_number, name)
            if existing is not None:
                return index_meta_from_row(existing)
            index_id = await conn.fetchval(NEXT_INDEX_ID)
            meta = IndexMeta(index_id, table_number, name, fields, state)
            await conn.execute(UPSERT_INDEX_META, *index_meta_row(meta))
            return meta

    async def save_index(self, index: IndexMeta) -> None:
        async with self._transaction("save_index") as conn:
            await conn.execute(UPSERT_INDEX_META, *index_meta_row(index))

    async def drop_index(self, index_id: int) -> None:
        async with self._transaction("drop_index") as conn:
            await conn.execute(DELETE_INDEX_META, index_id)
            await conn.execute(DELETE_INDEX_ROWS, index_id)

    async def get_meta(self, key: str) -> bytes | None:
        rows = await self._fetch("get_meta", SELECT_META, key)
        return rows[0][0] if rows else None

    async def set_meta(self, key: str, value: bytes) -> None:
        async with self._transaction("set_meta") as conn:
            await conn.execute(UPSERT_META, key, value)

    async def meta_items(self, prefix: str) -> list[tuple[str, bytes]]:
        rows = await self._fetch("meta_items", SELECT_META_PREFIX, prefix)
        return [(key, value) for key, value in rows]

    async def delete_meta(self, key: str) -> None:
        async with self._transaction("delete_meta") as conn:
            await conn.execute(DELETE_META, key)

    async def setdefault_meta(self, key: str, value: bytes) -> bytes:
        async with self._transaction("setdefault_meta") as conn:
            await conn.execute(INSERT_META_IF_ABSENT, key, value)
            stored: bytes = await conn.fetchval(SELECT_META, key)
            return stored

    # -- writes ----------------------------------------------------------------------------
    async def write_commits(
        self,
        commits: list[CommitWrite],
        *,
        seen_ts: int | None = None,
        revise: Revise | None = None,
        alone: bool = False,  # writes are awaited I/O here: nothing to gain
    ) -> list[CommitWrite]:
        if seen_ts is not None and commits and await self._write_if_current(commits, seen_ts):
            return commits
        async with self._locked(seen_ts) as held:
            if held.newer:
                if revise is None:
                    raise PersistenceError(
                        f"write_commits: {len(held.newer)} commits landed after ts {seen_ts}"
                    )
                commits = await revise(held.newer)
            await held.write(commits)
        return commits

    async def _write_if_current(self, commits: list[CommitWrite], seen_ts: int) -> bool:
        """Write the group in one round trip if no other process committed after `seen_ts`
        (the usual case); False, having written nothing, if one did: the caller then takes the
        lock, learns those commits and revises the group (`_locked`).

        One statement calls `reactive_write_group`, which takes the commit lock, compares the
        clock with `seen_ts` and writes; its implicit transaction commits before the answer
        comes back, so a True is durable. Ambiguity is as for any commit: a connection lost
        meanwhile raises, and the committer looks the commit up under the lock."""
        check_after(commits, seen_ts)
        async with self._connection("commit", committer=True) as conn:
            newer = await self._wrap("write_commits", _write_group(conn, seen_ts, commits))
        _refuse_stored_keys(newer)
        return newer is None

    def hold_commit_lock(self, seen_ts: int) -> AbstractAsyncContextManager[HeldCommitLock]:
        return self._locked(seen_ts)

    @asynccontextmanager
    async def _locked(self, seen_ts: int | None) -> AsyncIterator[_HeldLock]:
        """The commit lock, in a transaction of its own connection; `seen_ts=None` skips
        reading newer commits and checking the order (tests writing rows directly)."""
        async with self._connection("commit") as conn:
            held = await self._wrap("commit", self._lock_clock(conn, seen_ts))
            try:
                yield held
            finally:
                await held.stop_keeping_alive()
                if not held.written:
                    with contextlib.suppress(*_DRIVER_ERRORS):
                        await held.transaction.rollback()

    async def _lock_clock(self, conn: asyncpg.Connection, seen_ts: int | None) -> _HeldLock:
        transaction = conn.transaction()
        await transaction.start()
        # Waits for the commit in flight elsewhere, then reads the clock it advanced.
        last: int = await conn.fetchval(LOCK_COMMIT_CLOCK)
        newer = []
        if seen_ts is not None and last > seen_ts:
            newer = [CommitRecord(ts, w) for ts, w in await conn.fetch(COMMITS_AFTER, seen_ts)]
        checked_last = None if seen_ts is None else last
        return _HeldLock(self, conn, transaction, newer, checked_last)

    @asynccontextmanager
    async def _connection(
        self, operation: str, *, committer: bool = False
    ) -> AsyncIterator[asyncpg.Connection]:
        """A pool connection for the block (the committer's own with `committer`); failing to
        get one is a PersistenceError too.

        Released connections are not reset by a round trip (see `_keep_released`), so a block
        that ends in an exception closes its connection instead of pooling it: a statement may
        have been cut off, or the protocol left in a state that only a round trip would show."""
        pool = self._require_pool(operation, committer=committer)
        conn = await self._wrap(operation, pool.acquire())
        try:
            yield conn
        except BaseException:
            conn.terminate()
            raise
        finally:
            # A release that fails closes the connection (asyncpg): nothing to pool, or undo.
            with contextlib.suppress(*_DRIVER_ERRORS):
                await pool.release(conn)

    async def _wrap(self, operation: str, work: Awaitable[T]) -> T:
        """Await `work`, a driver failure surfacing as PersistenceError."""
        with self._wrapping(operation):
            return await work

    @contextlib.contextmanager
    def _wrapping(self, operation: str) -> Iterator[None]:
        """A driver failure inside the block surfaces as PersistenceError."""
        try:
            yield
        except _DRIVER_ERRORS as exc:
            raise _failure(f"PostgreSQL {operation} failed on {self._where}: {exc}", exc) from exc

    @asynccontextmanager
    async def exclusive(self, name: str, *, wait: bool) -> AsyncIterator[bool]:
        # A session advisory lock on a connection held for the block: released by the server
        # if this process dies. Keyed by schema, so that schemas sharing a database don't meet.
        async with self._connection(name) as conn:
            function = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
            key = f"{self.schema or 'public'}.reactive.{name}"
            held = await self._wrap(name, conn.fetchval(f"SELECT {function}(hashtext($1))", key))
            held = True if held is None else bool(held)  # pg_advisory_lock returns void
            try:
                yield held
            finally:
                if held:
                    await _unlock_or_drop(conn, key)

    async def watch_commits(
        self, hint: Callable[[CommitNews | None], None], active: Callable[[], bool]
    ) -> None:
        # One connection of its own LISTENs; after every (re)connect the caller is told to read
        # the commit table, so what was announced while no one listened is not lost.
        delay = 0.1
        while True:
            try:
                settings = {**self._settings(), "application_name": LISTENER_APPLICATION_NAME}
                conn = await asyncpg.connect(self._dsn, server_settings=settings)
            except _DRIVER_ERRORS as exc:
                log.warning("cannot listen for commits on %s (%s); retrying", self._where, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            try:
                await self._listen(conn, hint)
            except _DRIVER_ERRORS as exc:
                log.warning("lost the commit listener on %s (%s); reconnecting", self._where, exc)
            finally:
                with contextlib.suppress(*_DRIVER_ERRORS):
                    await asyncio.wait_for(conn.close(), timeout=1.0)
                if not conn.is_closed():
                    conn.terminate()

    async def _listen(
        self, conn: asyncpg.Connection, hint: Callable[[CommitNews | None], None]
    ) -> None:
        """Relay notifications as hints until the connection fails; probing it each
        COMMIT_WATCH_SAFETY_S also catches a connection that died without a word."""
        await conn.add_listener(self.channel, lambda *note: hint(commit_news(note[-1])))
        hint(None)
        while True:
            await asyncio.sleep(knobs.COMMIT_WATCH_SAFETY_S)
            await conn.fetchval("SELECT 1", timeout=knobs.COMMIT_WATCH_SAFETY_S)
            hint(None)

    async def write_index_entries(self, entries: list[tuple[IndexWrite, int]]) -> None:
        if not entries:
            return
        rows = backfill_rows(entries)
        async with self._transaction("write_index_entries") as conn:
            await conn.executemany(INSERT_INDEX_ROW_IF_NEW, rows)

    # -- reads at a snapshot ---------------------------------------------------------------
    async def max_commit_ts(self) -> int:
        rows = await self._fetch("max_commit_ts", SELECT_MAX_COMMIT_TS)
        return int(rows[0][0])

    async def get_document(self, table_number: int, id: str, ts: int) -> StoredDocument | None:
        rows = await self._fetch("get_document", SELECT_DOCUMENT, table_number, id, ts)
        if not rows or rows[0]["deleted"]:
            return None
        return StoredDocument(id=id, ts=rows[0]["ts"], value=rows[0]["value"])

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
        if empty_limit(limit):
            return []
        sql = INDEX_SCAN_ASC if Order(order) is Order.ASC else INDEX_SCAN_DESC
        rows = await self._fetch("index_scan", sql, index_id, start, end, ts, table_number, limit)
        return [IndexEntry(key, StoredDocument(id, v_ts, value)) for key, id, v_ts, value in rows]

    async def index_keys_ranges(
        self,
        index_id: int,
        ranges: Sequence[tuple[IndexKey, IndexKey]],
        ts: int,
        limit: int,
    ) -> list[list[IndexKey]]:
        if not ranges or empty_limit(limit):
            return [[] for _ in ranges]
        starts, ends = [start for start, _ in ranges], [end for _, end in ranges]
        rows = await self._fetch("index_keys", INDEX_KEYS_RANGES, index_id, starts, ends, ts, limit)
        found: list[list[IndexKey]] = [[] for _ in ranges]
        for n, key in rows:
            found[n - 1].append(key)
        return found

    async def get_documents(
        self, table_number: int, ids: Sequence[str], ts: int
    ) -> list[StoredDocument | None]:
        if not ids:
            return []
        rows = await self._fetch("get_documents", SELECT_DOCUMENTS, table_number, list(ids), ts)
        found: list[StoredDocument | None] = [None] * len(ids)
        for n, version_ts, value in rows:
            found[n - 1] = StoredDocument(ids[n - 1], version_ts, value)
        return found

    async def table_scan(
        self, table_number: int, ts: int, after_id: str | None, limit: int
    ) -> list[StoredDocument]:
        if empty_limit(limit):
            return []
        # Every id is a non-empty string, so "" sorts before all of them.
        rows = await self._fetch("table_scan", TABLE_SCAN, table_number, after_id or "", ts, limit)
        return [StoredDocument(id, v_ts, value) for id, v_ts, value in rows]

    async def count_index(self, index_id: int, ts: int) -> int:
        rows = await self._fetch("count_index", COUNT_INDEX, index_id, ts)
        return int(rows[0][0])

    async def get_mutation(self, session_id: str, request_id: int) -> MutationRecord | None:
        rows = await self._fetch("get_mutation", SELECT_MUTATION, session_id, request_id)
        if not rows:
            return None
        row = rows[0]
        return MutationRecord(session_id, request_id, row["ts"], row["result"], row["identity"])

    async def get_mutations(self, keys: list[tuple[str, int]]) -> list[MutationRecord]:
        if not keys:
            return []
        sessions, requests = [k[0] for k in keys], [k[1] for k in keys]
        rows = await self._fetch("get_mutations", SELECT_MUTATIONS, sessions, requests)
        return [
            MutationRecord(r["session_id"], r["request_id"], r["ts"], r["result"], r["identity"])
            for r in rows
        ]

    async def commits_after(self, ts: int) -> list[CommitRecord]:
        rows = await self._fetch("commits_after", COMMITS_AFTER, ts)
        return [CommitRecord(c_ts, written) for c_ts, written in rows]

    # -- maintenance -----------------------------------------------------------------------
    async def prune(self, before_ts: int) -> int:
        removed = 0
        async with self._transaction("prune") as conn:
            for sql in (PRUNE_DOCUMENTS, PRUNE_INDEX_ROWS, PRUNE_COMMITS):
                removed += _row_count(await conn.execute(sql, before_ts))
        return removed

    async def prune_mutations(self, before_ts: int) -> int:
        async with self._transaction("prune_mutations") as conn:
            return _row_count(await conn.execute(PRUNE_MUTATIONS, before_ts))

    # -- file bytes --------------------------------------------------------------------------
    async def put_blob(self, key: str, data: bytes) -> None:
        async with self._transaction("put_blob") as conn:
            await conn.execute(UPSERT_BLOB, key, data)

    async def get_blob(self, key: str) -> bytes | None:
        rows = await self._fetch("get_blob", SELECT_BLOB, key)
        return bytes(rows[0][0]) if rows else None

    async def delete_blob(self, key: str) -> None:
        async with self._transaction("delete_blob") as conn:
            await conn.execute(DELETE_BLOB, key)


async def _cover_index_deletions(conn: asyncpg.Connection) -> None:
    """Upgrade a database whose `indexes` primary key lacks `deleted` (see
    INDEX_KEY_COVERS_DELETED): one rebuild of that index, under the schema-creation lock."""
    if await conn.fetchval(INDEX_KEY_COVERS_DELETED):
        return
    rows = await conn.fetchval(
        "SELECT reltuples::BIGINT FROM pg_class WHERE oid = 'indexes'::regclass"
    )
    log.warning(
        "upgrading the primary key of the indexes table (once; about %d rows, which are "
        "locked meanwhile)",
        max(rows, 0),
    )
    started = time.monotonic()
    await conn.execute(COVER_INDEX_DELETIONS)
    log.warning("upgraded the indexes table's primary key in %.1f s", time.monotonic() - started)


class _HeldLock:
    """The clock row, locked in an open transaction (see `hold_commit_lock`)."""

    def __init__(
        self,
        store: PostgresPersistence,
        conn: asyncpg.Connection,
        transaction: Any,
        newer: list[CommitRecord],
        last_ts: int | None,
    ) -> None:
        self.newer = newer
        self.written = False
        self.transaction = transaction
        self._store = store
        self._conn = conn
        self._last_ts = last_ts
        self._done_waiting = asyncio.Event()
        self._keeper = asyncio.create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        """While the lock is held without a statement (a schema change holding off commits
        while it backfills an index, minutes on a large table), say something every quarter
        of the idle-in-transaction timeout: the server would otherwise end the session, and
        the schema change with it. A holder cut off from the server stops talking, and the
        timeout still frees the lock."""
        interval = knobs.POSTGRES_IDLE_TX_TIMEOUT_S / 4
        while not self._done_waiting.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done_waiting.wait(), interval)
                return
            try:
                await self._conn.fetchval("SELECT 1")
            except _DRIVER_ERRORS:
                return  # the connection is gone: the write or the rollback will say so

    async def stop_keeping_alive(self) -> None:
        """Let a keep-alive statement in flight finish (cancelling it would abort the
        transaction), then stop; idempotent."""
        self._done_waiting.set()
        await self._keeper

    async def write(self, commits: list[CommitWrite]) -> None:
        if self.written:
            raise PersistenceError("the held commit lock was already used to write")
        await self.stop_keeping_alive()
        if self._last_ts is not None:
            check_after(commits, self._last_ts)
        await self._store._wrap("write_commits", self._write(commits))
        self.written = True

    async def _write(self, commits: list[CommitWrite]) -> None:
        # Under the lock the clock cannot have moved past what was read when taking it.
        seen_ts = _NO_CLOCK_CHECK if self._last_ts is None else self._last_ts
        newer = await _write_group(self._conn, seen_ts, commits)
        _refuse_stored_keys(newer)  # the transaction stays usable: the caller may write again
        if newer is not None:
            raise PersistenceError(f"the commit clock moved to {newer} under the held lock")
        await self.transaction.commit()


async def _write_group(
    conn: asyncpg.Connection, seen_ts: int, commits: list[CommitWrite]
) -> int | None:
    """Every row of a group in ONE statement (`reactive_write_group`): None once written, or
    the clock, and nothing written, if a commit after `seen_ts` holds it, or
    MUTATION_KEY_STORED, nothing written, if one of its mutation keys is stored already."""
    if not commits:
        return None
    documents = _columns(document_rows(commits), 6)
    indexes = _columns(index_rows(commits), 5)
    mutations = _columns(mutation_rows(commits), 5)
    records = [[c.ts for c in commits], [c.written for c in commits]]
    newer: int | None = await conn.fetchval(
        WRITE_GROUP, seen_ts, *documents, *indexes, *mutations, *records
    )
    return newer


def _refuse_stored_keys(newer: int | None) -> None:
    if newer == MUTATION_KEY_STORED:
        raise MutationKeysStored("write_commits: a mutation of the group ran before")


def _columns(rows: list[Row], width: int) -> list[list[Any]]:
    """Rows turned into one list per column (what `unnest` takes)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


def _failure(message: str, exc: BaseException) -> PersistenceError:
    """The error for a driver failure: DatabaseUnavailableError when the server is out of reach
    (a closed connection surfaces from asyncpg as an InterfaceError saying so; a connection
    left stuck by the loss, as an InternalClientError)."""
    closed = isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)
    stuck = isinstance(exc, asyncpg.InternalClientError)
    if closed or stuck or isinstance(exc, _UNREACHABLE_ERRORS):
        return DatabaseUnavailableError(message)
    return PersistenceError(message)


def commit_channel(schema: str | None) -> str:
    """The NOTIFY channel of a schema's commits (a short name: channels are identifiers)."""
    if schema is None:
        return "reactive_commits"
    return "reactive_commits_" + hashlib.sha256(schema.encode()).hexdigest()[:16]


async def _keep_released(conn: asyncpg.Connection) -> None:
    """Ready a released connection for the pool without a round trip. asyncpg's default reset
    (UNLISTEN, RESET ALL, CLOSE ALL, unlock every advisory lock) cost one on every release,
    and so on every read and commit. Before calling this, asyncpg has already rolled back a
    transaction left open (and closed the connection if that failed). Pool connections keep
    no other session state: nothing LISTENs or SETs on them, and `exclusive`'s advisory lock
    is released by `_unlock_or_drop`. A connection whose block failed was closed by
    `_connection`, since its protocol state cannot be checked without a round trip."""


async def _unlock_or_drop(conn: asyncpg.Connection, key: str) -> None:
    """Release `exclusive`'s session lock; if that fails, end the connection, which releases
    it in the server, rather than pool a connection that still holds it."""
    try:
        await conn.fetchval("SELECT pg_advisory_unlock(hashtext($1))", key)
    except _DRIVER_ERRORS:
        conn.terminate()


def commit_news(payload: object) -> CommitNews | None:
    """An announcement of `reactive_announce_commits`: "<after> <ts>:<written, base64> ..."
    with the commits, or "<after> <newest>" when they did not fit (None: unreadable, so look
    at the commit table)."""
    try:
        after, *rest = str(payload).split(" ")
        if len(rest) == 1 and ":" not in rest[0]:
            return CommitNews(int(rest[0]))
        commits = []
        for item in rest:
            ts, written = item.split(":", 1)
            commits.append(CommitRecord(int(ts), base64.b64decode(written, validate=True)))
        return CommitNews(commits[-1].ts, int(after), tuple(commits))
    except (ValueError, IndexError):
        return None


def _row_count(status: str) -> int:
    """Rows affected, from a command status such as 'DELETE 12'."""
    return int(status.rsplit(" ", 1)[-1])


# -- SQL -----------------------------------------------------------------------------------
LOCK_SCHEMA_CREATION = "SELECT pg_advisory_xact_lock(hashtext('reactive.create_schema'))"

CREATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    table_id INTEGER NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    ts BIGINT NOT NULL,
    value BYTEA,
    deleted BOOLEAN NOT NULL,
    prev_ts BIGINT,
    PRIMARY KEY (table_id, id, ts)
);
CREATE TABLE IF NOT EXISTS indexes (
    index_id BIGINT NOT NULL,
    key BYTEA NOT NULL,
    ts BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL,
    document_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (index_id, key, ts) INCLUDE (deleted)
);
CREATE TABLE IF NOT EXISTS commits (
    ts BIGINT PRIMARY KEY,
    written BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS mutation_results (
    session_id TEXT COLLATE "C" NOT NULL,
    request_id BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    result BYTEA NOT NULL,
    PRIMARY KEY (session_id, request_id)
);
CREATE TABLE IF NOT EXISTS tables (
    table_id INTEGER PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS index_meta (
    index_id BIGINT PRIMARY KEY,
    table_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    fields TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS commit_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ts BIGINT NOT NULL
);
INSERT INTO commit_clock (id, ts) SELECT 1, COALESCE(MAX(ts), 0) FROM commits
ON CONFLICT (id) DO NOTHING;
CREATE OR REPLACE FUNCTION reactive_announce_commits() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    previous BIGINT;
    newest BIGINT;
    news TEXT;
BEGIN
    SELECT ts INTO previous FROM commit_clock WHERE id = 1;
    SELECT MAX(ts),
           previous || ' ' || string_agg(
               ts || ':' || translate(encode(written, 'base64'), E'\n', ''), ' ' ORDER BY ts)
      INTO newest, news FROM new_commits;
    UPDATE commit_clock SET ts = GREATEST(ts, newest) WHERE id = 1;
    IF length(news) > {max_notify_chars} THEN
        news := previous || ' ' || newest;
    END IF;
    PERFORM pg_notify(TG_ARGV[0], news);
    RETURN NULL;
END $$;
"""

# Advancing the clock and announcing the commit happen in the server, with the INSERT of the
# commit records (one statement for a whole group): no round trip of their own. The
# announcement carries the commits and the ts before them when they fit (PostgreSQL refuses a
# payload of 8000 bytes or more), so that a listener that is up to date learns them without
# reading the commit table: one round trip less between a commit and another node's push, and
# N nodes do not read every commit back from the database.
MAX_NOTIFY_CHARS = 7900
CREATE_SCHEMA = CREATE_SCHEMA.replace("{max_notify_chars}", str(MAX_NOTIFY_CHARS))
#: Databases made before mutation records named their identity get the column; old records
#: get "" (no identity).
# The primary key of `indexes` carries `deleted`, so that a scan of keys alone (a search's
# postings: `index_keys_ranges`) is an index-only scan, not a heap page read per posting (most
# of a search's time on 1M documents). Databases created before it are upgraded on open.
INDEX_KEY_COVERS_DELETED = """
SELECT i.indnatts > i.indnkeyatts FROM pg_index AS i
WHERE i.indexrelid = to_regclass('indexes_pkey')
"""
COVER_INDEX_DELETIONS = """
ALTER TABLE indexes DROP CONSTRAINT indexes_pkey,
    ADD CONSTRAINT indexes_pkey PRIMARY KEY (index_id, key, ts) INCLUDE (deleted)
"""

ADD_MUTATION_IDENTITY = (
    "ALTER TABLE mutation_results ADD COLUMN IF NOT EXISTS identity TEXT NOT NULL DEFAULT ''"
)

CREATE_ANNOUNCE_TRIGGER = """
DO $$ BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger WHERE tgname = 'announce_commits'
          AND tgrelid = 'commits'::regclass
    ) THEN
        CREATE TRIGGER announce_commits AFTER INSERT ON commits
        REFERENCING NEW TABLE AS new_commits FOR EACH STATEMENT
        EXECUTE FUNCTION reactive_announce_commits('{channel}');
    END IF;
END $$;
"""

# The commit lock: held until the transaction ends. A waiter re-reads the row once the holder
# commits, so it sees the clock the holder advanced.
LOCK_COMMIT_CLOCK = "SELECT ts FROM commit_clock WHERE id = 1 FOR UPDATE"
# Table and index numbers are allocated one process at a time (per schema).
LOCK_CATALOG = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.reactive.catalog'))"

SELECT_TABLES = "SELECT table_id, name FROM tables ORDER BY table_id"
SELECT_TABLE_NUMBER = "SELECT table_id FROM tables WHERE name = $1"
SELECT_TABLE_NAME = "SELECT name FROM tables WHERE table_id = $1"
NEXT_TABLE_NUMBER = "SELECT COALESCE(MAX(table_id), 0) + 1 FROM tables"
INSERT_TABLE = "INSERT INTO tables (table_id, name) VALUES ($1, $2)"
SELECT_INDEXES = "SELECT index_id, table_id, name, fields, state FROM index_meta ORDER BY index_id"
SELECT_INDEX_BY_NAME = """
SELECT index_id, table_id, name, fields, state FROM index_meta WHERE table_id = $1 AND name = $2
"""
NEXT_INDEX_ID = "SELECT COALESCE(MAX(index_id), 0) + 1 FROM index_meta"
UPSERT_INDEX_META = """
INSERT INTO index_meta (index_id, table_id, name, fields, state) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (index_id) DO UPDATE SET
    table_id = excluded.table_id, name = excluded.name,
    fields = excluded.fields, state = excluded.state
"""
DELETE_INDEX_META = "DELETE FROM index_meta WHERE index_id = $1"
DELETE_INDEX_ROWS = "DELETE FROM indexes WHERE index_id = $1"
SELECT_META = "SELECT value FROM meta WHERE key = $1"
SELECT_META_PREFIX = "SELECT key, value FROM meta WHERE starts_with(key, $1) ORDER BY key"
DELETE_META = "DELETE FROM meta WHERE key = $1"
INSERT_META_IF_ABSENT = "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
UPSERT_META = """
INSERT INTO meta (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""

INSERT_INDEX_ROW = """
INSERT INTO indexes (index_id, key, ts, deleted, document_id) VALUES ($1, $2, $3, $4, $5)
"""
INSERT_INDEX_ROW_IF_NEW = INSERT_INDEX_ROW + " ON CONFLICT (index_id, key, ts) DO NOTHING"
# A group's documents, index rows, mutation records and commit records, each column an array,
# written in one statement under the commit lock if the clock still reads `seen` (or less) and
# none of its mutation keys is stored: the lock, the checks and the write cost one round trip.
# Returns NULL once written, else, with nothing written, the clock (another process committed
# after `seen`) or MUTATION_KEY_STORED.
CREATE_WRITE_GROUP = """
CREATE OR REPLACE FUNCTION reactive_write_group(
    seen BIGINT,
    doc_table INTEGER[], doc_id TEXT[], doc_ts BIGINT[], doc_value BYTEA[],
    doc_deleted BOOLEAN[], doc_prev_ts BIGINT[],
    ix_index BIGINT[], ix_key BYTEA[], ix_ts BIGINT[], ix_deleted BOOLEAN[], ix_document TEXT[],
    mu_session TEXT[], mu_request BIGINT[], mu_ts BIGINT[], mu_result BYTEA[], mu_identity TEXT[],
    commit_ts BIGINT[], commit_written BYTEA[]
) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    clock BIGINT;
BEGIN
    -- The commit lock: waits for the commit in flight elsewhere, then reads the clock it
    -- advanced.
    SELECT c.ts INTO clock FROM commit_clock AS c WHERE c.id = 1 FOR UPDATE;
    IF clock > seen THEN
        RETURN clock;
    END IF;
    IF EXISTS (
        SELECT 1 FROM unnest(mu_session, mu_request) AS k(session_id, request_id)
        JOIN mutation_results AS m
          ON m.session_id = k.session_id AND m.request_id = k.request_id
    ) THEN
        RETURN -1;
    END IF;
    WITH new_documents AS (
        INSERT INTO documents (table_id, id, ts, value, deleted, prev_ts)
        SELECT * FROM unnest(doc_table, doc_id, doc_ts, doc_value, doc_deleted, doc_prev_ts)
    ), new_index_rows AS (
        INSERT INTO indexes (index_id, key, ts, deleted, document_id)
        SELECT * FROM unnest(ix_index, ix_key, ix_ts, ix_deleted, ix_document)
    ), new_mutations AS (
        INSERT INTO mutation_results (session_id, request_id, ts, result, identity)
        SELECT * FROM unnest(mu_session, mu_request, mu_ts, mu_result, mu_identity)
    )
    INSERT INTO commits (ts, written) SELECT * FROM unnest(commit_ts, commit_written);
    RETURN NULL;
END $$;
"""
WRITE_GROUP = "SELECT reactive_write_group(" + ", ".join(f"${n}" for n in range(1, 20)) + ")"
MUTATION_KEY_STORED = -1
#: `seen` that no clock exceeds: `hold_commit_lock(None)`'s writes, which check nothing.
_NO_CLOCK_CHECK = 2**63 - 1

SELECT_MAX_COMMIT_TS = "SELECT COALESCE(MAX(ts), 0) FROM commits"
SELECT_DOCUMENT = """
SELECT ts, value, deleted FROM documents
WHERE table_id = $1 AND id = $2 AND ts <= $3
ORDER BY ts DESC LIMIT 1
"""

# Parameters: index_id, start, end, snapshot ts, table_number, limit. A row counts only if it
# is its key's newest row at the snapshot: the correlated MAX runs as a per-row subplan (one
# backward primary-key probe), which the planner never flattens into a join over the whole
# range, so the outer primary-key scan in key order stops as soon as LIMIT is reached.
_INDEX_SCAN = """
SELECT i.key, d.id, d.ts, d.value
FROM indexes AS i
JOIN documents AS d ON d.table_id = $5 AND d.id = i.document_id AND d.ts = i.ts
WHERE i.index_id = $1 AND i.key >= $2 AND i.key < $3 AND NOT i.deleted
  AND i.ts = (
    SELECT MAX(n.ts) FROM indexes AS n
    WHERE n.index_id = i.index_id AND n.key = i.key AND n.ts <= $4
  )
ORDER BY i.key {order}
LIMIT $6
"""
INDEX_SCAN_ASC = _INDEX_SCAN.format(order="ASC")
INDEX_SCAN_DESC = _INDEX_SCAN.format(order="DESC")

# Parameters: index_id, starts, ends, snapshot ts, limit per range: the live keys of each
# (start, end) pair in ascending order, numbered from 1 in the order given (a search's terms),
# by an index-only scan (the primary key covers `deleted`). The newest-version rule is
# INDEX_SCAN's, applied by a window instead of a probe per row: the rows of a range at or
# before the snapshot come in (key, ts) order from the primary key, and a row is its key's
# newest when the next row has another key.
INDEX_KEYS_RANGES = """
SELECT r.n, s.key
FROM unnest($2::BYTEA[], $3::BYTEA[]) WITH ORDINALITY AS r(start, stop, n)
CROSS JOIN LATERAL (
    SELECT v.key
    FROM (
        SELECT i.key, i.deleted, lead(i.key) OVER (ORDER BY i.key, i.ts) AS next_key
        FROM indexes AS i
        WHERE i.index_id = $1 AND i.key >= r.start AND i.key < r.stop AND i.ts <= $4
    ) AS v
    WHERE NOT v.deleted AND v.next_key IS DISTINCT FROM v.key
    ORDER BY v.key
    LIMIT $5
) AS s
ORDER BY r.n, s.key
"""

# Parameters: table_number, ids, snapshot ts: SELECT_DOCUMENT of each id (numbered from 1 in
# the order given; ids absent or deleted at the snapshot give no row), by a LATERAL probe each.
SELECT_DOCUMENTS = """
SELECT r.n, d.ts, d.value
FROM unnest($2::TEXT[]) WITH ORDINALITY AS r(id, n)
CROSS JOIN LATERAL (
    SELECT ts, value, deleted FROM documents
    WHERE table_id = $1 AND id = r.id COLLATE "C" AND ts <= $3
    ORDER BY ts DESC LIMIT 1
) AS d
WHERE NOT d.deleted
"""

# Parameters: table_number, after_id, snapshot ts, limit; the same newest-version rule.
TABLE_SCAN = """
SELECT d.id, d.ts, d.value
FROM documents AS d
WHERE d.table_id = $1 AND d.id > $2 AND NOT d.deleted
  AND d.ts = (
    SELECT MAX(n.ts) FROM documents AS n
    WHERE n.table_id = d.table_id AND n.id = d.id AND n.ts <= $3
  )
ORDER BY d.id
LIMIT $4
"""

COUNT_INDEX = """
SELECT count(*) FROM (
  SELECT DISTINCT ON (key) deleted FROM indexes
  WHERE index_id = $1 AND ts <= $2 ORDER BY key, ts DESC
) AS newest WHERE NOT newest.deleted
"""

SELECT_MUTATION = """
SELECT ts, result, identity FROM mutation_results WHERE session_id = $1 AND request_id = $2
"""
# Several (session_id, request_id) keys in one round trip, each a primary-key probe.
SELECT_MUTATIONS = """
SELECT m.session_id, m.request_id, m.ts, m.result, m.identity
FROM unnest($1::TEXT[], $2::BIGINT[]) AS k(session_id, request_id)
JOIN mutation_results AS m ON m.session_id = k.session_id AND m.request_id = k.request_id
"""
COMMITS_AFTER = "SELECT ts, written FROM commits WHERE ts > $1 ORDER BY ts"

# A version is invisible to every snapshot >= $1 when a newer version exists at or before $1,
# or when it is the newest version at or before $1 and a tombstone (snapshots then see nothing
# either way).
# The versions of one document, or of one index key, are the rows that share (scope, key).
_PRUNE_VERSIONS = """
DELETE FROM {table} AS {alias}
WHERE {alias}.ts <= $1 AND (
    {alias}.deleted OR EXISTS (
        SELECT 1 FROM {table} AS n
        WHERE n.{scope} = {alias}.{scope} AND n.{key} = {alias}.{key}
          AND n.ts > {alias}.ts AND n.ts <= $1
    )
)
"""
PRUNE_DOCUMENTS = _PRUNE_VERSIONS.format(table="documents", alias="d", scope="table_id", key="id")
PRUNE_INDEX_ROWS = _PRUNE_VERSIONS.format(table="indexes", alias="i", scope="index_id", key="key")
# The newest commit always stays: max_commit_ts must never go backwards.
PRUNE_COMMITS = """
DELETE FROM commits WHERE ts < $1 AND ts < (SELECT MAX(ts) FROM commits)
"""
PRUNE_MUTATIONS = "DELETE FROM mutation_results WHERE ts < $1"

# -- SQL of file bytes (Persistence.put_blob and friends) -----------------------------------
# The blobs table joins the schema every open creates; kept in a block of its own. bytea holds
# up to 1 GiB a value; file_storage caps what it stores here well below that.
CREATE_SCHEMA += """
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT COLLATE "C" PRIMARY KEY,
    data BYTEA NOT NULL
);
"""
UPSERT_BLOB = """
INSERT INTO blobs (key, data) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET data = excluded.data
"""
SELECT_BLOB = "SELECT data FROM blobs WHERE key = $1"
DELETE_BLOB = "DELETE FROM blobs WHERE key = $1"
