"""A cluster under failure: `reactive serve` nodes on one PostgreSQL behind HAProxy
(examples/cluster), driven by the official npm `convex` client and the native Python client.

- a node is kill -9'd under load: its clients reconnect through the balancer and resend;
  every acknowledged mutation is stored exactly once;
- bank transfers from clients spread over three nodes keep the total, in every snapshot;
- a node that loses its database answers 503 "database unavailable" (not "Server Error"),
  and by itself recovers and publishes what other nodes committed meanwhile.

Needs PostgreSQL, HAProxy, node and tests/conformance's npm packages (scripts/setup-tests
installs them); without them these tests skip locally and fail under CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from examples.cluster import Cluster, Node
from reactive.client import ClientError, connect
from tests.conftest import POSTGRES_URL, with_schema
from tests.node_tools import NodeScript, node_with_packages, unavailable

pytestmark = pytest.mark.postgres

BANK = Path(__file__).parent / "projects" / "bank"
CONFORMANCE = Path(__file__).parent / "conformance"
WHAT = "the cluster tests"
NODE_TIMEOUT_S = 120.0


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node() -> str:
    return node_with_packages(WHAT, CONFORMANCE, "convex")


@pytest.fixture(scope="module")
def haproxy() -> None:
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        unavailable("haproxy is not installed (apt-get install -y haproxy)", WHAT)


def _sql(query: str, *args: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh schema of the test PostgreSQL database, dropped afterwards."""
    try:
        _sql("SELECT 1")
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}", WHAT)
    schema = f"t_{secrets.token_hex(8)}"
    yield with_schema(POSTGRES_URL, schema)
    _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def cluster(database_url: str, haproxy: None) -> Iterator[Cluster]:
    with Cluster(BANK, database_url, nodes_count=3) as running:
        yield running


def _call(url: str, kind: str, path: str, args: dict[str, Any]) -> Any:
    response = httpx.post(
        f"{url}/api/{kind}", json={"path": path, "args": args, "format": "json"}, timeout=30.0
    )
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", body
    return body["value"]


# -- running a node script --------------------------------------------------------------------


class Script(NodeScript):
    """A tests/conformance script that may cue the test (`CUE <word>`) and read answers."""

    def __init__(self, node: str, script: str, url: str, params: dict[str, Any]) -> None:
        self.script = script
        command = [node, str(CONFORMANCE / script), url, json.dumps(params)]
        super().__init__(command, CONFORMANCE, NODE_TIMEOUT_S)

    def _next_line(self, waiting_for: str) -> str:
        line = self.next_line()
        if line is None:
            self.process.wait(timeout=5)
            tail = self.stderr_text()[-6000:]
            pytest.fail(f"{self.script}: no {waiting_for} (exit {self.process.poll()})\n{tail}")
        return line

    def expect_cue(self, word: str) -> None:
        line = self._next_line(f"cue {word!r}")
        assert line == f"CUE {word}", line

    def result(self) -> dict[str, Any]:
        return json.loads(self._next_line("result line"))  # type: ignore[no-any-return]


