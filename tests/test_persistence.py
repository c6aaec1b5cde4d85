"""Tests of the storage backends; each test that takes `persistence` or `store_url` runs on both."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import struct
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest

from reactive import knobs
from reactive.errors import PersistenceError
from reactive.persistence import (
    DEFAULT_DATABASE_URL,
    CommitRecord,
    CommitWrite,
    DocumentWrite,
    IndexEntry,
    IndexMeta,
    IndexState,
    IndexWrite,
    MutationRecord,
    Persistence,
    StoredDocument,
    TableMeta,
    create_persistence,
    open_persistence,
)
from reactive.persistence import postgres as postgres_backend
from reactive.persistence import sqlite as sqlite_backend
from reactive.persistence.postgres import INDEX_KEY_COVERS_DELETED, PostgresPersistence
from reactive.types import Order

TABLE = 1
INDEX = 10
MAX_KEY = b"\xff"


# -- helpers -------------------------------------------------------------------------------
def key(name: str) -> bytes:
    """An index key in the shape real ones have: a type tag, the bytes, a terminator."""
    return b"\x10" + name.encode() + b"\x00"


def doc(id: str, value: bytes | None, table: int = TABLE) -> DocumentWrite:
    return DocumentWrite(table_number=table, id=id, value=value, prev_ts=None)


def live(index_key: bytes, id: str, index: int = INDEX) -> IndexWrite:
    return IndexWrite(index_id=index, key=index_key, deleted=False, document_id=id)


def gone(index_key: bytes, id: str, index: int = INDEX) -> IndexWrite:
    return IndexWrite(index_id=index, key=index_key, deleted=True, document_id=id)


def commit(
    ts: int,
    documents: list[DocumentWrite] | None = None,
    indexes: list[IndexWrite] | None = None,
    mutation: MutationRecord | None = None,
) -> CommitWrite:
    written = f"w{ts}".encode()
    return CommitWrite(ts, documents or [], indexes or [], written=written, mutation=mutation)


def put(ts: int, id: str, value: bytes, old_key: bytes | None = None) -> CommitWrite:
    """A commit writing `id` with index key key(value), as the committer would."""
    entries = [live(key(value.decode()), id)]
    if old_key is not None and old_key != key(value.decode()):
        entries.insert(0, gone(old_key, id))
    return commit(ts, [doc(id, value)], entries)


async def scan(
    store: Persistence,
    ts: int,
    order: Order = Order.ASC,
    limit: int = 100,
    start: bytes = b"",
    end: bytes = MAX_KEY,
    index: int = INDEX,
) -> list[tuple[bytes, str, int, bytes]]:
    entries = await store.index_scan(index, TABLE, start, end, ts, order, limit)
    return [(e.key, e.document.id, e.document.ts, e.document.value) for e in entries]


# -- metadata ------------------------------------------------------------------------------
async def test_empty_database_has_no_commits_or_data(persistence: Persistence) -> None:
    assert await persistence.max_commit_ts() == 0
    assert await persistence.load_tables() == []
    assert await persistence.load_indexes() == []
    assert await persistence.get_document(TABLE, "a", 100) is None
    assert await scan(persistence, 100) == []
    assert await persistence.commits_after(0) == []
    assert await persistence.get_meta("anything") is None


async def test_tables_are_created_once_numbered_as_asked_or_next(
    persistence: Persistence,
) -> None:
    assert await persistence.create_table("users", 2) == TableMeta("users", 2)
    assert await persistence.create_table("messages") == TableMeta("messages", 3)
    assert await persistence.create_table("users") == TableMeta("users", 2)
    assert await persistence.load_tables() == [TableMeta("users", 2), TableMeta("messages", 3)]


async def test_a_table_number_is_never_given_twice(persistence: Persistence) -> None:
    await persistence.create_table("users", 1)
    with pytest.raises(PersistenceError, match="belongs to 'users'"):
        await persistence.create_table("people", 1)
    assert await persistence.load_tables() == [TableMeta("users", 1)]


async def test_concurrent_creators_of_one_table_get_the_same_number(store_url: str) -> None:
    stores = [await open_persistence(store_url) for _ in range(3)]
    try:
        tables = await asyncio.gather(
            *(s.create_table(f"t{i % 2}") for i, s in enumerate(stores * 3))
        )
        by_name = {t.name: t.number for t in tables}
        assert all(t.number == by_name[t.name] for t in tables)
        assert len(set(by_name.values())) == 2
        assert len(await stores[0].load_tables()) == 2
    finally:
        for store in stores:
            await store.close()


async def test_indexes_are_created_once_and_their_state_saved(persistence: Persistence) -> None:
    by_author = await persistence.create_index(
        TABLE, "by_author", ("author",), IndexState.BACKFILLING
    )
    by_channel = await persistence.create_index(TABLE, "by_channel", ("channel",), IndexState.READY)
    assert by_channel.index_id == by_author.index_id + 1
    again = await persistence.create_index(TABLE, "by_author", ("other",), IndexState.READY)
    assert again == by_author
    ready = IndexMeta(by_author.index_id, TABLE, "by_author", ("author",), IndexState.READY)
    await persistence.save_index(ready)
    assert await persistence.load_indexes() == [ready, by_channel]


async def test_meta_setdefault_keeps_the_first_value(persistence: Persistence) -> None:
    assert await persistence.setdefault_meta("secret", b"first") == b"first"
    assert await persistence.setdefault_meta("secret", b"second") == b"first"
    assert await persistence.get_meta("secret") == b"first"


async def test_meta_values_round_trip_and_overwrite(persistence: Persistence) -> None:
    await persistence.set_meta("instance", b"\x00\x01binary\xff")
    assert await persistence.get_meta("instance") == b"\x00\x01binary\xff"
    await persistence.set_meta("instance", b"second")
    assert await persistence.get_meta("instance") == b"second"
    assert await persistence.get_meta("other") is None


async def test_meta_items_lists_one_prefix_by_key_and_delete_meta_removes_one(
    persistence: Persistence,
) -> None:
    for key in ("node/b", "node/a", "nodes", "node", "other/node/c", "node/%_"):
        await persistence.set_meta(key, key.encode())
    listed = await persistence.meta_items("node/")
    assert listed == [(k, k.encode()) for k in ("node/%_", "node/a", "node/b")]
    await persistence.delete_meta("node/a")
    await persistence.delete_meta("node/never-written")
    assert [key for key, _ in await persistence.meta_items("node/")] == ["node/%_", "node/b"]
    assert await persistence.get_meta("nodes") == b"nodes"


# -- documents -----------------------------------------------------------------------------
async def test_get_document_sees_the_newest_version_at_each_snapshot(
    persistence: Persistence,
) -> None:
    await persistence.write_commits([commit(10, [doc("a", b"v1")])])
    await persistence.write_commits([commit(20, [doc("a", b"v2")])])
    await persistence.write_commits([commit(30, [doc("a", None)])])
    expected = {
        9: None,
        10: StoredDocument("a", 10, b"v1"),
        19: StoredDocument("a", 10, b"v1"),
        20: StoredDocument("a", 20, b"v2"),
        29: StoredDocument("a", 20, b"v2"),
        30: None,
        1000: None,
    }
    for ts, stored in expected.items():
        assert await persistence.get_document(TABLE, "a", ts) == stored, f"snapshot {ts}"


async def test_get_document_distinguishes_tables(persistence: Persistence) -> None:
    await persistence.write_commits([commit(10, [doc("a", b"t1"), doc("a", b"t2", table=2)])])
    assert await persistence.get_document(1, "a", 10) == StoredDocument("a", 10, b"t1")
    assert await persistence.get_document(2, "a", 10) == StoredDocument("a", 10, b"t2")
    assert await persistence.get_document(3, "a", 10) is None


async def test_document_bytes_round_trip_unchanged(persistence: Persistence) -> None:
    value = bytes(range(256)) * 64
    await persistence.write_commits([commit(10, [doc("a", value)])])
    stored = await persistence.get_document(TABLE, "a", 10)
    assert stored is not None and stored.value == value


async def test_table_scan_lists_live_documents_by_id(persistence: Persistence) -> None:
    first = [doc(id, f"{id}1".encode()) for id in ("d", "c", "b", "a")]
    await persistence.write_commits([commit(10, [*first, doc("a", b"other", table=2)])])
    await persistence.write_commits([commit(20, [doc("b", None)])])
    await persistence.write_commits([commit(30, [doc("c", b"c2")])])

    at_25 = await persistence.table_scan(TABLE, 25, None, 100)
    assert at_25 == [
        StoredDocument("a", 10, b"a1"),
        StoredDocument("c", 10, b"c1"),
        StoredDocument("d", 10, b"d1"),
    ]
    assert await persistence.table_scan(TABLE, 35, "a", 1) == [StoredDocument("c", 30, b"c2")]
    assert await persistence.table_scan(TABLE, 35, "d", 10) == []
    assert await persistence.table_scan(TABLE, 9, None, 10) == []
    assert await persistence.table_scan(TABLE, 35, None, 0) == []
    assert await persistence.table_scan(2, 35, None, 10) == [StoredDocument("a", 10, b"other")]


async def test_table_scan_orders_ids_bytewise(persistence: Persistence) -> None:
    # A locale collation would put "a" before "B"; ids must sort as bytes on every backend.
    ids = ["a", "B", "_x", "Z9", "é", "aa"]
    await persistence.write_commits([commit(10, [doc(id, b"v") for id in ids])])
    listed = [d.id for d in await persistence.table_scan(TABLE, 10, None, 100)]
    assert listed == sorted(ids, key=str.encode)


# -- index scans ---------------------------------------------------------------------------
async def write_five_keys(store: Persistence) -> None:
    """Documents d1..d5 whose keys sort k1 < ... < k5, written in scrambled order at ts 10."""
    order = [3, 1, 5, 2, 4]
    await store.write_commits(
        [
            commit(
                10,
                [doc(f"d{n}", f"k{n}".encode()) for n in order],
                [live(key(f"k{n}"), f"d{n}") for n in order],
            )
        ]
    )


def expected_entries(*numbers: int, ts: int = 10) -> list[tuple[bytes, str, int, bytes]]:
    return [(key(f"k{n}"), f"d{n}", ts, f"k{n}".encode()) for n in numbers]


async def test_index_scan_orders_ascending_and_descending(persistence: Persistence) -> None:
    await write_five_keys(persistence)
    assert await scan(persistence, 10) == expected_entries(1, 2, 3, 4, 5)
    assert await scan(persistence, 10, Order.DESC) == expected_entries(5, 4, 3, 2, 1)
    assert await scan(persistence, 10, "desc") == expected_entries(5, 4, 3, 2, 1)  # type: ignore[arg-type]


async def test_index_scan_applies_limits(persistence: Persistence) -> None:
    await write_five_keys(persistence)
    assert await scan(persistence, 10, limit=2) == expected_entries(1, 2)
    assert await scan(persistence, 10, Order.DESC, limit=2) == expected_entries(5, 4)
    assert await scan(persistence, 10, limit=0) == []


async def test_index_scan_range_includes_start_and_excludes_end(persistence: Persistence) -> None:
    await write_five_keys(persistence)
    start, end = key("k2"), key("k4")
    assert await scan(persistence, 10, start=start, end=end) == expected_entries(2, 3)
    assert await scan(persistence, 10, Order.DESC, start=start, end=end) == expected_entries(3, 2)
    assert await scan(persistence, 10, start=key("k3"), end=key("k3")) == []
    assert await scan(persistence, 10, start=key("k4"), end=key("k2")) == []


async def test_index_scan_before_first_commit_is_empty(persistence: Persistence) -> None:
    await write_five_keys(persistence)
    assert await scan(persistence, 9) == []


async def test_index_scan_skips_tombstones_without_counting_them(
    persistence: Persistence,
) -> None:
    await write_five_keys(persistence)
    deletions = [doc("d2", None), doc("d3", None)]
    await persistence.write_commits(
        [commit(20, deletions, [gone(key("k2"), "d2"), gone(key("k3"), "d3")])]
    )
    assert await scan(persistence, 20, limit=2) == expected_entries(1, 4)
    assert await scan(persistence, 20, Order.DESC, limit=3) == expected_entries(5, 4, 1)
    assert await scan(persistence, 19, limit=2) == expected_entries(1, 2)


async def test_index_scan_uses_only_the_newest_version_of_a_key(
    persistence: Persistence,
) -> None:
    for ts in (10, 20, 30):
        value = f"v{ts}".encode()
        await persistence.write_commits([commit(ts, [doc("a", value)], [live(key("same"), "a")])])
    for snapshot, version in ((10, 10), (25, 20), (99, 30)):
        entries = await scan(persistence, snapshot)
        assert entries == [(key("same"), "a", version, f"v{version}".encode())]


async def test_index_scan_follows_a_key_change(persistence: Persistence) -> None:
    await persistence.write_commits([put(10, "a", b"m")])
    await persistence.write_commits([put(11, "b", b"p")])
    await persistence.write_commits([put(20, "a", b"z", old_key=key("m"))])
    assert await scan(persistence, 15) == [
        (key("m"), "a", 10, b"m"),
        (key("p"), "b", 11, b"p"),
    ]
    assert await scan(persistence, 20) == [
        (key("p"), "b", 11, b"p"),
        (key("z"), "a", 20, b"z"),
    ]
    assert await scan(persistence, 20, Order.DESC, limit=1) == [(key("z"), "a", 20, b"z")]


async def test_index_scan_keeps_indexes_apart(persistence: Persistence) -> None:
    await persistence.write_commits(
        [
            commit(
                10,
                [doc("a", b"x"), doc("b", b"y")],
                [live(key("k"), "a", 1), live(key("k"), "b", 2)],
            )
        ]
    )
    assert await scan(persistence, 10, index=1) == [(key("k"), "a", 10, b"x")]
    assert await scan(persistence, 10, index=2) == [(key("k"), "b", 10, b"y")]
    assert await scan(persistence, 10, index=3) == []


async def test_index_scan_returns_index_entries(persistence: Persistence) -> None:
    await persistence.write_commits([put(10, "a", b"m")])
    entries = await persistence.index_scan(INDEX, TABLE, b"", MAX_KEY, 10, Order.ASC, 5)
    assert entries == [IndexEntry(key("m"), StoredDocument("a", 10, b"m"))]


async def keys_of(
    persistence: Persistence, start: bytes, end: bytes, ts: int, limit: int
) -> list[bytes]:
    entries = await persistence.index_scan(INDEX, TABLE, start, end, ts, Order.ASC, limit)
    return [entry.key for entry in entries]


async def test_index_keys_ranges_are_the_keys_an_index_scan_of_each_range_finds(
    persistence: Persistence,
) -> None:
    await write_five_keys(persistence)
    await persistence.write_commits(
        [commit(20, [doc("d2", None)], [gone(key("k2"), "d2")]), put(21, "d4", b"k9", key("k4"))]
    )
    ranges = [(key("k1"), key("k4")), (b"", MAX_KEY), (key("k3"), key("k3")), (key("k5"), MAX_KEY)]
    for ts in (10, 20, 21, 99):
        for limit in (0, 1, 2, 100):
            expected = [await keys_of(persistence, start, end, ts, limit) for start, end in ranges]
            found = await persistence.index_keys_ranges(INDEX, ranges, ts, limit)
            assert found == expected, (ts, limit)
    assert await persistence.index_keys_ranges(INDEX, [], 99, 10) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_index_keys_ranges_agree_with_index_scan_on_any_history(
    persistence: Persistence, seed: int
) -> None:
    history = random_history(seed)
    await persistence.write_commits(history)
    ranges = [(b"", MAX_KEY), (key("q"), key("r")), (key("p"), key("q")), (key("r"), MAX_KEY)]
    for ts in range(0, len(history) + 2, 3):
        for limit in (1, 3, 100):
            expected = [await keys_of(persistence, start, end, ts, limit) for start, end in ranges]
            found = await persistence.index_keys_ranges(INDEX, ranges, ts, limit)
            assert found == expected, (ts, limit)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_get_documents_is_get_document_of_each_id_in_order(
    persistence: Persistence, seed: int
) -> None:
    history = random_history(seed)
    await persistence.write_commits(history)
    ids = [*sorted({w.id for c in history for w in c.documents}, reverse=True), "absent"]
    for ts in range(0, len(history) + 2, 3):
        expected = [await persistence.get_document(TABLE, id, ts) for id in ids]
        assert await persistence.get_documents(TABLE, ids, ts) == expected, ts
        assert await persistence.get_documents(TABLE, ids[::2], ts) == expected[::2], ts
    assert await persistence.get_documents(TABLE, [], 99) == []


async def test_negative_limits_are_rejected(persistence: Persistence) -> None:
    with pytest.raises(ValueError, match="limit must be >= 0"):
        await scan(persistence, 10, limit=-1)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        await persistence.table_scan(TABLE, 10, None, -1)


# -- commits -------------------------------------------------------------------------------
async def test_group_commit_stores_every_commit(persistence: Persistence) -> None:
    group = [put(10, "a", b"a"), put(11, "b", b"b"), put(12, "a", b"c", old_key=key("a"))]
    await persistence.write_commits(group)
    assert await persistence.max_commit_ts() == 12
    assert await persistence.commits_after(0) == [
        CommitRecord(10, b"w10"),
        CommitRecord(11, b"w11"),
        CommitRecord(12, b"w12"),
    ]
    assert await scan(persistence, 12) == [(key("b"), "b", 11, b"b"), (key("c"), "a", 12, b"c")]
    assert await scan(persistence, 10) == [(key("a"), "a", 10, b"a")]


def failing_groups() -> dict[str, list[CommitWrite]]:
    """Groups that each fail on their LAST commit, after valid ones, against first_commit()."""
    duplicate_mutation = MutationRecord("session", 1, 13, b"again")
    return {
        "duplicate commit ts": [put(11, "b", b"b"), put(10, "c", b"c")],
        "duplicate document version": [put(11, "b", b"b"), commit(12, [doc("c", b"1")] * 2)],
        "duplicate mutation record": [
            put(11, "b", b"b"),
            commit(13, [doc("c", b"c")], mutation=duplicate_mutation),
        ],
    }


def first_commit() -> CommitWrite:
    record = MutationRecord("session", 1, 10, b"result")
    return commit(10, [doc("a", b"a")], [live(key("a"), "a")], mutation=record)


@pytest.mark.parametrize("seen_ts", [None, 10], ids=["unchecked", "checked"])
@pytest.mark.parametrize("failure", sorted(failing_groups()))
async def test_group_commit_is_all_or_nothing(
    persistence: Persistence, failure: str, seen_ts: int | None
) -> None:
    await persistence.write_commits([first_commit()])
    with pytest.raises(PersistenceError, match="write_commits"):
        await persistence.write_commits(failing_groups()[failure], seen_ts=seen_ts)
    assert await persistence.max_commit_ts() == 10
    assert await persistence.commits_after(10) == []
    assert await persistence.get_document(TABLE, "b", 100) is None
    assert await persistence.get_document(TABLE, "c", 100) is None
    assert await scan(persistence, 100) == [(key("a"), "a", 10, b"a")]
    # The store is still usable after the failed transaction.
    await persistence.write_commits([put(11, "b", b"b")])
    assert await persistence.max_commit_ts() == 11


async def test_a_group_behind_another_process_commit_is_revised_before_it_is_written(
    store_url: str,
) -> None:
    first, second = await open_persistence(store_url), await open_persistence(store_url)
    try:
        await first.write_commits([put(10, "a", b"a")], seen_ts=0)
        learnt: list[CommitRecord] = []

        async def revise(newer: list[CommitRecord]) -> list[CommitWrite]:
            learnt.extend(newer)
            return [put(11, "b", b"b")]

        written = await second.write_commits([put(5, "b", b"b")], seen_ts=0, revise=revise)
        assert learnt == [CommitRecord(10, b"w10")]
        assert [c.ts for c in written] == [11]
        assert await second.commits_after(0) == [CommitRecord(10, b"w10"), CommitRecord(11, b"w11")]
        assert await second.get_document(TABLE, "b", 100) == StoredDocument("b", 11, b"b")
    finally:
        await second.close()
        await first.close()


@pytest.mark.postgres
async def test_postgres_group_commit_is_one_statement_when_no_other_process_committed(
    store: PostgresPersistence,
) -> None:
    """The lock, the check against other processes' commits and the write: one round trip."""
    await store.write_commits([put(10, "a", b"a")], seen_ts=0)  # prepares the statement
    async with store._connection("test", committer=True) as conn:
        statements = conn._con._protocol.queries_count
    await store.write_commits([put(11, "b", b"b"), put(12, "c", b"c")], seen_ts=10)
    async with store._connection("test", committer=True) as conn:
        assert conn._con._protocol.queries_count == statements + 1
    assert await store.max_commit_ts() == 12


