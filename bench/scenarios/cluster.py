"""cluster: 1, 2 and 3 server nodes on one PostgreSQL database, measured in one run.

One fresh schema for the run; real server processes (LiveServer, production mode, as every
scenario's server) are added to it one at a time, and each configuration is measured once its
nodes are up, on channels and accounts of its own. The
clients connect to the nodes directly, socket i to node (i mod N) + 1: no balancer, which on
this machine would be one more process on the same cores and one more hop in every figure.
Per configuration:

- commit->seen across nodes: a writer on node 1, one subscriber on every node, spaced writes;
  the server's commit ts (MutationResponse.ts) vs the subscriber socket's arrival stamp, as
  in observe-insert.
- fan-out: `Sizes.cluster_sockets` sockets spread over the nodes watch one channel; a writer
  on node 1 writes to it one write at a time, spaced: time until the last socket sees each
  write (p50/p99 over writes). Then the writer writes back to back for `steady_seconds`:
  pushes/s is the QueryUpdated frames the sockets received from the first of those writes
  until every socket saw the last one (a query invalidated again before its re-run gets one
  frame for both commits), and pushes per node-CPU-second what the nodes spent on each.
- uncontended inserts and Zipf alpha 1.5 transfers over 50 connections spread over the nodes
  (throughput's own code; retries from every node's attempt counter).
- CPU of every node and of the bench process (the clients) over each case, and how long the
  nodes' event loops were ready to run but waited for a core (/proc/<pid>/schedstat): on a
  shared machine, the share of the figures that is other people's work.
- lock holds/s and commits per lock hold for inserts and transfers: each hold of the commit
  lock is one PostgreSQL transaction, whose `commits` rows share its xmin.

Rows "2 nodes ÷ 1 node" and "3 nodes ÷ 1 node" divide the throughput figures.

Cores (--pin): node k runs on core k - 1 while there are at least as many cores as nodes, so
no two nodes share a core; with more nodes than cores no node is pinned and the kernel places
them, as it would any deployment of more processes than cores (pinned in a fixed pattern, two
nodes on one core wait for each other while the other core idles: 3 nodes on 2 cores gave
1.3x the single node's fan-out pinned, 1.8x unpinned, and commit->seen p50 5.5-5.9 ms vs
4.4-4.8 ms, --quick, one machine, back to back). The bench clients and PostgreSQL float over
every core (unlike the other scenarios, whose clients keep off the server's core: with as many
nodes as cores there is no core left for them alone). The system column says where each node
ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx

from bench.core import POSTGRES_URL
from bench.harness import (
    PROJECT,
    SEED,
    BenchEnv,
    Measurement,
    RawSocket,
    Server,
    database_url,
    first_seen_ms,
    latency_metrics,
    percentile,
    say,
    wait_until,
    write_steadily,
)
from bench.scenarios import throughput
from bench.watchers import WatchSocket
from tests.live_server import LiveServer

_Socket = TypeVar("_Socket")

__all__ = ["FAN_OUT", "NAME", "NODES", "PUSHES", "ratio_rows", "run"]

NAME = "cluster"
NODES = (1, 2, 3)
ALPHA = 1.5
#: Spaced writes of the commit->seen case, per second (each one's latency is its own).
PROBE_WRITES_PER_S = 25.0
#: Sockets opened at once (a burst of thousands overflows the servers' listen backlog).
OPEN_BATCH = 500
FAN_OUT = "last socket sees it"
PUSHES = "pushes/s"
COMMITTED = throughput.HEADLINE
#: The throughput figures that get a "k nodes ÷ 1 node" row.
SCALED = (PUSHES, "pushes per node CPU s", COMMITTED)


async def run(env: BenchEnv) -> list[Measurement]:
    if env.backend != "postgres":
        case = "skipped: the nodes share one PostgreSQL database (--backend postgres)"
        return [Measurement(NAME, env.backend, "-", case, {})]
    pairs = throughput.draw_pairs(ALPHA, env.sizes.transfers)
    cores = sorted(env.cpus.server | env.cpus.clients) if env.cpus else None
    if cores:
        os.sched_setaffinity(0, cores)  # the clients float (see the docstring)
    rows: list[Measurement] = []
    try:
        async with _Cluster.open(env, cores) as cluster:
            for count in NODES:
                await cluster.grow(count)
                say(f"    {cluster.label}: {env.sizes.cluster_sockets:,} sockets, inserts, ...")
                rows += await _measure(env, cluster, pairs)
    finally:
        if env.cpus:
            env.cpus.pin_this_process()
    return rows + ratio_rows(rows)


@dataclass(slots=True)
class _Cluster:
    """Production-mode server processes on one fresh schema, added one at a time."""

    url: str
    http: httpx.AsyncClient
    cores: list[int] | None
    lives: list[LiveServer] = field(default_factory=list)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, env: BenchEnv, cores: list[int] | None) -> AsyncIterator[_Cluster]:
        async with database_url(env.backend) as url, httpx.AsyncClient(timeout=60.0) as http:
            cluster = cls(url, http, cores)
            try:
                yield cluster
            finally:
                await asyncio.gather(*(asyncio.to_thread(live.stop) for live in cluster.lives))

    async def grow(self, count: int) -> None:
        """Start nodes until there are `count`, then place them (`_placement`)."""
        while len(self.lives) < count:
            live = LiveServer(PROJECT, self.url, dev=False)
            self.lives.append(live)
            await asyncio.to_thread(live.start, 60.0)
        for live, cores in zip(self.lives, self._placement(), strict=True):
            assert live.process is not None
            os.sched_setaffinity(live.process.pid, cores)

    def _placement(self) -> list[set[int]]:
        """The cores of each node: node k on core k - 1 while every node can have a core of its
        own; with more nodes than cores (or --no-pin), every node on every core."""
        if self._pinned:
            assert self.cores
            return [{core} for core in self.cores[: len(self.lives)]]
        every = set(self.cores) if self.cores else os.sched_getaffinity(0)
        return [every for _ in self.lives]

    @property
    def _pinned(self) -> bool:
        return self.cores is not None and len(self.lives) <= len(self.cores)

    async def lock_holds(self, since: _Cpu) -> dict[str, float]:
        """How often the commit lock was taken since `since` started, and how many commits
        each hold wrote: a hold is one transaction, and the `commits` rows a transaction
        inserts share its xmin (commit ts are wall-clock ns, so the window is by ts)."""
        schema = self.url.rsplit("schema=", 1)[1]
        until = time.time_ns()
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            commits, holds = await conn.fetchrow(
                f'SELECT count(*), count(DISTINCT xmin::text) FROM "{schema}".commits'
                " WHERE ts >= $1 AND ts <= $2",
                since.started_ns,
                until,
            )
        finally:
            await conn.close()
        seconds = (until - since.started_ns) / 1e9
        return {
            "lock holds/s": holds / seconds,
            "commits per lock hold": commits / holds if holds else float("nan"),
        }

    @property
    def nodes(self) -> list[Server]:
        return [Server(live, self.http) for live in self.lives]

    @property
    def label(self) -> str:
        """ "2 nodes (cores 0, 1)": how many nodes, and where they run."""
        count = len(self.lives)
        nodes = f"{count} node{'s' if count > 1 else ''}"
        if not self._pinned:
            return f"{nodes} (unpinned)"
        placed = ", ".join(str(min(cores)) for cores in self._placement())
        return f"{nodes} (core{'s' if count > 1 else ''} {placed})"


def ratio_rows(rows: list[Measurement]) -> list[Measurement]:
    """Per case, "k nodes ÷ 1 node" of the throughput figures (above 1: the cluster does more)."""
    single = {r.case: r for r in rows if r.system.startswith("1 node")}
    ratios = []
    for count in NODES[1:]:
        for row in rows:
            base = single.get(row.case)
            if base is None or not row.system.startswith(f"{count} nodes"):
                continue
            metrics = {
                key: row.metrics[key] / base.metrics[key] if base.metrics[key] else float("nan")
                for key in SCALED
                if key in row.metrics and key in base.metrics
            }
            if metrics:
                system = f"{count} nodes ÷ 1 node"
                ratios.append(Measurement(NAME, row.backend, system, row.case, metrics))
    return ratios


async def _measure(
    env: BenchEnv, cluster: _Cluster, pairs: list[tuple[int, int]]
) -> list[Measurement]:
    label, nodes = cluster.label, cluster.nodes
    rows = await _commit_to_seen(env, label, nodes)
    rows.append(await _fan_out(env, label, nodes))
    sockets = await _open_spread(nodes, throughput.CONNECTIONS, RawSocket.open)
    try:
        cpu = _Cpu(nodes)
        inserts = await throughput.measure_inserts(sockets, env)
        rows.append(_relabel(inserts, label, cpu.metrics(), await cluster.lock_holds(cpu)))
        created = await sockets[0].mutation("accounts:create", {"count": throughput.ACCOUNTS})
        await _caught_up(nodes, created.ts)  # every node serves a snapshot with the accounts
        cpu = _Cpu(nodes)
        transfers = await throughput.measure_transfers(
            nodes, sockets, created.value, ALPHA, pairs, env
        )
        rows.append(_relabel(transfers, label, cpu.metrics(), await cluster.lock_holds(cpu)))
    finally:
        await asyncio.gather(*(s.close() for s in sockets))
    return rows


def _relabel(row: Measurement, label: str, *more: dict[str, float]) -> Measurement:
    case = f"{row.case}, {throughput.CONNECTIONS} connections"
    metrics = dict(row.metrics)
    for extra in more:
        metrics.update(extra)
    return Measurement(NAME, row.backend, label, case, metrics)


class _Cpu:
    """CPU % (100 = one core) of every node and of this process, from now to `metrics()`."""

    def __init__(self, nodes: list[Server]) -> None:
        self.nodes = nodes
        self.started = time.perf_counter()
        self.started_ns = time.time_ns()
        self.node_seconds = [node.cpu_seconds() for node in nodes]
        self.node_waits = [_run_queue_seconds(node.pid) for node in nodes]
        self.own_seconds = time.process_time()

    def node_cpu_seconds(self) -> float:
        now = [node.cpu_seconds() for node in self.nodes]
        return sum(after - before for after, before in zip(now, self.node_seconds, strict=True))

    def metrics(self) -> dict[str, float]:
        wall = time.perf_counter() - self.started
        # A column per node of the largest cluster ("-" where there is no such node), so the
        # table keeps them side by side.
        metrics = {f"node {k} CPU %": float("nan") for k in range(1, max(NODES) + 1)}
        for k, (node, before) in enumerate(zip(self.nodes, self.node_seconds, strict=True), 1):
            metrics[f"node {k} CPU %"] = (node.cpu_seconds() - before) / wall * 100
        waits = [
            _run_queue_seconds(node.pid) - before
            for node, before in zip(self.nodes, self.node_waits, strict=True)
        ]
        metrics["nodes waiting for a core %"] = sum(waits) / len(waits) / wall * 100
        metrics["clients CPU %"] = (time.process_time() - self.own_seconds) / wall * 100
        return metrics


def _run_queue_seconds(pid: int) -> float:
    """Time the process's main thread (its event loop) was ready to run but waited for a core
    (Linux schedstat): other processes on the machine taking the core it needed."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


