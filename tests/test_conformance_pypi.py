"""The official PyPI `convex` client (0.8.1, a Rust core) against a real reactive server.

Its query/mutation/action calls block while holding the GIL, so nothing in this process may be
needed to answer them: the server runs in its own process, and whenever the server must reach
the in-process OIDC issuer (the first token check fetches its JWKS) the test waits through the
client's async subscription iterator, which releases the GIL. Its blocking iterator is not used.
A Python `int` argument travels as a float64 unless wrapped in `ConvexInt64`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from convex import ConvexClient, ConvexError, ConvexInt64

from tests.live_server import LiveServer
from tests.oidc_issuer import LocalIssuer
from tests.test_client import copy_chat_project

TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def server(issuer: LocalIssuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("pypi")
    project = copy_chat_project(root)
    env = {"CHAT_ISSUER": issuer.url}
    with LiveServer(project, f"sqlite:///{root}/pypi.db", env=env) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> ConvexClient:
    return ConvexClient(server.url)


def channel() -> str:
    return f"p-{uuid.uuid4().hex[:12]}"


async def next_value(subscription: Any) -> Any:
    """The next value of a PyPI subscription, through its async iterator (GIL released)."""
    return await asyncio.wait_for(subscription.__anext__(), TIMEOUT_S)


async def value_reaching(subscription: Any, expected: Any) -> Any:
    """Values until `expected` (the PyPI iterator may repeat a value when its query set changes)."""
    async with asyncio.timeout(TIMEOUT_S):
        while (value := await subscription.__anext__()) != expected:
            pass
    return value


def test_query_mutation_and_action(client: ConvexClient) -> None:
    name = channel()
    assert client.query("messages:list", {"channel": name}) == []
    message_id = client.mutation("messages:send", {"channel": name, "body": "hi"})
    [message] = client.query("messages:list", {"channel": name})
    assert (message["_id"], message["body"]) == (message_id, "hi")
    assert client.action("messages:send_via_action", {"channel": name, "body": "x"}) == 2.0
    assert client.query("messages:count", {"channel": name}) == 2.0


def test_python_ints_arrive_as_floats_and_convex_int64_as_int64(client: ConvexClient) -> None:
    result = client.query("extras:echo", {"value": {"plain": 5, "wrapped": ConvexInt64(2**40)}})
    assert result["plain"] == 5.0 and type(result["plain"]) is float
    assert isinstance(result["wrapped"], ConvexInt64) and result["wrapped"].value == 2**40
    assert client.mutation("extras:echo_mutation", {"value": b"\x00\xff"}) == b"\x00\xff"


def test_convex_error_data_reaches_query_mutation_and_action(client: ConvexClient) -> None:
    name = channel()
    with pytest.raises(ConvexError) as mutation_error:
        client.mutation("messages:send", {"channel": name, "body": " "})
    assert mutation_error.value.data == {"code": "EMPTY_BODY"}
    with pytest.raises(ConvexError) as query_error:
        client.query("messages:first_or_fail", {"channel": name})
    assert query_error.value.data == {"code": "EMPTY", "channel": name}
    with pytest.raises(ConvexError) as action_error:
        client.action("messages:fail_action")
    assert action_error.value.data == "action says no"


def test_plain_failure_is_a_plain_exception_with_the_message(client: ConvexClient) -> None:
    with pytest.raises(Exception, match="secret internals") as failure:
        client.mutation("messages:crash")
    assert not isinstance(failure.value, ConvexError)


async def test_async_subscription_sees_the_current_value_then_changes(
    client: ConvexClient,
) -> None:
    name = channel()
    subscription = client.subscribe("messages:count", {"channel": name})
    try:
        assert await next_value(subscription) == 0.0
        client.mutation("messages:send", {"channel": name, "body": "one"})
        assert await next_value(subscription) == 1.0
        client.mutation("messages:send", {"channel": name, "body": "two"})
        assert await next_value(subscription) == 2.0
    finally:
        subscription.unsubscribe()


async def test_async_subscription_raises_convex_error(client: ConvexClient) -> None:
    name = channel()
    subscription = client.subscribe("messages:first_or_fail", {"channel": name})
    try:
        with pytest.raises(ConvexError) as failure:
            await next_value(subscription)
        assert failure.value.data == {"code": "EMPTY", "channel": name}
    finally:
        subscription.unsubscribe()


async def test_set_auth_with_a_real_jwt(client: ConvexClient, issuer: LocalIssuer) -> None:
    whoami = client.subscribe("messages:whoami")
    try:
        assert await next_value(whoami) is None
        client.set_auth(issuer.sign(subject="dave"))
        assert await value_reaching(whoami, "dave") == "dave"  # the server fetched the JWKS
        assert client.query("messages:whoami") == "dave"
        name = channel()
        client.mutation("messages:send", {"channel": name, "body": "signed"})
        [message] = client.query("messages:list", {"channel": name})
        assert message["author"] == "dave"
        client.clear_auth()
        assert await value_reaching(whoami, None) is None
    finally:
        whoami.unsubscribe()
