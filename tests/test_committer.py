"""Many processes, one database: the committer's cross-process protocol on both backends.

Each `Database` here has its own connections, committer and watcher, exactly as a second server
node or the CLI would; `tests/test_cli.py` repeats the essentials with real OS processes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import sys
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from reactive import knobs
from reactive.database import Database
from reactive.errors import ConflictError
from reactive.persistence.base import CommitNews, CommitRecord
from reactive.persistence.postgres import LISTENER_APPLICATION_NAME, commit_news
from reactive.persistence.sqlite import ABANDONED_BELL_S
from reactive.subscriptions import Subscription
from tests.conftest import POSTGRES_URL
from tests.schemas import TEST_SCHEMA

WAIT_S = 5.0


@pytest.fixture
async def pair(store_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two processes' worth of Database on one store."""
    first = await Database.open(store_url, schema=TEST_SCHEMA, prune=False)
    second = await Database.open(store_url, schema=TEST_SCHEMA, prune=False)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


async def insert_message(db: Database, channel: str, body: str = "x") -> tuple[str, int]:
    result = await db.run_mutation(
        lambda tx: tx.insert("messages", {"channel": channel, "body": body})
    )
    return result.value, result.ts


async def channel_bodies(
    db: Database, channel: str
) -> tuple[list[str], Subscription, asyncio.Event]:
    """Run a query on `channel` in `db` and subscribe to it; the event fires on invalidation."""

    async def read(tx):  # type: ignore[no-untyped-def]
        docs = await (
            tx.query("messages").with_index("by_channel", lambda q: q.eq("channel", channel))
        ).collect()
        return [d["body"] for d in docs]

    result = await db.run_query(read)
    fired = asyncio.Event()
    sub = db.subscribe(result.token, lambda _sub, _ts: fired.set())
    return result.value, sub, fired


async def test_a_commit_in_one_process_invalidates_a_subscription_in_another(pair) -> None:
    writer, watcher = pair
    before, _, fired = await channel_bodies(watcher, "general")
    _, untouched_fired = (await channel_bodies(watcher, "other"))[1:]
    assert before == []
    _, ts = await insert_message(writer, "general", "hello")
    await asyncio.wait_for(fired.wait(), WAIT_S)
    assert watcher.latest_ts >= ts
    after, _, _ = await channel_bodies(watcher, "general")
    assert after == ["hello"]
    assert not untouched_fired.is_set()


async def test_another_process_publishes_commits_in_order_and_never_backwards(pair) -> None:
    writer, watcher = pair
    seen: list[int] = []
    watcher.add_commit_listener(lambda commit: seen.append(commit.ts))
    written = [(await insert_message(writer, "c", str(i)))[1] for i in range(20)]
    await asyncio.wait_for(watcher.wait_for_ts(written[-1]), WAIT_S)
    assert seen == written  # every commit, once, in ts order


async def test_read_modify_writes_from_two_processes_never_lose_an_update(pair) -> None:
    first, second = pair
    counter = (
        await first.run_mutation(lambda tx: tx.insert("accounts", {"name": "n", "balance": 0.0}))
    ).value

    async def increment(tx):  # type: ignore[no-untyped-def]
        doc = await tx.get(counter)
        await tx.patch(counter, {"balance": doc["balance"] + 1})

    async def worker(db: Database, n: int) -> None:
        for _ in range(n):
            await db.run_mutation(increment)

    await asyncio.gather(*(worker(db, 25) for db in (first, second) for _ in range(3)))
    for db in (first, second):
        await db.wait_for_ts(max(first.latest_ts, second.latest_ts))
        doc = (await db.run_query(lambda tx: tx.get(counter))).value
        assert doc["balance"] == 150.0