async def _open_spread(
    nodes: list[Server], count: int, open_one: Callable[[str], Awaitable[_Socket]]
) -> list[_Socket]:
    """`count` sockets opened by `open_one(url)`, socket i on node (i mod N) + 1."""
    sockets: list[_Socket] = []
    for first in range(0, count, OPEN_BATCH):
        batch = range(first, min(count, first + OPEN_BATCH))
        sockets += await asyncio.gather(*(open_one(nodes[i % len(nodes)].url) for i in batch))
    return sockets


async def _subscribe_watchers(sockets: list[WatchSocket], channel: str) -> None:
    ids = [s.subscribe("messages:list", [{"channel": channel}]) for s in sockets]
    await asyncio.gather(*(s.wait_answered(q) for s, q in zip(sockets, ids, strict=True)))


async def _subscribe(sockets: list[RawSocket], channel: str) -> None:
    ids = await asyncio.gather(
        *(s.subscribe("messages:list", [{"channel": channel}]) for s in sockets)
    )
    await asyncio.gather(*(s.wait_answered(q) for s, q in zip(sockets, ids, strict=True)))


async def _caught_up(nodes: list[Server], ts: int, timeout: float = 10.0) -> None:
    """Until every node's /health says it serves `ts` or later."""
    deadline = time.perf_counter() + timeout
    for node in nodes:
        while int((await node.http.get(f"{node.url}/health")).json()["latest_ts"]) < ts:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"node {node.url} did not learn commit {ts} in {timeout} s")
            await asyncio.sleep(0.01)


