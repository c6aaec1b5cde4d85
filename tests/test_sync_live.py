"""Sync behaviour that needs a real server process and real sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest
import websockets

from tests.live_server import LiveServer, open_sync_socket

CHAT = Path(__file__).parent / "projects" / "chat"


@pytest.fixture
def server(tmp_path):
    with LiveServer(CHAT, f"sqlite:///{tmp_path}/live.db") as live:
        yield live


async def open_peer(url, channel, query_id=0, **options):
    """A socket subscribed to `channel`'s messages as `query_id`."""
    session_id = f"s-{query_id}-{time.time()}"
    args = {"channel": channel}
    return await open_sync_socket(
        url,
        "messages:list",
        args,
        query_id=query_id,
        session_id=session_id,
        max_size=None,
        **options,
    )


def small_socket(port):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def transitions_until(ws, predicate, timeout):
    count = 0
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if message["type"] != "Transition":
            continue
        count += 1
        for modification in message["modifications"]:
            if modification["type"] == "QueryUpdated" and predicate(modification["value"]):
                return count


async def test_slow_client_does_not_hold_up_others_and_gets_coalesced_updates(server):
    big = "x" * 60_000  # ten of these per result: a Transition of ~600 kB
    # A client that reads nothing: its library buffers one frame, its kernel ~64 kB.
    slow = await open_peer(server.url, "big", 1, max_queue=1, sock=small_socket(server.port))
    fast = await open_peer(server.url, "big", 2)
    writer = await open_peer(server.url, "other", 3)
    writes = 40
    try:
        for i in range(writes):
            await writer.send(
                json.dumps(
                    {
                        "type": "Mutation",
                        "requestId": i,
                        "udfPath": "messages:send",
                        "args": [{"channel": "big", "body": f"{i}:{big}"}],
                    }
                )
            )
        answered = 0
        while answered < writes:
            answered += json.loads(await writer.recv())["type"] == "MutationResponse"
        last = f"{writes - 1}:"
        # the fast client keeps up although the slow one has not read a byte
        await transitions_until(fast, lambda v: v and v[0]["body"].startswith(last), 30)
        # the slow one finally reads: it gets the final state, never more Transitions than
        # commits (refreshes that change nothing send nothing; backlogs coalesce)
        seen = await transitions_until(slow, lambda v: v and v[0]["body"].startswith(last), 30)
        assert seen <= writes, f"{seen} Transitions for {writes} commits"
    finally:
        for ws in (slow, fast, writer):
            await ws.close()


async def test_server_shutdown_closes_sockets_cleanly(server):
    ws = await open_peer(server.url, "a")
    await transitions_until(ws, lambda v: v == [], 10)
    await asyncio.get_running_loop().run_in_executor(None, server.stop)
    with pytest.raises(websockets.ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 10)
    assert info.value.rcvd is not None and info.value.rcvd.code in (1000, 1001, 1012)
