"""fan-out: N sockets subscribed to the same query, one write at a time; how long until the last
one sees it. Each step opens N fresh sockets on one server; several writes per step, spaced out.

Baselines, with "<baseline> ÷ ours" rows of the headline metric (and of re-runs per commit):
- table-level invalidation: the same steps on a server with table-level invalidation. All N
  sockets watch the same query, which both servers run once per commit and share, so on its
  own the step would not tell them apart. That is why OTHER_SUBS subscriptions on other
  channels (one extra socket, open on both servers for the whole scenario) stay open: a write
  re-runs every one of them under table-level invalidation and none of them on ours, as a real
  app's unrelated subscriptions would be.
- polling 1 s: one multiplexed poller of the one query, shared by all N clients, so the last
  client sees a write when that poller does: its staleness, the same for every N (a lower
  bound: it leaves out handing the shared result to N clients).
- PGlite live queries (env.embedded): N live queries on the same SQL plus OTHER_SUBS on other
  channels in one PGlite; INSERT resolved -> the last of the N callbacks listing the new id.
"""

from __future__ import annotations

import asyncio
import statistics

from bench import harness
from bench.baselines.pglite import SYSTEM as PGLITE
from bench.baselines.pglite import pglite_fan_out_rows
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
    say,
    wait_until,
)

__all__ = ["HEADLINE", "NAME", "OTHER_SUBS", "ratio_row", "run"]

NAME = "fan-out"
HEADLINE = "last client sees it ms (median of writes)"
RERUNS = "re-runs per commit"
#: Subscriptions on channels nobody writes to, open during every step (see the docstring).
OTHER_SUBS = 200
OURS, TABLE_LEVEL, POLLING = "ours (push)", "table-level", "polling 1 s"
SYSTEMS = {OURS: False, TABLE_LEVEL: True}
#: Writes per second while polling: spaced, so each one's staleness is its own.
POLL_WRITES_PER_S = 5.0


async def run(env: BenchEnv) -> list[Measurement]:
    systems = SYSTEMS if env.baselines else {OURS: False}
    steps: dict[str, list[Measurement]] = {}
    polled: Measurement | None = None
    for system, table_level in systems.items():
        async with open_server(env, table_level=table_level) as server:
            steps[system] = await _steps(server, env, system)
            if system == OURS and env.baselines:
                polled = await _polling(server, env)
    if env.embedded:
        say(f"    PGlite: {', '.join(f'{n:,}' for n in env.sizes.fan_out)} live queries ...")
        steps[PGLITE] = await pglite_fan_out_rows(NAME, env.sizes, OTHER_SUBS)
    return _side_by_side(env, steps, polled)


def _side_by_side(
    env: BenchEnv, steps: dict[str, list[Measurement]], polled: Measurement | None
) -> list[Measurement]:
    """Per N: every system's row, then every baseline's ratio to ours; the polling row (one
    for all N) last."""
    rows: list[Measurement] = []
    for i, ours in enumerate(steps[OURS]):
        theirs = {system: found[i] for system, found in steps.items() if i < len(found)}
        rows += theirs.values()
        if polled is not None:
            theirs[POLLING] = polled
        rows += [
            ratio_row(env.backend, system, row, ours)
            for system, row in theirs.items()
            if system != OURS and row.metrics
        ]
    return rows + ([polled] if polled else [])


def ratio_row(backend: str, system: str, theirs: Measurement, ours: Measurement) -> Measurement:
    """The row "<baseline> ÷ ours": the headline and re-runs per commit, where both have them."""
    label = "PGlite" if system == PGLITE else system
    keys = {HEADLINE: HEADLINE, RERUNS: RERUNS}
    return harness.ratio_row(NAME, backend, label, ours.case, theirs.metrics, ours.metrics, keys)


async def _steps(server: Server, env: BenchEnv, system: str) -> list[Measurement]:
    rows = []
    writer, others = await RawSocket.open(server.url), await _other_subscriptions(server.url)
    try:
        for n in env.sizes.fan_out:
            say(f"    {system}: {n:,} sockets (+{OTHER_SUBS} other subscriptions) ...")
            metrics = await _step(server, writer, n, env.sizes.fan_out_writes)
            rows.append(Measurement(NAME, env.backend, system, f"{n:,} sockets", metrics))
    finally:
        await writer.close()
        await others.close()
    return rows


async def _other_subscriptions(url: str) -> RawSocket:
    """One socket watching OTHER_SUBS channels that the steps never write to."""
    socket = await RawSocket.open(url)
    ids = await socket.subscribe(
        "messages:list", [{"channel": f"other{i}"} for i in range(OTHER_SUBS)]
    )
    await socket.wait_answered(ids)
    return socket


async def _step(server: Server, writer: RawSocket, n: int, writes: int) -> dict[str, float]:
    channel = f"fan{n}"
    sockets = await asyncio.gather(*(RawSocket.open(server.url) for _ in range(n)))
    try:
        ids = await asyncio.gather(
            *(s.subscribe("messages:list", [{"channel": channel}]) for s in sockets)
        )
        await asyncio.gather(*(s.wait_answered(q) for s, q in zip(sockets, ids, strict=True)))
        runs_before = await server.settled_runs()
        last_seen: list[float] = []
        all_seen: list[float] = []
        with collector_paused():
            for i in range(writes):
                body = {"channel": channel, "body": f"f{i}"}
                result = await writer.mutation("messages:send", body)
                commit = {result.value: result.ts}
                await wait_until(lambda c=commit: len(first_seen_ms(sockets, c)) == n, 30.0)
                samples = first_seen_ms(sockets, commit)
                all_seen.extend(samples)
                last_seen.append(max(samples) if len(samples) == n else float("nan"))
                await asyncio.sleep(0.1)
        reruns = await server.settled_runs() - runs_before
        return {
            HEADLINE: statistics.median(last_seen),
            **latency_metrics("per-client commit->seen", all_seen),
            RERUNS: reruns / writes,
        }
    finally:
        await asyncio.gather(*(s.close() for s in sockets))


async def _polling(server: Server, env: BenchEnv) -> Measurement:
    say(f"    polling 1 s: one shared poller for {env.sizes.poll_seconds:g} s ...")
    metrics = await measure_polling(
        server, ["fanpoll"], env.sizes.poll_seconds, POLL_WRITES_PER_S, seed=SEED
    )
    # The shared poll response is what every one of the N clients gets.
    metrics = {HEADLINE: metrics["staleness p50 ms"], **metrics}
    return Measurement(NAME, env.backend, POLLING, "any sockets, 1 shared poller", metrics)
