"""throughput: mutations over 50 WebSocket connections, each with one mutation in flight.

Cases on our server: uncontended single inserts; Zipf-skewed (alpha 0 and 1.5) transfers
between 100 accounts; and inserts while LIVE_SUBS subscriptions are open (100 per socket, on
their own sockets), the inserts landing in the watched channels - the same case on the
table-level-invalidation server, with the ratio, shows what invalidation costs under write
load. Retries are counted by the server: every attempt of `accounts:transfer` bumps a counter,
so attempts - commits = OCC re-runs.

PGlite (embedded, once per run): the same inserts and the same pre-drawn transfer pairs in one
Node process. PGlite has a single connection, so its transactions run one after another:
nothing conflicts and its retries are 0 by construction (the case names say "serial").
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from bench import harness
from bench.baselines.pglite import SYSTEM as PGLITE
from bench.baselines.pglite import pglite_throughput_rows
from bench.core import zipf_weights
from bench.harness import (
    SEED,
    BenchEnv,
    Measurement,
    RawSocket,
    Server,
    Sizes,
    open_server,
    say,
)

__all__ = [
    "ACCOUNTS",
    "CONNECTIONS",
    "HEADLINE",
    "NAME",
    "draw_pairs",
    "live_sub_count",
    "measure_inserts",
    "measure_transfers",
    "ratio_row",
    "run",
]

NAME = "throughput"
CONNECTIONS = 50
ACCOUNTS = 100
ALPHAS = (0.0, 1.5)
#: Subscriptions open during the "with live subscriptions" case (fewer at sizes whose smallest
#: scale step is smaller, i.e. --tiny), and how many each socket carries.
LIVE_SUBS = 1000
SUBS_PER_SOCKET = 100
OURS, TABLE_LEVEL = "ours", "table-level"
HEADLINE = "committed/s"


async def run(env: BenchEnv) -> list[Measurement]:
    pairs = {alpha: draw_pairs(alpha, env.sizes.transfers) for alpha in ALPHAS}
    async with open_server(env) as server:
        sockets = await asyncio.gather(*(RawSocket.open(server.url) for _ in range(CONNECTIONS)))
        try:
            say(f"    {env.sizes.inserts} inserts ...")
            rows = [await measure_inserts(sockets, env)]
            accounts = (await sockets[0].mutation("accounts:create", {"count": ACCOUNTS})).value
            for alpha in ALPHAS:
                say(f"    {env.sizes.transfers} transfers, Zipf alpha {alpha} ...")
                rows.append(
                    await measure_transfers([server], sockets, accounts, alpha, pairs[alpha], env)
                )
            live = {OURS: await _inserts_with_live_subs(server, sockets, env)}
        finally:
            await asyncio.gather(*(s.close() for s in sockets))
    rows.append(live[OURS])
    if env.baselines:
        live[TABLE_LEVEL] = await _table_level_inserts_with_live_subs(env)
        rows += [live[TABLE_LEVEL], ratio_row(live[TABLE_LEVEL], live[OURS], env.backend)]
    if env.embedded:
        say("    PGlite: inserts and transfers in process ...")
        pglite = await pglite_throughput_rows(NAME, env.sizes, ACCOUNTS, pairs)
        rows += pglite + _pglite_ratios(pglite, rows, env.backend)
    return rows


def draw_pairs(alpha: float, count: int) -> list[tuple[int, int]]:
    """(source, target) account indices, Zipf-weighted, drawn from the fixed seed: the same
    pairs for every backend and for PGlite."""
    rng = random.Random(SEED)
    weights = zipf_weights(ACCOUNTS, alpha)
    indices = list(range(ACCOUNTS))
    pairs = []
    for _ in range(count):
        source, target = rng.choices(indices, weights, k=2)
        while target == source:
            target = rng.choices(indices, weights)[0]
        pairs.append((source, target))
    return pairs


def base_case(case: str) -> str:
    """The case without its parenthetical note: "transfers, Zipf alpha 0 (serial, ...)" and
    "transfers, Zipf alpha 0" are the same workload."""
    return case.split(" (", 1)[0]


def ratio_row(theirs: Measurement, ours: Measurement, backend: str) -> Measurement:
    """The row "<baseline> ÷ ours" of committed/s (below 1: slower) and re-runs per commit."""
    label = "PGlite" if theirs.system == PGLITE else theirs.system
    keys = {key: key for key in (HEADLINE, "re-runs per commit")}
    case = base_case(theirs.case)
    return harness.ratio_row(NAME, backend, label, case, theirs.metrics, ours.metrics, keys)


def _pglite_ratios(
    pglite: list[Measurement], rows: list[Measurement], backend: str
) -> list[Measurement]:
    ours = {base_case(r.case): r for r in rows if r.system == OURS and r.backend == backend}
    return [
        ratio_row(row, ours[base_case(row.case)], backend)
        for row in pglite
        if row.metrics and base_case(row.case) in ours
    ]


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


async def measure_inserts(sockets: list[RawSocket], env: BenchEnv) -> Measurement:
    """Uncontended single inserts over `sockets`, one in flight each, after a warm-up."""

    async def insert(socket: RawSocket, i: int) -> None:
        await socket.mutation("messages:send", {"channel": f"t{i % 100}", "body": "hello"})

    await _spread(sockets, env.sizes.warmup * CONNECTIONS // 5, insert)
    seconds = await _spread(sockets, env.sizes.inserts, insert)
    metrics = {HEADLINE: env.sizes.inserts / seconds, "retries/s": 0.0, "failed": 0.0}
    return Measurement(NAME, env.backend, OURS, "uncontended inserts", metrics)


async def measure_transfers(
    servers: list[Server],
    sockets: list[RawSocket],
    accounts: list[str],
    alpha: float,
    pairs: list[tuple[int, int]],
    env: BenchEnv,
) -> Measurement:
    """The pre-drawn transfers over `sockets`; retries are the attempts counted by every server
    process in `servers` (the sockets may be spread over several) minus the transfers."""
    failed = 0

    async def transfer(socket: RawSocket, i: int) -> None:
        nonlocal failed
        source, target = pairs[i]
        args = {"source": accounts[source], "target": accounts[target]}
        try:
            await socket.mutation("accounts:transfer", args)
        except RuntimeError:
            failed += 1

    before = await _transfer_attempts(servers)
    seconds = await _spread(sockets, len(pairs), transfer)
    attempts = await _transfer_attempts(servers) - before
    committed = len(pairs) - failed
    metrics = {
        HEADLINE: committed / seconds,
        "retries/s": (attempts - len(pairs)) / seconds,
        "failed": float(failed),
    }
    return Measurement(NAME, env.backend, OURS, f"transfers, Zipf alpha {alpha:g}", metrics)


async def _transfer_attempts(servers: list[Server]) -> int:
    counts = await asyncio.gather(*(server.runs() for server in servers))
    return sum(count["accounts:transfer"] for count in counts)


# -- inserts with live subscriptions ----------------------------------------------------------


def live_sub_count(sizes: Sizes) -> int:
    """Subscriptions of the live case: the smallest scale step, at most LIVE_SUBS."""
    return min(LIVE_SUBS, sizes.scale[0])


def _live_case(env: BenchEnv) -> str:
    return f"inserts, {live_sub_count(env.sizes):,} live subs"


async def _table_level_inserts_with_live_subs(env: BenchEnv) -> Measurement:
    say(f"    table-level server: {_live_case(env)} ...")
    async with open_server(env, table_level=True) as server:
        sockets = await asyncio.gather(*(RawSocket.open(server.url) for _ in range(CONNECTIONS)))
        try:
            return await _inserts_with_live_subs(server, sockets, env, system=TABLE_LEVEL)
        finally:
            await asyncio.gather(*(s.close() for s in sockets))


async def _inserts_with_live_subs(
    server: Server, writers: list[RawSocket], env: BenchEnv, system: str = OURS
) -> Measurement:
    """Uncontended inserts into the watched channels while the subscriptions are open.

    committed/s is over the inserts; re-runs per commit counts every re-run they caused, also
    those finished after the last commit. A subscription invalidated again before its re-run
    re-runs once, so under load table-level re-runs far fewer than all of them per commit."""
    subs = live_sub_count(env.sizes)
    channels = [f"live{i}" for i in range(min(subs, env.sizes.scale_channels))]
    say(f"    {system}: {env.sizes.inserts} inserts with {subs:,} subscriptions open ...")
    watchers = await _open_subscriptions(server.url, subs, channels)

    async def insert(socket: RawSocket, i: int) -> None:
        channel = channels[i % len(channels)]
        await socket.mutation("messages:send", {"channel": channel, "body": "hello"})

    try:
        await _spread(writers, env.sizes.warmup * CONNECTIONS // 5, insert)
        runs_before = await server.settled_runs()  # not the warm-up's trailing re-runs
        seconds = await _spread(writers, env.sizes.inserts, insert)
        reruns = await server.settled_runs() - runs_before
    finally:
        await asyncio.gather(*(w.close() for w in watchers))
    metrics = {
        HEADLINE: env.sizes.inserts / seconds,
        "retries/s": 0.0,
        "failed": 0.0,
        "re-runs per commit": reruns / env.sizes.inserts,
    }
    return Measurement(NAME, env.backend, system, _live_case(env), metrics)


async def _open_subscriptions(url: str, n: int, channels: list[str]) -> list[RawSocket]:
    """n subscriptions to `messages:list`, subscription i on channel i mod C, SUBS_PER_SOCKET
    per socket; returns once every one has its first result."""
    sockets = await asyncio.gather(*(RawSocket.open(url) for _ in range(0, n, SUBS_PER_SOCKET)))
    for s, first in zip(sockets, range(0, n, SUBS_PER_SOCKET), strict=True):
        count = min(SUBS_PER_SOCKET, n - first)
        args = [{"channel": channels[(first + i) % len(channels)]} for i in range(count)]
        await s.wait_answered(await s.subscribe("messages:list", args))
    return sockets