async def test_empty_group_writes_nothing(persistence: Persistence) -> None:
    await persistence.write_commits([])
    assert await persistence.max_commit_ts() == 0


async def test_commits_after_lists_newer_commits_oldest_first(persistence: Persistence) -> None:
    await persistence.write_commits([commit(30), commit(10)])
    await persistence.write_commits([commit(20)])
    assert await persistence.commits_after(0) == [
        CommitRecord(10, b"w10"),
        CommitRecord(20, b"w20"),
        CommitRecord(30, b"w30"),
    ]
    assert await persistence.commits_after(10) == [
        CommitRecord(20, b"w20"),
        CommitRecord(30, b"w30"),
    ]
    assert await persistence.commits_after(29) == [CommitRecord(30, b"w30")]
    assert await persistence.commits_after(30) == []


async def test_large_timestamps_round_trip(persistence: Persistence) -> None:
    ts = 2**63 - 1
    await persistence.write_commits([put(ts, "a", b"a")])
    assert await persistence.max_commit_ts() == ts
    assert await persistence.get_document(TABLE, "a", ts) == StoredDocument("a", ts, b"a")


async def test_mutation_records_are_stored_with_their_commit(persistence: Persistence) -> None:
    assert await persistence.get_mutation("s1", 0) is None
    first = MutationRecord("s1", 0, 10, orjson.dumps({"ok": 1}))
    second = MutationRecord("s1", 1, 20, b"two")
    other_session = MutationRecord("s2", 0, 30, b"three")
    for record in (first, second, other_session):
        await persistence.write_commits([commit(record.ts, mutation=record)])
    assert await persistence.get_mutation("s1", 0) == first
    assert await persistence.get_mutation("s1", 1) == second
    assert await persistence.get_mutation("s2", 0) == other_session
    assert await persistence.get_mutation("s2", 1) is None
    found = await persistence.get_mutations([("s1", 1), ("s2", 1), ("s2", 0), ("nope", 0)])
    assert sorted(found, key=lambda r: r.ts) == [second, other_session]
    assert await persistence.get_mutations([]) == []


