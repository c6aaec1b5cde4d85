"""Transactions: snapshot reads, read-your-own-writes, precise read sets, bad input."""

from __future__ import annotations

import pytest

from reactive import knobs
from reactive.errors import (
    InvalidCursorError,
    InvalidIdError,
    LimitError,
    NotFoundError,
    QueryError,
    ValidationError,
)
from reactive.ids import new_id
from reactive.index_keys import Interval, encode_key
from reactive.transaction import TransactionLimits
from reactive.values import UNDEFINED


async def insert_messages(db, channel, bodies):
    async def run(tx):
        return [await tx.insert("messages", {"channel": channel, "body": b}) for b in bodies]

    return (await db.run_mutation(run)).value


def by_channel(tx, channel, order="asc"):
    return (
        tx.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", channel))
        .order(order)
    )


async def test_insert_then_get_and_query_in_same_transaction(db):
    tx = db.begin()
    doc_id = await tx.insert("messages", {"channel": "a", "body": "hi"})
    assert (await tx.get(doc_id))["body"] == "hi"
    assert [d["_id"] for d in await by_channel(tx, "a").collect()] == [doc_id]


async def test_reads_see_own_patch_replace_delete_over_stored_data(db):
    ids = await insert_messages(db, "a", ["one", "two", "three"])
    tx = db.begin()
    await tx.patch(ids[0], {"body": "ONE"})
    await tx.replace(ids[1], {"channel": "b", "body": "moved"})
    await tx.delete(ids[2])
    assert [d["body"] for d in await by_channel(tx, "a").collect()] == ["ONE"]
    assert [d["body"] for d in await by_channel(tx, "b").collect()] == ["moved"]
    assert await tx.get(ids[2]) is None


async def test_snapshot_does_not_see_later_commits(db):
    await insert_messages(db, "a", ["one"])
    old = db.begin(read_only=True)
    await insert_messages(db, "a", ["two"])
    assert [d["body"] for d in await by_channel(old, "a").collect()] == ["one"]


async def test_patch_with_undefined_removes_field_and_keeps_system_fields(db):
    [doc_id] = await insert_messages(db, "a", ["x"])

    async def run(tx):
        await tx.patch(doc_id, {"n": 3.0})
        await tx.patch(doc_id, {"n": UNDEFINED})
        return await tx.get(doc_id)

    doc = (await db.run_mutation(run)).value
    assert "n" not in doc and doc["_id"] == doc_id and doc["_creationTime"] > 0


async def test_replace_keeps_creation_time(db):
    [doc_id] = await insert_messages(db, "a", ["x"])
    before = (await db.run_query(lambda tx: tx.get(doc_id))).value

    async def run(tx):
        await tx.replace(doc_id, {"channel": "a", "body": "y"})

    await db.run_mutation(run)
    after = (await db.run_query(lambda tx: tx.get(doc_id))).value
    assert after["_creationTime"] == before["_creationTime"] and after["body"] == "y"


async def test_get_records_one_point_on_by_id(db):
    [doc_id] = await insert_messages(db, "a", ["x"])
    result = await db.run_query(lambda tx: tx.get(doc_id))
    intervals = list(result.token.read_set.intervals("messages.by_id"))
    assert intervals == [Interval.point(encode_key([doc_id]))]


async def test_take_records_up_to_the_last_key_returned(db):
    await insert_messages(db, "a", ["1", "2", "3", "4", "5"])

    async def run(tx):
        return await by_channel(tx, "a").take(3)

    result = await db.run_query(run)
    [interval] = list(result.token.read_set.intervals("messages.by_channel"))
    third = result.value[2]
    third_key = encode_key(["a", third["_creationTime"], third["_id"]])
    assert interval.start == encode_key(["a"])
    assert interval.end == third_key + b"\x00"


