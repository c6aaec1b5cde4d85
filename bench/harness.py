"""The benchmark harness: real server processes, raw protocol sockets, measurements, sizes.

Invariant: every figure comes from a real server subprocess (tests.live_server.LiveServer) on
loopback, driven over WebSockets/HTTP from this process. Commit timestamps are the server's
`time.time_ns()` at commit (docs/PROTOCOL.md section 4), so `receive_ns - ts` on the same host
is the commit->seen latency without any extra server hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from bench.core import drop_postgres_schema, postgres_url
from reactive.values import decode_ts
from tests.live_server import LiveServer

__all__ = [
    "PROJECT",
    "SEED",
    "SIZES",
    "BenchEnv",
    "CpuPlan",
    "HttpPool",
    "Measurement",
    "MutationResult",
    "RawSocket",
    "Server",
    "Sizes",
    "Update",
    "code_version",
    "collector_paused",
    "database_url",
    "first_seen_ms",
    "latency_metrics",
    "machine_facts",
    "open_server",
    "percentile",
    "ratio_row",
    "say",
    "wait_until",
    "write_steadily",
]

PROJECT = Path(__file__).resolve().parent / "projects" / "chat"
#: Every random choice of every scenario derives from this seed.
SEED = 42


def say(text: str) -> None:
    print(text, flush=True)


# -- sizes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big and how long each scenario is; `tiny` is for the CI smoke test."""

    name: str
    observe_writes: int
    fan_out: tuple[int, ...]
    fan_out_writes: int
    scale: tuple[int, ...]
    #: Most distinct channels in the scale scenario (the target is stated at 1,000 channels).
    scale_channels: int
    #: Time allowed to open the subscriptions of one scale step; the step stops where it got to.
    subscribe_budget_s: float
    steady_seconds: float
    writes_per_s: float
    inserts: int
    transfers: int
    query_runs: int
    poll_seconds: float
    warmup: int
    #: Live-query counts of the PGlite scale baseline (each live query is a Postgres view and
    #: every one re-runs on each write, so 10k would not finish in the time bound).
    pglite_scale: tuple[int, ...] = ()
    pglite_scale_writes: int = 30
    #: Steady phase of the table-level baseline in scale (0: same as ours). It saturates the
    #: server, so a shorter phase only shortens its queue (flatters it) and saves most of the run.
    table_level_seconds: float = 0.0
    #: Sockets of the cluster scenario's fan-out, spread over the nodes, and its spaced writes.
    cluster_sockets: int = 3000
    cluster_writes: int = 10


SIZES: dict[str, Sizes] = {
    "tiny": Sizes(
        "tiny",
        10,
        (1, 10),
        2,
        (100,),
        20,
        5.0,
        1.5,
        20,
        100,
        50,
        20,
        2.5,
        3,
        (100,),
        5,
        cluster_sockets=30,
        cluster_writes=3,
    ),
    "quick": Sizes(
        "quick",
        100,
        (1, 100, 1000),
        3,
        (1000, 10_000),
        1000,
        20.0,
        3.0,
        30,
        1000,
        500,
        200,
        4.0,
        10,
        (1000,),
        20,
        1.0,
    ),
    "full": Sizes(
        "full",
        1000,
        (1, 100, 1000),
        10,
        (1000, 10_000, 100_000),
        1000,
        120.0,
        10.0,
        50,
        10_000,
        5000,
        2000,
        10.0,
        50,
        (1000, 10_000),
        30,
        # 100 commits: enough to show the queue it builds, without a 100k-subscription server
        # draining 500 of them for minutes
        2.0,
        cluster_writes=30,
    ),
}


# -- statistics -------------------------------------------------------------------------------


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def latency_metrics(prefix: str, samples_ms: list[float]) -> dict[str, float]:
    """p50/p99/max of a latency sample in ms; NaN when nothing was measured."""
    if not samples_ms:
        return {f"{prefix} p50 ms": float("nan"), f"{prefix} p99 ms": float("nan")}
    return {
        f"{prefix} p50 ms": statistics.median(samples_ms),
        f"{prefix} p99 ms": percentile(samples_ms, 99),
        f"{prefix} max ms": max(samples_ms),
    }


@dataclass(frozen=True, slots=True)
class Measurement:
    """One row of a results table: a scenario's figures for one backend, system and case."""

    scenario: str
    backend: str
    system: str
    case: str
    metrics: dict[str, float]


