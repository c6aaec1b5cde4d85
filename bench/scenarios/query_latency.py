"""query latency: one client calling queries against a channel of 1,000 messages: point get,
indexed ranges of 10/100/1,000, and a first page of 10.

Three ways: over HTTP (`/api/query` on a keep-alive connection, through the lightweight
harness.HttpPool, so the client's own cost stays small), in this process (the same functions
through `Application.run_query`, no network: the embedded case), and PGlite in process (the
embedded baseline), with "PGlite ÷ ours (in process)". Every call has distinct args (an ignored
`salt`), so the server executes each one instead of sharing an identical run (ids alone
repeat: 2,000 random picks of 1,000 ids).
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.baselines.pglite import pglite_query_rows
from bench.harness import (
    PROJECT,
    SEED,
    BenchEnv,
    HttpPool,
    Measurement,
    RawSocket,
    database_url,
    latency_metrics,
    open_server,
    ratio_row,
    say,
)
from reactive.application import Application

__all__ = ["NAME", "run"]

NAME = "query-latency"
CHANNEL = "q"
MESSAGES = 1000
HTTP = "ours (HTTP)"
IN_PROCESS = "ours (in process)"
Call = Callable[[str, dict[str, Any]], Awaitable[Any]]


async def run(env: BenchEnv) -> list[Measurement]:
    rows = await _over_http(env) + await _in_process(env)
    if env.embedded:
        say("    PGlite, in process ...")
        theirs = await pglite_query_rows(NAME, MESSAGES, env.sizes.warmup, env.sizes.query_runs)
        rows += theirs + _ratios(env.backend, theirs, rows)
    return rows


async def _over_http(env: BenchEnv) -> list[Measurement]:
    async with open_server(env) as server:
        writer = await RawSocket.open(server.url)
        try:
            await _fill(writer.mutation)
        finally:
            await writer.close()
        pool = HttpPool(server.url)
        await pool.open(1)
        try:
            return await _measure(env, HTTP, pool.query)
        finally:
            await pool.close()


async def _in_process(env: BenchEnv) -> list[Measurement]:
    async with database_url(env.backend) as url:
        app = await Application.start(PROJECT, url, dev=False)
        try:

            async def mutation(path: str, args: dict[str, Any]) -> Any:
                return (await app.run_mutation(path, args)).value

            async def query(path: str, args: dict[str, Any]) -> Any:
                outcome = await app.run_query(path, args)
                if outcome.error is not None:
                    raise RuntimeError(f"query {path} failed: {outcome.error.message}")
                return outcome.value

            await _fill(mutation)
            # This process holds every earlier scenario's sockets and samples: freeze them, as
            # a server process freezes what it loaded (reactive.http.server_app), so the
            # collector's full passes over them are not counted as query latency.
            gc.collect()
            gc.freeze()
            try:
                return await _measure(env, IN_PROCESS, query)
            finally:
                gc.unfreeze()
        finally:
            await app.close()


async def _fill(mutation: Call) -> None:
    for _ in range(MESSAGES // 250):
        await mutation("messages:fill", {"channel": CHANNEL, "count": 250.0})


async def _measure(env: BenchEnv, system: str, query: Call) -> list[Measurement]:
    docs = await query("messages:take", {"channel": CHANNEL, "n": float(MESSAGES)})
    ids = [doc["_id"] for doc in docs]
    rng = random.Random(SEED)
    cases: dict[str, Callable[[int], tuple[str, dict[str, Any]]]] = {
        "point get": lambda i: ("messages:get", {"id": rng.choice(ids), "salt": float(i)}),
        "range of 10": lambda i: _take(10, i),
        "range of 100": lambda i: _take(100, i),
        "range of 1,000": lambda i: _take(1000, i),
        "paginate (first page of 10)": lambda i: (
            "messages:page",
            {
                "channel": CHANNEL,
                "paginationOpts": {"numItems": 10.0, "cursor": None},
                "salt": float(i),
            },
        ),
    }
    rows = []
    for case, call in cases.items():
        samples = await _time_calls(query, call, env.sizes.warmup, env.sizes.query_runs)
        say(f"    {system}, {case}: p50 {statistics.median(samples):.3f} ms")
        rows.append(
            Measurement(NAME, env.backend, system, case, latency_metrics("latency", samples))
        )
    return rows


def _take(n: int, salt: int) -> tuple[str, dict[str, Any]]:
    # floats, as a JSON client sends them (the in-process caller passes Python values as is)
    return "messages:take", {"channel": CHANNEL, "n": float(n), "salt": float(salt)}


async def _time_calls(
    query: Call, call: Callable[[int], tuple[str, dict[str, Any]]], warmup: int, runs: int
) -> list[float]:
    samples = []
    for i in range(warmup + runs):
        path, args = call(i)
        start = time.perf_counter()
        await query(path, args)
        if i >= warmup:
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def _ratios(backend: str, theirs: list[Measurement], ours: list[Measurement]) -> list[Measurement]:
    """PGlite ÷ ours (in process): both embedded, neither with a network in the way."""
    mine = {row.case: row.metrics for row in ours if row.system == IN_PROCESS}
    keys = {key: key for key in ("latency p50 ms", "latency p99 ms")}
    return [
        ratio_row(NAME, backend, "PGlite", row.case, row.metrics, mine[row.case], keys)
        for row in theirs
        if row.case in mine
    ]