async def test_a_mutation_record_keeps_the_identity_that_ran_it(persistence: Persistence) -> None:
    record = MutationRecord("s", 0, 10, b"r", identity="https://issuer|user_1")
    await persistence.write_commits([commit(record.ts, mutation=record)])
    assert await persistence.get_mutation("s", 0) == record


async def test_an_old_sqlite_database_gains_the_identity_column(tmp_path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # mutation_results as it was before identities
        conn.execute(
            "CREATE TABLE mutation_results (session_id TEXT NOT NULL, request_id INTEGER NOT "
            "NULL, ts INTEGER NOT NULL, result BLOB NOT NULL, PRIMARY KEY (session_id, "
            "request_id))"
        )
        conn.execute("INSERT INTO mutation_results VALUES ('s', 0, 5, x'00')")
    store = await open_persistence(f"sqlite:///{path}")
    try:
        assert await store.get_mutation("s", 0) == MutationRecord("s", 0, 5, b"\x00", "")
    finally:
        await store.close()
    again = await open_persistence(f"sqlite:///{path}")  # a second open adds nothing
    await again.close()


async def test_prune_mutations_removes_only_older_records(persistence: Persistence) -> None:
    records = [MutationRecord("s", n, ts, b"r") for n, ts in enumerate((10, 20, 30))]
    await persistence.write_commits([commit(r.ts, mutation=r) for r in records])
    assert await persistence.prune_mutations(20) == 1
    assert await persistence.get_mutation("s", 0) is None
    assert await persistence.get_mutation("s", 1) == records[1]
    assert await persistence.prune(100) == 2  # commits only: mutation records stay
    assert await persistence.get_mutation("s", 2) == records[2]


# -- durability ----------------------------------------------------------------------------
async def test_everything_survives_close_and_reopen(store_url: str) -> None:
    store = await open_persistence(store_url)
    record = MutationRecord("s", 7, 20, b"done")
    await store.create_table("messages", TABLE)
    index = await store.create_index(TABLE, "by_value", ("value",), IndexState.READY)
    await store.set_meta("instance", b"abc")
    await store.write_commits([put(10, "a", b"a"), commit(20, [doc("b", b"b")], mutation=record)])
    await store.close()

    reopened = await open_persistence(store_url)
    try:
        assert await reopened.max_commit_ts() == 20
        assert await reopened.load_tables() == [TableMeta("messages", TABLE)]
        assert await reopened.load_indexes() == [index]
        assert await reopened.get_meta("instance") == b"abc"
        assert await reopened.get_mutation("s", 7) == record
        assert await reopened.get_document(TABLE, "b", 20) == StoredDocument("b", 20, b"b")
        assert await scan(reopened, 20) == [(key("a"), "a", 10, b"a")]
    finally:
        await reopened.close()


async def test_closed_store_raises_storage_error(store_url: str) -> None:
    store = await open_persistence(store_url)
    await store.close()
    await store.close()  # closing twice is harmless
    with pytest.raises(PersistenceError, match="not open"):
        await store.max_commit_ts()
    with pytest.raises(PersistenceError, match="not open"):
        await store.write_commits([put(10, "a", b"a")])


# -- index backfill and removal ------------------------------------------------------------
async def test_write_index_entries_backfills_at_document_timestamps(
    persistence: Persistence,
) -> None:
    await persistence.write_commits([commit(10, [doc("a", b"a")]), commit(20, [doc("b", b"b")])])
    backfill = [(live(key("b"), "b", 11), 20), (live(key("a"), "a", 11), 10)]
    await persistence.write_index_entries(backfill)
    await persistence.write_index_entries(backfill)  # re-running a backfill is harmless
    assert await scan(persistence, 15, index=11) == [(key("a"), "a", 10, b"a")]
    assert await scan(persistence, 20, index=11) == [
        (key("a"), "a", 10, b"a"),
        (key("b"), "b", 20, b"b"),
    ]
    assert await persistence.max_commit_ts() == 20


async def test_write_index_entries_keeps_existing_rows(persistence: Persistence) -> None:
    await persistence.write_commits([put(10, "a", b"a")])
    await persistence.write_index_entries([(gone(key("a"), "a"), 10)])
    assert await scan(persistence, 10) == [(key("a"), "a", 10, b"a")]


async def test_drop_index_removes_its_metadata_and_entries(persistence: Persistence) -> None:
    kept = IndexMeta(1, TABLE, "kept", ("x",))
    await persistence.save_index(kept)
    await persistence.save_index(IndexMeta(2, TABLE, "dropped", ("y",)))
    await persistence.write_commits(
        [commit(10, [doc("a", b"a")], [live(key("a"), "a", 1), live(key("a"), "a", 2)])]
    )
    await persistence.drop_index(2)
    assert await persistence.load_indexes() == [kept]
    assert await scan(persistence, 10, index=2) == []
    assert await scan(persistence, 10, index=1) == [(key("a"), "a", 10, b"a")]
    await persistence.drop_index(99)  # dropping an unknown index is a no-op


# -- pruning -------------------------------------------------------------------------------
async def test_prune_removes_exactly_the_invisible_rows(persistence: Persistence) -> None:
    await persistence.write_commits(
        [
            commit(
                10, [doc("a", b"a1"), doc("b", b"b1")], [live(key("a"), "a"), live(key("b"), "b")]
            ),
            commit(
                20, [doc("a", b"a2"), doc("b", None)], [live(key("a"), "a"), gone(key("b"), "b")]
            ),
            put(35, "c", b"c"),
            commit(40, [doc("a", b"a3")], [gone(key("a"), "a"), live(key("a3"), "a")]),
        ]
    )
    # documents: a@10, b@10, b@20 (tombstone); index rows: a@10, b@10, b@20; commits 10, 20.
    assert await persistence.prune(30) == 8
    assert await persistence.get_document(TABLE, "a", 15) is None
    assert await persistence.get_document(TABLE, "a", 30) == StoredDocument("a", 20, b"a2")
    assert await scan(persistence, 30) == [(key("a"), "a", 20, b"a2")]
    assert await persistence.commits_after(0) == [
        CommitRecord(35, b"w35"),
        CommitRecord(40, b"w40"),
    ]
    assert await persistence.prune(30) == 0


async def test_prune_keeps_the_newest_commit(persistence: Persistence) -> None:
    await persistence.write_commits([put(10, "a", b"a"), put(20, "a", b"b", old_key=key("a"))])
    await persistence.prune(1000)
    assert await persistence.max_commit_ts() == 20
    assert await persistence.commits_after(0) == [CommitRecord(20, b"w20")]
    assert await persistence.get_document(TABLE, "a", 1000) == StoredDocument("a", 20, b"b")


def random_history(seed: int, commits: int = 60) -> list[CommitWrite]:
    """Inserts, updates (same key or a new one) and deletes of a few documents, as a committer
    would write them: every document version comes with its index rows at the same ts."""
    rng = random.Random(seed)
    current: dict[str, bytes] = {}
    history = []
    for ts in range(1, commits + 1):
        id = rng.choice("abcdef")
        old = current.get(id)
        if old is not None and rng.random() < 0.3:
            del current[id]
            history.append(commit(ts, [doc(id, None)], [gone(key(old.decode() + id), id)]))
            continue
        value = rng.choice([b"p", b"q", b"r"])
        current[id] = value
        entries = [live(key(value.decode() + id), id)]
        if old is not None and old != value:
            entries.insert(0, gone(key(old.decode() + id), id))
        history.append(commit(ts, [doc(id, value + str(ts).encode())], entries))
    return history


def expected_prune_count(history: list[CommitWrite], before_ts: int) -> int:
    """Rows prune(before_ts) must delete, counted from first principles: per document and per
    index key, every version at or before before_ts except the newest one, and that one too if
    it is a tombstone; plus every commit record before before_ts except the newest commit."""
    deleted_flags: dict[tuple[str, object], list[bool]] = {}
    for c in (c for c in history if c.ts <= before_ts):
        for d in c.documents:
            deleted_flags.setdefault(("doc", d.id), []).append(d.value is None)
        for i in c.indexes:
            deleted_flags.setdefault(("key", i.key), []).append(i.deleted)
    versions = sum(len(flags) - 1 + flags[-1] for flags in deleted_flags.values())
    newest = max(c.ts for c in history)
    return versions + sum(1 for c in history if c.ts < before_ts and c.ts != newest)


async def view_at(store: Persistence, ts: int) -> list[Any]:
    """Everything a reader can observe at snapshot `ts`."""
    return [
        await store.table_scan(TABLE, ts, None, 100),
        await store.table_scan(TABLE, ts, "b", 2),
        await store.index_scan(INDEX, TABLE, b"", MAX_KEY, ts, Order.ASC, 100),
        await store.index_scan(INDEX, TABLE, b"", MAX_KEY, ts, Order.DESC, 2),
        await store.index_scan(INDEX, TABLE, key("q"), key("r"), ts, Order.ASC, 100),
        [await store.get_document(TABLE, id, ts) for id in "abcdef"],
        await store.commits_after(ts),
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_prune_leaves_every_later_snapshot_identical(
    persistence: Persistence, seed: int
) -> None:
    history = random_history(seed)
    await persistence.write_commits(history)
    before_ts = 40
    snapshots = range(before_ts, len(history) + 2)
    views = [await view_at(persistence, ts) for ts in snapshots]
    assert await persistence.prune(before_ts) == expected_prune_count(history, before_ts)
    assert [await view_at(persistence, ts) for ts in snapshots] == views
    assert await persistence.prune(before_ts) == 0


# -- efficiency ----------------------------------------------------------------------------
async def write_many_keys(store: Persistence, count: int) -> None:
    names = [f"{n:06d}" for n in range(count)]
    documents = [doc(f"d{name}", name.encode()) for name in names]
    entries = [live(key(name), f"d{name}") for name in reversed(names)]
    await store.write_commits([commit(10, documents, entries)])
    deletions = [gone(key(name), f"d{name}") for name in names[:5]]
    await store.write_commits([commit(20, [doc(f"d{n}", None) for n in names[:5]], deletions)])


def sqlite_index_scan_plan(url: str, sql: str) -> str:
    conn = sqlite3.connect(sqlite_backend.sqlite_path(url))
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, (INDEX, b"", MAX_KEY, 20, 1, 10))
        return "\n".join(row[3] for row in rows)
    finally:
        conn.close()


def find_plan_node(node: dict[str, Any], alias: str) -> dict[str, Any] | None:
    if node.get("Alias") == alias:
        return node
    for child in node.get("Plans", []):
        found = find_plan_node(child, alias)
        if found is not None:
            return found
    return None


async def postgres_index_scan_node(url: str, sql: str) -> dict[str, Any]:
    dsn, schema = postgres_backend.split_schema(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": f'"{schema}"'})
    try:
        await conn.execute("ANALYZE")
        params = (INDEX, b"", MAX_KEY, 20, TABLE, 10)
        plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *params)
    finally:
        await conn.close()
    node = find_plan_node(orjson.loads(plan)[0]["Plan"], "i")
    assert node is not None, plan
    return node


async def test_index_scan_walks_the_primary_key_and_stops_early(
    persistence: Persistence, store_url: str
) -> None:
    await write_many_keys(persistence, 10_000)
    first = await scan(persistence, 20, limit=10)
    assert [entry[1] for entry in first] == [f"d{n:06d}" for n in range(5, 15)]
    last = await scan(persistence, 20, Order.DESC, limit=10)
    assert [entry[1] for entry in last] == [f"d{n:06d}" for n in range(9999, 9989, -1)]
    for sql in ("INDEX_SCAN_ASC", "INDEX_SCAN_DESC"):
        if store_url.startswith("sqlite"):
            plan = sqlite_index_scan_plan(store_url, getattr(sqlite_backend, sql))
            assert "SEARCH i USING PRIMARY KEY (index_id=? AND key>? AND key<?)" in plan
            assert "TEMP B-TREE" not in plan  # no sort: rows come in key order
        else:
            node = await postgres_index_scan_node(store_url, getattr(postgres_backend, sql))
            assert node["Node Type"] in ("Index Scan", "Index Only Scan")
            assert node["Index Name"] == "indexes_pkey"
            # 5 tombstones + 10 live rows read, of 10,005: the scan stopped at the limit.
            assert node["Actual Rows"] <= 15


# -- URLs and options ----------------------------------------------------------------------
def test_default_database_url_is_embedded_sqlite() -> None:
    assert DEFAULT_DATABASE_URL == "sqlite:///.reactive/data.db"
    assert sqlite_backend.sqlite_path(DEFAULT_DATABASE_URL).as_posix() == ".reactive/data.db"


def test_unknown_url_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"'mysql'.*sqlite:///.*postgresql://"):
        create_persistence("mysql://root@localhost/db")


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite:///", "sqlite://host/file.db"])
def test_sqlite_url_must_name_a_file(url: str) -> None:
    with pytest.raises(ValueError, match="SQLite URL"):
        create_persistence(url)


