"""Scheduled functions on both backends: `ctx.scheduler` in mutations and actions, the
`_scheduled_functions` table as user code and subscribers see it, and the runner's guarantees
(a mutation job commits once, an action job runs at most once, a job survives kill -9, two
nodes on one database run each job once)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reactive import knobs
from reactive.application import Application
from reactive.executor import Outcome
from tests.live_server import LiveServer

PROJECT = Path(__file__).parent / "projects" / "scheduler"


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[Application]:
    application = await Application.start(PROJECT, store_url)
    try:
        yield application
    finally:
        await application.close()


async def ok(outcome: Awaitable[Outcome]) -> Any:
    done = await outcome
    assert done.error is None, done.error
    return done.value


async def failure(outcome: Awaitable[Outcome]) -> str:
    done = await outcome
    assert done.error is not None, f"expected an error, got {done.value!r}"
    return done.error.message


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    """`check()`'s first truthy value, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: last {value!r}")
        await asyncio.sleep(0.02)


async def job(app: Application, job_id: str) -> dict[str, Any]:
    return await ok(app.run_query("jobs:job", {"id": job_id}))  # type: ignore[no-any-return]


async def effects(app: Application, name: str) -> int:
    return await ok(app.run_query("jobs:effects", {"name": name}))  # type: ignore[no-any-return]


async def state_of(app: Application, job_id: str) -> str:
    return str((await job(app, job_id))["state"]["kind"])


def schedule(app: Application, delay: Any, ref: str, args: Any) -> Awaitable[Outcome]:
    return app.run_mutation("jobs:schedule", {"delay": delay, "ref": ref, "args": args})


# -- scheduling from a mutation ---------------------------------------------------------------


async def test_a_scheduled_mutation_runs_once_after_its_delay_and_a_subscriber_sees_it(app):
    first = await app.run_query("jobs:effects", {"name": "a"})
    changed = asyncio.Event()
    app.subscribe(first.token, lambda _sub, _ts: changed.set())
    scheduled_at = time.time() * 1000
    job_id = await ok(schedule(app, 300, "jobs:record", {"name": "a"}))

    row = await job(app, job_id)
    assert row["name"] == "jobs:record" and row["args"] == [{"name": "a"}]
    assert row["state"] == {"kind": "pending"} and "completedTime" not in row
    assert abs(row["scheduledTime"] - (scheduled_at + 300)) < 100

    await asyncio.wait_for(changed.wait(), 10)  # live: the job's write invalidated the query
    assert await effects(app, "a") == 1
    row = await job(app, job_id)
    assert row["state"] == {"kind": "success"}
    assert row["completedTime"] >= row["scheduledTime"]
    await asyncio.sleep(0.5)
    assert await effects(app, "a") == 1  # once


async def test_a_subscriber_to_the_system_table_sees_the_job_go_from_pending_to_success(app):
    job_id = await ok(schedule(app, 200, "jobs:record", {"name": "live"}))
    seen = [await state_of(app, job_id)]
    while seen[-1] != "success":
        watched = await app.run_query("jobs:job", {"id": job_id})
        changed = asyncio.Event()
        sub = app.subscribe(watched.token, lambda _sub, _ts, event=changed: event.set())
        await asyncio.wait_for(changed.wait(), 10)
        app.unsubscribe(sub)
        seen.append(await state_of(app, job_id))
    assert seen[0] == "pending" and seen[-1] == "success"


async def test_a_mutation_that_fails_after_scheduling_schedules_nothing(app):
    message = await failure(
        app.run_mutation("jobs:schedule_then_fail", {"delay": 0.0, "name": "never"})
    )
    assert "CHANGED_MY_MIND" in message
    await asyncio.sleep(0.3)
    assert await ok(app.run_query("jobs:jobs", {})) == []
    assert await effects(app, "never") == 0


async def test_run_at_a_past_time_runs_now(app):
    job_id = await ok(app.run_mutation("jobs:schedule_at", {"at": 1000.0, "name": "past"}))
    row = await job(app, job_id)
    assert row["scheduledTime"] >= time.time() * 1000 - 5000  # clamped to now
    await eventually(lambda: effects(app, "past"))


async def test_cancel_before_the_run_prevents_it_and_a_finished_job_stays_as_it_was(app):
    job_id = await ok(schedule(app, 400, "jobs:record", {"name": "canceled"}))
    await ok(app.run_mutation("jobs:cancel", {"id": job_id}))
    row = await job(app, job_id)
    assert row["state"] == {"kind": "canceled"} and "completedTime" in row
    await asyncio.sleep(0.8)
    assert await effects(app, "canceled") == 0

    done = await ok(schedule(app, 0, "jobs:record", {"name": "done"}))
    await eventually(lambda: effects(app, "done"))
    await eventually(lambda: state_of_is(app, done, "success"))
    await ok(app.run_mutation("jobs:cancel", {"id": done}))  # a no-op, as in Convex
    assert await state_of(app, done) == "success"


