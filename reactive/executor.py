"""Run user functions: validate arguments and results, give them a ctx, capture their logs,
retry mutations on conflicts, and turn every failure into data a client can be sent.

Failures are never raised to transports: `Outcome.error` carries the message (redacted in
production for unexpected exceptions) and the ConvexError data of an AppError.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from reactive.database import Database
from reactive.errors import AppError, PersistenceError, ReactiveError, ValidationError
from reactive.file_storage import ActionStorage, FileStorage, StorageReader, StorageWriter
from reactive.functions import FunctionDef, FunctionKind, Registry
from reactive.log_capture import capture_logs
from reactive.reads import ReadToken
from reactive.transaction import Transaction
from reactive.types import Value
from reactive.validators import validate_args
from reactive.values import UNDEFINED, check_value, encode_value

__all__ = [
    "ActionCtx",
    "Auth",
    "DatabaseReader",
    "DatabaseWriter",
    "Executor",
    "Failure",
    "FunctionReference",
    "MutationCtx",
    "Outcome",
    "QueryCtx",
    "api",
    "internal",
]

log = logging.getLogger("reactive.executor")


# -- references: api.projects.list -> "projects:list" ------------------------------------------


class FunctionReference:
    """`api.dir.file.fn` builds the path "dir/file:fn" one attribute at a time."""

    __slots__ = ("_parts",)

    def __init__(self, parts: tuple[str, ...] = ()) -> None:
        self._parts = parts

    def __getattr__(self, name: str) -> FunctionReference:
        if name.startswith("__"):
            raise AttributeError(name)
        return FunctionReference((*self._parts, name))

    @property
    def path(self) -> str:
        if len(self._parts) < 2:
            raise ValueError(f"incomplete function reference {'.'.join(self._parts)!r}")
        return "/".join(self._parts[:-1]) + ":" + self._parts[-1]

    def __repr__(self) -> str:
        return f"FunctionReference({'.'.join(self._parts)!r})"


api = FunctionReference()
internal = FunctionReference()


def reference_path(ref: str | FunctionReference | FunctionDef) -> str:
    if isinstance(ref, FunctionReference):
        return ref.path
    if isinstance(ref, str):
        return ref
    raise TypeError(f"expected a function path or reference (api.x.y), got {ref!r}")


# -- outcomes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed call as clients see it: a message, and data only for ConvexError (AppError)."""

    message: str
    data: Any = UNDEFINED

    @property
    def has_data(self) -> bool:
        return self.data is not UNDEFINED


@dataclass(slots=True)
class Outcome:
    value: Value = None
    error: Failure | None = None
    log_lines: list[str] = field(default_factory=list)
    #: Mutations: commit ts. Queries: the snapshot ts.
    ts: int | None = None
    #: Queries: what was read (for subscriptions) and the pagination journal.
    token: ReadToken | None = None
    journal: str | None = None
    duplicate: bool = False
    _wire_value: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def wire_value(self) -> bytes:
        """The value as convex encoded JSON bytes, encoded once however many clients share
        this outcome (identical subscriptions re-run once per commit)."""
        if self._wire_value is None:
            self._wire_value = orjson.dumps(encode_value(self.value))
        return self._wire_value


# -- ctx objects ------------------------------------------------------------------------------


class Auth:
    __slots__ = ("_identity",)

    def __init__(self, identity: Any) -> None:
        self._identity = identity

    async def get_user_identity(self) -> Any:
        return self._identity


class DatabaseReader:
    """`ctx.db` in a query: reads at the transaction's snapshot."""

    __slots__ = ("_tx",)

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def get(self, doc_id: str) -> dict[str, Value] | None:
        return await self._tx.get(doc_id)

    def query(self, table: str) -> Any:
        return self._tx.query(table)

    def normalize_id(self, table: str, text: object) -> str | None:
        return self._tx.normalize_id(table, text)


class DatabaseWriter(DatabaseReader):
    """`ctx.db` in a mutation: reads plus buffered writes, committed together."""

    __slots__ = ()

    async def insert(self, table: str, value: dict[str, Value]) -> str:
        return await self._tx.insert(table, value)

    async def patch(self, doc_id: str, fields: dict[str, Any]) -> None:
        """Shallow-merge `fields`; a field set to UNDEFINED is removed."""
        await self._tx.patch(doc_id, fields)

    async def replace(self, doc_id: str, value: dict[str, Value]) -> None:
        await self._tx.replace(doc_id, value)

    async def delete(self, doc_id: str) -> None:
        await self._tx.delete(doc_id)