async def test_bank_total_holds_with_transfers_from_two_processes(pair) -> None:
    first, second = pair

    async def make(tx):  # type: ignore[no-untyped-def]
        return [await tx.insert("accounts", {"name": f"a{i}", "balance": 100.0}) for i in range(10)]

    accounts = (await first.run_mutation(make)).value
    rng = random.Random(3)

    async def move(tx, source, target, amount):  # type: ignore[no-untyped-def]
        a, b = await tx.get(source), await tx.get(target)
        await tx.patch(source, {"balance": a["balance"] - amount})
        await tx.patch(target, {"balance": b["balance"] + amount})

    async def worker(db: Database) -> None:
        for _ in range(60):
            source, target = rng.sample(accounts, 2)
            amount = float(rng.randint(1, 20))
            await db.run_mutation(lambda tx, s=source, t=target, a=amount: move(tx, s, t, a))

    await asyncio.gather(*(worker(db) for db in (first, second) for _ in range(4)))

    async def total(tx):  # type: ignore[no-untyped-def]
        return sum(d["balance"] for d in await tx.query("accounts").collect())

    assert (await first.run_query(total)).value == 1000.0
    await second.wait_for_ts(first.latest_ts)
    assert (await second.run_query(total)).value == 1000.0


async def test_commit_timestamps_strictly_increase_across_processes(pair) -> None:
    first, second = pair
    results = await asyncio.gather(
        *(insert_message(db, "c") for _ in range(30) for db in (first, second))
    )
    timestamps = [ts for _, ts in results]
    assert len(set(timestamps)) == len(timestamps)
    stored = [record.ts for record in await first.persistence.commits_after(0)]
    assert stored == sorted(stored) and set(timestamps) <= set(stored)


async def test_a_stale_snapshot_conflicts_with_another_process_commit(pair) -> None:
    """The bug this protocol fixes: a transaction that read a row another process deleted
    must not commit (the conflict check used to know only its own process's commits)."""
    server, cli = pair
    user, _ = await insert_message(server, "users", "alice")
    await cli.wait_for_ts(server.latest_ts)
    tx = server.begin()
    assert await tx.get(user) is not None  # read on the server's (soon stale) snapshot
    await tx.insert("messages", {"channel": "projects", "body": f"owned by {user}"})
    await cli.run_mutation(lambda t: t.delete(user))
    with pytest.raises(ConflictError):
        await server.commit(tx)
    projects, _, _ = await channel_bodies(server, "projects")
    assert projects == []


async def test_a_mutation_resent_to_another_process_runs_once(pair) -> None:
    first, second = pair
    runs = 0

    async def create(tx):  # type: ignore[no-untyped-def]
        nonlocal runs
        runs += 1
        return await tx.insert("messages", {"channel": "once", "body": "x"})

    results = await asyncio.gather(
        *(db.run_mutation(create, session_id="s", request_id=1) for db in (first, second) * 3)
    )
    assert len({r.value for r in results}) == 1
    assert len({r.ts for r in results}) == 1
    bodies, _, _ = await channel_bodies(first, "once")
    assert bodies == ["x"]


async def test_a_resend_batched_with_new_mutations_gets_its_record_and_they_commit(pair) -> None:
    """The resend is not looked up before it runs: the group's write refuses its
    key, and the committer answers it with the stored record and writes the others."""
    first, second = pair

    async def create(tx, body):  # type: ignore[no-untyped-def]
        return await tx.insert("messages", {"channel": "batched", "body": body})

    original = await first.run_mutation(
        lambda tx: create(tx, "original"), session_id="b", request_id=1
    )
    results = await asyncio.gather(
        second.run_mutation(lambda tx: create(tx, "resent"), session_id="b", request_id=1),
        *(
            second.run_mutation(
                lambda tx, n=n: create(tx, f"new {n}"), session_id="b", request_id=n
            )
            for n in range(2, 6)
        ),
    )
    resent, *new = results
    assert resent.duplicate and (resent.value, resent.ts) == (original.value, original.ts)
    assert not any(result.duplicate for result in new)
    bodies, _, _ = await channel_bodies(second, "batched")
    assert sorted(bodies) == ["new 2", "new 3", "new 4", "new 5", "original"]


