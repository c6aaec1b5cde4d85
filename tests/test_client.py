"""reactive.client against a real server process, plus a scripted fake server for the protocol
details a real server cannot be made to show on demand (lost responses, silence, bad versions).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Self

import orjson
import pytest
import websockets
from websockets.asyncio.server import ServerConnection, serve

from reactive.client import (
    Client,
    ClientAuthError,
    ClientClosedError,
    ClientConnectionError,
    ClientError,
    InvalidUrlError,
    connect,
    sync_url,
)
from reactive.errors import ValidationError
from reactive.values import encode_ts
from tests.live_server import LiveServer, free_port
from tests.oidc_issuer import LocalIssuer

CHAT = Path(__file__).parent / "projects" / "chat"

#: Extra functions added to a copy of the chat project: echoes for exact value round trips.
EXTRAS = """
import asyncio

from reactive.functions import action, mutation, query
from reactive.validators import v


@query(args={"value": v.any()})
async def echo(ctx, args):
    return args["value"]


@mutation(args={"value": v.any()})
async def echo_mutation(ctx, args):
    return args["value"]


@action(args={"value": v.any()})
async def echo_action(ctx, args):
    return args["value"]


@action(args={"seconds": v.float64()})
async def sleep(ctx, args):
    await asyncio.sleep(args["seconds"])
    return "slept"