async def test_filter_does_not_narrow_the_recorded_range(db):
    await insert_messages(db, "a", ["1", "2", "3"])

    async def run(tx):
        return await by_channel(tx, "a").filter(lambda q: q.eq(q.field("body"), "2")).collect()

    result = await db.run_query(run)
    assert [d["body"] for d in result.value] == ["2"]
    [interval] = list(result.token.read_set.intervals("messages.by_channel"))
    assert interval == Interval.prefix(encode_key(["a"]))


async def test_async_iteration_stops_early_and_records_what_it_saw(db):
    await insert_messages(db, "a", ["1", "2", "3"])

    async def run(tx):
        seen = []
        async for doc in by_channel(tx, "a"):
            seen.append(doc)
            if len(seen) == 2:
                break
        return seen

    result = await db.run_query(run)
    second = result.value[1]
    [interval] = list(result.token.read_set.intervals("messages.by_channel"))
    assert interval.end == encode_key(["a", second["_creationTime"], second["_id"]]) + b"\x00"


async def test_first_unique_and_order(db):
    await insert_messages(db, "a", ["1", "2"])
    await insert_messages(db, "b", ["only"])

    async def run(tx):
        first = await by_channel(tx, "a", "desc").first()
        unique = await by_channel(tx, "b").unique()
        missing = await by_channel(tx, "zzz").unique()
        return first["body"], unique["body"], missing

    assert (await db.run_query(run)).value == ("2", "only", None)


async def test_unique_with_two_results_is_an_error(db):
    await insert_messages(db, "a", ["1", "2"])
    with pytest.raises(QueryError, match="more than one"):
        await db.run_query(lambda tx: by_channel(tx, "a").unique())


async def test_full_table_scan_and_implicit_scan_read_by_creation_time(db):
    await insert_messages(db, "a", ["1", "2"])

    async def run(tx):
        explicit = await tx.query("messages").full_table_scan().collect()
        implicit = await tx.query("messages").order("desc").collect()
        return [d["body"] for d in explicit], [d["body"] for d in implicit]

    assert (await db.run_query(run)).value == (["1", "2"], ["2", "1"])


async def test_query_of_missing_table_is_empty_but_recorded(db):
    result = await db.run_query(lambda tx: tx.query("notyet").collect())
    assert result.value == []
    assert result.token.read_set.intervals("notyet.by_creation_time")


async def test_unknown_index_is_an_error(db):
    with pytest.raises(QueryError, match="not found"):
        await db.run_query(lambda tx: tx.query("messages").with_index("by_nothing").collect())


async def test_range_out_of_index_order_is_an_error(db):
    with pytest.raises(QueryError, match="field order"):
        await db.run_query(
            lambda tx: (
                tx.query("messages").with_index("by_channel_n", lambda q: q.eq("n", 1.0)).collect()
            )
        )


async def test_writes_in_a_query_are_refused(db):
    with pytest.raises(QueryError, match="read-only"):
        await db.run_query(lambda tx: tx.insert("messages", {"channel": "a", "body": "x"}))


@pytest.mark.parametrize(
    "doc",
    [
        {"channel": "a"},  # missing field
        {"channel": "a", "body": 1.0},  # wrong type
        {"channel": "a", "body": "x", "extra": 1.0},  # unknown field
        {"channel": "a", "body": "x", "_secret": 1.0},  # reserved name
        {"channel": "a", "body": "x" * (1 << 20)},  # too large
    ],
)
async def test_invalid_insert_is_refused_and_changes_nothing(db, doc):
    with pytest.raises(ValidationError):
        await db.run_mutation(lambda tx: tx.insert("messages", doc))
    assert (await db.run_query(lambda tx: tx.query("messages").collect())).value == []


async def test_schema_error_names_table_field_and_type(db):
    with pytest.raises(ValidationError) as info:
        await db.run_mutation(lambda tx: tx.insert("messages", {"channel": "a", "body": 5.0}))
    message = str(info.value)
    assert "messages" in message and "body" in message and "string" in message


