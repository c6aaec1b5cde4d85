"""The database facade: open a store, apply a schema, run queries and mutations, subscribe.

It wires the layers below together (persistence, catalog, transactions, committer, write log,
subscriptions) and owns the rules around them: OCC retries with back-off, exactly-once
mutation records, schema changes with backfill, and pruning of old versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from reactive import knobs
from reactive.catalog import SYSTEM_INDEXES, Catalog, IndexInfo
from reactive.committer import CHECKED_BY_WRITE, CommitOutcome, Committer, PublishedCommit
from reactive.cursors import CursorCodec
from reactive.errors import ConflictError, SchemaError, ValidationError
from reactive.persistence import DEFAULT_DATABASE_URL, open_persistence
from reactive.persistence.base import IndexState, IndexWrite, MutationRecord, Persistence
from reactive.reads import ReadToken
from reactive.recent_writes import RecentWrites
from reactive.schema import Schema
from reactive.search import posting_keys
from reactive.subscriptions import Subscription, SubscriptionManager
from reactive.transaction import Transaction, index_key
from reactive.values import dumps, loads_stored, right_sized

__all__ = ["Database", "MutationResult", "QueryResult", "SchemaChanges"]

log = logging.getLogger("reactive.database")
T = TypeVar("T")

_SCHEMA_FINGERPRINT = "schema_fingerprint"
_CURSOR_SECRET = "cursor_secret"
_BACKFILL_PAGE = 1000
_MAX_REPORTED_VIOLATIONS = 20


@dataclass(frozen=True, slots=True)
class QueryResult(Generic[T]):
    value: T
    ts: int
    token: ReadToken
    journal: str | None


@dataclass(frozen=True, slots=True)
class MutationResult(Generic[T]):
    value: T
    ts: int
    #: True when (session_id, request_id) had run before and its stored result was returned.
    duplicate: bool = False
    retries: int = 0


@dataclass(slots=True)
class SchemaChanges:
    added_indexes: list[str] = field(default_factory=list)
    dropped_indexes: list[str] = field(default_factory=list)
    backfilled_rows: int = 0
    validated_documents: int = 0


class Database:
    """One logical database. Create with `await Database.open(url, schema=...)`."""

    def __init__(self, persistence: Persistence, catalog: Catalog, cursors: CursorCodec) -> None:
        self.persistence = persistence
        self.catalog = catalog
        self.cursors = cursors
        self.recent_writes = RecentWrites()
        self.subscriptions = SubscriptionManager(
            self.recent_writes, table_level=knobs.TABLE_LEVEL_INVALIDATION
        )
        self.committer: Committer | None = None
        self._listeners: list[Callable[[PublishedCommit], None]] = []
        self._active: Counter[int] = Counter()
        self._pruner: asyncio.Task[None] | None = None
        self._ts_waiters: list[tuple[int, asyncio.Future[None]]] = []

    @classmethod
    async def open(
        cls,
        url: str | None = None,
        *,
        schema: Schema | None = None,
        prune: bool = True,
        **persistence_options: Any,
    ) -> Database:
        persistence = await open_persistence(url or DEFAULT_DATABASE_URL, **persistence_options)
        try:
            db = await cls._start(persistence, prune=prune)
            if schema is not None:
                await db.apply_schema(schema)
        except BaseException:
            await persistence.close()
            raise
        return db

    @classmethod
    async def _start(cls, persistence: Persistence, *, prune: bool) -> Database:
        catalog = Catalog(persistence)
        await catalog.load()
        # Every process sharing the database must sign cursors with the same secret.
        secret = await persistence.setdefault_meta(_CURSOR_SECRET, secrets.token_bytes(32))
        db = cls(persistence, catalog, CursorCodec(secret))
        last_ts = await persistence.max_commit_ts()
        db.recent_writes.floor_ts = last_ts
        db.committer = Committer(
            persistence, catalog, db.recent_writes, last_ts, db._published, alone=db._only_open
        )
        db.committer.start(active=db._has_waiters)
        if prune:
            db._pruner = asyncio.create_task(db._prune_forever(), name="reactive-pruner")
        return db

    async def close(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        if self.committer is not None:
            await self.committer.stop()
        await self.persistence.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def latest_ts(self) -> int:
        assert self.committer is not None
        return self.committer.committed_ts

    # -- transactions ----------------------------------------------------------------------

    def begin(
        self, *, read_only: bool = False, ts: int | None = None, journal: str | None = None
    ) -> Transaction:
        return Transaction(
            catalog=self.catalog,
            persistence=self.persistence,
            cursors=self.cursors,
            begin_ts=self.latest_ts if ts is None else ts,
            read_only=read_only,
            journal=journal,
        )

    async def run_query(
        self,
        fn: Callable[[Transaction], Awaitable[T]],
        *,
        ts: int | None = None,
        journal: str | None = None,
    ) -> QueryResult[T]:
        """Run `fn` in a read-only transaction at `ts` (default: latest)."""
        tx = self.begin(read_only=True, ts=ts, journal=journal)
        with self.tracking(tx.begin_ts):
            value = await fn(tx)
        return QueryResult(value, tx.begin_ts, tx.token(), tx.journal_out)

    async def run_mutation(
        self,
        fn: Callable[[Transaction], Awaitable[T]],
        *,
        session_id: str | None = None,
        request_id: int | None = None,
        identity: str = "",
        max_retries: int | None = None,
        serial_fallback: bool | None = None,
    ) -> MutationResult[T]:
        """Run `fn` in a transaction and commit it, re-running it on conflicts.

        After `max_retries` optimistic re-runs it runs once more with commits held off (see
        `_attempt_serially`), unless `serial_fallback` is False: then the conflict is raised.

        With (session_id, request_id) the mutation runs at most once: a repeat returns the
        stored result and ts of the first successful run, to the same `identity` (a token
        identifier, "" for none) only; another identity gets RequestIdReusedError.
        """
        dedupe = session_id is not None and request_id is not None
        checked_at = None
        assert self.committer is not None
        if dedupe and self.persistence.check_mutation_keys:
            # Not looked up in storage first: the commit's write refuses a key that ran before,
            # and the committer then answers with its record (a round trip less for every
            # mutation). A resend to this process is known from memory, and not run again.
            remembered = self.committer.remembered_mutation(session_id, request_id)  # type: ignore[arg-type]
            if remembered is not None:
                return _replayed(remembered, remembered.ts, identity, attempt=0)
            checked_at = CHECKED_BY_WRITE
        elif dedupe:
            # Read before storage is: a key forgotten after it makes the committer read again.
            checked_at = self.committer.mutations_forgotten
            stored = await self.persistence.get_mutation(session_id, request_id)  # type: ignore[arg-type]
            if stored is not None:
                return _replayed(stored, stored.ts, identity, attempt=0)
        key = (session_id, request_id, identity, checked_at)
        try:
            return await self._run_mutation(fn, key, max_retries, serial_fallback)
        except Exception:
            if checked_at != CHECKED_BY_WRITE:
                raise
            # A resend of a mutation that ran before may fail when run again (what it created
            # exists now): it is answered with what it returned the first time.
            stored = await self._stored_mutation(session_id, request_id)  # type: ignore[arg-type]
            if stored is None:
                raise
            return _replayed(stored, stored.ts, identity, attempt=0)

    async def _stored_mutation(self, session_id: str, request_id: int) -> MutationRecord | None:
        """The record of a mutation that ran, if it can be read (None if it cannot)."""
        try:
            return await self.persistence.get_mutation(session_id, request_id)
        except Exception as exc:
            log.warning("cannot look up mutation %s/%s: %s", session_id, request_id, exc)
            return None

    async def _run_mutation(
        self,
        fn: Callable[[Transaction], Awaitable[T]],
        key: _MutationKey,
        max_retries: int | None,
        serial_fallback: bool | None,
    ) -> MutationResult[T]:
        """`run_mutation` once its key is checked: OCC re-runs, then the serial fallback."""
        retries = knobs.OCC_MAX_RETRIES if max_retries is None else max_retries
        if serial_fallback is None:
            serial_fallback = knobs.OCC_SERIAL_FALLBACK
        for attempt in range(retries + 1):
            try:
                return await self._attempt(fn, key, attempt)
            except ConflictError as conflict:
                if attempt == retries and not serial_fallback:
                    raise
                await self._after_conflict(conflict, attempt)
        return await self._attempt_serially(fn, key, retries + 1)

    async def _attempt(
        self,
        fn: Callable[[Transaction], Awaitable[T]],
        key: _MutationKey,
        attempt: int,
        *,
        serial: bool = False,
    ) -> MutationResult[T]:
        session_id, request_id, identity, checked_at = key
        tx = self.begin()
        with self.tracking(tx.begin_ts):
            value = await self._run_or_conflict(fn, tx)
            record = None
            if session_id is not None and request_id is not None:
                result = right_sized(dumps(value))  # type: ignore[arg-type]  # kept in memory
                record = MutationRecord(session_id, request_id, 0, result, identity)
            elif not tx.has_writes:
                return MutationResult(value, tx.begin_ts, retries=attempt)
            assert self.committer is not None
            commit = self.committer.commit_now if serial else self.committer.commit
            outcome = await commit(tx, record, checked_at=checked_at)
        if outcome.duplicate is not None:
            return _replayed(outcome.duplicate, outcome.ts, identity, attempt)
        return MutationResult(value, outcome.ts, retries=attempt)

    async def _run_or_conflict(
        self, fn: Callable[[Transaction], Awaitable[T]], tx: Transaction
    ) -> T:
        """Run a mutation's `fn`; if it raises after reading data that a commit since changed
        (another process's, say), raise that conflict instead, so that it is re-run."""
        try:
            return await fn(tx)
        except ConflictError:
            raise
        except Exception:
            assert self.committer is not None
            conflict = await self.committer.conflict_of_failure(tx)
            if conflict is not None:
                raise conflict from None
            raise

    async def _after_conflict(self, conflict: ConflictError, attempt: int) -> None:
        """Wait until the commit we lost to is visible (re-running earlier would read the same
        stale snapshot and lose again), plus a jittered back-off that spreads the losers out."""
        if conflict.conflicting_ts is not None:
            await self.wait_for_ts(conflict.conflicting_ts)
        await asyncio.sleep(_backoff(attempt))

    async def _attempt_serially(
        self,
        fn: Callable[[Transaction], Awaitable[T]],
        key: _MutationKey,
        attempt: int,
    ) -> MutationResult[T]:
        """Last resort for a mutation that keeps losing: run it while no other commit can
        happen, so its reads cannot go stale. This makes OCC starvation-free under heavy
        contention, at the price of briefly serialising commits.

        First with only this process's commits held off (cheap: no database lock while the
        mutation runs); if another process's commit still beat it, again holding the
        database's commit lock, which no process can beat."""
        assert self.committer is not None
        try:
            async with self.committer.exclusive():
                return await self._attempt(fn, key, attempt, serial=True)
        except ConflictError:
            pass  # another process committed into what it read meanwhile
        async with self.committer.serially():
            return await self._attempt(fn, key, attempt + 1, serial=True)

    async def wait_for_ts(self, ts: int) -> None:
        """Return once a commit with ts >= `ts` is durable and published."""
        if self.latest_ts >= ts:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ts_waiters.append((ts, future))
        await future

    async def commit(
        self, tx: Transaction, mutation: MutationRecord | None = None
    ) -> CommitOutcome:
        assert self.committer is not None
        return await self.committer.commit(tx, mutation)

    def _only_open(self, count: int) -> bool:
        """Whether `count` transactions are all that is open (tracked) in this process."""
        return self._active.total() == count

    def tracking(self, begin_ts: int) -> _Tracking:
        """Keep versions visible at `begin_ts` from being pruned while a transaction runs
        (`with db.tracking(ts): ...`)."""
        return _Tracking(self._active, begin_ts)

    # -- reactivity ------------------------------------------------------------------------

    def subscribe(
        self,
        token: ReadToken,
        on_invalidate: Callable[[Subscription, int], None],
        owner: object = None,
    ) -> Subscription:
        return self.subscriptions.subscribe(token, on_invalidate, owner)

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscriptions.unsubscribe(sub)

    def add_commit_listener(
        self, listener: Callable[[PublishedCommit], None]
    ) -> Callable[[], None]:
        """Call `listener` after every durable commit (after subscriptions were invalidated)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _has_waiters(self) -> bool:
        """Whether anyone here waits for commits (so news of other processes' is urgent)."""
        return bool(self._ts_waiters) or len(self.subscriptions) > 0

    def _published(self, commit: PublishedCommit) -> None:
        self.subscriptions.advance(commit.ts, commit.written)
        self._trim_recent_writes(commit.ts)
        if self._ts_waiters:
            self._wake_ts_waiters(commit.ts)
        for listener in list(self._listeners):
            try:
                listener(commit)
            except Exception:
                log.exception("commit listener failed")

    def _wake_ts_waiters(self, ts: int) -> None:
        waiting = []
        for wanted, future in self._ts_waiters:
            if wanted <= ts:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((wanted, future))
        self._ts_waiters = waiting

    def _trim_recent_writes(self, latest_ts: int) -> None:
        # The log only has to reach back to the oldest running transaction; trimming in
        # steps of max_age keeps this cheap and the log's memory bounded.
        max_age = int(knobs.RECENT_WRITES_MAX_AGE_S * 1e9)
        if latest_ts - self.recent_writes.floor_ts < 2 * max_age:
            return
        horizon = latest_ts - max_age
        if self._active:
            horizon = min(horizon, min(self._active))
        if horizon > self.recent_writes.floor_ts:
            self.recent_writes.trim_before(horizon)

    # -- schema ----------------------------------------------------------------------------

    async def apply_schema(
        self,
        schema: Schema,
        *,
        drop_removed: bool = True,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> SchemaChanges:
        """Make `schema` the one in force: refuse it if existing data violates it, else add
        and backfill new indexes, and (unless `drop_removed` is False: a deploy drops them only
        once the new code serves) drop indexes it no longer has. Holds off commits meanwhile."""
        assert self.committer is not None
        changes = SchemaChanges()
        # One process at a time changes the schema (so an index is backfilled once, however
        # many nodes start together); what another did before us is then learnt, not redone.
        await self._change_schema(
            lambda ts: self._apply_schema(schema, ts, changes, drop_removed, progress)
        )
        return changes

    async def _change_schema(self, change: Callable[[int], Awaitable[bool]]) -> None:
        """Run `change(ts)` (True if it wrote metadata) with every commit held off, in every
        process, and if tables or indexes changed tell the others, so that none commits
        without the index entries it now owes.

        One process at a time changes the schema (an index is backfilled once, however many
        nodes start together); what another did before is learnt first, not redone."""
        assert self.committer is not None
        async with self.persistence.exclusive("schema", wait=True):
            await self.catalog.load()
            async with self.committer.serially() as ts:
                before = self.catalog.changes
                wrote = await change(ts)
                if wrote or self.catalog.changes != before:
                    await self.committer.commit_catalog_change()

    async def _apply_schema(
        self,
        schema: Schema,
        ts: int,
        changes: SchemaChanges,
        drop_removed: bool,
        progress: Callable[[str, int, int], None] | None,
    ) -> bool:
        """Check, add, backfill (and drop); True if the schema's fingerprint was written."""
        fingerprint = schema.fingerprint().encode()
        new_schema = await self.persistence.get_meta(_SCHEMA_FINGERPRINT) != fingerprint
        if new_schema:
            changes.validated_documents = await self._check_existing_data(schema, ts)
        self.catalog.schema = schema
        for table, definition in schema.tables.items():
            await self.catalog.ensure_table(table)
            desired = definition.stored_indexes()
            await self._sync_indexes(table, desired, ts, changes, progress)
            if drop_removed:
                await self._drop_removed_indexes(table, desired, changes)
        if new_schema:
            await self.persistence.set_meta(_SCHEMA_FINGERPRINT, fingerprint)
        return new_schema

    async def adopt_schema(self, schema: Schema) -> None:
        """Put in force a schema another process applied: learn its tables and indexes."""
        await self.catalog.load()
        self.catalog.schema = schema

    async def drop_removed_indexes(self, schema: Schema) -> list[str]:
        """Drop the indexes of schema tables that `schema` no longer declares."""
        assert self.committer is not None
        changes = SchemaChanges()

        async def drop(_ts: int) -> bool:
            for table, definition in schema.tables.items():
                desired = definition.stored_indexes()
                await self._drop_removed_indexes(table, desired, changes)
            return False

        await self._change_schema(drop)
        return changes.dropped_indexes

    async def ensure_system_index(self, table: str, name: str, fields: tuple[str, ...]) -> None:
        """Create the system table `table` and its index `name` on `fields` (backfilled) if
        they are missing: indexes the runtime itself reads (the scheduler's due jobs). Schemas
        never name system tables, so `apply_schema` leaves these alone."""
        info = self.catalog.index(table, name)
        if info is not None and info.fields == fields and info.state is IndexState.READY:
            return

        async def change(ts: int) -> bool:
            await self.catalog.ensure_table(table, allow_system=True)
            found = self.catalog.index(table, name)
            if found is not None and found.fields == fields and found.state is IndexState.READY:
                return False  # another process made it meanwhile
            if found is not None:
                await self.catalog.drop_index(found)
            added = await self.catalog.add_index(table, name, fields, IndexState.BACKFILLING)
            await self._backfill(added, ts)
            await self.catalog.set_index_state(added, IndexState.READY)
            return False

        await self._change_schema(change)

    async def check_schema(self, schema: Schema) -> int:
        """Validate every existing document against `schema` without applying it (a deploy's
        dry run); raises SchemaError with a report. Returns how many documents were checked."""
        return await self._check_existing_data(schema, self.latest_ts)

    async def _check_existing_data(self, schema: Schema, ts: int) -> int:
        violations: list[str] = []
        checked = 0
        for table in schema.tables:
            number = self.catalog.table_number(table)
            if number is None:
                continue
            async for doc in self.iter_documents(number, ts):
                checked += 1
                try:
                    schema.validate_document(table, loads_stored(doc.value), self.catalog)
                except ValidationError as exc:
                    violations.append(f"  {table} {doc.id}: {exc}")
                    if len(violations) >= _MAX_REPORTED_VIOLATIONS:
                        break
        if violations:
            raise SchemaError(
                "The schema was refused: existing documents do not match it.\n"
                + "\n".join(violations)
                + "\nFix or migrate these documents, or relax the schema, then try again.",
                short_msg="ExistingDataViolatesSchema",
            )
        return checked

    async def _sync_indexes(
        self,
        table: str,
        desired: dict[str, tuple[str, ...]],
        ts: int,
        changes: SchemaChanges,
        progress: Callable[[str, int, int], None] | None,
    ) -> None:
        """Rebuild indexes whose fields changed (or whose backfill never finished), and add
        and backfill new ones."""
        for info in self.catalog.indexes(table):
            if info.name in SYSTEM_INDEXES or info.name not in desired:
                continue
            if desired[info.name] != info.fields or info.state is not IndexState.READY:
                await self.catalog.drop_index(info)
        for name, fields in desired.items():
            if name in SYSTEM_INDEXES or self.catalog.index(table, name) is not None:
                continue
            info = await self.catalog.add_index(table, name, fields, IndexState.BACKFILLING)
            changes.backfilled_rows += await self._backfill(info, ts, progress)
            await self.catalog.set_index_state(info, IndexState.READY)
            changes.added_indexes.append(info.ref)

    async def _drop_removed_indexes(
        self, table: str, desired: dict[str, tuple[str, ...]], changes: SchemaChanges
    ) -> None:
        for info in self.catalog.indexes(table):
            if info.name not in SYSTEM_INDEXES and info.name not in desired:
                await self.catalog.drop_index(info)
                changes.dropped_indexes.append(info.ref)

    async def _backfill(
        self, info: IndexInfo, ts: int, progress: Callable[[str, int, int], None] | None = None
    ) -> int:
        """Write index entries for every live document at `ts` (commits are held off)."""
        written = 0
        batch: list[tuple[IndexWrite, int]] = []
        async for doc in self.iter_documents(info.table_number, ts):
            value = loads_stored(doc.value)
            assert isinstance(value, dict)
            if info.is_search:
                keys = posting_keys(value, info.search_field, info.filter_fields)
            else:
                keys = [index_key(info, value)]
            batch.extend((IndexWrite(info.index_id, key, False, doc.id), doc.ts) for key in keys)
            if len(batch) >= _BACKFILL_PAGE:
                await self.persistence.write_index_entries(batch)
                written += len(batch)
                batch = []
                log.info("backfilling %s: %d documents", info.ref, written)
                if progress is not None:
                    progress(f"backfill {info.ref}", written, 0)
        if batch:
            await self.persistence.write_index_entries(batch)
            written += len(batch)
        if written:
            log.info("backfilled %s: %d documents", info.ref, written)
        if progress is not None:
            progress(f"backfill {info.ref}", written, written)
        return written

    async def iter_documents(self, table_number: int, ts: int) -> Any:
        """Every live document of a table at snapshot `ts`, in id order, a page at a time."""
        after: str | None = None
        while True:
            docs = await self.persistence.table_scan(table_number, ts, after, _BACKFILL_PAGE)
            for doc in docs:
                yield doc
            if len(docs) < _BACKFILL_PAGE:
                return
            after = docs[-1].id

    # -- pruning ---------------------------------------------------------------------------

    async def prune(self, now_ns: int | None = None) -> int:
        """Drop versions older than the retention window that no running transaction needs."""
        async with self.persistence.exclusive("prune", wait=False) as held:
            # One process prunes at a time; the others skip this round.
            return await self._prune(now_ns) if held else 0

    async def _prune(self, now_ns: int | None) -> int:
        now_ns = time.time_ns() if now_ns is None else now_ns
        horizon = now_ns - int(knobs.RETENTION_S * 1e9)
        if self._active:
            horizon = min(horizon, min(self._active))
        horizon = min(horizon, self.latest_ts)
        if horizon <= 0:
            return 0
        removed = await self.persistence.prune(horizon)
        mutation_horizon = now_ns - int(knobs.MUTATION_RECORD_RETENTION_S * 1e9)
        if mutation_horizon > 0:
            removed += await self.persistence.prune_mutations(mutation_horizon)
        return removed

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(knobs.PRUNE_INTERVAL_S)
            try:
                removed = await self.prune()
                if removed:
                    log.info("pruned %d old versions", removed)
            except Exception:
                log.exception("pruning failed")

    async def database_ts(self) -> int:
        """The database's newest commit, by any process; `latest_ts` trails it until this
        process has learnt that commit."""
        return await self.persistence.max_commit_ts()


#: (session_id, request_id, identity, checked_at) of a mutation run exactly once; checked_at
#: is `Committer.mutations_forgotten` as of its storage check (see `Database.run_mutation`).
_MutationKey = tuple[str | None, int | None, str, int | None]


def _replayed(stored: MutationRecord, ts: int, identity: str, attempt: int) -> MutationResult[Any]:
    """The stored outcome of a mutation that already ran, for its own identity only: another
    identity reusing the (session, request id) must learn nothing of it."""
    if stored.identity != identity:
        raise ValidationError(
            f"Request id {stored.request_id} of this session was already used by another "
            "identity, so it is refused: a session id belongs to one client. Open a new "
            "session (a new client) instead of reusing another's session id.",
            short_msg="RequestIdReused",
        )
    return MutationResult(loads_stored(stored.result), ts, True, attempt)


def _backoff(attempt: int) -> float:
    delay: float = min(knobs.OCC_BACKOFF_MAX_S, knobs.OCC_BACKOFF_INITIAL_S * (2**attempt))
    return delay * (0.5 + random.random())


class _Tracking:
    """`Database.tracking`: a class rather than a @contextmanager generator, as every
    transaction attempt enters one."""

    __slots__ = ("_active", "_ts")

    def __init__(self, active: Counter[int], ts: int) -> None:
        self._active, self._ts = active, ts

    def __enter__(self) -> None:
        self._active[self._ts] += 1

    def __exit__(self, *exc_info: object) -> None:
        active, ts = self._active, self._ts
        active[ts] -= 1
        if not active[ts]:
            del active[ts]