def ratio_row(
    scenario: str,
    backend: str,
    label: str,
    case: str,
    theirs: dict[str, float],
    ours: dict[str, float],
    keys: dict[str, str],
) -> Measurement:
    """The row "<label> ÷ ours": for each of our metrics in `keys` (mapped to the baseline's
    metric that answers the same question, e.g. polling's staleness for our commit->seen),
    theirs / ours. Metrics either side lacks are left out; a zero of ours gives NaN."""
    metrics = {
        mine: theirs[their_key] / ours[mine] if ours[mine] else float("nan")
        for mine, their_key in keys.items()
        if mine in ours and their_key in theirs
    }
    return Measurement(scenario, backend, f"{label} ÷ ours", case, metrics)


def code_version() -> str:
    """The commit measured (short hash), "+changes" when the runtime or the bench differ from
    it, "unknown" outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = _git(root, "rev-parse", "--short=12", "HEAD")
        changed = _git(root, "status", "--porcelain", "--", "reactive", "bench", "tests")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if changed else "")


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout.strip()


def machine_facts() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
        "system": f"{platform.system()} {platform.release()}",
        "cpu model": _cpu_model(),
        "memory": _total_memory(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _total_memory() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    return "unknown"


# -- servers ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    """A running server process: its URL and what the OS says about its CPU and memory."""

    live: LiveServer
    http: httpx.AsyncClient

    @property
    def url(self) -> str:
        return self.live.url

    @property
    def pid(self) -> int:
        assert self.live.process is not None
        return self.live.process.pid

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for server process {self.pid}")

    def cpu_seconds(self) -> float:
        # Fields after the command name (which may contain spaces): utime is 14th, stime 15th.
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def runs(self) -> dict[str, int]:
        """Executions of counted handlers so far (bench/projects/chat/functions/counters.py)."""
        response = await self.http.get(f"{self.url}/bench/stats")
        response.raise_for_status()
        return {key: int(value) for key, value in response.json().items()}

    async def settled_runs(self, path: str = "messages:list", timeout: float = 10.0) -> int:
        """Executions of `path` once they stop growing: subscriptions re-run after their
        commit was answered, so the last commit's re-runs may still be under way."""
        deadline = time.perf_counter() + timeout
        last = (await self.runs())[path]
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            now = (await self.runs())[path]
            if now == last:
                break
            last = now
        return last

    async def query(self, path: str, args: dict[str, Any]) -> Any:
        body = {"path": path, "args": args, "format": "json"}
        response = await self.http.post(f"{self.url}/api/query", json=body)
        payload = response.json()
        if payload.get("status") != "success":
            raise RuntimeError(f"query {path} failed: {payload}")
        return payload["value"]


@contextlib.asynccontextmanager
async def open_server(bench: BenchEnv, *, table_level: bool = False) -> AsyncIterator[Server]:
    """A fresh database and a production-mode server on it; table_level picks the baseline."""
    env = {"REACTIVE_TABLE_LEVEL_INVALIDATION": "1" if table_level else "0"}
    async with database_url(bench.backend) as url:
        live = LiveServer(PROJECT, url, env=env, dev=False)
        await asyncio.to_thread(live.start, 60.0)
        if bench.cpus is not None:
            assert live.process is not None
            os.sched_setaffinity(live.process.pid, bench.cpus.server)
        try:
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
            async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
                yield Server(live, client)
        finally:
            await asyncio.to_thread(live.stop)


@contextlib.asynccontextmanager
async def database_url(backend: str) -> AsyncIterator[str]:
    """A fresh, empty database of `backend` for the duration: a temp SQLite file or a new
    PostgreSQL schema (dropped afterwards)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="reactive-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
    elif backend == "postgres":
        url = await postgres_url()
        try:
            yield url
        finally:
            await drop_postgres_schema(url)
    else:
        raise ValueError(f"unknown backend {backend!r}: use sqlite or postgres")


@dataclass(frozen=True, slots=True)
class BenchEnv:
    """What a scenario gets: the backend under test, the sizes, and whether to run baselines."""

    backend: str
    sizes: Sizes
    baselines: bool = True
    #: Run the backend-independent PGlite baseline in this pass (the first backend only).
    embedded: bool = False
    #: Which cores the server and the bench process run on; None leaves both to the OS.
    cpus: CpuPlan | None = None


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Separate cores for the server and for this process (the clients), so the clients'
    parsing does not queue behind the server's work or the other way round: on a real
    deployment they are different machines. The database server (PostgreSQL) is not pinned."""

    server: frozenset[int]
    clients: frozenset[int]

    @classmethod
    def split(cls) -> CpuPlan | None:
        """The first available core for the server, the rest for the clients; None when the
        OS cannot pin (not Linux) or there is only one core."""
        if not hasattr(os, "sched_getaffinity"):
            return None
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            return None
        return cls(frozenset(cores[:1]), frozenset(cores[1:]))

    def pin_this_process(self) -> None:
        os.sched_setaffinity(0, self.clients)

    def describe(self) -> str:
        return f"server on core {_cores(self.server)}, bench clients on core {_cores(self.clients)}"


