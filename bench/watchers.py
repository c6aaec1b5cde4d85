"""Thousands of watching sockets for little client CPU: the fan-out cases' subscribers.

`RawSocket` (bench/harness.py) runs a `websockets` connection, a reader task and a JSON parse
per frame: with thousands of sockets on the machine that also runs the servers, the bench
spent about as much CPU receiving pushes as the nodes spent sending them, and on 2 cores that
capped what more nodes could show. A `WatchSocket` is an asyncio Protocol that does the
WebSocket handshake itself, stamps and keeps each frame's bytes as they arrive, and decodes
them only when asked, after the timed part. It only subscribes and watches (no mutations).

Frames from the server are unmasked (RFC 6455 5.1), so a frame is its header and its bytes.
Frames to the server must be masked; the all-zero mask is a valid key and leaves the payload
as it is (servers may not assume anything of the key's value).
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
import uuid
from typing import Any, cast
from urllib.parse import urlsplit

import orjson

from bench.harness import Update

__all__ = ["WatchSocket"]

_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA
_ZERO_MASK = b"\x00\x00\x00\x00"


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked (with the zero key) frame."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return header + _ZERO_MASK + payload


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: (arrival ns, payload) of each text frame, undecoded.
        self.frames: list[tuple[int, bytes]] = []
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        arrived = time.time_ns()  # as _StampedConnection: never earlier than the arrival
        self.buffer += data
        if not self.upgraded.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            del self.buffer[: end + 4]
            if b" 101 " not in status:
                self.upgraded.set_exception(RuntimeError(f"handshake refused: {status!r}"))
                return
            self.upgraded.set_result(None)
        self._take_frames(arrived)

    def _take_frames(self, arrived: int) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode, size, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if size == 126:
                if len(buffer) < 4:
                    return
                size, start = struct.unpack_from("!H", buffer, 2)[0], 4
            elif size == 127:
                if len(buffer) < 10:
                    return
                size, start = struct.unpack_from("!Q", buffer, 2)[0], 10
            if len(buffer) < start + size:
                return
            payload = bytes(buffer[start : start + size])
            del buffer[: start + size]
            if opcode == _TEXT:
                self.frames.append((arrived, payload))
            elif opcode == _PING:
                self.send(_PONG, payload)
            elif opcode == _CLOSE and not self.closed.done():
                self.closed.set_result(None)

    def send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(_client_frame(opcode, payload))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)


class WatchSocket:
    """A sync-protocol client that subscribes and keeps what it is sent, decoding it later.

    `updates` has the same shape as RawSocket's, so `first_seen_ms` reads either."""

    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol
        self._query_set = 0
        self._next_query = 0
        self._decoded = 0
        self._updates: list[Update] = []
        self._last_transition: bytes = b""

    @classmethod
    async def open(cls, url: str, timeout: float = 60.0) -> WatchSocket:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            transport, protocol = await loop.create_connection(_Protocol, host, port)
            key = base64.b64encode(os.urandom(16)).decode()
            transport.write(
                (
                    f"GET /api/sync HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            await protocol.upgraded
        socket = cls(protocol)
        socket._send(
            {
                "type": "Connect",
                "sessionId": str(uuid.uuid4()),
                "connectionCount": 0,
                "lastCloseReason": "InitialConnect",
                "clientTs": int(time.time() * 1000),
            }
        )
        return socket

    def _send(self, message: dict[str, Any]) -> None:
        self._protocol.send(_TEXT, orjson.dumps(message))

    def subscribe(self, path: str, many_args: list[dict[str, Any]]) -> list[int]:
        """Add one query per args in one ModifyQuerySet; returns their query ids."""
        ids = list(range(self._next_query, self._next_query + len(many_args)))
        self._next_query += len(many_args)
        base, self._query_set = self._query_set, self._query_set + 1
        adds = [
            {"type": "Add", "queryId": qid, "udfPath": path, "args": [args], "journal": None}
            for qid, args in zip(ids, many_args, strict=True)
        ]
        self._send(
            {
                "type": "ModifyQuerySet",
                "baseVersion": base,
                "newVersion": self._query_set,
                "modifications": adds,
            }
        )
        return ids

    async def wait_answered(self, query_ids: list[int], timeout: float = 120.0) -> None:
        """Until every query has its first result (decodes what has come so far)."""
        async with asyncio.timeout(timeout):
            while not {u.query_id for u in self.updates}.issuperset(query_ids):
                await asyncio.sleep(0.01)

    def last_lists(self, doc_id: str) -> bool:
        """Whether the newest frame received names `doc_id`: a byte search, no decoding (a
        document id is plain ASCII and appears in the JSON as it is)."""
        frames = self._protocol.frames
        return bool(frames) and doc_id.encode() in frames[-1][1]

    @property
    def frames_received(self) -> int:
        return len(self._protocol.frames)

    @property
    def updates(self) -> list[Update]:
        """Every QueryUpdated received, decoded now for the frames not decoded yet."""
        frames = self._protocol.frames
        for arrived, payload in frames[self._decoded :]:
            self._updates += _updates_of(arrived, orjson.loads(payload))
        self._decoded = len(frames)
        return self._updates

    async def close(self) -> None:
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            return
        self._protocol.send(_CLOSE, struct.pack("!H", 1000))
        try:
            async with asyncio.timeout(5.0):
                await self._protocol.closed
        except TimeoutError:
            pass
        transport.close()


def _updates_of(arrived: int, message: dict[str, Any]) -> list[Update]:
    kind = message["type"]
    if kind == "FatalError":
        raise RuntimeError(f"server sent FatalError: {message.get('error')}")
    if kind != "Transition":
        return []
    updates = []
    for modification in message["modifications"]:
        if modification["type"] == "QueryFailed":
            raise RuntimeError(f"query failed: {modification.get('errorMessage')}")
        if modification["type"] == "QueryUpdated":
            value = modification["value"]
            ids = (
                tuple(d["_id"] for d in value if isinstance(d, dict) and "_id" in d)
                if isinstance(value, list)
                else ()
            )
            updates.append(Update(arrived, modification["queryId"], ids))
    return updates
