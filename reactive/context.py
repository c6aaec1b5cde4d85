"""What a function's code is handed: `ctx` for queries, mutations and actions, and the
`ctx.db` / `ctx.auth` / `ctx.storage` / `ctx.scheduler` objects on it — the author-facing
surface of the engine.

Each ctx wraps one engine object (a Transaction, the file storage service, a function runner)
and exposes only what Convex exposes there: a query cannot write, an action has no `ctx.db`,
system tables (names starting with "_") are read only through `ctx.db.system` and never written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from reactive.auth import Identity
from reactive.errors import InvalidIdError, NotFoundError, ValidationError
from reactive.file_storage import ActionStorage, StorageReader, StorageWriter
from reactive.ids import decode_id
from reactive.query_builder import QueryBuilder
from reactive.references import FunctionReference, reference_path
from reactive.transaction import Transaction
from reactive.types import Document, FunctionKind, Value
from reactive.vector_search import VectorSearch

__all__ = [
    "ActionCtx",
    "Auth",
    "DatabaseReader",
    "DatabaseWriter",
    "Document",
    "Id",
    "MutationCtx",
    "NestedRunner",
    "QueryCtx",
    "ScheduleFn",
    "Scheduler",
    "SystemReader",
]

#: A document id: a string that encodes its table (`v.id("tasks")` checks the table).
Id: TypeAlias = str

#: How an action calls another function: (kind, path, args) -> its value; raises AppError
#: (with the callee's data) or an error whose message is already client-ready.
NestedRunner: TypeAlias = Callable[[FunctionKind, str, dict[str, Value]], Awaitable[Any]]


#: How `ctx.scheduler` records a job: (path, when in unix ms, args) -> the job's id in
#: `_scheduled_functions`, and how it cancels one (id -> None); given by the executor.
ScheduleFn: TypeAlias = Callable[[str, float, dict[str, Value]], Awaitable[str]]
CancelFn: TypeAlias = Callable[[str], Awaitable[None]]


class Auth:
    """`ctx.auth`: who is calling."""

    __slots__ = ("_identity",)

    def __init__(self, identity: Identity | None) -> None:
        self._identity = identity

    async def get_user_identity(self) -> Identity | None:
        """The caller's verified identity (all JWT claims, Convex's names), or None."""
        return self._identity


class _Reader:
    """Reads in one transaction, at its snapshot; `_system` says which tables it reads."""

    __slots__ = ("_tx",)
    _system = False

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def get(self, table_or_id: str, doc_id: Id | None = None) -> Document | None:
        """`get(id)`, or `get(table, id)` (Convex's newer form), which refuses an id of
        another table instead of reading it."""
        the_id = table_or_id if doc_id is None else doc_id
        _check_table_kind(_table_of(self._tx, the_id), system=self._system)
        if doc_id is None:
            return await self._tx.get(table_or_id)
        return await self._tx.get(doc_id, table=table_or_id)


def _table_of(tx: Transaction, doc_id: object) -> str | None:
    """The table an id names, or None (not an id: the transaction reports that)."""
    if not isinstance(doc_id, str):
        return None
    try:
        number, _ = decode_id(doc_id)
    except InvalidIdError:
        return None
    return tx.catalog.table_name(number)


def _check_table_kind(table: str | None, *, system: bool) -> None:
    """As Convex's system_table_guard: `ctx.db` reads user tables, `ctx.db.system` system ones."""
    if table is None or table.startswith("_") == system:
        return
    if system:
        message = f"User tables cannot be accessed with db.system: read {table!r} with ctx.db"
    else:
        message = (
            f"System tables can only be accessed with db.system: read {table!r} with "
            "ctx.db.system.get / ctx.db.system.query"
        )
    raise ValidationError(message, short_msg="SystemTableError")


class SystemReader(_Reader):
    """`ctx.db.system`: reads of the system tables (`_storage`, ...), which user code never
    writes."""

    __slots__ = ()
    _system = True

    def query(self, table: str) -> QueryBuilder:
        if not table.startswith("_"):
            raise NotFoundError(
                f"{table!r} is not a system table; read it with ctx.db.query({table!r})",
                short_msg="NotASystemTable",
            )
        return self._tx.query(table)


class DatabaseReader(_Reader):
    """`ctx.db` in a query: reads at the transaction's snapshot."""

    __slots__ = ()

    def query(self, table: str) -> QueryBuilder:
        if isinstance(table, str):
            _check_table_kind(table, system=False)
        return self._tx.query(table)

    def normalize_id(self, table: str, text: object) -> Id | None:
        return self._tx.normalize_id(table, text)

    @property
    def system(self) -> SystemReader:
        return SystemReader(self._tx)


class DatabaseWriter(DatabaseReader):
    """`ctx.db` in a mutation: reads plus buffered writes, committed together."""

    __slots__ = ()

    async def insert(self, table: str, value: dict[str, Any]) -> Id:
        return await self._tx.insert(table, value)

    async def patch(self, doc_id: Id, fields: dict[str, Any]) -> None:
        """Shallow-merge `fields`; a field set to UNDEFINED is removed."""
        await self._tx.patch(doc_id, fields)

    async def replace(self, doc_id: Id, value: dict[str, Any]) -> None:
        await self._tx.replace(doc_id, value)

    async def delete(self, doc_id: Id) -> None:
        await self._tx.delete(doc_id)


Ref: TypeAlias = "str | FunctionReference"


class Scheduler:
    """`ctx.scheduler`: run a mutation or action later. In a mutation the job is part of its
    transaction (it exists only if the mutation commits); in an action it is recorded at once.
    Jobs are rows of the system table `_scheduled_functions`."""

    __slots__ = ("_cancel", "_schedule")

    def __init__(self, schedule: ScheduleFn, cancel: CancelFn) -> None:
        self._schedule, self._cancel = schedule, cancel

    async def run_after(
        self, delay_ms: float, ref: Ref, args: dict[str, Value] | None = None
    ) -> Id:
        """Run `ref` with `args` once `delay_ms` milliseconds have passed; returns the job id."""
        delay = _milliseconds(delay_ms, "delay_ms")
        if delay < 0:
            raise ValidationError(
                f"run_after: delay_ms must not be negative, got {delay_ms!r}",
                short_msg="InvalidScheduledTime",
            )
        return await self._schedule(reference_path(ref), time.time() * 1000 + delay, args or {})

    async def run_at(
        self, timestamp_ms: float, ref: Ref, args: dict[str, Value] | None = None
    ) -> Id:
        """Run `ref` with `args` at `timestamp_ms` (unix ms; a past time means now)."""
        when = max(_milliseconds(timestamp_ms, "timestamp_ms"), time.time() * 1000)
        return await self._schedule(reference_path(ref), when, args or {})

    async def cancel(self, scheduled_id: Id) -> None:
        """Cancel a job that has not run yet; a job that already ran (or was canceled, or is
        unknown) is left as it is, as in Convex."""
        await self._cancel(scheduled_id)


def _milliseconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(
            f"{name} must be a finite number of milliseconds, got {value!r}",
            short_msg="InvalidScheduledTime",
        )
    return float(value)


class QueryCtx:
    """The ctx of a query: read-only database, caller, file URLs and metadata."""

    __slots__ = ("auth", "db", "storage")

    def __init__(self, db: DatabaseReader, auth: Auth, storage: StorageReader) -> None:
        self.db, self.auth, self.storage = db, auth, storage


class MutationCtx:
    """The ctx of a mutation: one transaction's reads and writes, caller, file storage, and
    jobs scheduled with the transaction."""

    __slots__ = ("auth", "db", "scheduler", "storage")

    def __init__(
        self, db: DatabaseWriter, auth: Auth, storage: StorageWriter, scheduler: Scheduler
    ) -> None:
        self.db, self.auth, self.storage, self.scheduler = db, auth, storage, scheduler


class ActionCtx:
    """The ctx of an action: no `ctx.db`; each `run_query` / `run_mutation` is its own
    transaction."""

    __slots__ = ("_run", "_vectors", "auth", "scheduler", "storage")

    def __init__(
        self,
        auth: Auth,
        storage: ActionStorage,
        run: NestedRunner,
        scheduler: Scheduler,
        vectors: VectorSearch | None = None,
    ) -> None:
        self.auth, self.storage, self._run, self.scheduler = auth, storage, run, scheduler
        self._vectors = vectors

    async def run_query(self, ref: Ref, args: dict[str, Value] | None = None) -> Any:
        return await self._run(FunctionKind.QUERY, reference_path(ref), args or {})

    async def run_mutation(self, ref: Ref, args: dict[str, Value] | None = None) -> Any:
        return await self._run(FunctionKind.MUTATION, reference_path(ref), args or {})

    async def run_action(self, ref: Ref, args: dict[str, Value] | None = None) -> Any:
        return await self._run(FunctionKind.ACTION, reference_path(ref), args or {})

    async def vector_search(
        self, table: str, index: str, query: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The documents nearest `query["vector"]` by cosine similarity in a vector index, as
        `[{"_id", "_score"}]`, best first (`limit` 1 to 256, default 10; `filter`: lambda q:
        q.eq(field, value) or q.or_(...) over the index's filter fields). Sees every commit
        acknowledged before the call."""
        if self._vectors is None:
            raise RuntimeError("vector_search is not available in this action's context")
        return await self._vectors.search(table, index, query)
