"""Several `reactive serve` nodes on one PostgreSQL database behind HAProxy: start, watch, stop.

`python -m examples.cluster` (or `examples/cluster/run`) runs one until Ctrl-C; tests drive the
same `Cluster` (tests/test_cluster.py) to kill nodes under load.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from types import TracebackType
from typing import Self

import httpx

__all__ = ["Cluster", "Node", "free_port"]

HERE = Path(__file__).resolve().parent
#: The repository's top level: its schema.py and functions/ are the seed app.
REPO = HERE.parent.parent
TEMPLATE = HERE / "haproxy.cfg.template"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    """One `reactive serve` process."""

    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    #: This node's own database URL (the cluster's when None): a test reaching the database
    #: through a proxy it can cut.
    database_url: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Cluster:
    """`nodes` servers of `project` on `database_url`, and HAProxy on `lb_port` in front.

    Every node gets the same environment (`env`, plus one REACTIVE_ADMIN_KEY for all, so an
    admin command such as `reactive deploy` is accepted by whichever node it lands on) and
    the balancer's address as its public URL (REACTIVE_URL), so file URLs point at the
    balancer."""

    project: Path
    database_url: str
    nodes_count: int = 3
    lb_port: int = 0
    stats_port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="reactive-lb-")))
    nodes: list[Node] = field(default_factory=list)
    haproxy: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.lb_port = self.lb_port or free_port()
        self.stats_port = self.stats_port or free_port()
        self.env.setdefault("REACTIVE_ADMIN_KEY", secrets.token_urlsafe(24))
        self.env.setdefault("REACTIVE_URL", self.url)
        self.nodes = [
            Node(f"node{i}", free_port(), self.workdir / f"node{i}.log")
            for i in range(1, self.nodes_count + 1)
        ]

    @property
    def url(self) -> str:
        """Where clients connect: the balancer."""
        return f"http://127.0.0.1:{self.lb_port}"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.stats_port}/"

    # -- starting and stopping -------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start every node (the first alone: it creates the schema's tables), then HAProxy;
        return once the balancer sees every node healthy."""
        self.start_node(self.nodes[0], timeout)
        for node in self.nodes[1:]:
            self.start_node(node, timeout, wait=False)
        for node in self.nodes[1:]:
            wait_healthy(node, timeout)
        self.start_balancer()
        self.wait_balanced(timeout)

    def start_node(self, node: Node, timeout: float = 60.0, *, wait: bool = True) -> None:
        command = [
            sys.executable, "-m", "reactive.tools.cli", "serve",
            "--dir", str(self.project), "--db", node.database_url or self.database_url,
            "--port", str(node.port),
        ]  # fmt: skip
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO)}
        with node.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            node.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        if wait:
            wait_healthy(node, timeout)

    def start_balancer(self) -> None:
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(haproxy).exists():
            raise RuntimeError("haproxy is not installed: apt-get install -y haproxy")
        config = self.workdir / "haproxy.cfg"
        config.write_text(self.haproxy_config())
        check = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True)
        if check.returncode != 0:
            raise RuntimeError(
                f"haproxy refused {config}:\n{check.stdout.decode()}{check.stderr.decode()}"
            )
        with (self.workdir / "haproxy.log").open("ab") as log:
            # -db: stay in the foreground (our child), so stopping it is one signal.
            self.haproxy = subprocess.Popen(
                [haproxy, "-db", "-f", str(config)], stdout=log, stderr=log
            )

    def haproxy_config(self) -> str:
        servers = "\n".join(
            f"    server {node.name} 127.0.0.1:{node.port} check" for node in self.nodes
        )
        return Template(TEMPLATE.read_text()).substitute(
            lb_port=self.lb_port, stats_port=self.stats_port, servers=servers
        )

    def wait_balanced(self, timeout: float = 30.0, *, up: int | None = None) -> None:
        """Wait until the balancer counts `up` nodes healthy (default: all)."""
        want = self.nodes_count if up is None else up
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.haproxy is not None and self.haproxy.poll() is not None:
                raise RuntimeError(f"haproxy exited:\n{self.balancer_log()}")
            try:
                if sum(row["status"] == "UP" for row in self.server_stats()) == want:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the balancer did not see {want} healthy nodes in {timeout}s")

    def stop(self) -> None:
        if self.haproxy is not None:
            _stop(self.haproxy)
            self.haproxy = None
        for node in self.nodes:
            self.stop_node(node)

    def stop_node(self, node: Node) -> None:
        if node.process is not None:
            _stop(node.process)
            node.process = None

    def kill_node(self, node: Node) -> None:
        """kill -9: no goodbye to clients, no clean close of the database connections."""
        if node.process is not None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()
            node.process = None

    # -- what the balancer sees ------------------------------------------------------------

    def server_stats(self) -> list[dict[str, str]]:
        """HAProxy's CSV statistics of each node: status, scur (open connections), stot..."""
        text = httpx.get(f"{self.stats_url};csv", timeout=2.0).text.lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return [row for row in rows if row["pxname"] == "nodes" and row["svname"] != "BACKEND"]

    def node_named(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def balancer_log(self) -> str:
        path = self.workdir / "haproxy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def wait_healthy(node: Node, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.process is None or node.process.poll() is not None:
            raise RuntimeError(f"{node.name} exited:\n{node.log()[-4000:]}")
        try:
            if httpx.get(f"{node.url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{node.name} was not healthy within {timeout}s:\n{node.log()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
