"""A TCP proxy to PostgreSQL that can cut a connection right after it forwards a COMMIT (or
the one statement that commits a group on its own, `reactive_write_group` outside a
transaction): the server commits, the client never hears back. It runs on a thread of its
own, so that a server process started synchronously (tests/live_server.py) can reach the
database through it.

with CuttingProxy() as proxy:
    url = proxy.url(schema)      # postgresql://...@127.0.0.1:<proxy port>/test?schema=...
    proxy.cut_next_commits(1)    # the next COMMIT sent through it loses its connection
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import POSTGRES_URL, with_schema

#: asyncpg sends COMMIT as a simple query: 'Q', length, "COMMIT;\0".
_COMMIT = b"COMMIT;"
#: asyncpg prepares a statement once per connection (Parse: its name, then its text) and
#: then runs it by name (Bind: the empty portal's name, then the statement's).
_PREPARE_WRITE_GROUP = re.compile(rb"(__asyncpg_stmt_[0-9a-f]+__)\x00SELECT reactive_write_group\(")


class _Commits:
    """Spots, in what a client sends one connection, the messages that commit."""

    def __init__(self) -> None:
        self._write_group: set[bytes] = set()
        self._in_transaction = False

    def commits(self, data: bytes) -> bool:
        prepared = _PREPARE_WRITE_GROUP.findall(data)
        if prepared:
            self._write_group.update(prepared)
            return False
        if b"BEGIN;" in data:
            self._in_transaction = True
        if _COMMIT in data or b"ROLLBACK;" in data:
            self._in_transaction = False
            return _COMMIT in data
        runs_write_group = any(b"\x00" + name + b"\x00" in data for name in self._write_group)
        return runs_write_group and not self._in_transaction


class CuttingProxy:
    def __init__(self, target: str = POSTGRES_URL) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._target_url = target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()
        self._cuts_left = 0
        #: How many connections were cut right after a COMMIT went through.
        self.cut = 0
        self.port = 0

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: Any) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def url(self, schema: str) -> str:
        """The test database's URL through this proxy, with `schema`."""
        parts = urlsplit(self._target_url)
        user = f"{parts.username}@" if parts.username else ""
        proxied = parts._replace(netloc=f"{user}127.0.0.1:{self.port}").geturl()
        return with_schema(proxied, schema)

    def cut_next_commits(self, count: int) -> None:
        with self._lock:
            self._cuts_left = count

    def _take_cut(self) -> bool:
        with self._lock:
            if self._cuts_left <= 0:
                return False
            self._cuts_left -= 1
            self.cut += 1
            return True

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.close()
            return
        cutting = asyncio.Event()
        commits = _Commits()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                cut = commits.commits(data) and self._take_cut()
                if cut:
                    cutting.set()  # before the server can answer
                server_w.write(data)
                await server_w.drain()
                if cut:
                    await asyncio.sleep(0.05)  # the server reads and runs the COMMIT
                    return

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if cutting.is_set():
                    return  # the answer to COMMIT never reaches the client
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (client_w, server_w):
            with contextlib.suppress(Exception):
                writer.transport.abort()