"""

TIMEOUT_S = 20.0


def copy_chat_project(root: Path) -> Path:
    project = root / "chat"
    shutil.copytree(CHAT, project, ignore=shutil.ignore_patterns("__pycache__", ".reactive"))
    (project / "functions" / "extras.py").write_text(EXTRAS)
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_chat_project(tmp_path_factory.mktemp("client-project"))


@pytest.fixture(scope="module")
def server(
    project: Path, issuer: LocalIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    database = tmp_path_factory.mktemp("client-db") / "chat.db"
    with LiveServer(project, f"sqlite:///{database}", env={"CHAT_ISSUER": issuer.url}) as live:
        yield live


@pytest.fixture
def own_server(project: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """A server this test alone may restart or kill."""
    with LiveServer(project, f"sqlite:///{tmp_path}/own.db") as live:
        yield live


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[Client]:
    async with connect(server.url) as connected:
        yield connected


def channel() -> str:
    """A channel no other test writes to (the module shares one server)."""
    return f"c-{uuid.uuid4().hex[:12]}"


async def next_value(subscription: Any) -> Any:
    async with asyncio.timeout(TIMEOUT_S):
        return await anext(subscription)


async def value_reaching(subscription: Any, expected: Any) -> Any:
    async with asyncio.timeout(TIMEOUT_S):
        async for value in subscription:
            if value == expected:
                return value
    raise AssertionError(f"subscription ended before reaching {expected!r}")


# -- calls ------------------------------------------------------------------------------------


async def test_query_mutation_and_action_round_trip(client: Client) -> None:
    name = channel()
    assert await client.query("messages:list", {"channel": name}) == []
    message_id = await client.mutation("messages:send", {"channel": name, "body": "hello"})
    assert isinstance(message_id, str)
    [message] = await client.query("messages:list", {"channel": name})
    assert (message["_id"], message["body"], message["channel"]) == (message_id, "hello", name)
    count = await client.action("messages:send_via_action", {"channel": name, "body": "again"})
    assert count == 2.0


async def test_calls_accept_no_args(client: Client) -> None:
    assert await client.query("messages:whoami") is None


async def test_bad_arguments_are_rejected_before_sending(client: Client) -> None:
    with pytest.raises(ValidationError, match="must be a dict"):
        await client.mutation("messages:send", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="function path"):
        client.subscribe("", {})
    with pytest.raises(ValidationError, match=r"int64|range"):
        await client.query("extras:echo", {"value": 2**70})


async def test_int64_bytes_and_special_floats_round_trip_exactly(client: Client) -> None:
    value = {
        "big": 2**62 + 1,
        "negative": -1,
        "float": 3.0,
        "special": [float("inf"), -0.0],
        "bytes": b"\x00\xff",
        "nested": [{"n": 7}],
    }
    for path in ("extras:echo", "extras:echo_mutation", "extras:echo_action"):
        kind = path.split(":")[1]
        call = {"echo": client.query, "echo_mutation": client.mutation}.get(kind, client.action)
        result = await call(path, {"value": value})
        assert result == value
        assert type(result["big"]) is int and type(result["float"]) is float
        assert str(result["special"][1]) == "-0.0"


# -- subscriptions ----------------------------------------------------------------------------


async def test_subscribe_yields_current_value_then_changes(client: Client) -> None:
    name = channel()
    async with client.subscribe("messages:count", {"channel": name}) as counts:
        assert await next_value(counts) == 0.0
        await client.mutation("messages:send", {"channel": name, "body": "one"})
        assert await next_value(counts) == 1.0
        await client.mutation("messages:send", {"channel": name, "body": "two"})
        assert await next_value(counts) == 2.0


async def test_changes_from_another_client_are_pushed(client: Client, server: LiveServer) -> None:
    name = channel()
    async with client.subscribe("messages:list", {"channel": name}) as messages:
        assert await next_value(messages) == []
        async with connect(server.url) as other:
            await other.mutation("messages:send", {"channel": name, "body": "from other"})
        [message] = await next_value(messages)
        assert message["body"] == "from other"


async def test_awaited_mutation_is_in_the_subscribed_value_already(client: Client) -> None:
    name = channel()
    args = {"channel": name}
    async with client.subscribe("messages:count", args) as counts:
        assert await next_value(counts) == 0.0
        for i in range(1, 21):
            await client.mutation("messages:send", {"channel": name, "body": str(i)})
            # query() answers from the subscription's value: no round trip, so it shows the
            # write only if the mutation resolved after the Transition that carries it.
            assert await client.query("messages:count", args) == float(i)


async def test_identical_subscriptions_share_one_query(client: Client) -> None:
    name = channel()
    first = client.subscribe("messages:count", {"channel": name})
    second = client.subscribe("messages:count", {"channel": name})
    assert await next_value(first) == await next_value(second) == 0.0
    assert len(client._queries) == 1
    first.close()
    await client.mutation("messages:send", {"channel": name, "body": "x"})
    assert await next_value(second) == 1.0
    second.close()
    assert client._queries == {}


async def test_breaking_out_of_a_subscription_releases_its_query(client: Client) -> None:
    async for value in client.subscribe("messages:count", {"channel": channel()}):
        assert value == 0.0
        break
    gc.collect()
    await asyncio.sleep(0)  # the release is scheduled on the loop by the finalizer
    assert client._queries == {}


# -- failures ---------------------------------------------------------------------------------


async def test_app_error_data_reaches_every_kind_of_call(client: Client) -> None:
    name = channel()
    with pytest.raises(ClientError) as mutation_error:
        await client.mutation("messages:send", {"channel": name, "body": "  "})
    assert mutation_error.value.data == {"code": "EMPTY_BODY"} and mutation_error.value.has_data
    with pytest.raises(ClientError) as query_error:
        await client.query("messages:first_or_fail", {"channel": name})
    assert query_error.value.data == {"code": "EMPTY", "channel": name}
    with pytest.raises(ClientError) as action_error:
        await client.action("messages:fail_action")
    assert action_error.value.data == "action says no"


async def test_failing_subscription_raises_then_recovers(client: Client) -> None:
    name = channel()
    subscription = client.subscribe("messages:first_or_fail", {"channel": name})
    with pytest.raises(ClientError) as failure:
        await next_value(subscription)
    assert failure.value.data == {"code": "EMPTY", "channel": name}
    await client.mutation("messages:send", {"channel": name, "body": "now there is one"})
    assert await next_value(subscription) == "now there is one"
    subscription.close()


async def test_plain_errors_have_a_message_and_no_data(client: Client) -> None:
    with pytest.raises(ClientError, match="secret internals") as crash:
        await client.mutation("messages:crash")
    assert crash.value.data is None and not crash.value.has_data
    with pytest.raises(ClientError, match="nope:missing"):
        await client.query("nope:missing")


# -- auth -------------------------------------------------------------------------------------


async def test_set_auth_with_a_real_jwt_sets_the_identity(
    client: Client, issuer: LocalIssuer
) -> None:
    async with client.subscribe("messages:whoami") as whoami:
        assert await next_value(whoami) is None
        await client.set_auth(issuer.sign(subject="alice"))
        assert await client.query("messages:whoami") == "alice"
        assert await next_value(whoami) == "alice"
        name = channel()
        await client.mutation("messages:send", {"channel": name, "body": "signed"})
        [message] = await client.query("messages:list", {"channel": name})
        assert message["author"] == "alice"
        await client.set_auth(None)
        assert await next_value(whoami) is None


async def test_auth_given_to_connect_is_used_from_the_start(
    server: LiveServer, issuer: LocalIssuer
) -> None:
    async with connect(server.url, auth=issuer.sign(subject="bob")) as client:
        assert await value_reaching(client.subscribe("messages:whoami"), "bob") == "bob"


async def test_rejected_token_raises_and_the_client_goes_on_unauthenticated(
    client: Client, issuer: LocalIssuer
) -> None:
    with pytest.raises(ClientAuthError, match="rejected"):
        async with asyncio.timeout(TIMEOUT_S):
            await client.set_auth(issuer.sign(audience="someone-else"))
    assert await client.query("messages:whoami") is None


async def test_token_fetcher_is_asked_once_more_after_a_rejection(
    client: Client, issuer: LocalIssuer
) -> None:
    tokens = iter([issuer.sign(audience="wrong"), issuer.sign(subject="carol")])
    calls = 0

    async def fetch_token() -> str:
        nonlocal calls
        calls += 1
        return next(tokens)

    async with asyncio.timeout(TIMEOUT_S):
        await client.set_auth(fetch_token)
    assert calls == 2
    assert await client.query("messages:whoami") == "carol"


async def test_set_auth_rejects_a_value_that_is_not_a_token() -> None:
    async with FakeServer() as fake, connect(fake.url) as client:
        with pytest.raises(TypeError, match="token string"):
            await client.set_auth(42)  # type: ignore[arg-type]


# -- reconnect and exactly-once ---------------------------------------------------------------


def hard_restart(server: LiveServer) -> None:
    """Kill the server without a graceful shutdown, then start it again on the same port."""
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    server.process = None
    server.start()


@pytest.mark.parametrize("restart", ["graceful", "kill"])
async def test_server_restart_mid_stream_loses_and_doubles_nothing(
    own_server: LiveServer, restart: str
) -> None:
    total = 60
    name = channel()
    async with connect(own_server.url) as client:
        counts = client.subscribe("messages:count", {"channel": name})
        assert await next_value(counts) == 0.0

        async def send(i: int) -> Any:
            await asyncio.sleep(i * 0.02)
            return await client.mutation("messages:send", {"channel": name, "body": str(i)})

        sends = [asyncio.create_task(send(i)) for i in range(total)]
        await asyncio.sleep(total * 0.02 / 3)
        if restart == "graceful":
            await asyncio.to_thread(own_server.restart)
        else:
            await asyncio.to_thread(hard_restart, own_server)
        async with asyncio.timeout(60):
            ids = await asyncio.gather(*sends)
        assert len(set(ids)) == total
        assert await value_reaching(counts, float(total)) == float(total)
        bodies = await client.query("messages:list", {"channel": name})
        assert [m["body"] for m in bodies] == [str(i) for i in reversed(range(total - 10, total))]
        assert client.connection_count >= 2
        counts.close()


async def test_lost_mutation_responses_are_deduplicated_by_the_server(
    own_server: LiveServer,
) -> None:
    """A proxy cuts the socket right after each 3rd MutationResponse, before the client sees
    it: the mutation committed, the client re-sends it, the server must not run it again."""
    name = channel()
    async with CuttingProxy(own_server.url, cut_every=3) as proxy, connect(proxy.url) as client:
        ids = [
            await client.mutation("messages:send", {"channel": name, "body": str(i)})
            for i in range(9)
        ]
        # responses 3, 6, 9, 12 are cut (the re-sent mutations' responses count too)
        assert proxy.cuts == 4 and client.connection_count == 5
        assert len(set(ids)) == 9
        assert await client.query("messages:count", {"channel": name}) == 9.0
        documents = await client.query("messages:list", {"channel": name})
        assert sorted(m["_id"] for m in documents) == sorted(ids)


# -- errors at the edges ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com", "must start with http://"),
        ("127.0.0.1:3210", "must start with http://"),
        ("http://", "has no host"),
        ("http://127.0.0.1:99999", "Invalid deployment URL"),
    ],
)
def test_bad_urls_are_rejected_clearly(url: str, problem: str) -> None:
    with pytest.raises(InvalidUrlError, match=problem):
        connect(url)


def test_sync_url_swaps_the_scheme_and_keeps_a_path_prefix() -> None:
    assert sync_url("http://127.0.0.1:3210") == "ws://127.0.0.1:3210/api/sync"
    assert sync_url("https://example.com/") == "wss://example.com/api/sync"
    assert sync_url("https://example.com/prefix") == "wss://example.com/prefix/api/sync"
    assert sync_url("ws://h:1") == "ws://h:1/api/sync"


async def test_unreachable_server_fails_clearly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(
        ClientConnectionError, match=r"Could not connect to ws://.*ConnectionRefused"
    ):
        await connect(url, connect_timeout=0.5).start()


async def test_non_reactive_server_fails_clearly(issuer: LocalIssuer) -> None:
    with pytest.raises(ClientConnectionError, match="HTTP 404"):
        await connect(issuer.url, connect_timeout=0.5).start()


async def test_close_ends_subscriptions_and_fails_waiting_calls(client: Client) -> None:
    subscription = client.subscribe("messages:count", {"channel": channel()})
    assert await next_value(subscription) == 0.0
    slow = asyncio.create_task(client.action("extras:sleep", {"seconds": 5.0}))
    await asyncio.sleep(0.1)
    await client.close()
    with pytest.raises(ClientClosedError):
        await slow
    assert [value async for value in subscription] == []
    with pytest.raises(ClientClosedError):
        await client.query("messages:count", {"channel": "x"})
    await client.close()  # idempotent
    leftover = [t for t in asyncio.all_tasks() if t.get_name().startswith("reactive-client")]
    assert leftover == []


async def test_await_connect_returns_a_started_client(server: LiveServer) -> None:
    client = await connect(server.url)
    try:
        assert client.connected and await client.query("messages:whoami") is None
    finally:
        await client.close()
    assert client.closed and not client.connected


# -- the protocol, against a scripted server --------------------------------------------------


class FakeConnection:
    """One socket accepted by FakeServer: the test reads the client's frames and answers."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.version = {"querySet": 0, "identity": 0, "ts": encode_ts(0)}

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT_S):
            return orjson.loads(await self.ws.recv())  # type: ignore[no-any-return]

    async def recv_type(self, kind: str) -> dict[str, Any]:
        message = await self.recv()
        assert message["type"] == kind, message
        return message

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def transition(
        self, *, query_set: int, identity: int, ts: int, modifications: list[Any] | None = None
    ) -> None:
        end = {"querySet": query_set, "identity": identity, "ts": encode_ts(ts)}
        await self.send(
            {
                "type": "Transition",
                "startVersion": self.version,
                "endVersion": end,
                "modifications": modifications or [],
            }
        )
        self.version = end


