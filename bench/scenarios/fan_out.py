"""fan-out: N sockets subscribed to the same query, one write; how long until the last one
sees it. Each step opens N fresh sockets on one server; several writes per step, spaced out.
"""

from __future__ import annotations

import asyncio
import statistics

from bench.harness import (
    BenchEnv,
    Measurement,
    RawSocket,
    first_seen_ms,
    latency_metrics,
    open_server,
    say,
    wait_until,
)

__all__ = ["NAME", "run"]

NAME = "fan-out"


async def run(env: BenchEnv) -> list[Measurement]:
    rows = []
    async with open_server(env.backend) as server:
        writer = await RawSocket.open(server.url)
        try:
            for n in env.sizes.fan_out:
                say(f"    {n} sockets ...")
                metrics = await _step(server.url, writer, n, env.sizes.fan_out_writes)
                rows.append(
                    Measurement(NAME, env.backend, "ours (push)", f"{n:,} sockets", metrics)
                )
        finally:
            await writer.close()
    return rows


async def _step(url: str, writer: RawSocket, n: int, writes: int) -> dict[str, float]:
    channel = f"fan{n}"
    sockets = await asyncio.gather(*(RawSocket.open(url) for _ in range(n)))
    try:
        ids = await asyncio.gather(
            *(s.subscribe("messages:list", [{"channel": channel}]) for s in sockets)
        )
        await asyncio.gather(*(s.wait_answered(q) for s, q in zip(sockets, ids, strict=True)))
        last_seen: list[float] = []
        all_seen: list[float] = []
        for i in range(writes):
            result = await writer.mutation("messages:send", {"channel": channel, "body": f"f{i}"})
            commit = {result.value: result.ts}
            await wait_until(lambda c=commit: len(first_seen_ms(sockets, c)) == n, 30.0)
            samples = first_seen_ms(sockets, commit)
            all_seen.extend(samples)
            last_seen.append(max(samples) if len(samples) == n else float("nan"))
            await asyncio.sleep(0.1)
        return {
            "last client sees it ms (median of writes)": statistics.median(last_seen),
            **latency_metrics("per-client commit->seen", all_seen),
        }
    finally:
        await asyncio.gather(*(s.close() for s in sockets))
