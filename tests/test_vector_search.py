"""Vector search on both backends: exact scores against brute force, filters, commits of this
and another process, deletes and patches, bad input, an action's ctx.vector_search, and the
recall of the approximate (HNSW) index against exact search."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reactive import knobs
from reactive.database import Database
from reactive.errors import QueryError
from reactive.executor import Executor
from reactive.file_storage import LocalBlobStore, open_file_storage
from reactive.functions import FunctionKind, load_project
from reactive.schema import define_schema, define_table
from reactive.validators import v
from reactive.vector_search import EXACT_MAX, VectorSearch

DIMS = 8
SCHEMA = define_schema(
    {
        "docs": define_table(
            {
                "kind": v.string(),
                "lang": v.optional(v.string()),
                "other": v.optional(v.string()),
                "embedding": v.optional(v.array(v.float64())),
            }
        ).vector_index(
            "by_embedding",
            vector_field="embedding",
            dimensions=DIMS,
            filter_fields=["kind", "lang"],
        ),
    }
)
VECTORS = Path(__file__).parent / "projects" / "vectors"


@pytest.fixture
async def db(store_url: str) -> AsyncIterator[Database]:
    database = await Database.open(store_url, schema=SCHEMA, prune=False)
    try:
        yield database
    finally:
        await database.close()


async def insert_all(db: Database, docs: list[dict[str, Any]]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(docs), 1000):
        chunk = docs[start : start + 1000]
        ids.extend((await db.run_mutation(lambda tx, c=chunk: _insert(tx, c))).value)
    return ids


async def _insert(tx: Any, docs: list[dict[str, Any]]) -> list[str]:
    return [await tx.insert("docs", doc) for doc in docs]


def random_vectors(count: int, dims: int = DIMS, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, dims))


def brute_force(
    ids: list[str], vectors: np.ndarray, query: np.ndarray, limit: int
) -> list[tuple[str, float]]:
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = units @ (query / np.linalg.norm(query))
    ranked = sorted(zip(ids, scores.tolist(), strict=True), key=lambda p: (-p[1], p[0]))
    return ranked[:limit]


async def search(db: Database, query: dict[str, Any], index: str = "by_embedding") -> Any:
    return await VectorSearch.of(db).search("docs", index, query)


async def test_results_and_scores_match_brute_force(db: Database) -> None:
    vectors = random_vectors(300)
    kinds = ["faq" if i % 3 == 0 else "blog" for i in range(300)]
    ids = await insert_all(
        db,
        [{"kind": k, "embedding": vec.tolist()} for k, vec in zip(kinds, vectors, strict=True)],
    )
    for query in random_vectors(5, seed=99):
        found = await search(db, {"vector": query.tolist(), "limit": 16})
        expected = brute_force(ids, vectors, query, 16)
        assert [hit["_id"] for hit in found] == [doc_id for doc_id, _ in expected]
        for hit, (_, score) in zip(found, expected, strict=True):
            assert hit["_score"] == pytest.approx(score, abs=1e-6)
    assert len(await search(db, {"vector": vectors[0].tolist()})) == 10  # the default limit
    # A vector is found first by itself, with a cosine of 1.
    best = (await search(db, {"vector": (vectors[5] * 3).tolist(), "limit": 1}))[0]
    assert best["_id"] == ids[5]
    assert best["_score"] == pytest.approx(1.0, abs=1e-6)


async def test_ties_go_by_id(db: Database) -> None:
    same = [0.25] * DIMS
    ids = await insert_all(db, [{"kind": "t", "embedding": same} for _ in range(5)])
    found = await search(db, {"vector": same, "limit": 3})
    assert [hit["_id"] for hit in found] == sorted(ids)[:3]
    assert len({hit["_score"] for hit in found}) == 1


async def test_many_commits_between_searches_are_applied(db: Database) -> None:
    vector = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert await search(db, {"vector": vector}) == []  # built, empty
    ids = [(await insert_all(db, [{"kind": "m", "embedding": vector}]))[0] for _ in range(300)]
    found = await search(db, {"vector": vector, "limit": 256})
    assert sorted(hit["_id"] for hit in found) == sorted(ids)[:256]


async def test_filters_eq_and_or(db: Database) -> None:
    vectors = random_vectors(60)
    docs = [
        {"kind": ["faq", "blog", "doc"][i % 3], "lang": ["en", "fr"][i % 2], "embedding": vec}
        for i, vec in enumerate(vectors.tolist())
    ]
    ids = await insert_all(db, docs)
    query = random_vectors(1, seed=5)[0]

    def expected(keep: Any) -> list[str]:
        chosen = [i for i, doc in enumerate(docs) if keep(doc)]
        ranked = brute_force([ids[i] for i in chosen], vectors[chosen], query, 256)
        return [doc_id for doc_id, _ in ranked]

    faq = await search(
        db, {"vector": query.tolist(), "limit": 256, "filter": lambda q: q.eq("kind", "faq")}
    )
    assert [hit["_id"] for hit in faq] == expected(lambda d: d["kind"] == "faq")
    either = await search(
        db,
        {
            "vector": query.tolist(),
            "limit": 256,
            "filter": lambda q: q.or_(q.eq("kind", "faq"), q.eq("lang", "fr")),
        },
    )
    assert [hit["_id"] for hit in either] == expected(
        lambda d: d["kind"] == "faq" or d["lang"] == "fr"
    )
    none = await search(db, {"vector": query.tolist(), "filter": lambda q: q.eq("kind", "nothing")})
    assert none == []


async def test_commits_enter_and_leave_results(db: Database) -> None:
    near = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    far = [-1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    (other,) = await insert_all(
        db, [{"kind": "a", "embedding": [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}]
    )
    assert [h["_id"] for h in await search(db, {"vector": near})] == [other]
    # The index is built now; later commits must reach it.
    (doc,) = await insert_all(db, [{"kind": "a", "embedding": near}])
    assert [h["_id"] for h in await search(db, {"vector": near})] == [doc, other]
    await db.run_mutation(lambda tx: tx.patch(doc, {"embedding": far}))
    assert [h["_id"] for h in await search(db, {"vector": near})] == [other, doc]
    await db.run_mutation(lambda tx: tx.patch(doc, {"kind": "b"}))
    filtered = {"vector": near, "filter": lambda q: q.eq("kind", "a")}
    assert [h["_id"] for h in await search(db, filtered)] == [other]
    await db.run_mutation(lambda tx: tx.delete(other))
    assert await search(db, filtered) == []
    assert [h["_id"] for h in await search(db, {"vector": near})] == [doc]
    # A document without a vector (or of other dimensions) is not in the index.
    await insert_all(db, [{"kind": "a"}, {"kind": "a", "embedding": [1.0, 2.0]}])
    assert [h["_id"] for h in await search(db, {"vector": near})] == [doc]


async def test_a_deleted_vectors_row_is_reused(db: Database) -> None:
    vectors = random_vectors(40, seed=3)
    ids = await insert_all(db, [{"kind": "r", "embedding": vec} for vec in vectors.tolist()])
    query = vectors[0].tolist()
    assert (await search(db, {"vector": query, "limit": 1}))[0]["_id"] == ids[0]
    live = VectorSearch.of(db)._live[("docs", "by_embedding")]
    assert live.rows is not None and live.rows.end == 40
    for doc_id in ids[:10]:
        await db.run_mutation(lambda tx, d=doc_id: tx.delete(d))
    fresh = await insert_all(db, [{"kind": "r", "embedding": vec} for vec in vectors[:5].tolist()])
    found = await search(db, {"vector": query, "limit": 40})
    assert live.rows.end == 40  # five of the ten freed rows hold the new vectors
    survivors = ids[10:] + fresh
    units = np.vstack([vectors[10:], vectors[:5]])
    expected = brute_force(survivors, units, np.array(query), 40)
    assert [hit["_id"] for hit in found] == [doc_id for doc_id, _ in expected]


async def test_an_index_that_outgrows_a_scan_is_searched_through_its_graph(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Room for 100 vectors of DIMS before the scan gives way to the HNSW graph.
    monkeypatch.setattr(knobs, "VECTOR_EXACT_MAX_FLOATS", 100 * DIMS)
    vectors = random_vectors(150, seed=4)
    ids = await insert_all(db, [{"kind": "g", "embedding": vec} for vec in vectors[:90].tolist()])
    query = random_vectors(1, seed=8)[0]
    await search(db, {"vector": query.tolist()})
    live = VectorSearch.of(db)._live[("docs", "by_embedding")]
    assert live.rows is not None and live.index is None
    ids += await insert_all(db, [{"kind": "g", "embedding": vec} for vec in vectors[90:].tolist()])
    await db.run_mutation(lambda tx: tx.delete(ids[0]))
    found = await search(db, {"vector": query.tolist(), "limit": 20})
    assert live.rows is None and live.index is not None and len(live.index) == 149
    expected = brute_force(ids[1:], vectors[1:], query, 20)
    assert [hit["_id"] for hit in found] == [doc_id for doc_id, _ in expected]
    # The graph keeps following commits.
    (doc,) = await insert_all(db, [{"kind": "g", "embedding": query.tolist()}])
    assert (await search(db, {"vector": query.tolist(), "limit": 1}))[0]["_id"] == doc


async def test_a_commit_of_another_process_is_found(store_url: str) -> None:
    first = await Database.open(store_url, schema=SCHEMA, prune=False)
    second = await Database.open(store_url, schema=SCHEMA, prune=False)
    try:
        vector = [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        assert await search(first, {"vector": vector}) == []
        (doc,) = await insert_all(second, [{"kind": "x", "embedding": vector}])
        found = await search(first, {"vector": vector})
        assert [h["_id"] for h in found] == [doc]
        await second.run_mutation(lambda tx: tx.delete(doc))
        assert await search(first, {"vector": vector}) == []
    finally:
        await second.close()
        await first.close()


async def test_bad_input_is_named(db: Database) -> None:
    good = [1.0] * DIMS

    async def refused(query: Any, index: str = "by_embedding", table: str = "docs") -> str:
        with pytest.raises(QueryError) as caught:
            await VectorSearch.of(db).search(table, index, query)
        return f"{caught.value.short_msg}: {caught.value.msg}"

    assert "VectorIndexNotFound" in (message := await refused({"vector": good}, "nope"))
    assert "'nope'" in message and "by_embedding" in message
    assert "VectorIndexNotFound" in await refused({"vector": good}, table="missing")
    message = await refused({"vector": [1.0, 2.0, 3.0]})
    assert "VectorDimensionMismatch" in message and "3 dimensions" in message
    assert f"has {DIMS}" in message
    for limit in (0, 257, 2.5, "10", True):
        message = await refused({"vector": good, "limit": limit})
        assert "InvalidVectorSearchLimit" in message and "1 to 256" in message
    message = await refused({"vector": good, "filter": lambda q: q.eq("other", "x")})
    assert "VectorFilterFieldNotIndexed" in message and "'other'" in message
    assert "kind, lang" in message
    assert "InvalidVectorQuery" in await refused({"vector": [0.0] * DIMS})
    assert "InvalidVectorQuery" in await refused({"vector": "x"})
    assert "InvalidVectorQuery" in await refused({"vector": good, "limt": 3})
    assert "InvalidVectorFilter" in await refused({"vector": good, "filter": lambda q: 3})


async def test_action_ctx_vector_search_sees_the_committed_mutation(tmp_path: Path) -> None:
    project = load_project(VECTORS)
    db = await Database.open(f"sqlite:///{tmp_path}/v.db", schema=project.schema, prune=False)
    try:
        storage = await open_file_storage(db, LocalBlobStore(tmp_path / "files"))
        executor = Executor(db, project.registry, storage=storage, dev=False)
        ids = []
        for kind, vector in (
            ("a", [1.0, 0.0, 0.0, 0.0]),
            ("b", [0.9, 0.1, 0.0, 0.0]),
            ("a", [0.0, 0.0, 1.0, 0.0]),
        ):
            added = await executor.run(
                FunctionKind.MUTATION, "docs:add", {"kind": kind, "embedding": vector}, None
            )
            assert added.error is None
            ids.append(added.value)
        found = await executor.run(
            FunctionKind.ACTION, "docs:nearest", {"vector": [1.0, 0.0, 0.0, 0.0]}, None
        )
        assert found.error is None
        assert [hit["_id"] for hit in found.value] == [ids[0], ids[1], ids[2]]
        assert found.value[0]["_score"] == pytest.approx(1.0)
        only_a = await executor.run(
            FunctionKind.ACTION, "docs:nearest", {"vector": [1.0, 0.0, 0.0, 0.0], "kind": "a"}, None
        )
        assert [hit["_id"] for hit in only_a.value] == [ids[0], ids[2]]
        wrong = await executor.run(FunctionKind.ACTION, "docs:nearest", {"vector": [1.0]}, None)
        assert wrong.error is not None and "VectorDimensionMismatch" in wrong.error.message
    finally:
        await db.close()


RECALL_DOCS = 2 * EXACT_MAX  # past EXACT_MAX, so the HNSW graph answers (100k: the bench)
RECALL_DIMS = 128


async def test_recall_at_10_of_the_approximate_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(knobs, "VECTOR_EXACT_MAX_FLOATS", 0)  # the graph, not a scan
    schema = define_schema(
        {
            "docs": define_table({"embedding": v.array(v.float64())}).vector_index(
                "by_embedding", vector_field="embedding", dimensions=RECALL_DIMS
            )
        }
    )
    db = await Database.open(f"sqlite:///{tmp_path}/r.db", schema=schema, prune=False)
    try:
        vectors = random_vectors(RECALL_DOCS, RECALL_DIMS, seed=1)
        ids = await insert_all(db, [{"embedding": vec} for vec in vectors.tolist()])
        units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = random_vectors(100, RECALL_DIMS, seed=2)
        hits = 0
        for query in queries:
            found = await search(db, {"vector": query.tolist(), "limit": 10})
            truth = np.argsort(-(units @ query))[:10]
            hits += len({hit["_id"] for hit in found} & {ids[i] for i in truth})
        recall = hits / (10 * len(queries))
        assert recall >= 0.95, recall
    finally:
        await db.close()


async def test_the_graph_answers_alike_on_both_backends(
    tmp_path: Path, postgres_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same documents (ids included) give the same results on SQLite and PostgreSQL, on
    the approximate path too (EXACT_MAX lowered so that the HNSW graph answers), with a
    filter that must over-fetch; and the graph finds the true nearest on small data."""
    monkeypatch.setattr("reactive.vector_search.EXACT_MAX", 20)
    monkeypatch.setattr(knobs, "VECTOR_EXACT_MAX_FLOATS", 0)
    lite = await Database.open(f"sqlite:///{tmp_path}/a.db", schema=SCHEMA, prune=False)
    pg = await Database.open(postgres_store_url, schema=SCHEMA, prune=False)
    try:
        vectors = random_vectors(400, seed=11)
        docs = [
            {"kind": ["a", "b", "c", "d"][i % 4], "embedding": vec}
            for i, vec in enumerate(vectors.tolist())
        ]
        ids = await insert_all(lite, docs)
        stored = (await lite.run_query(lambda tx: tx.query("docs").collect())).value

        async def restore(tx: Any) -> None:
            for doc in stored:
                await tx.restore("docs", doc)

        await pg.run_mutation(restore)
        for n, query in enumerate(random_vectors(20, seed=12).tolist()):
            plain = {"vector": query, "limit": 10}
            filtered = {**plain, "filter": lambda q, k="abcd"[n % 4]: q.eq("kind", k)}
            for request in (plain, filtered):
                on_lite, on_pg = await search(lite, request), await search(pg, request)
                assert on_lite == on_pg
                assert len(on_lite) == 10
            chosen = [i for i, doc in enumerate(docs) if doc["kind"] == "abcd"[n % 4]]
            exact = brute_force([ids[i] for i in chosen], vectors[chosen], np.array(query), 10)
            assert [hit["_id"] for hit in on_lite] == [doc_id for doc_id, _ in exact]
    finally:
        await pg.close()
        await lite.close()
