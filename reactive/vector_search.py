"""Vector search: the in-memory index of each vector index (a matrix scanned exactly, or an
HNSW graph when large), kept in step with the commit log, and `ctx.vector_search`'s query:
validation, filters, cosine scores.

Invariant: a search first learns every commit acknowledged before it (by any process), then
answers from an index that holds exactly the documents live at that commit; results are in
descending cosine score, ties by `_id`, so every backend gives one order for the same data.
See ARCHITECTURE.md, "Vector search".
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import numpy as np
from usearch.index import Index

from reactive import knobs
from reactive.committer import PublishedCommit
from reactive.database import Database
from reactive.errors import QueryError
from reactive.index_keys import decode_key, encode_value_key
from reactive.schema import BY_ID, VectorIndexSpec, get_field
from reactive.values import loads_stored

log = logging.getLogger("reactive.vector_search")
T = TypeVar("T")

__all__ = [
    "MAX_VECTOR_RESULTS",
    "VectorFilter",
    "VectorFilterBuilder",
    "VectorSearch",
]

#: As Convex: a vector search returns 1 to 256 results (10 unless `limit` says otherwise).
MAX_VECTOR_RESULTS: Final = 256
_DEFAULT_LIMIT: Final = 10
#: A search whose filter leaves at most this many candidates (or an index this small) is
#: answered exactly, by scoring every candidate: cheap, and exact where HNSW plus a filter
#: would have to over-fetch without bound.
EXACT_MAX: Final = 10_000
#: Float32 dot products of unit vectors are within this of the float64 ones.
_ROUNDING: Final = 1e-5
#: Commits waiting to be applied to an index before they are applied without a search.
_PENDING_MAX: Final = 256
#: Documents read and added to the index per step of a build.
_BUILD_PAGE: Final = 1000
#: Rows an index's matrix starts with (it doubles as it fills).
_FIRST_ROWS: Final = 1024
#: A search over fewer float32s than this runs on the event loop (a thread hop would cost
#: more than the search).
_THREAD_MIN_FLOATS: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class VectorFilter:
    """A filter of a vector search: a document passes when any (field, value) matches."""

    terms: tuple[tuple[str, Any], ...]


class VectorFilterBuilder:
    """The `q` of `"filter": lambda q: ...`: `q.eq(field, value)` and `q.or_(*filters)` of
    eqs, as Convex's vector search filters."""

    __slots__ = ()

    def eq(self, field_path: str, value: Any) -> VectorFilter:
        return VectorFilter(((field_path, value),))

    def or_(self, *filters: VectorFilter) -> VectorFilter:
        terms: list[tuple[str, Any]] = []
        for each in filters:
            if not isinstance(each, VectorFilter):
                raise QueryError(
                    f"q.or_() takes filters made by q.eq(...) or q.or_(...), got {each!r}",
                    short_msg="InvalidVectorFilter",
                )
            terms.extend(each.terms)
        return VectorFilter(tuple(terms))


