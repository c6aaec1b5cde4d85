"""The catalog: which tables and indexes exist, their numbers, and the schema in force.

Tables get a number when first created (schema apply or first insert); every table always has
the system indexes `by_id` and `by_creation_time`. Only READY indexes serve queries.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass

from reactive.errors import PersistenceError, QueryError, SchemaError, ValidationError
from reactive.persistence.base import IndexMeta, IndexState, Persistence, TableMeta
from reactive.schema import Schema
from reactive.search import SEARCH_MARKER

__all__ = ["SYSTEM_INDEXES", "Catalog", "IndexInfo", "check_table_name"]

#: System indexes and the fields their keys are made of.
SYSTEM_INDEXES: dict[str, tuple[str, ...]] = {
    "by_id": ("_id",),
    "by_creation_time": ("_creationTime", "_id"),
}

_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_SYSTEM_TABLES = frozenset({"_storage", "_scheduled_functions", "_cron_jobs", "_deployments"})


def check_table_name(name: object, *, allow_system: bool = False) -> str:
    if isinstance(name, str) and _TABLE_NAME.match(name):
        return name
    if allow_system and name in _SYSTEM_TABLES:
        return str(name)
    raise ValidationError(
        f"Invalid table name {name!r}: table names start with a letter and contain only "
        "letters, digits and underscores (at most 64 characters)",
        short_msg="InvalidTableName",
    )


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """An index as the transaction uses it."""

    index_id: int
    table: str
    table_number: int
    name: str
    fields: tuple[str, ...]  # user-declared fields (system indexes: their key fields)
    key_fields: tuple[str, ...]  # the fields that make the key, ending in _creationTime, _id
    state: IndexState

    @property
    def ref(self) -> str:
        return f"{self.table}.{self.name}"

    @property
    def is_search(self) -> bool:
        """A full-text search index (its postings are not `key_fields` keys: see search.py)."""
        return self.fields[:1] == (SEARCH_MARKER,)

    @property
    def search_field(self) -> str:
        return self.fields[1]

    @property
    def filter_fields(self) -> tuple[str, ...]:
        return self.fields[2:]


def key_fields_of(name: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    if name in SYSTEM_INDEXES:
        return SYSTEM_INDEXES[name]
    return (*fields, "_creationTime", "_id")


def _search_index_in_with_index(table: str, name: str) -> QueryError:
    return QueryError(
        f"Index {table}.{name} is a search index: query it with "
        f"with_search_index({name!r}, lambda q: q.search(field, text)), not with_index",
        short_msg="SearchIndexInWithIndex",
    )


class Catalog:
    """Tables and indexes, loaded from and saved to persistence."""

    def __init__(self, persistence: Persistence) -> None:
        self._persistence = persistence
        self._numbers: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._indexes: dict[str, dict[str, IndexInfo]] = {}
        self._lock = asyncio.Lock()
        #: Counts changes made by this process, so that `load` can tell it raced with one.
        self._changes = 0
        self.schema: Schema | None = None

    async def load(self) -> None:
        """Read every table and index from the database (another process may have added some
        since the last look: the database is the truth)."""
        # No lock: the committer calls this while holding the database's commit lock, which
        # `ensure_table` may be waiting for. Instead, read again if this process changed the
        # catalog meanwhile (the read may predate that change), then swap the maps in one step.
        while True:
            changes = self._changes
            tables = await self._persistence.load_tables()
            indexes = await self._persistence.load_indexes()
            if changes == self._changes:
                break
        self._numbers, self._names, self._indexes = {}, {}, {}
        for table in tables:
            self._remember_table(table)
        for meta in indexes:
            self._remember_index(meta)

    @property
    def changes(self) -> int:
        """Grows with every change this process makes to the catalog."""
        return self._changes

    def knows(self, index_refs: Iterable[str]) -> bool:
        """Whether every "table.index" in `index_refs` is a known index."""
        for ref in index_refs:
            table, _, name = ref.partition(".")
            if name not in self._indexes.get(table, {}):
                return False
        return True

    def _remember_table(self, table: TableMeta) -> None:
        self._changes += 1
        self._numbers[table.name] = table.number
        self._names[table.number] = table.name
        self._indexes.setdefault(table.name, {})

    def _remember_index(self, meta: IndexMeta) -> IndexInfo:
        table = self._names[meta.table_number]
        info = IndexInfo(
            index_id=meta.index_id,
            table=table,
            table_number=meta.table_number,
            name=meta.name,
            fields=tuple(meta.fields),
            key_fields=key_fields_of(meta.name, tuple(meta.fields)),
            state=meta.state,
        )
        self._indexes.setdefault(table, {})[meta.name] = info
        self._changes += 1
        return info

    # -- lookups ---------------------------------------------------------------------------

    def table_number(self, name: str) -> int | None:
        return self._numbers.get(name)

    def table_name(self, number: int) -> str | None:
        return self._names.get(number)

    def tables(self) -> list[str]:
        return sorted(self._numbers)

    def indexes(self, table: str) -> list[IndexInfo]:
        return list(self._indexes.get(table, {}).values())

    def ready_indexes(self, table: str) -> list[IndexInfo]:
        return [i for i in self.indexes(table) if i.state is IndexState.READY]

    def index(self, table: str, name: str) -> IndexInfo | None:
        return self._indexes.get(table, {}).get(name)

    def query_index(self, table: str, name: str) -> IndexInfo | None:
        """The index a query on an existing table reads; QueryError if it is unknown or not
        ready. None when the table does not exist yet (the query sees nothing)."""
        if table not in self._numbers:
            self._check_declared_index(table, name)
            return None
        info = self.index(table, name)
        if info is None:
            raise QueryError(f"Index {table}.{name} not found.", short_msg="IndexNotFound")
        if info.state is not IndexState.READY:
            raise QueryError(
                f"Index {table}.{name} is still backfilling and cannot be queried yet.",
                short_msg="IndexNotReady",
            )
        return info

    def _check_declared_index(self, table: str, name: str) -> None:
        if name in SYSTEM_INDEXES:
            return
        declared = self.schema.table(table) if self.schema is not None else None
        if declared is None or all(spec.name != name for spec in declared.all_indexes()):
            if declared is not None and declared.get_search_index(name) is not None:
                raise _search_index_in_with_index(table, name)
            raise QueryError(f"Index {table}.{name} not found.", short_msg="IndexNotFound")

    def search_index(self, table: str, name: str) -> tuple[IndexInfo | None, str, tuple[str, ...]]:
        """The search index a search reads: (info or None when the table does not exist yet,
        search field, filter fields). QueryError if it is unknown, not ready or not a search
        index."""
        info = self.index(table, name)
        if info is None and table not in self._numbers:
            declared = self.schema.table(table) if self.schema is not None else None
            spec = declared.get_search_index(name) if declared is not None else None
            if spec is not None:
                return None, spec.search_field, spec.filter_fields
            if declared is None or declared.get_index(name) is None:
                raise QueryError(
                    f"Search index {table}.{name} not found.", short_msg="IndexNotFound"
                )
        info = self.query_index(table, name)
        if info is None or not info.is_search:
            raise QueryError(
                f"Index {table}.{name} is not a search index: with_search_index needs an index "
                "declared with .search_index(...); read database indexes with with_index",
                short_msg="NotASearchIndex",
            )
        return info, info.search_field, info.filter_fields

    def index_fields_for_query(self, table: str, name: str) -> tuple[str, ...]:
        """Key fields of an index, also for a table that does not exist yet."""
        info = self.index(table, name)
        if info is not None:
            if info.is_search:
                raise _search_index_in_with_index(table, name)
            return info.key_fields
        if name in SYSTEM_INDEXES:
            return SYSTEM_INDEXES[name]
        declared = self.schema.table(table) if self.schema is not None else None
        for spec in declared.all_indexes() if declared is not None else []:
            if spec.name == name:
                return key_fields_of(name, tuple(spec.fields))
        raise QueryError(f"Index {table}.{name} not found.", short_msg="IndexNotFound")

    # -- changes ---------------------------------------------------------------------------

    async def ensure_table(
        self, name: str, *, allow_system: bool = False, number: int | None = None
    ) -> int:
        """The number of `name`, creating the table (and its system indexes) if needed.

        `number` asks for a specific table number (imports keep their ids valid that way);
        asking for one another table has, or a different one than the table has, is an error.
        """
        existing = self._numbers.get(name)
        if existing is not None and number in (None, existing):
            return existing
        check_table_name(name, allow_system=allow_system)
        async with self._lock:
            if name in self._numbers:
                if number not in (None, self._numbers[name]):
                    raise SchemaError(
                        f"Table {name!r} has number {self._numbers[name]} here, not {number}",
                        short_msg="TableNumberMismatch",
                    )
                return self._numbers[name]
            if number is not None and number in self._names:
                raise SchemaError(
                    f"Table number {number} (wanted for {name!r}) belongs to "
                    f"{self._names[number]!r} here",
                    short_msg="TableNumberMismatch",
                )
            table = await self._create_table(name, number)
            self._remember_table(table)
            for index_name, fields in SYSTEM_INDEXES.items():
                await self._save_index(name, table.number, index_name, fields, IndexState.READY)
            return table.number

    async def _create_table(self, name: str, number: int | None) -> TableMeta:
        """Create the table in the database, or find that another process already did."""
        try:
            table = await self._persistence.create_table(name, number)
        except PersistenceError as exc:
            raise SchemaError(
                f"Table {name!r} cannot have number {number}: {exc}",
                short_msg="TableNumberMismatch",
            ) from exc
        if number not in (None, table.number):
            raise SchemaError(
                f"Table {name!r} has number {table.number} here, not {number}",
                short_msg="TableNumberMismatch",
            )
        return table

    async def add_index(
        self, table: str, name: str, fields: tuple[str, ...], state: IndexState
    ) -> IndexInfo:
        number = await self.ensure_table(table)
        async with self._lock:
            return await self._save_index(table, number, name, fields, state)

    async def _save_index(
        self, table: str, number: int, name: str, fields: tuple[str, ...], state: IndexState
    ) -> IndexInfo:
        existing = self._indexes.get(table, {}).get(name)
        if existing is None:
            # Allocated by the database, so two processes never hand out one id twice.
            created = await self._persistence.create_index(number, name, fields, state)
            return self._remember_index(created)
        meta = IndexMeta(existing.index_id, number, name, fields, state)
        await self._persistence.save_index(meta)
        return self._remember_index(meta)

    async def set_index_state(self, info: IndexInfo, state: IndexState) -> IndexInfo:
        return await self.add_index(info.table, info.name, info.fields, state)

    async def drop_index(self, info: IndexInfo) -> None:
        await self._persistence.drop_index(info.index_id)
        self._indexes.get(info.table, {}).pop(info.name, None)
        self._changes += 1