async def test_bad_ids_are_clear_errors(db):
    [doc_id] = await insert_messages(db, "a", ["x"])
    with pytest.raises(InvalidIdError):
        await db.run_query(lambda tx: tx.get("not-an-id"))
    with pytest.raises(InvalidIdError, match="Invalid id"):
        await db.run_query(lambda tx: tx.get(doc_id[:-1] + ("0" if doc_id[-1] != "0" else "1")))
    missing = new_id(db.catalog.table_number("messages"))
    assert (await db.run_query(lambda tx: tx.get(missing))).value is None
    with pytest.raises(NotFoundError):
        await db.run_mutation(lambda tx: tx.delete(missing))

    async def normalize(tx):
        return (
            tx.normalize_id("messages", doc_id),
            tx.normalize_id("accounts", doc_id),
            tx.normalize_id("messages", "garbage"),
        )

    assert (await db.run_query(normalize)).value == (doc_id, None, None)


async def test_patch_of_missing_document_changes_nothing(db):
    [doc_id] = await insert_messages(db, "a", ["x"])

    async def run(tx):
        await tx.delete(doc_id)
        await tx.patch(doc_id, {"body": "y"})

    with pytest.raises(NotFoundError):
        await db.run_mutation(run)
    assert (await db.run_query(lambda tx: tx.get(doc_id))).value["body"] == "x"


# -- pagination -------------------------------------------------------------------------------


async def page(db, cursor, num=2, journal=None, end=None):
    opts = {"numItems": float(num), "cursor": cursor}
    if end is not None:
        opts["endCursor"] = end

    async def run(tx):
        return await by_channel(tx, "a").paginate(opts)

    return await db.run_query(run, journal=journal)


async def test_paginate_walks_all_pages_without_gaps(db):
    await insert_messages(db, "a", [str(i) for i in range(5)])
    bodies, cursor, done = [], None, False
    while not done:
        result = (await page(db, cursor)).value
        bodies += [d["body"] for d in result["page"]]
        cursor, done = result["continueCursor"], result["isDone"]
        assert isinstance(cursor, str)
    assert bodies == ["0", "1", "2", "3", "4"]


async def test_page_rerun_with_journal_keeps_its_end(db):
    ids = await insert_messages(db, "a", [str(i) for i in range(4)])
    first = await page(db, None)
    assert [d["body"] for d in first.value["page"]] == ["0", "1"]

    # Page one loses a document and page two's first one changes: re-running page one with
    # its journal keeps the same end, so "2!" is neither pulled into page one nor skipped.
    async def squeeze(tx):
        await tx.delete(ids[0])
        await tx.patch(ids[2], {"body": "2!"})

    await db.run_mutation(squeeze)
    rerun = await page(db, None, journal=first.journal)
    assert [d["body"] for d in rerun.value["page"]] == ["1"]
    assert rerun.value["continueCursor"] == first.value["continueCursor"]
    second = await page(db, first.value["continueCursor"])
    assert [d["body"] for d in second.value["page"]] == ["2!", "3"]


async def test_last_page_reaches_end_and_sees_new_inserts(db):
    await insert_messages(db, "a", ["0"])
    first = await page(db, None, num=5)
    assert first.value["isDone"] is True
    await insert_messages(db, "a", ["1"])
    rerun = await page(db, None, num=5, journal=first.journal)
    assert [d["body"] for d in rerun.value["page"]] == ["0", "1"]


@pytest.mark.parametrize("cursor", ["garbage", "AAAA", "x" * 50])
async def test_bad_cursor_is_invalid_cursor(db, cursor):
    with pytest.raises(InvalidCursorError, match="InvalidCursor"):
        await page(db, cursor)


async def test_cursor_from_another_index_is_invalid(db):
    await insert_messages(db, "a", ["0", "1", "2"])
    first = await page(db, None)

    async def run(tx):
        return await tx.query("messages").paginate(
            {"numItems": 2.0, "cursor": first.value["continueCursor"]}
        )

    with pytest.raises(InvalidCursorError):
        await db.run_query(run)


