"""The single writer of a database: OCC check -> timestamp -> persist (group commit) -> publish.

One asyncio task owns every commit. Commits that are ready together are validated one after
another (each against the log including the ones before it in the group) and persisted in one
SQL transaction; none is acknowledged before that transaction is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from reactive import knobs
from reactive.errors import ConflictError, PersistenceError
from reactive.persistence.base import CommitWrite, MutationRecord, Persistence
from reactive.recent_writes import Conflict, RecentWrites, WrittenKeys, encode_written
from reactive.transaction import Transaction

__all__ = ["CommitOutcome", "Committer", "PublishedCommit"]

log = logging.getLogger("reactive.committer")


@dataclass(frozen=True, slots=True)
class PublishedCommit:
    """What subscribers learn about a commit once it is durable."""

    ts: int
    written: WrittenKeys


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """`ts` of the commit; `duplicate` is the stored record when the mutation already ran."""

    ts: int
    duplicate: MutationRecord | None = None


@dataclass(slots=True)
class _Request:
    tx: Transaction
    mutation: MutationRecord | None
    future: asyncio.Future[CommitOutcome]


class Committer:
    def __init__(
        self,
        persistence: Persistence,
        recent_writes: RecentWrites,
        last_ts: int,
        publish: Callable[[PublishedCommit], None],
    ) -> None:
        self._persistence = persistence
        self._recent_writes = recent_writes
        self._publish = publish
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._exclusive = asyncio.Lock()
        self._recent_mutations: dict[tuple[str, int], MutationRecord] = {}
        #: Newest durable, published commit: new transactions read at this ts.
        self.committed_ts = last_ts
        #: Newest assigned ts (>= committed_ts while a group is being persisted).
        self._assigned_ts = last_ts

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reactive-committer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            request = self._queue.get_nowait()
            if not request.future.done():
                request.future.set_exception(PersistenceError("The database is shutting down"))

    async def commit(
        self, tx: Transaction, mutation: MutationRecord | None = None
    ) -> CommitOutcome:
        """Validate and durably persist `tx`; raises ConflictError if it read stale data."""
        if self._task is None:
            raise PersistenceError("The committer is not running")
        future: asyncio.Future[CommitOutcome] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(tx, mutation, future))
        return await future

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[int]:
        """Hold off every other commit (schema changes, backfills, serial retries); yields the
        committed ts. Inside, `commit_now` is the only way to commit."""
        async with self._exclusive:
            yield self.committed_ts

    async def commit_now(
        self, tx: Transaction, mutation: MutationRecord | None = None
    ) -> CommitOutcome:
        """Commit `tx` right away; the caller must hold `exclusive()`."""
        if not self._exclusive.locked():
            raise RuntimeError("commit_now needs the committer's exclusive lock")
        future: asyncio.Future[CommitOutcome] = asyncio.get_running_loop().create_future()
        await self._commit_batch([_Request(tx, mutation, future)])
        return await future

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < knobs.COMMIT_BATCH_MAX and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            async with self._exclusive:
                await self._commit_batch(batch)

    async def _commit_batch(self, batch: list[_Request]) -> None:
        accepted: list[tuple[_Request, CommitWrite, WrittenKeys]] = []
        #: Re-sends of a mutation accepted earlier in this batch: answered with its outcome.
        followers: dict[tuple[str, int], list[_Request]] = {}
        for request in batch:
            key = _mutation_key(request.mutation)
            if key is not None and key in followers:
                followers[key].append(request)
                continue
            try:
                prepared = await self._prepare(request)
            except Exception as exc:
                _fail(request, exc)
                continue
            if prepared is not None:
                accepted.append((request, *prepared))
                if key is not None:
                    followers[key] = []
        if not accepted:
            return
        try:
            await self._persistence.write_commits([commit for _, commit, _ in accepted])
        except Exception as exc:
            log.exception("commit of %d transactions failed", len(accepted))
            self._recent_writes.truncate_after(self.committed_ts)
            self._assigned_ts = self.committed_ts
            error = PersistenceError(f"Commit failed: {exc}")
            for request, _, _ in accepted:
                _fail(request, error)
            for request in (r for waiting in followers.values() for r in waiting):
                _fail(request, error)
            return
        self._finish(accepted, followers)

    async def _prepare(self, request: _Request) -> tuple[CommitWrite, WrittenKeys] | None:
        """OCC-check one request and give it a ts; None if it was answered already."""
        duplicate = await self._find_duplicate(request.mutation)
        if duplicate is not None:
            request.future.set_result(CommitOutcome(duplicate.ts, duplicate))
            return None
        tx = request.tx
        conflict = self._recent_writes.find_conflict(tx.reads, tx.begin_ts)
        if conflict is not None:
            raise _conflict_error(conflict)
        writes = tx.build_writes()
        ts = self._next_ts()
        mutation = request.mutation
        if mutation is not None:
            mutation = MutationRecord(mutation.session_id, mutation.request_id, ts, mutation.result)
        self._recent_writes.append(ts, writes.written)
        commit = CommitWrite(
            ts=ts,
            documents=writes.documents,
            indexes=writes.indexes,
            written=encode_written(writes.written),
            mutation=mutation,
        )
        return commit, writes.written

    async def _find_duplicate(self, mutation: MutationRecord | None) -> MutationRecord | None:
        if mutation is None:
            return None
        key = (mutation.session_id, mutation.request_id)
        found = self._recent_mutations.get(key)
        if found is None:
            found = await self._persistence.get_mutation(*key)
        return found

    def _next_ts(self) -> int:
        # Never goes back, even if the clock does or the process restarts (last_ts is loaded
        # from the database); stays below 2**63 for the JS client's signed 64-bit parse.
        self._assigned_ts = max(time.time_ns(), self._assigned_ts + 1)
        return self._assigned_ts

    def _finish(
        self,
        accepted: list[tuple[_Request, CommitWrite, WrittenKeys]],
        followers: dict[tuple[str, int], list[_Request]],
    ) -> None:
        for request, commit, written in accepted:
            self.committed_ts = commit.ts
            if commit.mutation is not None:
                self._remember_mutation(commit.mutation)
                for follower in followers.get(_mutation_key(commit.mutation), ()):  # type: ignore[arg-type]
                    follower.future.set_result(CommitOutcome(commit.ts, commit.mutation))
            self._publish(PublishedCommit(commit.ts, written))
            if not request.future.done():
                request.future.set_result(CommitOutcome(commit.ts))

    def _remember_mutation(self, record: MutationRecord) -> None:
        self._recent_mutations[(record.session_id, record.request_id)] = record
        if len(self._recent_mutations) > 100_000:
            # dicts keep insertion order: drop the oldest half; storage still has them.
            for key in list(self._recent_mutations)[:50_000]:
                del self._recent_mutations[key]


def _mutation_key(mutation: MutationRecord | None) -> tuple[str, int] | None:
    return None if mutation is None else (mutation.session_id, mutation.request_id)


def _fail(request: _Request, exc: BaseException) -> None:
    if not request.future.done():
        request.future.set_exception(exc)


def _conflict_error(conflict: Conflict) -> ConflictError:
    table, _, index = conflict.index.partition(".")
    if conflict.key is None:
        return ConflictError(
            "The transaction is older than the retained commit log and must be retried",
            conflicting_ts=conflict.ts,
        )
    return ConflictError(
        f"Documents read from or written to the table {table!r} (index {index!r}) changed "
        "while this mutation was being run and on every subsequent retry. Another call to "
        "this mutation changed the same documents.",
        table=table,
        index=index,
        conflicting_ts=conflict.ts,
    )