def test_sqlite_synchronous_mode_is_checked() -> None:
    store = create_persistence("sqlite:///x.db", synchronous="normal")
    assert isinstance(store, sqlite_backend.SqlitePersistence)
    assert store.synchronous == "NORMAL"
    with pytest.raises(ValueError, match="synchronous must be one of"):
        create_persistence("sqlite:///x.db", synchronous="FAST")


async def test_sqlite_relative_path_is_created_under_the_cwd(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_persistence("sqlite:///nested/dir/data.db", synchronous="NORMAL")
    try:
        await store.write_commits([put(10, "a", b"a")])
    finally:
        await store.close()
    path = tmp_path / "nested" / "dir" / "data.db"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT ts FROM commits").fetchall() == [(10,)]
    finally:
        conn.close()


def test_postgres_schema_parameter_is_split_off() -> None:
    url = "postgresql://u@h:5/db?sslmode=disable&schema=t_1"
    assert postgres_backend.split_schema(url) == ("postgresql://u@h:5/db?sslmode=disable", "t_1")
    assert postgres_backend.split_schema("postgres://u@h/db") == ("postgres://u@h/db", None)


@pytest.mark.parametrize("schema", ["1abc", "a-b", 'x"; DROP', "a" * 64])
def test_postgres_schema_name_is_checked(schema: str) -> None:
    with pytest.raises(ValueError, match="invalid schema name"):
        create_persistence(f"postgresql://u@h/db?schema={schema}")


async def test_unreachable_postgres_raises_storage_error() -> None:
    with pytest.raises(PersistenceError, match=r"PostgreSQL at 127\.0\.0\.1:1/db") as raised:
        await open_persistence("postgresql://u:secret@127.0.0.1:1/db")
    assert "secret" not in str(raised.value)


@pytest.mark.postgres
async def test_a_connection_asyncpg_finds_stuck_is_dropped_and_reported_unavailable(
    store: PostgresPersistence, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen after the database went away under a cancelled query: asyncpg then refuses the
    pooled connection ("another operation is in progress"). It is never handed out again; a
    read tries another, and only if none answers is it a 503 the client retries, not a 500."""
    from reactive.errors import DatabaseUnavailableError

    (before,) = await store._fetch("test", "SELECT pg_backend_pid()")
    real_fetch = asyncpg.connection.Connection.fetch
    stuck = ["once"]

    async def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        if stuck:
            stuck.pop()
            raise asyncpg.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            )
        return await real_fetch(self, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "fetch", fetch)
    assert await store.max_commit_ts() == 0  # read again on a new connection
    (after,) = await store._fetch("test", "SELECT pg_backend_pid()")
    assert after[0] != before[0]  # the pool's one connection is a new one
    stuck.extend(["again"] * 2)  # every connection the read tries
    with pytest.raises(DatabaseUnavailableError, match="another operation"):
        await store.max_commit_ts()


@pytest.mark.postgres
async def test_a_pooled_connection_keeps_no_transaction_and_no_lock_when_released(
    postgres_store_url: str,
) -> None:
    """A pooled connection goes back clean: no open transaction, not exclusive()'s lock."""
    store = PostgresPersistence(postgres_store_url, min_size=1, max_size=1)
    other = PostgresPersistence(postgres_store_url, min_size=1, max_size=1)
    await store.open()
    await other.open()
    try:
        async with store._connection("test") as conn:
            await conn.execute("BEGIN")
            await conn.execute("SELECT 1")  # then given back with the transaction open
        async with store._connection("test") as conn:  # the pool's one connection again
            assert not conn.is_in_transaction()
        async with store.exclusive("chores", wait=True) as held:
            assert held
        async with other.exclusive("chores", wait=False) as held_elsewhere:
            assert held_elsewhere  # the first store's pooled connection let it go
    finally:
        await other.close()
        await store.close()


@pytest.fixture
async def store(postgres_store_url: str) -> AsyncIterator[PostgresPersistence]:
    """A PostgreSQL store whose pool holds one connection, so that a test meets it again."""
    one = PostgresPersistence(postgres_store_url, min_size=1, max_size=1)
    await one.open()
    try:
        yield one
    finally:
        await one.close()


async def _database_file_growth(tmp_path, monkeypatch, interval_s: float) -> int:  # type: ignore[no-untyped-def]
    """Bytes the SQLite database file (not its WAL) grew by after 1 MiB of commits and a
    wait, with background checkpoints every `interval_s`."""
    from reactive import knobs
    from reactive.database import Database
    from tests.schemas import TEST_SCHEMA

    monkeypatch.setattr(knobs, "SQLITE_CHECKPOINT_INTERVAL_S", interval_s)
    path = tmp_path / f"checkpoints-{interval_s}.db"
    db = await Database.open(f"sqlite:///{path}", schema=TEST_SCHEMA, prune=False)
    try:
        store = db.persistence
        assert isinstance(store, sqlite_backend.SqlitePersistence)
        writer_setting = await store._in_writer_thread(
            "test",
            lambda: store._writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0],  # type: ignore[union-attr]
        )
        # The writer's commits checkpoint only past this many WAL pages (64 MiB), a backstop.
        assert writer_setting == knobs.SQLITE_WAL_CHECKPOINT_PAGES >= 16_384
        before = path.stat().st_size
        for i in range(256):
            await db.run_mutation(
                lambda tx, i=i: tx.insert("messages", {"channel": "c", "body": f"{i}" * 4096})
            )
        await asyncio.sleep(0.5)
        return path.stat().st_size - before
    finally:
        await db.close()


async def test_sqlite_checkpoints_beside_the_writer_not_inside_its_commits(
    tmp_path, monkeypatch
) -> None:
    assert await _database_file_growth(tmp_path, monkeypatch, 0.05) > 512 * 1024
    assert await _database_file_growth(tmp_path, monkeypatch, 60.0) < 64 * 1024  # all in WAL


async def test_sqlite_wal_starts_over_under_steady_writes(tmp_path, monkeypatch) -> None:
    """The background checkpointer alone never sees the WAL fully copied while commits keep
    coming, so the WAL never started over: it grew by 3 GB while 60k documents were indexed.
    The writer's own checkpoint past SQLITE_WAL_CHECKPOINT_PAGES bounds it."""
    from reactive import knobs
    from reactive.database import Database
    from tests.schemas import TEST_SCHEMA

    monkeypatch.setattr(knobs, "SQLITE_CHECKPOINT_INTERVAL_S", 0.001)  # always behind
    monkeypatch.setattr(knobs, "SQLITE_WAL_CHECKPOINT_PAGES", 64)
    path = tmp_path / "steady.db"
    db = await Database.open(f"sqlite:///{path}", schema=TEST_SCHEMA, prune=False)
    try:
        for i in range(400):  # ~4 MiB of documents, one commit each, back to back
            await db.run_mutation(
                lambda tx, i=i: tx.insert("messages", {"channel": "c", "body": f"{i}" * 10_000})
            )
        wal = path.with_name(path.name + "-wal").stat().st_size
        assert wal < 2 * 1024 * 1024, wal  # about 64 pages and a commit, not all 4 MiB
    finally:
        await db.close()


async def test_sqlite_wal_starts_over_after_each_background_checkpoint(
    tmp_path, monkeypatch
) -> None:
    """A background pass leaves behind what was committed while it ran; the writer copies that
    tail between two commits, so the next commit starts the WAL over, long before the
    writer's own checkpoint past SQLITE_WAL_CHECKPOINT_PAGES (16k pages)."""
    from reactive import knobs
    from reactive.database import Database
    from tests.schemas import TEST_SCHEMA

    monkeypatch.setattr(knobs, "SQLITE_CHECKPOINT_INTERVAL_S", 0.02)
    path = tmp_path / "restarts.db"
    db = await Database.open(f"sqlite:///{path}", schema=TEST_SCHEMA, prune=False)
    try:
        store = db.persistence
        assert isinstance(store, sqlite_backend.SqlitePersistence)
        commits = 300
        for i in range(commits):  # steady, so a pass beside the writer is always behind
            await db.run_mutation(
                lambda tx, i=i: tx.insert("messages", {"channel": "c", "body": f"{i}" * 2000})
            )
            await asyncio.sleep(0.001)
        frames = await store._in_writer_thread(
            "test",
            lambda: store._writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1],  # type: ignore[union-attr]
        )
        assert frames < commits, frames  # every commit writes a frame or more since a restart
    finally:
        await db.close()


