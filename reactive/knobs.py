"""Every tunable of the runtime, documented, each overridable by an environment variable.

Read once at import; `REACTIVE_<NAME>` in the environment overrides the default.
"""

from __future__ import annotations

import os

__all__ = [
    "ACTION_TIMEOUT_S",
    "CALL_LOG_MAX_BYTES",
    "CALL_LOG_MAX_ENTRIES",
    "COMMIT_BATCH_MAX",
    "COMMIT_BELL_DELAY_S",
    "COMMIT_OUTCOME_TIMEOUT_S",
    "COMMIT_POLL_IDLE_S",
    "COMMIT_POLL_S",
    "COMMIT_WATCH_SAFETY_S",
    "ERROR_ECHO_CHARS",
    "HEALTH_DATABASE_TIMEOUT_S",
    "HTTP_ACTION_MAX_BODY_BYTES",
    "MAX_ACTIONS_PER_SOCKET",
    "MAX_API_BODY_BYTES",
    "MAX_ARRAY_ELEMENTS",
    "MAX_BYTES_READ",
    "MAX_BYTES_WRITTEN",
    "MAX_DOCUMENTS_SCANNED",
    "MAX_DOCUMENTS_WRITTEN",
    "MAX_DOCUMENT_BYTES",
    "MAX_FIELD_NAME_LEN",
    "MAX_FUNCTION_PATH_CHARS",
    "MAX_INDEX_RANGES_READ",
    "MAX_NESTING",
    "MAX_OBJECT_FIELDS",
    "MAX_PAGE_ITEMS",
    "MAX_QUERIES_PER_SOCKET",
    "MAX_QUERY_SET_BYTES",
    "MAX_SCHEDULED_ARGS_BYTES",
    "MAX_SCHEDULED_PER_FUNCTION",
    "MUTATION_RECORD_RETENTION_S",
    "NODE_FORGET_S",
    "NODE_REPORT_INTERVAL_S",
    "OCC_BACKOFF_INITIAL_S",
    "OCC_BACKOFF_MAX_S",
    "OCC_MAX_RETRIES",
    "OCC_SERIAL_FALLBACK",
    "POSTGRES_IDLE_TX_TIMEOUT_S",
    "PRUNE_INTERVAL_S",
    "QUERY_MUTATION_TIMEOUT_S",
    "RECENT_WRITES_MAX_AGE_S",
    "RELEASE_MEMORY_AFTER_QUERIES",
    "RETENTION_S",
    "SCAN_PAGE_SIZE",
    "SCHEDULED_RETENTION_S",
    "SCHEDULER_BATCH",
    "SCHEDULER_CONCURRENCY",
    "SCHEDULER_LOOKAHEAD_S",
    "SCHEDULER_MAX_NODES",
    "SCHEDULER_MIN_PASS_INTERVAL_S",
    "SCHEDULER_NODES_CHECK_S",
    "SCHEDULER_PEER_GRACE_S",
    "SQLITE_CHECKPOINT_INTERVAL_S",
    "SQLITE_INLINE_PAUSE_S",
    "SQLITE_INLINE_WRITE_MAX_ROWS",
    "SQLITE_INLINE_WRITE_MAX_S",
    "SQLITE_WAL_CHECKPOINT_PAGES",
    "SYNC_INBOX_MAX_BYTES",
    "SYNC_INBOX_MAX_MESSAGES",
    "TABLE_LEVEL_INVALIDATION",
    "WS_MAX_MESSAGE_BYTES",
]


def _int(name: str, default: int) -> int:
    return int(os.environ.get(f"REACTIVE_{name}", default))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(f"REACTIVE_{name}", default))


#: How long `GET /health` waits for the database before answering 503: a load balancer's
#: check should see a hung database as a down one, within its own check timeout.
HEALTH_DATABASE_TIMEOUT_S = _float("HEALTH_DATABASE_TIMEOUT_S", 2.0)

#: Every serving node writes its state (lag, commit rate, subscriptions, sockets) to the
#: database this often, for the dashboard's list of the nodes sharing it. A node silent for
#: three intervals is shown as silent; one silent for NODE_FORGET_S is dropped from the list.
NODE_REPORT_INTERVAL_S = _float("NODE_REPORT_INTERVAL_S", 2.0)
NODE_FORGET_S = _float("NODE_FORGET_S", 60.0)

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

#: After a commit's write failed, how long to keep trying to learn whether it landed anyway
#: (a connection lost after COMMIT was sent) before answering that the outcome is unknown.
#: PostgreSQL ends a transaction left idle by a dead client after POSTGRES_IDLE_TX_TIMEOUT_S.
COMMIT_OUTCOME_TIMEOUT_S = _float("COMMIT_OUTCOME_TIMEOUT_S", 30.0)
POSTGRES_IDLE_TX_TIMEOUT_S = _float("POSTGRES_IDLE_TX_TIMEOUT_S", 20.0)

