import itertools
from functools import cmp_to_key

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactive.errors import ValidationError
from reactive.index_keys import (
    MAX_KEY,
    MIN_KEY,
    Interval,
    IntervalSet,
    decode_key,
    encode_key,
    encode_value_key,
    prefix_successor,
)
from reactive.values import INT64_MIN, UNDEFINED, compare_values, values_equal
from tests.value_strategies import strategies

_VALUES = strategies(small=True)
FIELD_NAMES, FLOATS, INTS = _VALUES.FIELD_NAMES, _VALUES.FLOATS, _VALUES.INTS
TEXT, BYTES, SCALARS, VALUES = _VALUES.TEXT, _VALUES.BYTES, _VALUES.SCALARS, _VALUES.VALUES
KEY_VALUES = st.just(UNDEFINED) | VALUES  # UNDEFINED: a missing field, only at the top level
TUPLES = st.lists(KEY_VALUES, min_size=1, max_size=3)


def sign(number: int) -> int:
    return (number > 0) - (number < 0)


def byte_cmp(a: bytes, b: bytes) -> int:
    return (a > b) - (a < b)


def tuple_cmp(a: list[object], b: list[object]) -> int:
    for x, y in zip(a, b, strict=False):
        result = compare_values(x, y)
        if result:
            return result
    return (len(a) > len(b)) - (len(a) < len(b))


# --- byte layout -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (UNDEFINED, b"\x01"),
        (None, b"\x02"),
        (0, b"\x03\x80" + bytes(7)),
        (-1, b"\x03\x7f" + b"\xff" * 7),
        (INT64_MIN, b"\x03" + bytes(8)),
        (0.0, b"\x04\x80" + bytes(7)),
        (-0.0, b"\x04\x7f" + b"\xff" * 7),
        (1.0, b"\x04\xbf\xf0" + bytes(6)),
        (False, b"\x05\x00"),
        (True, b"\x05\x01"),
        ("a\x00b", b"\x06a\x00\xffb\x00"),
        ("é", b"\x06\xc3\xa9\x00"),
        (b"", b"\x07\x00"),
        (b"\x00\xff", b"\x07\x00\xff\xff\x00"),
        ([], b"\x08\x00"),
        ([None, True], b"\x08\x02\x05\x01\x00"),
        ({}, b"\x09\x00"),
        ({"b": None, "a": "x"}, b"\x09a\x00\x06x\x00b\x00\x02\x00"),
    ],
)
def test_encode_value_key_byte_layout(value: object, key: bytes) -> None:
    assert encode_value_key(value) == key
    assert values_equal(decode_key(key)[0], value)


def test_encode_key_concatenates_elements() -> None:
    assert encode_key(["a", 1.0, UNDEFINED]) == (
        encode_value_key("a") + encode_value_key(1.0) + encode_value_key(UNDEFINED)
    )
    assert encode_key(()) == b""
    assert decode_key(b"") == []


# --- order agreement with compare_values ------------------------------------------------------


@given(KEY_VALUES, KEY_VALUES)
def test_value_keys_sort_like_compare_values(a: object, b: object) -> None:
    assert byte_cmp(encode_value_key(a), encode_value_key(b)) == sign(compare_values(a, b))


@given(st.lists(SCALARS, min_size=1, max_size=4), st.integers(0, 4), st.integers(0, 4))
def test_keys_of_related_arrays_and_objects_sort_like_compare_values(
    items: list[object], i: int, j: int
) -> None:
    # Prefix-related containers are the cases where terminators and escapes decide the order.
    a, b = items[:i], [*items[:j], None]
    assert byte_cmp(encode_value_key(a), encode_value_key(b)) == compare_values(a, b)
    obj_a = {f"k{n}": v for n, v in enumerate(a)}
    obj_b = {f"k{n}": v for n, v in enumerate(b)}
    assert byte_cmp(encode_value_key(obj_a), encode_value_key(obj_b)) == compare_values(
        obj_a, obj_b
    )


@given(st.lists(TEXT | BYTES, min_size=2, max_size=8))
def test_escaped_strings_sort_like_compare_values(values: list[object]) -> None:
    by_value = sorted(values, key=cmp_to_key(compare_values))
    by_key = sorted(values, key=encode_value_key)
    assert [encode_value_key(v) for v in by_value] == [encode_value_key(v) for v in by_key]


