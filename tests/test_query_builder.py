from __future__ import annotations

import pytest

from reactive.errors import QueryError
from reactive.index_keys import MAX_KEY, MIN_KEY, encode_key, prefix_successor
from reactive.query_builder import FilterBuilder, IndexRangeBuilder, resolve_range
from reactive.values import UNDEFINED

FIELDS = ("channel", "n", "_creationTime", "_id")


def bounds(fn):
    return fn(IndexRangeBuilder()).bounds


def test_empty_range_is_whole_index():
    interval = resolve_range((), FIELDS, "t.i")
    assert (interval.start, interval.end) == (MIN_KEY, MAX_KEY)


def test_eq_prefix_selects_prefix_interval():
    interval = resolve_range(bounds(lambda q: q.eq("channel", "a")), FIELDS, "t.i")
    prefix = encode_key(["a"])
    assert (interval.start, interval.end) == (prefix, prefix_successor(prefix))
    assert interval.contains(encode_key(["a", 1.0, 2.0, "x"]))
    assert not interval.contains(encode_key(["b", 1.0, 2.0, "x"]))


def test_lower_and_upper_bounds_on_next_field():
    interval = resolve_range(
        bounds(lambda q: q.eq("channel", "a").gt("n", 1.0).lte("n", 3.0)), FIELDS, "t.i"
    )
    inside = [encode_key(["a", n, 0.0, "id"]) for n in (1.5, 2.0, 3.0)]
    outside = [encode_key(["a", n, 0.0, "id"]) for n in (0.0, 1.0, 3.5)]
    assert all(interval.contains(k) for k in inside)
    assert not any(interval.contains(k) for k in outside)


def test_gte_and_lt_are_inclusive_and_exclusive():
    interval = resolve_range(
        bounds(lambda q: q.gte("channel", "b").lt("channel", "d")), FIELDS, "i"
    )
    assert interval.contains(encode_key(["b", 0.0]))
    assert interval.contains(encode_key(["c", 0.0]))
    assert not interval.contains(encode_key(["d", 0.0]))
    assert not interval.contains(encode_key(["a", 0.0]))


def test_range_out_of_index_order_is_an_error():
    with pytest.raises(QueryError, match="field order"):
        resolve_range(bounds(lambda q: q.eq("n", 1.0)), FIELDS, "t.i")


def test_eq_after_range_bound_is_an_error():
    with pytest.raises(QueryError, match="cannot follow"):
        resolve_range(bounds(lambda q: q.gt("channel", "a").eq("n", 1.0)), FIELDS, "t.i")


def test_two_lower_bounds_are_an_error():
    with pytest.raises(QueryError, match="two lower bounds"):
        resolve_range(bounds(lambda q: q.gt("channel", "a").gte("channel", "b")), FIELDS, "t.i")


def test_more_fields_than_index_is_an_error():
    with pytest.raises(QueryError, match="more fields"):
        resolve_range(bounds(lambda q: q.eq("_id", "x").eq("y", 1.0)), ("_id",), "t.by_id")


def test_range_values_are_checked():
    with pytest.raises(ValueError):
        IndexRangeBuilder().eq("channel", {1, 2})


def test_eq_undefined_selects_documents_missing_the_field():
    interval = resolve_range(bounds(lambda q: q.eq("channel", UNDEFINED)), FIELDS, "t.i")
    assert interval.contains(encode_key([UNDEFINED, 1.0, 2.0, "x"]))
    assert not interval.contains(encode_key([None, 1.0, 2.0, "x"]))  # null is a value
    assert not interval.contains(encode_key(["a", 1.0, 2.0, "x"]))


def test_filter_expressions_evaluate_convex_semantics():
    q = FilterBuilder()
    doc = {"a": 1.0, "b": "x", "nested": {"c": 5}}
    assert q.eq(q.field("a"), 1.0).evaluate(doc) is True
    assert q.eq(q.field("a"), 1).evaluate(doc) is False  # int64 1 is not float64 1.0
    assert q.gt(q.field("nested.c"), 4).evaluate(doc) is True
    assert q.eq(q.field("missing"), UNDEFINED).evaluate(doc) is True
    assert q.lt(q.field("missing"), None).evaluate(doc) is True  # undefined < null
    assert q.and_(q.eq(q.field("b"), "x"), q.not_(q.eq(q.field("a"), 2.0))).evaluate(doc)
    assert q.or_(q.eq(q.field("b"), "y"), q.gte(q.add(q.field("a"), 1.0), 2.0)).evaluate(doc)


def test_filter_arithmetic_rejects_mixed_types():
    q = FilterBuilder()
    with pytest.raises(QueryError):
        q.add(q.field("a"), 1).evaluate({"a": 1.0})