class LoopbackWebSocketServer:
    """A WebSocket server on a free loopback port while the `async with` lasts, at `url`;
    `_accept` serves each connection."""

    #: Options of `websockets.serve`.
    serve_options: dict[str, Any] = {}
    url = ""

    async def __aenter__(self) -> Self:
        self._server = await serve(self._accept, "127.0.0.1", 0, **self.serve_options)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _accept(self, ws: ServerConnection) -> None:
        raise NotImplementedError


class FakeServer(LoopbackWebSocketServer):
    """A WebSocket server on loopback whose every connection is handed to the test."""

    def __init__(self) -> None:
        self.connections: asyncio.Queue[FakeConnection] = asyncio.Queue()

    async def _accept(self, ws: ServerConnection) -> None:
        await self.connections.put(FakeConnection(ws))
        await ws.wait_closed()

    async def next_connection(self) -> FakeConnection:
        async with asyncio.timeout(TIMEOUT_S):
            return await self.connections.get()


def updated(query_id: int, value: Any, journal: str | None = None) -> dict[str, Any]:
    return {
        "type": "QueryUpdated",
        "queryId": query_id,
        "value": value,
        "logLines": [],
        "journal": journal,
    }


async def test_a_new_socket_replays_session_auth_queries_and_unresolved_mutations() -> None:
    async with FakeServer() as fake, connect(fake.url, auth="token-1") as client:
        first = await fake.next_connection()
        hello = await first.recv_type("Connect")
        assert (hello["connectionCount"], hello["lastCloseReason"]) == (0, "InitialConnect")
        assert "maxObservedTimestamp" not in hello
        assert await first.recv_type("Authenticate") == {
            "type": "Authenticate",
            "baseVersion": 0,
            "tokenType": "User",
            "value": "token-1",
        }
        assert (await first.recv_type("ModifyQuerySet"))["modifications"] == []
        subscription = client.subscribe("tasks:list", {"n": 1})
        add = await first.recv_type("ModifyQuerySet")
        assert (add["baseVersion"], add["newVersion"]) == (1, 2)
        assert add["modifications"][0]["args"] == [{"n": {"$integer": "AQAAAAAAAAA="}}]
        await first.transition(query_set=2, identity=1, ts=5, modifications=[updated(0, [1], "j")])
        assert await next_value(subscription) == [1.0]
        mutation = asyncio.create_task(client.mutation("tasks:add", {}))
        sent = await first.recv_type("Mutation")
        await first.send(
            {
                "type": "MutationResponse",
                "requestId": sent["requestId"],
                "success": True,
                "result": "id1",
                "ts": encode_ts(9),
                "logLines": [],
            }
        )
        await first.ws.close()  # before any Transition reached ts 9: not resolved yet

        second = await fake.next_connection()
        hello_again = await second.recv_type("Connect")
        assert hello_again["sessionId"] == hello["sessionId"]
        assert hello_again["connectionCount"] == 1
        assert hello_again["maxObservedTimestamp"] == encode_ts(5)
        assert (await second.recv_type("Authenticate"))["baseVersion"] == 0
        readd = await second.recv_type("ModifyQuerySet")
        assert (readd["baseVersion"], readd["newVersion"]) == (0, 1)
        assert [(m["queryId"], m["journal"]) for m in readd["modifications"]] == [(0, "j")]
        assert await second.recv_type("Mutation") == sent
        assert not mutation.done()
        await second.send(
            {
                "type": "MutationResponse",
                "requestId": sent["requestId"],
                "success": True,
                "result": "id1",
                "ts": encode_ts(9),
                "logLines": [],
            }
        )
        await second.transition(query_set=1, identity=1, ts=8)
        await asyncio.sleep(0.05)
        assert not mutation.done()  # ts 8 < 9
        await second.transition(query_set=1, identity=1, ts=9, modifications=[updated(0, [1, 2])])
        async with asyncio.timeout(TIMEOUT_S):
            assert await mutation == "id1"
        assert await client.query("tasks:list", {"n": 1}) == [1.0, 2.0]
        subscription.close()


