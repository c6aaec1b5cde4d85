"""A transaction: snapshot reads at `begin_ts` that record the key ranges they scan, and
buffered writes that later reads see (read-your-own-writes).

Nothing here touches the database's write path: the committer turns `build_writes()` into rows.

Convex's per-function limits (documents and bytes read, index ranges, documents and bytes
written) are counted here as the function runs, so a function over one fails at the read or
write that crossed it, and its transaction is never committed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from reactive import knobs
from reactive.catalog import Catalog, IndexInfo
from reactive.cursors import Cursor, CursorCodec
from reactive.errors import InvalidIdError, LimitError, NotFoundError, QueryError, ValidationError
from reactive.ids import decode_id, new_id
from reactive.index_keys import Interval, encode_key, id_point
from reactive.persistence.base import (
    DocumentWrite,
    IndexEntry,
    IndexWrite,
    Persistence,
    StoredDocument,
)
from reactive.query_builder import QueryBuilder, QuerySpec, resolve_range
from reactive.reads import ReadSet, ReadToken, index_ref
from reactive.recent_writes import WrittenKeys
from reactive.schema import get_field
from reactive.search import (
    MAX_SEARCH_RESULTS,
    SearchPlan,
    passes_filters,
    plan_search,
    posting_document_id,
    posting_keys,
    rank,
)
from reactive.types import Order, Value
from reactive.values import (
    UNDEFINED,
    Undefined,
    check_document,
    dumps,
    loads_stored,
)

__all__ = ["PendingWrite", "PreparedWrites", "Transaction", "TransactionLimits"]

Document = dict[str, Value]
#: A scanned index entry: its key, the document, and the bytes read from storage for it.
_Entry = tuple[bytes, Document, int]


@dataclass(slots=True)
class PendingWrite:
    """A document this transaction changed: its version at begin_ts and its new value.

    `original` is None for an insert; `new` is None for a delete.
    """

    table: str
    table_number: int
    original: Document | None
    original_ts: int | None
    new: Document | None


@dataclass(slots=True)
class PreparedWrites:
    """Rows to persist and keys written, computed against the catalog at commit time."""

    documents: list[DocumentWrite] = field(default_factory=list)
    indexes: list[IndexWrite] = field(default_factory=list)
    written: WrittenKeys = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TransactionLimits:
    """What one function's transaction may read and write (Convex's limits, from knobs)."""

    documents_scanned: int
    bytes_read: int
    index_ranges_read: int
    documents_written: int
    bytes_written: int

    @classmethod
    def from_knobs(cls) -> TransactionLimits:
        return cls(
            documents_scanned=knobs.MAX_DOCUMENTS_SCANNED,
            bytes_read=knobs.MAX_BYTES_READ,
            index_ranges_read=knobs.MAX_INDEX_RANGES_READ,
            documents_written=knobs.MAX_DOCUMENTS_WRITTEN,
            bytes_written=knobs.MAX_BYTES_WRITTEN,
        )

    @classmethod
    def unlimited(cls) -> TransactionLimits:
        """For the engine's own bulk work (imports), which no user function bounds."""
        return cls(*(1 << 62,) * 5)


#: What a function over a read limit is told to do instead.
_READ_LESS = (
    "Read less in one function: select with an index range (with_index) rather than "
    "filter, take() fewer, or paginate"
)
#: What a function over a write limit is told to do instead.
_WRITE_LESS = (
    "Write in batches: split the work over several mutations (an action or the client "
    "can run one mutation per batch)"
)


def index_key(info: IndexInfo, doc: Document) -> bytes:
    return encode_key([get_field(doc, f) for f in info.key_fields])


