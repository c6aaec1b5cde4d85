"""Per-WebSocket sync state: the query set, identity and versions of one client connection.

One worker task handles a socket's messages in arrival order (so its mutations run serially)
and is the only sender. Commits mark affected queries dirty and wake the worker, which re-runs
them all at one snapshot ts and sends one Transition: a slow client gets fewer, larger
Transitions instead of an unbounded backlog. Invariant (docs/PROTOCOL.md 5.3): every Transition's
startVersion equals the previous endVersion sent on this socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from reactive import knobs, protocol
from reactive.application import Application, EncodedArgs
from reactive.auth import AuthError, Identity
from reactive.dashboard import Dashboard, identity_from_claims
from reactive.errors import ReactiveError, ValidationError
from reactive.executor import Outcome
from reactive.protocol import ProtocolError
from reactive.subscriptions import Subscription
from reactive.values import decode_value, encode_value

__all__ = ["AuthRejected", "SyncSession"]

log = logging.getLogger("reactive.sync")

PING_AFTER_S = 15.0
Send = Callable[[protocol.ServerMessage], Awaitable[None]]


class AuthRejected(Exception):
    """The client's token was refused: AuthError was sent, the socket must close."""


@dataclass(slots=True)
class QueryState:
    """One subscribed query of this client.

    `sent` stands for the result last sent (None = never sent): enough to tell whether a
    re-run changed it without keeping the result (see `_sent_form`); `subscription` watches
    the read set of the last run and is replaced on every run. Whether it must re-run is kept
    by the session (`SyncSession._dirty`), so a refresh never scans every query of the socket.
    """

    query_id: int
    path: str
    #: Encoded until a run needs them; the error to report if they are not valid args.
    args: EncodedArgs | ReactiveError
    journal: str | None
    #: What holding the query costs: its path, encoded args and journal (characters).
    size: int = 0
    sent: object = None
    subscription: Subscription | None = None


@dataclass(slots=True)
class Version:
    query_set: int = 0
    identity: int = 0
    ts: int = 0

    def to_json(self) -> protocol.StateVersion:
        return protocol.state_version(self.query_set, self.identity, self.ts)


class _Tick:
    """Internal worker events (not client messages)."""


PING = _Tick()
WAKE = _Tick()  # some query became dirty
DISCONNECTED = _Tick()
TOKEN_EXPIRED = _Tick()


@dataclass(slots=True)
class _ActionDone:
    request_id: int
    outcome: Outcome


