"""The dashboard's server side: who is an admin (the admin key), and the admin-only system
functions its page subscribes to over the sync protocol (tables, a live count per table, a page
of any table by any index, one document, edits, the functions and the schema), and the report
every serving node writes of its own state so that any node's dashboard lists them all.

Invariant: system functions live only in the Dashboard's own registry, never in the project's,
so a client reaches them only through a Dashboard: a sync session authenticated with the admin
key (`Authenticate` tokenType "Admin", as Convex's dashboard does), or an admin HTTP route.
Every edit is an ordinary mutation through the commit path, so open clients see it live.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from reactive import knobs
from reactive.application import Application, FunctionRunner, LoggedOutcome
from reactive.auth import Identity
from reactive.context import DatabaseReader, MutationCtx, QueryCtx
from reactive.errors import PersistenceError, ValidationError
from reactive.executor import Executor, Outcome
from reactive.file_storage import STORAGE_TABLE
from reactive.functions import AnyFunction, FunctionDef, Registry, normalize_path
from reactive.index_keys import Interval
from reactive.query_builder import Expr, FilterBuilder, IndexRangeBuilder, QueryBuilder
from reactive.reads import index_ref
from reactive.scheduler import transaction_scheduler
from reactive.transaction import Transaction
from reactive.types import FunctionKind, Value
from reactive.validators import v

__all__ = ["SYSTEM_MODULE", "Dashboard", "identity_from_claims"]

#: The module of the dashboard's system functions: `_system/dashboard:tables`, ...
SYSTEM_MODULE = "_system/dashboard"

#: System tables the data view shows (read-only); others (deployments, catalog) stay hidden.
SHOWN_SYSTEM_TABLES = (STORAGE_TABLE, "_scheduled_functions", "_cron_jobs")

_RANGE_OPS = frozenset({"eq", "gt", "gte", "lt", "lte"})
_FILTER_OPS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte"})
_SYSTEM_FIELDS = ("_id", "_creationTime")
#: The commit rate is over this window, from at most this many commit times.
_RATE_WINDOW_S = 10.0
_COMMITS_KEPT = 100_000
#: Meta keys of the nodes' reports: "node/<node id>".
_NODE_PREFIX = "node/"

log = logging.getLogger("reactive.dashboard")


class Dashboard(FunctionRunner):
    """The admin side of one Application: checks the admin key and runs functions for admins,
    the project's (internal ones included, as any identity) and the system functions."""

    allow_internal = True

    def __init__(self, app: Application) -> None:
        self.app = app
        #: Without REACTIVE_ADMIN_KEY, `reactive dev` admits admins with a key of its own,
        #: handed only to this machine's pages (http: `/_dashboard/api/key`).
        self.dev_key = secrets.token_urlsafe(32) if app.dev else None
        self.calls = app.calls
        self.executor = self._build()
        app.on_reload(self._rebuild)
        #: When this node learnt its recent commits (monotonic seconds), for the commit rate.
        self._commit_times: deque[float] = deque(maxlen=_COMMITS_KEPT)
        app.on_commit(lambda _commit: self._commit_times.append(time.monotonic()))
        #: Rows indexed so far by the backfills of deploys to this node, by "table.index".
        self.backfills: dict[str, int] = {}
        #: This node among the nodes sharing the database: its report's key and fixed fields.
        self.node_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._started_at_ms = time.time() * 1000
        self._sockets: Callable[[], int] = lambda: 0
        self._reporting: asyncio.Task[None] | None = None

    # -- who is an admin -------------------------------------------------------------------

    @property
    def admin_key(self) -> str | None:
        """The key admins present: REACTIVE_ADMIN_KEY, else (dev only) the dev key."""
        return os.environ.get("REACTIVE_ADMIN_KEY") or self.dev_key

    def admits(self, offered: object) -> bool:
        key = self.admin_key
        if key is None or not isinstance(offered, str):
            return False
        return hmac.compare_digest(offered.encode(), key.encode())

    # -- running functions for an admin ----------------------------------------------------

    def _build(self) -> Executor:
        functions = dict(self.app.project.registry.functions)
        functions.update(_system_functions(self))
        app = self.app
        return Executor(app.db, Registry(functions), dev=app.dev, storage=app.storage)

    def _rebuild(self) -> None:
        self.executor = self._build()

    async def run_any(
        self, path: object, args: object, identity: Identity | None = None
    ) -> tuple[str, Outcome, float]:
        """Run any function of the project (internal ones too) for the dashboard's Run
        button: its kind, outcome and duration in milliseconds."""
        try:
            _, fn = self.executor.registry.lookup(path, allow_internal=True)
            kind = fn.kind.value
        except Exception:
            kind = "function"
        started = time.perf_counter()
        outcome = await self._run(None, kind, path, args, identity)
        return kind, outcome, (time.perf_counter() - started) * 1000

    def _logged(
        self, kind: str, path: object, started: float, outcome: LoggedOutcome
    ) -> LoggedOutcome:
        """The system queries are not recorded (they re-run on every commit and would drown
        the call log); the dashboard's edits are."""
        if kind == "query" and _is_system_path(path):
            return outcome
        return super()._logged(kind, path, started, outcome)

    # -- what the system functions read beside the database ----------------------------------

    def functions(self) -> list[dict[str, Any]]:
        return [
            {
                "path": path,
                "kind": fn.kind.value,
                "internal": fn.internal,
                "args": None if fn.args is None else fn.args.to_json(),
                "returns": None if fn.returns is None else fn.returns.to_json(),
            }
            for path, fn in self.app.project.registry
        ]

    def backfill_progress(self, label: str, done: int, total: int) -> None:
        """A deploy's progress callback (`Database.apply_schema`): "backfill <table.index>"."""
        if label.startswith("backfill "):
            self.backfills[label.removeprefix("backfill ")] = done

    def node_stats(self) -> dict[str, Any]:
        """This node's commit rate (commits it learnt, any node's, over the last 10 s), live
        subscriptions and the rows its deploys' backfills indexed."""
        since, recent = time.monotonic() - _RATE_WINDOW_S, 0
        for at in reversed(self._commit_times):  # newest first: stop at the first too old
            if at < since:
                break
            recent += 1
        return {
            "commitsPerSecond": round(recent / _RATE_WINDOW_S, 2),
            "subscriptions": len(self.app.db.subscriptions),
            "backfilledRows": dict(self.backfills),
        }

    async def health(self) -> dict[str, Any]:
        """This node's health (`Application.health`), its commit rate, subscriptions and
        sockets. Raises DatabaseUnavailableError as `Application.health` does."""
        health = await self.app.health()
        return health | self.node_stats() | {"sockets": self._sockets()}

    # -- the nodes sharing the database ------------------------------------------------------

    def start_reporting(self, sockets: Callable[[], int]) -> None:
        """Write this node's state to the database every knobs.NODE_REPORT_INTERVAL_S (a
        serving node does, from its start to its shutdown), for every dashboard's `nodes`;
        `sockets` counts this node's open WebSockets."""
        self._sockets = sockets
        self._reporting = asyncio.create_task(self._report_forever(), name="reactive-node-report")

    async def stop_reporting(self) -> None:
        """Stop reporting and take this node off the list (a killed node's report ages out)."""
        task, self._reporting = self._reporting, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # A database that is away must not hold up the shutdown: the report then ages out.
        with contextlib.suppress(PersistenceError, TimeoutError):
            async with asyncio.timeout(knobs.HEALTH_DATABASE_TIMEOUT_S):
                await self.app.db.persistence.delete_meta(self._node_key)

    @property
    def _node_key(self) -> str:
        return _NODE_PREFIX + self.node_id

    async def report(self) -> dict[str, Any]:
        """Write this node's report now, and return it."""
        record = self._identity() | await self.health() | {"reportedAtMs": time.time() * 1000}
        await self.app.db.persistence.set_meta(self._node_key, orjson.dumps(record))
        return record

    def _identity(self) -> dict[str, Any]:
        return {
            "id": self.node_id,
            "url": self.app.storage.base_url,  # configured, else known from the first request
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "startedAtMs": self._started_at_ms,
        }

    async def _report_forever(self) -> None:
        while True:
            try:
                await self.report()
            except PersistenceError as exc:
                # The database is away: /health says so; the report resumes once it is back.
                log.debug("node report not written: %s", exc)
            except Exception:
                log.exception("node report failed; trying again in the next interval")
            await asyncio.sleep(knobs.NODE_REPORT_INTERVAL_S)

    async def nodes(self) -> list[dict[str, Any]]:
        """Every node that reported within knobs.NODE_FORGET_S, by id: its last report, how
        old that is (`reportAgeMs`), `state` "live" (reporting) or "silent" (missed three
        reports: killed, hung or cut off), and `self` for this node. Older reports are
        deleted. Ages are by this node's clock against the reporter's."""
        now_ms = time.time() * 1000
        live_ms = 3 * knobs.NODE_REPORT_INTERVAL_S * 1000
        found = []
        for key, raw in await self.app.db.persistence.meta_items(_NODE_PREFIX):
            record = _node_record(raw)
            age_ms = now_ms - record["reportedAtMs"] if record is not None else math.inf
            if record is None or age_ms > knobs.NODE_FORGET_S * 1000:
                await self.app.db.persistence.delete_meta(key)
                continue
            found.append(
                record
                | {
                    "reportAgeMs": round(max(age_ms, 0.0)),
                    "state": "live" if age_ms <= live_ms else "silent",
                    "self": key == self._node_key,
                }
            )
        return found

    def deployment(self) -> dict[str, Any]:
        deployment = self.app.deployment
        return {
            "dev": self.app.dev,
            # Numbers as JavaScript has them (float64), not int64.
            "version": None if deployment is None else float(deployment.version),
            "deployedAtMs": None if deployment is None else float(deployment.deployed_at_ms),
            "functions": float(len(self.app.project.registry.functions)),
        }


