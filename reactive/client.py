"""The native async Python client: one WebSocket per client, speaking the Convex sync protocol.

Invariant: a client keeps ONE sessionId for its whole life and re-sends every unresolved
mutation with its original requestId after a reconnect, so the server runs each exactly once.

    async with connect("http://127.0.0.1:3210") as client:
        await client.mutation("messages:send", {"channel": "a", "body": "hi"})
        async for messages in client.subscribe("messages:list", {"channel": "a"}):
            print(messages)

Wire format: JSON text frames of docs/PROTOCOL.md section 5 on `ws(s)://<host><path>/api/sync`;
args are sent as `[encode_value(args)]` and results decoded with `decode_value`, so a Python
`int` travels as int64 both ways. All protocol state changes happen synchronously on the event
loop (no locks, no threads); each socket has one writer task that drains its outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, Self, cast
from urllib.parse import urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from reactive import protocol
from reactive.errors import ValidationError
from reactive.types import JsonValue, Value
from reactive.values import decode_ts, decode_value, encode_value

__all__ = [
    "Client",
    "ClientAuthError",
    "ClientClosedError",
    "ClientConnectionError",
    "ClientError",
    "InvalidUrlError",
    "Subscription",
    "TokenFetcher",
    "connect",
    "sync_url",
]

log = logging.getLogger("reactive.client")

CLIENT_NAME: Final = "reactive-py-0.1.0"
DEFAULT_CONNECT_TIMEOUT_S: Final = 10.0
#: Reconnect when the server sent nothing for this long (it pings every ~15 s).
DEFAULT_IDLE_TIMEOUT_S: Final = 60.0
BACKOFF_INITIAL_S: Final = 0.1
BACKOFF_MAX_S: Final = 16.0
_SCHEMES: Final = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}

#: `set_auth` accepts a token, None (log out), or an async callable that fetches a fresh token.
TokenFetcher = Callable[[], Awaitable[str | None]]
AuthSource = str | TokenFetcher | None


# -- errors -----------------------------------------------------------------------------------


class ClientError(Exception):
    """A query, mutation or action failed on the server (like the JS client's ConvexError).

    `data` is the ConvexError data (`AppError(data)` on the server) when `has_data`, else None.
    """

    def __init__(self, message: str, data: Value = None, *, has_data: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.has_data = has_data


class ClientConnectionError(ConnectionError):
    """The server could not be reached, or the connection failed in a way retrying cannot fix."""


class ClientClosedError(ClientConnectionError):
    """The client was closed before the call finished."""


class ClientAuthError(Exception):
    """The server rejected the auth token (the client carries on unauthenticated)."""


class InvalidUrlError(ValueError):
    """The deployment URL is not an http(s):// or ws(s):// URL with a host."""


class _Reconnect(Exception):
    """The current socket must be dropped and a new one opened; the message is the reason."""


class _Fatal(Exception):
    """The server sent FatalError: reconnecting cannot help."""


# -- URLs -------------------------------------------------------------------------------------


def sync_url(url: str) -> str:
    """The WebSocket endpoint for a deployment URL: http->ws, https->wss, path + /api/sync."""
    if not isinstance(url, str):
        raise InvalidUrlError(f"The deployment URL must be a string, got {type(url).__name__}")
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise InvalidUrlError(f"Invalid deployment URL {url!r}: {exc}") from None
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise InvalidUrlError(
            f"Invalid deployment URL {url!r}: it must start with http://, https://, ws:// "
            "or wss:// (for example http://127.0.0.1:3210)"
        )
    if not parts.hostname:
        raise InvalidUrlError(f"Invalid deployment URL {url!r}: it has no host")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/api/sync", "", ""))


# -- plain data -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Version:
    """A state version of one socket: (query set, identity, ts), compared exactly."""

    query_set: int = 0
    identity: int = 0
    ts: int = 0

    @classmethod
    def parse(cls, raw: protocol.StateVersion) -> _Version:
        return cls(int(raw["querySet"]), int(raw["identity"]), decode_ts(raw["ts"]))


@dataclass(frozen=True, slots=True)
class _Result:
    """One query result as last received: a value, or the failure to raise to subscribers.

    `raw` is the wire form, so an unchanged result is recognised without comparing values.
    """

    raw: bytes
    value: Value = None
    error: str | None = None
    error_data: Value = None
    has_data: bool = False

    def unwrap(self) -> Value:
        if self.error is not None:
            raise ClientError(self.error, self.error_data, has_data=self.has_data)
        return self.value


@dataclass(slots=True, eq=False)
class _Query:
    """A query the client holds, shared by every subscription with the same path and args."""

    query_id: int
    path: str
    args: JsonValue
    key: tuple[str, bytes]
    journal: str | None = None
    result: _Result | None = None
    holders: int = 0
    subscriptions: weakref.WeakSet[Subscription] = field(default_factory=weakref.WeakSet)

    def add_message(self) -> protocol.Add:
        return protocol.add_query(self.query_id, self.path, self.args, self.journal)


@dataclass(slots=True, eq=False)
class _Request:
    """A mutation or action until it is resolved; `text` is re-sent verbatim on reconnect."""

    kind: Literal["Mutation", "Action"]
    request_id: int
    path: str
    text: str
    future: asyncio.Future[Value]
    sent: bool = False
    #: A successful mutation's commit ts: it resolves at the next Transition reaching it.
    ts: int | None = None
    result: Value = None

    def resolve(self, value: Value) -> None:
        if not self.future.done():
            self.future.set_result(value)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


@dataclass(slots=True, eq=False)
class _Socket:
    """State of one WebSocket: what was sent on it and the last version the server reached."""

    ws: ClientConnection
    outbox: asyncio.Queue[tuple[str, _Request | None]] = field(default_factory=asyncio.Queue)
    version: _Version = _Version()
    query_set: int = 0  # newVersion of the last ModifyQuerySet sent
    identity: int = 0  # Authenticate messages sent
    received_any: bool = False
    auth_error: str | None = None
    chunks: list[str] = field(default_factory=list)

    def send(self, message: protocol.ClientMessage) -> None:
        self.outbox.put_nowait((orjson.dumps(message).decode(), None))

    def send_request(self, request: _Request) -> None:
        self.outbox.put_nowait((request.text, request))

    def modify(self, modifications: list[protocol.QuerySetModification]) -> None:
        base, self.query_set = self.query_set, self.query_set + 1
        self.send(protocol.modify_query_set(base, self.query_set, modifications))


@dataclass(slots=True)
class _Backoff:
    """Reconnect delays: initial, doubling up to maximum, with jitter in [delay/2, delay]."""

    initial: float = BACKOFF_INITIAL_S
    maximum: float = BACKOFF_MAX_S
    retries: int = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2.0**self.retries)
        self.retries = min(self.retries + 1, 32)
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.retries = 0


