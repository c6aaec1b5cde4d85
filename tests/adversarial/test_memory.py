"""Attack: make the server hold memory through one socket's query set, then leave.

A real server process; a client adds 100k queries in batches of ModifyQuerySet and closes the
socket. The session must be freed by reference counting (no cycle waiting for a full
collection, which the tuned collector almost never runs) and the freed memory handed back, so
the process's RSS returns close to where it was.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.live_server import LiveServer

CHAT = Path(__file__).parent.parent / "projects" / "chat"
QUERIES = 100_000
BATCH = 10_000


def rss_bytes(pid: int) -> int:
    """The process's resident set (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


async def subscribe_and_leave(url: str, queries: int, pid: int = 0) -> int:
    """One socket subscribes to `queries` queries (1,000 distinct channels), then closes;
    returns process `pid`'s RSS while they were all live (0 without a pid)."""
    async with connect(url.replace("http://", "ws://") + "/api/sync", max_size=None) as ws:
        await ws.send(orjson.dumps({"type": "Connect", "sessionId": str(uuid.uuid4())}).decode())
        for version, first in enumerate(range(0, queries, BATCH)):
            adds = [
                {
                    "type": "Add",
                    "queryId": i,
                    "udfPath": "messages:count",
                    "args": [{"channel": f"c{i % 1000}"}],
                }
                for i in range(first, min(first + BATCH, queries))
            ]
            modify = {"type": "ModifyQuerySet", "baseVersion": version, "newVersion": version + 1}
            await ws.send(orjson.dumps({**modify, "modifications": adds}).decode())
            while orjson.loads(await ws.recv())["type"] != "Transition":
                pass
        return rss_bytes(pid) if pid else 0


def settled_rss(pid: int, target: int, timeout: float = 20.0) -> int:
    """The RSS once it is at most `target`, or whatever it is after `timeout`."""
    deadline = time.monotonic() + timeout
    while (current := rss_bytes(pid)) > target and time.monotonic() < deadline:
        time.sleep(0.2)
    return current


@pytest.fixture
def server(tmp_path):
    env = {"REACTIVE_MAX_QUERIES_PER_SOCKET": str(QUERIES)}
    with LiveServer(CHAT, f"sqlite:///{tmp_path}/memory.db", env=env) as live:
        yield live


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_a_closed_socket_with_100k_queries_gives_its_memory_back(server):
    """What the session held is freed when the socket closes, and a client that comes back to
    do it again finds that memory to reuse: repeated attacks do not add up.

    Not all of it leaves the process: a query set is many small objects in the interpreter's
    own arenas, which go back to the system only when wholly empty; what stays is reused by
    the next session (its peak is no higher) rather than held for anyone."""
    assert server.process is not None
    pid = server.process.pid
    asyncio.run(subscribe_and_leave(server.url, 2_000))  # warm up every code path once
    baseline = settled_rss(pid, 0, timeout=2.0)

    peak = asyncio.run(subscribe_and_leave(server.url, QUERIES, pid))
    growth = peak - baseline
    assert growth > 100 << 20, f"the attack should cost memory: grew {growth >> 20} MiB"
    after = settled_rss(pid, baseline + int(0.3 * growth))
    second_peak = asyncio.run(subscribe_and_leave(server.url, QUERIES, pid))
    second_after = settled_rss(pid, after)
    print(
        f"RSS baseline {baseline >> 20} MiB; first attack peak {peak >> 20}, after close "
        f"{after >> 20}; second attack peak {second_peak >> 20}, after close {second_after >> 20}"
    )
    assert after - baseline <= 0.6 * growth, (
        f"RSS {after >> 20} MiB after the socket closed: baseline {baseline >> 20} MiB, "
        f"peak {peak >> 20} MiB (the session or its queries outlived the socket)"
    )
    assert second_peak - peak <= 0.15 * growth, "the second attack did not reuse the first's memory"
    assert second_after - after <= 0.25 * growth, "memory accumulates from attack to attack"
