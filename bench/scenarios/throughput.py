"""throughput: mutations over 50 WebSocket connections, each with one mutation in flight.
Uncontended single inserts, then Zipf-skewed (alpha 0 and 1.5) transfers between 100 accounts.
Retries are counted by the server: every attempt of `accounts:transfer` bumps a counter, so
attempts - commits = OCC re-runs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from bench.core import zipf_weights
from bench.harness import SEED, BenchEnv, Measurement, RawSocket, Server, open_server, say

__all__ = ["NAME", "run"]

NAME = "throughput"
CONNECTIONS = 50
ACCOUNTS = 100


async def run(env: BenchEnv) -> list[Measurement]:
    async with open_server(env.backend) as server:
        sockets = await asyncio.gather(*(RawSocket.open(server.url) for _ in range(CONNECTIONS)))
        try:
            say(f"    {env.sizes.inserts} inserts ...")
            rows = [await _inserts(sockets, env)]
            accounts = (await sockets[0].mutation("accounts:create", {"count": ACCOUNTS})).value
            for alpha in (0.0, 1.5):
                say(f"    {env.sizes.transfers} transfers, Zipf alpha {alpha} ...")
                rows.append(await _transfers(server, sockets, accounts, alpha, env))
        finally:
            await asyncio.gather(*(s.close() for s in sockets))
    return rows


async def _spread(
    sockets: list[RawSocket], total: int, op: Callable[[RawSocket, int], Awaitable[None]]
) -> float:
    """Run `op` total times, split over the sockets, one in flight each; returns seconds."""

    async def worker(w: int, socket: RawSocket) -> None:
        for i in range(w, total, len(sockets)):
            await op(socket, i)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w, s) for w, s in enumerate(sockets)))
    return time.perf_counter() - start


async def _inserts(sockets: list[RawSocket], env: BenchEnv) -> Measurement:
    async def insert(socket: RawSocket, i: int) -> None:
        await socket.mutation("messages:send", {"channel": f"t{i % 100}", "body": "hello"})

    await _spread(sockets, env.sizes.warmup * CONNECTIONS // 5, insert)
    seconds = await _spread(sockets, env.sizes.inserts, insert)
    metrics = {"committed/s": env.sizes.inserts / seconds, "retries/s": 0.0, "failed": 0.0}
    return Measurement(NAME, env.backend, "ours", "uncontended inserts", metrics)


async def _transfers(
    server: Server, sockets: list[RawSocket], accounts: list[str], alpha: float, env: BenchEnv
) -> Measurement:
    rng = random.Random(SEED)
    weights = zipf_weights(len(accounts), alpha)
    pairs = [_pair(rng, accounts, weights) for _ in range(env.sizes.transfers)]
    failed = 0

    async def transfer(socket: RawSocket, i: int) -> None:
        nonlocal failed
        source, target = pairs[i]
        try:
            await socket.mutation("accounts:transfer", {"source": source, "target": target})
        except RuntimeError:
            failed += 1

    before = (await server.runs())["accounts:transfer"]
    seconds = await _spread(sockets, len(pairs), transfer)
    attempts = (await server.runs())["accounts:transfer"] - before
    committed = len(pairs) - failed
    metrics = {
        "committed/s": committed / seconds,
        "retries/s": (attempts - len(pairs)) / seconds,
        "failed": float(failed),
    }
    return Measurement(NAME, env.backend, "ours", f"transfers, Zipf alpha {alpha:g}", metrics)


def _pair(rng: random.Random, accounts: list[str], weights: list[float]) -> tuple[str, str]:
    source, target = rng.choices(accounts, weights, k=2)
    while target == source:
        target = rng.choices(accounts, weights)[0]
    return source, target
