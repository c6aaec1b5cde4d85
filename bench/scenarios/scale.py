"""scale: many subscriptions over many channels with a steady writer, on our server and on the
table-level-invalidation baseline; plus multiplexed 1 s polling of the same channels, and
PGlite live queries (bench/baselines/pglite.py) at the sizes it can reach.

Re-runs per commit are counted by the server itself: `messages:list` bumps a process-wide
counter on every execution (bench/projects/chat/functions/counters.py), read via GET
/bench/stats. That counts real executions, including re-runs whose result did not change and
so were never pushed (counting QueryUpdated frames would miss those and flatter the baseline).
"""

from __future__ import annotations

import asyncio
import random
import time

from bench.baselines.pglite import pglite_scale_rows
from bench.baselines.polling import measure_polling
from bench.harness import (
    SEED,
    BenchEnv,
    Measurement,
    RawSocket,
    Server,
    collector_paused,
    first_seen_ms,
    latency_metrics,
    open_server,
    ratio_row,
    say,
    wait_until,
    write_steadily,
)

__all__ = ["NAME", "run"]

NAME = "scale"
#: Subscriptions per WebSocket: many tabs' worth of queries on one connection is realistic, and
#: it keeps 100k subscriptions within the bench process's file descriptors.
SUBS_PER_SOCKET = 100
SYSTEMS = {"ours (push)": False, "table-level": True}
POLLING = "polling 1 s"
#: Compared in the "<baseline> ÷ ours" rows (metrics a baseline lacks are left out).
KEYS = {
    key: key
    for key in ("re-runs per commit", "commit->seen p50 ms", "commit->seen p99 ms", "server CPU %")
}
#: Polling's answer to "how long until a client has the new result" is its staleness.
SEEN_BY = {"commit->seen p50 ms": "staleness p50 ms", "commit->seen p99 ms": "staleness p99 ms"}


async def run(env: BenchEnv) -> list[Measurement]:
    rows = []
    ours: dict[str, dict[str, float]] = {}  # case -> our metrics
    systems = SYSTEMS if env.baselines else {"ours (push)": False}
    for n in env.sizes.scale:
        channels = [f"c{i}" for i in range(min(n, env.sizes.scale_channels))]
        case = f"{n:,} subs, {len(channels):,} channels"
        by_system = {}
        for system, table_level in systems.items():
            say(f"    {system}: {n:,} subscriptions over {len(channels):,} channels ...")
            async with open_server(env, table_level=table_level) as server:
                seconds = (
                    table_level and env.sizes.table_level_seconds
                ) or env.sizes.steady_seconds
                by_system[system] = await _step(server, n, channels, env, seconds)
            rows.append(Measurement(NAME, env.backend, system, case, by_system[system]))
        ours[case] = by_system["ours (push)"]
        if "table-level" in by_system:
            theirs = by_system["table-level"]
            rows.append(ratio_row(NAME, env.backend, "table-level", case, theirs, ours[case], KEYS))
    if env.baselines:
        polled = await _polling(env, [f"c{i}" for i in range(env.sizes.scale_channels)])
        rows.append(polled)
        rows += [
            ratio_row(NAME, env.backend, POLLING, case, polled.metrics, mine, SEEN_BY)
            for case, mine in ours.items()
        ]
    if env.embedded:
        say(f"    PGlite live queries: {', '.join(f'{n:,}' for n in env.sizes.pglite_scale)} ...")
        theirs_rows = await pglite_scale_rows(NAME, env.sizes)
        rows += theirs_rows
        rows += [
            ratio_row(NAME, env.backend, "PGlite", t.case, t.metrics, ours[t.case], KEYS)
            for t in theirs_rows
            if t.case in ours
        ]
    return rows


async def _step(
    server: Server, n: int, channels: list[str], env: BenchEnv, seconds: float
) -> dict[str, float]:
    rss_before = server.rss_bytes()
    started = time.perf_counter()
    sockets = await _subscribe(server.url, n, channels, env.sizes.subscribe_budget_s)
    reached = sum(len(s.answered) for s in sockets)
    subscribed_s = time.perf_counter() - started
    rss_after = server.rss_bytes()
    writer = await RawSocket.open(server.url)
    try:
        rng = random.Random(SEED)
        for i in range(env.sizes.warmup):
            await writer.mutation(
                "messages:send", {"channel": rng.choice(channels), "body": f"w{i}"}
            )
        with collector_paused():
            runs_before, cpu_before, wall_before = (
                (await server.runs()),
                server.cpu_seconds(),
                time.perf_counter(),
            )
            commits, _ = await write_steadily(
                writer, channels, seconds, env.sizes.writes_per_s, rng
            )
            expected = _expected_deliveries(len(commits), len(channels), reached)
            await wait_until(lambda: len(first_seen_ms(sockets, commits)) >= expected, 30.0)
            elapsed = time.perf_counter() - wall_before
            runs_after, cpu_after = (await server.runs()), server.cpu_seconds()
    finally:
        await writer.close()
        await asyncio.gather(*(s.close() for s in sockets))
    reruns = runs_after["messages:list"] - runs_before["messages:list"]
    seen = first_seen_ms(sockets, commits)
    say(
        f"      reached {reached:,}; {len(commits)} commits; {reruns:,} re-runs; "
        f"{len(seen):,} deliveries; subscribed in {subscribed_s:.1f} s, "
        f"wrote and drained in {elapsed:.1f} s"
    )
    return {
        "subscriptions reached": float(reached),
        "commits": float(len(commits)),
        "re-runs per commit": reruns / max(1, len(commits)),
        **latency_metrics("commit->seen", seen),
        "server CPU %": (cpu_after - cpu_before) / elapsed * 100,
        "RSS MiB per 1k subs": (rss_after - rss_before) / 2**20 / max(1, reached) * 1000,
    }


def _expected_deliveries(commits: int, channels: int, reached: int) -> int:
    """Each commit reaches the subscriptions of its channel (subscription i watches channel
    i mod C), about reached / C of them; 1 % slack for a message pushed out of a top 10."""
    return int(commits * reached / channels * 0.99)


async def _subscribe(url: str, n: int, channels: list[str], budget_s: float) -> list[RawSocket]:
    """Open sockets of SUBS_PER_SOCKET subscriptions until n or the time budget is reached."""
    deadline = time.perf_counter() + budget_s
    sockets: list[RawSocket] = []
    for first in range(0, n, SUBS_PER_SOCKET):
        if time.perf_counter() > deadline:
            say(f"      time budget reached at {first:,} subscriptions")
            break
        socket = await RawSocket.open(url)
        sockets.append(socket)
        count = min(SUBS_PER_SOCKET, n - first)
        args = [{"channel": channels[(first + i) % len(channels)]} for i in range(count)]
        ids = await socket.subscribe("messages:list", args)
        await socket.wait_answered(ids, timeout=max(5.0, deadline - time.perf_counter() + 30))
    return sockets


async def _polling(env: BenchEnv, channels: list[str]) -> Measurement:
    say(f"    polling 1 s: {len(channels):,} distinct queries for {env.sizes.poll_seconds:g} s ...")
    async with open_server(env) as server:
        metrics = await measure_polling(
            server, channels, env.sizes.poll_seconds, env.sizes.writes_per_s, seed=SEED
        )
    case = f"any subs, {len(channels):,} channels"
    return Measurement(NAME, env.backend, POLLING, case, metrics)