def identity_from_claims(claims: object) -> Identity | None:
    """The identity an admin acts as: None for no claims, else Convex attribute JSON (a
    `subject` and `issuer`, or a `tokenIdentifier`)."""
    if claims is None:
        return None
    if not isinstance(claims, dict):
        raise ValidationError("identity must be an object of claims, or null")
    return Identity.from_attributes(claims)


def _node_record(raw: bytes) -> dict[str, Any] | None:
    """A stored node report, or None for one that is not (never written by a node)."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("reportedAtMs"), (int, float)):
        return None
    return record


def _is_system_path(path: object) -> bool:
    try:
        return normalize_path(path).startswith(SYSTEM_MODULE + ":")
    except Exception:
        return False


# -- the system functions ----------------------------------------------------------------------


def _tx(ctx: QueryCtx | MutationCtx) -> Transaction:
    db = ctx.db
    assert isinstance(db, DatabaseReader)
    return db._tx  # the engine's own functions read below the author API


def _system_functions(dashboard: Dashboard) -> dict[str, AnyFunction]:
    def query(handler: Any, args: dict[str, Any] | None = None) -> AnyFunction:
        validator = None if args is None else v.object(args)
        return FunctionDef(FunctionKind.QUERY, handler, True, validator)

    def mutation(handler: Any, args: dict[str, Any]) -> AnyFunction:
        return FunctionDef(FunctionKind.MUTATION, handler, True, v.object(args))

    async def tables(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
        return _tables(_tx(ctx), dashboard)

    async def count(ctx: QueryCtx, args: dict[str, Any]) -> float:
        return await _count(_tx(ctx), args["table"])

    async def page(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
        return await _page(_tx(ctx), args)

    async def get(ctx: QueryCtx, args: dict[str, Any]) -> Value:
        doc_id = args["id"]
        return await _tx(ctx).get(doc_id) if isinstance(doc_id, str) else None

    async def insert(ctx: MutationCtx, args: dict[str, Any]) -> str:
        return await _tx(ctx).insert(args["table"], _user_fields(args["value"]))

    async def replace(ctx: MutationCtx, args: dict[str, Any]) -> None:
        await _tx(ctx).replace(args["id"], _user_fields(args["value"]))

    async def delete(ctx: MutationCtx, args: dict[str, Any]) -> None:
        for doc_id in args["ids"]:
            await _tx(ctx).delete(doc_id)

    async def cancel(ctx: MutationCtx, args: dict[str, Any]) -> None:
        """Cancel a scheduled function (or a cron's run) that has not finished, as
        `ctx.scheduler.cancel` does: a finished one is left as it is."""
        app = dashboard.app
        await transaction_scheduler(_tx(ctx), app.project.registry, app.db).cancel(args["id"])

    async def functions(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
        return dashboard.functions()

    async def schema(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
        schema = dashboard.app.project.schema
        return {
            "schema": None if schema is None else schema.to_json(),
            "deployment": dashboard.deployment(),
        }

    page_args = {
        "table": v.string(),
        "index": v.optional(v.string()),
        "order": v.optional(v.union(v.literal("asc"), v.literal("desc"))),
        "range": v.optional(v.array(v.array(v.any()))),
        "filter": v.optional(v.array(v.array(v.any()))),
        "paginationOpts": v.any(),
    }
    found = {
        "tables": query(tables, {}),
        "count": query(count, {"table": v.string()}),
        "page": query(page, page_args),
        "get": query(get, {"id": v.string()}),
        "functions": query(functions, {}),
        "schema": query(schema, {}),
        "insert": mutation(insert, {"table": v.string(), "value": v.any()}),
        "replace": mutation(replace, {"id": v.string(), "value": v.any()}),
        "delete": mutation(delete, {"ids": v.array(v.string())}),
        "cancel": mutation(cancel, {"id": v.string()}),
    }
    return {f"{SYSTEM_MODULE}:{name}": fn for name, fn in found.items()}


def _tables(tx: Transaction, dashboard: Dashboard) -> list[dict[str, Any]]:
    """Every user table (the schema's, and any that holds documents) and the shown system
    tables, with their indexes. Their counts are `count`'s: one live query per table, so a
    write re-counts only its own table."""
    schema = dashboard.app.project.schema
    names = set(tx.catalog.tables()) | set(schema.tables if schema is not None else ())
    shown = sorted(n for n in names if not n.startswith("_") or n in SHOWN_SYSTEM_TABLES)
    found = []
    for name in shown:
        indexes = [
            {"name": info.name, "fields": list(info.fields), "state": info.state.value}
            for info in tx.catalog.indexes(name)
        ]
        found.append({"name": name, "system": name.startswith("_"), "indexes": indexes})
    return found


async def _count(tx: Transaction, table: str) -> float:
    """The documents of `table`: one pass over its by_id index (no values read). Live: it
    records a read of the whole index, which every write to the table changes."""
    by_id = tx.catalog.index(table, "by_id")
    count = 0 if by_id is None else await tx.persistence.count_index(by_id.index_id, tx.begin_ts)
    tx.reads.record(index_ref(table, "by_id"), Interval.all())
    return float(count)


async def _page(tx: Transaction, args: dict[str, Any]) -> dict[str, Any]:
    """One page of `table` by `index` (default by_creation_time) in `order`, within `range`
    (index range steps [op, field, value]) and passing every `filter` [op, field, value]."""
    builder: QueryBuilder = tx.query(args["table"])
    steps = args.get("range") or []
    for step in steps:
        _check_step(step, _RANGE_OPS, "range")

    def index_range(q: IndexRangeBuilder) -> IndexRangeBuilder:
        for op, field, value in steps:
            q = getattr(q, op)(field, value)
        return q

    builder = builder.with_index(args.get("index") or "by_creation_time", index_range)
    builder = builder.order(args.get("order") or "desc")
    conditions = args.get("filter") or []
    for condition in conditions:
        _check_step(condition, _FILTER_OPS, "filter")
    if conditions:

        def predicate(q: FilterBuilder) -> Expr:
            exprs = [getattr(q, op)(q.field(field), value) for op, field, value in conditions]
            return exprs[0] if len(exprs) == 1 else q.and_(*exprs)

        builder = builder.filter(predicate)
    return await builder.paginate(args["paginationOpts"])


def _check_step(step: object, ops: frozenset[str], what: str) -> None:
    if not (isinstance(step, list) and len(step) == 3 and step[0] in ops):
        raise ValidationError(
            f"each {what} step is [op, field, value] with op one of {sorted(ops)}, got {step!r}"
        )
    if not isinstance(step[1], str):
        raise ValidationError(f"the field of a {what} step must be a string, got {step[1]!r}")


def _user_fields(value: object) -> dict[str, Any]:
    """A document's fields as the editor sent them, without the system fields."""
    if not isinstance(value, dict):
        raise ValidationError("a document must be an object")
    return {k: x for k, x in value.items() if k not in _SYSTEM_FIELDS}