async def state_of_is(app: Application, job_id: str, wanted: str) -> bool:
    return await state_of(app, job_id) == wanted


async def test_cancel_of_an_unknown_id_is_a_no_op_and_of_a_non_id_an_error(app):
    gone = await ok(schedule(app, 60_000, "jobs:record", {"name": "x"}))

    async def delete(tx):
        await tx.delete(gone, system=True)

    await app.db.run_mutation(delete)
    await ok(app.run_mutation("jobs:cancel", {"id": gone}))  # unknown: nothing happens
    assert await ok(app.run_query("jobs:jobs", {})) == []
    message = await failure(app.run_mutation("jobs:cancel", {"id": "not an id"}))
    assert "is not an id of _scheduled_functions" in message


async def test_a_failing_scheduled_mutation_commits_nothing_and_ends_failed_with_its_error(app):
    job_id = await ok(schedule(app, 0, "jobs:record_then_fail", {"name": "rolled back"}))
    await eventually(lambda: state_of_is(app, job_id, "failed"))
    row = await job(app, job_id)
    assert "JOB_FAILED" in row["state"]["error"] and "completedTime" in row
    assert await effects(app, "rolled back") == 0
    assert any(r.kind == "scheduled" and not r.ok for r in app.calls.recent())


async def test_args_are_validated_again_when_the_job_runs(app):
    """A job whose args no longer validate (its function changed since) ends failed."""
    job_id = await ok(schedule(app, 0, "jobs:record", {"name": "fine"}))
    await eventually(lambda: state_of_is(app, job_id, "success"))

    async def bad_args(tx):
        return await tx.insert(
            "_scheduled_functions",
            {
                "name": "jobs:record",
                "args": [{"name": 42.0}],
                "scheduledTime": 0.0,
                "state": {"kind": "pending"},
            },
            system=True,
        )

    bad = (await app.db.run_mutation(bad_args)).value
    await eventually(lambda: state_of_is(app, bad, "failed"))
    assert "ArgumentValidationError" in (await job(app, bad))["state"]["error"]


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "ref", "args", "error"),
    [
        (0, "jobs:nope", {}, "Could not find public function for 'jobs:nope'"),
        (0, "", {}, "Invalid function path"),
        (0, "jobs:a_query", {}, "only mutations and actions can be scheduled"),
        (0, "jobs:record", {"name": 1.0}, "ArgumentValidationError"),
        (0, "jobs:record", {}, "ArgumentValidationError"),
        (-1, "jobs:record", {"name": "x"}, "delay_ms must not be negative"),
        ("soon", "jobs:record", {"name": "x"}, "must be a finite number"),
        (True, "jobs:record", {"name": "x"}, "must be a finite number"),
    ],
)
async def test_bad_input_is_refused_with_a_clear_error_and_schedules_nothing(
    app, delay, ref, args, error
):
    assert error in await failure(schedule(app, delay, ref, args))
    assert await ok(app.run_query("jobs:jobs", {})) == []


async def test_too_many_jobs_or_too_many_argument_bytes_are_refused(app, monkeypatch):
    monkeypatch.setattr(knobs, "MAX_SCHEDULED_PER_FUNCTION", 5)
    args = {"count": 6.0, "name": "many", "delay": 60_000.0}
    assert "at most 5" in await failure(app.run_mutation("jobs:schedule_many", args))
    assert len(await ok(app.run_mutation("jobs:schedule_many", {**args, "count": 5.0}))) == 5
    monkeypatch.setattr(knobs, "MAX_SCHEDULED_ARGS_BYTES", 50)
    message = await failure(app.run_mutation("jobs:schedule_many", {**args, "count": 5.0}))
    assert "more than 50 bytes" in message
    assert len(await ok(app.run_query("jobs:jobs", {}))) == 5


async def test_user_code_reads_the_system_table_but_never_writes_it(app):
    job_id = await ok(schedule(app, 60_000, "jobs:record", {"name": "x"}))
    assert [row["_id"] for row in await ok(app.run_query("jobs:jobs", {}))] == [job_id]
    message = await failure(app.run_mutation("jobs:write_system_table", {}))
    assert "system table" in message


# -- actions ----------------------------------------------------------------------------------


async def test_an_action_schedules_and_a_scheduled_action_runs_once_and_ends_success(app):
    job_id = await ok(app.run_action("jobs:schedule_from_action", {"delay": 0.0, "name": "a"}))
    await eventually(lambda: effects(app, "a"))
    slow = await ok(schedule(app, 0, "jobs:slow", {"name": "s", "seconds": 0.2}))
    await eventually(lambda: state_of_is(app, slow, "success"))
    assert (await effects(app, "s"), await effects(app, "s:done")) == (1, 1)
    assert await state_of(app, job_id) == "success"