async def test_sqlite_close_waits_for_a_running_checkpoint_before_closing_its_connection(
    tmp_path, monkeypatch
) -> None:
    # Closing a connection while another thread checkpoints on it crashed CI's process.
    from reactive import knobs

    monkeypatch.setattr(knobs, "SQLITE_CHECKPOINT_INTERVAL_S", 0.01)
    started = threading.Event()
    finished: list[str] = []
    real_checkpoint = sqlite_backend._checkpoint

    def slow_checkpoint(conn: sqlite3.Connection) -> None:
        started.set()
        time.sleep(0.2)  # close() is called meanwhile
        real_checkpoint(conn)  # would raise "closed database" if close() did not wait
        finished.append("checkpoint")

    monkeypatch.setattr(sqlite_backend, "_checkpoint", slow_checkpoint)
    store = sqlite_backend.SqlitePersistence(f"sqlite:///{tmp_path / 'closing.db'}")
    await store.open()
    await asyncio.to_thread(started.wait, 5)
    await store.close()
    assert finished == ["checkpoint"]


def _unsolicited_fatal() -> bytes:
    """The ErrorResponse a backend sends as it is terminated (pg_terminate_backend)."""
    fields = b"SFATAL\0C57P01\0Mterminating connection due to administrator command\0\0"
    return b"E" + struct.pack("!i", len(fields) + 4) + fields


