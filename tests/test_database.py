"""The database facade: commits, OCC retries, exactly-once, durability, schema changes."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from reactive import knobs
from reactive.database import Database
from reactive.errors import CommitNotApplied, ConflictError, SchemaError, ValidationError
from reactive.schema import define_schema, define_table
from reactive.validators import v
from tests.schemas import TEST_SCHEMA


async def count(db, table):
    return len((await db.run_query(lambda tx: tx.query(table).collect())).value)


async def make_accounts(db, n, balance=100.0):
    async def run(tx):
        return [
            await tx.insert("accounts", {"name": f"a{i}", "balance": balance}) for i in range(n)
        ]

    return (await db.run_mutation(run)).value


async def transfer(db, source, target, amount, **options):
    return await db.run_mutation(lambda tx: _move(tx, source, target, amount), **options)


async def test_bank_transfers_keep_the_total(db):
    accounts = await make_accounts(db, 10)
    rng = random.Random(7)
    failures = []

    async def worker(n):
        for _ in range(n):
            source, target = rng.sample(accounts, 2)
            try:
                await transfer(db, source, target, float(rng.randint(1, 20)))
            except ConflictError as exc:  # allowed: a transfer may give up, never corrupt
                failures.append(exc)

    await asyncio.gather(*(worker(250) for _ in range(8)))

    async def total(tx):
        return sum(d["balance"] for d in await tx.query("accounts").collect())

    assert (await db.run_query(total)).value == 1000.0
    assert failures == []  # the serial fallback means no transfer gives up


async def test_bank_total_holds_without_serial_fallback(db):
    accounts = await make_accounts(db, 10)
    rng = random.Random(11)

    async def worker(n):
        for _ in range(n):
            source, target = rng.sample(accounts, 2)
            with contextlib.suppress(ConflictError):
                await transfer(db, source, target, 3.0, serial_fallback=False)

    await asyncio.gather(*(worker(150) for _ in range(8)))
    docs = (await db.run_query(lambda tx: tx.query("accounts").collect())).value
    assert sum(d["balance"] for d in docs) == 1000.0


async def _move(tx, source, target, amount):
    a, b = await tx.get(source), await tx.get(target)
    await tx.patch(source, {"balance": a["balance"] - amount})
    await tx.patch(target, {"balance": b["balance"] + amount})


async def test_conflict_is_retried_and_the_loser_rereads(db):
    [acc] = await make_accounts(db, 1, 0.0)
    started = asyncio.Event()
    release = asyncio.Event()
    runs = 0

    async def slow_increment(tx):
        nonlocal runs
        runs += 1
        doc = await tx.get(acc)
        if runs == 1:
            started.set()
            await release.wait()
        await tx.patch(acc, {"balance": doc["balance"] + 1})

    async def fast_increment(tx):
        doc = await tx.get(acc)
        await tx.patch(acc, {"balance": doc["balance"] + 1})

    slow = asyncio.create_task(db.run_mutation(slow_increment))
    await started.wait()
    await db.run_mutation(fast_increment)
    release.set()
    result = await slow
    assert result.retries == 1 and runs == 2
    assert (await db.run_query(lambda tx: tx.get(acc))).value["balance"] == 2.0


async def test_conflict_after_retries_names_the_table(db):
    [acc] = await make_accounts(db, 1, 0.0)

    async def always_interrupted(tx):
        doc = await tx.get(acc)
        await db.run_mutation(lambda other: other.patch(acc, {"balance": doc["balance"] + 5}))
        await tx.patch(acc, {"balance": doc["balance"] + 1})

    with pytest.raises(ConflictError) as info:
        await db.run_mutation(always_interrupted, max_retries=2, serial_fallback=False)
    assert info.value.table == "accounts" and "accounts" in str(info.value)


async def test_mutation_that_keeps_losing_finally_runs_serially(db):
    [acc] = await make_accounts(db, 1, 0.0)
    interrupters = []

    async def bump(tx):
        doc = await tx.get(acc)
        await tx.patch(acc, {"balance": doc["balance"] + 100})

    async def contended(tx):
        doc = await tx.get(acc)
        # A concurrent writer commits while this mutation is running, every time it runs.
        interrupters.append(asyncio.create_task(db.run_mutation(bump)))
        await asyncio.sleep(0.01)
        await tx.patch(acc, {"balance": doc["balance"] + 1})

    result = await db.run_mutation(contended, max_retries=2)
    await asyncio.gather(*interrupters)
    assert result.retries == 3  # three optimistic runs lost, the serial one won
    balance = (await db.run_query(lambda tx: tx.get(acc))).value["balance"]
    assert balance == 1 + 100 * len(interrupters)


async def test_inserts_do_not_conflict_with_each_other(db):
    results = await asyncio.gather(
        *(
            db.run_mutation(lambda tx: tx.insert("messages", {"channel": "c", "body": "x"}))
            for _ in range(50)
        )
    )
    assert all(r.retries == 0 for r in results)
    assert len({r.ts for r in results}) == 50
    assert await count(db, "messages") == 50


async def test_concurrent_commits_are_grouped(db):
    calls = []
    original = db.persistence.write_commits

    async def counting(commits, **options):
        calls.append(len(commits))
        return await original(commits, **options)

    db.persistence.write_commits = counting
    await asyncio.gather(
        *(
            db.run_mutation(lambda tx: tx.insert("messages", {"channel": "c", "body": "x"}))
            for _ in range(100)
        )
    )
    assert sum(calls) == 100 and len(calls) < 100


async def test_a_write_that_failed_and_did_not_land_is_run_again(db):
    original = db.persistence.write_commits
    failures = 0

    async def fails_once(commits, **options):
        nonlocal failures
        if failures == 0:
            failures += 1
            raise OSError("connection reset")
        return await original(commits, **options)

    db.persistence.write_commits = fails_once
    result = await db.run_mutation(lambda tx: tx.insert("messages", {"channel": "c", "body": "x"}))
    assert failures == 1 and result.retries == 1
    assert await count(db, "messages") == 1


async def test_a_write_that_keeps_failing_acknowledges_nothing_and_changes_nothing(db):
    async def broken(commits, **options):
        raise OSError("disk full")

    original = db.persistence.write_commits
    db.persistence.write_commits = broken
    with pytest.raises(CommitNotApplied, match="disk full"):
        await db.run_mutation(
            lambda tx: tx.insert("messages", {"channel": "c", "body": "x"}),
            serial_fallback=False,
        )
    db.persistence.write_commits = original
    assert await count(db, "messages") == 0
    await db.run_mutation(lambda tx: tx.insert("messages", {"channel": "c", "body": "y"}))
    assert await count(db, "messages") == 1


async def test_mutation_with_same_request_id_runs_once(db):
    runs = 0

    async def create(tx):
        nonlocal runs
        runs += 1
        return await tx.insert("messages", {"channel": "c", "body": "once"})

    first = await db.run_mutation(create, session_id="s1", request_id=0)
    again = await db.run_mutation(create, session_id="s1", request_id=0)
    other = await db.run_mutation(create, session_id="s2", request_id=0)
    assert runs == 2 and again.duplicate and again.value == first.value and again.ts == first.ts
    assert other.value != first.value
    assert await count(db, "messages") == 2


async def test_concurrent_resends_of_one_mutation_commit_once(db):
    async def create(tx):
        return await tx.insert("messages", {"channel": "c", "body": "once"})

    results = await asyncio.gather(
        *(db.run_mutation(create, session_id="s", request_id=7) for _ in range(5))
    )
    assert len({r.value for r in results}) == 1 and len({r.ts for r in results}) == 1
    assert await count(db, "messages") == 1


async def test_a_mutation_record_is_replayed_only_to_the_identity_that_ran_it(db):
    async def create(tx):
        return await tx.insert("messages", {"channel": "c", "body": "alice's"})

    first = await db.run_mutation(create, session_id="s", request_id=0, identity="iss|alice")
    for other in ("iss|mallory", ""):  # another identity, or none
        with pytest.raises(ValidationError) as refused:
            await db.run_mutation(create, session_id="s", request_id=0, identity=other)
        assert refused.value.short_msg == "RequestIdReused"
        assert first.value not in str(refused.value)
    again = await db.run_mutation(create, session_id="s", request_id=0, identity="iss|alice")
    assert again.duplicate and again.value == first.value
    assert await count(db, "messages") == 1


async def test_racing_identities_on_one_request_id_commit_once_and_learn_nothing(db):
    async def create(tx):
        return await tx.insert("messages", {"channel": "c", "body": "race"})

    who = ["iss|alice", "iss|mallory"] * 3
    results = await asyncio.gather(
        *(db.run_mutation(create, session_id="s", request_id=1, identity=i) for i in who),
        return_exceptions=True,
    )
    won = {who[n] for n, r in enumerate(results) if not isinstance(r, BaseException)}
    assert len(won) == 1
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 3 and all(r.short_msg == "RequestIdReused" for r in refused)
    assert await count(db, "messages") == 1


async def test_timestamps_increase_monotonically(db):
    stamps = [
        (await db.run_mutation(lambda tx: tx.insert("messages", {"channel": "c", "body": "x"}))).ts
        for _ in range(20)
    ]
    assert stamps == sorted(stamps) and len(set(stamps)) == 20
    assert stamps[-1] < 2**63


async def test_acknowledged_writes_survive_restart(store_url):
    db = await Database.open(store_url, schema=TEST_SCHEMA, prune=False)
    ids = []
    for i in range(30):
        result = await db.run_mutation(
            lambda tx, i=i: tx.insert("messages", {"channel": "c", "body": str(i)})
        )
        ids.append(result.value)
    last_ts = db.latest_ts
    await db.close()

    db = await Database.open(store_url, schema=TEST_SCHEMA, prune=False)
    try:
        assert db.latest_ts == last_ts
        docs = (await db.run_query(lambda tx: tx.query("messages").collect())).value
        assert [d["_id"] for d in docs] == ids
        after = await db.run_mutation(
            lambda tx: tx.insert("messages", {"channel": "c", "body": "later"})
        )
        assert after.ts > last_ts
    finally:
        await db.close()


async def test_timestamps_never_go_back_even_if_the_clock_does(store_url, monkeypatch):
    db = await Database.open(store_url, schema=TEST_SCHEMA, prune=False)
    first = await db.run_mutation(lambda tx: tx.insert("messages", {"channel": "c", "body": "x"}))
    await db.close()
    monkeypatch.setattr("reactive.committer.time.time_ns", lambda: 1_000)
    db = await Database.open(store_url, schema=TEST_SCHEMA, prune=False)
    try:
        second = await db.run_mutation(
            lambda tx: tx.insert("messages", {"channel": "c", "body": "y"})
        )
        assert second.ts == first.ts + 1
    finally:
        await db.close()


# -- schema changes ---------------------------------------------------------------------------


def schema_with_body_index():
    tables = dict(TEST_SCHEMA.tables)
    tables["messages"] = tables["messages"].index("by_body", ["body"])
    return define_schema(tables)


async def test_new_index_is_backfilled_before_use(db):
    for body in ["b", "a", "c"]:
        await db.run_mutation(lambda tx, b=body: tx.insert("messages", {"channel": "x", "body": b}))
    changes = await db.apply_schema(schema_with_body_index())
    assert changes.added_indexes == ["messages.by_body"] and changes.backfilled_rows == 3

    async def run(tx):
        docs = (
            await tx.query("messages").with_index("by_body", lambda q: q.gte("body", "b")).collect()
        )
        return [d["body"] for d in docs]

    assert (await db.run_query(run)).value == ["b", "c"]
    await db.run_mutation(lambda tx: tx.insert("messages", {"channel": "x", "body": "bb"}))
    assert (await db.run_query(run)).value == ["b", "bb", "c"]


async def test_removed_index_is_dropped(db):
    await db.apply_schema(schema_with_body_index())
    changes = await db.apply_schema(TEST_SCHEMA)
    assert changes.dropped_indexes == ["messages.by_body"]
    assert db.catalog.index("messages", "by_body") is None


async def test_schema_violated_by_existing_data_is_refused_and_changes_nothing(db):
    await db.run_mutation(lambda tx: tx.insert("messages", {"channel": "x", "body": "hello"}))
    stricter = define_schema(
        {
            **TEST_SCHEMA.tables,
            "messages": define_table(
                {"channel": v.string(), "body": v.float64(), "n": v.optional(v.float64())}
            ).index("by_body", ["body"]),
        }
    )
    with pytest.raises(SchemaError) as info:
        await db.apply_schema(stricter)
    assert "messages" in str(info.value) and "body" in str(info.value)
    assert db.catalog.index("messages", "by_body") is None
    # the old schema is still in force
    await db.run_mutation(lambda tx: tx.insert("messages", {"channel": "x", "body": "still"}))


async def test_prune_keeps_recent_snapshots(db, monkeypatch):
    [acc] = await make_accounts(db, 1, 0.0)
    for i in range(5):
        await db.run_mutation(lambda tx, i=i: tx.patch(acc, {"balance": float(i)}))
    keep_ts = db.latest_ts
    monkeypatch.setattr(knobs, "RETENTION_S", 0.0)
    removed = await db.prune()
    assert removed > 0
    doc = (await db.run_query(lambda tx: tx.get(acc), ts=keep_ts)).value
    assert doc["balance"] == 4.0


async def test_prune_drops_old_mutation_records(db, monkeypatch):
    await db.run_mutation(
        lambda tx: tx.insert("messages", {"channel": "c", "body": "x"}),
        session_id="s",
        request_id=1,
    )
    assert await db.persistence.get_mutation("s", 1) is not None
    monkeypatch.setattr(knobs, "MUTATION_RECORD_RETENTION_S", 0.0)
    await db.prune()
    assert await db.persistence.get_mutation("s", 1) is None


async def test_a_commit_is_written_on_the_event_loop_only_while_nothing_else_is_open(tmp_path):
    """SQLite: a mutation with no other transaction open in the process is written inline
    (no trip to the writer thread); one that commits while another transaction is open (a
    query still running, say) goes to the thread, so that the other is not held up."""
    from reactive.persistence.sqlite import SqlitePersistence

    db = await Database.open(f"sqlite:///{tmp_path}/inline.db", schema=TEST_SCHEMA, prune=False)
    try:
        store = db.persistence
        assert isinstance(store, SqlitePersistence)

        async def insert(body):
            await db.run_mutation(lambda tx: tx.insert("messages", {"channel": "c", "body": body}))

        await insert("warm")
        before = store._thread_work
        await insert("alone")
        assert store._thread_work is before  # inline
        with db.tracking(db.latest_ts):  # another transaction is open meanwhile
            await insert("beside a query")
        assert store._thread_work is not before  # the writer thread
        bodies = await db.run_query(lambda tx: tx.query("messages").collect(), ts=db.latest_ts)
        assert [m["body"] for m in bodies.value] == ["warm", "alone", "beside a query"]
    finally:
        await db.close()
