"""observe-insert: one client subscribed to `messages:list` of one channel, another inserting
into it one message at a time. Baselines: the same pair with the subscriber polling every 1 s;
PGlite live queries in one Node process (embedded; once per run, not per backend).
"""

from __future__ import annotations

import asyncio
import random

from bench.baselines.pglite import pglite_observe_rows
from bench.baselines.polling import measure_polling
from bench.harness import (
    SEED,
    BenchEnv,
    Measurement,
    RawSocket,
    collector_paused,
    first_seen_ms,
    latency_metrics,
    open_server,
    ratio_row,
    say,
    wait_until,
)

__all__ = ["NAME", "run"]

NAME = "observe-insert"
CHANNEL = "general"
CASE = "1 subscriber"
#: Our commit->seen and what answers the same question for polling: its staleness.
SEEN_BY = {
    "commit->seen p50 ms": "staleness p50 ms",
    "commit->seen p99 ms": "staleness p99 ms",
}


async def run(env: BenchEnv) -> list[Measurement]:
    async with open_server(env) as server:
        subscriber, writer = await RawSocket.open(server.url), await RawSocket.open(server.url)
        try:
            ours = await _observe(subscriber, writer, env)
        finally:
            await subscriber.close()
            await writer.close()
        rows = [Measurement(NAME, env.backend, "ours (push)", CASE, ours)]
        if env.baselines:
            say(f"    polling baseline for {env.sizes.poll_seconds:g} s ...")
            polled = await measure_polling(
                server, [CHANNEL], env.sizes.poll_seconds, 5.0, seed=SEED
            )
            rows.append(Measurement(NAME, env.backend, "polling 1 s", CASE, polled))
            rows.append(ratio_row(NAME, env.backend, "polling 1 s", CASE, polled, ours, SEEN_BY))
    if env.embedded:
        say("    PGlite live-query baseline (node, in process) ...")
        theirs = await pglite_observe_rows(NAME, env.sizes)
        rows += theirs
        keys = _same([*SEEN_BY, "mutation round trip p50 ms"])
        rows += [
            ratio_row(NAME, env.backend, "PGlite", CASE, t.metrics, ours, keys) for t in theirs
        ]
    return rows


def _same(keys: list[str]) -> dict[str, str]:
    return {key: key for key in keys}


async def _observe(subscriber: RawSocket, writer: RawSocket, env: BenchEnv) -> dict[str, float]:
    await subscriber.wait_answered(
        await subscriber.subscribe("messages:list", [{"channel": CHANNEL}])
    )
    rng = random.Random(SEED)
    for i in range(env.sizes.warmup):
        await writer.mutation("messages:send", {"channel": CHANNEL, "body": f"warm{i}"})
    commits: dict[str, int] = {}
    round_trips: list[float] = []
    with collector_paused():
        for i in range(env.sizes.observe_writes):
            body = {"channel": CHANNEL, "body": f"m{i}"}
            result = await writer.mutation("messages:send", body)
            commits[result.value] = result.ts
            round_trips.append(result.round_trip_ms)
            await asyncio.sleep(rng.uniform(0.001, 0.005))  # one commit at a time, not a burst
        await wait_until(lambda: len(first_seen_ms([subscriber], commits)) == len(commits), 10.0)
    seen = first_seen_ms([subscriber], commits)
    say(f"    {len(seen)}/{len(commits)} commits seen")
    return {
        **latency_metrics("commit->seen", seen),
        **latency_metrics("mutation round trip", round_trips),
        "missed writes": float(len(commits) - len(seen)),
    }