class SyncSession:
    def __init__(
        self, app: Application, send: Send, *, client: str = "", dashboard: Dashboard | None = None
    ) -> None:
        self.app = app
        #: Admin sessions (Authenticate with the admin key) run their calls here instead.
        self.dashboard = dashboard
        self.admin = False
        self._send_raw = send
        self.client = client
        self.session_id: str | None = None
        self.identity: Identity | None = None
        self.queries: dict[int, QueryState] = {}
        #: Queries to re-run (new, invalidated, or a new identity), by query id.
        self._dirty: dict[int, QueryState] = {}
        self.qs_recv = 0
        self.id_recv = 0
        self.sent = Version()
        #: `sent` as sent: the next Transition's startVersion, so it is not encoded twice.
        self._sent_json = self.sent.to_json()
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        #: Characters of the client frames waiting in the inbox (bounded with their count).
        self._inbox_chars = 0
        #: A violation found by the transport: raised by the worker before anything else.
        self._failure: Exception | None = None
        #: Total `size` of the live queries (knobs.MAX_QUERY_SET_BYTES).
        self._query_chars = 0
        self._wake_pending = False
        self._actions: set[asyncio.Task[None]] = set()
        self._last_send = time.monotonic()
        self._closed = False
        self._expiry: asyncio.TimerHandle | None = None
        self._stop_reload_listener = app.on_reload(self._code_changed)

    # -- entry points for the transport ----------------------------------------------------

    def receive(self, text: str | bytes) -> bool:
        """Queue one raw client frame for the worker; False once the client has sent more than
        the inbox holds (knobs.SYNC_INBOX_MAX_MESSAGES / _BYTES): the transport then stops
        reading and the socket is closed, so a flood costs the server a bounded amount."""
        too_many = self._inbox.qsize() >= knobs.SYNC_INBOX_MAX_MESSAGES
        if too_many or self._inbox_chars + len(text) > knobs.SYNC_INBOX_MAX_BYTES:
            self.fail(
                ProtocolError(
                    "TooManyPendingMessages: the client sent more than the server holds for it "
                    f"({knobs.SYNC_INBOX_MAX_MESSAGES} messages or "
                    f"{knobs.SYNC_INBOX_MAX_BYTES} bytes waiting); wait for responses before "
                    "sending more",
                    short_msg="TooManyPendingMessages",
                )
            )
            return False
        self._inbox_chars += len(text)
        self._inbox.put_nowait(text)
        return True

    def disconnected(self) -> None:
        """The client is gone: the worker stops after what it is doing."""
        self._inbox.put_nowait(DISCONNECTED)

    def fail(self, error: Exception) -> None:
        """The transport found a protocol violation: the worker raises it next, before any
        frame still waiting."""
        if self._failure is None:
            self._failure = error
            self._inbox.put_nowait(WAKE)

    async def run(self) -> None:
        """The worker: process frames and refreshes until the socket should close.

        Raises ProtocolError (send FatalError, then close) or AuthRejected (close)."""
        pinger = asyncio.create_task(self._ping_loop())
        try:
            while not self._closed:
                self._raise_failure()
                if self._inbox.empty() and self._dirty:
                    await self._transition(only_if_changed=True)
                    # A refresh may complete without awaiting anything real: yield once so
                    # the other sockets (and the committer) always get their turn.
                    await asyncio.sleep(0)
                    continue
                item = await self._inbox.get()
                if isinstance(item, str | bytes):
                    self._inbox_chars -= len(item)
                self._raise_failure()
                if item is DISCONNECTED:
                    return
                if item is WAKE:
                    self._wake_pending = False
                else:
                    await self._handle(item)
        finally:
            pinger.cancel()
            self.close()

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure  # not kept: its traceback would hold the session in a cycle

    def close(self) -> None:
        """Drop subscriptions and running actions; idempotent."""
        if not self._closed:
            self._stop_reload_listener()
            # The unregistering closure holds a bound method of this session: dropping it
            # breaks the cycle, so the session dies by reference counting, not at the next
            # full collection (rare in a server, see knobs.GC_YOUNG_THRESHOLD).
            self._stop_reload_listener = _nothing
        self._closed = True
        for query in self.queries.values():
            self._drop_subscription(query)
        self._dirty.clear()
        for task in self._actions:
            task.cancel()
        if self._expiry is not None:
            self._expiry.cancel()

    # -- message dispatch ------------------------------------------------------------------

    async def _handle(self, item: Any) -> None:
        if isinstance(item, _ActionDone):
            await self._send(_action_response(item.request_id, item.outcome))
            return
        if item is PING:
            await self._send(protocol.ping())
            return
        if item is TOKEN_EXPIRED:
            await self._reject_auth("Token expired", attempted=False)
            raise AuthRejected("token expired")
        message = protocol.parse_client_message(item)
        if message["type"] == "Mutation":
            await self._on_mutation(message)
        elif message["type"] == "ModifyQuerySet":
            await self._on_modify_query_set(message)
        elif message["type"] == "Action":
            await self._on_action(message)
        elif message["type"] == "Authenticate":
            await self._on_authenticate(message)
        elif message["type"] == "Connect":
            self._on_connect(message)
        else:
            log.debug("client event %s", message.get("eventType"))

    def _on_connect(self, message: protocol.Connect) -> None:
        self.session_id = message["sessionId"]

    async def _on_modify_query_set(self, message: protocol.ModifyQuerySet) -> None:
        base, new = message["baseVersion"], message["newVersion"]
        if base != self.qs_recv or new <= base:
            raise ProtocolError(
                f"BaseVersionMismatch: ModifyQuerySet {base}->{new}, server is at {self.qs_recv}"
            )
        removed = [self._apply_modification(m) for m in message["modifications"]]
        self._check_query_set_limits()
        self.qs_recv = new
        await self._transition(removed=[q for q in removed if q is not None])

    def _apply_modification(self, modification: protocol.QuerySetModification) -> int | None:
        """Add or remove one query; returns the id of a removed query."""
        query_id = modification["queryId"]
        old = self.queries.pop(query_id, None)
        if old is not None:
            self._drop_subscription(old)
            self._query_chars -= old.size
        if modification["type"] == "Remove":
            self._dirty.pop(query_id, None)
            return query_id
        path, wire = modification["udfPath"], modification["args"]
        journal = modification.get("journal")
        args = _encoded_args(wire)
        held = args.size() if type(args) is EncodedArgs else len(orjson.dumps(wire))
        size = len(path) + held + len(journal or "")
        query = QueryState(query_id, path, args, journal, size)
        self.queries[query_id] = self._dirty[query_id] = query
        self._query_chars += size
        return None

    def _check_query_set_limits(self) -> None:
        """One client may hold only so many live queries (knobs.MAX_QUERIES_PER_SOCKET,
        knobs.MAX_QUERY_SET_BYTES); checked after each ModifyQuerySet, whose own size the
        frame limit bounds."""
        if len(self.queries) > knobs.MAX_QUERIES_PER_SOCKET:
            raise ProtocolError(
                f"TooManyQueries: a socket may hold at most {knobs.MAX_QUERIES_PER_SOCKET} live "
                f"queries, this one asked for {len(self.queries)}; remove queries it no longer "
                "needs",
                short_msg="TooManyQueries",
            )
        if self._query_chars > knobs.MAX_QUERY_SET_BYTES:
            raise ProtocolError(
                f"TooManyQueries: the live queries of a socket may hold at most "
                f"{knobs.MAX_QUERY_SET_BYTES} bytes of paths and arguments, this one asked for "
                f"{self._query_chars}; remove queries it no longer needs",
                short_msg="TooManyQueries",
            )

    async def _on_mutation(self, message: protocol.Mutation) -> None:
        request_id, path = message["requestId"], message["udfPath"]
        args = _decode_args(message["args"])
        if isinstance(args, ReactiveError):
            outcome = Outcome(error=self.app.executor.failure(args, path))
        else:
            outcome = await self._runner.run_mutation(
                path, args, self.identity, session_id=self.session_id, request_id=request_id
            )
        await self._send(_mutation_response(request_id, outcome))
        # The client resolves the mutation only on a Transition with ts >= its commit ts.
        await self._transition(min_ts=outcome.ts or 0)

    async def _on_action(self, message: protocol.Action) -> None:
        """Start the action and carry on (actions run concurrently, as upstream); with
        knobs.MAX_ACTIONS_PER_SOCKET running, first wait for one to end, so a client's
        further frames wait in its bounded inbox instead of becoming tasks."""
        if len(self._actions) >= knobs.MAX_ACTIONS_PER_SOCKET:
            await asyncio.wait(self._actions, return_when=asyncio.FIRST_COMPLETED)
        request_id = message["requestId"]
        args = _decode_args(message["args"])
        task = asyncio.create_task(self._run_action(request_id, message["udfPath"], args))
        self._actions.add(task)
        task.add_done_callback(self._actions.discard)

    async def _run_action(self, request_id: int, path: str, args: Any) -> None:
        if isinstance(args, ReactiveError):
            outcome = Outcome(error=self.app.executor.failure(args, path))
        else:
            outcome = await self._runner.run_action(path, args, self.identity)
        self._inbox.put_nowait(_ActionDone(request_id, outcome))

    async def _on_authenticate(self, message: protocol.Authenticate) -> None:
        base = message["baseVersion"]
        if base != self.id_recv:
            raise ProtocolError(
                f"IdentityVersionMismatch: Authenticate baseVersion {base}, "
                f"server at {self.id_recv}"
            )
        token_type = message["tokenType"]
        self.admin = False
        if token_type == "Admin":
            # The dashboard's sessions: the admin key, acting as `impersonating` (or no one).
            if self.dashboard is None or not self.dashboard.admits(message.get("value")):
                await self._reject_auth("Invalid admin key", attempted=True)
                raise AuthRejected("admin key")
            try:
                acting_as = identity_from_claims(message.get("impersonating"))
            except ValidationError as exc:
                await self._reject_auth(f"Invalid identity to act as: {exc}", attempted=True)
                raise AuthRejected("admin identity") from None
            self.admin = True
            self._set_identity(acting_as)
        elif token_type == "None":
            self._set_identity(None)
        else:
            # A User token: parse_client_message checked that its value is a string.
            try:
                identity = await self.app.authenticate(message.get("value") or "")
            except AuthError as exc:
                await self._reject_auth(str(exc), attempted=True)
                raise AuthRejected(str(exc)) from None
            self._set_identity(identity)
        await self._transition()

    @property
    def _runner(self) -> Application | Dashboard:
        """Who runs this session's calls: the dashboard for an admin, else the application."""
        return self.dashboard if self.admin and self.dashboard is not None else self.app

    def _set_identity(self, identity: Identity | None) -> None:
        self.identity = identity
        self.id_recv += 1
        self._dirty.update(self.queries)
        self._schedule_expiry(identity)

    def _schedule_expiry(self, identity: Identity | None) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        expires_at = getattr(identity, "expires_at", None)
        if expires_at:
            delay = max(0.0, expires_at - time.time())
            loop = asyncio.get_running_loop()
            self._expiry = loop.call_later(delay, self._inbox.put_nowait, TOKEN_EXPIRED)

    async def _reject_auth(self, error: str, *, attempted: bool) -> None:
        await self._send(protocol.auth_error(error, self.sent.identity, attempted=attempted))

    # -- transitions -----------------------------------------------------------------------

    async def _transition(
        self, *, removed: list[int] | None = None, min_ts: int = 0, only_if_changed: bool = False
    ) -> None:
        """Re-run every dirty query at one snapshot and send one Transition to it.

        A refresh caused only by invalidations sends nothing when no result changed (the
        client's values are still right); after a client message a Transition is always due.
        """
        ts = max(self.app.latest_ts, min_ts, self.sent.ts)
        dirty = list(self._dirty.values())
        if len(dirty) == 1:
            # The usual refresh: awaited here, not in a task of its own that would queue
            # behind every other socket woken by the same commit.
            outcomes = [await self._rerun(dirty[0], ts)]
        else:
            outcomes = await asyncio.gather(*(self._rerun(q, ts) for q in dirty))
        modifications: list[protocol.StateModification] = [m for m in outcomes if m is not None]
        modifications += [protocol.query_removed(query_id) for query_id in removed or []]
        if only_if_changed and not modifications:
            return
        end = Version(self.qs_recv, self.id_recv, ts)
        end_json = end.to_json()
        await self._send(protocol.transition(self._sent_json, end_json, modifications))
        self.sent, self._sent_json = end, end_json

    async def _rerun(
        self, query: QueryState, ts: int
    ) -> protocol.QueryUpdated | protocol.QueryFailed | None:
        if self._dirty.get(query.query_id) is query:
            del self._dirty[query.query_id]
        self._drop_subscription(query)
        if isinstance(query.args, ReactiveError):
            outcome = Outcome(error=self.app.executor.failure(query.args, query.path))
        else:
            outcome = await self._runner.run_query(
                query.path, query.args, self.identity, ts=ts, journal=query.journal
            )
        if self.queries.get(query.query_id) is not query:
            return None  # removed while it ran
        if outcome.token is not None:
            query.subscription = self.app.subscribe(outcome.token, self._invalidated, query)
        if outcome.journal is not None:
            query.journal = outcome.journal
        modification = _query_modification(query, outcome)
        sent = _sent_form(modification, outcome)
        if sent == query.sent:
            return None  # unchanged: the client's value is already right at ts
        query.sent = sent
        return modification

    def _code_changed(self) -> None:
        """New functions: every query may now give another result."""
        self._dirty.update(self.queries)
        self._wake()

    def _wake(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            self._inbox.put_nowait(WAKE)

    def _invalidated(self, sub: Subscription, ts: int) -> None:
        """A commit changed what `sub.owner` (a QueryState) read: re-run it."""
        query = sub.owner
        assert isinstance(query, QueryState)
        current = query.subscription is sub or query.subscription is None
        if current and self.queries.get(query.query_id) is query:
            self._dirty[query.query_id] = query
            self._wake()

    def _drop_subscription(self, query: QueryState) -> None:
        if query.subscription is not None:
            self.app.unsubscribe(query.subscription)
            query.subscription = None

    # -- sending ---------------------------------------------------------------------------

    async def _send(self, message: protocol.ServerMessage) -> None:
        self._last_send = time.monotonic()
        await self._send_raw(message)

    async def _ping_loop(self) -> None:
        while True:
            idle = time.monotonic() - self._last_send
            if idle >= PING_AFTER_S:
                self._inbox.put_nowait(PING)
                self._last_send = time.monotonic()
                idle = 0.0
            await asyncio.sleep(PING_AFTER_S - idle)


# -- helpers ----------------------------------------------------------------------------------


def _sent_form(modification: protocol.StateModification, outcome: Outcome) -> object:
    """What a socket keeps of a modification it sent, to tell whether the next one differs:
    a 16-byte digest (blake2b) rather than the encoding, whose orjson buffer alone is 4 KiB.
    A value's digest is the outcome's, computed once for every socket sharing that run; a
    collision that would hide a change is as likely as guessing a 128-bit key."""
    if modification["type"] == "QueryUpdated":
        journal = modification.get("journal")
        return (outcome.digest(), tuple(modification["logLines"]), journal)
    return hashlib.blake2b(orjson.dumps(modification), digest_size=16).digest()


def _nothing() -> None:
    pass


def _encoded_args(raw: Any) -> EncodedArgs | ReactiveError:
    """A query's args from the wire's one-element array, kept encoded; or the error to report."""
    args = _decode_args(raw)
    if isinstance(args, ReactiveError):
        return args
    return EncodedArgs.of(args, raw[0] if isinstance(raw, list) else raw)


def _decode_args(raw: Any) -> Any:
    """The args object from the wire's one-element array, or the error to report."""
    try:
        if isinstance(raw, list):
            if len(raw) != 1:
                raise ValidationError(f"args must be a one-element array, got {len(raw)} items")
            raw = raw[0]
        value = decode_value(raw)
        if not isinstance(value, dict):
            raise ValidationError("args must be an object")
        return value
    except ReactiveError as exc:
        return exc


def _error_data(outcome: Outcome) -> protocol.ErrorData:
    """The encoded ConvexError data of a failed outcome, if it has any."""
    assert outcome.error is not None
    if outcome.error.has_data:
        return encode_value(outcome.error.data)
    return protocol.NO_ERROR_DATA


def _query_modification(
    query: QueryState, outcome: Outcome
) -> protocol.QueryUpdated | protocol.QueryFailed:
    if outcome.error is None:
        value = orjson.Fragment(outcome.wire_value())
        return protocol.query_updated(query.query_id, value, outcome.log_lines, query.journal)
    return protocol.query_failed(
        query.query_id,
        outcome.error.message,
        outcome.log_lines,
        query.journal,
        _error_data(outcome),
    )


def _mutation_response(request_id: int, outcome: Outcome) -> protocol.MutationResponse:
    if outcome.error is None:
        result = encode_value(outcome.value)
        return protocol.mutation_succeeded(request_id, result, outcome.ts or 0, outcome.log_lines)
    return protocol.mutation_failed(
        request_id, outcome.error.message, outcome.log_lines, _error_data(outcome)
    )


def _action_response(request_id: int, outcome: Outcome) -> protocol.ActionResponse:
    if outcome.error is None:
        return protocol.action_succeeded(request_id, encode_value(outcome.value), outcome.log_lines)
    return protocol.action_failed(
        request_id, outcome.error.message, outcome.log_lines, _error_data(outcome)
    )
