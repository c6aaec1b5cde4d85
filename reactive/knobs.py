"""Every tunable of the runtime, documented, each overridable by an environment variable.

Read once at import; `REACTIVE_<NAME>` in the environment overrides the default.
"""

from __future__ import annotations

import os

__all__ = [
    "COMMIT_BATCH_MAX",
    "COMMIT_POLL_IDLE_S",
    "COMMIT_POLL_S",
    "COMMIT_WATCH_SAFETY_S",
    "HEALTH_DATABASE_TIMEOUT_S",
    "MAX_DOCUMENTS_SCANNED",
    "MAX_PAGE_ITEMS",
    "MUTATION_RECORD_RETENTION_S",
    "OCC_BACKOFF_INITIAL_S",
    "OCC_BACKOFF_MAX_S",
    "OCC_MAX_RETRIES",
    "OCC_SERIAL_FALLBACK",
    "PRUNE_INTERVAL_S",
    "RECENT_WRITES_MAX_AGE_S",
    "RETENTION_S",
    "SCAN_PAGE_SIZE",
    "TABLE_LEVEL_INVALIDATION",
]


def _int(name: str, default: int) -> int:
    return int(os.environ.get(f"REACTIVE_{name}", default))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(f"REACTIVE_{name}", default))


#: How long `GET /health` waits for the database before answering 503: a load balancer's
#: check should see a hung database as a down one, within its own check timeout.
HEALTH_DATABASE_TIMEOUT_S = _float("HEALTH_DATABASE_TIMEOUT_S", 2.0)

#: Benchmark baseline only: invalidate every subscription of a written table instead of only
#: those whose index ranges were hit.
TABLE_LEVEL_INVALIDATION = os.environ.get("REACTIVE_TABLE_LEVEL_INVALIDATION", "0") in ("1", "true")

#: WebSocket per-message-deflate. Off by default, as in Convex: compressing and flushing
#: costs ~30 us of CPU per frame, more than the rest of pushing a small result to a socket.
#: Turn on when clients sit behind slow links and results are large.
WS_COMPRESSION = os.environ.get("REACTIVE_WS_COMPRESSION", "0") in ("1", "true")

#: The cycle collector's youngest-generation threshold in a server process (CPython's default
#: is 700). Each commit makes many short-lived objects; collecting young ones this rarely lets
#: them die young instead of being promoted, and every promotion brings the next full
#: collection nearer: a stop-the-world pass over every subscription (~0.4 s at 100k).
GC_YOUNG_THRESHOLD = _int("GC_YOUNG_THRESHOLD", 50_000)

#: How many times a mutation that hit an optimistic-concurrency conflict is re-run before the
#: conflict is reported to the caller.
OCC_MAX_RETRIES = _int("OCC_MAX_RETRIES", 4)

#: After OCC_MAX_RETRIES optimistic attempts, run the mutation once more with every other commit
#: held off, so that it cannot lose again (starvation-free under heavy contention).
OCC_SERIAL_FALLBACK = os.environ.get("REACTIVE_OCC_SERIAL_FALLBACK", "1") not in ("0", "false")

#: First back-off before re-running a conflicted mutation; doubles each retry, with jitter.
OCC_BACKOFF_INITIAL_S = _float("OCC_BACKOFF_INITIAL_S", 0.001)

#: Upper bound of one back-off sleep.
OCC_BACKOFF_MAX_S = _float("OCC_BACKOFF_MAX_S", 0.1)

#: Most commits persisted together in one SQL transaction (group commit).
COMMIT_BATCH_MAX = _int("COMMIT_BATCH_MAX", 256)

#: SQLite: how often a process looks whether another process committed (`PRAGMA data_version`,
#: a few microseconds) while it has subscribers or waiters; and how often when it has none.
COMMIT_POLL_S = _float("COMMIT_POLL_S", 0.002)
COMMIT_POLL_IDLE_S = _float("COMMIT_POLL_IDLE_S", 0.1)

#: PostgreSQL: commits are announced by NOTIFY, but a notification is only a hint (it can be
#: lost with the listening connection); the commit table is read this often regardless.
COMMIT_WATCH_SAFETY_S = _float("COMMIT_WATCH_SAFETY_S", 1.0)

#: How long the in-memory log of recent commits' written keys is kept. A transaction that
#: began before the oldest retained commit cannot be validated and is retried.
RECENT_WRITES_MAX_AGE_S = _float("RECENT_WRITES_MAX_AGE_S", 30.0)

#: How long old document versions stay readable before pruning removes them.
RETENTION_S = _float("RETENTION_S", 600.0)

#: How long exactly-once records of mutations are kept (clients re-send unacknowledged
#: mutations on reconnect; upstream keeps them about two weeks).
MUTATION_RECORD_RETENTION_S = _float("MUTATION_RECORD_RETENTION_S", 14 * 24 * 3600.0)

#: How often the pruner runs.
PRUNE_INTERVAL_S = _float("PRUNE_INTERVAL_S", 60.0)

#: Index entries fetched from storage per round trip while scanning.
SCAN_PAGE_SIZE = _int("SCAN_PAGE_SIZE", 128)

#: Most documents one function may scan; protects the server from runaway queries.
MAX_DOCUMENTS_SCANNED = _int("MAX_DOCUMENTS_SCANNED", 32_768)

#: Largest `numItems` a paginated query may ask for.
MAX_PAGE_ITEMS = _int("MAX_PAGE_ITEMS", 8_192)