def _node_holding_the_socket(cluster: Cluster) -> Node:
    """The node HAProxy sent the client's one WebSocket to (its open connections)."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        busy = [row["svname"] for row in cluster.server_stats() if int(row["scur"] or 0) > 0]
        if len(busy) == 1:
            return cluster.node_named(busy[0])
        time.sleep(0.05)
    raise AssertionError(f"no single node holds the socket: {cluster.server_stats()}")


# -- a node dies under load -------------------------------------------------------------------


def test_killed_node_loses_no_acknowledged_mutation_and_applies_none_twice(
    node: str, cluster: Cluster
) -> None:
    total = 600
    params = {"prefix": "d", "total": total, "inFlight": 16, "killAfter": 200}
    with Script(node, "cluster_deliveries.mjs", cluster.url, params) as running:
        running.expect_cue("kill")
        victim = _node_holding_the_socket(cluster)
        cluster.kill_node(victim)
        running.answer(f"killed {int(time.time() * 1000)}")
        result = running.result()

    survivor = next(n for n in cluster.nodes if n is not victim)
    stored = Counter(_call(survivor.url, "query", "deliveries:tags", {"prefix": "d"}))
    print(
        f"\nkilled {victim.name}: {len(result['acked'])} acknowledged, {len(stored)} stored,"
        f" resumed {result['resumedMs']} ms after the kill,"
        f" longest gap between acknowledgements {result['longestGapMs']} ms"
    )
    assert result["failed"] == []
    assert len(result["acked"]) == total and result["ackedAfterKill"] > 0
    assert sorted(stored) == sorted(result["acked"])  # none lost
    assert [tag for tag, n in stored.items() if n > 1] == []  # none applied twice


# -- the bank across three nodes --------------------------------------------------------------


def test_bank_transfers_over_three_nodes_keep_the_total(node: str, cluster: Cluster) -> None:
    accounts, balance = 10, 100.0
    _call(cluster.url, "mutation", "accounts:open", {"count": accounts, "balance": balance})
    params = {"clients": 6, "transfers": 200, "inFlight": 1, "accounts": accounts, "seed": 7}
    with Script(node, "cluster_bank.mjs", cluster.url, params) as running:
        result = running.result()

    sessions = {row["svname"]: int(row["stot"]) for row in cluster.server_stats()}
    per_node = [_call(n.url, "query", "accounts:total", {}) for n in cluster.nodes]
    opening = accounts * balance
    print(
        f"\n{result['transfers']} transfers in {result['elapsedMs']} ms over sessions {sessions};"
        f" totals per node {[t['total'] for t in per_node]},"
        f" {result['updatesSeen']} subscription updates"
    )
    assert result["failed"] == []
    assert result["seenTotals"] == [opening]  # every snapshot on every node was consistent
    assert result["subscriptionErrors"] == []
    assert result["lastTotals"] == [opening] * params["clients"]
    assert [(t["accounts"], t["total"]) for t in per_node] == [(accounts, opening)] * 3
    assert all(count >= 1 for count in sessions.values()), sessions  # clients were spread


# -- a node loses its database ----------------------------------------------------------------


class PostgresProxy:
    """TCP between one node and PostgreSQL, which the test can cut: while `down`, a new
    connection is closed at once (the database is unreachable for that node only)."""

    def __init__(self) -> None:
        self.down = False
        self.upstream_ports: set[int] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> int:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        )
        self._server = future.result(timeout=5)
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.close()
            return
        host, port = _postgres_address()
        up_reader, up_writer = await asyncio.open_connection(host, port)
        local_port = up_writer.get_extra_info("sockname")[1]
        self.upstream_ports.add(local_port)
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self.upstream_ports.discard(local_port)
            self._writers -= {writer, up_writer}

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.close()


def _postgres_address() -> tuple[str, int]:
    parts = httpx.URL(POSTGRES_URL.replace("postgresql://", "http://", 1))
    return parts.host or "127.0.0.1", parts.port or 5432


def _terminate_backends(ports: set[int]) -> int:
    """pg_terminate_backend every backend serving one of the proxy's connections."""
    rows = _sql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE client_port = ANY($1::int[])",
        sorted(ports),
    )
    return int(rows[0][0])


@contextlib.asynccontextmanager
async def _subscribed(url: str, prefix: str) -> AsyncIterator[Any]:
    async with connect(url) as client:
        subscription = client.subscribe("deliveries:count", {"prefix": prefix})
        assert await anext(subscription) == 0
        yield client, subscription


async def test_node_that_loses_the_database_answers_503_and_catches_up_by_itself(
    database_url: str,
) -> None:
    proxy = PostgresProxy()
    port = proxy.start()
    host, pg_port = _postgres_address()
    proxied = database_url.replace(f"{host}:{pg_port}", f"127.0.0.1:{port}", 1)
    assert proxied != database_url
    cluster = Cluster(BANK, database_url, nodes_count=2)
    cut_off, healthy = cluster.nodes
    cut_off.database_url = proxied
    try:
        await asyncio.to_thread(cluster.start_node, cut_off)
        await asyncio.to_thread(cluster.start_node, healthy)
        await _lose_and_regain_the_database(cluster, cut_off, healthy, proxy)
    finally:
        cluster.stop()
        proxy.stop()


async def _lose_and_regain_the_database(
    cluster: Cluster, cut_off: Node, healthy: Node, proxy: PostgresProxy
) -> None:
    async with _subscribed(cut_off.url, "m") as (client, subscription), httpx.AsyncClient() as http:
        proxy.down = True
        assert await asyncio.to_thread(_terminate_backends, proxy.upstream_ports) >= 2

        health = await http.get(f"{cut_off.url}/health")
        assert health.status_code == 503, health.text
        assert health.json()["code"] == "DatabaseUnavailable"
        # Not the subscribed args: a result at the same snapshot is shared without a read.
        query = await http.post(
            f"{cut_off.url}/api/query", json={"path": "deliveries:count", "args": {"prefix": "x"}}
        )
        assert query.status_code == 503, query.text
        assert query.json()["code"] == "DatabaseUnavailable"
        assert "retry" in query.json()["message"].lower()
        with pytest.raises(ClientError, match="Database unavailable"):  # over the WebSocket
            await client.mutation("deliveries:deliver", {"tag": "lost"})

        # Committed elsewhere while this node cannot hear of it.
        await asyncio.to_thread(_call, healthy.url, "mutation", "deliveries:deliver", {"tag": "m1"})
        await asyncio.sleep(0.5)
        proxy.down = False
        back = time.monotonic()
        assert await asyncio.wait_for(anext(subscription), 20.0) == 1
        caught_up_s = time.monotonic() - back

        health = await http.get(f"{cut_off.url}/health")
        assert health.status_code == 200, health.text
        assert health.json()["lag_ms"] == 0.0
        recovered = await http.post(
            f"{cut_off.url}/api/query", json={"path": "deliveries:tags", "args": {"prefix": ""}}
        )
        assert recovered.json()["value"] == ["m1"]  # the failed mutation was never applied
        print(f"\nthe cut-off node published the missed commit {caught_up_s:.2f} s after")