@pytest.mark.parametrize(
    "opts",
    [{"numItems": 0.0, "cursor": None}, {"cursor": None}, {"numItems": 2.0, "cursor": 5.0}, "nope"],
)
async def test_bad_pagination_options(db, opts):
    with pytest.raises(QueryError):
        await db.run_query(lambda tx: by_channel(tx, "a").paginate(opts))


async def test_query_or_mutation_may_paginate_only_once(db):
    async def run(tx):
        await by_channel(tx, "a").paginate({"numItems": 1.0, "cursor": None})
        await by_channel(tx, "b").paginate({"numItems": 1.0, "cursor": None})

    with pytest.raises(QueryError, match="ran multiple paginated queries") as caught:
        await db.run_query(run)
    assert caught.value.short_msg == "MultiplePaginatedDatabaseQueries"

    async def write_then_run(tx):
        await tx.insert("messages", {"channel": "a", "body": "x"})
        await run(tx)

    with pytest.raises(QueryError, match="ran multiple paginated queries"):
        await db.run_mutation(write_then_run)  # mutations too, as in Convex
    assert await count_messages(db) == 0


async def test_mutating_returned_documents_changes_nothing_stored(db):
    [doc_id] = await insert_messages(db, "a", ["x"])

    async def run(tx):
        doc = await tx.get(doc_id)
        doc["body"] = "mutated in place"
        doc["channel"] = "elsewhere"
        await tx.patch(doc_id, {"n": 1.0})
        fresh = await tx.get(doc_id)
        fresh["body"] = "again"
        return await by_channel(tx, "a").collect()

    docs = (await db.run_mutation(run)).value
    assert [d["body"] for d in docs] == ["x"]
    stored = (await db.run_query(lambda tx: by_channel(tx, "a").collect())).value
    assert [(d["body"], d["n"]) for d in stored] == [("x", 1.0)]


async def test_mutating_an_inserted_value_afterwards_changes_nothing(db):
    value = {"channel": "a", "body": "x"}

    async def run(tx):
        doc_id = await tx.insert("messages", value)
        value["body"] = "changed after insert"
        return doc_id

    doc_id = (await db.run_mutation(run)).value
    assert (await db.run_query(lambda tx: tx.get(doc_id))).value["body"] == "x"


# -- Convex's limits: counted as the function runs; over one, nothing is committed -----------


async def count_messages(db):
    return len((await db.run_query(lambda tx: tx.query("messages").collect())).value)


def lower(monkeypatch, **limits):
    """Lower Convex's limits (knobs are read when a transaction begins)."""
    for name, value in limits.items():
        monkeypatch.setattr(knobs, name, value)


async def test_scanning_more_documents_than_the_limit_fails_naming_it(db, monkeypatch):
    await insert_messages(db, "a", [str(i) for i in range(6)])
    lower(monkeypatch, MAX_DOCUMENTS_SCANNED=5)
    assert len((await db.run_query(lambda tx: by_channel(tx, "a").take(5))).value) == 5
    with pytest.raises(LimitError, match=r"Too many documents read .*\(limit: 5\)\. .*index range"):
        await db.run_query(lambda tx: by_channel(tx, "a").collect())


async def test_documents_a_filter_drops_count_as_scanned(db, monkeypatch):
    await insert_messages(db, "a", [str(i) for i in range(6)])
    lower(monkeypatch, MAX_DOCUMENTS_SCANNED=5)

    def nothing(tx):
        return tx.query("messages").filter(lambda q: q.eq(q.field("body"), "none")).collect()

    with pytest.raises(LimitError) as caught:
        await db.run_query(nothing)
    assert caught.value.short_msg == "TooManyDocumentsRead"