async def test_a_resend_that_fails_when_run_again_gets_its_first_result(pair) -> None:
    first, second = pair

    async def create_once(tx):  # type: ignore[no-untyped-def]
        if (
            await tx.query("messages")
            .with_index("by_channel", lambda q: q.eq("channel", "only"))
            .first()
        ):
            raise ValueError("created already")
        return await tx.insert("messages", {"channel": "only", "body": "x"})

    original = await first.run_mutation(create_once, session_id="f", request_id=1)
    await second.wait_for_ts(original.ts)  # the run again sees what the first one created
    resent = await second.run_mutation(create_once, session_id="f", request_id=1)
    assert resent.duplicate and (resent.value, resent.ts) == (original.value, original.ts)
    with pytest.raises(ValueError, match="created already"):
        await second.run_mutation(create_once, session_id="f", request_id=2)


async def test_a_mutation_another_process_commits_after_our_storage_check_runs_once(
    pair,
) -> None:
    """Our storage check found nothing; while our run was under way the other process
    committed the same key. Memory alone would not know (nothing was forgotten), so the
    commit must learn the other one and answer with its result, writing nothing itself."""
    first, second = pair

    async def create_elsewhere(tx):  # type: ignore[no-untyped-def]
        return await tx.insert("messages", {"channel": "raced", "body": "theirs"})

    async def create_here(tx):  # type: ignore[no-untyped-def]
        theirs = await second.run_mutation(create_elsewhere, session_id="r", request_id=7)
        await tx.insert("messages", {"channel": "raced", "body": "ours"})
        return theirs.value

    ours = await first.run_mutation(create_here, session_id="r", request_id=7)
    theirs = await second.run_mutation(create_elsewhere, session_id="r", request_id=7)
    assert ours.value == theirs.value and ours.ts == theirs.ts
    bodies, _, _ = await channel_bodies(first, "raced")
    assert bodies == ["theirs"]


async def test_a_table_another_process_created_is_known_here(store_url: str) -> None:
    first = await Database.open(store_url, prune=False)
    second = await Database.open(store_url, prune=False)
    try:
        doc = (await first.run_mutation(lambda tx: tx.insert("notes", {"text": "hi"}))).value
        other = (await second.run_mutation(lambda tx: tx.insert("tasks", {"text": "do"}))).value
        await second.wait_for_ts(first.latest_ts)
        seen = (await second.run_query(lambda tx: tx.query("notes").collect())).value
        assert [d["_id"] for d in seen] == [doc]
        assert first.catalog.table_number("notes") != first.catalog.table_number("tasks")
        await first.wait_for_ts(second.latest_ts)
        assert (await first.run_query(lambda tx: tx.get(other))).value["text"] == "do"
    finally:
        await second.close()
        await first.close()


async def test_every_process_signs_cursors_with_one_secret(pair) -> None:
    first, second = pair
    for i in range(3):
        await insert_message(first, "page", str(i))

    async def page(tx, cursor):  # type: ignore[no-untyped-def]
        return await tx.query("messages").paginate({"numItems": 2, "cursor": cursor})

    one = (await first.run_query(lambda tx: page(tx, None))).value
    await second.wait_for_ts(first.latest_ts)
    two = (await second.run_query(lambda tx: page(tx, one["continueCursor"]))).value
    assert [d["body"] for d in one["page"] + two["page"]] == ["0", "1", "2"]


@pytest.mark.postgres
async def test_a_lost_listener_connection_loses_no_commit(
    postgres_store_url: str, monkeypatch
) -> None:
    store_url = postgres_store_url
    monkeypatch.setattr(knobs, "COMMIT_WATCH_SAFETY_S", 0.2)
    first = await Database.open(store_url, schema=TEST_SCHEMA, prune=False)
    second = await Database.open(store_url, schema=TEST_SCHEMA, prune=False)
    try:
        _, fired = (await channel_bodies(second, "c"))[1:]
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                LISTENER_APPLICATION_NAME,
            )
        finally:
            await admin.close()
        assert killed >= 1
        _, ts = await insert_message(first, "c")  # announced while nobody listens
        await asyncio.wait_for(fired.wait(), WAIT_S)
        assert second.latest_ts >= ts
    finally:
        await second.close()
        await first.close()