async def test_a_failing_scheduled_action_ends_failed_with_its_error(app):
    job_id = await ok(schedule(app, 0, "jobs:broken", {}))
    await eventually(lambda: state_of_is(app, job_id, "failed"))
    # Not dev mode: an unexpected error is redacted, in the row as for a client.
    assert "Server Error" in (await job(app, job_id))["state"]["error"]


async def test_an_action_cancels_a_job(app):
    job_id = await ok(schedule(app, 500, "jobs:record", {"name": "c"}))
    await ok(app.run_action("jobs:cancel_from_action", {"id": job_id}))
    await asyncio.sleep(0.8)
    assert await state_of(app, job_id) == "canceled" and await effects(app, "c") == 0


async def test_scheduled_runs_are_in_the_call_log_with_their_lateness(app):
    job_id = await ok(schedule(app, 0, "jobs:record", {"name": "logged"}))
    await eventually(lambda: state_of_is(app, job_id, "success"))
    records = [r for r in app.calls.recent() if r.kind == "scheduled"]
    assert records and records[-1].path == "jobs:record" and records[-1].ok
    assert records[-1].lateness_ms is not None and "(late " in records[-1].line()


# -- several nodes ----------------------------------------------------------------------------


async def test_two_nodes_on_one_database_run_each_of_1000_jobs_exactly_once(store_url, monkeypatch):
    monkeypatch.setattr(knobs, "SCHEDULER_NODES_CHECK_S", 0.2)
    # Every poll below is a logged query too: keep them all, or a slow run evicts early jobs.
    monkeypatch.setattr(knobs, "CALL_LOG_MAX_ENTRIES", 100_000)
    first = await Application.start(PROJECT, store_url)
    second = await Application.start(PROJECT, store_url)
    try:
        await asyncio.sleep(0.5)  # each has seen the other
        args = {"count": 1000.0, "name": "n", "delay": 300.0}
        ids = await ok(first.run_mutation("jobs:schedule_many", args))
        assert len(ids) == 1000

        async def all_done() -> bool:
            rows = await ok(first.run_query("jobs:jobs", {}))
            return all(row["state"]["kind"] == "success" for row in rows)

        await eventually(all_done, timeout=120)
        names = Counter(await ok(first.run_query("jobs:all_effects", {})))
        assert len(names) == 1000 and set(names.values()) == {1}

        def ran() -> list[int]:
            return [sum(r.kind == "scheduled" for r in a.calls.recent()) for a in (first, second)]

        # A run is logged just after its commit, so the last few may trail the query above.
        async def all_logged() -> bool:
            return sum(ran()) >= 1000

        await eventually(all_logged, timeout=10)
        await asyncio.sleep(0.2)  # a run logged twice would show by now
        assert sum(ran()) == 1000 and min(ran()) > 0, ran()  # shared, and each logged once
    finally:
        await second.close()
        await first.close()


# -- a real server killed -------------------------------------------------------------------


def _call(server: LiveServer, kind: str, path: str, args: dict[str, Any]) -> Any:
    response = httpx.post(
        f"{server.url}/api/{kind}",
        json={"path": path, "args": args, "format": "json"},
        timeout=30.0,
    )
    body = response.json()
    assert body["status"] == "success", body
    return body["value"]


def _kill(server: LiveServer) -> None:
    """kill -9: no shutdown code runs."""
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    server.process = None


def _wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A server process on the test's database, stopped after the test (killed or not)."""
    live = LiveServer(PROJECT, store_url, env={"REACTIVE_DEPLOY_DIR": str(tmp_path)})
    live.start()
    try:
        yield live
    finally:
        live.stop()


def _schedule(server: LiveServer, delay: float, ref: str, args: dict[str, Any]) -> str:
    job = {"delay": delay, "ref": ref, "args": args}
    return _call(server, "mutation", "jobs:schedule", job)  # type: ignore[no-any-return]


def _effects(server: LiveServer, name: str) -> int:
    return _call(server, "query", "jobs:effects", {"name": name})  # type: ignore[no-any-return]


def _state(server: LiveServer, job_id: str) -> dict[str, Any]:
    return _call(server, "query", "jobs:job", {"id": job_id})["state"]  # type: ignore[no-any-return]


async def test_a_job_scheduled_before_a_kill_9_runs_once_after_the_restart(server):
    job_id = _schedule(server, 1500, "jobs:record", {"name": "k"})
    _kill(server)
    time.sleep(2.0)  # it fell due while no server ran
    server.start()
    assert _wait_for(lambda: _effects(server, "k") == 1)
    time.sleep(1.0)
    assert _effects(server, "k") == 1
    assert _state(server, job_id)["kind"] == "success"


