"""A real reactive server in a subprocess on loopback, for tests that drive real clients.

with LiveServer(project_dir, database_url) as server:
    ... server.url ...            # http://127.0.0.1:<port>
    server.restart()              # same port, same database: clients reconnect
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

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


class LiveServer:
    def __init__(
        self,
        project: Path,
        database_url: str,
        *,
        env: dict[str, str] | None = None,
        dev: bool = True,
        port: int | None = None,
    ) -> None:
        self.project = Path(project)
        self.database_url = database_url
        self.env = env or {}
        self.dev = dev
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"reactive-live-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    def start(self, timeout: float = 30.0) -> None:
        env = {
            **os.environ,
            **self.env,
            "REACTIVE_PROJECT": str(self.project),
            "REACTIVE_DATABASE_URL": self.database_url,
            "REACTIVE_DEV": "1" if self.dev else "0",
            "PYTHONPATH": str(REPO),
        }
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                self.command(), env=env, stdout=log, stderr=log, cwd=self.project
            )
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
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready in {timeout}s:\n{self.log()}")

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

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