@pytest.mark.postgres
async def test_an_announced_commit_is_learnt_without_reading_the_commit_table(
    postgres_store_url: str, monkeypatch
) -> None:
    """The notification carries the commit: a process that was up to date learns it, and its
    subscriptions fire, with no read of `commits`; one too big to carry is read instead."""
    monkeypatch.setattr(knobs, "COMMIT_WATCH_SAFETY_S", 60.0)  # no periodic look meanwhile
    first = await Database.open(postgres_store_url, schema=TEST_SCHEMA, prune=False)
    second = await Database.open(postgres_store_url, schema=TEST_SCHEMA, prune=False)
    try:
        await second.wait_for_ts(await second.database_ts())
        reads = 0
        read_commits = second.persistence.commits_after

        async def counted(ts: int):  # type: ignore[no-untyped-def]
            nonlocal reads
            reads += 1
            return await read_commits(ts)

        monkeypatch.setattr(second.persistence, "commits_after", counted)
        _, fired = (await channel_bodies(second, "carried"))[1:]
        _, ts = await insert_message(first, "carried")
        await asyncio.wait_for(fired.wait(), WAIT_S)
        assert second.latest_ts >= ts and reads == 0

        _, fired = (await channel_bodies(second, "big"))[1:]
        many = [{"channel": "big", "body": str(i)} for i in range(400)]  # written keys > 8 kB
        big = await first.run_mutation(
            lambda tx: asyncio.gather(*(tx.insert("messages", doc) for doc in many))
        )
        await asyncio.wait_for(fired.wait(), WAIT_S)
        await second.wait_for_ts(big.ts)
        assert reads >= 1
    finally:
        await second.close()
        await first.close()


def test_announcements_are_read_back_exactly() -> None:
    news = commit_news("5 7:" + base64.b64encode(b"ab").decode() + " 9:")
    assert news == CommitNews(9, 5, (CommitRecord(7, b"ab"), CommitRecord(9, b"")))
    assert commit_news("5 9") == CommitNews(9)
    assert commit_news("garbage") is None and commit_news("5 x:!!") is None


async def test_sqlite_processes_see_each_others_commits_without_polling(
    tmp_path, monkeypatch
) -> None:
    """The commit bell wakes the watcher (inotify): with polls 30 s apart, a commit of one
    process still reaches the other's subscribers at once."""
    if not sys.platform.startswith("linux"):
        pytest.skip("inotify is Linux's")
    monkeypatch.setattr(knobs, "COMMIT_POLL_S", 30.0)
    monkeypatch.setattr(knobs, "COMMIT_POLL_IDLE_S", 30.0)
    url = f"sqlite:///{tmp_path}/data.db"
    first = await Database.open(url, schema=TEST_SCHEMA, prune=False)
    second = await Database.open(url, schema=TEST_SCHEMA, prune=False)
    try:
        await asyncio.sleep(0.1)  # the watchers are waiting
        _, fired = (await channel_bodies(second, "woken"))[1:]
        _, ts = await insert_message(first, "woken")
        await asyncio.wait_for(fired.wait(), WAIT_S)
        assert second.latest_ts >= ts
    finally:
        await second.close()
        await first.close()