class _Rows:
    """The unit vectors of an index small enough to scan whole (`knobs.VECTOR_EXACT_MAX_FLOATS`
    float32s in all): one row of a matrix per label, so a search is one matrix-vector product
    and exact. A removed label's row is reused by the next vector added."""

    __slots__ = ("alive", "end", "free", "matrix")

    def __init__(self, dimensions: int) -> None:
        self.matrix = np.zeros((_FIRST_ROWS, dimensions), dtype=np.float32)
        self.alive = np.zeros(_FIRST_ROWS, dtype=bool)
        #: Rows past `end` were never used; `free` lists removed rows below it.
        self.end = 0
        self.free: list[int] = []

    def new_label(self) -> int:
        if self.free:
            return self.free.pop()
        if self.end == len(self.alive):
            self._grow()
        self.end += 1
        return self.end - 1

    def _grow(self) -> None:
        capacity = 2 * len(self.alive)
        matrix = np.zeros((capacity, self.matrix.shape[1]), dtype=np.float32)
        matrix[: self.end] = self.matrix[: self.end]
        alive = np.zeros(capacity, dtype=bool)
        alive[: self.end] = self.alive[: self.end]
        self.matrix, self.alive = matrix, alive

    def put(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        self.matrix[labels] = vectors
        self.alive[labels] = True

    def remove(self, label: int) -> None:
        self.alive[label] = False
        self.free.append(label)

    def best(self, vector: np.ndarray, limit: int, allowed: set[int] | None) -> np.ndarray:
        """The labels of the `limit` best rows (float32 scores), with every row within
        rounding of the limit-th best, so that exact scores can rank them."""
        scores = self.matrix[: self.end] @ vector
        passing = self.alive[: self.end]
        if allowed is not None:
            chosen = np.zeros(self.end, dtype=bool)
            chosen[np.fromiter(allowed, dtype=np.int64, count=len(allowed))] = True
            passing = passing & chosen
        scores[~passing] = -np.inf
        count = min(limit, int(passing.sum()))
        if count == 0:
            return np.zeros(0, dtype=np.uint64)
        kth = np.partition(scores, len(scores) - count)[len(scores) - count]
        return np.flatnonzero(passing & (scores >= kth - _ROUNDING)).astype(np.uint64)


@dataclass(slots=True)
class _Live:
    """One vector index in memory: its vectors by label (`rows` while it is small enough to
    scan, else the HNSW graph `index`), and what each label is."""

    table_number: int
    spec: VectorIndexSpec
    rows: _Rows | None
    index: Index | None
    snapshot_ts: int
    #: (ts, changed document ids) of commits after `snapshot_ts` not yet applied.
    pending: list[tuple[int, list[str]]] = field(default_factory=list)
    label_of: dict[str, int] = field(default_factory=dict)
    id_of: dict[int, str] = field(default_factory=dict)
    #: filter field -> encoded value -> labels; label -> its (field, encoded value) pairs.
    by_value: dict[str, dict[bytes, set[int]]] = field(default_factory=dict)
    values_of: dict[int, tuple[tuple[str, bytes], ...]] = field(default_factory=dict)
    next_label: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    failure: BaseException | None = None
    builder: asyncio.Task[None] | None = None
    catching_up: asyncio.Task[None] | None = None

    def remove(self, doc_id: str) -> None:
        label = self.label_of.pop(doc_id, None)
        if label is None:
            return
        del self.id_of[label]
        for name, key in self.values_of.pop(label, ()):
            members = self.by_value[name][key]
            members.discard(label)
            if not members:
                del self.by_value[name][key]
        if self.rows is not None:
            self.rows.remove(label)
        else:
            assert self.index is not None
            self.index.remove(label)

    def new_label(self) -> int:
        if self.rows is not None:
            return self.rows.new_label()
        label = self.next_label
        self.next_label += 1
        return label

    def prepare(self, doc_id: str, doc: Mapping[str, Any]) -> np.ndarray | None:
        """Give `doc` a label and record its filter values; its normalised vector, or None
        when it has no vector of the index's dimensions (it is then not indexed)."""
        vector = _unit_vector(get_field(doc, self.spec.vector_field), self.spec.dimensions)
        if vector is None:
            return None
        label = self.new_label()
        self.label_of[doc_id] = label
        self.id_of[label] = doc_id
        pairs = tuple(
            (name, encode_value_key(get_field(doc, name))) for name in self.spec.filter_fields
        )
        self.values_of[label] = pairs
        for name, key in pairs:
            self.by_value.setdefault(name, {}).setdefault(key, set()).add(label)
        return vector


def _unit_vector(value: object, dimensions: int) -> np.ndarray | None:
    if not isinstance(value, list) or len(value) != dimensions:
        return None
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    norm = float(np.linalg.norm(vector))
    if not math.isfinite(norm) or norm == 0.0:
        return None
    return (vector / norm).astype(np.float32)


_instances: weakref.WeakKeyDictionary[Database, VectorSearch] = weakref.WeakKeyDictionary()


class VectorSearch:
    """The vector indexes of one Database in this process. Get it with `VectorSearch.of(db)`.

    An index is built from a table scan when first searched, then follows every published
    commit (this process's and other processes', learnt by the committer) that wrote its
    table: the commit's `by_id` keys say which documents changed, and they are re-read."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._live: dict[tuple[str, str], _Live] = {}
        db.add_commit_listener(self._learn)

    @classmethod
    def of(cls, db: Database) -> VectorSearch:
        found = _instances.get(db)
        if found is None:
            found = _instances[db] = cls(db)
        return found

    def _learn(self, commit: PublishedCommit) -> None:
        for (table, _), live in self._live.items():
            keys = commit.written.get(f"{table}.{BY_ID}")
            if keys and commit.ts > live.snapshot_ts:
                live.pending.append((commit.ts, [decode_key(key)[0] for key in keys]))
                if len(live.pending) >= _PENDING_MAX and live.catching_up is None:
                    # Nobody searched for a while: apply in the background, so that what
                    # waits stays bounded.
                    live.catching_up = asyncio.get_running_loop().create_task(
                        self._catch_up_now(live)
                    )

    async def _catch_up_now(self, live: _Live) -> None:
        try:
            await live.ready.wait()
            async with live.lock:
                await self._catch_up(live, self._db.latest_ts)
        except Exception:
            log.exception("vector index %s: applying commits failed", live.spec.name)
        finally:
            live.catching_up = None

    async def search(self, table: str, index_name: str, query: object) -> list[dict[str, Any]]:
        """`ctx.vector_search(table, index, {"vector", "limit", "filter"})`: the ids and
        cosine scores of the nearest documents, best first, ties by id."""
        spec = self._spec(table, index_name)
        vector, limit, terms = _checked_query(table, spec, query)
        db = self._db
        await db.wait_for_ts(await db.database_ts())
        live = await self._ready(table, spec)
        async with live.lock:
            await self._catch_up(live, db.latest_ts)
            allowed = _allowed(live, terms)
            if len(live.id_of) * live.spec.dimensions < _THREAD_MIN_FLOATS:
                return _nearest(live, vector, limit, allowed)
            # A scan of 100k x 768 takes ~10 ms: off the event loop (numpy and usearch
            # release the GIL); the lock keeps commits from changing the index meanwhile.
            return await _in_thread(_nearest, live, vector, limit, allowed)

    def _spec(self, table: str, index_name: str) -> VectorIndexSpec:
        schema = self._db.catalog.schema
        definition = None if schema is None else schema.tables.get(table)
        if definition is None:
            raise QueryError(
                f"vector_search: table {table!r} is not in the schema, so it has no vector indexes",
                short_msg="VectorIndexNotFound",
            )
        for spec in definition.vector_indexes:
            if spec.name == index_name:
                return spec
        declared = ", ".join(spec.name for spec in definition.vector_indexes) or "none"
        raise QueryError(
            f"vector_search: table {table!r} has no vector index {index_name!r} (its vector "
            f"indexes: {declared})",
            short_msg="VectorIndexNotFound",
        )

    async def _ready(self, table: str, spec: VectorIndexSpec) -> _Live:
        key = (table, spec.name)
        live = self._live.get(key)
        if (
            live is None
            or live.spec != spec
            or live.failure is not None
            or (live.table_number < 0 and self._db.catalog.table_number(table) is not None)
        ):
            live = self._start_build(table, spec)
        await live.ready.wait()
        if live.failure is not None:
            raise live.failure
        return live

    def _start_build(self, table: str, spec: VectorIndexSpec) -> _Live:
        number = self._db.catalog.table_number(table)
        # Registered before the scan's snapshot is taken (both without an await between):
        # every commit after the snapshot reaches `pending`.
        live = _Live(
            -1 if number is None else number,
            spec,
            _Rows(spec.dimensions),
            None,
            self._db.latest_ts,
        )
        self._live[(table, spec.name)] = live
        live.builder = asyncio.get_running_loop().create_task(self._build(live))
        return live

    async def _build(self, live: _Live) -> None:
        try:
            if live.table_number >= 0:
                await self._scan_into(live)
        except Exception as exc:  # every search waiting for the build gets it
            live.failure = exc
        finally:
            live.ready.set()

    async def _scan_into(self, live: _Live) -> None:
        labels: list[int] = []
        vectors: list[np.ndarray] = []
        async for doc in self._db.iter_documents(live.table_number, live.snapshot_ts):
            value = loads_stored(doc.value)
            assert isinstance(value, dict)
            vector = live.prepare(doc.id, value)
            if vector is not None:
                labels.append(live.label_of[doc.id])
                vectors.append(vector)
            if len(vectors) >= _BUILD_PAGE:
                await _add(live, labels, vectors)
                labels, vectors = [], []
        if vectors:
            await _add(live, labels, vectors)
        await _outgrow_rows(live)

    async def _catch_up(self, live: _Live, ts: int) -> None:
        """Apply the commits up to `ts`: each changed document as it is at `ts`."""
        applied = [entry for entry in live.pending if entry[0] <= ts]
        if not applied:
            return
        live.pending = [entry for entry in live.pending if entry[0] > ts]
        changed = sorted({doc_id for _, ids in applied for doc_id in ids})
        labels: list[int] = []
        vectors: list[np.ndarray] = []
        persistence = self._db.persistence
        for doc_id in changed:  # all first, so that their rows are free for the new vectors
            live.remove(doc_id)
        for doc_id in changed:
            stored = await persistence.get_document(live.table_number, doc_id, ts)
            if stored is None:
                continue
            value = loads_stored(stored.value)
            assert isinstance(value, dict)
            vector = live.prepare(doc_id, value)
            if vector is not None:
                labels.append(live.label_of[doc_id])
                vectors.append(vector)
        if vectors:
            await _add(live, labels, vectors)
        await _outgrow_rows(live)


async def _add(live: _Live, labels: list[int], vectors: list[np.ndarray]) -> None:
    """Put the vectors in the rows, or add them to the graph off the event loop (usearch
    releases the GIL; one thread, so the same data added in the same order builds the same
    graph)."""
    keys = np.asarray(labels, dtype=np.uint64)
    matrix = np.vstack(vectors)
    if live.rows is not None:
        live.rows.put(keys.astype(np.int64), matrix)
    else:
        assert live.index is not None
        await _in_thread(live.index.add, keys, matrix, threads=1)


async def _outgrow_rows(live: _Live) -> None:
    """Past `knobs.VECTOR_EXACT_MAX_FLOATS`, a scan costs too much: build the HNSW graph from
    the rows (labels kept, in label order) and search it from now on."""
    rows = live.rows
    # `id_of` holds exactly the labels in the rows: no pass over them after every commit.
    if rows is None or len(live.id_of) * live.spec.dimensions <= knobs.VECTOR_EXACT_MAX_FLOATS:
        return
    labels = np.flatnonzero(rows.alive[: rows.end])
    log.info(
        "vector index %s: %d vectors of %d dimensions are more than an exact scan allows; "
        "building its HNSW graph (searches of it wait)",
        live.spec.name,
        len(labels),
        live.spec.dimensions,
    )
    index = _new_graph(live.spec)
    started = time.perf_counter()
    await _in_thread(
        index.add,
        labels.astype(np.uint64),
        rows.matrix[labels],
        threads=knobs.VECTOR_BUILD_THREADS,
    )
    live.index, live.rows, live.next_label = index, None, rows.end
    log.info(
        "vector index %s: graph built in %.1f s", live.spec.name, time.perf_counter() - started
    )


def _new_graph(spec: VectorIndexSpec) -> Index:
    return Index(
        ndim=spec.dimensions,
        metric="ip",
        dtype="f32",
        connectivity=knobs.VECTOR_CONNECTIVITY,
        expansion_add=knobs.VECTOR_EXPANSION_ADD,
        expansion_search=knobs.VECTOR_EXPANSION_SEARCH,
    )


async def _in_thread(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`work` in a thread. A cancelled caller still waits for the thread to finish: the
    index's lock is released on the way out, and its next holder must not change the rows or
    the graph while this thread still reads or writes them."""
    running = asyncio.ensure_future(asyncio.to_thread(work, *args, **kwargs))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait([running])
        raise


def _nearest(
    live: _Live, vector: np.ndarray, limit: int, allowed: set[int] | None
) -> list[dict[str, Any]]:
    size = len(live.id_of)
    if size == 0 or (allowed is not None and not allowed):
        return []
    if allowed is not None and len(allowed) <= EXACT_MAX:
        candidates = np.fromiter(allowed, dtype=np.uint64, count=len(allowed))
    elif live.rows is not None:
        candidates = live.rows.best(vector, limit, allowed)
    elif size <= EXACT_MAX:
        candidates = np.fromiter(live.id_of, dtype=np.uint64, count=size)
    else:
        candidates = _approximate(live, vector, limit, allowed)
    return _scored(live, vector, candidates, limit)


def _approximate(
    live: _Live, vector: np.ndarray, limit: int, allowed: set[int] | None
) -> np.ndarray:
    """Candidates from the HNSW graph; with a filter, over-fetch by the inverse of its
    selectivity (at least EXACT_MAX of the documents pass, so this is bounded)."""
    size = len(live.id_of)
    want = max(limit * 2, 32)
    if allowed is not None:
        want = math.ceil(want * size / len(allowed))
    while True:
        count = min(want, size)
        assert live.index is not None
        found = np.asarray(live.index.search(vector, count).keys, dtype=np.uint64)
        if allowed is None:
            return found
        passing = np.asarray([key for key in found.tolist() if key in allowed], dtype=np.uint64)
        if len(passing) >= limit or count >= size:
            return passing
        want *= 2


def _scored(
    live: _Live, vector: np.ndarray, candidates: np.ndarray, limit: int
) -> list[dict[str, Any]]:
    """Exact cosine scores of `candidates` (from the stored unit vectors, in float64), best
    first, ties by id."""
    if len(candidates) == 0:
        return []
    if live.rows is not None:
        stored = live.rows.matrix[candidates.astype(np.int64)]
    else:
        assert live.index is not None
        stored = np.asarray(live.index.get(candidates), dtype=np.float32)
    if len(candidates) > limit:
        # Select in float32 (fast), keeping everything within rounding of the limit-th best,
        # so that the float64 scores below rank every candidate that could be in the top.
        rough = stored @ vector
        kth = np.partition(rough, len(rough) - limit)[len(rough) - limit]
        keep = rough >= kth - _ROUNDING
        stored, candidates = stored[keep], candidates[keep]
    scores = stored.astype(np.float64) @ vector.astype(np.float64)
    ranked = sorted(
        zip(scores.tolist(), candidates.tolist(), strict=True),
        key=lambda pair: (-pair[0], live.id_of[pair[1]]),
    )
    return [{"_id": live.id_of[label], "_score": score} for score, label in ranked[:limit]]


_QUERY_KEYS: Final = frozenset({"vector", "limit", "filter"})


def _checked_query(
    table: str, spec: VectorIndexSpec, query: object
) -> tuple[np.ndarray, int, tuple[tuple[str, bytes], ...] | None]:
    """The query's unit vector, its limit and its filter as (field, encoded value) pairs, or
    a QueryError naming what is wrong."""
    where = f"vector_search on {table}.{spec.name}"
    if not isinstance(query, Mapping):
        raise _bad(
            f'{where}: the query must be a dict {{"vector": [...], "limit": n, '
            f'"filter": lambda q: ...}}, got {type(query).__name__}',
            "InvalidVectorQuery",
        )
    unknown = sorted(set(query) - _QUERY_KEYS, key=str)
    if unknown:
        raise _bad(
            f"{where}: unknown query keys {unknown} (allowed: vector, limit, filter)",
            "InvalidVectorQuery",
        )
    raw = query.get("vector")
    if not isinstance(raw, list | tuple) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in raw
    ):
        raise _bad(f'{where}: "vector" must be a list of numbers', "InvalidVectorQuery")
    if len(raw) != spec.dimensions:
        raise _bad(
            f"{where}: the vector has {len(raw)} dimensions but the index has {spec.dimensions}",
            "VectorDimensionMismatch",
        )
    vector = _unit_vector(list(raw), spec.dimensions)
    if vector is None:
        raise _bad(
            f"{where}: the vector must be finite and not all zeros (cosine "
            "similarity is undefined for it)",
            "InvalidVectorQuery",
        )
    limit = query.get("limit", _DEFAULT_LIMIT)
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not (1 <= limit <= MAX_VECTOR_RESULTS)
    ):
        raise _bad(
            f'{where}: "limit" must be an integer from 1 to {MAX_VECTOR_RESULTS}, got {limit!r}',
            "InvalidVectorSearchLimit",
        )
    build = query.get("filter")
    if build is None:
        return vector, limit, None
    if not callable(build):
        raise _bad(
            f'{where}: "filter" must be a function such as lambda q: q.eq("field", value)',
            "InvalidVectorFilter",
        )
    made = build(VectorFilterBuilder())
    if not isinstance(made, VectorFilter):
        raise _bad(
            f"{where}: the filter function must return q.eq(...) or q.or_(...), got {made!r}",
            "InvalidVectorFilter",
        )
    terms = []
    for name, value in made.terms:
        if name not in spec.filter_fields:
            declared = ", ".join(spec.filter_fields) or "none"
            raise _bad(
                f"{where}: cannot filter on {name!r}: it is not a filter field of the index "
                f"(its filter fields: {declared})",
                "VectorFilterFieldNotIndexed",
            )
        try:
            key = encode_value_key(value)
        except (TypeError, ValueError) as exc:
            raise _bad(f"{where}: q.eq({name!r}, ...): {exc}", "InvalidVectorFilter") from None
        terms.append((name, key))
    return vector, limit, tuple(terms)


def _bad(message: str, short_msg: str) -> QueryError:
    return QueryError(message, short_msg=short_msg)


def _allowed(live: _Live, terms: tuple[tuple[str, bytes], ...] | None) -> set[int] | None:
    """The labels a filter lets through (None: no filter)."""
    if terms is None:
        return None
    allowed: set[int] = set()
    for name, key in terms:
        allowed |= live.by_value.get(name, {}).get(key, set())
    return allowed