# -- subscriptions ----------------------------------------------------------------------------


class Subscription:
    """An async iterator over a query's results: the current value, then every changed value.

    A slow consumer is not queued up: it gets the latest value (bounded memory). A failed query
    raises ClientError from `__anext__`; iterating again waits for the next result. Ends when
    closed (`close()`, `async with` exit, garbage collection) or when the client closes.
    """

    def __init__(self, client: Client, query: _Query) -> None:
        self._client = client
        self._query = query
        self._pending: _Result | None = query.result
        self._wakeup = asyncio.Event()
        self._closed = False
        # Released when closed or collected: `async for ...: break` must not leak the query.
        self._finalizer = weakref.finalize(self, client._release_soon, query)
        self._finalizer.atexit = False
        query.subscriptions.add(self)

    @property
    def path(self) -> str:
        return self._query.path

    def _deliver(self, result: _Result) -> None:
        self._pending = result
        self._wakeup.set()

    def _end(self) -> None:
        self._closed = True
        self._wakeup.set()

    def close(self) -> None:
        """Stop receiving results; the query is unsubscribed when its last holder closes."""
        self._end()
        if self._finalizer.detach() is not None:
            self._client._release(self._query)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Value:
        while self._pending is None:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        result, self._pending = self._pending, None
        return result.unwrap()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- the client -------------------------------------------------------------------------------


