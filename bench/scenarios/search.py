"""search: full-text search through the engine in this process (no network), per corpus size:
indexing throughput (short documents inserted in batches of 1,000 per mutation, postings
included), then query latency of `with_search_index(...).take(10)` for two-word queries whose
last word is a 4-letter prefix, with and without a filter field.

The corpus is random: words of 4 to 9 letters from a vocabulary of 50,000, 6 to 12 words a
document, spread over 100 channels; queries pick words of the inserted documents (the first
document of each batch), so every query matches something at every corpus size.

Vector rows: random unit vectors (768 dimensions; 64 `--tiny`) with a `kind` filter field of
10 values, inserted 1,000 per mutation; then the first `vector_search` (which loads this
process's index from a table scan: "vector build s"; up to `VECTOR_EXACT_MAX_FLOATS` it is a
matrix searched exactly, past it an HNSW graph), then top-10 latency without and with an
`eq` filter, and recall@10 of the unfiltered results against exact (numpy) search.
"""

from __future__ import annotations

import random
import string
import time
from typing import Any

import numpy as np

from bench.harness import SEED, BenchEnv, Measurement, database_url, latency_metrics, say
from reactive.database import Database
from reactive.schema import define_schema, define_table
from reactive.validators import v
from reactive.vector_search import VectorSearch

__all__ = ["NAME", "run"]

NAME = "search"
#: Corpus sizes per run size (the issue's targets are stated at 100k and 1M).
CORPUS: dict[str, tuple[int, ...]] = {
    "tiny": (2_000,),
    "quick": (20_000,),
    "full": (100_000, 1_000_000),
}
QUERIES: dict[str, int] = {"tiny": 50, "quick": 200, "full": 1000}
VOCABULARY = 50_000
CHANNELS = 100
BATCH = 1000
#: Vector corpus per run size: (documents, dimensions).
VECTORS: dict[str, tuple[int, int]] = {
    "tiny": (2_000, 64),
    "quick": (20_000, 768),
    "full": (100_000, 768),
}
KINDS = 10

SCHEMA = define_schema(
    {
        "docs": define_table({"body": v.string(), "channel": v.string()}).search_index(
            "search_body", search_field="body", filter_fields=["channel"]
        )
    }
)


async def run(env: BenchEnv) -> list[Measurement]:
    rows = []
    for size in CORPUS[env.sizes.name]:
        rows += await _one_size(env, size)
    rows.append(await _vectors(env, *VECTORS[env.sizes.name]))
    return rows


async def _vectors(env: BenchEnv, size: int, dims: int) -> Measurement:
    schema = define_schema(
        {
            "items": define_table(
                {"kind": v.string(), "embedding": v.array(v.float64())}
            ).vector_index(
                "by_embedding", vector_field="embedding", dimensions=dims, filter_fields=["kind"]
            )
        }
    )
    rng = np.random.default_rng(SEED)
    vectors = rng.standard_normal((size, dims))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((QUERIES[env.sizes.name], dims))
    async with database_url(env.backend) as url:
        db = await Database.open(url, schema=schema, prune=False)
        try:
            say(f"    inserting {size:,} vectors of {dims} dimensions ...")
            ids: list[str] = []
            for first in range(0, size, BATCH):
                docs = [
                    {"kind": f"k{i % KINDS}", "embedding": vectors[i].tolist()}
                    for i in range(first, min(size, first + BATCH))
                ]
                ids += (await db.run_mutation(lambda tx, d=docs: _insert_items(tx, d))).value
            search = VectorSearch.of(db)
            started = time.perf_counter()
            await search.search("items", "by_embedding", {"vector": queries[0].tolist()})
            build_s = time.perf_counter() - started
            say(f"    built in {build_s:.1f} s; querying ...")
            plain, hits = [], 0
            for query in queries:
                started = time.perf_counter()
                found = await search.search("items", "by_embedding", {"vector": query.tolist()})
                plain.append((time.perf_counter() - started) * 1000)
                truth = np.argsort(-(vectors @ query))[:10]
                hits += len({hit["_id"] for hit in found} & {ids[i] for i in truth})
            filtered = []
            for n, query in enumerate(queries):
                request = {
                    "vector": query.tolist(),
                    "filter": lambda q, k=f"k{n % KINDS}": q.eq("kind", k),
                }
                started = time.perf_counter()
                await search.search("items", "by_embedding", request)
                filtered.append((time.perf_counter() - started) * 1000)
        finally:
            await db.close()
    return Measurement(
        NAME,
        env.backend,
        "ours (in process)",
        f"{size:,} vectors x {dims}",
        {
            "vector build s": build_s,
            "vector recall@10": hits / (10 * len(queries)),
            **latency_metrics("vector top-10", plain),
            **latency_metrics("vector top-10 + filter", filtered),
        },
    )


async def _insert_items(tx: Any, docs: list[dict[str, Any]]) -> list[str]:
    return [await tx.insert("items", doc) for doc in docs]


async def _one_size(env: BenchEnv, size: int) -> list[Measurement]:
    rng = random.Random(SEED)
    words = _vocabulary(rng)
    async with database_url(env.backend) as url:
        db = await Database.open(url, schema=SCHEMA, prune=False)
        try:
            say(f"    indexing {size:,} documents ...")
            started = time.perf_counter()
            used: list[str] = []
            for first in range(0, size, BATCH):
                docs = [_document(rng, words) for _ in range(min(BATCH, size - first))]
                used += docs[0]["body"].split()
                await db.run_mutation(lambda tx, docs=docs: _insert_all(tx, docs))
                if first % (BATCH * 100) == 0 and first:
                    say(f"    ... {first:,} documents")
            indexing_s = time.perf_counter() - started
            say(f"    {size / indexing_s:,.0f} documents/s; querying ...")
            plain = await _latencies(db, rng, used, QUERIES[env.sizes.name], filtered=False)
            filtered = await _latencies(db, rng, used, QUERIES[env.sizes.name], filtered=True)
        finally:
            await db.close()
    case = f"{size:,} documents"
    return [
        Measurement(
            NAME,
            env.backend,
            "ours (in process)",
            case,
            {
                "indexed docs/s": size / indexing_s,
                **latency_metrics("text top-10", plain),
                **latency_metrics("text top-10 + filter", filtered),
            },
        )
    ]


def _vocabulary(rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 9))))
    return sorted(words)


def _document(rng: random.Random, words: list[str]) -> dict[str, Any]:
    body = " ".join(rng.choices(words, k=rng.randint(6, 12)))
    return {"body": body, "channel": f"c{rng.randrange(CHANNELS)}"}


async def _insert_all(tx: Any, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        await tx.insert("docs", doc)


async def _latencies(
    db: Database, rng: random.Random, words: list[str], count: int, *, filtered: bool
) -> list[float]:
    samples = []
    for _ in range(count):
        text = f"{rng.choice(words)} {rng.choice(words)[:4]}"
        channel = f"c{rng.randrange(CHANNELS)}"

        def search(q: Any, text: str = text, channel: str = channel) -> Any:
            q = q.search("body", text)
            return q.eq("channel", channel) if filtered else q

        async def query(tx: Any, search: Any = search) -> Any:
            return await tx.query("docs").with_search_index("search_body", search).take(10)

        started = time.perf_counter()
        await db.run_query(query)
        samples.append((time.perf_counter() - started) * 1000)
    return samples
