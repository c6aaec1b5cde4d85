"""The polling baseline: every distinct query is re-run once a second over HTTP, shared by all
clients that want it (multiplexed, like Hasura's live queries). Staleness = commit -> the first
poll response that lists the new document.
"""

from __future__ import annotations

import asyncio
import random
import time

from bench.harness import HttpPool, RawSocket, Server, latency_metrics, wait_until, write_steadily

__all__ = ["POLL_INTERVAL_S", "measure_polling"]

POLL_INTERVAL_S = 1.0
#: Keep-alive connections the pollers share.
CONNECTIONS = 16


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
