"""Core benchmarks: mutation throughput, contention, query latency, subscription matching.

Run on demand (not in CI's test command):  python -m bench.core [--quick] [--backend ...]
Every figure is measured in the same run as its baseline, so compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from reactive.database import Database
from reactive.errors import ConflictError
from reactive.index_keys import Interval, encode_key
from reactive.reads import ReadSet, ReadToken
from reactive.recent_writes import RecentWrites
from reactive.schema import define_schema, define_table
from reactive.subscriptions import SubscriptionManager, naive_matching
from reactive.validators import v

SCHEMA = define_schema(
    {
        "messages": define_table({"channel": v.string(), "body": v.string()}).index(
            "by_channel", ["channel"]
        ),
        "accounts": define_table({"name": v.string(), "balance": v.float64()}),
    }
)

POSTGRES_URL = os.environ.get(
    "REACTIVE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def say(text: str) -> None:
    print(text, flush=True)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def timed_concurrently(
    workers: int, per_worker: int, op: Callable[[int], Awaitable[Any]]
) -> float:
    """Run `op` workers x per_worker times over `workers` tasks; returns seconds taken."""

    async def worker(w: int) -> None:
        for i in range(per_worker):
            await op(w * per_worker + i)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return time.perf_counter() - start


async def bench_inserts(db: Database, total: int, workers: int) -> dict[str, float]:
    async def insert(i: int) -> None:
        await db.run_mutation(
            lambda tx: tx.insert("messages", {"channel": f"c{i % 100}", "body": "hello"})
        )

    seconds = await timed_concurrently(workers, total // workers, insert)
    return {"mutations_per_s": total / seconds}


def zipf_weights(n: int, alpha: float) -> list[float]:
    return [1.0 / (rank**alpha) for rank in range(1, n + 1)]


async def bench_transfers(db: Database, total: int, workers: int, alpha: float) -> dict[str, float]:
    async def create(tx: Any) -> list[str]:
        return [
            await tx.insert("accounts", {"name": f"a{i}", "balance": 1000.0}) for i in range(100)
        ]

    accounts = (await db.run_mutation(create)).value
    weights = zipf_weights(len(accounts), alpha)
    rng = random.Random(42)
    retries = failures = 0

    async def transfer(_: int) -> None:
        nonlocal retries, failures
        source, target = rng.choices(accounts, weights, k=2)
        while target == source:
            target = rng.choices(accounts, weights)[0]

        async def run(tx: Any) -> None:
            a, b = await tx.get(source), await tx.get(target)
            await tx.patch(source, {"balance": a["balance"] - 1})
            await tx.patch(target, {"balance": b["balance"] + 1})

        try:
            result = await db.run_mutation(run)
            retries += result.retries
        except ConflictError:
            failures += 1

    seconds = await timed_concurrently(workers, total // workers, transfer)
    return {
        "mutations_per_s": total / seconds,
        "retries_per_s": retries / seconds,
        "failed": float(failures),
    }


async def bench_queries(db: Database, runs: int) -> dict[str, float]:
    ids = (
        await db.run_query(
            lambda tx: (
                tx.query("messages")
                .with_index("by_channel", lambda q: q.eq("channel", "c1"))
                .take(1000)
            )
        )
    ).value
    point_id = ids[0]["_id"]
    results: dict[str, float] = {}
    cases: dict[str, Callable[[Any], Awaitable[Any]]] = {
        "get": lambda tx: tx.get(point_id),
        "range10": lambda tx: (
            tx.query("messages").with_index("by_channel", lambda q: q.eq("channel", "c1")).take(10)
        ),
        "range100": lambda tx: (
            tx.query("messages").with_index("by_channel", lambda q: q.eq("channel", "c1")).take(100)
        ),
    }
    for name, fn in cases.items():
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            await db.run_query(fn)
            samples.append((time.perf_counter() - start) * 1000)
        results[f"{name}_p50_ms"] = statistics.median(samples)
        results[f"{name}_p99_ms"] = percentile(samples, 99)
    return results


def bench_matching(sizes: list[int], commits: int = 200) -> list[dict[str, float]]:
    """Match one commit's written keys against n subscriptions: index vs a naive scan."""
    rows = []
    for n in sizes:
        rng = random.Random(n)
        manager = SubscriptionManager(RecentWrites())
        subs = []
        channels = max(1, n // 10)
        for i in range(n):
            reads = ReadSet()
            prefix = encode_key([f"c{i % channels}"])
            reads.record("messages.by_channel", Interval.prefix(prefix))
            reads.record("messages.by_id", Interval.point(encode_key([f"id{i}"])))
            subs.append(manager.subscribe(ReadToken(reads, 0), lambda s, ts: None))
        writes = [
            {
                "messages.by_channel": [encode_key([f"c{rng.randrange(channels)}", 1.0, "x"])],
                "messages.by_id": [encode_key(["x"])],
            }
            for _ in range(commits)
        ]
        start = time.perf_counter()
        for written in writes:
            manager.matching(written)
        indexed_us = (time.perf_counter() - start) / commits * 1e6
        naive_runs = max(1, commits // max(1, n // 1000))
        start = time.perf_counter()
        for written in writes[:naive_runs]:
            naive_matching(subs, written)
        naive_us = (time.perf_counter() - start) / naive_runs * 1e6
        rows.append({"subscriptions": n, "indexed_us": indexed_us, "naive_us": naive_us})
        say(
            f"  matching {n:>7} subscriptions: index {indexed_us:8.1f} us, "
            f"naive {naive_us:10.1f} us  ({naive_us / indexed_us:,.0f}x)"
        )
    return rows


async def bench_backend(name: str, url: str, quick: bool) -> dict[str, Any]:
    say(f"== {name}: {url.split('?')[0]}")
    db = await Database.open(url, schema=SCHEMA, prune=False)
    try:
        n = 1000 if quick else 10_000
        say(f"  inserts: {n} single-insert mutations over 50 tasks ...")
        inserts = await bench_inserts(db, n, 50)
        say(f"    {inserts['mutations_per_s']:,.0f} mutations/s")
        contention = {}
        for alpha in (0.0, 1.5):
            total = 500 if quick else 5000
            say(f"  transfers: {total} Zipf(alpha={alpha}) transfers over 50 tasks ...")
            result = await bench_transfers(db, total, 50, alpha)
            contention[alpha] = result
            say(
                f"    {result['mutations_per_s']:,.0f} mutations/s, "
                f"{result['retries_per_s']:,.0f} retries/s, {result['failed']:.0f} failed"
            )
        say("  queries ...")
        queries = await bench_queries(db, 300 if quick else 2000)
        for key, value in queries.items():
            say(f"    {key}: {value:.3f}")
        return {"inserts": inserts, "contention": contention, "queries": queries}
    finally:
        await db.close()


async def postgres_url() -> str:
    import asyncpg

    schema = f"bench_{random.randrange(1 << 30):x}"
    conn = await asyncpg.connect(POSTGRES_URL)
    await conn.close()
    return f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}schema={schema}"


async def drop_postgres_schema(url: str) -> None:
    import asyncpg

    schema = url.rsplit("schema=", 1)[1]
    conn = await asyncpg.connect(POSTGRES_URL)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args(argv)
    say(
        f"# reactive core benchmark — Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, {'quick' if args.quick else 'full'}"
    )
    say("== subscription matching (in memory)")
    bench_matching([1000, 10_000] if args.quick else [1000, 10_000, 100_000])
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            await bench_backend("sqlite", f"sqlite:///{tmp}/bench.db", args.quick)
    if args.backend in ("postgres", "both"):
        url = await postgres_url()
        try:
            await bench_backend("postgres", url, args.quick)
        finally:
            await drop_postgres_schema(url)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
