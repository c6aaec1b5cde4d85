from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reactive import knobs
from reactive.application import Application
from reactive.errors import ValidationError

CHAT = Path(__file__).parent / "projects" / "chat"


@pytest.fixture
async def app(tmp_path):
    application = await Application.start(CHAT, f"sqlite:///{tmp_path}/app.db")
    try:
        yield application
    finally:
        await application.close()


async def test_identical_queries_at_one_ts_share_one_execution(app, monkeypatch):
    runs = 0
    original = app.executor.run

    async def counting(*args, **kwargs):
        nonlocal runs
        runs += 1
        return await original(*args, **kwargs)

    monkeypatch.setattr(app.executor, "run", counting)
    outcomes = await asyncio.gather(
        *(app.run_query("messages:list", {"channel": "a"}) for _ in range(20))
    )
    assert runs == 1 and all(o.value == [] for o in outcomes)
    await app.run_query("messages:list", {"channel": "b"})
    assert runs == 2


async def test_when_the_caller_running_a_shared_query_is_cancelled_the_others_still_get_it(
    app, monkeypatch
):
    started = asyncio.Event()
    runs = 0
    original = app.executor.run

    async def slow_once(*args, **kwargs):
        nonlocal runs
        runs += 1
        if runs == 1:  # the first run hangs until its caller is cancelled
            started.set()
            await asyncio.sleep(3600)
        return await original(*args, **kwargs)

    monkeypatch.setattr(app.executor, "run", slow_once)
    ts = app.latest_ts
    leader = asyncio.create_task(app.run_query("messages:list", {"channel": "a"}, ts=ts))
    await started.wait()
    follower = asyncio.create_task(app.run_query("messages:list", {"channel": "a"}, ts=ts))
    await asyncio.sleep(0.01)
    leader.cancel()
    outcome = await asyncio.wait_for(follower, 5)
    assert outcome.value == [] and runs == 2 and leader.cancelled()


async def test_different_identities_do_not_share_results(app):
    from reactive.auth import Identity

    alice = Identity.from_jwt_claims({"iss": "https://i", "sub": "alice"})
    bob = Identity.from_jwt_claims({"iss": "https://i", "sub": "bob"})
    ts = app.latest_ts
    a = await app.run_query("messages:whoami", {}, alice, ts=ts)
    b = await app.run_query("messages:whoami", {}, bob, ts=ts)
    assert (a.value, b.value) == ("alice", "bob")


async def test_a_new_commit_means_a_new_execution(app):
    first = await app.run_query("messages:count", {"channel": "c"})
    await app.run_mutation("messages:send", {"channel": "c", "body": "x"})
    second = await app.run_query("messages:count", {"channel": "c"})
    assert (first.value, second.value) == (0.0, 1.0)


async def test_a_query_at_a_ts_inside_the_retained_history_runs(app):
    await app.run_mutation("messages:send", {"channel": "r", "body": "one"})
    ts = app.latest_ts
    await app.run_mutation("messages:send", {"channel": "r", "body": "two"})
    outcome = await app.run_query_at("messages:count", {"channel": "r"}, None, ts)
    assert outcome.value == 1.0


async def test_a_query_at_a_ts_that_pruning_may_have_dropped_is_refused(app, monkeypatch):
    await app.run_mutation("messages:send", {"channel": "r", "body": "one"})
    ts = app.latest_ts
    await app.run_mutation("messages:send", {"channel": "r", "body": "two"})
    monkeypatch.setattr(knobs, "RETENTION_S", 0.0)
    await app.db.prune()  # versions superseded before now may be gone: ts is not whole
    with pytest.raises(ValidationError) as caught:
        await app.run_query_at("messages:count", {"channel": "r"}, None, ts)
    assert caught.value.short_msg == "TimestampTooOld"
    assert app.oldest_readable_ts() > ts


async def test_the_latest_snapshot_stays_readable_however_long_ago_it_was(app, monkeypatch):
    await app.run_mutation("messages:send", {"channel": "r", "body": "one"})
    monkeypatch.setattr(knobs, "RETENTION_S", 0.0)  # as if the last commit were long ago
    await app.db.prune()
    outcome = await app.run_query_at("messages:count", {"channel": "r"}, None, app.latest_ts)
    assert outcome.value == 1.0
