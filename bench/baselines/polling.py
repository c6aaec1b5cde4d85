"""The polling baseline: every distinct query is re-run once a second over HTTP, shared by all
clients that want it (multiplexed, like Hasura's live queries). Staleness = commit -> the first
poll response that lists the new document.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.harness import RawSocket, Server, latency_metrics, wait_until, write_steadily

__all__ = ["POLL_INTERVAL_S", "HttpPool", "measure_polling"]

POLL_INTERVAL_S = 1.0
#: Keep-alive connections the pollers share.
CONNECTIONS = 16


class HttpPool:
    """Minimal HTTP/1.1 keep-alive POST client for /api/query.

    httpx costs ~1 ms of bench CPU per request, which capped polling at ~200 queries/s and
    measured the bench process rather than the server; this costs a fraction of that.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.opened: list[asyncio.StreamWriter] = []

    async def open(self, connections: int) -> None:
        for _ in range(connections):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.opened.append(writer)
            self.idle.put_nowait((reader, writer))

    async def close(self) -> None:
        for writer in self.opened:
            writer.close()

    async def query(self, path: str, args: dict[str, Any]) -> Any:
        body = orjson.dumps({"path": path, "args": args, "format": "json"})
        head = (
            f"POST /api/query HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        reader, writer = await self.idle.get()
        try:
            writer.write(head.encode() + body)
            payload = orjson.loads(await _read_response(reader))
        finally:
            self.idle.put_nowait((reader, writer))
        if payload.get("status") != "success":
            raise RuntimeError(f"polled query {path} failed: {payload}")
        return payload["value"]


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return await reader.readexactly(int(line.split(b":", 1)[1]))
    raise RuntimeError(f"response without Content-Length: {head[:200]!r}")


async def measure_polling(
    server: Server, channels: list[str], seconds: float, writes_per_s: float, seed: int
) -> dict[str, float]:
    """Poll `messages:list` of every channel each second while a writer inserts; returns
    staleness p50/p99/max, the query rate the server sustained and its CPU use."""
    seen: dict[str, int] = {}  # message id -> wall ns of the first poll response listing it
    polls = 0
    stop = asyncio.Event()

    async def poll_forever(channel: str, offset: float) -> None:
        nonlocal polls
        await asyncio.sleep(offset)  # spread polls over the interval, as a real poller would
        while not stop.is_set():
            started = time.perf_counter()
            for doc in await pool.query("messages:list", {"channel": channel}):
                seen.setdefault(doc["_id"], time.time_ns())
            polls += 1
            await asyncio.sleep(max(0.0, POLL_INTERVAL_S - (time.perf_counter() - started)))

    pool = HttpPool(server.url)
    await pool.open(CONNECTIONS)
    rng = random.Random(seed)
    pollers = [
        asyncio.create_task(poll_forever(c, rng.random() * POLL_INTERVAL_S)) for c in channels
    ]
    writer = await RawSocket.open(server.url)
    cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
    try:
        commits, _ = await write_steadily(writer, channels, seconds, writes_per_s, rng)
        # The last writes' polls: done once every write was seen (at most one interval).
        await wait_until(lambda: seen.keys() >= commits.keys(), POLL_INTERVAL_S * 1.5)
    finally:
        stop.set()
        await asyncio.gather(*pollers)
        await writer.close()
        await pool.close()
    elapsed = time.perf_counter() - wall0
    staleness = [(seen[i] - ts) / 1e6 for i, ts in commits.items() if i in seen]
    return {
        **latency_metrics("staleness", staleness),
        "server queries/s": polls / elapsed,
        "server CPU %": (server.cpu_seconds() - cpu0) / elapsed * 100,
        "missed writes": float(len(commits) - len(staleness)),
    }
