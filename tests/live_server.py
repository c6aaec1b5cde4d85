"""A real reactive server in a subprocess on loopback, for tests that drive real clients.

with LiveServer(project_dir, database_url) as server:
    ... server.url ...            # http://127.0.0.1:<port>
    server.restart()              # same port, same database: clients reconnect
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import httpx
import websockets

from reactive import knobs

REPO = Path(__file__).resolve().parent.parent


def knobs_value(name: str, env: dict[str, str]) -> int:
    """A knob as the server process will read it: from its environment, else the default."""
    override = env.get(f"REACTIVE_{name}") or os.environ.get(f"REACTIVE_{name}")
    return int(override) if override else int(getattr(knobs, name))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def open_sync_socket(
    url: str, path: str, args: dict[str, Any], *, query_id: int = 0, session_id: str, **options: Any
) -> websockets.ClientConnection:
    """A sync WebSocket to the server at `url`, connected (session `session_id`) and subscribed
    to the query `path` with `args` as `query_id`. `options` go to `websockets.connect`."""
    ws = await websockets.connect(url.replace("http", "ws", 1) + "/api/sync", **options)
    connect = {
        "type": "Connect",
        "sessionId": session_id,
        "connectionCount": 0,
        "lastCloseReason": None,
        "clientTs": 0,
    }
    add = {"type": "Add", "queryId": query_id, "udfPath": path, "args": [args]}
    modify = {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [add]}
    await ws.send(json.dumps(connect))
    await ws.send(json.dumps(modify))
    return ws


class ServerProcess:
    """A server in a subprocess on a loopback port, its output appended to `log_path`. A
    subclass says how to start it (`command`, `environment`, `working_directory`) and when it is
    ready to serve (`is_ready`)."""

    #: The server in errors, and its log file's name: `<log_prefix>-<port>.log`.
    name = "server"
    log_prefix = "server"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = (
            Path(os.environ.get("TMPDIR", "/tmp")) / f"{self.log_prefix}-{self.port}.log"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def working_directory(self) -> Path | None:
        return None

    def is_ready(self) -> bool:
        """Whether the server answers yet; an httpx.HTTPError counts as not yet."""
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        command, env, cwd = self.command(), self.environment(), self.working_directory()
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=cwd)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()  # reaped here, not left running for a later test's garbage collection
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            try:
                if self.is_ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not become ready in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class LiveServer(ServerProcess):
    log_prefix = "reactive-live"

    def __init__(
        self,
        project: Path,
        database_url: str,
        *,
        env: dict[str, str] | None = None,
        dev: bool = True,
        port: int | None = None,
    ) -> None:
        super().__init__(port)
        self.project = Path(project)
        self.database_url = database_url
        self.env = env or {}
        self.dev = dev

    def working_directory(self) -> Path:
        return self.project

    def command(self) -> list[str]:
        """The server process: the ASGI app under uvicorn (`reactive dev` in DevServer)."""
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "reactive.http:server_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            # as `reactive serve` does (reactive.knobs.WS_COMPRESSION)
            "--ws-per-message-deflate",
            os.environ.get("REACTIVE_WS_COMPRESSION", "false"),
            # as `reactive serve` does (reactive.knobs.WS_MAX_MESSAGE_BYTES)
            "--ws-max-size",
            str(knobs_value("WS_MAX_MESSAGE_BYTES", self.env)),
        ]

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.env,
            "REACTIVE_PROJECT": str(self.project),
            "REACTIVE_DATABASE_URL": self.database_url,
            "REACTIVE_DEV": "1" if self.dev else "0",
            "PYTHONPATH": str(REPO),
        }

    def is_ready(self) -> bool:
        return httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200

    def restart(self) -> None:
        self.stop()
        self.start()
