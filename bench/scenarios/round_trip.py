"""round-trip: what a mutation costs next to the bare database write under it.

- idle: one WebSocket client sends `messages:send` (one insert) and waits for the answer,
  `Sizes.observe_writes` times after a warm-up: round trip p50/p99, from the client's send to
  its MutationResponse.
- 50 clients: `throughput.CONNECTIONS` sockets, one mutation in flight each: mutations/s and
  the round trip under that load.
- bare: the same insert as the database's own client does it, in this process, on the same
  machine and backend: SQLite `INSERT` + `COMMIT` (WAL, synchronous=FULL, as the server
  writes), PostgreSQL one autocommit `INSERT` over asyncpg; idle one at a time, and over 50
  connections (PostgreSQL; SQLite has one writer, so its bare figure is the idle one).

Rows "ours ÷ bare" divide the round trips: how many bare writes one of our mutations costs.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable

import asyncpg

from bench.core import POSTGRES_URL
from bench.harness import (
    BenchEnv,
    Measurement,
    RawSocket,
    collector_paused,
    latency_metrics,
    open_server,
    say,
)
from bench.scenarios import throughput

__all__ = ["NAME", "run"]

NAME = "round-trip"
OURS = "ours"
BARE = "bare insert"
IDLE = "idle, one client"
LOADED = f"{throughput.CONNECTIONS} clients"
ROUND_TRIP = "round trip"
RATE = "mutations/s"


async def run(env: BenchEnv) -> list[Measurement]:
    rows = await _ours(env)
    if env.baselines:
        say(f"    bare {env.backend} inserts ...")
        bare = await (_bare_sqlite(env) if env.backend == "sqlite" else _bare_postgres(env))
        rows += bare + _ratios(env.backend, rows, bare)
    return rows


async def _ours(env: BenchEnv) -> list[Measurement]:
    async with open_server(env) as server:
        sockets = [await RawSocket.open(server.url) for _ in range(throughput.CONNECTIONS)]
        try:
            with collector_paused():
                say(f"    ours: {env.sizes.observe_writes} idle round trips ...")
                idle = await _sequential(sockets[0], env.sizes.warmup, env.sizes.observe_writes)
                say(f"    ours: {env.sizes.inserts} mutations over {len(sockets)} clients ...")
                loaded, seconds = await _concurrent(sockets, env)
        finally:
            await asyncio.gather(*(s.close() for s in sockets))
    return _rows(env.backend, OURS, idle, loaded, seconds)


def _rows(
    backend: str, system: str, idle: list[float], loaded: list[float], seconds: float
) -> list[Measurement]:
    """The idle and the loaded row of one system, from their round trips (ms)."""
    loaded_metrics = {RATE: len(loaded) / seconds, **latency_metrics(ROUND_TRIP, loaded)}
    return [
        Measurement(NAME, backend, system, IDLE, latency_metrics(ROUND_TRIP, idle)),
        Measurement(NAME, backend, system, LOADED, loaded_metrics),
    ]


async def _send(socket: RawSocket, i: int) -> float:
    result = await socket.mutation("messages:send", {"channel": f"r{i % 100}", "body": "hello"})
    return result.round_trip_ms


async def _sequential(socket: RawSocket, warmup: int, count: int) -> list[float]:
    for i in range(warmup):
        await _send(socket, i)
    return [await _send(socket, i) for i in range(count)]


async def _concurrent(sockets: list[RawSocket], env: BenchEnv) -> tuple[list[float], float]:
    samples: list[float] = []

    async def worker(w: int, socket: RawSocket, total: int, keep: bool) -> None:
        for i in range(w, total, len(sockets)):
            round_trip = await _send(socket, i)
            if keep:
                samples.append(round_trip)

    warmup = env.sizes.warmup * len(sockets) // 5
    await asyncio.gather(*(worker(w, s, warmup, False) for w, s in enumerate(sockets)))
    started = time.perf_counter()
    total = env.sizes.inserts
    await asyncio.gather(*(worker(w, s, total, True) for w, s in enumerate(sockets)))
    return samples, time.perf_counter() - started


# -- the bare database write -------------------------------------------------------------------


async def _bare_sqlite(env: BenchEnv) -> list[Measurement]:
    """Timed in a thread, as our server's writer thread does it (fsync off the event loop)."""
    count = env.sizes.observe_writes

    def inserts() -> list[float]:
        with tempfile.TemporaryDirectory(prefix="reactive-bare-") as tmp:
            conn = sqlite3.connect(f"{tmp}/bare.db", isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("CREATE TABLE messages (id TEXT PRIMARY KEY, value BLOB)")
                samples = []
                for i in range(env.sizes.warmup + count):
                    started = time.perf_counter()
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute("INSERT INTO messages VALUES (?, ?)", (f"m{i}", b"hello"))
                    conn.execute("COMMIT")
                    samples.append((time.perf_counter() - started) * 1000)
                return samples[env.sizes.warmup :]
            finally:
                conn.close()

    samples = await asyncio.to_thread(inserts)
    return [Measurement(NAME, env.backend, BARE, IDLE, latency_metrics(ROUND_TRIP, samples))]


async def _bare_postgres(env: BenchEnv) -> list[Measurement]:
    table = f"bare_{secrets.token_hex(6)}"
    conns = [await asyncpg.connect(POSTGRES_URL) for _ in range(throughput.CONNECTIONS)]
    try:
        await conns[0].execute(f"CREATE TABLE {table} (id TEXT PRIMARY KEY, value BYTEA)")
        sql = f"INSERT INTO {table} VALUES ($1, $2)"

        async def insert(conn: asyncpg.Connection, key: str) -> float:
            started = time.perf_counter()
            await conn.execute(sql, key, b"hello")
            return (time.perf_counter() - started) * 1000

        for i in range(env.sizes.warmup):
            await insert(conns[0], f"w{i}")
        idle = [await insert(conns[0], f"i{i}") for i in range(env.sizes.observe_writes)]
        loaded, seconds = await _spread_bare(conns, env.sizes.inserts, insert)
    finally:
        await conns[0].execute(f"DROP TABLE IF EXISTS {table}")
        await asyncio.gather(*(c.close() for c in conns))
    return _rows(env.backend, BARE, idle, loaded, seconds)


async def _spread_bare(
    conns: list[asyncpg.Connection],
    total: int,
    insert: Callable[[asyncpg.Connection, str], Awaitable[float]],
) -> tuple[list[float], float]:
    samples: list[float] = []

    async def worker(w: int, conn: asyncpg.Connection) -> None:
        for i in range(w, total, len(conns)):
            samples.append(await insert(conn, f"l{i}"))

    started = time.perf_counter()
    await asyncio.gather(*(worker(w, c) for w, c in enumerate(conns)))
    return samples, time.perf_counter() - started


def _ratios(backend: str, ours: list[Measurement], bare: list[Measurement]) -> list[Measurement]:
    """ "ours ÷ bare": our round trip over the bare write's, per case both have."""
    theirs = {row.case: row for row in bare}
    rows = []
    for row in ours:
        base = theirs.get(row.case)
        if base is None:
            continue
        metrics = {
            key: row.metrics[key] / base.metrics[key]
            for key in (f"{ROUND_TRIP} p50 ms", f"{ROUND_TRIP} p99 ms")
            if base.metrics.get(key)
        }
        rows.append(Measurement(NAME, backend, f"{OURS} ÷ {BARE}", row.case, metrics))
    return rows
