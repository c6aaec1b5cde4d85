"""Scheduled functions and cron jobs: `ctx.scheduler`, the `_scheduled_functions` and
`_cron_jobs` system tables, and the runner every serving node starts.

Every guarantee comes from the commit protocol, not from this process:
- a job scheduled by a mutation is a row inserted by that mutation's transaction, so it exists
  exactly when the mutation committed;
- a scheduled mutation commits its writes and its row's `success` in one transaction that first
  reads the row: two runs (two nodes, a retry) conflict, and the re-run sees the job done;
- a scheduled action is claimed (pending -> inProgress) in a transaction first, so one node
  runs it, at most once; a node that dies mid-action leaves it `inProgress`, and the node that
  finds the dead node's lock free ends it `failed`;
- a cron fires by inserting its job and advancing its next time in one transaction, so one node
  fires each slot, and slots missed while no node ran are fired once.

Each node holds a node slot (a cluster-wide lock, `Persistence.exclusive`) for its life: the
slots held tell the nodes how to share due jobs, and a slot freed tells them its node died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reactive import knobs
from reactive.call_log import CallLog
from reactive.context import Scheduler
from reactive.crons import CronJob, CronJobs, next_run
from reactive.database import Database
from reactive.errors import LimitError, NotFoundError, ValidationError
from reactive.functions import Registry
from reactive.subscriptions import Subscription
from reactive.transaction import Transaction
from reactive.types import Document, FunctionKind, Value
from reactive.validators import validate_args
from reactive.values import check_value, value_size

if TYPE_CHECKING:
    from reactive.executor import Executor

__all__ = [
    "CRON_TABLE",
    "SCHEDULED_TABLE",
    "JobRunner",
    "action_scheduler",
    "check_crons",
    "ensure_scheduler_tables",
    "reconcile_crons",
    "transaction_scheduler",
]

log = logging.getLogger("reactive.scheduler")

SCHEDULED_TABLE = "_scheduled_functions"
CRON_TABLE = "_cron_jobs"
#: The runner's index of jobs by state, then due time: the next due job is its first entry.
BY_STATE = "by_state"
_BY_STATE_FIELDS = ("state.kind", "scheduledTime")
#: Our fields of `_scheduled_functions` (Convex's rows have neither): the node running an
#: action ("<slot>:<incarnation>"), and the cron that made a job.
NODE_FIELD = "reactiveNode"
CRON_FIELD = "reactiveCron"

_FINISHED = ("success", "failed", "canceled")
_TRANSIENT = (
    "Transient error while executing action: the server running it stopped before it "
    "finished. Actions run at most once, so it was not re-run"
)


def _now_ms() -> float:
    return time.time() * 1000


async def ensure_scheduler_tables(db: Database) -> None:
    """The scheduler's system tables and the index of jobs by state and due time."""
    await db.ensure_system_index(SCHEDULED_TABLE, BY_STATE, _BY_STATE_FIELDS)
    await db.catalog.ensure_table(CRON_TABLE, allow_system=True)


# -- scheduling: ctx.scheduler ----------------------------------------------------------------


class _Budget:
    """What one function has scheduled so far, against Convex's per-function limits."""

    __slots__ = ("bytes", "count")

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    def spend(self, args: dict[str, Value]) -> None:
        size = value_size(args)
        if self.count + 1 > knobs.MAX_SCHEDULED_PER_FUNCTION:
            raise LimitError(
                f"Too many functions scheduled by one function: at most "
                f"{knobs.MAX_SCHEDULED_PER_FUNCTION}. Schedule one function that schedules "
                "the rest in batches",
                short_msg="TooManyFunctionsScheduled",
            )
        if self.bytes + size > knobs.MAX_SCHEDULED_ARGS_BYTES:
            raise LimitError(
                f"The arguments of the functions scheduled by one function total more than "
                f"{knobs.MAX_SCHEDULED_ARGS_BYTES} bytes. Pass ids of stored documents "
                "instead of large values",
                short_msg="ScheduledArgumentsTooLarge",
            )
        self.count += 1
        self.bytes += size


