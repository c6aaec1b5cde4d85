"""Full-text search on both backends: relevance, prefixes, filters, snapshots, reactivity, OCC,
backfill and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from reactive import knobs
from reactive.database import Database
from reactive.errors import LimitError, QueryError, SchemaError
from reactive.index_keys import encode_key
from reactive.persistence.base import IndexWrite
from reactive.schema import define_schema, define_table
from reactive.search import (
    MAX_SEARCH_RESULTS,
    posting_counts,
    posting_document_id,
    posting_keys,
    tokenize,
)
from reactive.validators import v

SCHEMA = define_schema(
    {
        "messages": define_table(
            {"channel": v.string(), "body": v.string(), "author": v.optional(v.string())}
        )
        .index("by_channel", ["channel"])
        .search_index("search_body", search_field="body", filter_fields=["channel", "author"]),
    }
)


@pytest.fixture
async def db(store_url: str) -> AsyncIterator[Database]:
    database = await Database.open(store_url, schema=SCHEMA, prune=False)
    try:
        yield database
    finally:
        await database.close()


async def insert(db: Database, body: str, channel: str = "c", **extra: Any) -> str:
    doc = {"channel": channel, "body": body, **extra}
    return (await db.run_mutation(lambda tx: tx.insert("messages", doc))).value


def searcher(text: str, channel: str | None = None, **more: Any) -> Any:
    def build(q: Any) -> Any:
        q = q.search("body", text)
        if channel is not None:
            q = q.eq("channel", channel)
        for name, value in more.items():
            q = q.eq(name, value)
        return q

    async def run(tx: Any) -> list[str]:
        docs = await tx.query("messages").with_search_index("search_body", build).collect()
        return [d["body"] for d in docs]

    return run


async def search(db: Database, text: str, channel: str | None = None, **more: Any) -> list[str]:
    return (await db.run_query(searcher(text, channel, **more))).value


def test_tokenizer_lowercases_and_splits_on_anything_but_letters_and_digits() -> None:
    assert tokenize("Hello, WORLD! it's 2024 — Café_au-lait") == [
        "hello",
        "world",
        "it",
        "s",
        "2024",
        "café",
        "au",
        "lait",
    ]


def test_tokens_are_split_before_they_are_lowercased_and_long_ones_dropped() -> None:
    # "İ" lowercases to "i" and a combining dot, which is not a letter: lowercasing the text
    # first would split the word.
    assert tokenize("İstanbul ABC") == ["i\u0307stanbul", "abc"]
    assert tokenize("x" * 65 + " " + "Y" * 64) == ["y" * 64]
    assert tokenize("İ" * 40) == []  # 80 characters once lowercased
    assert tokenize("short WORDS") == ["short", "words"]


def test_a_posting_key_gives_back_its_document_id_and_counts() -> None:
    doc = {"_id": "k57abc0123", "body": "to be or not to be", "channel": "\x06\x00odd"}
    keys = posting_keys(doc, "body", ["channel"])
    assert len(keys) == 2 * 4  # 4 distinct terms, in 2 groups
    assert {posting_document_id(key) for key in keys} == {"k57abc0123"}
    counts = sorted({posting_counts(key) for key in keys})
    assert counts == [(1, 6), (2, 6)]  # "or", "not" once; "to", "be" twice; 6 tokens


async def test_bm25_prefers_more_occurrences_and_shorter_documents(db: Database) -> None:
    for body in ("an apple a day keeps doctors away", "apple pie", "apple apple apple", "pear"):
        await insert(db, body)
    # tf 3 in 3 words, then tf 1 in 2 words, then tf 1 in 7 words; "pear" does not match.
    assert await search(db, "apple") == [
        "apple apple apple",
        "apple pie",
        "an apple a day keeps doctors away",
    ]


async def test_rare_terms_weigh_more_and_ties_go_by_id(db: Database) -> None:
    ids = {body: await insert(db, body) for body in ("common words here", "rare words here")}
    ties = {body: await insert(db, body) for body in ("common stuff", "common things")}
    ids.update(ties)
    found = await search(db, "common rare")
    tied = sorted(ties, key=lambda body: ties[body])
    # "rare" is in one document of four, "common" in three: the rare match ranks first; the
    # two short "common" documents score alike, so their ids order them; the longer one last.
    assert found == ["rare words here", *tied, "common words here"]


async def test_the_last_term_matches_as_a_prefix_and_the_others_exactly(db: Database) -> None:
    for body in ("hello world", "help me", "helicopter", "shell", "hel"):
        await insert(db, body)
    assert sorted(await search(db, "hel")) == ["hel", "helicopter", "hello world", "help me"]
    # "hel" is not the last term: only the exact word matches it, and "wor" is a prefix.
    assert sorted(await search(db, "hel wor")) == ["hel", "hello world"]
    assert await search(db, "world") == ["hello world"]
    assert await search(db, "worlds") == []


async def test_filters_select_by_equality_on_declared_filter_fields(db: Database) -> None:
    await insert(db, "hello from a", "a", author="ann")
    await insert(db, "hello from b", "b", author="ann")
    await insert(db, "hello again a", "a", author="bob")
    assert sorted(await search(db, "hello", "a")) == ["hello again a", "hello from a"]
    assert await search(db, "hello", "b") == ["hello from b"]
    assert await search(db, "hello", "a", author="bob") == ["hello again a"]
    assert sorted(await search(db, "hello", author="ann")) == ["hello from a", "hello from b"]
    assert await search(db, "hello", "z") == []


async def test_take_first_filter_and_paginate_follow_relevance_order(db: Database) -> None:
    for body in ("x x x x", "x x x", "x x", "x y z w", "y"):
        await insert(db, body)

    def query(tx: Any) -> Any:
        return tx.query("messages").with_search_index(
            "search_body", lambda q: q.search("body", "x")
        )

    async def read(tx: Any) -> Any:
        top = [d["body"] for d in await query(tx).take(2)]
        first = (await query(tx).first())["body"]
        filtered = await query(tx).filter(lambda q: q.neq(q.field("body"), "x x x")).collect()
        return top, first, [d["body"] for d in filtered]

    top, first, filtered = (await db.run_query(read)).value
    everything = await search(db, "x")
    assert top == everything[:2] and first == everything[0]
    assert filtered == [body for body in everything if body != "x x x"]

    pages: list[str] = []
    cursor = None
    while True:
        opts = {"numItems": 2, "cursor": cursor}

        async def page(tx: Any, opts: dict[str, Any] = opts) -> Any:
            return await query(tx).paginate(opts)

        result = (await db.run_query(page)).value
        pages.extend(d["body"] for d in result["page"])
        cursor = result["continueCursor"]
        if result["isDone"]:
            break
    assert pages == everything


async def test_every_term_is_read_past_its_first_page(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first pages of all terms are read together (5 postings each for 3 terms here), the
    # rest of each term page by page, merged with the transaction's own writes.
    monkeypatch.setattr(knobs, "SCAN_PAGE_SIZE", 2)
    bodies = [f"alpha beta gamma{i}" for i in range(13)]

    async def fill(tx: Any) -> None:
        for body in bodies:
            await tx.insert("messages", {"channel": "c", "body": body})

    await db.run_mutation(fill)
    assert sorted(await search(db, "alpha beta gam")) == sorted(bodies)

    async def insert_and_search(tx: Any) -> list[str]:
        await tx.insert("messages", {"channel": "c", "body": "alpha beta gamma99"})
        found: list[str] = await searcher("alpha beta gam")(tx)
        return found

    found = (await db.run_mutation(insert_and_search)).value
    assert sorted(found) == sorted([*bodies, "alpha beta gamma99"])


async def test_found_documents_come_back_whole_and_decoded(store_url: str) -> None:
    # A search ranks documents from their parsed JSON and decodes only those it returns.
    notes = define_table(
        {"body": v.string(), "n": v.int64(), "raw": v.bytes(), "x": v.array(v.float64())}
    ).search_index("search_body", search_field="body")
    database = await Database.open(store_url, schema=define_schema({"notes": notes}), prune=False)
    try:
        for i in range(3):
            note = {"body": "hello " * (i + 1), "n": 2**40 + i, "raw": bytes([i]), "x": [1.0]}
            await database.run_mutation(lambda tx, note=note: tx.insert("notes", note))

        async def find(tx: Any) -> list[list[Any]]:
            query = tx.query("notes").with_search_index(
                "search_body", lambda q: q.search("body", "hello")
            )
            return [await query.take(0), await query.take(2), await query.collect()]

        none, two, every = (await database.run_query(find)).value
    finally:
        await database.close()
    assert none == [] and two == every[:2]
    assert [(d["n"], d["raw"], d["x"]) for d in every] == [
        (2**40 + 2, b"\x02", [1.0]),
        (2**40 + 1, b"\x01", [1.0]),
        (2**40, b"\x00", [1.0]),
    ]
    assert all(type(d["n"]) is int and type(d["x"][0]) is float for d in every)


def count_document_reads(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many documents each `get_documents` call of `db` asks for, from now on."""
    requested: list[int] = []
    get_documents = db.persistence.get_documents

    async def counting(table_number: int, ids: Any, ts: int) -> Any:
        requested.append(len(ids))
        return await get_documents(table_number, ids, ts)

    monkeypatch.setattr(db.persistence, "get_documents", counting)
    return requested


