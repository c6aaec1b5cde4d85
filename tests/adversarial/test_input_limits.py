"""Attacks on a real server process's inputs: each is refused while reading, with a clear
error, and the server keeps serving (no traceback in its log, /health still answers)."""

from __future__ import annotations

import asyncio
import select
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.adversarial.attacks import unharmed_server
from tests.live_server import LiveServer

CHAT = Path(__file__).parent.parent / "projects" / "chat"
LIMIT = 1 << 20  # every byte limit of the server under attack

pytestmark = pytest.mark.usefixtures("still_serving")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "REACTIVE_MAX_API_BODY_BYTES": str(LIMIT),
        "REACTIVE_WS_MAX_MESSAGE_BYTES": str(LIMIT),
        "REACTIVE_MAX_QUERIES_PER_SOCKET": "100",
        "REACTIVE_SYNC_INBOX_MAX_MESSAGES": "50",
    }
    with unharmed_server(CHAT, env, tmp_path_factory, dev=True) as live:
        yield live


# -- HTTP bodies ------------------------------------------------------------------------------


def _raw_request(server: LiveServer, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head.encode())
    return sock


def _response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_declared_length_over_the_limit_is_refused_before_any_body_is_sent(server):
    sock = _raw_request(
        server,
        "POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10**12}\r\n\r\n",
    )
    with sock:
        response = _response(sock)  # answered although not one byte of the body came
    assert response.startswith(b"HTTP/1.1 413")
    assert b"RequestTooLarge" in response and str(LIMIT).encode() in response


def test_a_chunked_body_is_cut_off_soon_after_it_passes_the_limit(server):
    sock = _raw_request(
        server, "POST /api/mutation HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    sent, answered = 0, False
    with sock:
        try:
            while sent < 256 * LIMIT and not answered:
                sock.sendall(chunk)
                sent += 65536
                answered = bool(select.select([sock], [], [], 0)[0])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading and closed: what is wanted
        response = _response(sock)
    assert response.startswith(b"HTTP/1.1 413")
    # socket buffers hold a few MiB; the server did not read on to the end of 256 MiB
    assert sent < 32 * LIMIT


def test_an_http_action_route_refuses_a_body_over_its_own_limit(server):
    response = httpx.post(f"{server.url}/hooks/small", content=b"x" * 2048, timeout=10)
    assert response.status_code == 413 and "1024 bytes" in response.json()["message"]


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_json_in_a_body_is_a_400(server, depth):
    body = b'{"path":"messages:count","args":' + b"[" * depth + b"]" * depth + b"}"
    response = httpx.post(f"{server.url}/api/query", content=body, timeout=10)
    assert response.status_code == 400
    nested = b"[" * depth + b"]" * depth
    action = httpx.post(f"{server.url}/hooks/parse", content=nested, timeout=10)
    if depth <= 1024:  # JSON the action may parse (orjson's limit), without a RecursionError
        assert action.json() == {"type": "list"}
    else:
        assert action.status_code == 400 and "not valid JSON" in action.json()["error"]


def test_a_huge_function_path_is_a_short_clear_error(server):
    body = {"path": "p" * (LIMIT // 2), "args": {}}
    response = httpx.post(f"{server.url}/api/query", json=body, timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "error"
    assert "too long" in response.json()["errorMessage"]
    assert len(response.content) < 2000


# -- WebSocket frames and sessions ------------------------------------------------------------


async def _open(server: LiveServer) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{server.port}/api/sync", max_size=None)
    await ws.send(orjson.dumps({"type": "Connect", "sessionId": str(uuid.uuid4())}).decode())
    return ws


async def _until_closed(ws: ClientConnection) -> tuple[list[dict[str, Any]], int, str]:
    """Every message until the server closes the socket, and its close code and reason."""
    messages = []
    try:
        while True:
            messages.append(orjson.loads(await asyncio.wait_for(ws.recv(), 30)))
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the server closed without a close frame"
        return messages, closed.rcvd.code, closed.rcvd.reason


def _attack(server: LiveServer, *frames: str | bytes) -> tuple[list[dict[str, Any]], int, str]:
    async def run() -> tuple[list[dict[str, Any]], int, str]:
        async with await _open(server) as ws:
            for frame in frames:
                await ws.send(frame)
            return await _until_closed(ws)

    return asyncio.run(run())


def test_a_frame_over_the_limit_closes_the_socket_as_message_too_big(server):
    frame = '{"type":"Event","pad":"' + "x" * LIMIT + '"}'
    _, code, _ = _attack(server, frame)
    assert code == 1009


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":[1]}',
        '{"type":{"a":{"b":1}}}',
        '{"type":"Event","event":' + "[" * 100_000 + "]" * 100_000 + "}",
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_malformed_frames_are_protocol_errors_not_crashes(server, frame):
    messages, code, reason = _attack(server, frame)
    assert messages[-1]["type"] == "FatalError"
    assert (code, reason) == (1008, "ProtocolError")


def test_a_huge_udf_path_is_refused_and_not_echoed(server):
    mutation = {"type": "Mutation", "requestId": 0, "udfPath": "m" * (LIMIT // 2), "args": [{}]}
    messages, code, _ = _attack(server, orjson.dumps(mutation).decode())
    assert messages[-1]["type"] == "FatalError" and len(messages[-1]["error"]) < 500
    assert code == 1008


def test_more_queries_than_a_socket_may_hold_closes_it_with_too_many_queries(server):
    adds = [
        {"type": "Add", "queryId": i, "udfPath": "messages:count", "args": [{"channel": "q"}]}
        for i in range(101)
    ]
    modify = {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": adds}
    messages, code, reason = _attack(server, orjson.dumps(modify).decode())
    assert "TooManyQueries" in messages[-1]["error"]
    assert (code, reason) == (1008, "TooManyQueries")


def test_a_flood_while_the_worker_is_busy_closes_with_too_many_pending_messages(server):
    slow = {
        "type": "Mutation",
        "requestId": 0,
        "udfPath": "conformance:send_slowly",
        "args": [{"channel": "flood", "body": "b", "delay_s": 1.0}],
    }
    flood = ['{"type":"Event","eventType":"flood"}'] * 500
    messages, code, reason = _attack(server, orjson.dumps(slow).decode(), *flood)
    assert messages[-1]["type"] == "FatalError"
    assert "TooManyPendingMessages" in messages[-1]["error"]
    assert (code, reason) == (1008, "TooManyPendingMessages")