async def test_sqlite_commits_of_our_own_cost_no_look_and_others_do(tmp_path, monkeypatch) -> None:
    """Every process's commits ring a bell of its own: the watcher looks (PRAGMA data_version)
    for another process's bell only, never for the commits it made itself."""
    if not sys.platform.startswith("linux"):
        pytest.skip("inotify is Linux's")
    monkeypatch.setattr(knobs, "COMMIT_WATCH_SAFETY_S", 30.0)
    url = f"sqlite:///{tmp_path}/data.db"
    first = await Database.open(url, schema=TEST_SCHEMA, prune=False)
    second = await Database.open(url, schema=TEST_SCHEMA, prune=False)
    looks = 0
    fetch = first.persistence._fetch  # type: ignore[attr-defined]

    def counting(operation, sql, params, **where):  # type: ignore[no-untyped-def]
        nonlocal looks
        looks += sql == "PRAGMA data_version"
        return fetch(operation, sql, params, **where)

    try:
        await asyncio.sleep(0.1)  # the watchers are waiting
        monkeypatch.setattr(first.persistence, "_fetch", counting)
        for n in range(20):
            await insert_message(first, "ours", str(n))
        await asyncio.sleep(0.1)
        assert looks == 0
        _, ts = await insert_message(second, "theirs")
        await asyncio.wait_for(first.wait_for_ts(ts), WAIT_S)
        assert looks >= 1
    finally:
        await second.close()
        await first.close()


async def test_sqlite_bells_of_dead_processes_are_removed_and_live_ones_kept(tmp_path) -> None:
    bells = tmp_path / "data.db.commit-bells"
    bells.mkdir()
    abandoned, recent, alive = bells / "999999999-aa", bells / "999999998-bb", bells / "1-cc"
    for bell in (abandoned, recent, alive):
        bell.write_bytes(b"")
    long_ago = time.time() - 2 * ABANDONED_BELL_S
    os.utime(abandoned, (long_ago, long_ago))
    os.utime(alive, (long_ago, long_ago))  # pid 1 lives: rung or not, its bell stays
    db = await Database.open(f"sqlite:///{tmp_path}/data.db", schema=TEST_SCHEMA, prune=False)
    try:
        names = {p.name for p in bells.iterdir()}
        assert abandoned.name not in names
        assert {recent.name, alive.name} <= names
        assert len(names) == 3  # and our own
    finally:
        await db.close()
    assert {p.name for p in bells.iterdir()} == {recent.name, alive.name}  # ours removed


def schema_with_body_index():  # type: ignore[no-untyped-def]
    from reactive.schema import define_schema, define_table
    from reactive.validators import v

    tables = dict(TEST_SCHEMA.tables)
    tables["messages"] = (
        define_table({"channel": v.string(), "body": v.string(), "n": v.optional(v.float64())})
        .index("by_channel", ["channel"])
        .index("by_channel_n", ["channel", "n"])
        .index("by_body", ["body"])
    )
    return define_schema(tables)


async def bodies_by_index(db: Database) -> list[str]:
    docs = (
        await db.run_query(
            lambda tx: tx.query("messages").with_index("by_body", lambda q: q).collect()
        )
    ).value
    return [d["body"] for d in docs]


async def test_an_index_another_process_adds_is_kept_by_this_process_commits(pair) -> None:
    changer, writer = pair
    await insert_message(writer, "c", "b-before")
    await changer.wait_for_ts(writer.latest_ts)
    changes = await changer.apply_schema(schema_with_body_index())
    assert changes.added_indexes == ["messages.by_body"] and changes.backfilled_rows == 1
    # The writer never applied the new schema: its commit must still write by_body's entry.
    await insert_message(writer, "c", "a-after")
    await changer.wait_for_ts(writer.latest_ts)
    assert await bodies_by_index(changer) == ["a-after", "b-before"]


async def test_processes_applying_one_schema_together_backfill_once(pair) -> None:
    first, second = pair
    for i in range(5):
        await insert_message(first, "c", str(i))
    await second.wait_for_ts(first.latest_ts)
    schema = schema_with_body_index()
    results = await asyncio.gather(first.apply_schema(schema), second.apply_schema(schema))
    assert sorted(r.backfilled_rows for r in results) == [0, 5]
    assert sorted(len(r.added_indexes) for r in results) == [0, 1]
    for db in pair:
        assert await bodies_by_index(db) == ["0", "1", "2", "3", "4"]
