"""A real HTTP server on 127.0.0.1 (random free port) in a background thread, for test doubles.

Subclasses provide `_app()` (a Starlette app); `start()`/`stop()`, `with` and `async with` run
it, so one instance serves sync tests, async tests and servers in other processes alike.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import weakref
from types import TracebackType
from typing import Self

import uvicorn
from starlette.applications import Starlette

__all__ = ["ThreadedServer"]

_STARTUP_TIMEOUT_S = 10.0


class ThreadedServer:
    """Binds its port at construction (so `url` is known before it starts)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        # Close the socket even if the server is never started.
        weakref.finalize(self, self._socket.close)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _app(self) -> Starlette:
        raise NotImplementedError

    def start(self) -> None:
        """Serve in a background thread; returns once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        config = uvicorn.Config(
            self._app(),
            loop="asyncio",
            log_level="warning",
            lifespan="off",
            ws="none",
            access_log=False,
        )
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} at {self.url} did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop the server and close its socket; the port then refuses connections."""
        if self._server is not None and self._thread is not None:
            self._server.request_exit()
            self._thread.join(timeout=_STARTUP_TIMEOUT_S)
        self._server = self._thread = None
        self._socket.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


class _Server(uvicorn.Server):
    """uvicorn's server, woken at once by `request_exit` instead of at its next 0.1 s tick."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_requested = asyncio.Event()

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        # A request that came before the loop was known only set should_exit: check it.
        if not self.should_exit:
            await self._exit_requested.wait()

    def request_exit(self) -> None:
        """Ask the server (running in another thread) to shut down."""
        self.should_exit = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._exit_requested.set)