# -- commit->seen across nodes ----------------------------------------------------------------


async def _commit_to_seen(env: BenchEnv, label: str, nodes: list[Server]) -> list[Measurement]:
    writer = await RawSocket.open(nodes[0].url)
    subscribers = [await RawSocket.open(node.url) for node in nodes]
    try:
        channels = [f"probe{len(nodes)}"]  # each configuration its own channel
        await _subscribe(subscribers, channels[0])
        rng = random.Random(SEED)
        per_s = PROBE_WRITES_PER_S
        await write_steadily(writer, channels, env.sizes.warmup / per_s, per_s, rng)
        commits, _ = await write_steadily(
            writer, channels, env.sizes.observe_writes / per_s, per_s, rng
        )
        await wait_until(
            lambda: all(len(first_seen_ms([s], commits)) == len(commits) for s in subscribers),
            10.0,
        )
        rows = []
        for k, subscriber in enumerate(subscribers, 1):
            samples = first_seen_ms([subscriber], commits)
            metrics = latency_metrics("commit->seen", samples)
            metrics["missed"] = float(len(commits) - len(samples))
            case = f"commit->seen, writer on node 1, subscriber on node {k}"
            rows.append(Measurement(NAME, env.backend, label, case, metrics))
        return rows
    finally:
        await asyncio.gather(writer.close(), *(s.close() for s in subscribers))


