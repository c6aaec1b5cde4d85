"""Run user functions: validate arguments and results, give them a ctx, capture their logs,
retry mutations on conflicts, and turn every failure into data a client can be sent.

Failures are never raised to transports: `Outcome.error` carries the message (redacted in
production for unexpected exceptions) and the ConvexError data of an AppError.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
import traceback
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from reactive import knobs
from reactive.auth import Identity
from reactive.context import (
    ActionCtx,
    Auth,
    DatabaseReader,
    DatabaseWriter,
    MutationCtx,
    QueryCtx,
)
from reactive.database import Database
from reactive.errors import (
    AppError,
    DatabaseUnavailableError,
    LimitError,
    PersistenceError,
    ReactiveError,
    ValidationError,
)
from reactive.file_storage import ActionStorage, FileStorage, StorageReader, StorageWriter
from reactive.functions import AnyFunction, HttpActionDef, Registry
from reactive.log_capture import capture_logs
from reactive.reads import ReadToken
from reactive.scheduler import action_scheduler, transaction_scheduler
from reactive.transaction import Transaction
from reactive.types import FunctionKind, Value
from reactive.validators import validate_args
from reactive.values import UNDEFINED, check_value, encode_value, right_sized
from reactive.vector_search import VectorSearch

__all__ = ["Executor", "Failure", "HttpOutcome", "NestedCallError", "Outcome", "TxHook"]

log = logging.getLogger("reactive.executor")

T = TypeVar("T")

#: Runs a mutation's handler (the callable) inside its transaction, with work of its own
#: around it in the same transaction (a scheduled job reads and marks its row).
TxHook = Callable[[Transaction, Callable[[], Awaitable[Value]]], Awaitable[Value]]


# -- outcomes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed call as clients see it: a message, and data only for ConvexError (AppError)."""

    message: str
    data: Any = UNDEFINED
    #: Set when the call failed for the server's own condition, not the function's (the
    #: database is out of reach): transports answer with this error's status, e.g. a 503.
    condition: ReactiveError | None = None

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
    _digest: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def wire_value(self) -> bytes:
        """The value as convex encoded JSON bytes, encoded once however many clients share
        this outcome (identical subscriptions re-run once per commit)."""
        if self._wire_value is None:
            self._wire_value = right_sized(orjson.dumps(encode_value(self.value)))
        return self._wire_value

    def digest(self) -> bytes:
        """16 bytes that differ when the value does (blake2b of `wire_value`): what a socket
        keeps of a result it sent, computed once however many sockets share the outcome."""
        if self._digest is None:
            self._digest = hashlib.blake2b(self.wire_value(), digest_size=16).digest()
        return self._digest


class NestedCallError(Exception):
    """A function called through ctx.run_* failed; its message is already client-ready."""


@dataclass(slots=True)
class HttpOutcome:
    """What an HTTP action produced: its response, or the failure its caller is told of."""

    response: Response | None
    error: Failure | None
    log_lines: list[str]

    @property
    def ok(self) -> bool:
        return self.error is None


# -- the executor -----------------------------------------------------------------------------