@pytest.mark.postgres
async def test_a_released_connection_is_pooled_without_a_round_trip(
    store: PostgresPersistence,
) -> None:
    await store.max_commit_ts()
    async with store._connection("test") as conn:
        statements = conn._con._protocol.queries_count
    await store.max_commit_ts()  # the pool's one connection: one statement, then released
    async with store._connection("test") as conn:
        assert conn._con._protocol.queries_count == statements + 1


@pytest.mark.postgres
async def test_a_connection_broken_while_pooled_is_dropped_and_the_read_still_answers(
    postgres_store_url: str,
) -> None:
    """A backend killed under an idle pooled connection sends FATAL before the socket ends; in
    between, a statement on it fails inside asyncpg (InternalClientError) without being sent.
    The read is made on another connection instead of failing."""
    store = PostgresPersistence(postgres_store_url, min_size=1, max_size=2)
    await store.open()
    try:
        async with store._connection("a") as first, store._connection("b") as second:
            broken = [first.get_server_pid(), second.get_server_pid()]
        async with store._connection("a") as first, store._connection("b") as second:
            for conn in (first, second):  # both pooled connections, as when the server restarts
                conn._con._protocol.data_received(_unsolicited_fatal())
        assert await store.max_commit_ts() == 0
        async with store._connection("test") as conn:
            assert conn.get_server_pid() not in broken
    finally:
        await store.close()