@given(TUPLES, TUPLES)
def test_tuple_keys_sort_like_element_wise_comparison(a: list[object], b: list[object]) -> None:
    assert byte_cmp(encode_key(a), encode_key(b)) == tuple_cmp(a, b)


@given(TUPLES)
def test_decode_key_inverts_encode_key(values: list[object]) -> None:
    decoded = decode_key(encode_key(values))
    assert len(decoded) == len(values)
    assert all(map(values_equal, decoded, values))


@given(TUPLES)
def test_tuple_prefix_key_is_a_byte_prefix(values: list[object]) -> None:
    key = encode_key(values)
    for length in range(len(values) + 1):
        assert key.startswith(encode_key(values[:length]))
    assert Interval.prefix(encode_key(values[:1])).contains(key)
    assert MIN_KEY <= key < MAX_KEY


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, "Cannot encode set"),
        (2**63, "out of the int64 range"),
        ([UNDEFINED], "Cannot encode UNDEFINED"),
        ({"a": UNDEFINED}, "Cannot encode UNDEFINED"),
        ({"": 1}, "must not be empty"),
        ({"$a": 1}, "must not start with"),
        ({1: 1}, "Object keys must be strings"),
        ("\ud800", "lone surrogate"),
    ],
)
def test_encode_value_key_rejects_what_is_not_a_value(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        encode_value_key(value)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (b"\x0a", "unexpected byte 0x0a at offset 0"),
        (b"\x00", "unexpected byte 0x00"),
        (b"\xff", "unexpected byte 0xff"),
        (b"\x03\x00", "truncated"),
        (b"\x05", "truncated"),
        (b"\x05\x02", "boolean byte 0x02"),
        (b"\x06abc", "unterminated"),
        (b"\x06\xc3\x00", "not valid UTF-8"),
        (b"\x08", "truncated"),
        (b"\x08\x02", "truncated"),
        (b"\x08\x01\x00", "unexpected byte 0x01"),
        (b"\x09a\x00", "truncated"),
        (b"\x09b\x00\x02a\x00\x02\x00", "not in canonical form"),
        (b"\x09a\x00\x02a\x00\x02\x00", "not in canonical form"),
        (b"\x09$\x00\x02\x00", "not in canonical form|must not start"),
    ],
)
def test_decode_key_rejects_garbage(key: bytes, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        decode_key(key)


def test_decode_key_requires_bytes() -> None:
    with pytest.raises(ValidationError, match="must be bytes, got str"):
        decode_key("\x02")  # type: ignore[arg-type]


# --- prefix_successor and Interval -----------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "successor"),
    [
        (b"ab", b"ac"),
        (b"a\xff", b"b"),
        (b"\x01\xfe\xff\xff", b"\x01\xff"),
        (b"\xff\xff", MAX_KEY),
        (b"", MAX_KEY),
    ],
)
def test_prefix_successor(prefix: bytes, successor: bytes) -> None:
    assert prefix_successor(prefix) == successor


SMALL_BYTES = st.lists(st.sampled_from([0x00, 0x01, 0x02, 0xFE, 0xFF]), max_size=4).map(bytes)
NOT_FF_START = SMALL_BYTES.filter(lambda b: not b.startswith(b"\xff"))


@given(NOT_FF_START, NOT_FF_START)
def test_prefix_interval_holds_exactly_the_extensions(prefix: bytes, key: bytes) -> None:
    # Keys never start with 0xFF (tags are smaller), which is what makes MAX_KEY unbounded.
    assert Interval.prefix(prefix).contains(key) == key.startswith(prefix)


@given(SMALL_BYTES, SMALL_BYTES)
def test_point_interval_holds_exactly_its_key(point: bytes, key: bytes) -> None:
    assert Interval.point(point).contains(key) == (key == point)


def test_interval_basics() -> None:
    interval = Interval(b"b", b"d")
    assert interval.contains(b"b")
    assert interval.contains(b"c\xff")
    assert not interval.contains(b"d")
    assert not interval.contains(b"a")
    assert not interval.is_empty
    assert Interval(b"d", b"d").is_empty
    assert Interval(b"e", b"d").is_empty
    assert Interval.all() == Interval(MIN_KEY, MAX_KEY)
    assert Interval.all().contains(encode_key([{"z": [b"\xff"]}]))
    assert Interval.point(b"k") == Interval(b"k", b"k\x00")