def _copy(value: Any) -> Any:
    """A private copy of a document: callers may mutate what they get without touching the
    transaction's snapshot or its pending writes."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _decode(stored: StoredDocument) -> Document:
    doc = loads_stored(stored.value)
    assert isinstance(doc, dict)
    return doc


class _StorageWait:
    """Seconds spent inside `with` blocks (monotonic), the one under way included. A class,
    not a @contextmanager generator: it is entered on every read, at a quarter of the cost."""

    __slots__ = ("_seconds", "_since")

    def __init__(self) -> None:
        self._seconds = 0.0
        self._since: float | None = None

    def __enter__(self) -> None:
        self._since = time.monotonic()

    def __exit__(self, *exc_info: object) -> None:
        if self._since is not None:
            self._seconds += time.monotonic() - self._since
            self._since = None

    def seconds_so_far(self) -> float:
        since = self._since
        return self._seconds + (0.0 if since is None else time.monotonic() - since)


class Transaction:
    """One unit of work at snapshot `begin_ts`. Not shared between tasks."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        persistence: Persistence,
        cursors: CursorCodec,
        begin_ts: int,
        read_only: bool,
        journal: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.persistence = persistence
        self.cursors = cursors
        self.begin_ts = begin_ts
        self.read_only = read_only
        self.reads = ReadSet()
        self.writes: dict[str, PendingWrite] = {}
        #: Pagination journal in: the end cursor recorded by this query's previous run.
        self.journal_in = journal
        #: Pagination journal out: where this run's page ended (None if it did not paginate).
        self.journal_out: str | None = None
        self._paginated = False
        #: What this transaction may read and write (imports lift the limits).
        self.limits = TransactionLimits.from_knobs()
        self._scanned = 0
        self._bytes_read = 0
        self._ranges_read = 0
        self._bytes_written = 0
        #: The size each pending write counts against the bytes-written limit.
        self._write_sizes: dict[str, int] = {}
        #: Time spent waiting for storage, which a function's time limit leaves out, as
        #: Convex's does: `with self._storage_wait:` around every read.
        self._storage_wait = _StorageWait()
        self._last_creation_time = 0.0
        #: Documents read from storage at begin_ts (id -> (doc, version ts) or None).
        self._snapshot: dict[str, tuple[Document, int] | None] = {}

    # -- documents -------------------------------------------------------------------------

    async def get(self, doc_id: str, *, table: str | None = None) -> Document | None:
        """The document `doc_id` at this snapshot, or None. With `table` (Convex's
        `db.get(table, id)`), an id of another table is an error rather than a read."""
        self._count_range()
        table_number, _ = decode_id(doc_id)
        found = self.catalog.table_name(table_number)
        if table is not None and found != table:
            raise InvalidIdError(
                f"db.get({table!r}, id): {doc_id} is an id of "
                f"{'no table here' if found is None else f'table {found!r}'}, not of {table!r}. "
                f"Pass the table the id belongs to (check ids with v.id({table!r}))",
                short_msg="InvalidTableForId",
            )
        if found is None:
            return None
        return await self._load(found, table_number, doc_id)

    async def _load(
        self, table: str, table_number: int, doc_id: str, *, private: bool = True
    ) -> Document | None:
        """The document at this snapshot (or as this transaction left it), recorded as read.

        `private`: a copy the caller may change; without it, the stored object itself, for
        callers that only build new documents from it (patch, replace, delete)."""
        self.reads.record(index_ref(table, "by_id"), id_point(doc_id))
        pending = self.writes.get(doc_id)
        if pending is not None:
            return _copy(pending.new) if private else pending.new
        if doc_id not in self._snapshot:
            with self._storage_wait:
                stored = await self.persistence.get_document(table_number, doc_id, self.begin_ts)
            self._count_scanned(0 if stored is None else len(stored.value))
            self._snapshot[doc_id] = None if stored is None else (_decode(stored), stored.ts)
        found = self._snapshot[doc_id]
        if found is None:
            return None
        return _copy(found[0]) if private else found[0]

    def normalize_id(self, table: str, text: object) -> str | None:
        """`text` if it is an id of `table`, else None (never raises for a bad string)."""
        if not isinstance(text, str):
            return None
        try:
            number, _ = decode_id(text)
        except InvalidIdError:
            return None
        return text if number == self.catalog.table_number(table) else None

    async def insert(self, table: str, value: Document, *, system: bool = False) -> str:
        self._require_writable("insert")
        _require_user_table(table, system, "insert into")
        if not isinstance(value, dict):
            raise ValidationError(f"insert into {table!r} needs a document (dict), got {value!r}")
        number = await self.catalog.ensure_table(table, allow_system=system)
        doc_id = new_id(number)
        doc = _copy({**value, "_id": doc_id, "_creationTime": self._creation_time()})
        size = self._validate(table, doc, user_fields=value, system=system)
        self._count_write(doc_id, size)
        self.writes[doc_id] = PendingWrite(table, number, None, None, doc)
        return doc_id

    async def restore(self, table: str, doc: Document) -> str:
        """Insert a document that keeps its exported `_id` and `_creationTime` (imports).

        The id must be one of `table` here and must not exist yet.
        """
        self._require_writable("restore")
        doc_id, created = doc.get("_id"), doc.get("_creationTime")
        if not isinstance(doc_id, str) or not isinstance(created, float):
            raise ValidationError("an imported document needs _id (string), _creationTime (float)")
        number = self.catalog.table_number(table)
        if number is None or decode_id(doc_id)[0] != number:
            raise InvalidIdError(f"{doc_id} is not an id of table {table!r} in this database")
        if doc_id in self.writes or await self._load(table, number, doc_id) is not None:
            raise ValidationError(f"document {doc_id} already exists", short_msg="DuplicateId")
        user_fields = {k: v for k, v in doc.items() if k not in ("_id", "_creationTime")}
        size = self._validate(table, doc, user_fields=user_fields, system=table.startswith("_"))
        self._count_write(doc_id, size)
        self.writes[doc_id] = PendingWrite(table, number, None, None, _copy(doc))
        return doc_id

    async def patch(self, doc_id: str, fields: Document, *, system: bool = False) -> None:
        self._require_writable("patch")
        if not isinstance(fields, dict):
            raise ValidationError(f"patch needs a dict of fields, got {fields!r}")
        table, number, current = await self._existing(doc_id, "patch", system)
        for name in ("_id", "_creationTime"):
            if name in fields and fields[name] != current[name]:
                raise ValidationError(f"patch cannot change the system field {name!r}")
        merged = {**current, **_copy(fields)}
        doc = {k: v for k, v in merged.items() if v is not UNDEFINED}
        user_fields = {k: v for k, v in fields.items() if not k.startswith("_")}
        size = self._validate(table, doc, user_fields=user_fields, system=table.startswith("_"))
        self._stage(doc_id, table, number, doc, size)

    async def replace(self, doc_id: str, value: Document, *, system: bool = False) -> None:
        self._require_writable("replace")
        if not isinstance(value, dict):
            raise ValidationError(f"replace needs a document (dict), got {value!r}")
        table, number, current = await self._existing(doc_id, "replace", system)
        if value.get("_id", doc_id) != doc_id:
            raise ValidationError("replace cannot change a document's _id")
        user_fields = {k: v for k, v in value.items() if k not in ("_id", "_creationTime")}
        doc = _copy({**user_fields, "_id": doc_id, "_creationTime": current["_creationTime"]})
        size = self._validate(table, doc, user_fields=user_fields, system=table.startswith("_"))
        self._stage(doc_id, table, number, doc, size)

    async def delete(self, doc_id: str, *, system: bool = False) -> None:
        self._require_writable("delete")
        table, number, _ = await self._existing(doc_id, "delete", system)
        self._stage(doc_id, table, number, None, 0)

    async def _existing(
        self, doc_id: object, operation: str, system: bool
    ) -> tuple[str, int, Document]:
        if not isinstance(doc_id, str):
            raise InvalidIdError(f"{operation} needs a document id string, got {doc_id!r}")
        number, _ = decode_id(doc_id)
        table = self.catalog.table_name(number)
        if table is not None:
            _require_user_table(table, system, operation)
        current = None if table is None else await self._load(table, number, doc_id, private=False)
        if table is None or current is None:
            raise NotFoundError(
                f"{operation} on nonexistent document id {doc_id}", short_msg="DocumentNotFound"
            )
        return table, number, current

    def _stage(self, doc_id: str, table: str, number: int, doc: Document | None, size: int) -> None:
        pending = self.writes.get(doc_id)
        if pending is not None and pending.original is None and doc is None:
            del self.writes[doc_id]  # inserted then deleted: nothing to write
            self._bytes_written -= self._write_sizes.pop(doc_id, 0)
            return
        self._count_write(doc_id, size)
        if pending is not None:
            pending.new = doc
            return
        original, original_ts = self._snapshot[doc_id] or (None, None)
        self.writes[doc_id] = PendingWrite(table, number, original, original_ts, doc)

    def _validate(self, table: str, doc: Document, *, user_fields: Document, system: bool) -> int:
        """Check a document about to be written; returns its size."""
        if not system:
            for name in user_fields:
                if isinstance(name, str) and name.startswith("_"):
                    raise ValidationError(
                        f"Field {name!r} in table {table!r}: field names starting with '_' "
                        "are reserved for system fields",
                        short_msg="InvalidFieldName",
                    )
        size = check_document(doc, allow_system_fields=True)  # check_value(doc) included
        schema = self.catalog.schema
        if schema is not None:
            schema.validate_document(table, doc, self.catalog)
        return size

    def _creation_time(self) -> float:
        # Strictly increasing within the transaction so by_creation_time keeps insert order.
        now = time.time_ns() / 1e6
        self._last_creation_time = max(now, self._last_creation_time + 1e-3)
        return self._last_creation_time

    def _require_writable(self, operation: str) -> None:
        if self.read_only:
            raise QueryError(
                f"db.{operation}() is not allowed in a query: queries are read-only",
                short_msg="ReadOnlyTransaction",
            )

    # -- Convex's limits, counted as the function runs ----------------------------------

    def storage_seconds(self) -> float:
        """Seconds this transaction has spent waiting for storage, up to now."""
        return self._storage_wait.seconds_so_far()

    def _count_scanned(self, size: int, documents: int = 1) -> None:
        """One document read from storage (or from this transaction's writes), `size` bytes;
        `documents=0` for the bytes of one counted already (a search's result, counted as
        its postings were)."""
        self._scanned += documents
        self._bytes_read += size
        if self._scanned > self.limits.documents_scanned:
            raise LimitError(
                "Too many documents read in a single function execution (limit: "
                f"{self.limits.documents_scanned}). {_READ_LESS}",
                short_msg="TooManyDocumentsRead",
            )
        if self._bytes_read > self.limits.bytes_read:
            raise LimitError(
                "Too many bytes read in a single function execution (limit: "
                f"{self.limits.bytes_read} bytes). {_READ_LESS}",
                short_msg="TooManyBytesRead",
            )

    def _count_range(self) -> None:
        """One index range read: a db.get or one run of a query."""
        self._ranges_read += 1
        if self._ranges_read > self.limits.index_ranges_read:
            raise LimitError(
                "Too many reads in a single function execution (limit: "
                f"{self.limits.index_ranges_read} db.get calls and queries). Fetch related "
                "documents with one indexed query instead of a get each, or paginate",
                short_msg="TooManyReads",
            )

    def _count_write(self, doc_id: str, size: int) -> None:
        """Refuse a write of `doc_id` (new version `size` bytes, 0 for a delete) that would
        take the transaction over a write limit; else count it."""
        documents = len(self.writes) + (doc_id not in self.writes)
        if documents > self.limits.documents_written:
            raise LimitError(
                "Too many documents written in a single function execution (limit: "
                f"{self.limits.documents_written}). {_WRITE_LESS}",
                short_msg="TooManyWrites",
            )
        written = self._bytes_written - self._write_sizes.get(doc_id, 0) + size
        if written > self.limits.bytes_written:
            raise LimitError(
                "Too many bytes written in a single function execution (limit: "
                f"{self.limits.bytes_written} bytes). {_WRITE_LESS}",
                short_msg="TooManyBytesWritten",
            )
        self._bytes_written = written
        self._write_sizes[doc_id] = size

    # -- queries ---------------------------------------------------------------------------

    def query(self, table: str) -> QueryBuilder:
        if not isinstance(table, str):
            raise QueryError(f"db.query needs a table name, got {table!r}")
        return QueryBuilder(self, QuerySpec(table=table))

    def _resolve(self, spec: QuerySpec) -> tuple[str, IndexInfo | None, Interval]:
        self._count_range()
        fields = self.catalog.index_fields_for_query(spec.table, spec.index_name)
        info = self.catalog.query_index(spec.table, spec.index_name)
        interval = resolve_range(spec.bounds, fields, f"{spec.table}.{spec.index_name}")
        return index_ref(spec.table, spec.index_name), info, interval

    async def iterate(self, spec: QuerySpec) -> AsyncIterator[Document]:
        if spec.search is not None:
            for doc in await self._search(spec, limit=MAX_SEARCH_RESULTS):
                yield doc
            return
        ref, info, interval = self._resolve(spec)
        async for key, doc in self._scan(spec, info, interval, page_size=knobs.SCAN_PAGE_SIZE):
            if _passes(spec, doc):
                # Record before yielding: the caller may stop at any point.
                self.reads.record(ref, _covered(interval, key, spec.order))
                yield doc
        self.reads.record(ref, interval)

    async def take(self, spec: QuerySpec, n: int) -> list[Document]:
        if spec.search is not None:
            return await self._search(spec, limit=min(n, MAX_SEARCH_RESULTS))
        ref, info, interval = self._resolve(spec)
        found: list[Document] = []
        if n == 0:
            return found
        page = n if not spec.filters else knobs.SCAN_PAGE_SIZE

        def enough(key: bytes, doc: Document) -> bool:
            """Keep `doc` if it passes the filters; True once `n` are kept, the read set then
            ending at `key`."""
            if not _passes(spec, doc):
                return False
            found.append(doc)
            if len(found) < n:
                return False
            self.reads.record(ref, _covered(interval, key, spec.order))
            return True

        if info is not None and not self.writes:
            # Nothing of this transaction's own to merge in (every query): whole pages, not a
            # document at a time through _scan's stack of async generators.
            async for entries in self._stored_pages(info, interval, spec.order, page):
                for entry in entries:
                    self._count_scanned(len(entry.document.value))
                    if enough(entry.key, _decode(entry.document)):
                        return found
        else:
            async for key, doc in self._scan(spec, info, interval, page_size=page):
                if enough(key, doc):
                    return found
        self.reads.record(ref, interval)
        return found

    async def paginate(self, spec: QuerySpec, opts: dict[str, Any]) -> dict[str, Any]:
        num_items, cursor_text, end_text, budget = _pagination_opts(opts)
        if self._paginated:  # one page per function: its journal holds one end cursor
            raise QueryError(
                "This query or mutation function ran multiple paginated queries. Convex "
                "only supports a single paginated query in each function: paginate once, "
                "and read other tables with take() or collect()",
                short_msg="MultiplePaginatedDatabaseQueries",
            )
        self._paginated = True
        if end_text is None:
            end_text = self.journal_in
        if spec.search is not None:
            return await self._search_page(spec, num_items, cursor_text, end_text)
        ref, info, interval = self._resolve(spec)
        order = spec.order.value
        start = None if cursor_text is None else self.cursors.decode(cursor_text, ref, order)
        end = None if end_text is None else self.cursors.decode(end_text, ref, order)
        if start is not None and start.is_end:
            return self._page([], done=True, position=start, ref=ref, order=order)
        interval = _narrow(interval, start, end, spec.order)
        if end is not None:  # a re-run must reach its end whatever it reads (as Convex)
            read = await self._read_page(spec, info, interval, None, _ReadBudget())
        else:
            read = await self._read_page(spec, info, interval, num_items, budget)
        page, last_key = read.page, read.last_key
        if not read.exhausted:
            self.reads.record(ref, _covered(interval, last_key, spec.order))
            result = self._page(page, done=False, position=Cursor(last_key), ref=ref, order=order)
        else:
            self.reads.record(ref, interval)
            if end is not None and not end.is_end:
                result = self._page(page, done=False, position=end, ref=ref, order=order)
            else:
                result = self._page(page, done=True, position=Cursor(None), ref=ref, order=order)
        return self._with_split(result, read, ref, order)

    def _with_split(
        self, result: dict[str, Any], read: _PageRead, ref: str, order: str
    ) -> dict[str, Any]:
        """Convex's advice to split a page that read much: `pageStatus` "SplitRequired"
        (it stopped at maximumRowsRead / maximumBytesRead, so it may lack documents) or
        "SplitRecommended" (it came near them), and `splitCursor`, a cursor in its middle
        (so (cursor, continueCursor] can become (cursor, split] and (split, continueCursor]).
        Both keys are left out when there is no advice, as they are optional in Convex."""
        status = read.status(len(result["page"]))
        if status is None:
            return result
        split = read.split_key()
        result["pageStatus"] = status
        result["splitCursor"] = (
            None if split is None else self.cursors.encode(Cursor(split), ref, order)
        )
        return result

    async def _read_page(
        self,
        spec: QuerySpec,
        info: IndexInfo | None,
        interval: Interval,
        limit: int | None,
        budget: _ReadBudget,
    ) -> _PageRead:
        """Docs up to `limit` (None = whole interval), stopping early once the page has read
        its budget of rows or bytes (Convex's maximumRowsRead / maximumBytesRead)."""
        read = _PageRead(budget, last_key=interval.start)
        bytes_before = self._bytes_read
        page_size = limit if limit is not None and not spec.filters else knobs.SCAN_PAGE_SIZE
        if budget.rows is not None:
            page_size = min(page_size, budget.rows)
        async for key, doc in self._scan(spec, info, interval, page_size=page_size):
            read.scanned(key, self._bytes_read - bytes_before)
            if _passes(spec, doc):
                read.page.append(doc)
            if read.over_budget():
                read.split_required = True
                return read
            if limit is not None and len(read.page) >= limit:
                return read
        read.exhausted = True
        return read

    def _page(
        self, page: list[Document], *, done: bool, position: Cursor, ref: str, order: str
    ) -> dict[str, Any]:
        cursor = self.cursors.encode(position, ref, order)
        self.journal_out = cursor
        return {"page": page, "isDone": done, "continueCursor": cursor}

    # -- full-text search (search.py): posting ranges scanned at the snapshot ------------------

    async def _search(self, spec: QuerySpec, *, limit: int) -> list[Document]:
        """The first `limit` documents a search finds, best first, after the query's
        `.filter`s; each term's posting range scanned is recorded in the read set. It ranks
        from the postings' keys and reads the documents it returns, not all it ranks."""
        assert spec.search is not None
        self._count_range()
        info, search_field, filter_fields = self.catalog.search_index(spec.table, spec.index_name)
        plan = plan_search(spec.index_name, search_field, filter_fields, spec.search)
        postings = await self._search_postings(spec, info, plan)
        if info is None:
            return []
        read: dict[str, Document] = {}  # the documents read so far, each read once
        if len(plan.filters) > 1:
            # The postings scanned are those of the first filter's value: the documents tell
            # the others (their values are not in these keys).
            postings = await self._postings_passing(info, postings, plan.filters, read)
        ranked = [doc_id for _score, doc_id in rank(postings)]
        results: list[Document] = []
        position, batch = 0, limit
        while len(results) < limit and position < len(ranked):
            ids = ranked[position : position + batch]
            position, batch = position + len(ids), batch * 2  # more .filter misses: read more
            for doc in await self._search_documents(info, ids, read):
                if _passes(spec, doc):
                    results.append(doc)
                    if len(results) == limit:
                        break
        return results

    async def _search_postings(
        self, spec: QuerySpec, info: IndexInfo | None, plan: SearchPlan
    ) -> list[list[bytes]]:
        """The keys of every posting of each term's range at the snapshot, this transaction's
        writes included; the first page of every range read in one round trip (all of them
        hold at most SCAN_PAGE_SIZE * 8 postings, the largest page a scan reads, unless there
        are more than 8 terms)."""
        ref = index_ref(spec.table, spec.index_name)
        page_size = max(1, knobs.SCAN_PAGE_SIZE, knobs.SCAN_PAGE_SIZE * 8 // len(plan.intervals))
        first_pages: list[list[bytes]] = [[] for _ in plan.intervals]
        if info is not None:
            ranges = [(interval.start, interval.end) for interval in plan.intervals]
            with self._storage_wait:
                first_pages = await self.persistence.index_keys_ranges(
                    info.index_id, ranges, self.begin_ts, page_size
                )
        # This transaction's writes stand for the stored postings of the documents it wrote.
        pending = [] if info is None else self._pending_postings(info)
        postings = []
        for term, interval, first_page in zip(plan.terms, plan.intervals, first_pages, strict=True):
            try:
                if info is not None:
                    own = [key for key in pending if interval.contains(key)]
                    scan = self._term_postings(info, interval, own, first_page, page_size)
                    postings.append(await scan)
            except LimitError as exc:
                raise LimitError(
                    f"Search on {ref!r} read too much at the term {term!r}: a search reads "
                    "every posting of its terms (under its first filter). Search rarer words, "
                    f"or filter with eq() on a filter field of the index. ({exc.msg})",
                    short_msg=exc.short_msg,
                ) from exc
            self.reads.record(ref, interval)
        return postings

    def _pending_postings(self, info: IndexInfo) -> list[bytes]:
        """The postings of the documents this transaction wrote to the index's table."""
        return [
            key
            for write in self.writes.values()
            if write.table == info.table and write.new is not None
            for key in posting_keys(write.new, info.search_field, info.filter_fields)
        ]

    async def _term_postings(
        self,
        info: IndexInfo,
        interval: Interval,
        own: list[bytes],
        page: list[bytes],
        page_size: int,
    ) -> list[bytes]:
        """The postings in `interval`: `own` (this transaction's) and the stored ones, from
        `page` (the first page, read already) on, but those of documents it wrote."""
        found = own
        while True:
            for key in page:
                if not self.writes or posting_document_id(key) not in self.writes:
                    self._count_scanned(len(key))
                    found.append(key)
            if len(page) < page_size:
                return found
            ranges = [(page[-1] + b"\x00", interval.end)]
            with self._storage_wait:
                [page] = await self.persistence.index_keys_ranges(
                    info.index_id, ranges, self.begin_ts, page_size
                )

    async def _postings_passing(
        self,
        info: IndexInfo,
        postings: list[list[bytes]],
        filters: tuple[tuple[str, Value | Undefined], ...],
        read: dict[str, Document],
    ) -> list[list[bytes]]:
        """The postings of the documents that pass every `eq` filter (read into `read`)."""
        ids = sorted(
            {posting_document_id(key) for term_postings in postings for key in term_postings}
        )
        docs = await self._search_documents(info, ids, read)
        passing = {doc["_id"] for doc in docs if passes_filters(doc, filters)}
        return [
            [key for key in term_postings if posting_document_id(key) in passing]
            for term_postings in postings
        ]

    async def _search_documents(
        self, info: IndexInfo, ids: list[str], read: dict[str, Document]
    ) -> list[Document]:
        """The documents `ids` at the snapshot, this transaction's writes included, in order;
        those not in `read` yet are read in one read and added to it (their bytes counted as
        read; a posting counted each already)."""
        stored_ids = []
        for doc_id in ids:
            write = self.writes.get(doc_id)
            if write is None:
                if doc_id not in read:
                    stored_ids.append(doc_id)
            elif write.new is not None:
                read[doc_id] = _copy(write.new)
        if stored_ids:
            with self._storage_wait:
                stored = await self.persistence.get_documents(
                    info.table_number, stored_ids, self.begin_ts
                )
            for version in stored:
                if version is not None:
                    self._count_scanned(len(version.value), documents=0)
                    read[version.id] = _decode(version)
        return [read[doc_id] for doc_id in ids if doc_id in read]

    async def _search_page(
        self, spec: QuerySpec, num_items: int, cursor_text: str | None, end_text: str | None
    ) -> dict[str, Any]:
        """A page of a search's results; cursors are positions in its relevance order."""
        ref, order = index_ref(spec.table, spec.index_name), "search"
        start = None if cursor_text is None else self.cursors.decode(cursor_text, ref, order)
        end = None if end_text is None else self.cursors.decode(end_text, ref, order)
        if start is not None and start.is_end:
            return self._page([], done=True, position=start, ref=ref, order=order)
        results = await self._search(spec, limit=MAX_SEARCH_RESULTS)
        first = 0 if start is None or start.key is None else int.from_bytes(start.key, "big")
        if end is not None and end.key is not None:
            stop = int.from_bytes(end.key, "big")
        elif end is not None:
            stop = len(results)
        else:
            stop = first + num_items
        page = results[first:stop]
        if stop >= len(results) and (end is None or end.is_end):
            return self._page(page, done=True, position=Cursor(None), ref=ref, order=order)
        position = Cursor(stop.to_bytes(4, "big"))
        return self._page(page, done=False, position=position, ref=ref, order=order)

    # -- the merged scan: storage at begin_ts overlaid with this transaction's writes ----------

    async def _scan(
        self, spec: QuerySpec, info: IndexInfo | None, interval: Interval, *, page_size: int
    ) -> AsyncIterator[tuple[bytes, Document]]:
        if info is None:
            return  # the table does not exist (yet): nothing to read, the range is recorded
        pending = self._pending_entries(spec.table, info, interval, spec.order)
        stored = self._stored_entries(info, interval, spec.order, page_size)
        async for key, doc, size in _merge(stored, pending, spec.order):
            self._count_scanned(size)
            yield key, doc

    def _pending_entries(
        self, table: str, info: IndexInfo, interval: Interval, order: Order
    ) -> list[_Entry]:
        entries = []
        for pending in self.writes.values():
            if pending.table == table and pending.new is not None:
                key = index_key(info, pending.new)
                if interval.contains(key):
                    # Read from memory, not storage: no bytes read (as in Convex).
                    entries.append((key, _copy(pending.new), 0))
        entries.sort(key=lambda entry: entry[0], reverse=order is Order.DESC)
        return entries

    async def _stored_entries(
        self, info: IndexInfo, interval: Interval, order: Order, page_size: int
    ) -> AsyncIterator[_Entry]:
        """The interval's entries at the snapshot but those of documents this transaction
        wrote (its pending writes stand for them), read page by page."""
        async for entries in self._stored_pages(info, interval, order, page_size):
            for entry in entries:
                yield entry.key, _decode(entry.document), len(entry.document.value)

    async def _stored_pages(
        self, info: IndexInfo, interval: Interval, order: Order, page_size: int
    ) -> AsyncIterator[list[IndexEntry]]:
        """`_stored_entries` a page at a time (not decoded yet: a caller may stop early): the
        first of `page_size` entries, then doubling."""
        start, end = interval.start, interval.end
        page_size = max(1, page_size)
        while start < end:
            with self._storage_wait:
                entries = await self.persistence.index_scan(
                    info.index_id, info.table_number, start, end, self.begin_ts, order, page_size
                )
            writes = self.writes
            yield (
                [entry for entry in entries if entry.document.id not in writes]
                if writes
                else entries
            )
            if len(entries) < page_size:
                return
            if order is Order.ASC:
                start = entries[-1].key + b"\x00"
            else:
                end = entries[-1].key
            page_size = min(page_size * 2, knobs.SCAN_PAGE_SIZE * 8)

    # -- commit support --------------------------------------------------------------------

    def build_writes(self) -> PreparedWrites:
        """Document rows, index rows and written keys for this transaction's writes."""
        prepared = PreparedWrites()
        for doc_id, pending in self.writes.items():
            value = None if pending.new is None else dumps(pending.new)
            prepared.documents.append(
                DocumentWrite(pending.table_number, doc_id, value, pending.original_ts)
            )
            for info in self.catalog.indexes(pending.table):
                _index_rows(prepared, info, doc_id, pending)
        for keys in prepared.written.values():
            keys.sort()
        return prepared

    def token(self) -> ReadToken:
        return ReadToken(self.reads, self.begin_ts)

    @property
    def has_writes(self) -> bool:
        return bool(self.writes)


def _require_user_table(table: object, system: bool, operation: str) -> None:
    """Only the runtime (`system=True`) writes a table whose name starts with "_", whether it
    exists yet or not: `_storage` rows are file storage's, `_deployments` deploys'."""
    if not system and isinstance(table, str) and table.startswith("_"):
        raise ValidationError(
            f"Cannot {operation} the system table {table!r}: system tables are written only by "
            "the runtime (files: ctx.storage) and read with ctx.db.system",
            short_msg="SystemTableWrite",
        )


def _index_rows(prepared: PreparedWrites, info: IndexInfo, doc_id: str, p: PendingWrite) -> None:
    if info.is_search:
        _posting_rows(prepared, info, doc_id, p)
        return
    old_key = None if p.original is None else index_key(info, p.original)
    new_key = None if p.new is None else index_key(info, p.new)
    written = prepared.written.setdefault(info.ref, [])
    if old_key is not None and old_key != new_key:
        prepared.indexes.append(IndexWrite(info.index_id, old_key, True, doc_id))
        written.append(old_key)
    if new_key is not None:
        prepared.indexes.append(IndexWrite(info.index_id, new_key, False, doc_id))
        written.append(new_key)


def _posting_rows(prepared: PreparedWrites, info: IndexInfo, doc_id: str, p: PendingWrite) -> None:
    """A search index's rows for one written document: postings it no longer has are
    deleted, and every posting of its new version is written again (an index row points at
    the document version written at its own ts)."""
    fields = (info.search_field, info.filter_fields)
    old_keys = set() if p.original is None else set(posting_keys(p.original, *fields))
    new_keys = [] if p.new is None else posting_keys(p.new, *fields)
    written = prepared.written.setdefault(info.ref, [])
    for key in sorted(old_keys.difference(new_keys)):
        prepared.indexes.append(IndexWrite(info.index_id, key, True, doc_id))
        written.append(key)
    for key in new_keys:
        prepared.indexes.append(IndexWrite(info.index_id, key, False, doc_id))
        written.append(key)


def _passes(spec: QuerySpec, doc: Document) -> bool:
    return all(expr.evaluate(doc) is True for expr in spec.filters)


def _covered(interval: Interval, key: bytes, order: Order) -> Interval:
    """The part of `interval` a scan in `order` has covered once it has read `key`."""
    if order is Order.ASC:
        return Interval(interval.start, key + b"\x00")
    return Interval(key, interval.end)


def _narrow(interval: Interval, start: Cursor | None, end: Cursor | None, order: Order) -> Interval:
    """Restrict the range to what lies after the `start` cursor and up to the `end` cursor."""
    lo, hi = interval.start, interval.end
    if order is Order.ASC:
        if start is not None and start.key is not None:
            lo = max(lo, start.key + b"\x00")
        if end is not None and end.key is not None:
            hi = min(hi, end.key + b"\x00")
    else:
        if start is not None and start.key is not None:
            hi = min(hi, start.key)
        if end is not None and end.key is not None:
            lo = max(lo, end.key)
    return Interval(lo, max(lo, hi))


@dataclass(frozen=True, slots=True)
class _ReadBudget:
    """What one page may read before it stops early (None: only the transaction's limits)."""

    rows: int | None = None
    size: int | None = None


#: Convex recommends splitting a page past 3/4 of a read budget, or of the largest array.
_SOFT_SHARE = 0.75


@dataclass(slots=True)
class _PageRead:
    """What reading one page found: the page, and how much it scanned to find it."""

    budget: _ReadBudget
    last_key: bytes
    page: list[Document] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    bytes_read: int = 0
    exhausted: bool = False
    split_required: bool = False

    def scanned(self, key: bytes, bytes_so_far: int) -> None:
        self.last_key, self.bytes_read = key, bytes_so_far
        self.keys.append(key)

    def over_budget(self) -> bool:
        rows, most_bytes = self.budget.rows, self.budget.size
        return (rows is not None and len(self.keys) >= rows) or (
            most_bytes is not None and self.bytes_read >= most_bytes
        )

    def status(self, page_len: int) -> str | None:
        if self.split_required:
            return "SplitRequired"
        rows = min(self.budget.rows or knobs.MAX_DOCUMENTS_SCANNED, knobs.MAX_DOCUMENTS_SCANNED)
        most = min(self.budget.size or knobs.MAX_BYTES_READ, knobs.MAX_BYTES_READ)
        if (
            len(self.keys) > rows * _SOFT_SHARE
            or self.bytes_read > most * _SOFT_SHARE
            or page_len > knobs.MAX_ARRAY_ELEMENTS * _SOFT_SHARE
        ):
            return "SplitRecommended"
        return None

    def split_key(self) -> bytes | None:
        """The key of the middle row scanned (None for a page of two rows or fewer)."""
        return self.keys[len(self.keys) // 2] if len(self.keys) > 2 else None


def _pagination_opts(opts: object) -> tuple[int, str | None, str | None, _ReadBudget]:
    if not isinstance(opts, dict):
        raise QueryError(f"paginate needs paginationOpts (a dict), got {opts!r}")
    num = opts.get("numItems")
    if isinstance(num, bool) or not isinstance(num, (int, float)) or num != num or num < 1:
        raise QueryError(f"paginationOpts.numItems must be a positive number, got {num!r}")
    if num > knobs.MAX_PAGE_ITEMS:
        raise QueryError(f"paginationOpts.numItems may be at most {knobs.MAX_PAGE_ITEMS}")
    cursor, end = opts.get("cursor"), opts.get("endCursor")
    for name, value in (("cursor", cursor), ("endCursor", end)):
        if value is not None and not isinstance(value, str):
            raise QueryError(f"InvalidCursor: paginationOpts.{name} must be a string or null")
    budget = _ReadBudget(
        rows=_positive(opts, "maximumRowsRead"), size=_positive(opts, "maximumBytesRead")
    )
    return int(num), cursor, end, budget


def _positive(opts: dict[str, Any], name: str) -> int | None:
    value = opts.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1:
        raise QueryError(
            f"paginationOpts.{name} must be a number of at least 1 (or absent), got {value!r}",
            short_msg="InvalidPaginationLimit",
        )
    return int(value)


async def _merge(
    stored: AsyncIterator[_Entry], pending: list[_Entry], order: Order
) -> AsyncIterator[_Entry]:
    """Merge two key-ordered streams (keys are distinct: they end in the document id)."""
    before: Callable[[bytes, bytes], bool] = (
        (lambda a, b: a < b) if order is Order.ASC else (lambda a, b: a > b)
    )
    i = 0
    async for entry in stored:
        while i < len(pending) and before(pending[i][0], entry[0]):
            yield pending[i]
            i += 1
        yield entry
    for entry in pending[i:]:
        yield entry