def connect(
    url: str,
    *,
    auth: AuthSource = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
) -> Client:
    """A client for the deployment at `url`; use `async with connect(url) as c` or `await`."""
    return Client(url, auth=auth, connect_timeout=connect_timeout, idle_timeout=idle_timeout)


class Client:
    """A reactive client: queries, subscriptions, mutations and actions over one WebSocket.

    Reconnects by itself (backoff 100 ms doubling to 16 s, with jitter) after any close, error
    or `idle_timeout` of silence; calls made meanwhile wait. `start()` fails with
    ClientConnectionError when no connection opens within `connect_timeout`.
    """

    def __init__(
        self,
        url: str,
        *,
        auth: AuthSource = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.sync_url = sync_url(url)
        self.session_id = str(uuid.uuid4())
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.connection_count = 0
        self._initial_auth = auth
        self._queries: dict[tuple[str, bytes], _Query] = {}
        self._queries_by_id: dict[int, _Query] = {}
        self._query_ids = itertools.count()
        self._requests: dict[int, _Request] = {}
        self._request_ids = itertools.count()
        self._socket: _Socket | None = None
        self._max_observed_ts = 0
        self._last_close_reason: str | None = "InitialConnect"
        self._last_connect_error: BaseException | None = None
        self._backoff = _Backoff()
        self._auth_token: str | None = None
        self._auth_fetcher: TokenFetcher | None = None
        self._auth_refetched = False
        self._auth_waiters: list[asyncio.Future[None]] = []
        self._socket_auth_error: str | None = None
        self._runner: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[None] | None = None
        self._closed_error: ClientConnectionError | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the first connection; raises ClientConnectionError if none opens in time."""
        if self._runner is not None:
            raise RuntimeError("This client is already started")
        self._opened = asyncio.get_running_loop().create_future()
        if self._initial_auth is not None:
            await self._adopt_auth_source(self._initial_auth)
        self._runner = asyncio.create_task(self._run(), name=f"reactive-client {self.sync_url}")
        try:
            await asyncio.wait_for(asyncio.shield(self._opened), self.connect_timeout)
        except TimeoutError:
            detail = _describe(self._last_connect_error) or "no answer"
            await self.close()
            raise ClientConnectionError(
                f"Could not connect to {self.sync_url} within {self.connect_timeout:g}s: {detail}"
            ) from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection and end everything: waiting calls raise ClientClosedError,
        subscriptions stop iterating. Idempotent."""
        self._shutdown(self._closed_error or ClientClosedError("The client was closed"))
        runner, self._runner = self._runner, None
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
            await asyncio.wait([runner])

    @property
    def closed(self) -> bool:
        return self._closed_error is not None

    @property
    def connected(self) -> bool:
        return self._socket is not None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __await__(self) -> Generator[Any, None, Self]:
        return self._started().__await__()

    async def _started(self) -> Self:
        await self.start()
        return self

    # -- calls -----------------------------------------------------------------------------

    def subscribe(self, path: str, args: dict[str, Value] | None = None) -> Subscription:
        """Subscribe to a query: iterate the result to get its current and later values."""
        self._check_open()
        query = self._hold_query(_check_path(path), _encode_args(args))
        return Subscription(self, query)

    async def query(self, path: str, args: dict[str, Value] | None = None) -> Value:
        """Run a query once: its current value (from an existing subscription if there is one)."""
        async with self.subscribe(path, args) as subscription:
            return await _first(subscription, self)

    async def mutation(self, path: str, args: dict[str, Value] | None = None) -> Value:
        """Run a mutation exactly once; returns once its writes are visible to subscriptions."""
        return await self._call("Mutation", path, args)

    async def action(self, path: str, args: dict[str, Value] | None = None) -> Value:
        """Run an action; fails with ClientConnectionError if the connection drops meanwhile."""
        return await self._call("Action", path, args)

    async def set_auth(self, token: AuthSource) -> None:
        """Authenticate with a JWT, or an async callable returning one; None logs out.

        Returns once the server has accepted it (queries now run under the new identity);
        raises ClientAuthError if it was rejected (a callable is asked once for a fresh token
        first), in which case the client continues unauthenticated.
        """
        self._check_open()
        await self._adopt_auth_source(token)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._settle_auth_waiters()  # superseded by this token
        self._auth_waiters.append(waiter)
        if self._socket is not None:
            self._send_authenticate(self._socket)
        await waiter

    async def _call(
        self, kind: Literal["Mutation", "Action"], path: str, args: dict[str, Value] | None
    ) -> Value:
        self._check_open()
        request_id = next(self._request_ids)
        build = protocol.mutation_request if kind == "Mutation" else protocol.action_request
        message = build(request_id, _check_path(path), _encode_args(args))
        future: asyncio.Future[Value] = asyncio.get_running_loop().create_future()
        request = _Request(kind, request_id, path, orjson.dumps(message).decode(), future)
        self._requests[request_id] = request
        if self._socket is not None:
            self._socket.send_request(request)
        return await future

    def _check_open(self) -> None:
        if self._closed_error is not None:
            raise _fresh(self._closed_error)
        if self._runner is None:
            raise RuntimeError("Start the client first: `async with connect(url) as client`")

    # -- queries held by subscriptions -----------------------------------------------------

    def _hold_query(self, path: str, args: JsonValue) -> _Query:
        key = (path, orjson.dumps(args, option=orjson.OPT_SORT_KEYS))
        query = self._queries.get(key)
        if query is None:
            query = _Query(next(self._query_ids), path, args, key)
            self._queries[key] = query
            self._queries_by_id[query.query_id] = query
            if self._socket is not None:
                self._socket.modify([query.add_message()])
        query.holders += 1
        return query

    def _release_soon(self, query: _Query) -> None:
        """Finalizer of a collected Subscription (may run inside garbage collection)."""
        if self._runner is None or self._runner.done():
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to release
            self._runner.get_loop().call_soon_threadsafe(self._release, query)

    def _release(self, query: _Query) -> None:
        query.holders -= 1
        if query.holders > 0 or self._queries.get(query.key) is not query:
            return
        del self._queries[query.key]
        del self._queries_by_id[query.query_id]
        if self._socket is not None:
            self._socket.modify([protocol.remove_query(query.query_id)])

    # -- auth ------------------------------------------------------------------------------

    async def _adopt_auth_source(self, source: AuthSource) -> None:
        if source is None or isinstance(source, str):
            self._auth_fetcher, self._auth_token = None, source
        elif callable(source):
            token = await source()
            if token is not None and not isinstance(token, str):
                raise TypeError(f"The token fetcher returned {type(token).__name__}, not str")
            self._auth_fetcher, self._auth_token = source, token
        else:
            raise TypeError(
                f"set_auth takes a token string, None or an async callable, "
                f"not {type(source).__name__}"
            )
        self._auth_refetched = False

    def _send_authenticate(self, socket: _Socket) -> None:
        message = protocol.authenticate(socket.identity, self._auth_token)
        socket.identity += 1
        socket.send(message)

    def _settle_auth_waiters(self, error: BaseException | None = None) -> None:
        waiters, self._auth_waiters = self._auth_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def _recover_from_auth_error(self, error: str) -> None:
        """After an AuthError: ask a fetcher once for a fresh token, else log out."""
        if self._auth_fetcher is not None and not self._auth_refetched:
            self._auth_refetched = True
            try:
                token = await self._auth_fetcher()
            except Exception as exc:
                error = f"{error}; fetching a fresh token failed: {exc!r}"
            else:
                if isinstance(token, str) and token != self._auth_token:
                    self._auth_token = token
                    return
        self._auth_token, self._auth_fetcher = None, None
        failure = ClientAuthError(f"The server rejected the auth token: {error}")
        if not self._auth_waiters:
            log.warning("%s; continuing unauthenticated", failure)
        self._settle_auth_waiters(failure)

    # -- connection loop -------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, serve, and reconnect after a delay, until closed or a FatalError."""
        try:
            while True:
                self._last_close_reason = await self._connect_and_serve()
                if self._socket_auth_error is not None:
                    error, self._socket_auth_error = self._socket_auth_error, None
                    await self._recover_from_auth_error(error)
                await asyncio.sleep(self._backoff.next_delay())
        except _Fatal as exc:
            self._shutdown(ClientConnectionError(str(exc)))
        except Exception as exc:  # a bug here must not leave callers waiting forever
            log.exception("reactive client for %s failed", self.sync_url)
            self._shutdown(ClientConnectionError(f"The client failed: {_describe(exc)}"))

    async def _connect_and_serve(self) -> str:
        try:
            ws = await ws_connect(
                self.sync_url,
                additional_headers={"Convex-Client": CLIENT_NAME},
                max_size=None,  # the server bounds results; a big Transition is legitimate
                open_timeout=self.connect_timeout,
                close_timeout=2,
            )
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            self._last_connect_error = exc
            log.debug("connecting to %s failed: %s", self.sync_url, _describe(exc))
            return f"ConnectFailed: {_describe(exc)}"
        socket = self._open_socket(ws)
        writer = asyncio.create_task(self._write_loop(socket), name="reactive-client writer")
        try:
            return await self._read_loop(socket)
        finally:
            self._socket_lost(socket)  # first: calls from now on wait for the next socket
            writer.cancel()
            await asyncio.wait([writer])
            await ws.close()

    def _open_socket(self, ws: ClientConnection) -> _Socket:
        """Queue what a new socket must start with (docs/PROTOCOL.md 5.7), then make it current."""
        socket = _Socket(ws)
        socket.send(
            protocol.connect_message(
                self.session_id,
                self.connection_count,
                self._last_close_reason,
                int(time.time() * 1000),
                max_observed_ts=self._max_observed_ts or None,
            )
        )
        if self._auth_token is not None:
            self._send_authenticate(socket)
        else:
            self._settle_auth_waiters()  # logged out: nothing for the server to confirm
        socket.modify([query.add_message() for query in self._queries.values()])
        for request in sorted(self._requests.values(), key=lambda r: r.request_id):
            socket.send_request(request)
        self.connection_count += 1
        self._socket = socket
        if self._opened is not None and not self._opened.done():
            self._opened.set_result(None)
        return socket

    def _socket_lost(self, socket: _Socket) -> None:
        """Forget the socket; fail actions it carried, prepare mutations for re-sending."""
        if self._socket is socket:
            self._socket = None
        for request in list(self._requests.values()):
            if request.kind == "Action" and request.sent:
                del self._requests[request.request_id]
                request.fail(
                    ClientConnectionError(
                        f"Connection lost while action was in flight ({request.path})"
                    )
                )
            else:
                request.sent, request.ts = False, None

    async def _write_loop(self, socket: _Socket) -> None:
        while True:
            text, request = await socket.outbox.get()
            if request is not None:
                request.sent = True
            try:
                await socket.ws.send(text)
            except ConnectionClosed:
                return  # the read loop sees the close too

    async def _read_loop(self, socket: _Socket) -> str:
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    frame = await socket.ws.recv()
            except TimeoutError:
                return f"InactiveServer: no message for {self.idle_timeout:g}s"
            except ConnectionClosed as exc:
                return f"ConnectionClosed: {exc}"
            if not socket.received_any:
                socket.received_any = True
                self._backoff.reset()
            try:
                self._handle(socket, frame)
            except _Reconnect as exc:
                log.warning("reconnecting to %s: %s", self.sync_url, exc)
                return str(exc)

    # -- server messages -------------------------------------------------------------------

    def _handle(self, socket: _Socket, frame: str | bytes) -> None:
        try:
            message = orjson.loads(frame)
            kind = message["type"]
            handler = self._handlers.get(kind)
            if handler is None:
                log.debug("ignoring unknown server message type %r", kind)
                return
            handler(self, socket, message)
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
            raise _Reconnect(f"ProtocolError: bad server message: {exc!r}"[:300]) from None

    def _on_transition(self, socket: _Socket, message: protocol.Transition) -> None:
        start = _Version.parse(message["startVersion"])
        if start != socket.version:
            raise _Reconnect(f"StartVersionMismatch: got {start}, expected {socket.version}")
        end = _Version.parse(message["endVersion"])
        for modification in message["modifications"]:
            self._apply_modification(modification)
        socket.version = end
        self._max_observed_ts = max(self._max_observed_ts, end.ts)
        self._resolve_reflected_mutations(end.ts)
        if socket.identity and end.identity >= socket.identity:
            self._auth_refetched = False
            self._settle_auth_waiters()

    def _apply_modification(self, modification: protocol.StateModification) -> None:
        query = self._queries_by_id.get(modification["queryId"])
        if query is None or modification["type"] == "QueryRemoved":
            return  # released locally; the server may still report it once
        if modification["type"] not in ("QueryUpdated", "QueryFailed"):
            raise ValueError(f"unknown query modification {modification['type']!r}")
        _log_lines("Q", query.path, modification.get("logLines"))
        journal = modification.get("journal")
        if isinstance(journal, str):
            query.journal = journal
        raw = _result_bytes(modification)
        if query.result is not None and query.result.raw == raw:
            return  # unchanged: subscribers already have it
        query.result = _result(raw, modification)
        for subscription in list(query.subscriptions):
            subscription._deliver(query.result)

    def _resolve_reflected_mutations(self, ts: int) -> None:
        for request in list(self._requests.values()):
            if request.ts is not None and request.ts <= ts:
                del self._requests[request.request_id]
                request.resolve(request.result)

    def _on_response(
        self, socket: _Socket, message: protocol.MutationResponse | protocol.ActionResponse
    ) -> None:
        request = self._requests.get(message["requestId"])
        if request is None or request.kind != message["type"].removesuffix("Response"):
            log.debug("ignoring a response to unknown request %r", message["requestId"])
            return
        _log_lines(request.kind[0], request.path, message.get("logLines"))
        if not message["success"]:
            del self._requests[request.request_id]
            request.fail(_failure(message["result"], message))
        elif message["type"] == "MutationResponse":
            # Resolved by the first Transition at or after its commit (read-your-writes).
            request.ts, request.result = decode_ts(message["ts"]), decode_value(message["result"])
        else:
            del self._requests[request.request_id]
            request.resolve(decode_value(message["result"]))

    def _on_auth_error(self, socket: _Socket, message: protocol.AuthError) -> None:
        self._socket_auth_error = str(message.get("error", "authentication failed"))
        raise _Reconnect(f"AuthError: {self._socket_auth_error}")

    def _on_fatal_error(self, socket: _Socket, message: protocol.FatalError) -> None:
        raise _Fatal(f"The server sent FatalError: {message.get('error')}")

    def _on_ping(self, socket: _Socket, message: protocol.Ping) -> None:
        pass  # only liveness: any frame resets the idle timer

    def _on_transition_chunk(self, socket: _Socket, message: protocol.TransitionChunk) -> None:
        """Reassemble a Transition the server split in parts (npm >= 1.28 behaviour)."""
        part, total = int(message["partNumber"]), int(message["totalParts"])
        if part != len(socket.chunks) or total <= part:
            raise ValueError(f"TransitionChunk {part}/{total} out of order")
        socket.chunks.append(message["chunk"])
        if len(socket.chunks) == total:
            text, socket.chunks = "".join(socket.chunks), []
            self._on_transition(socket, orjson.loads(text))

    #: By message type; each handler takes the protocol message of its type.
    _handlers: Final[dict[str, Callable[[Client, _Socket, Any], None]]] = {
        "Transition": _on_transition,
        "TransitionChunk": _on_transition_chunk,
        "MutationResponse": _on_response,
        "ActionResponse": _on_response,
        "AuthError": _on_auth_error,
        "FatalError": _on_fatal_error,
        "Ping": _on_ping,
    }

    # -- shutdown --------------------------------------------------------------------------

    def _shutdown(self, error: ClientConnectionError) -> None:
        """End every waiter and subscription with `error` (synchronous, idempotent)."""
        if self._closed_error is None:
            self._closed_error = error
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(error)
            self._opened.exception()  # retrieved here: start() may not be waiting any more
        requests, self._requests = list(self._requests.values()), {}
        for request in requests:
            request.fail(_fresh(error))
        self._settle_auth_waiters(error)
        for query in list(self._queries.values()):
            for subscription in list(query.subscriptions):
                subscription._end()
        self._queries.clear()
        self._queries_by_id.clear()


# -- helpers ----------------------------------------------------------------------------------


def _check_path(path: object) -> str:
    if not isinstance(path, str) or not path:
        raise ValidationError(f"A function path must be a non-empty string, got {path!r}")
    return path


def _encode_args(args: object) -> JsonValue:
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise ValidationError(f"Function args must be a dict, got {type(args).__name__}")
    return encode_value(args)


async def _first(subscription: AsyncIterator[Value], client: Client) -> Value:
    try:
        return await anext(subscription)
    except StopAsyncIteration:
        closed = client._closed_error or ClientClosedError("The client was closed")
        raise _fresh(closed) from None


def _fresh(error: ClientConnectionError) -> ClientConnectionError:
    """A new instance of `error` for each raise, so tracebacks do not pile up on one object."""
    return type(error)(*error.args)


def _failure(
    message: object,
    fields: protocol.MutationResponse | protocol.ActionResponse | protocol.QueryFailed,
) -> ClientError:
    if "errorData" in fields:
        return ClientError(str(message), decode_value(fields["errorData"]), has_data=True)
    return ClientError(str(message))


def _result_bytes(modification: protocol.QueryUpdated | protocol.QueryFailed) -> bytes:
    """What a query modification says about the result, as bytes to detect a change."""
    if modification["type"] == "QueryUpdated":
        return orjson.dumps(["QueryUpdated", modification["value"]])
    data = modification.get("errorData")
    return orjson.dumps(
        ["QueryFailed", modification["errorMessage"], data, "errorData" in modification]
    )


def _result(raw: bytes, modification: protocol.QueryUpdated | protocol.QueryFailed) -> _Result:
    if modification["type"] == "QueryUpdated":
        # Received from the wire: plain JSON (only the server sends pre-encoded fragments).
        return _Result(raw, decode_value(cast(JsonValue, modification["value"])))
    has_data = "errorData" in modification
    data = decode_value(modification["errorData"]) if has_data else None
    message = str(modification["errorMessage"])
    return _Result(raw, error=message, error_data=data, has_data=has_data)


def _log_lines(kind: str, path: str, lines: object) -> None:
    """Server-side console output of a function, under the `reactive.client` logger."""
    if isinstance(lines, list):
        for line in lines:
            log.info("[%s(%s)] %s", kind, path, line)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