def test_interval_overlaps_and_intersection() -> None:
    ab, bc, cd = Interval(b"a", b"b"), Interval(b"b", b"c"), Interval(b"a", b"d")
    assert not ab.overlaps(bc)  # half-open: they only touch
    assert ab.overlaps(cd) and cd.overlaps(bc)
    assert ab.intersection(cd) == ab
    assert ab.intersection(bc).is_empty
    assert not Interval(b"c", b"c").overlaps(cd)  # empty overlaps nothing
    assert Interval.all().intersection(Interval.prefix(b"x")) == Interval(b"x", b"y")


def test_interval_requires_bytes() -> None:
    with pytest.raises(TypeError, match="must be bytes, got str and bytes"):
        Interval("a", b"b")  # type: ignore[arg-type]


# --- IntervalSet -----------------------------------------------------------------------------


def test_interval_set_merges_overlapping_and_touching_intervals() -> None:
    intervals = IntervalSet()
    intervals.add(Interval(b"c", b"d"))
    intervals.add(Interval(b"a", b"b"))
    intervals.add(Interval(b"x", b"x"))  # empty: ignored
    assert intervals.intervals == (Interval(b"a", b"b"), Interval(b"c", b"d"))
    intervals.add(Interval(b"b", b"c"))  # touches both
    assert intervals.intervals == (Interval(b"a", b"d"),)
    intervals.add(Interval(b"0", b"e"))  # swallows everything
    assert list(intervals) == [Interval(b"0", b"e")]
    assert len(intervals) == 1


def test_interval_set_contains_and_overlaps() -> None:
    intervals = IntervalSet([Interval(b"b", b"d"), Interval(b"f", b"h")])
    assert [intervals.contains(k) for k in [b"a", b"b", b"c", b"d", b"e", b"f", b"h"]] == [
        False,
        True,
        True,
        False,
        False,
        True,
        False,
    ]
    assert intervals.overlaps(Interval(b"c", b"z"))
    assert intervals.overlaps(Interval(b"a", b"b\x00"))
    assert not intervals.overlaps(Interval(b"d", b"f"))
    assert not intervals.overlaps(Interval(b"a", b"b"))
    assert not intervals.overlaps(Interval(b"c", b"c"))
    assert not IntervalSet().overlaps(Interval.all())


def test_interval_set_container_protocol() -> None:
    empty = IntervalSet()
    assert not empty
    assert len(empty) == 0
    one = IntervalSet([Interval(b"a", b"b")])
    assert one
    assert one == IntervalSet([Interval(b"a", b"a\x80"), Interval(b"a\x80", b"b")])
    assert one != empty
    assert one != "not a set"
    copied = one.copy()
    copied.add(Interval(b"c", b"d"))
    assert len(one) == 1 and len(copied) == 2
    union = one.union(IntervalSet([Interval(b"b", b"c")]))
    assert union.intervals == (Interval(b"a", b"c"),)
    assert len(one) == 1
    with pytest.raises(TypeError):
        hash(one)


INTERVALS = st.builds(Interval, SMALL_BYTES, SMALL_BYTES)


@given(st.lists(INTERVALS, max_size=8), st.lists(SMALL_BYTES, max_size=10), INTERVALS)
def test_interval_set_agrees_with_brute_force(
    intervals: list[Interval], keys: list[bytes], query: Interval
) -> None:
    interval_set = IntervalSet(intervals)
    for key in [*keys, query.start, query.end]:
        assert interval_set.contains(key) == any(i.contains(key) for i in intervals)
    assert interval_set.overlaps(query) == any(i.overlaps(query) for i in intervals)
    stored = interval_set.intervals
    assert not any(i.is_empty for i in stored)
    for left, right in itertools.pairwise(stored):
        assert left.end < right.start  # sorted, disjoint and not touching


@given(st.lists(INTERVALS, max_size=6), st.lists(INTERVALS, max_size=6))
def test_interval_set_union_is_insertion_of_both(a: list[Interval], b: list[Interval]) -> None:
    assert IntervalSet(a).union(IntervalSet(b)) == IntervalSet(a + b)
    assert IntervalSet(a + b) == IntervalSet(b + a)