#: SQLite without inotify (no commit bell to hear): how often a process looks whether another
#: process committed (`PRAGMA data_version`, a few microseconds) while it has subscribers or
#: waiters, and how often when it has none.
COMMIT_POLL_S = _float("COMMIT_POLL_S", 0.002)
COMMIT_POLL_IDLE_S = _float("COMMIT_POLL_IDLE_S", 0.1)

#: Commits are announced (PostgreSQL: NOTIFY; SQLite: the commit bell), but an announcement is
#: only a hint (lost with the listening connection; a writer that does not ring the bell): the
#: commit table (PostgreSQL) or `PRAGMA data_version` (SQLite) is looked at this often too.
COMMIT_WATCH_SAFETY_S = _float("COMMIT_WATCH_SAFETY_S", 1.0)
#: SQLite: how long after the commit bell rings a process looks at `PRAGMA data_version`
#: (once for all the rings meanwhile), so that a look never delays its own commit's pushes.
COMMIT_BELL_DELAY_S = _float("COMMIT_BELL_DELAY_S", 0.002)
#: SQLite: how often a background connection copies the WAL into the database (a PASSIVE
#: checkpoint, beside the writer rather than inside one of its commits); the writer then
#: copies what was committed meanwhile, between two commits, so the WAL starts over.
SQLITE_CHECKPOINT_INTERVAL_S = _float("SQLITE_CHECKPOINT_INTERVAL_S", 0.5)
#: SQLite: WAL pages after which the writer checkpoints inside a commit after all, a backstop
#: for when the WAL cannot start over (another process's reader or writer in the way): it
#: only starts over when a write begins with every frame copied. Without this bound the WAL
#: grew by 3 GB while 60k short documents were indexed. At 4,096 pages (16 MiB) inserts
#: under 1,000 live subscriptions ran ~18% slower than without it, at 16,384 (64 MiB) within
#: the noise.
SQLITE_WAL_CHECKPOINT_PAGES = _int("SQLITE_WAL_CHECKPOINT_PAGES", 16_384)
#: SQLite: a group of commits is written on the event loop itself, rather than by a trip to
#: the writer thread and back (two thread wake-ups, the GIL changing hands twice: ~100 us of
#: an idle mutation's round trip), when no other transaction of the process is running, so
#: that the loop has nothing else to do while the write waits for its fsync; and only a
#: small group (at most this many rows; 0 turns inline writes off) while the disk answers
#: fast: once inline writes take longer than SQLITE_INLINE_WRITE_MAX_S on average (a moving
#: average: one slow fsync now and then paused them for a second every time), the writes of
#: the next SQLITE_INLINE_PAUSE_S go to the thread, where a slow fsync holds up only commits.
SQLITE_INLINE_WRITE_MAX_ROWS = _int("SQLITE_INLINE_WRITE_MAX_ROWS", 64)
SQLITE_INLINE_WRITE_MAX_S = _float("SQLITE_INLINE_WRITE_MAX_S", 0.005)
SQLITE_INLINE_PAUSE_S = _float("SQLITE_INLINE_PAUSE_S", 1.0)

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

#: Largest `numItems` a paginated query may ask for. Convex: none of its own, but a page is
#: returned as an array, and arrays hold at most MAX_ARRAY_ELEMENTS.
MAX_PAGE_ITEMS = _int("MAX_PAGE_ITEMS", 8_192)

#: Vector search's HNSW graph (ARCHITECTURE.md, "Vector search"): neighbours per node, the
#: candidate list while adding and while searching. The search width buys recall with
#: latency: on random 128-dimension vectors (the hard case) at 100k, 512 gave recall@10
#: 0.94 and 1,024 gave 0.99; embeddings of real text need far less.
VECTOR_CONNECTIVITY = _int("VECTOR_CONNECTIVITY", 32)
#: Below this many float32s in all (vectors x dimensions: 100k x 1,024, ~400 MB), an index is
#: a plain matrix and every search scans it: exact, no graph to build, and at 100k x 768
#: faster than the graph at a search width that reaches recall 0.95 (ARCHITECTURE.md,
#: "Vector search"). Past it the HNSW graph below is built once and searched instead.
VECTOR_EXACT_MAX_FLOATS = _int("VECTOR_EXACT_MAX_FLOATS", 100_000 * 1024)
VECTOR_EXPANSION_ADD = _int("VECTOR_EXPANSION_ADD", 128)
VECTOR_EXPANSION_SEARCH = _int("VECTOR_EXPANSION_SEARCH", 1024)
#: Threads that build a vector index from its table. 1 builds the same graph from the same
#: data in every process and on both backends (so equal data gives equal results); more
#: build faster, but graphs then differ and approximate results may differ where they miss.
VECTOR_BUILD_THREADS = _int("VECTOR_BUILD_THREADS", 1)


