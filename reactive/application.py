"""THE API for transports: run queries, mutations and actions, authenticate, subscribe.

`sync` and `http` call only this class. It owns the project (schema + functions), the
executor and the authenticator, and shares query results between identical callers: a query
with the same path, args, identity and journal at the same snapshot runs once. It follows the
database's deployments, so that a deploy to any node switches every node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from starlette.requests import Request

from reactive import knobs
from reactive.auth import Authenticator, AuthProvider, Identity, providers_from_config
from reactive.call_log import CallLog
from reactive.committer import PublishedCommit
from reactive.database import Database
from reactive.deployments import (
    Deployment,
    bundle_project,
    fetch_bundle,
    newest_deployment,
    record_deployment,
    unpack_bundle,
)
from reactive.errors import DatabaseUnavailableError, PersistenceError, ValidationError
from reactive.executor import Executor, HttpOutcome, Outcome
from reactive.file_storage import FileStorage, open_blob_store, open_file_storage
from reactive.functions import (
    HttpRoute,
    HttpRouter,
    Project,
    count_functions_in_source,
    load_project,
)
from reactive.persistence.sqlite import sqlite_path
from reactive.reads import ReadToken
from reactive.scheduler import JobRunner, check_crons, reconcile_crons
from reactive.subscriptions import Subscription
from reactive.types import FunctionKind, Value
from reactive.values import decode_value, encode_value, right_sized

__all__ = ["Application", "DeployReport", "EncodedArgs", "FunctionRunner"]

#: What the call log records of a call: a query/action Outcome or an HTTP action's.
LoggedOutcome = TypeVar("LoggedOutcome", Outcome, HttpOutcome)

log = logging.getLogger("reactive.application")

_SHARED_RESULTS = 4096
#: How long before the retention horizon a snapshot stops being offered to query_at_ts.
_RETENTION_MARGIN_S = 5.0


@dataclass(slots=True)
class DeployReport:
    functions: int
    dry_run: bool
    added_indexes: list[str] = field(default_factory=list)
    dropped_indexes: list[str] = field(default_factory=list)
    backfilled_rows: int = 0
    validated_documents: int = 0
    #: The deployment's number, the same on every node (None for a dry run).
    version: int | None = None


@dataclass(frozen=True, slots=True)
class EncodedArgs:
    """A subscribed query's arguments kept encoded: `json`, their wire form as JSON, decoded
    only by a run that needs them (a re-run that joins the same query's run at its snapshot,
    as most of a commit's fan-out does, never decodes); `key`, their canonical encoding (keys
    sorted), the share key's part, made once rather than on every re-run. Bytes are also
    smaller than the parsed objects a socket would otherwise hold per query."""

    json: bytes
    key: bytes | None

    @classmethod
    def of(cls, args: dict[str, Value], wire: object) -> EncodedArgs:
        """`args` (decoded) as `wire` (their wire form) encodes them; both right-sized, as they
        are kept for the subscription's life (orjson's output sits in a 4 KiB buffer)."""
        json = right_sized(orjson.dumps(wire))
        key = _args_key(args)
        if key is not None:
            key = json if key == json else right_sized(key)
        return cls(json, key)

    def decoded(self) -> dict[str, Value]:
        args: dict[str, Value] = decode_value(orjson.loads(self.json))  # type: ignore[assignment]
        return args

    def size(self) -> int:
        """What holding them costs (bytes of their encodings)."""
        return len(self.json) + (
            len(self.key) if self.key is not None and self.key is not self.json else 0
        )


def _plain(args: object) -> object:
    return args.decoded() if type(args) is EncodedArgs else args


class FunctionRunner:
    """Runs the functions of a project and records every call in the call log: the
    Application for clients, the Dashboard for admins. Subclasses set `executor` and `calls`."""

    executor: Executor
    calls: CallLog
    #: Whether callers may name internal functions (only admins may).
    allow_internal = False

    async def run_query(
        self,
        path: object,
        args: object,
        identity: Identity | None = None,
        *,
        ts: int | None = None,
        journal: str | None = None,
    ) -> Outcome:
        """Run a query at `ts` (default latest); `args` may be EncodedArgs."""
        return await self._run(
            FunctionKind.QUERY, "query", path, _plain(args), identity, ts=ts, journal=journal
        )

    async def run_mutation(
        self,
        path: object,
        args: object,
        identity: Identity | None = None,
        *,
        session_id: str | None = None,
        request_id: int | None = None,
    ) -> Outcome:
        return await self._run(
            FunctionKind.MUTATION,
            "mutation",
            path,
            args,
            identity,
            session_id=session_id,
            request_id=request_id,
        )

    async def run_action(
        self, path: object, args: object, identity: Identity | None = None
    ) -> Outcome:
        return await self._run(FunctionKind.ACTION, "action", path, args, identity)

    async def _run(
        self,
        kind: FunctionKind | None,
        label: str,
        path: object,
        args: object,
        identity: Identity | None,
        **options: Any,
    ) -> Outcome:
        """Run the function at `path`, which must be of `kind` (None: any kind), and record
        the call in the call log as a call of `label`. `options` go to `Executor.run`."""
        started = time.perf_counter()
        outcome = await self.executor.run(
            kind, path, args, identity, allow_internal=self.allow_internal, **options
        )
        return self._logged(label, path, started, outcome)

    def _logged(
        self, kind: str, path: object, started: float, outcome: LoggedOutcome
    ) -> LoggedOutcome:
        """`outcome` recorded in the call log, with the time since `started` (perf_counter).

        A plain function, not a coroutine wrapping the call: one frame less per call."""
        error = None if outcome.error is None else outcome.error.message
        self.calls.record(kind, str(path), started, outcome.ok, error, outcome.log_lines)
        return outcome


class Application(FunctionRunner):
    def __init__(
        self,
        db: Database,
        project: Project,
        *,
        dev: bool = False,
        authenticator: Authenticator | None = None,
        storage: FileStorage,
        extra_auth_providers: Sequence[AuthProvider] = (),
    ) -> None:
        self.db = db
        self.project = project
        self.dev = dev
        self.storage = storage
        #: Providers trusted beside the project's auth_config (the dev identity provider).
        self.extra_auth_providers = tuple(extra_auth_providers)
        self.executor = Executor(db, project.registry, dev=dev, storage=storage)
        self.authenticator = authenticator or self._authenticator_for(project)
        #: Query runs at snapshot `_shared_ts`, shared by identical callers (bounded LRU).
        self._shared: OrderedDict[tuple[Any, ...], asyncio.Future[Outcome]] = OrderedDict()
        self._shared_ts = 0
        self._reload_listeners: list[Callable[[], None]] = []
        self.calls = CallLog()
        #: Where `reactive dev` reloads from: the project on disk, never a deployed copy.
        self.source_root = project.root
        #: The deployment served, once there is one (see `follow_deployments`).
        self.deployment: Deployment | None = None
        self._deploying = asyncio.Lock()
        self._deployments_watch: Subscription | None = None
        self._deployments_task: asyncio.Task[None] | None = None
        #: Runs scheduled functions and crons on this node (None: this process runs none).
        self.jobs: JobRunner | None = None

    @classmethod
    async def start(
        cls,
        root: str | Path,
        database_url: str | None = None,
        *,
        dev: bool = False,
        extra_auth_providers: Sequence[AuthProvider] = (),
        run_jobs: bool = True,
    ) -> Application:
        """Load the project at `root`, open its database and apply its schema.

        In production, a database that already has a deployment (`reactive deploy` to any
        node) is served with that deployment's code, so that every node serves the same; in
        dev the code on disk wins. Either way the node then follows later deployments.

        With `run_jobs` (servers; not one-off CLI commands) this process also runs scheduled
        functions and crons, sharing them with every other such process on the database."""
        source = load_project(root)
        db = await Database.open(database_url)
        try:
            deployment, _ = await newest_deployment(db)
            project = source
            if deployment is not None and not dev:
                project = load_project(await _unpacked(db, deployment, Path(root)))
            if project.schema is not None:
                await db.apply_schema(project.schema)
            storage = await _file_storage(db, Path(root), database_url)
        except BaseException:
            await db.close()
            raise
        app = cls(db, project, dev=dev, storage=storage, extra_auth_providers=extra_auth_providers)
        app.source_root = source.root
        app.deployment = deployment
        await app.follow_deployments()
        if run_jobs:
            await app.run_jobs()
        return app

    async def run_jobs(self) -> None:
        """Start running scheduled functions and crons here; reconcile the project's crons."""
        try:
            runner = JobRunner(self.db, lambda: self.executor, self.calls)
            await runner.start()
            self.jobs = runner
            await self._reconcile_crons(self.project)
        except BaseException:
            await self.close()
            raise

    async def _reconcile_crons(self, project: Project) -> None:
        if self.jobs is not None:
            await reconcile_crons(self.db, project.crons, project.registry)

    async def close(self) -> None:
        if self.jobs is not None:
            await self.jobs.stop()
            self.jobs = None
        if self._deployments_task is not None:
            self._deployments_task.cancel()
        if self._deployments_watch is not None:
            self.db.unsubscribe(self._deployments_watch)
        await self.authenticator.close()
        await self.storage.close()
        await self.db.close()

    # -- code changes ----------------------------------------------------------------------

    async def reload(self) -> Project:
        """Load the project again and switch to it; on any error the old code keeps serving.

        Raises what went wrong (a syntax error, an import error, a schema that existing data
        violates) after leaving everything as it was. Subscribed clients re-run their queries
        on the new code.
        """
        project = load_project(self.source_root)
        if project.schema is not None:
            await self.db.apply_schema(project.schema)
        await self._switch(project)
        log.info("reloaded %d functions", len(project.registry.functions))
        return project

    def unpack(self, bundle: bytes) -> Path:
        """Extract a deployment bundle next to the project's other deployments."""
        return unpack_bundle(bundle, _deploys_dir(self.source_root))

    async def deploy(
        self,
        root: Path,
        *,
        dry_run: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> DeployReport:
        """Switch to the project at `root`: load its functions, check existing data against its
        schema, add and backfill new indexes — and only then serve the new code; indexes the
        new schema dropped go last, once nothing uses them. Any failure leaves the running code
        and the database as they were (new indexes that were already backfilled stay; they are
        harmless).

        `dry_run` only reads the source (every file compiles; its functions are counted) and
        runs none of it: a dry run is how code not trusted yet is looked at. The schema is
        checked against the data by the deploy itself, before it switches."""
        if dry_run:
            return DeployReport(functions=count_functions_in_source(root), dry_run=True)
        async with self._deploying:
            project = load_project(root)
            report = DeployReport(functions=len(project.registry.functions), dry_run=False)
            if project.schema is not None:
                changes = await self.db.apply_schema(
                    project.schema, drop_removed=False, progress=progress
                )
                report.added_indexes = changes.added_indexes
                report.backfilled_rows = changes.backfilled_rows
                report.validated_documents = changes.validated_documents
            check_crons(self.db, project.crons, project.registry)
            # The other nodes switch when they see this row: the schema is in force by now.
            deployment = await record_deployment(
                self.db, bundle_project(root), len(project.registry.functions)
            )
            self.deployment, report.version = deployment, deployment.version
            await self._switch(project)
            if project.schema is not None:
                report.dropped_indexes = await self.db.drop_removed_indexes(project.schema)
        log.warning(
            "deployed %s as version %d: %d functions", root, deployment.version, report.functions
        )
        return report

    async def follow_deployments(self) -> None:
        """Switch to every deployment another node makes: watch the newest `_deployments` row
        as a subscription, and on each change serve the newest deployment if it is not ours."""
        newest, token = await newest_deployment(self.db)
        if self._deployments_watch is not None:
            self.db.unsubscribe(self._deployments_watch)
        self._deployments_watch = self.db.subscribe(token, self._deployments_changed)
        if newest is not None and (
            self.deployment is None or newest.version > self.deployment.version
        ):
            await self._adopt(newest)

    def _deployments_changed(self, _sub: Subscription, _ts: int) -> None:
        if self._deployments_task is None or self._deployments_task.done():
            self._deployments_task = asyncio.create_task(
                self._follow_safely(), name="reactive-deployments"
            )

    async def _follow_safely(self) -> None:
        try:
            await self.follow_deployments()
        except Exception:
            log.exception("could not switch to the newest deployment; serving the current code")

    async def _adopt(self, deployment: Deployment) -> None:
        """Serve a deployment another node made (its schema is already in force)."""
        async with self._deploying:
            if self.deployment is not None and deployment.version <= self.deployment.version:
                return
            project = load_project(await _unpacked(self.db, deployment, self.source_root))
            if project.schema is not None:
                await self.db.adopt_schema(project.schema)
            self.deployment = deployment
            await self._switch(project)
        log.warning(
            "switched to deployment %d (%d functions)", deployment.version, deployment.functions
        )

    async def _switch(self, project: Project) -> None:
        """Serve `project` from now on; subscribed clients re-run their queries on it."""
        await self._reconcile_crons(project)  # refuses crons naming unknown functions
        authenticator = self._authenticator_for(project)
        old_authenticator = self.authenticator
        self.project, self.authenticator = project, authenticator
        self.executor = Executor(self.db, project.registry, dev=self.dev, storage=self.storage)
        self._shared.clear()
        await old_authenticator.close()
        for listener in list(self._reload_listeners):
            listener()

    def _authenticator_for(self, project: Project) -> Authenticator:
        providers = providers_from_config(project.auth_providers)
        return Authenticator([*providers, *self.extra_auth_providers])

    def on_reload(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after the code was reloaded; returns a function that unregisters."""
        self._reload_listeners.append(listener)
        return lambda: self._reload_listeners.remove(listener)

    # -- calls -----------------------------------------------------------------------------

    async def run_query(
        self,
        path: object,
        args: object,
        identity: Identity | None = None,
        *,
        ts: int | None = None,
        journal: str | None = None,
    ) -> Outcome:
        """Run a public query at `ts` (default latest); identical concurrent calls share one run.
        `args` may be EncodedArgs (a subscribed query's), decoded only if this call runs it.

        The first caller runs the query in its own task (no hand-off to another task, so the
        first result goes out without waiting behind every other client woken by the same
        commit); the others await its result.
        """
        ts = self.db.latest_ts if ts is None else ts
        key = _share_key(path, args, identity, ts, journal)
        while key is not None and ts >= self._shared_ts:
            if ts > self._shared_ts:
                # Clients re-run at the newest snapshot: results of older ones are not wanted again.
                self._shared.clear()
                self._shared_ts = ts
            shared = self._shared.get(key)
            if shared is None:
                return await self._lead(key, path, args, identity, ts, journal)
            try:
                return await asyncio.shield(shared)
            except _LeaderGone:
                continue  # the leader's caller went away mid-run: run it again
        return await self._run(
            FunctionKind.QUERY, "query", path, _plain(args), identity, ts=ts, journal=journal
        )

    async def run_query_at(
        self, path: object, args: object, identity: Identity | None, ts: int
    ) -> Outcome:
        """A public query at a snapshot the client chose (`/api/query_at_ts`).

        Raises ValidationError("TimestampTooOld") for a ts older than the history the
        database still keeps: pruning may have dropped versions visible then, and a query
        there would silently miss documents.
        """
        oldest = self.oldest_readable_ts()
        if ts < oldest:
            raise ValidationError(
                f"ts {ts} is older than the history this server keeps (its oldest readable ts "
                f"is {oldest}; versions are kept REACTIVE_RETENTION_S = {knobs.RETENTION_S:g} "
                "s): take a fresh ts from /api/query_ts",
                short_msg="TimestampTooOld",
            )
        return await self.run_query(path, args, identity, ts=ts)

    def oldest_readable_ts(self) -> int:
        """The oldest snapshot still whole: Database.prune never drops a version visible at
        min(now - knobs.RETENTION_S, latest commit). A margin keeps a ts accepted here from
        being pruned before its query begins (a running query holds its snapshot itself)."""
        margin = min(_RETENTION_MARGIN_S, knobs.RETENTION_S / 2)
        kept_since = time.time_ns() - int((knobs.RETENTION_S - margin) * 1e9)
        return min(kept_since, self.db.latest_ts)

    async def _lead(
        self,
        key: tuple[Any, ...],
        path: object,
        args: object,
        identity: Identity | None,
        ts: int,
        journal: str | None,
    ) -> Outcome:
        shared: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        # Kept while the run is cached: right-sized (see values.right_sized); a lookup with
        # the caller's key finds it all the same.
        self._shared[tuple(right_sized(k) if type(k) is bytes else k for k in key)] = shared
        while len(self._shared) > _SHARED_RESULTS:
            self._shared.popitem(last=False)
        try:
            outcome = await self._run(
                FunctionKind.QUERY, "query", path, _plain(args), identity, ts=ts, journal=journal
            )
        except BaseException as exc:
            if self._shared.get(key) is shared:
                del self._shared[key]
            gone = isinstance(exc, asyncio.CancelledError)
            shared.set_exception(_LeaderGone() if gone else exc)
            shared.exception()  # retrieved: nobody may be waiting
            raise
        shared.set_result(outcome)
        return outcome

    async def run_any(
        self, path: object, args: object, identity: Identity | None = None
    ) -> Outcome:
        """Run a public function of whatever kind it is (`/api/function`, `/api/run`)."""
        return await self._run(None, "function", path, args, identity)

    async def run_http_action(
        self, route: HttpRoute, request: Request, identity: Identity | None
    ) -> HttpOutcome:
        """Run the HTTP action that `route` (looked up in `http_router`) names."""
        started = time.perf_counter()
        outcome = await self.executor.run_http_action(route.action, request, identity)
        return self._logged("http", f"{request.method} {request.url.path}", started, outcome)

    @property
    def http_router(self) -> HttpRouter | None:
        """The project's HTTP routes (`functions/http.py`), if it has any."""
        return self.project.http

    # -- auth ------------------------------------------------------------------------------

    async def authenticate(self, token: str) -> Identity:
        """Verify a JWT; raises reactive.auth.AuthError when it is not acceptable."""
        return await self.authenticator.verify(token)

    # -- reactivity ------------------------------------------------------------------------

    @property
    def latest_ts(self) -> int:
        return self.db.latest_ts

    def subscribe(
        self,
        token: ReadToken,
        on_invalidate: Callable[[Subscription, int], None],
        owner: object = None,
    ) -> Subscription:
        """Watch what a query read; `on_invalidate(sub, ts)` once a commit changes it
        (`sub.owner` is `owner`)."""
        return self.db.subscribe(token, on_invalidate, owner)

    def unsubscribe(self, sub: Subscription) -> None:
        self.db.unsubscribe(sub)

    def on_commit(self, listener: Callable[[PublishedCommit], None]) -> Callable[[], None]:
        return self.db.add_commit_listener(listener)

    # -- health ----------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """This node's health for load balancers: the ts it serves (`latest_ts`), the
        database's newest commit (`database_ts`, by any node) and how far the first trails the
        second in commit time (`lag_ms`). Raises DatabaseUnavailableError when the database
        does not answer within knobs.HEALTH_DATABASE_TIMEOUT_S."""
        try:
            database_ts = await asyncio.wait_for(
                self.db.database_ts(), knobs.HEALTH_DATABASE_TIMEOUT_S
            )
        except (PersistenceError, TimeoutError) as exc:
            log.warning("health check: the database does not answer: %s", exc or "timeout")
            raise DatabaseUnavailableError(
                "Database unavailable: this node cannot read the database; "
                "it answers again once the database is back"
            ) from exc
        # Read after the database: a commit published meanwhile is not counted as lag.
        latest = self.db.latest_ts
        lag_ns = max(0, database_ts - latest)
        return {
            "status": "ok",
            "ts": str(latest),  # ns timestamps exceed JSON's exact integers: strings
            "latest_ts": str(latest),
            "database_ts": str(database_ts),
            "lag_ms": round(lag_ns / 1e6, 3),
        }


async def _file_storage(db: Database, root: Path, database_url: str | None) -> FileStorage:
    """File storage with its bytes where `open_blob_store` says (an S3 bucket, a directory, or
    the database); the directory of a SQLite database is `storage/` beside its file."""
    blobs = await open_blob_store(db.persistence, _default_storage_dir(root, database_url))
    try:
        return await open_file_storage(db, blobs)
    except BaseException:
        await blobs.close()
        raise


def _deploys_dir(root: Path) -> Path:
    return Path(os.environ.get("REACTIVE_DEPLOY_DIR") or root / ".reactive" / "deploys")


async def _unpacked(db: Database, deployment: Deployment, root: Path) -> Path:
    """A deployment's code, fetched from the database into this node's deploys directory."""
    return unpack_bundle(await fetch_bundle(db, deployment), _deploys_dir(root))


def _default_storage_dir(root: Path, database_url: str | None) -> Path:
    if database_url and database_url.startswith("sqlite:///"):
        return sqlite_path(database_url).parent / "storage"
    return root / ".reactive" / "storage"


class _LeaderGone(Exception):
    """The caller running a shared query was cancelled; its followers run it themselves."""


def _share_key(
    path: object, args: object, identity: Any, ts: int, journal: str | None
) -> tuple[Any, ...] | None:
    """Key of a query run that may be shared; None when args are not plain values."""
    args_bytes = args.key if type(args) is EncodedArgs else _args_key(args)
    if args_bytes is None:
        return None
    try:
        who = b"" if identity is None else orjson.dumps(dict(identity), option=orjson.OPT_SORT_KEYS)
    except Exception:  # an identity that does not encode: run unshared
        return None
    return (str(path), args_bytes, who, ts, journal)


def _args_key(args: object) -> bytes | None:
    """Args' canonical encoding (keys sorted); None when they are not plain values."""
    try:
        return orjson.dumps(encode_value(args), option=orjson.OPT_SORT_KEYS)  # type: ignore[arg-type]
    except Exception:  # invalid args: run unshared, the executor reports it
        return None
