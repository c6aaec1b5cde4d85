"""query latency: one client calling queries over HTTP (/api/query, keep-alive) against a
channel of 1,000 messages: point get, indexed ranges of 10/100/1,000, and a first page of 10.
Every call has distinct args (a random id, or an ignored `salt`), so the server executes each
one instead of sharing an identical run.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.harness import (
    SEED,
    BenchEnv,
    Measurement,
    RawSocket,
    Server,
    latency_metrics,
    open_server,
    say,
)

__all__ = ["NAME", "run"]

NAME = "query-latency"
CHANNEL = "q"
MESSAGES = 1000


async def run(env: BenchEnv) -> list[Measurement]:
    async with open_server(env) as server:
        ids = await _fill(server)
        rng = random.Random(SEED)
        cases: dict[str, Callable[[int], tuple[str, dict[str, Any]]]] = {
            "point get": lambda i: ("messages:get", {"id": rng.choice(ids)}),
            "range of 10": lambda i: _take(10, i),
            "range of 100": lambda i: _take(100, i),
            "range of 1,000": lambda i: _take(1000, i),
            "paginate (first page of 10)": lambda i: (
                "messages:page",
                {"channel": CHANNEL, "paginationOpts": {"numItems": 10, "cursor": None}, "salt": i},
            ),
        }
        rows = []
        for case, call in cases.items():
            samples = await _time_calls(server, call, env.sizes.warmup, env.sizes.query_runs)
            say(f"    {case}: p50 {statistics.median(samples):.2f} ms")
            rows.append(
                Measurement(
                    NAME, env.backend, "ours (HTTP)", case, latency_metrics("latency", samples)
                )
            )
    return rows


def _take(n: int, salt: int) -> tuple[str, dict[str, Any]]:
    return "messages:take", {"channel": CHANNEL, "n": n, "salt": salt}


async def _fill(server: Server) -> list[str]:
    writer = await RawSocket.open(server.url)
    try:
        for _ in range(MESSAGES // 250):
            await writer.mutation("messages:fill", {"channel": CHANNEL, "count": 250})
    finally:
        await writer.close()
    docs = await server.query("messages:take", {"channel": CHANNEL, "n": MESSAGES})
    return [doc["_id"] for doc in docs]


async def _time_calls(
    server: Server, call: Callable[[int], tuple[str, dict[str, Any]]], warmup: int, runs: int
) -> list[float]:
    samples = []
    for i in range(warmup + runs):
        path, args = call(i)
        start = time.perf_counter()
        await server.query(path, args)
        if i >= warmup:
            samples.append((time.perf_counter() - start) * 1000)
    return samples