# -- Convex's limits: what one value, one function and one transaction may hold -------------
# The numbers of Convex's "Limits" page (docs.convex.dev/production/state/limits), so that an
# app that runs on Convex runs here and one that runs here runs on Convex. Each is enforced
# as the function runs (not only at commit) and its error names the limit and what to do.
# The README's "Limits" section lists them.

#: Largest document, measured as `values.value_size` counts. Convex: 1 MiB.
MAX_DOCUMENT_BYTES = _int("MAX_DOCUMENT_BYTES", 1 << 20)

#: Deepest nesting of arrays and objects in a value (a top-level object is one level).
#: Convex: 16.
MAX_NESTING = _int("MAX_NESTING", 16)

#: Longest field name. Convex: 1024 characters for nested objects' keys (64 for a document's
#: top-level fields, which we do not restrict further).
MAX_FIELD_NAME_LEN = _int("MAX_FIELD_NAME_LEN", 1024)

#: Most elements of one array, anywhere in a value (documents, arguments, return values).
#: Convex: 8192.
MAX_ARRAY_ELEMENTS = _int("MAX_ARRAY_ELEMENTS", 8192)

#: Most fields of one object, anywhere in a value. Convex: 1024.
MAX_OBJECT_FIELDS = _int("MAX_OBJECT_FIELDS", 1024)

#: Most documents one function may scan (read from an index, including those a `.filter`
#: then drops, and each `db.get`). Convex: 32,000.
MAX_DOCUMENTS_SCANNED = _int("MAX_DOCUMENTS_SCANNED", 32_000)

#: Most bytes of documents one function may read (their stored JSON). Convex: 16 MiB.
MAX_BYTES_READ = _int("MAX_BYTES_READ", 16 << 20)

#: Most index ranges one function may read: each `db.get` and each query run is one.
#: Convex: 4,096.
MAX_INDEX_RANGES_READ = _int("MAX_INDEX_RANGES_READ", 4096)

#: Most documents one mutation may write (insert, patch, replace or delete). Convex: 16,000.
MAX_DOCUMENTS_WRITTEN = _int("MAX_DOCUMENTS_WRITTEN", 16_000)

#: Most bytes of documents one mutation may write (`value_size` of each written version).
#: Convex: 16 MiB.
MAX_BYTES_WRITTEN = _int("MAX_BYTES_WRITTEN", 16 << 20)

#: How long a query's or a mutation's own code may run, in seconds; time spent waiting for
#: the database is not counted. Convex: 1 s of user code. Each attempt of a mutation that is
#: re-run after a conflict has its own budget.
QUERY_MUTATION_TIMEOUT_S = _float("QUERY_MUTATION_TIMEOUT_S", 1.0)

#: How long an action (or HTTP action) may run, in seconds of wall-clock time. Convex: 10 min.
ACTION_TIMEOUT_S = _float("ACTION_TIMEOUT_S", 600.0)


# -- input limits: no client can make the server hold memory it chose -------------------------
# Each is enforced while reading (a body or frame over its limit is refused before it is held
# whole). Convex's value, where it has one, is given beside ours.

#: Largest body of an API call (/api/query, /api/mutation, /api/action, /api/function,
#: /api/run/...). Convex: arguments of a call at most 8 MiB ("Limits" in its docs).
MAX_API_BODY_BYTES = _int("MAX_API_BODY_BYTES", 8 << 20)

#: Largest request body of an HTTP action, unless its route says otherwise
#: (`http.route(..., max_body_bytes=...)`). Convex: 20 MiB.
HTTP_ACTION_MAX_BODY_BYTES = _int("HTTP_ACTION_MAX_BODY_BYTES", 20 << 20)

#: Largest WebSocket message a client may send (uvicorn's `ws_max_size`, which refuses a
#: longer frame from its header, and the sync endpoint's own check). A message carries at most
#: one call's arguments, so this matches MAX_API_BODY_BYTES. Convex: 8 MiB of arguments.
WS_MAX_MESSAGE_BYTES = _int("WS_MAX_MESSAGE_BYTES", 8 << 20)

