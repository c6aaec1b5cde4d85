"""The real `reactive dev` in a subprocess on loopback, for tests: the app plus the dev identity
provider and the taskboard page.

    with DevServer(project_dir, database_url) as server:
        ... server.url ...   # http://127.0.0.1:<port>; the issuer is server.url + "/_dev/auth"
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["DevServer"]

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class DevServer:
    """This module's server in a subprocess; its output goes to `log_path`."""

    def __init__(self, project: Path, database_url: str, *, port: int | None = None) -> None:
        self.project = Path(project)
        self.database_url = database_url
        self.port = port or _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"reactive-dev-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "reactive.cli",
            "dev",
            "--dir",
            str(self.project),
            "--db",
            self.database_url,
            "--port",
            str(self.port),
        ]

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                self.command(), env=env, stdout=log, stderr=log, cwd=self.project
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dev server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dev server did not become ready in {timeout}s:\n{self.log()}")

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

    def __enter__(self) -> DevServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