async def test_request_ids_keep_counting_across_reconnects() -> None:
    async with FakeServer() as fake, connect(fake.url) as client:
        first = await fake.next_connection()
        for kind in ("Connect", "ModifyQuerySet"):
            await first.recv_type(kind)
        action = asyncio.create_task(client.action("a:b"))
        assert (await first.recv_type("Action"))["requestId"] == 0
        await first.ws.close()
        with pytest.raises(ClientConnectionError, match="Connection lost while action"):
            async with asyncio.timeout(TIMEOUT_S):
                await action
        second = await fake.next_connection()
        for kind in ("Connect", "ModifyQuerySet"):
            await second.recv_type(kind)
        later = asyncio.create_task(client.action("a:b"))
        resent = await second.recv_type("Action")
        assert resent["requestId"] == 1
        await second.send(
            {
                "type": "ActionResponse",
                "requestId": 1,
                "success": False,
                "result": "no",
                "errorData": {"$integer": "AgAAAAAAAAA="},
                "logLines": [],
            }
        )
        with pytest.raises(ClientError) as failure:
            await later
        assert failure.value.data == 2 and failure.value.has_data


async def test_an_expired_static_token_is_dropped_and_the_client_reconnects_logged_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeServer() as fake, connect(fake.url, auth="short-lived") as client:
        first = await fake.next_connection()
        for kind in ("Connect", "Authenticate", "ModifyQuerySet"):
            await first.recv_type(kind)
        await first.transition(query_set=1, identity=1, ts=1)
        await first.send(
            {
                "type": "AuthError",
                "error": "Token expired",
                "baseVersion": 1,
                "authUpdateAttempted": False,
            }
        )
        second = await fake.next_connection()
        hello = await second.recv_type("Connect")
        assert "AuthError: Token expired" in hello["lastCloseReason"]
        assert (await second.recv())["type"] == "ModifyQuerySet"  # no Authenticate any more
        assert "continuing unauthenticated" in caplog.text
        assert client.connection_count == 2