@dataclass(slots=True)
class QueryCtx:
    db: DatabaseReader
    auth: Auth
    storage: StorageReader | None = None


@dataclass(slots=True)
class MutationCtx:
    db: DatabaseWriter
    auth: Auth
    storage: StorageWriter | None = None


@dataclass(slots=True)
class ActionCtx:
    auth: Auth
    _executor: Executor
    _identity: Any
    _logs: list[str]

    @property
    def storage(self) -> ActionStorage | None:
        service = self._executor.storage
        return None if service is None else ActionStorage(service)

    async def run_query(self, ref: Any, args: dict[str, Value] | None = None) -> Any:
        return await self._nested(FunctionKind.QUERY, ref, args)

    async def run_mutation(self, ref: Any, args: dict[str, Value] | None = None) -> Any:
        return await self._nested(FunctionKind.MUTATION, ref, args)

    async def run_action(self, ref: Any, args: dict[str, Value] | None = None) -> Any:
        return await self._nested(FunctionKind.ACTION, ref, args)

    async def _nested(self, kind: FunctionKind, ref: Any, args: dict[str, Value] | None) -> Any:
        outcome = await self._executor.run(
            kind, reference_path(ref), args or {}, self._identity, allow_internal=True
        )
        self._logs.extend(outcome.log_lines)
        if outcome.error is None:
            return outcome.value
        if outcome.error.has_data:
            raise AppError(outcome.error.data, outcome.error.message)
        raise NestedCallError(outcome.error.message)


class NestedCallError(Exception):
    """A function called through ctx.run_* failed; its message is already client-ready."""


# -- the executor -----------------------------------------------------------------------------