# -- fan-out ----------------------------------------------------------------------------------


async def _fan_out(env: BenchEnv, label: str, nodes: list[Server]) -> Measurement:
    count = env.sizes.cluster_sockets
    writer = await RawSocket.open(nodes[0].url)
    sockets = await _open_spread(nodes, count, WatchSocket.open)
    try:
        channel = f"fan{len(nodes)}"
        await _subscribe_watchers(sockets, channel)
        last_seen = await _spaced_writes(writer, sockets, channel, env.sizes.cluster_writes)
        metrics = {
            f"{FAN_OUT} p50 ms": percentile(last_seen, 50),
            f"{FAN_OUT} p99 ms": percentile(last_seen, 99),
            **await _back_to_back(writer, sockets, channel, nodes, env.sizes.steady_seconds),
        }
    finally:
        await asyncio.gather(writer.close(), *(s.close() for s in sockets))
    return Measurement(NAME, env.backend, label, f"fan-out, {count:,} sockets", metrics)


def _all_saw(sockets: list[WatchSocket], doc_id: str) -> bool:
    """Every socket's latest frame lists `doc_id` (the newest message: listed until a newer
    one comes). Cheap enough to poll with thousands of sockets, unlike first_seen_ms."""
    return all(s.last_lists(doc_id) for s in sockets)


async def _spaced_writes(
    writer: RawSocket, sockets: list[WatchSocket], channel: str, writes: int
) -> list[float]:
    """One write at a time (after one unmeasured), each left to reach every socket; the time
    from its commit until the last socket saw it, per write (NaN if some never did)."""
    last_seen = []
    for i in range(writes + 1):
        result = await writer.mutation("messages:send", {"channel": channel, "body": f"f{i}"})
        everyone = await wait_until(lambda r=result: _all_saw(sockets, r.value), 30.0)
        samples = first_seen_ms(sockets, {result.value: result.ts})
        if i > 0:
            last_seen.append(max(samples) if everyone else float("nan"))
        await asyncio.sleep(0.1)
    return last_seen


async def _back_to_back(
    writer: RawSocket,
    sockets: list[WatchSocket],
    channel: str,
    nodes: list[Server],
    seconds: float,
) -> dict[str, float]:
    """Writes one after another for `seconds`; pushes/s until every socket saw the last."""
    before = sum(len(s.updates) for s in sockets)  # decoded now: not while timing
    cpu = _Cpu(nodes)
    started_ns = time.time_ns()
    deadline = time.perf_counter() + seconds
    writes = 0
    while True:
        result = await writer.mutation("messages:send", {"channel": channel, "body": f"b{writes}"})
        writes += 1
        if time.perf_counter() >= deadline:
            break
    writing = (time.time_ns() - started_ns) / 1e9
    if not await wait_until(lambda: _all_saw(sockets, result.value), 60.0):
        raise RuntimeError("fan-out: some sockets never saw the last write")
    node_seconds, client_metrics = cpu.node_cpu_seconds(), cpu.metrics()
    finished_ns = max(s.updates[-1].received_ns for s in sockets)
    pushes = sum(len(s.updates) for s in sockets) - before
    return {
        PUSHES: pushes / ((finished_ns - started_ns) / 1e9),
        "pushes per node CPU s": pushes / node_seconds if node_seconds else float("nan"),
        "writes/s": writes / writing,
        **client_metrics,
    }