def _check_target(registry: Registry, db: Database, path: str, args: object) -> str:
    """The canonical path of the mutation or action at `path`, once `args` validate against
    it; a clear error otherwise (nothing is scheduled)."""
    name, fn = registry.lookup(path, allow_internal=True)
    if fn.kind not in (FunctionKind.MUTATION, FunctionKind.ACTION):
        raise ValidationError(
            f"Cannot schedule '{name}': it is a {fn.kind.value}; only mutations and actions "
            "can be scheduled",
            short_msg="InvalidScheduledFunction",
        )
    if not isinstance(args, dict):
        raise ValidationError(
            f"Scheduling '{name}': args must be an object (dict), got {args!r}",
            short_msg="ArgumentValidationError",
        )
    try:
        check_value(args, "args")
        validate_args(fn.args, args, db.catalog)
    except ValidationError as exc:
        raise ValidationError(
            f"{exc.msg} (scheduling '{name}')", short_msg="ArgumentValidationError"
        ) from None
    return name


async def _insert_job(
    tx: Transaction, path: str, when_ms: float, args: dict[str, Value], cron: str | None = None
) -> str:
    row: dict[str, Value] = {
        "name": path,
        "args": [args],
        "scheduledTime": float(when_ms),
        "state": {"kind": "pending"},
    }
    if cron is not None:
        row[CRON_FIELD] = cron
    return await tx.insert(SCHEDULED_TABLE, row, system=True)


async def _cancel_job(tx: Transaction, job_id: object) -> None:
    """Mark a job that has not finished `canceled`; a finished or unknown one is left alone."""
    if not isinstance(job_id, str) or tx.normalize_id(SCHEDULED_TABLE, job_id) is None:
        if not isinstance(job_id, str) or tx.catalog.table_number(SCHEDULED_TABLE) is not None:
            raise ValidationError(
                f"cancel: {job_id!r} is not an id of {SCHEDULED_TABLE}",
                short_msg="InvalidScheduledFunctionId",
            )
        return  # no job was ever scheduled here: nothing to cancel
    row = await tx.get(job_id)
    if row is None or _state(row) not in ("pending", "inProgress"):
        return
    # An action already running goes on (as in Convex); its end leaves `canceled` in place.
    done: dict[str, Value] = {"state": {"kind": "canceled"}, "completedTime": _now_ms()}
    await tx.patch(job_id, done, system=True)


def transaction_scheduler(tx: Transaction, registry: Registry, db: Database) -> Scheduler:
    """`ctx.scheduler` of a mutation: its jobs are rows written by its own transaction."""
    budget = _Budget()

    async def schedule(path: str, when_ms: float, args: dict[str, Value]) -> str:
        name = _check_target(registry, db, path, args)
        budget.spend(args)
        return await _insert_job(tx, name, when_ms, args)

    async def cancel(job_id: str) -> None:
        await _cancel_job(tx, job_id)

    return Scheduler(schedule, cancel)


def action_scheduler(registry: Registry, db: Database) -> Scheduler:
    """`ctx.scheduler` of an action: each job is recorded by a transaction of its own."""
    budget = _Budget()

    async def schedule(path: str, when_ms: float, args: dict[str, Value]) -> str:
        name = _check_target(registry, db, path, args)
        budget.spend(args)

        async def insert(tx: Transaction) -> str:
            return await _insert_job(tx, name, when_ms, args)

        return (await db.run_mutation(insert)).value

    async def cancel(job_id: str) -> None:
        async def run(tx: Transaction) -> None:
            await _cancel_job(tx, job_id)

        await db.run_mutation(run)

    return Scheduler(schedule, cancel)


def _state(row: Document | None) -> str | None:
    state = None if row is None else row.get("state")
    kind = state.get("kind") if isinstance(state, dict) else None
    return kind if isinstance(kind, str) else None


# -- crons: reconciling the declared set ------------------------------------------------------


def check_crons(db: Database, crons: CronJobs | None, registry: Registry) -> None:
    """Refuse crons that name no mutation or action of `registry`, or args it refuses."""
    for job in [] if crons is None else crons.jobs.values():
        try:
            _check_target(registry, db, job.path, job.args)
        except (NotFoundError, ValidationError) as exc:
            message = f"cron {job.name!r}: {exc.msg}"
            raise ValidationError(message, short_msg="InvalidCron") from None


async def reconcile_crons(db: Database, crons: CronJobs | None, registry: Registry) -> None:
    """Make `_cron_jobs` hold exactly the declared crons: add new ones, reschedule changed
    ones, remove the others. One transaction: nodes reconciling at once conflict and agree."""
    declared = {} if crons is None else dict(crons.jobs)
    check_crons(db, crons, registry)

    async def reconcile(tx: Transaction) -> None:
        now = _now_ms()
        existing = {str(r["name"]): r for r in await tx.query(CRON_TABLE).collect()}
        for name, old in existing.items():
            if name not in declared:
                await tx.delete(str(old["_id"]), system=True)
        for name, job in declared.items():
            wanted = _cron_row(job)
            row = existing.get(name)
            if row is not None and all(row.get(k) == v for k, v in wanted.items()):
                continue
            wanted["nextRun"] = next_run(job.schedule, None, now)
            if row is None:
                await tx.insert(CRON_TABLE, wanted, system=True)
            else:
                await tx.replace(str(row["_id"]), wanted, system=True)

    await db.run_mutation(reconcile)


