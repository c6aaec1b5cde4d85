"""Run a cluster until Ctrl-C: `python -m examples.cluster [--db URL] [--dir PROJECT]`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from examples.cluster import REPO, Cluster

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/postgres?schema=reactive_cluster"


def main() -> int:
    args = _parser().parse_args()
    if not args.db.startswith(("postgresql://", "postgres://")):
        print("nodes of a cluster share one PostgreSQL database: --db postgresql://...")
        return 2
    cluster = Cluster(
        Path(args.dir).resolve(),
        args.db,
        nodes_count=args.nodes,
        lb_port=args.port,
        stats_port=args.stats_port,
    )
    # Ctrl-C (SIGINT) or a SIGTERM from a process manager: stop everything we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cluster.start()
        _announce(cluster)
        _watch(cluster)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping the balancer and the nodes")
        cluster.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=os.environ.get("REACTIVE_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--dir", default=str(REPO), help="project (default: the seed app)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--port", type=int, default=3210, help="the balancer's port")
    parser.add_argument("--stats-port", type=int, default=8404, help="HAProxy's statistics page")
    return parser


def _announce(cluster: Cluster) -> None:
    print(f"\nreactive cluster: {cluster.url}  (HAProxy statistics: {cluster.stats_url})")
    for node in cluster.nodes:
        health = httpx.get(f"{node.url}/health", timeout=2.0).json()
        print(f"  {node.name}: {node.url}  lag {health['lag_ms']} ms  log {node.log_path}")
    print(f"HAProxy config and logs: {cluster.workdir}\nCtrl-C stops everything.\n")


def _watch(cluster: Cluster) -> None:
    """Say when a node stops (kill one to see the balancer route around it)."""
    gone: set[str] = set()
    while True:
        time.sleep(1.0)
        for node in cluster.nodes:
            if node.name in gone or node.process is None or node.process.poll() is None:
                continue
            gone.add(node.name)
            print(f"{node.name} exited ({node.process.returncode}); the balancer skips it")


if __name__ == "__main__":
    sys.exit(main())