class Executor:
    def __init__(
        self,
        db: Database,
        registry: Registry,
        *,
        dev: bool = False,
        storage: FileStorage | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.dev = dev
        self.storage = storage

    async def run(
        self,
        kind: FunctionKind | None,
        path: object,
        args: object,
        identity: Any,
        *,
        allow_internal: bool = False,
        ts: int | None = None,
        journal: str | None = None,
        session_id: str | None = None,
        request_id: int | None = None,
    ) -> Outcome:
        """Run the function at `path`, which must be of `kind` (None: any kind); never raises
        for errors of the function or its caller."""
        with capture_logs() as logs:
            outcome = await self._run_captured(
                kind, path, args, identity, allow_internal, ts, journal, session_id, request_id
            )
        outcome.log_lines = logs.finish() + outcome.log_lines
        return outcome

    async def _run_captured(
        self,
        kind: FunctionKind | None,
        path: object,
        args: object,
        identity: Any,
        allow_internal: bool,
        ts: int | None,
        journal: str | None,
        session_id: str | None,
        request_id: int | None,
    ) -> Outcome:
        try:
            name, fn = self.registry.lookup(path, allow_internal=allow_internal)
            kind = fn.kind if kind is None else kind
            if fn.kind is not kind:
                raise ValidationError(
                    f"Function '{name}' is a {fn.kind.value}, not a {kind.value}",
                    short_msg="WrongFunctionType",
                )
            checked = self._check_args(fn, name, args)
            if kind is FunctionKind.QUERY:
                return await self._query(fn, checked, identity, ts, journal)
            if kind is FunctionKind.MUTATION:
                return await self._mutation(fn, checked, identity, session_id, request_id)
            return await self._action(fn, checked, identity)
        except Exception as exc:  # every failure becomes data for the client
            return Outcome(error=self.failure(exc, path))

    def _check_args(self, fn: FunctionDef, name: str, args: object) -> dict[str, Value]:
        try:
            check_value(args, "args")
            return validate_args(fn.args, args, self.db.catalog)
        except ValidationError as exc:
            raise ValidationError(
                f"{exc.msg} (calling '{name}')", short_msg="ArgumentValidationError"
            ) from None

    def _check_result(self, fn: FunctionDef, value: Any) -> Value:
        if value is UNDEFINED:
            value = None
        check_value(value, "return value")
        if fn.returns is not None:
            fn.returns.check(value, "", self.db.catalog)
        return value  # type: ignore[no-any-return]

    def _encoded_result(self, fn: FunctionDef, value: Any) -> tuple[Value, bytes]:
        """A query's result checked by encoding it: its subscribers get it encoded anyway,
        so one walk over the documents does both."""
        if value is UNDEFINED:
            value = None
        wire = orjson.dumps(encode_value(value, "return value"))
        if fn.returns is not None:
            fn.returns.check(value, "", self.db.catalog)
        return value, wire

    async def _query(
        self,
        fn: FunctionDef,
        args: dict[str, Value],
        identity: Any,
        ts: int | None,
        journal: str | None,
    ) -> Outcome:
        # Run by hand rather than through db.run_query: a query that fails still read
        # something, and its subscribers must be told when that changes.
        tx = self.db.begin(read_only=True, ts=ts, journal=journal)
        storage = None if self.storage is None else StorageReader(self.storage, tx)
        ctx = QueryCtx(DatabaseReader(tx), Auth(identity), storage)
        try:
            with self.db.tracking(tx.begin_ts):
                value, wire = self._encoded_result(fn, await fn.handler(ctx, args))
        except Exception as exc:  # reported as data, with the read set kept
            return Outcome(error=self.failure(exc, fn.name), ts=tx.begin_ts, token=tx.token())
        token, journal = tx.token(), tx.journal_out
        return Outcome(value, ts=tx.begin_ts, token=token, journal=journal, _wire_value=wire)

    async def _mutation(
        self,
        fn: FunctionDef,
        args: dict[str, Value],
        identity: Any,
        session_id: str | None,
        request_id: int | None,
    ) -> Outcome:
        attempt: list[StorageWriter] = []  # the storage of the attempt that committed

        async def body(tx: Transaction) -> Value:
            storage = None if self.storage is None else StorageWriter(self.storage, tx)
            attempt[:] = [storage] if storage is not None else []
            ctx = MutationCtx(DatabaseWriter(tx), Auth(identity), storage)
            return self._check_result(fn, await fn.handler(ctx, args))

        result = await self.db.run_mutation(body, session_id=session_id, request_id=request_id)
        if attempt and self.storage is not None and not result.duplicate:
            self.storage.delete_blobs_later(attempt[0].deleted_blobs)
        return Outcome(result.value, ts=result.ts, duplicate=result.duplicate)

    async def _action(self, fn: FunctionDef, args: dict[str, Value], identity: Any) -> Outcome:
        nested_logs: list[str] = []
        ctx = ActionCtx(Auth(identity), self, identity, nested_logs)
        value = self._check_result(fn, await fn.handler(ctx, args))
        return Outcome(value, log_lines=nested_logs)

    def failure(self, exc: BaseException, path: object) -> Failure:
        """The client-facing form of an exception raised while running `path`."""
        if isinstance(exc, AppError):
            return Failure(f"Uncaught ConvexError: {exc}", _convex_data(exc.data))
        if isinstance(exc, NestedCallError):
            return Failure(str(exc))
        if isinstance(exc, ReactiveError) and not isinstance(exc, PersistenceError):
            return Failure(f"Uncaught {exc.short_msg}: {exc.msg}")
        request_id = secrets.token_hex(8)
        log.error("function %s failed [request %s]", path, request_id, exc_info=exc)
        if self.dev:
            return Failure(f"Uncaught {type(exc).__name__}: {exc}{_user_frames(exc)}")
        return Failure(f"[Request ID: {request_id}] Server Error")


_RUNTIME_DIR = str(Path(__file__).resolve().parent)


def _user_frames(exc: BaseException) -> str:
    """The traceback lines in the project's own code (the runtime's frames are noise)."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not str(Path(frame.filename).resolve()).startswith(_RUNTIME_DIR)
    ]
    return "".join(f"\n    at {f.name} ({f.filename}:{f.lineno})" for f in frames[-8:])


def _convex_data(data: Any) -> Value:
    try:
        check_value(data, "ConvexError data")
    except ValidationError:
        return repr(data)
    return data  # type: ignore[no-any-return]


def make_identity_key(identity: Any) -> str:
    """A stable key for an identity (for sharing query results between identical callers)."""
    if identity is None:
        return ""
    getter: Callable[[str], Any] | None = getattr(identity, "get", None)
    token = getter("tokenIdentifier") if getter else getattr(identity, "token_identifier", None)
    return str(token) if token else repr(identity)
