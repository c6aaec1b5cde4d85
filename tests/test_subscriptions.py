"""The subscription index: precise invalidation, O(log n) matching, one-shot semantics."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from reactive.index_keys import Interval
from reactive.reads import ReadSet, ReadToken
from reactive.recent_writes import RecentWrites
from reactive.subscriptions import IntervalTree, SubscriptionManager, naive_matching

short_bytes = st.binary(min_size=0, max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    intervals=st.lists(st.tuples(short_bytes, short_bytes), max_size=40, unique=True),
    removals=st.integers(min_value=0, max_value=40),
    points=st.lists(short_bytes, max_size=20),
)
def test_interval_tree_stab_matches_brute_force(intervals, removals, points):
    tree = IntervalTree()
    present = []
    for start, end in intervals:
        if start < end:
            tree.add(start, end)
            present.append((start, end))
    for start, end in present[:removals]:
        tree.remove(start, end)
    present = present[removals:]
    assert len(tree) == len(present)
    for point in points:
        found: list[tuple[bytes, bytes]] = []
        tree.stab(point, found)
        assert sorted(found) == sorted(i for i in present if i[0] <= point < i[1])


def token(ts, *reads):
    read_set = ReadSet()
    for index, start, end in reads:
        read_set.record(index, Interval(start, end))
    return ReadToken(read_set, ts)


def test_write_inside_range_invalidates_and_outside_does_not():
    manager = SubscriptionManager(RecentWrites())
    fired = []
    sub = manager.subscribe(token(1, ("t.i", b"\x10", b"\x20")), lambda s, ts: fired.append(ts))
    manager.advance(2, {"t.i": [b"\x20", b"\x05"], "t.other": [b"\x15"]})
    assert fired == [] and sub.active
    manager.advance(3, {"t.i": [b"\x10"]})
    assert fired == [3] and not sub.active and len(manager) == 0


def test_subscriptions_fire_once_and_shared_intervals_are_kept_for_others():
    manager = SubscriptionManager(RecentWrites())
    fired = []
    a = manager.subscribe(token(1, ("t.i", b"\x10", b"\x20")), lambda s, ts: fired.append("a"))
    b = manager.subscribe(token(1, ("t.i", b"\x10", b"\x20")), lambda s, ts: fired.append("b"))
    manager.unsubscribe(a)
    assert manager.interval_count() == 1
    manager.advance(2, {"t.i": [b"\x11"]})
    manager.advance(3, {"t.i": [b"\x11"]})
    assert fired == ["b"] and not b.active and manager.interval_count() == 0


def test_one_callback_serves_many_subscriptions_through_their_owner():
    manager = SubscriptionManager(RecentWrites())
    fired: list[object] = []

    def on_invalidate(sub, ts):  # type: ignore[no-untyped-def]
        fired.append((sub.owner, ts))

    for owner in ("first query", "second query"):
        manager.subscribe(token(1, ("t.i", b"\x10", b"\x20")), on_invalidate, owner)
    manager.advance(2, {"t.i": [b"\x11"]})
    assert sorted(fired) == [("first query", 2), ("second query", 2)]


def test_the_table_level_map_is_kept_only_for_the_baseline():
    manager = SubscriptionManager(RecentWrites())
    sub = manager.subscribe(token(1, ("t.i", b"\x10", b"\x20")), lambda s, ts: None)
    assert manager._by_table == {}
    manager.unsubscribe(sub)
    assert len(manager) == 0 and manager.interval_count() == 0


def test_subscribing_a_stale_token_fires_at_once():
    log = RecentWrites()
    manager = SubscriptionManager(log)
    log.append(5, {"t.i": [b"\x15"]})
    manager.advance(5, {"t.i": [b"\x15"]})  # published
    fired = []
    manager.subscribe(token(1, ("t.i", b"\x10", b"\x20")), lambda s, ts: fired.append(ts))
    manager.subscribe(token(5, ("t.i", b"\x10", b"\x20")), lambda s, ts: fired.append(-ts))
    assert fired == [5]


def test_a_commit_not_yet_published_fires_when_it_is_published_not_at_subscribe():
    # The committer logs a commit before it is durable; a query run at the published ts
    # meanwhile must not be re-run at that same ts again and again (it would spin).
    log = RecentWrites()
    manager = SubscriptionManager(log)
    log.append(5, {"t.i": [b"\x15"]})  # being made durable
    fired = []
    sub = manager.subscribe(token(1, ("t.i", b"\x10", b"\x20")), lambda s, ts: fired.append(ts))
    assert fired == [] and sub.active
    manager.advance(5, {"t.i": [b"\x15"]})
    assert fired == [5] and not sub.active


def test_matching_agrees_with_naive_scan_on_random_workload():
    rng = random.Random(3)
    manager = SubscriptionManager(RecentWrites())
    subs = []
    for _ in range(2000):
        start = bytes([rng.randrange(256)])
        end = start + bytes([rng.randrange(1, 256)])
        subs.append(manager.subscribe(token(1, ("t.i", start, end)), lambda s, ts: None))
    for _ in range(50):
        written = {"t.i": sorted(bytes([rng.randrange(256), rng.randrange(256)]) for _ in range(3))}
        assert {s.id for s in manager.matching(written)} == {
            s.id for s in naive_matching(subs, written)
        }


# -- read-set precision through real queries --------------------------------------------------


async def live(db, fn):
    result = await db.run_query(fn)
    fired = []
    db.subscribe(result.token, lambda sub, ts: fired.append(ts))
    return fired


def latest(channel, n):
    return lambda tx: (
        tx.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", channel))
        .order("desc")
        .take(n)
    )


def oldest(channel, n):
    return lambda tx: (
        tx.query("messages").with_index("by_channel", lambda q: q.eq("channel", channel)).take(n)
    )


async def insert(db, channel, body="x"):
    return (
        await db.run_mutation(lambda tx: tx.insert("messages", {"channel": channel, "body": body}))
    ).value


async def test_insert_in_another_channel_does_not_invalidate(db):
    await insert(db, "a")
    fired = await live(db, latest("a", 10))
    await insert(db, "b")
    assert fired == []
    await insert(db, "a")
    assert len(fired) == 1


async def test_take_boundary_is_exact(db):
    ids = [await insert(db, "a", str(i)) for i in range(5)]
    fired = await live(db, oldest("a", 3))
    await insert(db, "a", "appended after the 3rd key")  # sorts after the 5th: not read
    assert fired == []
    await db.run_mutation(lambda tx: tx.patch(ids[3], {"body": "4th changed"}))  # 4th: not read
    assert fired == []
    await db.run_mutation(lambda tx: tx.patch(ids[2], {"body": "3rd changed"}))  # 3rd: read
    assert len(fired) == 1


async def test_document_leaving_the_range_invalidates(db):
    doc_id = await insert(db, "a")
    fired = await live(db, latest("a", 10))
    await db.run_mutation(lambda tx: tx.patch(doc_id, {"channel": "b"}))
    assert len(fired) == 1


async def test_get_is_invalidated_only_by_its_document(db):
    mine, other = await insert(db, "a"), await insert(db, "a")
    fired = await live(db, lambda tx: tx.get(mine))
    await db.run_mutation(lambda tx: tx.patch(other, {"body": "y"}))
    assert fired == []
    await db.run_mutation(lambda tx: tx.delete(mine))
    assert len(fired) == 1


async def test_first_insert_into_a_new_table_invalidates_its_readers(db):
    fired = await live(db, lambda tx: tx.query("brand_new").collect())
    await db.run_mutation(lambda tx: tx.insert("brand_new", {"x": 1.0}))
    assert len(fired) == 1


def test_table_level_baseline_invalidates_every_reader_of_the_table():
    manager = SubscriptionManager(RecentWrites(), table_level=True)
    fired = []
    manager.subscribe(token(1, ("t.i", b"\x10", b"\x20")), lambda s, ts: fired.append("t"))
    manager.subscribe(token(1, ("u.i", b"\x10", b"\x20")), lambda s, ts: fired.append("u"))
    manager.advance(2, {"t.other": [b"\x99"]})  # outside every range, but the same table
    assert fired == ["t"] and len(manager) == 1
