"""SQLite storage: the MVCC log of base.py in one WAL-mode file, durable before a write returns.

Writes run on one connection owned by a single-thread executor (fsync never blocks the event
loop); reads run inline on a second connection, each statement seeing one consistent snapshot.
Bytes (value, key, written, result, meta value) are stored unchanged as BLOBs; `deleted` is 0/1.

Other processes may write the same file: BEGIN IMMEDIATE is the commit lock, and the reader's
`PRAGMA data_version` changes whenever any other connection commits, which is how a process
notices their commits without reading the commit table. It looks when another process's commit
bell rings (a file per process in `<db>.commit-bells/`, written after every commit; the event
loop watches the directory's inotify descriptor) and, as a safety net, every
COMMIT_WATCH_SAFETY_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from reactive import knobs
from reactive.errors import PersistenceError
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
from reactive.persistence.file_watch import FileWatch
from reactive.types import IndexKey, Order

__all__ = ["SYNCHRONOUS_MODES", "SqlitePersistence", "sqlite_path"]

URL_PREFIX = "sqlite:///"
SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})

T = TypeVar("T")


class _NotWritten:
    """`_write_inline` left the group to the writer thread."""


_NOT_WRITTEN: Final = _NotWritten()
#: The weight of the latest inline write in their moving average of time taken: one write 4x
#: over SQLITE_INLINE_WRITE_MAX_S pauses inline writes, and three in a row 2x over do.
_INLINE_AVERAGE_WEIGHT: Final = 0.25
log = logging.getLogger("reactive.persistence.sqlite")
#: The size the WAL file is cut back to when it starts over (SQLite's journal_size_limit).
WAL_FILE_LIMIT_BYTES: Final = 64 * 1024 * 1024
#: A bell whose pid is not a live process here and that was not rung for this long is removed.
#: WAL mode needs every process of a database on one host, but a container may see others'
#: pids as gone: the age keeps a live one's bell (were it removed, its commits would still be
#: seen, at the watchers' safety look, only later).
ABANDONED_BELL_S: Final = 3600.0


def sqlite_path(url: str) -> Path:
    """The file a `sqlite:///path` URL names; relative paths are relative to the cwd."""
    if not url.startswith(URL_PREFIX):
        raise ValueError(f"not a SQLite URL: expected sqlite:///path/to/file.db, got {url!r}")
    path = url[len(URL_PREFIX) :]
    if not path or path == ":memory:":
        # The writer and the reader are two connections, so they must share a file.
        raise ValueError(f"SQLite URL {url!r} must name a database file, e.g. sqlite:///data.db")
    return Path(path)


class SqlitePersistence:
    """The Persistence protocol on one SQLite file (see the module docstring for threading)."""

    #: The group's write refuses a stored mutation key (the primary key of mutation_results):
    #: no read of its own before each mutation runs, which cost ~0.1 ms of the event loop.
    check_mutation_keys = True

    def __init__(
        self, url: str, *, synchronous: str = "FULL", busy_timeout_ms: int = 30000
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            modes = ", ".join(sorted(SYNCHRONOUS_MODES))
            raise ValueError(f"synchronous must be one of {modes}; got {synchronous!r}")
        self.url = url
        self.path = sqlite_path(url)
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        #: Used inside the executor's thread, and by the event loop for a commit written
        #: inline (`_write_inline`) while no work is in that thread: never by both at once.
        #: None before open() and after close().
        self._writer: sqlite3.Connection | None = None
        #: The writer thread's latest work (the executor runs its work in order).
        self._thread_work: Future[Any] | None = None
        #: Until when commits go to the writer thread after inline writes were slow, and how
        #: long they took lately (a moving average: one slow fsync is not a slow disk).
        self._inline_paused_until = 0.0
        self._inline_write_s = 0.0
        #: Used only from the event loop. None before open() and after close().
        self._reader: sqlite3.Connection | None = None
        #: Held while the writer connection is inside a transaction, which `write_commits` may
        #: keep open across two trips to the writer thread.
        self._write_lock = asyncio.Lock()
        #: The task inside `hold_commit_lock`: its own writes join the held transaction.
        self._holder: asyncio.Task[Any] | None = None
        #: This process's commit bell (see `_ring`), a file of its own in the directory of
        #: bells that every process's commit watcher watches; written by the writer thread.
        self._bells = f"{self.path}.commit-bells"
        self._bell_name = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._bell: int | None = None
        #: Copies the WAL into the database in the background (see `_checkpoint_forever`) on
        #: a connection of its own, used only in the one thread of `_checkpoint_executor`.
        self._checkpointer: asyncio.Task[None] | None = None
        self._checkpoint_executor: ThreadPoolExecutor | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        if self._executor is not None:
            raise PersistenceError(f"SQLite database {self.path} is already open")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="reactive-sqlite-writer")
            await self._in_writer_thread("open", self._open_writer)
            self._reader = self._connect(check_same_thread=False)
            await self._start_checkpointer()
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise PersistenceError(f"could not open SQLite database {self.path}: {exc}") from exc
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close every connection; safe to call twice."""
        await self._stop_checkpointer()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._executor is not None:
            await self._in_writer_thread("close", self._close_writer)
            self._executor.shutdown(wait=True)
            self._executor = None

    def _connect(self, *, check_same_thread: bool) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; writes say BEGIN IMMEDIATE themselves.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=check_same_thread)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        return conn

    def _open_writer(self) -> None:
        conn = self._connect(check_same_thread=False)  # see `_writer`
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        # The writer checkpoints only as a backstop: SQLite's automatic checkpoint runs inside
        # the COMMIT that crosses 1,000 WAL pages, copying and fsyncing the database file
        # while every other commit waits (~300 ms stalls: scheduled jobs at 200/s saw p99
        # lateness 295 ms, 14 ms without). `_checkpoint_forever` copies beside the writer
        # instead, and has the writer copy the short tail between two commits so that the WAL
        # starts over; the writer's own checkpoint past SQLITE_WAL_CHECKPOINT_PAGES is only a
        # backstop (see the knob).
        conn.execute(f"PRAGMA wal_autocheckpoint = {int(knobs.SQLITE_WAL_CHECKPOINT_PAGES)}")
        # And the file shrinks back when the WAL starts over after a burst of big commits.
        conn.execute(f"PRAGMA journal_size_limit = {WAL_FILE_LIMIT_BYTES}")
        conn.executescript(CREATE_SCHEMA)
        _add_mutation_identity(conn)
        self._writer = conn
        os.makedirs(self._bells, exist_ok=True)
        _remove_abandoned_bells(self._bells)
        bell = os.path.join(self._bells, self._bell_name)
        self._bell = os.open(bell, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._bell is not None:
            os.close(self._bell)
            self._bell = None
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._bells, self._bell_name))

    # -- plumbing --------------------------------------------------------------------------
    async def _start_checkpointer(self) -> None:
        executor = ThreadPoolExecutor(1, thread_name_prefix="reactive-sqlite-checkpointer")
        self._checkpoint_executor = executor
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(executor, lambda: self._connect(check_same_thread=False))
        self._checkpoint_conn = conn
        self._checkpointer = asyncio.create_task(
            self._checkpoint_forever(executor, conn), name="reactive-sqlite-checkpointer"
        )

    async def _stop_checkpointer(self) -> None:
        """Stop checkpointing and close its connection. The close is queued on the
        checkpointer's own thread, behind any checkpoint still running there: a cancelled
        await does not stop the thread, and closing a connection another thread is using
        crashes the process (seen in CI: a segmentation fault inside `_checkpoint`)."""
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        executor, conn = self._checkpoint_executor, self._checkpoint_conn
        self._checkpoint_executor = self._checkpoint_conn = None
        if executor is None:
            return
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=True)

    async def _checkpoint_forever(
        self, executor: ThreadPoolExecutor, conn: sqlite3.Connection
    ) -> None:
        """Every CHECKPOINT_INTERVAL_S, a PASSIVE checkpoint on a connection of its own, in a
        thread: it copies what no reader still needs from the WAL into the database without
        taking the write lock, so commits go on meanwhile, and the WAL starts over once all
        of it is copied. A checkpoint another process is running makes this one a no-op."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(knobs.SQLITE_CHECKPOINT_INTERVAL_S)
            try:
                await loop.run_in_executor(executor, _checkpoint, conn)
                await self._checkpoint_the_tail()
            except sqlite3.Error as exc:
                log.warning("checkpointing %s failed, will retry: %s", self.path, exc)

    async def _checkpoint_the_tail(self) -> None:
        """Copy what was committed while the background pass ran, on the writer between two
        commits: the WAL starts over only at a write that finds all of it copied, which under
        steady writes a pass beside the writer never leaves. Without it the WAL grew to
        SQLITE_WAL_CHECKPOINT_PAGES before every restart, each commit's fsync also extending
        the file (a commit's write ~7% slower, the WAL file 2.3x bigger)."""
        async with self._write_lock:
            if self._writer is not None:
                writer = self._writer
                await self._in_writer_thread("checkpoint", lambda: _checkpoint(writer))

    async def _in_writer_thread(self, operation: str, work: Callable[[], T]) -> T:
        if self._executor is None:
            raise PersistenceError(f"cannot {operation}: SQLite database {self.path} is not open")
        self._thread_work = self._executor.submit(work)
        return await asyncio.wrap_future(self._thread_work)

    async def _write(self, operation: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one BEGIN IMMEDIATE ... COMMIT on the writer thread.

        If the awaiting task is cancelled the thread still finishes, so the write may land.
        """
        if self._holder is not None and self._holder is asyncio.current_task():
            # Inside hold_commit_lock: waiting for the lock would wait for ourselves.
            return await self._in_writer_thread(operation, lambda: self._nested(operation, work))
        async with self._write_lock:
            return await self._in_writer_thread(operation, lambda: self._transact(operation, work))

    def _nested(self, operation: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` inside the held transaction; a failure undoes only its own part."""
        conn = self._writer
        if conn is None:
            raise PersistenceError(f"cannot {operation}: SQLite database {self.path} is not open")
        try:
            conn.execute("SAVEPOINT nested")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK TO nested")
                raise
            finally:
                conn.execute("RELEASE nested")
        except sqlite3.Error as exc:
            raise PersistenceError(f"SQLite {operation} failed on {self.path}: {exc}") from exc
        return result

    def _transact(self, operation: str, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._writing(operation) as conn:
            conn.execute("BEGIN IMMEDIATE")
            result = work(conn)
            conn.execute("COMMIT")
        self._ring()
        return result

    @contextlib.contextmanager
    def _writing(self, operation: str) -> Iterator[sqlite3.Connection]:
        """The writer connection, for the writer thread: an error rolls back the open
        transaction and surfaces as PersistenceError."""
        conn = self._writer
        if conn is None:
            raise PersistenceError(f"cannot {operation}: SQLite database {self.path} is not open")
        try:
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise PersistenceError(f"SQLite {operation} failed on {self.path}: {exc}") from exc

    def _fetch(
        self, operation: str, sql: str, params: Iterable[Any], *, on_reader: bool = False
    ) -> list[Row]:
        """Run one read statement inline (cheaper than a thread hop): on the writer connection
        while it is idle, else (or `on_reader`) on the reader connection.

        A connection drops its page cache whenever another connection has committed, so the
        reader re-read every page of a query that follows a commit of ours (~50 us more for
        ten documents); the writer's cache holds what it wrote."""
        conn = self._reader if on_reader else self._idle_writer() or self._reader
        if conn is None:
            raise PersistenceError(f"cannot {operation}: SQLite database {self.path} is not open")
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise PersistenceError(f"SQLite {operation} failed on {self.path}: {exc}") from exc

    def _idle_writer(self) -> sqlite3.Connection | None:
        """The writer connection if nothing uses it (no write under way or held, nothing in
        its thread): the event loop is then its only user until this statement ends."""
        conn = self._writer
        if conn is None or self._write_lock.locked() or not self._thread_idle():
            return None
        return None if conn.in_transaction else conn

    def _thread_idle(self) -> bool:
        """Whether the writer thread has finished all the work handed to it."""
        return self._thread_work is None or self._thread_work.done()

    # -- metadata --------------------------------------------------------------------------
    async def load_tables(self) -> list[TableMeta]:
        rows = self._fetch("load_tables", SELECT_TABLES, ())
        return [TableMeta(name=name, number=number) for number, name in rows]

    async def create_table(self, name: str, number: int | None = None) -> TableMeta:
        def create(conn: sqlite3.Connection) -> TableMeta:
            existing = conn.execute(SELECT_TABLE_NUMBER, (name,)).fetchone()
            if existing is not None:
                return TableMeta(name=name, number=existing[0])
            if number is None:
                chosen = conn.execute(NEXT_TABLE_NUMBER).fetchone()[0]
            else:
                taken = conn.execute(SELECT_TABLE_NAME, (number,)).fetchone()
                if taken is not None:
                    raise PersistenceError(f"table number {number} belongs to {taken[0]!r}")
                chosen = number
            conn.execute(INSERT_TABLE, (chosen, name))
            return TableMeta(name=name, number=chosen)

        return await self._write("create_table", create)

    async def load_indexes(self) -> list[IndexMeta]:
        return [index_meta_from_row(row) for row in self._fetch("load_indexes", SELECT_INDEXES, ())]

    async def create_index(
        self, table_number: int, name: str, fields: tuple[str, ...], state: IndexState
    ) -> IndexMeta:
        def create(conn: sqlite3.Connection) -> IndexMeta:
            existing = conn.execute(SELECT_INDEX_BY_NAME, (table_number, name)).fetchone()
            if existing is not None:
                return index_meta_from_row(existing)
            index_id = conn.execute(NEXT_INDEX_ID).fetchone()[0]
            meta = IndexMeta(index_id, table_number, name, fields, state)
            conn.execute(UPSERT_INDEX_META, index_meta_row(meta))
            return meta

        return await self._write("create_index", create)

    async def save_index(self, index: IndexMeta) -> None:
        params = index_meta_row(index)
        await self._write("save_index", lambda conn: conn.execute(UPSERT_INDEX_META, params))

    async def drop_index(self, index_id: int) -> None:
        def drop(conn: sqlite3.Connection) -> None:
            conn.execute(DELETE_INDEX_META, (index_id,))
            conn.execute(DELETE_INDEX_ROWS, (index_id,))

        await self._write("drop_index", drop)

    async def get_meta(self, key: str) -> bytes | None:
        rows = self._fetch("get_meta", SELECT_META, (key,))
        return rows[0][0] if rows else None

    async def set_meta(self, key: str, value: bytes) -> None:
        await self._write("set_meta", lambda conn: conn.execute(UPSERT_META, (key, value)))

    async def meta_items(self, prefix: str) -> list[tuple[str, bytes]]:
        rows = self._fetch("meta_items", SELECT_META_PREFIX, (len(prefix), prefix))
        return [(key, value) for key, value in rows]

    async def delete_meta(self, key: str) -> None:
        await self._write("delete_meta", lambda conn: conn.execute(DELETE_META, (key,)))

    async def setdefault_meta(self, key: str, value: bytes) -> bytes:
        def setdefault(conn: sqlite3.Connection) -> bytes:
            conn.execute(INSERT_META_IF_ABSENT, (key, value))
            stored: bytes = conn.execute(SELECT_META, (key,)).fetchone()[0]
            return stored

        return await self._write("setdefault_meta", setdefault)

    # -- writes ----------------------------------------------------------------------------
    async def write_commits(
        self,
        commits: list[CommitWrite],
        *,
        seen_ts: int | None = None,
        revise: Revise | None = None,
        alone: bool = False,
    ) -> list[CommitWrite]:
        # One trip to the writer thread (or none: `_write_inline`) when no other process
        # committed since `seen_ts` (the common case); otherwise the transaction stays open,
        # holding the lock, while `revise` runs on the event loop, and a trip to the thread
        # writes what it returned.
        async with self._write_lock:
            inline = self._write_inline(commits, seen_ts) if alone else _NOT_WRITTEN
            if isinstance(inline, _NotWritten):
                newer = await self._in_writer_thread(
                    "write_commits", lambda: self._write_unless_newer(commits, seen_ts)
                )
            else:
                newer = inline
            if newer is None:
                return commits
            try:
                if revise is None:
                    raise PersistenceError(
                        f"write_commits: {len(newer)} commits landed after ts {seen_ts}"
                    )
                commits = await revise(newer)
            except BaseException:
                await self._in_writer_thread("write_commits", self._roll_back)
                raise
            await self._in_writer_thread("write_commits", lambda: self._write_held(commits))
            return commits

    def _write_inline(
        self, commits: list[CommitWrite], seen_ts: int | None
    ) -> list[CommitRecord] | _NotWritten | None:
        """`_write_unless_newer` on the event loop (see knobs.SQLITE_INLINE_WRITE_MAX_ROWS) if
        the group is small, the disk was fast lately, the writer thread is idle and no other
        process holds the write lock; else _NOT_WRITTEN, having done nothing."""
        conn = self._writer
        if (
            conn is None
            or not self._thread_idle()
            or time.monotonic() < self._inline_paused_until
            or sum(map(_row_count, commits)) > knobs.SQLITE_INLINE_WRITE_MAX_ROWS
        ):
            return _NOT_WRITTEN
        try:
            # Never wait for another process's write on the event loop: the thread does that.
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                conn.execute("BEGIN IMMEDIATE")
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        except sqlite3.Error:
            return _NOT_WRITTEN
        started = time.monotonic()
        try:
            return self._write_unless_newer(commits, seen_ts, begun=True)
        finally:
            self._inline_write_took(time.monotonic() - started)

    def _inline_write_took(self, seconds: float) -> None:
        """Count an inline write's time; once they are slow on average (a lone slow fsync is
        not enough), the next SQLITE_INLINE_PAUSE_S of writes go to the thread."""
        self._inline_write_s += (seconds - self._inline_write_s) * _INLINE_AVERAGE_WEIGHT
        if self._inline_write_s > knobs.SQLITE_INLINE_WRITE_MAX_S:
            log.info("commits written inline were slow: writing in the thread for a while")
            self._inline_paused_until = time.monotonic() + knobs.SQLITE_INLINE_PAUSE_S
            self._inline_write_s = 0.0

    def _write_unless_newer(
        self, commits: list[CommitWrite], seen_ts: int | None, *, begun: bool = False
    ) -> list[CommitRecord] | None:
        """BEGIN IMMEDIATE (unless `begun`); then either write and commit `commits` (None), or,
        if commits newer than `seen_ts` exist, return them and leave the transaction open."""
        with self._writing("write_commits") as conn:
            if not begun:
                conn.execute("BEGIN IMMEDIATE")
            if seen_ts is not None:
                last = conn.execute(SELECT_MAX_COMMIT_TS).fetchone()[0]
                if last > seen_ts:
                    rows = conn.execute(COMMITS_AFTER, (seen_ts,)).fetchall()
                    return [CommitRecord(ts, written) for ts, written in rows]
                check_after(commits, last)
            _insert_commits(conn, commits)
            conn.execute("COMMIT")
        self._ring()
        return None

    def _write_held(self, commits: list[CommitWrite]) -> None:
        with self._writing("write_commits") as conn:
            check_after(commits, conn.execute(SELECT_MAX_COMMIT_TS).fetchone()[0])
            _insert_commits(conn, commits)
            conn.execute("COMMIT")
        self._ring()

    def _roll_back(self) -> None:
        with self._writing("write_commits") as conn:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    @contextlib.asynccontextmanager
    async def hold_commit_lock(self, seen_ts: int) -> AsyncIterator[HeldCommitLock]:
        async with self._write_lock:
            newer = await self._in_writer_thread("hold_commit_lock", lambda: self._begin(seen_ts))
            held = _HeldLock(self, newer)
            self._holder = asyncio.current_task()
            try:
                yield held
            finally:
                self._holder = None
                if not held.written:
                    await self._in_writer_thread("hold_commit_lock", self._roll_back)

    def _begin(self, seen_ts: int) -> list[CommitRecord]:
        with self._writing("hold_commit_lock") as conn:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(COMMITS_AFTER, (seen_ts,)).fetchall()
        return [CommitRecord(ts, written) for ts, written in rows]

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str, *, wait: bool) -> AsyncIterator[bool]:
        # An advisory lock on a file beside the database: every process that can open the
        # database can open it too, and the OS frees it if the holder dies.
        path = self.path.with_name(f"{self.path.name}.{name}.lock")
        with open(path, "a+b") as handle:
            held = await asyncio.to_thread(_lock_file, handle.fileno(), wait)
            try:
                yield held
            finally:
                if held:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    async def watch_commits(
        self, hint: Callable[[CommitNews | None], None], active: Callable[[], bool]
    ) -> None:
        watch = FileWatch.open(self._bells, own=self._bell_name)
        hint(None)  # whatever landed between opening and the first look
        if watch is None:
            await self._poll_in_thread(hint, active)
            return
        # The event loop itself watches the bell (no thread: nothing takes the GIL from it),
        # and looks when any process rang it, and every COMMIT_WATCH_SAFETY_S regardless (a
        # writer that does not ring: the sqlite3 shell, say), as PostgreSQL's listener does.
        loop = asyncio.get_running_loop()
        version: list[int | None] = [None]

        def look() -> None:
            try:
                # data_version counts the commits of connections other than the one asked:
                # always ask the same one, the reader (the writer would miss our own).
                rows = self._fetch("watch_commits", "PRAGMA data_version", (), on_reader=True)
                latest = rows[0][0]
                if latest != version[0]:
                    version[0] = latest
                    newest = self._fetch("watch_commits", SELECT_MAX_COMMIT_TS, ())[0][0]
                    hint(CommitNews(int(newest)))
            except PersistenceError as exc:
                log.warning("watching for commits failed, will retry: %s", exc)

        pending: list[asyncio.TimerHandle | None] = [None]

        def looked() -> None:
            pending[0] = None
            look()

        def rung() -> None:
            # Another process's bell (ours is not watched: our commits are known here). The
            # look comes a moment later, once for every ring meanwhile, so that what the
            # loop is doing (publishing, pushing) does not wait for it.
            if watch.drain() and pending[0] is None:
                pending[0] = loop.call_later(knobs.COMMIT_BELL_DELAY_S, looked)

        loop.add_reader(watch.fileno(), rung)
        try:
            while True:
                await asyncio.sleep(knobs.COMMIT_WATCH_SAFETY_S)
                look()
        finally:
            if pending[0] is not None:
                pending[0].cancel()
            loop.remove_reader(watch.fileno())
            watch.close()

    async def _poll_in_thread(
        self, hint: Callable[[CommitNews | None], None], active: Callable[[], bool]
    ) -> None:
        """Without inotify: a thread of its own polls, on a connection of its own (a poll
        every few ms costs the thread microseconds, where a timer on the event loop would
        cost the server a loop iteration each time); the loop hears only of a change."""
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        watcher = threading.Thread(
            target=self._poll_commits,
            args=(lambda ts: loop.call_soon_threadsafe(hint, CommitNews(ts)), active, stop),
            name="reactive-sqlite-commit-watch",
            daemon=True,
        )
        watcher.start()
        try:
            await asyncio.Event().wait()
        finally:
            stop.set()

    def _poll_commits(
        self, hint: Callable[[int], object], active: Callable[[], bool], stop: threading.Event
    ) -> None:
        """In the watcher thread: on every change of `PRAGMA data_version` (any other
        connection committed: another process, or our own writer), report the newest ts;
        every COMMIT_POLL_S while someone waits for news, else every COMMIT_POLL_IDLE_S."""
        conn = self._connect(check_same_thread=True)
        try:
            version = None
            while not stop.wait(knobs.COMMIT_POLL_S if active() else knobs.COMMIT_POLL_IDLE_S):
                try:
                    latest = conn.execute("PRAGMA data_version").fetchone()[0]
                    if latest != version:
                        version = latest
                        hint(int(conn.execute(SELECT_MAX_COMMIT_TS).fetchone()[0]))
                except sqlite3.Error as exc:
                    log.warning("watching for commits failed, will retry: %s", exc)
        except RuntimeError:
            pass  # the event loop closed under us: nothing left to tell
        finally:
            conn.close()

    def _ring(self) -> None:
        """In the writer thread, after a COMMIT: write our commit bell, which wakes every
        process's commit watcher (inotify). Rung after the commit is visible, never before:
        a write to the WAL itself comes before its commit can be read (that waits for the
        fsync and the memory-mapped WAL index, whose writes wake no one)."""
        if self._bell is not None:
            with contextlib.suppress(OSError):
                os.pwrite(self._bell, b"\x01", 0)

    async def write_index_entries(self, entries: list[tuple[IndexWrite, int]]) -> None:
        if not entries:
            return
        rows = backfill_rows(entries)
        await self._write(
            "write_index_entries", lambda conn: conn.executemany(INSERT_INDEX_ROW_IF_NEW, rows)
        )

    # -- reads at a snapshot ---------------------------------------------------------------
    async def max_commit_ts(self) -> int:
        return int(self._fetch("max_commit_ts", SELECT_MAX_COMMIT_TS, ())[0][0])

    async def get_document(self, table_number: int, id: str, ts: int) -> StoredDocument | None:
        rows = self._fetch("get_document", SELECT_DOCUMENT, (table_number, id, ts))
        if not rows or rows[0][2]:
            return None
        version_ts, value, _deleted = rows[0]
        return StoredDocument(id=id, ts=version_ts, value=value)

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
        params = (index_id, start, end, ts, table_number, limit)
        rows = self._fetch("index_scan", sql, params)
        return [IndexEntry(key, StoredDocument(id, v_ts, value)) for key, id, v_ts, value in rows]

    async def index_keys_ranges(
        self,
        index_id: int,
        ranges: Sequence[tuple[IndexKey, IndexKey]],
        ts: int,
        limit: int,
    ) -> list[list[IndexKey]]:
        if empty_limit(limit):
            return [[] for _ in ranges]
        # Reads are inline on this backend: a scan per range costs no round trip.
        found = []
        for start, end in ranges:
            rows = self._fetch("index_keys", INDEX_KEYS, (index_id, start, end, ts, limit))
            found.append([key for (key,) in rows])
        return found

    async def get_documents(
        self, table_number: int, ids: Sequence[str], ts: int
    ) -> list[StoredDocument | None]:
        return [await self.get_document(table_number, id, ts) for id in ids]

    async def table_scan(
        self, table_number: int, ts: int, after_id: str | None, limit: int
    ) -> list[StoredDocument]:
        if empty_limit(limit):
            return []
        # Every id is a non-empty string, so "" sorts before all of them.
        params = (table_number, after_id or "", ts, limit)
        rows = self._fetch("table_scan", TABLE_SCAN, params)
        return [StoredDocument(id, v_ts, value) for id, v_ts, value in rows]

    async def count_index(self, index_id: int, ts: int) -> int:
        rows = self._fetch("count_index", COUNT_INDEX, (index_id, ts))
        return int(rows[0][0])

    async def get_mutation(self, session_id: str, request_id: int) -> MutationRecord | None:
        rows = self._fetch("get_mutation", SELECT_MUTATION, (session_id, request_id))
        if not rows:
            return None
        ts, result, identity = rows[0]
        return MutationRecord(session_id, request_id, ts, result, identity)

    async def get_mutations(self, keys: list[tuple[str, int]]) -> list[MutationRecord]:
        # Reads are inline on this backend: one primary-key lookup per key is the cheapest.
        found = []
        for session_id, request_id in keys:
            rows = self._fetch("get_mutations", SELECT_MUTATION, (session_id, request_id))
            if rows:
                ts, result, identity = rows[0]
                found.append(MutationRecord(session_id, request_id, ts, result, identity))
        return found

    async def commits_after(self, ts: int) -> list[CommitRecord]:
        rows = self._fetch("commits_after", COMMITS_AFTER, (ts,))
        return [CommitRecord(c_ts, written) for c_ts, written in rows]

    # -- maintenance -----------------------------------------------------------------------
    async def prune(self, before_ts: int) -> int:
        def prune(conn: sqlite3.Connection) -> int:
            statements = (PRUNE_DOCUMENTS, PRUNE_INDEX_ROWS, PRUNE_COMMITS)
            return sum(conn.execute(sql, (before_ts,)).rowcount for sql in statements)

        return await self._write("prune", prune)

    async def prune_mutations(self, before_ts: int) -> int:
        return await self._write(
            "prune_mutations", lambda conn: conn.execute(PRUNE_MUTATIONS, (before_ts,)).rowcount
        )

    # -- file bytes --------------------------------------------------------------------------
    async def put_blob(self, key: str, data: bytes) -> None:
        await self._write("put_blob", lambda conn: conn.execute(UPSERT_BLOB, (key, data)))

    async def get_blob(self, key: str) -> bytes | None:
        # Inline on the reader like every read: a file of a few MiB is a memory copy from the
        # page cache. (On SQLite the default blob store is a directory, not this table.)
        rows = self._fetch("get_blob", SELECT_BLOB, (key,))
        return bytes(rows[0][0]) if rows else None

    async def delete_blob(self, key: str) -> None:
        await self._write("delete_blob", lambda conn: conn.execute(DELETE_BLOB, (key,)))


def _lock_file(fd: int, wait: bool) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class _HeldLock:
    """BEGIN IMMEDIATE, held on the writer connection (see `hold_commit_lock`)."""

    def __init__(self, store: SqlitePersistence, newer: list[CommitRecord]) -> None:
        self.newer = newer
        self.written = False
        self._store = store

    async def write(self, commits: list[CommitWrite]) -> None:
        if self.written:
            raise PersistenceError("the held commit lock was already used to write")
        self.written = True
        store = self._store
        await store._in_writer_thread("write_commits", lambda: store._write_held(commits))


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _remove_abandoned_bells(bells: str) -> None:
    """Remove the bells of processes that died without closing the database (named
    `<pid>-<random>`): their pid is gone and nobody rang them for ABANDONED_BELL_S. A bell in
    use is kept: its process is alive, or it rang lately."""
    cutoff = time.time() - ABANDONED_BELL_S
    with contextlib.suppress(OSError), os.scandir(bells) as entries:
        for entry in entries:
            pid = entry.name.partition("-")[0]
            if not pid.isdigit() or _process_alive(int(pid)):
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but not ours to signal
    return True


def _row_count(commit: CommitWrite) -> int:
    return len(commit.documents) + len(commit.indexes) + 1 + (commit.mutation is not None)


def _insert_commits(conn: sqlite3.Connection, commits: list[CommitWrite]) -> None:
    """Write `commits` in the open transaction; MutationKeysStored (the caller's `_writing`
    rolls back) if a mutation key of theirs is stored already: its mutation ran before."""
    try:
        conn.executemany(INSERT_MUTATION, mutation_rows(commits))
    except sqlite3.IntegrityError as exc:
        raise MutationKeysStored("write_commits: a mutation of the group ran before") from exc
    conn.executemany(INSERT_DOCUMENT, document_rows(commits))
    conn.executemany(INSERT_INDEX_ROW, index_rows(commits))
    conn.executemany(INSERT_COMMIT, [(c.ts, c.written) for c in commits])


# -- SQL -----------------------------------------------------------------------------------
# `indexes` is WITHOUT ROWID: its rows are small, so clustering them on the primary key makes a
# range scan one b-tree walk. `documents` keeps a rowid because values can be large.
def _add_mutation_identity(conn: sqlite3.Connection) -> None:
    """Give a database made before mutation records named their identity that column (old
    records get "", no identity). Another process may add it between our look and our ALTER."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(mutation_results)")}
    if "identity" in columns:
        return
    try:
        conn.execute("ALTER TABLE mutation_results ADD COLUMN identity TEXT NOT NULL DEFAULT ''")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):
            raise


CREATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    table_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    value BLOB,
    deleted INTEGER NOT NULL,
    prev_ts INTEGER,
    PRIMARY KEY (table_id, id, ts)
);
CREATE TABLE IF NOT EXISTS indexes (
    index_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    ts INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    document_id TEXT NOT NULL,
    PRIMARY KEY (index_id, key, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits (
    ts INTEGER PRIMARY KEY,
    written BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS mutation_results (
    session_id TEXT NOT NULL,
    request_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    result BLOB NOT NULL,
    PRIMARY KEY (session_id, request_id)
);
CREATE TABLE IF NOT EXISTS tables (
    table_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS index_meta (
    index_id INTEGER PRIMARY KEY,
    table_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    fields TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""

SELECT_TABLES = "SELECT table_id, name FROM tables ORDER BY table_id"
SELECT_TABLE_NUMBER = "SELECT table_id FROM tables WHERE name = ?"
SELECT_TABLE_NAME = "SELECT name FROM tables WHERE table_id = ?"
NEXT_TABLE_NUMBER = "SELECT COALESCE(MAX(table_id), 0) + 1 FROM tables"
INSERT_TABLE = "INSERT INTO tables (table_id, name) VALUES (?, ?)"
SELECT_INDEXES = "SELECT index_id, table_id, name, fields, state FROM index_meta ORDER BY index_id"
SELECT_INDEX_BY_NAME = """
SELECT index_id, table_id, name, fields, state FROM index_meta WHERE table_id = ? AND name = ?
"""
NEXT_INDEX_ID = "SELECT COALESCE(MAX(index_id), 0) + 1 FROM index_meta"
UPSERT_INDEX_META = """
INSERT INTO index_meta (index_id, table_id, name, fields, state) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (index_id) DO UPDATE SET
    table_id = excluded.table_id, name = excluded.name,
    fields = excluded.fields, state = excluded.state
"""
DELETE_INDEX_META = "DELETE FROM index_meta WHERE index_id = ?"
DELETE_INDEX_ROWS = "DELETE FROM indexes WHERE index_id = ?"
SELECT_META = "SELECT value FROM meta WHERE key = ?"
SELECT_META_PREFIX = "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key"
DELETE_META = "DELETE FROM meta WHERE key = ?"
INSERT_META_IF_ABSENT = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
UPSERT_META = """
INSERT INTO meta (key, value) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""

INSERT_DOCUMENT = """
INSERT INTO documents (table_id, id, ts, value, deleted, prev_ts) VALUES (?, ?, ?, ?, ?, ?)
"""
INSERT_INDEX_ROW = """
INSERT INTO indexes (index_id, key, ts, deleted, document_id) VALUES (?, ?, ?, ?, ?)
"""
INSERT_INDEX_ROW_IF_NEW = INSERT_INDEX_ROW + " ON CONFLICT (index_id, key, ts) DO NOTHING"
INSERT_COMMIT = "INSERT INTO commits (ts, written) VALUES (?, ?)"
INSERT_MUTATION = """
INSERT INTO mutation_results (session_id, request_id, ts, result, identity)
VALUES (?, ?, ?, ?, ?)
"""

SELECT_MAX_COMMIT_TS = "SELECT COALESCE(MAX(ts), 0) FROM commits"
SELECT_DOCUMENT = """
SELECT ts, value, deleted FROM documents
WHERE table_id = ? AND id = ? AND ts <= ?
ORDER BY ts DESC LIMIT 1
"""

# The index rows of one key range live at a snapshot. Parameters: ?1 index_id, ?2 start,
# ?3 end, ?4 snapshot ts. A row counts only if it is its key's newest row at the snapshot (the
# correlated MAX is one primary-key seek); the tombstone filter comes before LIMIT, and the
# scan walks the primary key in key order, so a small limit stops early.
_LIVE_INDEX_ROWS = """
FROM indexes AS i{join}
WHERE i.index_id = ?1 AND i.key >= ?2 AND i.key < ?3 AND i.deleted = 0
  AND i.ts = (
    SELECT MAX(n.ts) FROM indexes AS n
    WHERE n.index_id = i.index_id AND n.key = i.key AND n.ts <= ?4
  )
"""

# Parameters: _LIVE_INDEX_ROWS's, then table_number, limit. The document version is the one
# written at the index row's ts.
_INDEX_SCAN = (
    "SELECT i.key, d.id, d.ts, d.value"
    + _LIVE_INDEX_ROWS.format(
        join="\nJOIN documents AS d ON d.table_id = ?5 AND d.id = i.document_id AND d.ts = i.ts"
    )
    + "ORDER BY i.key {order}\nLIMIT ?6\n"
)
INDEX_SCAN_ASC = _INDEX_SCAN.format(order="ASC")
INDEX_SCAN_DESC = _INDEX_SCAN.format(order="DESC")

# Parameters: _LIVE_INDEX_ROWS's, then limit: INDEX_SCAN's keys, without documents.
INDEX_KEYS = "SELECT i.key" + _LIVE_INDEX_ROWS.format(join="") + "ORDER BY i.key\nLIMIT ?5\n"

# Parameters: table_number, after_id, snapshot ts, limit; the same newest-version rule.
TABLE_SCAN = """
SELECT d.id, d.ts, d.value
FROM documents AS d
WHERE d.table_id = ?1 AND d.id > ?2 AND d.deleted = 0
  AND d.ts = (
    SELECT MAX(n.ts) FROM documents AS n
    WHERE n.table_id = d.table_id AND n.id = d.id AND n.ts <= ?3
  )
ORDER BY d.id
LIMIT ?4
"""

COUNT_INDEX = """
SELECT count(*) FROM (
  SELECT deleted, max(ts) FROM indexes WHERE index_id = ?1 AND ts <= ?2 GROUP BY key
) WHERE deleted = 0
"""

SELECT_MUTATION = """
SELECT ts, result, identity FROM mutation_results WHERE session_id = ? AND request_id = ?
"""
COMMITS_AFTER = "SELECT ts, written FROM commits WHERE ts > ? ORDER BY ts"

# A version is invisible to every snapshot >= ?1 when a newer version exists at or before ?1,
# or when it is the newest version at or before ?1 and a tombstone (snapshots then see nothing
# either way).
# The versions of one document, or of one index key, are the rows that share (scope, key).
_PRUNE_VERSIONS = """
DELETE FROM {table}
WHERE ts <= ?1 AND (
    deleted = 1 OR EXISTS (
        SELECT 1 FROM {table} AS n
        WHERE n.{scope} = {table}.{scope} AND n.{key} = {table}.{key}
          AND n.ts > {table}.ts AND n.ts <= ?1
    )
)
"""
PRUNE_DOCUMENTS = _PRUNE_VERSIONS.format(table="documents", scope="table_id", key="id")
PRUNE_INDEX_ROWS = _PRUNE_VERSIONS.format(table="indexes", scope="index_id", key="key")
# The newest commit always stays: max_commit_ts must never go backwards.
PRUNE_COMMITS = """
DELETE FROM commits WHERE ts < ?1 AND ts < (SELECT MAX(ts) FROM commits)
"""
PRUNE_MUTATIONS = "DELETE FROM mutation_results WHERE ts < ?"

# -- SQL of file bytes (Persistence.put_blob and friends) -----------------------------------
# The blobs table joins the schema every open creates; kept in a block of its own.
CREATE_SCHEMA += """
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
"""
UPSERT_BLOB = """
INSERT INTO blobs (key, data) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET data = excluded.data
"""
SELECT_BLOB = "SELECT data FROM blobs WHERE key = ?"
DELETE_BLOB = "DELETE FROM blobs WHERE key = ?"