async def test_a_search_ranks_from_postings_and_reads_only_what_it_returns(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 documents match; take(3) reads 3 of them. A .filter that refuses the best 5 reads
    # further in growing batches (3, then 6) and still returns the next best in order.
    await db.run_mutation(
        lambda tx: asyncio.gather(
            *(tx.insert("messages", {"channel": "c", "body": "word " * (i + 1)}) for i in range(40))
        )
    )
    requested = count_document_reads(db, monkeypatch)

    def query(tx: Any) -> Any:
        return tx.query("messages").with_search_index(
            "search_body", lambda q: q.search("body", "word")
        )

    best = (await db.run_query(lambda tx: query(tx).take(3))).value
    assert [d["body"].count("word") for d in best] == [40, 39, 38]
    assert requested == [3]
    requested.clear()
    worse = (
        await db.run_query(
            lambda tx: query(tx).filter(lambda q: q.lt(q.field("body"), "word " * 35)).take(3)
        )
    ).value
    assert [d["body"].count("word") for d in worse] == [34, 33, 32]
    assert requested == [3, 6]


async def test_a_search_with_two_filters_reads_each_candidate_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second eq filter is checked on the candidates' documents; those returned are not
    # read a second time.
    for author in ("ann", "bob", "ann"):
        await insert(db, "hello there", "c", author=author)
    requested = count_document_reads(db, monkeypatch)
    assert await search(db, "hello", "c", author="ann") == ["hello there", "hello there"]
    assert requested == [3]


async def test_an_index_stored_in_an_older_posting_format_is_rebuilt(store_url: str) -> None:
    # Postings once had no counts: such an index is marked "$search", and opening the
    # database with the same schema rebuilds it (its old postings gone, every one new).
    database = await Database.open(store_url, schema=SCHEMA, prune=False)
    try:
        first = await insert(database, "hello hello", "a")
        await insert(database, "hello there", "a")
        store = database.persistence
        (meta,) = [m for m in await store.load_indexes() if m.name == "search_body"]
        await store.save_index(replace(meta, fields=("$search", *meta.fields[1:])))
        old_posting = IndexWrite(meta.index_id, encode_key([0, "hello", first]), False, first)
        await store.write_index_entries([(old_posting, await store.max_commit_ts())])
        assert await store.count_index(meta.index_id, await store.max_commit_ts()) == 10
    finally:
        await database.close()
    database = await Database.open(store_url, schema=SCHEMA, prune=False)
    try:
        store = database.persistence
        (rebuilt,) = [m for m in await store.load_indexes() if m.name == "search_body"]
        assert rebuilt.fields == meta.fields
        # 3 terms ("hello" twice, "there") in each of 3 groups (all, channel, author).
        assert await store.count_index(rebuilt.index_id, await store.max_commit_ts()) == 9
        assert await search(database, "hello") == ["hello hello", "hello there"]
    finally:
        await database.close()


async def test_results_are_capped(db: Database) -> None:
    docs = [{"channel": "c", "body": f"word n{i}"} for i in range(MAX_SEARCH_RESULTS + 5)]

    async def bulk(tx: Any) -> None:
        for doc in docs:
            await tx.insert("messages", doc)

    await db.run_mutation(bulk)
    assert len(await search(db, "word")) == MAX_SEARCH_RESULTS


async def test_a_mutation_searches_its_own_writes_at_its_snapshot(db: Database) -> None:
    kept = await insert(db, "old hello")
    changed = await insert(db, "hello to change")

    async def mutate(tx: Any) -> list[list[str]]:
        seen = [await searcher("hello")(tx)]
        await tx.insert("messages", {"channel": "c", "body": "hello new"})
        await tx.patch(changed, {"body": "goodbye"})
        seen.append(sorted(await searcher("hello")(tx)))
        await tx.delete(kept)
        seen.append(await searcher("hello")(tx))
        seen.append(await searcher("goodbye")(tx))
        return seen

    seen = (await db.run_mutation(mutate)).value
    assert sorted(seen[0]) == ["hello to change", "old hello"]
    assert seen[1:] == [["hello new", "old hello"], ["hello new"], ["goodbye"]]
    assert await search(db, "hello") == ["hello new"]
    assert await search(db, "goodbye") == ["goodbye"]


async def test_a_search_does_not_see_commits_after_its_snapshot(db: Database) -> None:
    await insert(db, "hello before")
    tx = db.begin(read_only=True)
    await insert(db, "hello after")
    assert await searcher("hello")(tx) == ["hello before"]
    assert sorted(await search(db, "hello")) == ["hello after", "hello before"]


async def subscribe(db: Database, text: str, channel: str | None = None) -> list[int]:
    """Run a search and subscribe to it; the list grows by one per invalidation."""
    result = await db.run_query(searcher(text, channel))
    fired: list[int] = []
    db.subscribe(result.token, lambda _sub, ts: fired.append(ts))
    return fired


async def settle(db: Database, ts: int) -> None:
    await db.wait_for_ts(ts)
    await asyncio.sleep(0)


async def test_a_search_subscription_reruns_only_for_writes_that_can_change_it(
    db: Database,
) -> None:
    target = await insert(db, "hello there", "a")
    fired = await subscribe(db, "hello wor", "a")
    # Other channel, other words, a word that only shares the exact term's prefix: no re-run.
    for body, channel in (("hello world", "b"), ("goodbye", "a"), ("helloween", "a")):
        await insert(db, body, channel)
    other = await insert(db, "nothing", "a")
    await db.run_mutation(lambda tx: tx.patch(other, {"body": "still nothing"}))
    await settle(db, db.latest_ts)
    assert fired == []
    # A matching insert (the prefix "wor" of "work") invalidates it.
    ts = (
        await db.run_mutation(
            lambda tx: tx.insert("messages", {"channel": "a", "body": "more work"})
        )
    ).ts
    await settle(db, ts)
    assert fired == [ts]

    # A change that makes a result leave: the patch deletes its "hello" posting.
    fired = await subscribe(db, "hello", "a")
    ts = (await db.run_mutation(lambda tx: tx.patch(target, {"body": "bye"}))).ts
    await settle(db, ts)
    assert fired == [ts]
    # Moving a matching document into the channel makes it enter: re-run.
    fired = await subscribe(db, "hello", "a")
    moved = await insert(db, "hello elsewhere", "b")
    await settle(db, db.latest_ts)
    assert fired == []
    ts = (await db.run_mutation(lambda tx: tx.patch(moved, {"channel": "a"}))).ts
    await settle(db, ts)
    assert fired == [ts]


async def test_a_mutation_that_searched_conflicts_with_a_matching_commit(db: Database) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    runs: list[list[str]] = []

    async def count_then_write(tx: Any) -> None:
        found = await searcher("hello", "a")(tx)
        runs.append(found)
        if len(runs) == 1:
            started.set()
            await release.wait()
        await tx.insert("messages", {"channel": "log", "body": f"saw {len(found)}"})

    task = asyncio.create_task(db.run_mutation(count_then_write))
    await started.wait()
    await insert(db, "goodbye", "a")  # not in the search's ranges: no conflict
    await insert(db, "hello", "b")
    await insert(db, "hello", "a")  # in them
    release.set()
    result = await task
    assert result.retries == 1
    assert runs == [[], ["hello"]]


async def test_an_index_added_later_is_backfilled(store_url: str) -> None:
    plain = define_schema(
        {"notes": define_table({"text": v.string(), "tag": v.string()}).index("by_tag", ["tag"])}
    )
    database = await Database.open(store_url, schema=plain, prune=False)
    try:

        async def fill(tx: Any) -> None:
            for text, tag in (("alpha beta", "x"), ("beta gamma", "y"), ("delta", "x")):
                await tx.insert("notes", {"text": text, "tag": tag})

        await database.run_mutation(fill)
        searchable = define_schema(
            {
                "notes": define_table({"text": v.string(), "tag": v.string()})
                .index("by_tag", ["tag"])
                .search_index("search_text", search_field="text", filter_fields=["tag"])
            }
        )
        await database.apply_schema(searchable)

        async def find(tx: Any) -> list[str]:
            docs = await (
                tx.query("notes")
                .with_search_index("search_text", lambda q: q.search("text", "beta").eq("tag", "x"))
                .collect()
            )
            return [d["text"] for d in docs]

        assert (await database.run_query(find)).value == ["alpha beta"]
    finally:
        await database.close()


async def test_a_search_of_a_table_not_created_yet_finds_nothing_and_waits_for_it(
    store_url: str,
) -> None:
    schema = define_schema(
        {"notes": define_table({"text": v.string()}).search_index("s", search_field="text")}
    )
    database = await Database.open(store_url, prune=False)
    try:
        database.catalog.schema = schema

        async def find(tx: Any) -> list[Any]:
            return await (
                tx.query("notes").with_search_index("s", lambda q: q.search("text", "hi")).collect()
            )

        assert (await database.run_query(find)).value == []
    finally:
        await database.close()


async def failure(db: Database, build: Any) -> str:
    async def run(tx: Any) -> Any:
        return await build(tx.query("messages")).collect()

    with pytest.raises(QueryError) as info:
        await db.run_query(run)
    return str(info.value)


async def test_bad_searches_are_refused_with_what_is_wrong(db: Database) -> None:
    def search_on(index: str, fn: Any) -> Any:
        return lambda query: query.with_search_index(index, fn)

    hello = lambda q: q.search("body", "hello")  # noqa: E731
    assert "not found" in await failure(db, search_on("nope", hello))
    assert "not a search index" in await failure(db, search_on("by_channel", hello))
    assert "is a search index" in await failure(db, lambda query: query.with_index("search_body"))
    assert "empty" in await failure(db, search_on("search_body", lambda q: q.search("body", " !")))
    long_text = "a " * 600
    assert "limit is 1024" in await failure(
        db, search_on("search_body", lambda q: q.search("body", long_text))
    )
    many = " ".join(f"w{i}" for i in range(17))
    assert "17 terms" in await failure(
        db, search_on("search_body", lambda q: q.search("body", many))
    )
    message = await failure(
        db, search_on("search_body", lambda q: q.search("body", "x").eq("body", "x"))
    )
    assert "cannot filter on 'body'" in message and "'channel', 'author'" in message
    assert "searches the field 'body', not 'channel'" in await failure(
        db, search_on("search_body", lambda q: q.search("channel", "x"))
    )
    with pytest.raises(QueryError, match="relevance order"):
        db.begin().query("messages").with_search_index("search_body", hello).order("desc")
    with pytest.raises(QueryError, match=r"q.search\(field, text\) before"):
        db.begin().query("messages").with_search_index("search_body", lambda q: q.eq("a", 1))


def test_search_index_declarations_are_checked_at_load() -> None:
    table = define_table({"body": v.string(), "n": v.float64(), "tag": v.optional(v.string())})
    table.search_index("ok", search_field="body", filter_fields=["tag", "n"])
    with pytest.raises(SchemaError, match='"missing" does not exist'):
        table.search_index("s", search_field="missing")
    with pytest.raises(SchemaError, match="must be a string field"):
        table.search_index("s", search_field="n")
    with pytest.raises(SchemaError, match='"nope" does not exist'):
        table.search_index("s", search_field="body", filter_fields=["nope"])
    with pytest.raises(SchemaError, match="limit is 16"):
        wide = define_table({"body": v.string(), **{f"f{i}": v.string() for i in range(17)}})
        wide.search_index("s", search_field="body", filter_fields=[f"f{i}" for i in range(17)])
    with pytest.raises(SchemaError, match="defined twice"):
        table.index("s", ["n"]).search_index("s", search_field="body")
    with pytest.raises(SchemaError, match="twice"):
        table.search_index("s", search_field="body", filter_fields=["tag", "tag"])
    declared = table.search_index("s", search_field="body", filter_fields=["tag"])
    assert declared.to_json("t")["searchIndexes"] == [
        {"indexDescriptor": "s", "searchField": "body", "filterFields": ["tag"]}
    ]
    before = define_schema({"t": table}).fingerprint()
    assert define_schema({"t": declared}).fingerprint() != before


async def test_a_commit_in_another_process_reaches_a_search_subscription(
    db: Database, store_url: str
) -> None:
    other = await Database.open(store_url, schema=SCHEMA, prune=False)
    try:
        fired = await subscribe(db, "hello", "a")

        async def insert_there(body: str, channel: str) -> int:
            doc = {"channel": channel, "body": body}
            ts = (await other.run_mutation(lambda tx: tx.insert("messages", doc))).ts
            await asyncio.wait_for(db.wait_for_ts(ts), 5)
            await asyncio.sleep(0)
            return ts

        await insert_there("hello", "b")
        assert fired == []
        ts = await insert_there("hello world", "a")
        assert fired == [ts]
        assert await search(db, "hello", "a") == ["hello world"]
    finally:
        await other.close()


async def test_a_term_in_too_many_documents_fails_naming_the_term(db: Database) -> None:
    async def fill(tx: Any) -> None:
        for i in range(30):
            await tx.insert("messages", {"channel": "c", "body": f"common rare{i}"})

    await db.run_mutation(fill)
    tx = db.begin(read_only=True)
    tx.limits = replace(tx.limits, documents_scanned=20)
    assert len(await searcher("rare1")(tx)) == 11  # a prefix: rare1 and rare10..rare19
    with pytest.raises(LimitError, match="at the term 'common'") as info:
        await searcher("common")(tx)
    assert info.value.short_msg == "TooManyDocumentsRead"


async def test_changing_or_removing_a_search_index_rebuilds_or_drops_it(db: Database) -> None:
    await insert(db, "hello", "a", author="ann")
    await insert(db, "hello", "b", author="bob")
    by_author = define_schema(
        {
            "messages": define_table(
                {"channel": v.string(), "body": v.string(), "author": v.optional(v.string())}
            )
            .index("by_channel", ["channel"])
            .search_index("search_body", search_field="body", filter_fields=["author"]),
        }
    )
    changes = await db.apply_schema(by_author)
    assert "messages.search_body" in changes.added_indexes
    assert await search(db, "hello", author="bob") == ["hello"]
    assert "cannot filter on 'channel'" in await failure(
        db,
        lambda query: query.with_search_index(
            "search_body", lambda q: q.search("body", "hello").eq("channel", "a")
        ),
    )
    without = define_schema(
        {
            "messages": define_table(
                {"channel": v.string(), "body": v.string(), "author": v.optional(v.string())}
            ).index("by_channel", ["channel"])
        }
    )
    await db.apply_schema(without)
    assert "not found" in await failure(
        db,
        lambda query: query.with_search_index("search_body", lambda q: q.search("body", "x")),
    )


def test_vector_index_declarations_are_checked_at_load() -> None:
    table = define_table(
        {"embedding": v.array(v.float64()), "kind": v.string(), "body": v.string()}
    )
    declared = table.vector_index(
        "by_embedding", vector_field="embedding", dimensions=1536, filter_fields=["kind"]
    )
    assert declared.to_json("t")["vectorIndexes"] == [
        {
            "indexDescriptor": "by_embedding",
            "vectorField": "embedding",
            "dimensions": 1536,
            "filterFields": ["kind"],
        }
    ]
    assert define_schema({"t": declared}).fingerprint() != define_schema({"t": table}).fingerprint()
    with pytest.raises(SchemaError, match=r"must be v\.array"):
        table.vector_index("v", vector_field="body", dimensions=4)
    with pytest.raises(SchemaError, match='"nope" does not exist'):
        table.vector_index("v", vector_field="nope", dimensions=4)
    for bad in (1, 4097, 3.0, True):
        with pytest.raises(SchemaError, match="from 2 to 4096"):
            table.vector_index("v", vector_field="embedding", dimensions=bad)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match='"missing" does not exist'):
        table.vector_index("v", vector_field="embedding", dimensions=4, filter_fields=["missing"])
    with pytest.raises(SchemaError, match="defined twice"):
        declared.search_index("by_embedding", search_field="body")
    optional = define_table({"e": v.optional(v.array(v.float64()))})
    optional.vector_index("v", vector_field="e", dimensions=2)
