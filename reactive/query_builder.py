"""Immutable query builders that turn `ctx.db.query(...)` chains into a plain QuerySpec.

No I/O here: terminal methods (`collect`, `take`, `paginate`, ...) hand the spec to a
`QueryExecutor` (the transaction). Index ranges and filter expressions are validated here.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from reactive.errors import QueryError
from reactive.index_keys import MAX_KEY, MIN_KEY, Interval, encode_key, prefix_successor
from reactive.search import SearchFilterBuilder, SearchSpec
from reactive.types import Document, Order, Value
from reactive.values import UNDEFINED, Undefined, check_value, compare_values

__all__ = [
    "Expr",
    "FilterBuilder",
    "IndexRangeBuilder",
    "QueryBuilder",
    "QueryExecutor",
    "QuerySpec",
    "RangeBound",
    "resolve_range",
]

_LOWER_OPS = ("gt", "gte")
_UPPER_OPS = ("lt", "lte")


# -- index ranges ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RangeBound:
    """One `q.eq/gt/gte/lt/lte(field, value)` inside `with_index`."""

    field: str
    op: str
    value: Value | Undefined  # UNDEFINED: the field is missing


class IndexRangeBuilder:
    """The `q` of `with_index(name, lambda q: q.eq("a", 1).gt("b", 2))`."""

    __slots__ = ("bounds",)

    def __init__(self, bounds: tuple[RangeBound, ...] = ()) -> None:
        self.bounds = bounds

    def _add(self, op: str, field_path: str, value: Value | Undefined) -> IndexRangeBuilder:
        if not isinstance(field_path, str):
            raise QueryError(f"with_index: field name must be a string, got {field_path!r}")
        if value is not UNDEFINED:  # UNDEFINED selects documents missing the field
            check_value(value, f"with_index {op}({field_path!r})")
        return IndexRangeBuilder((*self.bounds, RangeBound(field_path, op, value)))

    def eq(self, field_path: str, value: Value | Undefined) -> IndexRangeBuilder:
        return self._add("eq", field_path, value)

    def gt(self, field_path: str, value: Value | Undefined) -> IndexRangeBuilder:
        return self._add("gt", field_path, value)

    def gte(self, field_path: str, value: Value | Undefined) -> IndexRangeBuilder:
        return self._add("gte", field_path, value)

    def lt(self, field_path: str, value: Value | Undefined) -> IndexRangeBuilder:
        return self._add("lt", field_path, value)

    def lte(self, field_path: str, value: Value | Undefined) -> IndexRangeBuilder:
        return self._add("lte", field_path, value)


def resolve_range(
    bounds: Sequence[RangeBound], index_fields: Sequence[str], index_name: str
) -> Interval:
    """Turn range bounds into the key interval they select on an index with `index_fields`.

    Convex's rule: equalities on a prefix of the index fields, in order, then at most one lower
    and one upper bound, both on the next field. Anything else is a QueryError.
    """
    eq_values: list[Value | Undefined] = []
    position = 0
    rest = list(bounds)
    while rest and rest[0].op == "eq":
        bound = rest.pop(0)
        _expect_field(bound, index_fields, position, index_name)
        eq_values.append(bound.value)
        position += 1
    lower, upper = _split_bounds(rest, index_fields, position, index_name)
    prefix = encode_key(eq_values) if eq_values else MIN_KEY
    start = _lower_key(prefix, lower)
    end = _upper_key(prefix, upper)
    return Interval(start, end)


def _expect_field(
    bound: RangeBound, index_fields: Sequence[str], position: int, index_name: str
) -> None:
    if position >= len(index_fields):
        raise QueryError(
            f"Index range on {index_name!r} has more fields than the index "
            f"{list(index_fields)}: {bound.op}({bound.field!r}, ...)"
        )
    if bound.field != index_fields[position]:
        raise QueryError(
            f"Index range on {index_name!r} must follow the index's field order "
            f"{list(index_fields)}: expected {index_fields[position]!r} at position "
            f"{position}, got {bound.op}({bound.field!r}, ...)"
        )


def _split_bounds(
    rest: list[RangeBound], index_fields: Sequence[str], position: int, index_name: str
) -> tuple[RangeBound | None, RangeBound | None]:
    lower: RangeBound | None = None
    upper: RangeBound | None = None
    for bound in rest:
        if bound.op == "eq":
            raise QueryError(
                f"Index range on {index_name!r}: eq({bound.field!r}) cannot follow a range bound"
            )
        _expect_field(bound, index_fields, position, index_name)
        if bound.op in _LOWER_OPS:
            if lower is not None:
                raise QueryError(f"Index range on {index_name!r} has two lower bounds")
            lower = bound
        else:
            if upper is not None:
                raise QueryError(f"Index range on {index_name!r} has two upper bounds")
            upper = bound
    return lower, upper


def _lower_key(prefix: bytes, lower: RangeBound | None) -> bytes:
    if lower is None:
        return prefix
    key = prefix + encode_key([lower.value])
    return key if lower.op == "gte" else prefix_successor(key)


def _upper_key(prefix: bytes, upper: RangeBound | None) -> bytes:
    if upper is None:
        return prefix_successor(prefix) if prefix else MAX_KEY
    key = prefix + encode_key([upper.value])
    return key if upper.op == "lt" else prefix_successor(key)


# -- filter expressions ---------------------------------------------------------------------


class Expr:
    """A filter expression node; `evaluate(doc)` gives a Convex value."""

    __slots__ = ()

    def evaluate(self, doc: dict[str, Value]) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _Literal(Expr):
    value: Value

    def evaluate(self, doc: dict[str, Value]) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class _Field(Expr):
    path: str

    def evaluate(self, doc: dict[str, Value]) -> Any:
        current: Any = doc
        for part in self.path.split("."):
            if not isinstance(current, dict) or part not in current:
                return UNDEFINED
            current = current[part]
        return current


@dataclass(frozen=True, slots=True)
class _Call(Expr):
    op: str
    args: tuple[Expr, ...]

    def evaluate(self, doc: dict[str, Value]) -> Any:
        return _OPERATORS[self.op](*(arg.evaluate(doc) for arg in self.args))


def _compare(test: Callable[[int], bool]) -> Callable[[Any, Any], bool]:
    return lambda a, b: test(compare_values(a, b))


def _arith(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if isinstance(a, bool) or isinstance(b, bool) or type(a) is not type(b):
            raise QueryError(f"Filter arithmetic needs two numbers of one type, got {a!r}, {b!r}")
        if not isinstance(a, (int, float)):
            raise QueryError(f"Filter arithmetic needs numbers, got {a!r}")
        return op(a, b)

    return apply


def _divide(a: Any, b: Any) -> Any:
    if isinstance(a, int):
        if b == 0:
            raise QueryError("Filter: integer division by zero")
        return int(a / b)
    return a / b if b != 0 else math.copysign(math.inf, a) if a else math.nan


_OPERATORS: dict[str, Callable[..., Any]] = {
    "eq": _compare(lambda c: c == 0),
    "neq": _compare(lambda c: c != 0),
    "lt": _compare(lambda c: c < 0),
    "lte": _compare(lambda c: c <= 0),
    "gt": _compare(lambda c: c > 0),
    "gte": _compare(lambda c: c >= 0),
    "and": lambda *xs: all(x is True for x in xs),
    "or": lambda *xs: any(x is True for x in xs),
    "not": lambda x: x is not True,
    "add": _arith(lambda a, b: a + b),
    "sub": _arith(lambda a, b: a - b),
    "mul": _arith(lambda a, b: a * b),
    "div": _arith(_divide),
    "mod": _arith(lambda a, b: math.fmod(a, b) if isinstance(a, float) else a % b),
    "neg": lambda a: -a,
}


def _expr(x: Any) -> Expr:
    if isinstance(x, Expr):
        return x
    if x is not UNDEFINED:  # comparing with UNDEFINED asks "is this field absent?"
        check_value(x, "filter literal")
    return _Literal(x)


class FilterBuilder:
    """The `q` of `.filter(lambda q: q.and_(q.eq(q.field("a"), 1), q.gt(q.field("b"), 2)))`."""

    __slots__ = ()

    def field(self, path: str) -> Expr:
        if not isinstance(path, str) or not path:
            raise QueryError(f"filter: q.field needs a field path string, got {path!r}")
        return _Field(path)

    def _call(self, op: str, *args: Any) -> Expr:
        return _Call(op, tuple(_expr(a) for a in args))

    def eq(self, a: Any, b: Any) -> Expr:
        return self._call("eq", a, b)

    def neq(self, a: Any, b: Any) -> Expr:
        return self._call("neq", a, b)

    def lt(self, a: Any, b: Any) -> Expr:
        return self._call("lt", a, b)

    def lte(self, a: Any, b: Any) -> Expr:
        return self._call("lte", a, b)

    def gt(self, a: Any, b: Any) -> Expr:
        return self._call("gt", a, b)

    def gte(self, a: Any, b: Any) -> Expr:
        return self._call("gte", a, b)

    def and_(self, *exprs: Any) -> Expr:
        return self._call("and", *exprs)

    def or_(self, *exprs: Any) -> Expr:
        return self._call("or", *exprs)

    def not_(self, expr: Any) -> Expr:
        return self._call("not", expr)

    def add(self, a: Any, b: Any) -> Expr:
        return self._call("add", a, b)

    def sub(self, a: Any, b: Any) -> Expr:
        return self._call("sub", a, b)

    def mul(self, a: Any, b: Any) -> Expr:
        return self._call("mul", a, b)

    def div(self, a: Any, b: Any) -> Expr:
        return self._call("div", a, b)

    def mod(self, a: Any, b: Any) -> Expr:
        return self._call("mod", a, b)

    def neg(self, a: Any) -> Expr:
        return self._call("neg", a)


_FILTER_BUILDER = FilterBuilder()


# -- the query spec and its builder ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """Everything a query says: which index range, which order, which filters.

    `index` is None for an explicit `full_table_scan()` or an implicit scan (no with_index),
    which read the table through `by_creation_time`; `explicit_scan` tells them apart.
    """

    table: str
    index: str | None = None
    bounds: tuple[RangeBound, ...] = ()
    order: Order = Order.ASC
    filters: tuple[Expr, ...] = ()
    explicit_scan: bool = False
    #: A full-text search (`with_search_index`): `index` names the search index.
    search: SearchSpec | None = None

    @property
    def index_name(self) -> str:
        return self.index or "by_creation_time"


class QueryExecutor(Protocol):
    """What a terminal query method needs: implemented by the transaction."""

    def iterate(self, spec: QuerySpec) -> AsyncIterator[dict[str, Value]]: ...

    async def take(self, spec: QuerySpec, n: int) -> list[dict[str, Value]]: ...

    async def paginate(self, spec: QuerySpec, opts: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class QueryBuilder:
    """`ctx.db.query(table)`: chain `with_index`/`full_table_scan`, `order`, `filter`, then a
    terminal method. Each step returns a new builder; nothing runs until a terminal awaits."""

    executor: QueryExecutor
    spec: QuerySpec
    _stage: int = field(default=0)  # 0 = fresh, 1 = index chosen, 2 = ordered

    def with_index(
        self,
        index_name: str,
        range_fn: Callable[[IndexRangeBuilder], IndexRangeBuilder] | None = None,
    ) -> QueryBuilder:
        self._require_stage(0, "with_index")
        if not isinstance(index_name, str):
            raise QueryError(f"with_index needs an index name, got {index_name!r}")
        bounds: tuple[RangeBound, ...] = ()
        if range_fn is not None:
            result = range_fn(IndexRangeBuilder())
            if not isinstance(result, IndexRangeBuilder):
                raise QueryError(
                    f"with_index({index_name!r}, ...): the range function must return q "
                    f"(e.g. lambda q: q.eq('field', value)), got {result!r}"
                )
            bounds = result.bounds
        return replace(self, spec=replace(self.spec, index=index_name, bounds=bounds), _stage=1)

    def with_search_index(
        self, index_name: str, search_fn: Callable[[SearchFilterBuilder], SearchFilterBuilder]
    ) -> QueryBuilder:
        """A full-text search: documents in relevance order (see search.py)."""
        self._require_stage(0, "with_search_index")
        if not isinstance(index_name, str):
            raise QueryError(f"with_search_index needs an index name, got {index_name!r}")
        result = search_fn(SearchFilterBuilder()) if callable(search_fn) else None
        if not isinstance(result, SearchFilterBuilder) or result.spec is None:
            raise QueryError(
                f"with_search_index({index_name!r}, ...): the function must return "
                "q.search(field, text), optionally followed by .eq(field, value) filters, "
                f"got {result!r}"
            )
        spec = replace(self.spec, index=index_name, search=result.spec)
        return replace(self, spec=spec, _stage=2)

    def full_table_scan(self) -> QueryBuilder:
        self._require_stage(0, "full_table_scan")
        return replace(self, spec=replace(self.spec, explicit_scan=True), _stage=1)

    def order(self, order: str | Order) -> QueryBuilder:
        if self.spec.search is not None:
            raise QueryError(
                ".order() cannot follow with_search_index: search results come in relevance order",
                short_msg="OrderOnSearch",
            )
        self._require_stage(1, "order")
        try:
            parsed = Order(order)
        except ValueError:
            raise QueryError(f'order must be "asc" or "desc", got {order!r}') from None
        return replace(self, spec=replace(self.spec, order=parsed), _stage=2)

    def filter(self, predicate: Callable[[FilterBuilder], Expr]) -> QueryBuilder:
        expr = predicate(_FILTER_BUILDER)
        if not isinstance(expr, Expr):
            raise QueryError(
                "filter expects a function returning a q expression "
                f"(e.g. lambda q: q.eq(q.field('x'), 1)), got {expr!r}"
            )
        return replace(self, spec=replace(self.spec, filters=(*self.spec.filters, expr)))

    def _require_stage(self, most: int, method: str) -> None:
        if self._stage > most:
            raise QueryError(f".{method}() cannot be called at this point of the query chain")

    # -- terminals --------------------------------------------------------------------------

    async def collect(self) -> list[Document]:
        return [doc async for doc in self]

    async def take(self, n: int) -> list[Document]:
        if isinstance(n, bool) or not isinstance(n, (int, float)) or n < 0 or n != int(n):
            raise QueryError(f"take(n) needs a non-negative integer, got {n!r}")
        return await self.executor.take(self.spec, int(n))

    async def first(self) -> Document | None:
        docs = await self.executor.take(self.spec, 1)
        return docs[0] if docs else None

    async def unique(self) -> Document | None:
        docs = await self.executor.take(self.spec, 2)
        if len(docs) > 1:
            raise QueryError(
                f"unique() query on {self.spec.table!r} returned more than one result: "
                f"{docs[0]['_id']!r}, {docs[1]['_id']!r}, ...",
                short_msg="UniqueQueryHadMultipleResults",
            )
        return docs[0] if docs else None

    async def paginate(self, opts: dict[str, Any]) -> dict[str, Any]:
        return await self.executor.paginate(self.spec, opts)

    def __aiter__(self) -> AsyncIterator[Document]:
        return self.executor.iterate(self.spec)

    def __await__(self) -> Any:
        raise QueryError(
            "a query must end with collect(), take(n), first(), unique() or paginate()"
        )