async def test_reading_more_bytes_than_the_limit_fails_naming_it(db, monkeypatch):
    await insert_messages(db, "a", ["x" * 400, "y" * 400, "z" * 400])
    lower(monkeypatch, MAX_BYTES_READ=1000)
    assert len((await db.run_query(lambda tx: by_channel(tx, "a").take(2))).value) == 2
    with pytest.raises(LimitError, match=r"Too many bytes read .*\(limit: 1000 bytes\)") as caught:
        await db.run_query(lambda tx: by_channel(tx, "a").collect())
    assert caught.value.short_msg == "TooManyBytesRead"


async def test_more_index_ranges_than_the_limit_fail_naming_it(db, monkeypatch):
    ids = await insert_messages(db, "a", ["0", "1"])
    lower(monkeypatch, MAX_INDEX_RANGES_READ=3)

    async def reads(tx, n):
        for i in range(n):
            await tx.get(ids[i % 2]) if i % 2 else await by_channel(tx, "a").first()

    await db.run_query(lambda tx: reads(tx, 3))  # gets and queries both count
    with pytest.raises(LimitError, match=r"Too many reads .*\(limit: 3 db.get calls and queries\)"):
        await db.run_query(lambda tx: reads(tx, 4))


async def test_writing_more_documents_than_the_limit_fails_at_that_write(db, monkeypatch):
    await insert_messages(db, "a", ["kept"])
    lower(monkeypatch, MAX_DOCUMENTS_WRITTEN=3)
    written = []

    async def run(tx):
        for i in range(5):
            await tx.insert("messages", {"channel": "b", "body": str(i)})
            written.append(i)

    with pytest.raises(LimitError, match=r"Too many documents written .*\(limit: 3\)\. Write in"):
        await db.run_mutation(run)
    assert written == [0, 1, 2]  # refused as it ran, at the fourth insert
    assert await count_messages(db) == 1  # and nothing of it was committed


async def test_rewriting_a_document_counts_it_once_and_a_dropped_insert_not_at_all(db, monkeypatch):
    [doc_id] = await insert_messages(db, "a", ["x"])
    lower(monkeypatch, MAX_DOCUMENTS_WRITTEN=2)

    async def run(tx):
        for i in range(10):
            await tx.patch(doc_id, {"n": float(i)})
            await tx.delete(await tx.insert("messages", {"channel": "b", "body": "tmp"}))
        await tx.insert("messages", {"channel": "b", "body": "last"})

    await db.run_mutation(run)
    assert await count_messages(db) == 2


async def test_writing_more_bytes_than_the_limit_fails_and_commits_nothing(db, monkeypatch):
    [doc_id] = await insert_messages(db, "a", ["x"])
    lower(monkeypatch, MAX_BYTES_WRITTEN=1000)

    async def rewrite(tx):
        for _ in range(5):  # the newest version counts, not every version written
            await tx.patch(doc_id, {"body": "y" * 600})

    await db.run_mutation(rewrite)

    async def grow(tx):
        await tx.patch(doc_id, {"body": "z"})
        await tx.insert("messages", {"channel": "b", "body": "w" * 600})
        await tx.insert("messages", {"channel": "b", "body": "w" * 600})

    message = r"Too many bytes written .*\(limit: 1000 bytes\)"
    with pytest.raises(LimitError, match=message) as caught:
        await db.run_mutation(grow)
    assert caught.value.short_msg == "TooManyBytesWritten"
    assert await count_messages(db) == 1
    assert (await db.run_query(lambda tx: tx.get(doc_id))).value["body"] == "y" * 600


def test_the_transaction_limits_default_to_convexs():
    assert TransactionLimits.from_knobs() == TransactionLimits(
        documents_scanned=32_000,
        bytes_read=16 << 20,
        index_ranges_read=4096,
        documents_written=16_000,
        bytes_written=16 << 20,
    )