async def test_an_action_killed_mid_run_ends_failed_and_is_not_run_again(server):
    job_id = _schedule(server, 0, "jobs:slow", {"name": "m", "seconds": 60.0})
    assert _wait_for(lambda: _effects(server, "m") == 1)
    assert _state(server, job_id)["kind"] == "inProgress"
    _kill(server)
    server.start()
    assert _wait_for(lambda: _state(server, job_id)["kind"] == "failed"), _state(server, job_id)
    assert "Transient error" in _state(server, job_id)["error"]
    time.sleep(1.0)
    assert _effects(server, "m") == 1  # not re-run
    assert _effects(server, "m:done") == 0


@pytest.fixture
def two_servers(postgres_store_url: str, tmp_path: Path) -> Iterator[list[LiveServer]]:
    """Two server processes on one PostgreSQL database, each having seen the other."""
    env = {"REACTIVE_DEPLOY_DIR": str(tmp_path), "REACTIVE_SCHEDULER_NODES_CHECK_S": "0.2"}
    servers = [LiveServer(PROJECT, postgres_store_url, env=env) for _ in range(2)]
    try:
        for server in servers:
            server.start()
        time.sleep(0.5)  # each node has seen the other
        yield servers
    finally:
        for server in servers:
            server.stop()


def _all_jobs_succeeded(server: LiveServer, jobs: int) -> bool:
    """All `jobs` jobs ended `success`: counted, since a node that has not learnt the commit
    that scheduled them yet sees none, and none is not all done."""
    rows = _call(server, "query", "jobs:jobs", {})
    return len(rows) == jobs and all(row["state"]["kind"] == "success" for row in rows)


def _assert_each_job_ran_once(server: LiveServer, jobs: int) -> None:
    names = Counter(_call(server, "query", "jobs:all_effects", {}))
    assert len(names) == jobs and set(names.values()) == {1}


@pytest.mark.postgres
async def test_two_server_processes_on_one_postgresql_run_each_of_1000_jobs_once(two_servers):
    args = {"count": 1000.0, "name": "p", "delay": 500.0}
    assert len(_call(two_servers[0], "mutation", "jobs:schedule_many", args)) == 1000
    assert _wait_for(lambda: _all_jobs_succeeded(two_servers[1], 1000), timeout=120)
    _assert_each_job_ran_once(two_servers[1], 1000)


async def test_the_export_snapshot_keeps_pending_jobs_and_they_run_after_import(tmp_path):
    from reactive.archive import export_archive, import_archive

    source = await Application.start(PROJECT, f"sqlite:///{tmp_path}/a/db.sqlite")
    try:
        job_id = await ok(schedule(source, 1500, "jobs:record", {"name": "moved"}))
        await export_archive(source.db, source.storage.blobs, tmp_path / "s.zip")
        await ok(source.run_mutation("jobs:cancel", {"id": job_id}))  # not run here
    finally:
        await source.close()
    target = await Application.start(PROJECT, f"sqlite:///{tmp_path}/b/db.sqlite")
    try:
        await import_archive(target.db, target.storage.blobs, tmp_path / "s.zip")
        assert (await job(target, job_id))["state"] == {"kind": "pending"}
        await eventually(lambda: effects(target, "moved"))
        assert await state_of(target, job_id) == "success"
    finally:
        await target.close()


async def test_finished_jobs_are_deleted_after_the_retention_and_pending_ones_never(app):
    done = await ok(schedule(app, 0, "jobs:record", {"name": "old"}))
    await eventually(lambda: state_of_is(app, done, "success"))
    waiting = await ok(schedule(app, 60_000, "jobs:record", {"name": "later"}))
    assert app.jobs is not None
    assert await app.jobs.delete_finished() == 0  # finished just now: kept
    week_later = time.time() * 1000 + knobs.SCHEDULED_RETENTION_S * 1000 + 120_000
    assert await app.jobs.delete_finished(now_ms=week_later) == 1
    assert [row["_id"] for row in await ok(app.run_query("jobs:jobs", {}))] == [waiting]


@pytest.mark.postgres
async def test_a_node_killed_mid_burst_leaves_every_job_run_exactly_once(two_servers):
    doomed, survivor = two_servers
    args = {"count": 1000.0, "name": "k", "delay": 300.0}
    assert len(_call(survivor, "mutation", "jobs:schedule_many", args)) == 1000

    def ran() -> float:
        return float(len(_call(survivor, "query", "jobs:all_effects", {})))

    assert _wait_for(lambda: ran() >= 100)  # the burst is under way on both nodes
    _kill(doomed)
    assert _wait_for(lambda: _all_jobs_succeeded(survivor, 1000), timeout=120)
    _assert_each_job_ran_once(survivor, 1000)