def _cron_row(job: CronJob) -> dict[str, Value]:
    return {"name": job.name, "schedule": job.schedule, "function": job.path, "args": [job.args]}


# -- the runner -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    """This node: the slot it holds and this incarnation of it."""

    slot: int
    token: str

    @property
    def tag(self) -> str:
        return f"{self.slot}:{self.token}"


def _slot_lock(slot: int) -> str:
    return f"scheduler-node-{slot}"


class JobRunner:
    """Runs due jobs and fires due crons on this node, sharing the work with the other nodes
    on the same database; started by `Application.start`, stopped by `close`."""

    def __init__(
        self,
        db: Database,
        executor: Callable[[], Executor],
        calls: CallLog,
    ) -> None:
        self.db = db
        self._executor = executor
        self._calls = calls
        self._node: _Node | None = None
        self._slot_held = contextlib.AsyncExitStack()
        #: Slots of the nodes alive at the last look (this one's included).
        self._peers: list[int] = []
        self._wake = asyncio.Event()
        self._watches: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()
        #: Jobs due within the look-ahead window, each started by a timer at its due time.
        self._timed: dict[str, asyncio.TimerHandle] = {}
        self._slots = asyncio.Semaphore(knobs.SCHEDULER_CONCURRENCY)
        #: Jobs this node finished: id -> ts of the commit that finished it (until a read sees
        #: it, the job still looks pending).
        self._finished: dict[str, int] = {}
        #: Jobs whose last run hit an error of the server (database unreachable): not before.
        self._not_before: dict[str, float] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._nodes_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await ensure_scheduler_tables(self.db)
        self._node = await self._take_slot()
        await self._check_nodes()
        self._loop_task = asyncio.create_task(self._loop(), name="reactive-scheduler")
        self._nodes_task = asyncio.create_task(self._watch_nodes(), name="reactive-nodes")

    async def stop(self) -> None:
        """Stop running jobs. A mutation job cut short commits nothing (it stays pending for
        the next node); an action cut short ends `failed` once another node, or this one's next
        start, sees this node gone."""
        for timer in self._timed.values():
            timer.cancel()
        for task in (self._loop_task, self._nodes_task, *self._tasks):
            if task is not None:
                task.cancel()
        for task in (self._loop_task, self._nodes_task, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for sub in self._watches:
            self.db.unsubscribe(sub)
        self._watches = []
        await self._slot_held.aclose()

    # -- nodes -----------------------------------------------------------------------------

    async def _take_slot(self) -> _Node:
        """Hold the lowest free node slot for this node's life."""
        for slot in range(knobs.SCHEDULER_MAX_NODES):
            held = await self._slot_held.enter_async_context(
                self.db.persistence.exclusive(_slot_lock(slot), wait=False)
            )
            if held:
                return _Node(slot, secrets.token_hex(6))
            await self._slot_held.aclose()
            self._slot_held = contextlib.AsyncExitStack()
        raise RuntimeError(
            f"all {knobs.SCHEDULER_MAX_NODES} scheduler node slots are taken: raise "
            "REACTIVE_SCHEDULER_MAX_NODES"
        )

    async def _watch_nodes(self) -> None:
        while True:
            await asyncio.sleep(knobs.SCHEDULER_NODES_CHECK_S)
            try:
                await self._check_nodes()
            except Exception:
                log.exception("scheduler: looking for other nodes failed")

    async def _check_nodes(self) -> None:
        """Learn which nodes are alive, and end the actions of dead ones `failed`."""
        assert self._node is not None
        in_progress = await self._in_progress()
        seen = [_slot_of(row) for row in in_progress]
        highest = max([self._node.slot, *self._peers, *(s for s in seen if s is not None)])
        alive = [
            slot
            for slot in range(min(highest + 4, knobs.SCHEDULER_MAX_NODES))
            if slot == self._node.slot or await self._slot_taken(slot)
        ]
        self._peers = alive
        for row in in_progress:
            if self._orphaned(row, alive):
                await self._end_orphan(str(row["_id"]), str(row.get(NODE_FIELD)))
        await self.delete_finished()

    async def delete_finished(self, now_ms: float | None = None) -> int:
        """Delete jobs that finished and were due more than knobs.SCHEDULED_RETENTION_S ago
        (Convex keeps them 7 days), a batch at a time; how many were deleted."""
        cutoff = (_now_ms() if now_ms is None else now_ms) - knobs.SCHEDULED_RETENTION_S * 1000

        async def delete(tx: Transaction) -> int:
            deleted = 0
            for kind in _FINISHED:
                old = await _finished_before(tx, kind, cutoff)
                for row in old:
                    await tx.delete(str(row["_id"]), system=True)
                deleted += len(old)
            return deleted

        return (await self.db.run_mutation(delete)).value

    async def _slot_taken(self, slot: int) -> bool:
        async with self.db.persistence.exclusive(_slot_lock(slot), wait=False) as held:
            return not held

    async def _in_progress(self) -> list[Document]:
        async def read(tx: Transaction) -> list[Document]:
            query = tx.query(SCHEDULED_TABLE).with_index(
                BY_STATE, lambda q: q.eq("state.kind", "inProgress")
            )
            return await query.take(knobs.SCHEDULER_BATCH)

        return (await self.db.run_query(read)).value

    def _orphaned(self, row: Document, alive: list[int]) -> bool:
        assert self._node is not None
        tag = row.get(NODE_FIELD)
        slot = _slot_of(row)
        if slot is None:
            return True
        if slot == self._node.slot:
            return tag != self._node.tag  # this slot's previous holder died
        return slot not in alive

    async def _end_orphan(self, job_id: str, tag: str) -> None:
        ended = await self._transition(
            job_id, "inProgress", {"kind": "failed", "error": _TRANSIENT}, node=tag
        )
        if ended:
            log.warning("scheduled action %s ended failed: its node %s is gone", job_id, tag)

    def _mine(self, job_id: str) -> bool:
        """Whether this node's share of the ids holds `job_id` (with one node: every job)."""
        assert self._node is not None
        peers = self._peers or [self._node.slot]
        return peers[zlib.crc32(job_id.encode()) % len(peers)] == self._node.slot

    # -- the loop --------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            began = time.monotonic()
            try:
                wake_at = await self._pass()
            except Exception:
                log.exception("scheduler: reading due jobs failed; retrying in a second")
                wake_at = _now_ms() + 1000
            await self._sleep_until(wake_at)
            # Wake-ups in a burst (every finished job is one) share the next pass.
            rest = knobs.SCHEDULER_MIN_PASS_INTERVAL_S - (time.monotonic() - began)
            if rest > 0:
                await asyncio.sleep(rest)

    async def _sleep_until(self, wake_at: float | None) -> None:
        """Until `wake_at` (unix ms; None: no end), or until something wakes the loop."""
        timer = None
        if wake_at is not None:
            delay = max(0.0, (wake_at - _now_ms()) / 1000)
            timer = asyncio.get_running_loop().call_later(delay, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            if timer is not None:
                timer.cancel()

    async def _pass(self) -> float | None:
        """Start the due jobs, set timers for those due within the look-ahead window, fire the
        due crons; returns when to look again (unix ms; None: when something changes)."""
        now = _now_ms()
        horizon = now + knobs.SCHEDULER_LOOKAHEAD_S * 1000
        jobs, crons, ts = await self._read_due(horizon)
        self._finished = {k: v for k, v in self._finished.items() if v > ts}
        wake_at: list[float] = []
        for row in jobs:
            job_id = str(row["_id"])
            if job_id in self._running or job_id in self._finished or job_id in self._timed:
                continue
            grace = 0.0 if self._mine(job_id) else knobs.SCHEDULER_PEER_GRACE_S * 1000
            due = max(float(row["scheduledTime"]) + grace, self._not_before.get(job_id, 0.0))
            if due <= now:
                self._start(row)
            elif due <= horizon:
                self._start_at(row, due)
            else:
                wake_at.append(due - knobs.SCHEDULER_LOOKAHEAD_S * 1000)
        for cron in crons:
            due = float(cron["nextRun"])
            if due <= now:
                await self._fire(str(cron["_id"]))
            else:
                wake_at.append(due)
        return min(wake_at, default=None)

    async def _read_due(self, horizon: float) -> tuple[list[Document], list[Document], int]:
        """The pending jobs due by `horizon` (a batch of them), the next one due after it, and
        every cron, watched: a change to any of them wakes the loop. Only what is (nearly) due
        is read, so a pass costs what it runs, not what is scheduled."""

        def pending(q: Any) -> Any:
            return q.eq("state.kind", "pending")

        async def read(tx: Transaction) -> tuple[list[Document], list[Document]]:
            due = await (
                tx.query(SCHEDULED_TABLE)
                .with_index(BY_STATE, lambda q: pending(q).lte("scheduledTime", horizon))
                .take(knobs.SCHEDULER_BATCH)
            )
            upcoming = await (
                tx.query(SCHEDULED_TABLE)
                .with_index(BY_STATE, lambda q: pending(q).gt("scheduledTime", horizon))
                .first()
            )
            crons = await tx.query(CRON_TABLE).take(knobs.SCHEDULER_BATCH)
            return due + ([] if upcoming is None else [upcoming]), crons

        result = await self.db.run_query(read)
        for sub in self._watches:
            self.db.unsubscribe(sub)
        self._watches = [self.db.subscribe(result.token, lambda _s, _ts: self._wake.set())]
        jobs, crons = result.value
        random.shuffle(jobs)  # nodes sharing a job spread their runs of it apart
        return jobs, crons, result.ts

    def _start_at(self, row: Document, due: float) -> None:
        """Start `row`'s job at `due` (unix ms) by a timer: no pass of the loop in between."""
        job_id = str(row["_id"])

        def start() -> None:
            if self._timed.pop(job_id, None) is not None and job_id not in self._running:
                self._start(row)

        delay = max(0.0, (due - _now_ms()) / 1000)
        self._timed[job_id] = asyncio.get_running_loop().call_later(delay, start)

    def _start(self, row: Document) -> None:
        job_id = str(row["_id"])
        self._running.add(job_id)
        task = asyncio.create_task(self._run_job(row), name=f"reactive-job-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_job(self, row: Document) -> None:
        job_id = str(row["_id"])
        try:
            async with self._slots:
                done_ts = await self._run(row)
            if done_ts is not None:
                self._finished[job_id] = done_ts
            self._not_before.pop(job_id, None)
        except Exception:
            log.exception("scheduler: running job %s failed; retrying it in a second", job_id)
            self._not_before[job_id] = _now_ms() + 1000
        finally:
            self._running.discard(job_id)
            self._wake.set()

    async def _run(self, row: Document) -> int | None:
        """Run one due job; the ts of the commit that finished it (None: it was not ours)."""
        job = _Job.of(row)
        executor = self._executor()
        try:
            _, fn = executor.registry.lookup(job.path, allow_internal=True)
        except NotFoundError as exc:
            return await self._fail(job, exc.msg)
        if fn.kind is FunctionKind.MUTATION:
            return await self._run_mutation(executor, job)
        if fn.kind is FunctionKind.ACTION:
            return await self._run_action(executor, job)
        return await self._fail(job, f"'{job.path}' is a {fn.kind.value}, not a mutation or action")

    async def _run_mutation(self, executor: Executor, job: _Job) -> int | None:
        """One transaction: read the job, run the mutation, mark the job `success`. If the job
        is no longer pending (another node ran it, it was canceled) the run does nothing."""
        ran = False

        async def around(tx: Transaction, handler: Callable[[], Awaitable[Value]]) -> Value:
            nonlocal ran
            ran = False  # a re-run after a conflict starts over
            if _state(await tx.get(job.id)) != "pending":
                return None
            ran = True
            value = await handler()
            done: dict[str, Value] = {"state": {"kind": "success"}, "completedTime": _now_ms()}
            await tx.patch(job.id, done, system=True)
            return value

        outcome = await executor.run(
            FunctionKind.MUTATION, job.path, job.args, None, allow_internal=True, around=around
        )
        if outcome.error is not None:
            if outcome.error.condition is not None:
                raise outcome.error.condition  # the server's trouble, not the job's: retry
            ts = await self._fail(job, outcome.error.message)
            if ts is not None:
                self._log(job, False, outcome.error.message, outcome.log_lines)
            return ts
        if not ran:
            return None
        self._log(job, True, None, outcome.log_lines)
        return outcome.ts

    async def _run_action(self, executor: Executor, job: _Job) -> int | None:
        """Claim the job (pending -> inProgress: one node wins), run it once, record how it
        ended. It is never run again, whatever happens to this node meanwhile."""
        assert self._node is not None
        tag = self._node.tag
        if await self._transition(job.id, "pending", {"kind": "inProgress"}, claim=tag) is None:
            return None
        outcome = await executor.run(
            FunctionKind.ACTION, job.path, job.args, None, allow_internal=True
        )
        error = None if outcome.error is None else outcome.error.message
        state: dict[str, Value] = {"kind": "success"}
        if error is not None:
            state = {"kind": "failed", "error": _cut(error)}
        ts = await self._persist(lambda: self._transition(job.id, "inProgress", state, node=tag))
        self._log(job, error is None, error, outcome.log_lines)
        return ts

    async def _persist(self, write: Callable[[], Awaitable[int | None]]) -> int | None:
        """Write an action's end, retrying while the database is out of reach: a job left
        `inProgress` by a live node would stay so."""
        delay = 0.1
        for _ in range(20):
            try:
                return await write()
            except Exception:
                log.warning("scheduler: recording an action's end failed; retrying", exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        return await write()

    async def _fail(self, job: _Job, error: str) -> int | None:
        return await self._transition(job.id, "pending", {"kind": "failed", "error": _cut(error)})

    async def _transition(
        self,
        job_id: str,
        before: str,
        state: dict[str, Value],
        *,
        node: str | None = None,
        claim: str | None = None,
    ) -> int | None:
        """Move a job from state `before` (and, with `node`, run by that node) to `state`;
        the commit's ts, or None if the job was not in that state."""

        async def change(tx: Transaction) -> bool:
            row = await tx.get(job_id)
            if _state(row) != before or (node is not None and row.get(NODE_FIELD) != node):  # type: ignore[union-attr]
                return False
            fields: dict[str, Value] = {"state": state}
            if state["kind"] != "inProgress":
                fields["completedTime"] = _now_ms()
            if claim is not None:
                fields[NODE_FIELD] = claim
            await tx.patch(job_id, fields, system=True)
            return True

        result = await self.db.run_mutation(change)
        return result.ts if result.value else None

    async def _fire(self, cron_id: str) -> None:
        """Fire a due cron: insert its job (due at the slot it fires for) and advance it past
        now, in one transaction: one node fires each slot, and missed slots fire once."""

        async def fire(tx: Transaction) -> None:
            row: Document | None = await tx.get(cron_id)
            now = _now_ms()
            if row is None or float(row["nextRun"]) > now:
                return
            slot = float(row["nextRun"])
            args = row["args"][0] if row.get("args") else {}
            await _insert_job(tx, str(row["function"]), slot, args, cron=str(row["name"]))
            following = next_run(row["schedule"], slot, now)
            await tx.patch(cron_id, {"nextRun": following}, system=True)

        await self.db.run_mutation(fire)

    def _log(self, job: _Job, ok: bool, error: str | None, lines: list[str]) -> None:
        kind = "cron" if job.cron is not None else "scheduled"
        self._calls.record(
            kind, job.path, job.started, ok, error, lines, lateness_ms=job.lateness_ms
        )


@dataclass(frozen=True, slots=True)
class _Job:
    """A due job as the runner runs it."""

    id: str
    path: str
    args: dict[str, Value]
    cron: str | None
    #: When its run began (perf_counter) and how late that was after its due time.
    started: float
    lateness_ms: float

    @classmethod
    def of(cls, row: Document) -> _Job:
        args = row.get("args")
        cron = row.get(CRON_FIELD)
        return cls(
            id=str(row["_id"]),
            path=str(row["name"]),
            args=args[0] if isinstance(args, list) and args else {},
            cron=cron if isinstance(cron, str) else None,
            started=time.perf_counter(),
            lateness_ms=max(0.0, _now_ms() - float(row["scheduledTime"])),
        )


async def _finished_before(tx: Transaction, kind: str, cutoff: float) -> list[Document]:
    """A batch of the jobs in state `kind` that were due before `cutoff`."""
    query = tx.query(SCHEDULED_TABLE).with_index(
        BY_STATE, lambda q: q.eq("state.kind", kind).lt("scheduledTime", cutoff)
    )
    return await query.take(knobs.SCHEDULER_BATCH)


def _slot_of(row: Document) -> int | None:
    slot, sep, _ = str(row.get(NODE_FIELD, "")).partition(":")
    return int(slot) if sep and slot.isdigit() else None


_MAX_ERROR_CHARS = 8192


def _cut(error: str) -> str:
    """An error as a job's row keeps it: bounded, whatever the function raised."""
    return error if len(error) <= _MAX_ERROR_CHARS else error[:_MAX_ERROR_CHARS] + "..."