async def test_the_example_prints_live_updates(
    server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from examples.python_client import chat

    name = channel()
    await asyncio.wait_for(chat(server.url, name, ["first", "second"]), TIMEOUT_S)
    output = capsys.readouterr().out
    assert f"[{name}] 2 message(s): ['first', 'second']" in output
    assert "an empty message is refused, as expected: {'code': 'EMPTY_BODY'}" in output


async def test_a_start_version_mismatch_makes_the_client_reconnect() -> None:
    async with FakeServer() as fake, connect(fake.url) as client:
        first = await fake.next_connection()
        await first.recv_type("Connect")
        await first.recv_type("ModifyQuerySet")
        first.version = {"querySet": 7, "identity": 0, "ts": encode_ts(0)}  # not what it sent
        await first.transition(query_set=8, identity=0, ts=1)
        second = await fake.next_connection()
        hello = await second.recv_type("Connect")
        assert "StartVersionMismatch" in hello["lastCloseReason"]
        assert client.connection_count == 2


async def test_a_silent_server_makes_the_client_reconnect() -> None:
    async with FakeServer() as fake, connect(fake.url, idle_timeout=0.3) as client:
        await fake.next_connection()
        second = await fake.next_connection()
        hello = await second.recv_type("Connect")
        assert "InactiveServer" in hello["lastCloseReason"]
        assert client.connection_count == 2


async def test_pings_keep_a_quiet_connection_alive() -> None:
    async with FakeServer() as fake, connect(fake.url, idle_timeout=0.5) as client:
        first = await fake.next_connection()
        for _ in range(8):
            await first.send({"type": "Ping"})
            await asyncio.sleep(0.15)
        assert fake.connections.empty() and client.connection_count == 1


async def test_a_fatal_error_closes_the_client_for_good() -> None:
    async with FakeServer() as fake, connect(fake.url) as client:
        first = await fake.next_connection()
        waiting = asyncio.create_task(client.mutation("a:b"))
        await first.recv_type("Connect")
        await first.send({"type": "FatalError", "error": "you broke it"})
        with pytest.raises(ClientConnectionError, match="FatalError: you broke it"):
            async with asyncio.timeout(TIMEOUT_S):
                await waiting
        assert client.closed
        with pytest.raises(ClientConnectionError, match="you broke it"):
            await client.query("a:b")


async def test_a_transition_split_into_chunks_is_reassembled() -> None:
    async with FakeServer() as fake, connect(fake.url) as client:
        first = await fake.next_connection()
        await first.recv_type("Connect")
        await first.recv_type("ModifyQuerySet")
        subscription = client.subscribe("q:q")
        await first.recv_type("ModifyQuerySet")
        transition = {
            "type": "Transition",
            "startVersion": first.version,
            "endVersion": {"querySet": 2, "identity": 0, "ts": encode_ts(3)},
            "modifications": [updated(0, "x" * 100)],
        }
        text = orjson.dumps(transition).decode()
        parts = [text[i : i + 40] for i in range(0, len(text), 40)]
        for number, part in zip(itertools.count(), parts, strict=False):
            await first.send(
                {
                    "type": "TransitionChunk",
                    "chunk": part,
                    "partNumber": number,
                    "totalParts": len(parts),
                    "transitionId": "t1",
                }
            )
        assert await next_value(subscription) == "x" * 100
        subscription.close()


# -- a proxy that loses responses -------------------------------------------------------------


class CuttingProxy(LoopbackWebSocketServer):
    """Forwards WebSocket frames to a server; drops every `cut_every`-th MutationResponse and
    closes the client's socket instead, as if the connection broke after the commit."""

    serve_options = {"max_size": None}

    def __init__(self, upstream: str, *, cut_every: int) -> None:
        self.upstream = sync_url(upstream)
        self.cut_every = cut_every
        self.responses = 0
        self.cuts = 0

    async def _accept(self, downstream: ServerConnection) -> None:
        async with websockets.connect(self.upstream, max_size=None) as upstream:
            forward = asyncio.create_task(self._pipe(downstream, upstream, cut=False))
            backward = asyncio.create_task(self._pipe(upstream, downstream, cut=True))
            await asyncio.wait([forward, backward], return_when=asyncio.FIRST_COMPLETED)
            for task in (forward, backward):
                task.cancel()
            await asyncio.wait([forward, backward])
        await downstream.close()

    async def _pipe(self, source: Any, target: Any, *, cut: bool) -> None:
        try:
            async for frame in source:
                if cut and self._should_cut(frame):
                    return
                await target.send(frame)
        except websockets.ConnectionClosed:
            return

    def _should_cut(self, frame: str | bytes) -> bool:
        if orjson.loads(frame)["type"] != "MutationResponse":
            return False
        self.responses += 1
        if self.responses % self.cut_every:
            return False
        self.cuts += 1
        return True