def _cores(cores: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cores))


# -- raw HTTP ---------------------------------------------------------------------------------


class HttpPool:
    """Minimal HTTP/1.1 keep-alive POST client for /api/query.

    httpx costs ~1 ms of bench CPU per request, which capped polling at ~200 queries/s and
    measured the bench process rather than the server; this costs a fraction of that.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.opened: list[asyncio.StreamWriter] = []

    async def open(self, connections: int) -> None:
        for _ in range(connections):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.opened.append(writer)
            self.idle.put_nowait((reader, writer))

    async def close(self) -> None:
        for writer in self.opened:
            writer.close()

    async def query(self, path: str, args: dict[str, Any]) -> Any:
        body = orjson.dumps({"path": path, "args": args, "format": "json"})
        head = (
            f"POST /api/query HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        reader, writer = await self.idle.get()
        try:
            writer.write(head.encode() + body)
            payload = orjson.loads(await _read_response(reader))
        finally:
            self.idle.put_nowait((reader, writer))
        if payload.get("status") != "success":
            raise RuntimeError(f"polled query {path} failed: {payload}")
        return payload["value"]


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return await reader.readexactly(int(line.split(b":", 1)[1]))
    raise RuntimeError(f"response without Content-Length: {head[:200]!r}")


# -- raw protocol sockets ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Update:
    """A QueryUpdated as received: when (wall ns), for which query, and the ids it listed."""

    received_ns: int
    query_id: int
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MutationResult:
    value: Any
    ts: int
    round_trip_ms: float


class _StampedConnection(ClientConnection):
    """A client connection that notes when bytes last arrived from the socket.

    Frames are stamped with this rather than with the time the reader got to them: when
    many sockets receive at once, this process handles them one after another, and that
    queueing is the bench's own cost, not the server's. A frame's stamp is never earlier than
    its arrival (a later packet may have come in first), so this never flatters the server.
    """

    last_arrival_ns: int = 0

    def data_received(self, data: bytes) -> None:
        self.last_arrival_ns = time.time_ns()
        super().data_received(data)


@dataclass(slots=True, eq=False)
class RawSocket:
    """One WebSocket speaking just enough of the sync protocol for many subscriptions.

    Lighter than reactive.client (no reconnects, no decoding of values beyond document ids),
    so thousands of subscriptions fit in the bench process. Records every QueryUpdated.
    """

    ws: _StampedConnection
    updates: list[Update] = field(default_factory=list)
    answered: set[int] = field(default_factory=set)
    pending: dict[int, tuple[float, asyncio.Future[MutationResult]]] = field(default_factory=dict)
    query_set: int = 0
    query_ids: Iterator[int] = field(default_factory=itertools.count)
    request_ids: Iterator[int] = field(default_factory=itertools.count)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str) -> RawSocket:
        ws = await ws_connect(
            url.replace("http://", "ws://") + "/api/sync",
            max_size=None,
            open_timeout=60,
            create_connection=_StampedConnection,
        )
        socket = cls(ws)
        connect = {
            "type": "Connect",
            "sessionId": str(uuid.uuid4()),
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": int(time.time() * 1000),
        }
        await ws.send(orjson.dumps(connect).decode())
        socket.reader = asyncio.create_task(socket._read())
        return socket

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.wait([self.reader])
        await self.ws.close()

    async def subscribe(self, path: str, many_args: list[dict[str, Any]]) -> list[int]:
        """Add one query per args in one ModifyQuerySet; returns their query ids."""
        ids = [next(self.query_ids) for _ in many_args]
        adds = [
            {"type": "Add", "queryId": qid, "udfPath": path, "args": [args], "journal": None}
            for qid, args in zip(ids, many_args, strict=True)
        ]
        base, self.query_set = self.query_set, self.query_set + 1
        message = {
            "type": "ModifyQuerySet",
            "baseVersion": base,
            "newVersion": self.query_set,
            "modifications": adds,
        }
        await self.ws.send(orjson.dumps(message).decode())
        return ids

    async def wait_answered(self, query_ids: list[int], timeout: float = 120.0) -> None:
        """Until every query has its first result."""
        async with asyncio.timeout(timeout):
            while not self.answered.issuperset(query_ids):
                self.changed.clear()
                await self.changed.wait()

    async def mutation(self, path: str, args: dict[str, Any]) -> MutationResult:
        request_id = next(self.request_ids)
        future: asyncio.Future[MutationResult] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = (time.perf_counter(), future)
        message = {"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]}
        await self.ws.send(orjson.dumps(message).decode())
        return await future

    async def _read(self) -> None:
        async for frame in self.ws:
            received_ns = self.ws.last_arrival_ns or time.time_ns()
            message = orjson.loads(frame)
            kind = message["type"]
            if kind == "Transition":
                self._on_transition(received_ns, message)
            elif kind == "MutationResponse":
                self._on_mutation_response(message)
            elif kind == "FatalError":
                raise RuntimeError(f"server sent FatalError: {message.get('error')}")

    def _on_transition(self, received_ns: int, message: dict[str, Any]) -> None:
        for modification in message["modifications"]:
            if modification["type"] == "QueryFailed":
                raise RuntimeError(f"query failed: {modification.get('errorMessage')}")
            if modification["type"] != "QueryUpdated":
                continue
            qid = modification["queryId"]
            self.answered.add(qid)
            self.updates.append(Update(received_ns, qid, _document_ids(modification["value"])))
        self.changed.set()

    def _on_mutation_response(self, message: dict[str, Any]) -> None:
        started, future = self.pending.pop(message["requestId"])
        if not message["success"]:
            future.set_exception(RuntimeError(f"mutation failed: {message['result']}"))
            return
        round_trip_ms = (time.perf_counter() - started) * 1000
        future.set_result(
            MutationResult(message["result"], decode_ts(message["ts"]), round_trip_ms)
        )


def _document_ids(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(doc["_id"] for doc in value if isinstance(doc, dict) and "_id" in doc)
    return ()


class ReceivesUpdates(Protocol):
    """A socket that lists the QueryUpdated it received (RawSocket, bench.watchers)."""

    @property
    def updates(self) -> list[Update]: ...


def first_seen_ms(
    sockets: Iterable[ReceivesUpdates], commit_ts_by_id: dict[str, int]
) -> list[float]:
    """commit->seen samples: for each (socket, query) and each committed id, the first update
    listing it, minus the commit ts. Ids present before (initial results) are not in the map."""
    samples: list[float] = []
    for socket in sockets:
        seen: set[tuple[int, str]] = set()
        for update in socket.updates:
            for doc_id in update.ids:
                ts = commit_ts_by_id.get(doc_id)
                if ts is None or (update.query_id, doc_id) in seen:
                    continue
                seen.add((update.query_id, doc_id))
                samples.append((update.received_ns - ts) / 1e6)
    return samples


async def write_steadily(
    writer: RawSocket, channels: list[str], seconds: float, per_s: float, rng: random.Random
) -> tuple[dict[str, int], list[float]]:
    """Insert into random channels at about `per_s` for `seconds` (sequential, paced).

    Returns the commit ts of each new message id and the mutation round trips in ms.
    """
    commits: dict[str, int] = {}
    round_trips: list[float] = []
    start = time.perf_counter()
    for i in itertools.count():
        due = start + i / per_s
        if due - start >= seconds:
            break
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        result = await writer.mutation(
            "messages:send", {"channel": rng.choice(channels), "body": f"m{i}"}
        )
        commits[result.value] = result.ts
        round_trips.append(result.round_trip_ms)
    return commits, round_trips


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """This process's garbage collector off for a measured phase (collected once before it).

    The clients stamp each frame as they read it, so a pause of theirs is counted as the
    server's latency: at 100k subscriptions the clients' full collections over the updates
    they had kept (~90 ms each, every few seconds) were the whole commit->seen tail."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` every 20 ms; False if it is still false after `timeout` seconds."""
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