async def test_with_index_eq_undefined_finds_documents_missing_the_field(db):
    async def run(tx):
        await tx.insert("messages", {"channel": "a", "body": "no n"})
        await tx.insert("messages", {"channel": "a", "body": "has n", "n": 1.0})
        missing = await (
            tx.query("messages")
            .with_index("by_channel_n", lambda q: q.eq("channel", "a").eq("n", UNDEFINED))
            .collect()
        )
        return [doc["body"] for doc in missing]

    assert (await db.run_mutation(run)).value == ["no n"]  # its own writes
    stored = await db.run_query(
        lambda tx: (
            tx.query("messages")
            .with_index("by_channel_n", lambda q: q.eq("channel", "a").eq("n", UNDEFINED))
            .collect()
        )
    )
    assert [doc["body"] for doc in stored.value] == ["no n"]  # and committed ones


# -- maximumRowsRead / maximumBytesRead: a page that read much says to split -----------------


async def paged(db, **opts):
    base = {"numItems": 10.0, "cursor": None}
    return (await db.run_query(lambda tx: by_channel(tx, "a").paginate({**base, **opts}))).value


async def test_a_page_stops_at_maximum_bytes_read_and_says_split_required(db):
    await insert_messages(db, "a", [str(i) * 300 for i in range(6)])
    first = await paged(db, maximumBytesRead=1000.0)  # each document is 300-500 bytes
    assert [d["body"][0] for d in first["page"]] == ["0", "1", "2"]  # the one crossing it too
    assert first["pageStatus"] == "SplitRequired" and first["isDone"] is False
    rest = await paged(db, cursor=first["continueCursor"])
    assert [d["body"][0] for d in rest["page"]] == ["3", "4", "5"] and "pageStatus" not in rest
    # The split cursor cuts the page in two: (start, split] and (split, continueCursor].
    head = await paged(db, endCursor=first["splitCursor"])
    tail = await paged(db, cursor=first["splitCursor"], endCursor=first["continueCursor"])
    assert [d["body"][0] for d in head["page"]] == ["0", "1"]
    assert [d["body"][0] for d in tail["page"]] == ["2"]


async def test_a_page_stops_at_maximum_rows_read_counting_filtered_rows(db):
    await insert_messages(db, "a", ["skip", "skip", "keep", "keep"])
    rows = by_channel(db.begin(read_only=True), "a").filter(lambda q: q.eq(q.field("body"), "keep"))
    page = await rows.paginate({"numItems": 10.0, "cursor": None, "maximumRowsRead": 2.0})
    assert page["page"] == [] and page["pageStatus"] == "SplitRequired"
    assert page["splitCursor"] is None  # two rows: nothing to split


async def test_a_page_near_its_budget_says_split_recommended(db):
    await insert_messages(db, "a", [str(i) for i in range(7)])
    page = await paged(db, numItems=7.0, maximumRowsRead=8.0)  # 7 rows > 3/4 of 8
    assert len(page["page"]) == 7 and page["pageStatus"] == "SplitRecommended"
    assert isinstance(page["splitCursor"], str)


async def test_a_rerun_up_to_its_end_cursor_ignores_the_budget(db):
    await insert_messages(db, "a", [str(i) for i in range(4)])

    def run(budget):
        opts = {"numItems": 3.0, "cursor": None, **budget}
        return lambda tx: by_channel(tx, "a").paginate(opts)

    first = await db.run_query(run({}))
    rerun = await db.run_query(run({"maximumRowsRead": 1.0}), journal=first.journal)
    assert [d["body"] for d in rerun.value["page"]] == ["0", "1", "2"]  # all up to its end
    assert "pageStatus" not in rerun.value


@pytest.mark.parametrize("opts", [{"maximumBytesRead": 0.0}, {"maximumRowsRead": "9"}])
async def test_bad_read_budgets_are_refused(db, opts):
    with pytest.raises(QueryError, match="must be a number of at least 1") as caught:
        await paged(db, **opts)
    assert caught.value.short_msg == "InvalidPaginationLimit"