class Executor:
    def __init__(
        self,
        db: Database,
        registry: Registry,
        *,
        storage: FileStorage,
        dev: bool = False,
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
        around: TxHook | None = None,
    ) -> Outcome:
        """Run the function at `path`, which must be of `kind` (None: any kind); never raises
        for errors of the function or its caller. `around` wraps a mutation's handler."""
        with capture_logs() as logs:
            outcome = await self._run_captured(
                kind,
                path,
                args,
                identity,
                allow_internal,
                ts,
                journal,
                session_id,
                request_id,
                around,
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
        around: TxHook | None = None,
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
                return await self._mutation(fn, checked, identity, session_id, request_id, around)
            return await self._action(fn, checked, identity)
        except Exception as exc:  # every failure becomes data for the client
            return Outcome(error=self.failure(exc, path))

    def _check_args(self, fn: AnyFunction, name: str, args: object) -> dict[str, Value]:
        try:
            check_value(args, "args")
            return validate_args(fn.args, args, self.db.catalog)
        except ValidationError as exc:
            raise ValidationError(
                f"{exc.msg} (calling '{name}')", short_msg="ArgumentValidationError"
            ) from None

    def _check_result(self, fn: AnyFunction, value: Any) -> Value:
        if value is UNDEFINED:
            value = None
        check_value(value, "return value")
        if fn.returns is not None:
            fn.returns.check(value, "", self.db.catalog)
        return value  # type: ignore[no-any-return]

    def _encoded_result(self, fn: AnyFunction, value: Any) -> tuple[Value, bytes]:
        """A query's result checked by encoding it: its subscribers get it encoded anyway,
        so one walk over the documents does both."""
        if value is UNDEFINED:
            value = None
        wire = right_sized(orjson.dumps(encode_value(value, "return value")))  # may be cached
        if fn.returns is not None:
            fn.returns.check(value, "", self.db.catalog)
        return value, wire

    async def _query(
        self,
        fn: AnyFunction,
        args: dict[str, Value],
        identity: Any,
        ts: int | None,
        journal: str | None,
    ) -> Outcome:
        # Run by hand rather than through db.run_query: a query that fails still read
        # something, and its subscribers must be told when that changes.
        tx = self.db.begin(read_only=True, ts=ts, journal=journal)
        ctx = QueryCtx(DatabaseReader(tx), Auth(identity), StorageReader(self.storage, tx))
        try:
            with self.db.tracking(tx.begin_ts):
                result = await _within_time_limit(fn.handler(ctx, args), _TX_TIME, tx)
                value, wire = self._encoded_result(fn, result)
        except Exception as exc:  # reported as data, with the read set kept
            return Outcome(error=self.failure(exc, fn.name), ts=tx.begin_ts, token=tx.token())
        token, journal = tx.token(), tx.journal_out
        return Outcome(value, ts=tx.begin_ts, token=token, journal=journal, _wire_value=wire)

    async def _mutation(
        self,
        fn: AnyFunction,
        args: dict[str, Value],
        identity: Any,
        session_id: str | None,
        request_id: int | None,
        around: TxHook | None = None,
    ) -> Outcome:
        attempt: list[StorageWriter] = []  # the storage of the attempt that committed

        async def body(tx: Transaction) -> Value:
            storage = StorageWriter(self.storage, tx, token_identifier(identity))
            attempt[:] = [storage]
            scheduler = transaction_scheduler(tx, self.registry, self.db)
            ctx = MutationCtx(DatabaseWriter(tx), Auth(identity), storage, scheduler)

            async def handler() -> Value:
                # The limit covers the handler only: the commit after it is never cut short.
                result = await _within_time_limit(fn.handler(ctx, args), _TX_TIME, tx)
                return self._check_result(fn, result)

            return await (handler() if around is None else around(tx, handler))

        result = await self.db.run_mutation(
            body,
            session_id=session_id,
            request_id=request_id,
            identity=token_identifier(identity) or "",
        )
        if attempt and not result.duplicate:
            self.storage.delete_blobs_later(attempt[0].deleted_blobs)
        return Outcome(result.value, ts=result.ts, duplicate=result.duplicate)

    async def _action(self, fn: AnyFunction, args: dict[str, Value], identity: Any) -> Outcome:
        nested_logs: list[str] = []
        ctx = self.action_ctx(identity, nested_logs)
        result = await _within_time_limit(fn.handler(ctx, args), _ACTION_TIME)
        value = self._check_result(fn, result)
        return Outcome(value, log_lines=nested_logs)

    def action_ctx(self, identity: Identity | None, logs: list[str]) -> ActionCtx:
        """The ctx of an action (or HTTP action) run for `identity`; the log lines of the
        functions it calls are added to `logs`."""

        async def run(kind: FunctionKind, path: str, args: dict[str, Value]) -> Any:
            outcome = await self.run(kind, path, args, identity, allow_internal=True)
            logs.extend(outcome.log_lines)
            if outcome.error is None:
                return outcome.value
            if outcome.error.has_data:
                raise AppError(outcome.error.data, outcome.error.message)
            raise NestedCallError(outcome.error.message)

        storage = ActionStorage(self.storage, token_identifier(identity))
        scheduler = action_scheduler(self.registry, self.db)
        return ActionCtx(Auth(identity), storage, run, scheduler, VectorSearch.of(self.db))

    async def run_http_action(
        self, action: HttpActionDef, request: Request, identity: Identity | None
    ) -> HttpOutcome:
        """Run an HTTP action's handler; never raises for the handler's errors."""
        nested_logs: list[str] = []
        with capture_logs() as logs:
            try:
                ctx = self.action_ctx(identity, nested_logs)
                response = await _within_time_limit(action.handler(ctx, request), _ACTION_TIME)
                error = None if isinstance(response, Response) else _NOT_A_RESPONSE
            except Exception as exc:  # an HTTP action failure is a 500 for its caller
                response, error = None, self.failure(exc, request.url.path)
        if error is _NOT_A_RESPONSE:
            log.error("HTTP action %s returned %r, not a Response", request.url.path, response)
        return HttpOutcome(response if error is None else None, error, logs.finish() + nested_logs)

    def failure(self, exc: BaseException, path: object) -> Failure:
        """The client-facing form of an exception raised while running `path`."""
        if isinstance(exc, AppError):
            return Failure(f"Uncaught ConvexError: {exc}", _convex_data(exc.data))
        if isinstance(exc, NestedCallError):
            return Failure(str(exc))
        if isinstance(exc, DatabaseUnavailableError):
            return _database_unavailable(exc, path)
        if isinstance(exc, ReactiveError) and not isinstance(exc, PersistenceError):
            return Failure(f"Uncaught {exc.short_msg}: {exc.msg}")
        request_id = secrets.token_hex(8)
        log.error("function %s failed [request %s]", path, request_id, exc_info=exc)
        if self.dev:
            return Failure(f"Uncaught {type(exc).__name__}: {exc}{_user_frames(exc)}")
        return Failure(f"[Request ID: {request_id}] Server Error")


_NOT_A_RESPONSE = Failure("HTTP action did not return a Response")


# -- time limits ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TimeLimit:
    """A function kind's time limit: the knob holding it, and what to do when over it."""

    knob: str
    advice: str

    @property
    def seconds(self) -> float:
        return float(getattr(knobs, self.knob))  # read per call: tests lower the knobs


_TX_TIME = _TimeLimit(
    "QUERY_MUTATION_TIMEOUT_S",
    "A query or mutation may run its own code this long (waiting for the database is not "
    "counted): do less in one call (paginate, or split a mutation into several), or move "
    "slow work to an action",
)
_ACTION_TIME = _TimeLimit(
    "ACTION_TIMEOUT_S",
    "An action may run this long: split the work over several action calls",
)


async def _within_time_limit(
    call: Awaitable[T], limit: _TimeLimit, tx: Transaction | None = None
) -> T:
    """Await a handler's `call`; once it has run longer than `limit` (leaving out the time
    `tx` spent waiting for storage) cancel it and raise LimitError naming the limit.

    Cancelling takes effect at the handler's next await: code that never awaits (a busy
    loop) cannot be interrupted in-process.
    """
    task = asyncio.current_task()
    assert task is not None, "handlers run in a task"
    deadline = _Deadline(task, limit.seconds, tx)
    watchdog = _watchdog()
    watchdog.watch(deadline)
    try:
        result = await call
    except asyncio.CancelledError:
        if not deadline.expired:
            raise  # cancelled by someone else (or an outer limit): not ours to turn
        task.uncancel()
        raise _timed_out(limit, deadline.seconds) from None
    finally:
        watchdog.forget(deadline)
    if deadline.expired:  # the handler swallowed our cancellation and went on
        task.uncancel()
        raise _timed_out(limit, deadline.seconds)
    return result


def _timed_out(limit: _TimeLimit, seconds: float) -> LimitError:
    return LimitError(
        f"Function execution timed out (maximum duration: {_duration(seconds)}). {limit.advice}",
        short_msg="FunctionTimedOut",
    )


class _Deadline:
    """One running handler's time limit, as the watchdog checks it."""

    __slots__ = ("expired", "seconds", "started", "task", "tx")

    def __init__(self, task: asyncio.Task[Any], seconds: float, tx: Transaction | None) -> None:
        self.task, self.seconds, self.tx = task, seconds, tx
        self.started = time.monotonic()
        self.expired = False

    def over(self, now: float) -> bool:
        waited = 0.0 if self.tx is None else self.tx.storage_seconds()
        return now - self.started - waited > self.seconds

    def check_every(self) -> float:
        """How often to look: a tenth of the limit (so it overruns by at most ~10 %), at
        least every 100 ms."""
        return min(self.seconds * 0.1, _MAX_CHECK_INTERVAL_S)


_MAX_CHECK_INTERVAL_S = 0.1


class _Watchdog:
    """Every running handler's time limit behind one timer per event loop.

    A handler only joins a set while it runs: arming and cancelling a timer of its own per
    call (what asyncio.timeout does) was ~10 % of a small mutation's CPU, most of it in the
    loop's timer heap. The timer runs only while some handler does."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._running: set[_Deadline] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._interval = _MAX_CHECK_INTERVAL_S

    def watch(self, deadline: _Deadline) -> None:
        self._running.add(deadline)
        interval = deadline.check_every()
        if self._timer is None or interval < self._interval:
            self._arm(interval)

    def forget(self, deadline: _Deadline) -> None:
        self._running.discard(deadline)

    def _arm(self, interval: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._interval = interval
        self._timer = self._loop.call_later(interval, self._check)

    def _check(self) -> None:
        self._timer = None
        if not self._running:
            return
        now = time.monotonic()
        for deadline in self._running:
            if not deadline.expired and deadline.over(now):
                deadline.expired = True
                deadline.task.cancel()
        self._arm(min(deadline.check_every() for deadline in self._running))


_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = (
    weakref.WeakKeyDictionary()
)


def _watchdog() -> _Watchdog:
    global _last_watchdog
    loop = asyncio.get_running_loop()
    if _last_watchdog is not None and _last_watchdog._loop is loop:
        return _last_watchdog  # the common case: one loop per process
    watchdog = _watchdogs.get(loop)
    if watchdog is None:
        watchdog = _watchdogs[loop] = _Watchdog(loop)
    _last_watchdog = watchdog
    return watchdog


_last_watchdog: _Watchdog | None = None


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g}s"


#: What a client is told when the database is out of reach: never the database's address.
DATABASE_UNAVAILABLE = DatabaseUnavailableError(
    "Database unavailable: this server lost its connection to the database. "
    "Retry in a moment (a mutation sent over the sync protocol may be resent safely)."
)


def _database_unavailable(exc: DatabaseUnavailableError, path: object) -> Failure:
    log.warning("function %s: database unavailable: %s", path, exc)
    return Failure(
        f"Uncaught {DATABASE_UNAVAILABLE.short_msg}: {DATABASE_UNAVAILABLE.msg}",
        condition=DATABASE_UNAVAILABLE,
    )


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


def token_identifier(identity: Any) -> str | None:
    """The token identifier of the identity a function runs for; None without one. Files it
    uploads are recorded as this identity's."""
    found = getattr(identity, "token_identifier", None)
    return found if isinstance(found, str) else None


def make_identity_key(identity: Any) -> str:
    """A stable key for an identity (for sharing query results between identical callers)."""
    if identity is None:
        return ""
    getter: Callable[[str], Any] | None = getattr(identity, "get", None)
    token = getter("tokenIdentifier") if getter else getattr(identity, "token_identifier", None)
    return str(token) if token else repr(identity)