#: Client frames a socket may have waiting for its worker, by count and by bytes; over either
#: the socket is closed (close reason `TooManyPendingMessages`). A reconnecting client re-sends
#: all its unanswered mutations at once, so the count is generous. Convex: no documented limit.
SYNC_INBOX_MAX_MESSAGES = _int("SYNC_INBOX_MAX_MESSAGES", 10_000)
SYNC_INBOX_MAX_BYTES = _int("SYNC_INBOX_MAX_BYTES", 64 << 20)

#: Live queries one socket may hold; one more is a protocol error (`TooManyQueries`).
#: Convex documents no per-socket limit (its limits on concurrent function runs are per
#: deployment); ours leaves room for large dashboards while bounding one client's share.
MAX_QUERIES_PER_SOCKET = _int("MAX_QUERIES_PER_SOCKET", 20_000)

#: Actions one socket may have running at once; the next waits for one of them to end (its
#: frame and those behind it wait in the bounded inbox). Convex: 16 concurrent actions per
#: deployment by default (APPLICATION_MAX_CONCURRENT_V8_ACTIONS), none per socket.
MAX_ACTIONS_PER_SOCKET = _int("MAX_ACTIONS_PER_SOCKET", 64)

#: Bytes of paths, arguments and journals the live queries of one socket may hold together.
#: Convex: no documented limit.
MAX_QUERY_SET_BYTES = _int("MAX_QUERY_SET_BYTES", 256 << 20)

#: Longest function path ("dir/module:function"). Convex: each identifier (a function or
#: table name) at most 64 characters, module paths are file paths (a few hundred at most).
MAX_FUNCTION_PATH_CHARS = _int("MAX_FUNCTION_PATH_CHARS", 512)

#: How much of a client's input an error message quotes back (the rest is elided), so an
#: error never echoes a huge value. Convex: no documented limit.
ERROR_ECHO_CHARS = _int("ERROR_ECHO_CHARS", 200)

#: The call log (`reactive logs`, the dev console) keeps at most this many recent calls and
#: this many bytes of their paths, errors and log lines. Convex streams logs to the dashboard
#: and keeps at most 256 log lines per call.
CALL_LOG_MAX_ENTRIES = _int("CALL_LOG_MAX_ENTRIES", 1000)
CALL_LOG_MAX_BYTES = _int("CALL_LOG_MAX_BYTES", 16 << 20)

#: A server process hands freed memory back to the OS (glibc `malloc_trim`) after a socket
#: that held at least this many queries closes; smaller sockets leave it for reuse.
RELEASE_MEMORY_AFTER_QUERIES = _int("RELEASE_MEMORY_AFTER_QUERIES", 1000)

#: What one function (a mutation or an action) may schedule through `ctx.scheduler`, as
#: Convex: at most this many jobs, and this many bytes of their arguments in total.
MAX_SCHEDULED_PER_FUNCTION = _int("MAX_SCHEDULED_PER_FUNCTION", 1000)
MAX_SCHEDULED_ARGS_BYTES = _int("MAX_SCHEDULED_ARGS_BYTES", 8 << 20)

#: The scheduler of each server node reads this many due jobs at a time, and runs at most
#: this many at once (each job is a transaction or an action; more at once only queues them
#: behind the database's commit lock).
SCHEDULER_BATCH = _int("SCHEDULER_BATCH", 256)
SCHEDULER_CONCURRENCY = _int("SCHEDULER_CONCURRENCY", 32)

#: Jobs due within this window are read ahead and started by a timer at their due time (no
#: read of the table on the way), and wake-ups closer together than the interval share one
#: read: a burst of finished jobs costs one pass, not one each.
SCHEDULER_LOOKAHEAD_S = _float("SCHEDULER_LOOKAHEAD_S", 0.25)
SCHEDULER_MIN_PASS_INTERVAL_S = _float("SCHEDULER_MIN_PASS_INTERVAL_S", 0.005)

#: With several nodes, each runs the due jobs its share of the ids names; a job of another
#: node's share is run here too once it is this late (that node may be gone): the database
#: still lets only one run commit.
SCHEDULER_PEER_GRACE_S = _float("SCHEDULER_PEER_GRACE_S", 0.5)

#: How often a node looks for the other nodes (to share jobs) and for dead ones (whose
#: actions in progress then end `failed`), and how many node slots it looks at.
SCHEDULER_NODES_CHECK_S = _float("SCHEDULER_NODES_CHECK_S", 2.0)
SCHEDULER_MAX_NODES = _int("SCHEDULER_MAX_NODES", 64)

#: How long a finished job (success, failed, canceled) stays in `_scheduled_functions` after
#: its due time; Convex keeps them 7 days.
SCHEDULED_RETENTION_S = _float("SCHEDULED_RETENTION_S", 7 * 24 * 3600.0)