@pytest.mark.postgres
async def test_a_connection_whose_statement_was_cut_off_is_never_pooled_again(
    store: PostgresPersistence,
) -> None:
    async with store._connection("test") as conn:
        cut_off = conn.get_server_pid()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await store._fetch("sleep", "SELECT pg_sleep(30)")
    with pytest.raises(PersistenceError, match="duplicate key"):
        async with store._transaction("failing") as conn:
            failed = conn.get_server_pid()
            await conn.execute("INSERT INTO meta (key, value) VALUES ('k', ''), ('k', '')")
    async with store._connection("test") as conn:
        assert conn.get_server_pid() not in (cut_off, failed)
        assert not conn.is_in_transaction()
    started = time.monotonic()
    assert await store.max_commit_ts() == 0
    assert time.monotonic() - started < 5.0  # not queued behind the cut-off pg_sleep


@pytest.mark.postgres
async def test_a_commit_lock_held_past_the_idle_transaction_timeout_still_writes(
    postgres_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema change holds the commit lock while it backfills, longer than PostgreSQL lets
    a transaction sit idle (POSTGRES_IDLE_TX_TIMEOUT_S): the holder keeps its session alive
    and still writes. Once it stops (written, or given up), nothing talks any more."""
    monkeypatch.setattr(knobs, "POSTGRES_IDLE_TX_TIMEOUT_S", 0.4)
    store = PostgresPersistence(postgres_store_url, min_size=1, max_size=2)
    await store.open()
    try:
        async with store.hold_commit_lock(0) as held:
            await asyncio.sleep(1.5)  # nearly 4 timeouts without a statement of its own
            await held.write([put(10, "a", b"m")])
        assert await store.max_commit_ts() == 10
        async with store.hold_commit_lock(10):
            await asyncio.sleep(1.0)  # given up: rolled back, and the lock free again
        async with store.hold_commit_lock(10) as held:
            await held.write([put(11, "b", b"n")])
        assert await store.max_commit_ts() == 11
    finally:
        await store.close()


@pytest.mark.postgres
async def test_an_index_table_of_an_older_database_gets_its_covering_primary_key_on_open(
    postgres_store_url: str,
) -> None:
    """Databases created before the primary key of `indexes` carried `deleted` (which makes a
    search's key scans index-only) are upgraded on open, their rows kept."""
    store = PostgresPersistence(postgres_store_url)
    await store.open()
    await store.write_commits([put(10, "a", b"m")])
    async with store._transaction("test") as conn:
        await conn.execute(
            "ALTER TABLE indexes DROP CONSTRAINT indexes_pkey, "
            "ADD CONSTRAINT indexes_pkey PRIMARY KEY (index_id, key, ts)"
        )
        assert not await conn.fetchval(INDEX_KEY_COVERS_DELETED)
    await store.close()
    store = PostgresPersistence(postgres_store_url)
    await store.open()
    try:
        async with store._connection("test") as conn:
            assert await conn.fetchval(INDEX_KEY_COVERS_DELETED)
        assert await store.index_keys_ranges(INDEX, [(b"", MAX_KEY)], 10, 10) == [[key("m")]]
    finally:
        await store.close()


async def test_sqlite_writes_alone_inline_unless_the_group_is_large_the_lock_busy_or_the_disk_slow(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small group written `alone` is written on the event loop (no trip to the writer
    thread); without `alone`, a large group, one that meets another process's write lock, and
    every one for a while after a slow inline write go to the thread; all of them land."""
    store = sqlite_backend.SqlitePersistence(f"sqlite:///{tmp_path / 'inline.db'}")
    await store.open()
    try:
        opened = store._thread_work
        await store.write_commits([put(10, "a", b"a")], seen_ts=0, alone=True)
        assert store._thread_work is opened  # inline
        await store.write_commits([put(11, "b", b"b")], seen_ts=10)
        assert store._thread_work is not opened  # not alone: the thread

        monkeypatch.setattr(knobs, "SQLITE_INLINE_WRITE_MAX_ROWS", 3)
        before = store._thread_work
        await store.write_commits([put(12, "c", b"c"), put(13, "d", b"d")], seen_ts=11, alone=True)
        assert store._thread_work is not before  # 6 rows: the thread
        monkeypatch.setattr(knobs, "SQLITE_INLINE_WRITE_MAX_ROWS", 64)

        other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock a while
        asyncio.get_running_loop().call_later(0.3, other.execute, "ROLLBACK")
        before = store._thread_work
        loop_turns = 0

        async def count_turns() -> None:
            nonlocal loop_turns
            while True:
                loop_turns += 1
                await asyncio.sleep(0.01)

        counter = asyncio.create_task(count_turns())
        await store.write_commits([put(14, "e", b"e")], seen_ts=13, alone=True)
        counter.cancel()
        other.close()
        assert store._thread_work is not before  # waited in the thread...
        assert loop_turns >= 10  # ...while the event loop went on

        monkeypatch.setattr(knobs, "SQLITE_INLINE_WRITE_MAX_S", 0.0)  # every write is "slow"
        before = store._thread_work
        await store.write_commits([put(15, "f", b"f")], seen_ts=14, alone=True)
        assert store._thread_work is before  # written inline, found slow...
        await store.write_commits([put(16, "g", b"g")], seen_ts=15, alone=True)
        assert store._thread_work is not before  # ...so the next one goes to the thread
        assert [c.ts for c in await store.commits_after(0)] == [10, 11, 12, 13, 14, 15, 16]
    finally:
        await store.close()


async def test_sqlite_reads_never_see_a_held_transactions_uncommitted_writes(tmp_path: Any) -> None:
    """Reads run on the writer connection while it is idle (its page cache holds what it
    wrote), never while a transaction is open on it: what the holder of the commit lock
    wrote stays unseen until it commits, and is gone when it gives up."""
    store = sqlite_backend.SqlitePersistence(f"sqlite:///{tmp_path / 'reads.db'}")
    await store.open()
    try:
        await store.write_commits([put(10, "a", b"a")], seen_ts=0, alone=True)
        assert [c.ts for c in await store.commits_after(0)] == [10]  # read beside the writer
        async with store.hold_commit_lock(10):
            assert await store.setdefault_meta("held", b"x") == b"x"  # inside the transaction
            assert await store.get_meta("held") is None  # not committed: not seen
        assert await store.get_meta("held") is None  # given up: rolled back
        async with store.hold_commit_lock(10) as held:
            await store.setdefault_meta("held", b"y")
            await held.write([put(11, "b", b"b")])
        assert await store.get_meta("held") == b"y"
        assert await store.max_commit_ts() == 11
    finally:
        await store.close()


def test_sqlite_inline_writes_pause_for_a_slow_disk_not_for_one_slow_fsync() -> None:
    store = sqlite_backend.SqlitePersistence("sqlite:///unused.db")
    limit = knobs.SQLITE_INLINE_WRITE_MAX_S
    for took in (0.0003, 2 * limit, 0.0003, 0.0003):  # one hiccup among fast writes
        store._inline_write_took(took)
    assert store._inline_paused_until == 0.0
    for _ in range(3):  # a disk that stays slow
        store._inline_write_took(2 * limit)
    assert store._inline_paused_until > time.monotonic()
