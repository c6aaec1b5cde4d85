import copy
import itertools
import json
import math
import pickle
import struct
from functools import cmp_to_key

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reactive import values as values_module
from reactive.errors import ValidationError
from reactive.values import (
    INT64_MAX,
    INT64_MIN,
    MAX_ARRAY_ELEMENTS,
    MAX_DOCUMENT_BYTES,
    MAX_FIELD_NAME_LEN,
    MAX_NESTING,
    MAX_OBJECT_FIELDS,
    UNDEFINED,
    _Undefined,
    check_document,
    check_field_name,
    check_value,
    compare_values,
    decode_ts,
    decode_value,
    dumps,
    encode_ts,
    encode_value,
    loads,
    loads_stored,
    to_clean_json,
    type_name,
    value_size,
    values_equal,
)
from tests.value_strategies import INF, NAN, NEG_NAN, strategies

_VALUES = strategies(small=False)
FIELD_NAMES, FLOATS, INTS = _VALUES.FIELD_NAMES, _VALUES.FLOATS, _VALUES.INTS
TEXT, BYTES, SCALARS, VALUES = _VALUES.TEXT, _VALUES.BYTES, _VALUES.SCALARS, _VALUES.VALUES


def depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


def nested(levels: int) -> object:
    value: object = 1.0
    for level in range(levels):
        value = [value] if level % 2 else {"x": value}
    return value


def float_bits(value: float) -> bytes:
    return struct.pack("<d", value)


def no_constants(name: str) -> None:
    raise AssertionError(f"bare {name} in JSON")


# --- wire examples (docs/PROTOCOL.md section 2 and 4) ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (5, {"$integer": "BQAAAAAAAAA="}),
        (-1, {"$integer": "//////////8="}),
        (NAN, {"$float": "AAAAAAAA+H8="}),
        (INF, {"$float": "AAAAAAAA8H8="}),
        (-INF, {"$float": "AAAAAAAA8P8="}),
        (-0.0, {"$float": "AAAAAAAAAIA="}),
        (b"hi", {"$bytes": "aGk="}),
        (1.5, 1.5),
        (0.0, 0.0),
        ("s", "s"),
        (None, None),
        (True, True),
        ([1.0, {"a": False}], [1.0, {"a": False}]),
    ],
)
def test_encode_value_matches_the_protocol_examples(value: object, encoded: object) -> None:
    assert encode_value(value) == encoded
    assert values_equal(decode_value(encoded), value)


def test_timestamps_match_the_protocol_examples() -> None:
    assert encode_ts(0) == "AAAAAAAAAAA="
    assert encode_ts(1) == "AQAAAAAAAAA="
    assert decode_ts("AQAAAAAAAAA=") == 1
    assert decode_ts(encode_ts(2**64 - 1)) == 2**64 - 1


def test_dumps_produces_compact_convex_json() -> None:
    assert (
        dumps({"n": 5, "f": -0.0})
        == b'{"n":{"$integer":"BQAAAAAAAAA="},"f":{"$float":"AAAAAAAAAIA="}}'
    )


def test_json_numbers_always_decode_as_float() -> None:
    assert type(decode_value(3)) is float
    assert type(loads(b"[3]")[0]) is float
    assert loads('{"a": 3}') == {"a": 3.0}
    assert type(loads(b'{"$integer":"AwAAAAAAAAA="}')) is int


def test_decode_value_keeps_nan_sign_and_negative_zero() -> None:
    assert float_bits(decode_value({"$float": "AAAAAAAAAIA="})) == float_bits(-0.0)
    negative_nan = decode_value(encode_value(NEG_NAN))
    assert math.isnan(negative_nan)
    assert math.copysign(1.0, negative_nan) == -1.0


@given(VALUES)
def test_decode_inverts_encode(value: object) -> None:
    assume(depth(value) <= MAX_NESTING)
    assert values_equal(decode_value(encode_value(value)), value)
    assert values_equal(loads(dumps(value)), value)


@given(VALUES)
def test_loads_stored_inverts_dumps(value: object) -> None:
    assume(depth(value) <= MAX_NESTING)
    assert values_equal(loads_stored(dumps(value)), value)


# decode_value, encode_value and check_value first try a walk that builds no paths and fall
# back to the path-naming walk on anything unusual: both must give the same answer.
_ODD_NAMES = st.sampled_from(["a", "", "$integer", "$float", "$bytes", "$x", "_id", "\x7f", "é"])
_JSON_LIKE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
    | st.just("\ud800"),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(_ODD_NAMES, children, max_size=2)
        | st.builds(lambda b: {"$bytes": b}, st.sampled_from(["AAAA", "!!", 3]))
        | st.builds(lambda b: {"$integer": b}, st.sampled_from(["AAAAAAAAAAA=", "AA=="]))
    ),
    max_leaves=10,
)
_PY_LIKE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**65), 2**65)
    | st.floats()
    | st.text(max_size=4)
    | st.just("\ud800")
    | st.binary(max_size=3)
    | st.just((1, 2))
    | st.just(UNDEFINED),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(_ODD_NAMES, children, max_size=2)
    ),
    max_leaves=10,
)


def _outcome(call, *args):
    try:
        return ("ok", call(*args))
    except ValidationError as exc:
        return ("error", str(exc))


def _same(fast, slow) -> None:
    assert fast[0] == slow[0], (fast, slow)
    if fast[0] == "ok":
        assert values_equal(fast[1], slow[1]) or fast[1] == slow[1], (fast, slow)
    else:
        assert fast == slow


@given(_JSON_LIKE)
def test_decode_value_fast_path_agrees_with_the_checked_walk(obj: object) -> None:
    _same(_outcome(decode_value, obj), _outcome(values_module._decode, obj, "", 0))


@given(_PY_LIKE)
def test_encode_and_check_fast_paths_agree_with_the_checked_walks(value: object) -> None:
    _same(_outcome(encode_value, value), _outcome(values_module._encode, value, "", 0))
    _same(_outcome(check_value, value), _outcome(values_module._check, value, "", 0))


def test_fast_paths_leave_deep_values_to_the_checked_walk() -> None:
    deep: object = 1.0
    for _ in range(MAX_NESTING + 1):
        deep = [deep]
    for call in (encode_value, check_value, decode_value):
        with pytest.raises(ValidationError, match="nested too deeply"):
            call(deep)


@given(VALUES)
def test_dumps_never_emits_bare_nan_or_infinity(value: object) -> None:
    assume(depth(value) <= MAX_NESTING)
    json.loads(dumps(value), parse_constant=no_constants)


def test_to_clean_json_uses_strings_for_what_json_cannot_carry() -> None:
    value = {"i": 2**62, "b": b"\x00\x01", "n": NAN, "p": INF, "m": -INF, "z": -0.0, "l": [None]}
    clean = to_clean_json(value)
    assert clean == {
        "i": "4611686018427387904",
        "b": "AAE=",
        "n": "NaN",
        "p": "Infinity",
        "m": "-Infinity",
        "z": -0.0,
        "l": [None],
    }
    with pytest.raises(ValidationError, match="Unsupported type set"):
        to_clean_json({1, 2})  # type: ignore[arg-type]


# --- decode errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"$bytes": "@@@@"}, "invalid base64"),
        ({"$bytes": "AAA"}, "invalid base64"),
        ({"$integer": 5}, "must hold a base64 string"),
        ({"$integer": "AAAA"}, "exactly 8 bytes, got 3"),
        ({"$float": "AAAAAAAAAAAA"}, "exactly 8 bytes, got 9"),
        ({"$float": "AAAAAAAA8D8="}, "ordinary number 1.0"),
        ({"$float": "AAAAAAAAAAA="}, "ordinary number 0.0"),
        ({"$set": []}, "Unsupported special form '\\$set'"),
        ({"$map": []}, "Unsupported special form '\\$map'"),
        ({"$foo": 1}, "Unsupported special form '\\$foo'"),
        ({"$integer": "BQAAAAAAAAA=", "x": 1}, "must not start with '\\$'"),
        ({"a": {"$weird": 1, "b": 2}}, "at path .a: field names must not start"),
        ({"caf\u00e9": 1}, "printable ASCII"),
        ({"": 1}, "must not be empty"),
        ([{"x": [object()]}], "Unsupported JSON type object at path \\[0\\].x\\[0\\]"),
        (10**400, "too large for a float64"),
    ],
)
def test_decode_value_rejects_bad_input(obj: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        decode_value(obj)  # type: ignore[arg-type]


def test_decode_value_enforces_nesting() -> None:
    assert values_equal(decode_value(encode_value(nested(MAX_NESTING))), nested(MAX_NESTING))
    with pytest.raises(ValidationError, match="nested too deeply"):
        decode_value(json_nested(MAX_NESTING + 1))
    with pytest.raises(ValidationError, match="nested too deeply"):
        decode_value({"a": json_nested(MAX_NESTING)})


def json_nested(levels: int) -> object:
    value: object = 1.0
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("text", ["{", b"NaN", "[1, Infinity]", b"\xff", '"\\ud800"', ""])
def test_loads_rejects_malformed_json(text: str | bytes) -> None:
    with pytest.raises(ValidationError, match="Invalid JSON"):
        loads(text)


def test_decode_ts_rejects_bad_input() -> None:
    for bad in ["abc", "AAAA", "AAAAAAAAAAAAAAAA", 0, None]:
        with pytest.raises(ValidationError):
            decode_ts(bad)


@pytest.mark.parametrize("ts", [-1, 2**64, True, 1.0, "0"])
def test_encode_ts_rejects_non_u64(ts: object) -> None:
    with pytest.raises(ValidationError, match="unsigned 64-bit"):
        encode_ts(ts)  # type: ignore[arg-type]


@given(st.integers(0, 2**64 - 1))
def test_timestamps_round_trip(ts: int) -> None:
    assert decode_ts(encode_ts(ts)) == ts


# --- check_value / check_document ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"tags": {1, 2}}, "^Unsupported type set at path .tags$"),
        ([1.0, (1,)], "^Unsupported type tuple at path \\[1\\]$"),
        (bytearray(b"x"), "^Unsupported type bytearray at the top level$"),
        ({"a": [UNDEFINED]}, "UNDEFINED is not a value at path .a\\[0\\]"),
        ({"n": 2**63}, "Integer 9223372036854775808 at path .n is out of the int64 range"),
        ([-(2**63) - 1], "out of the int64 range"),
        ({1: "x"}, "Object keys must be strings, got int 1"),
        ({"a": {"": 1}}, "Invalid field name '' at path .a: field names must not be empty"),
        ({"$x": 1}, "must not start with '\\$'"),
        ({"x" * (MAX_FIELD_NAME_LEN + 1): 1}, "at most 1024 characters, got 1025"),
        ({"café": 1}, "printable ASCII"),
        ({"a\nb": 1}, "printable ASCII"),
        ({"a\x7f": 1}, "printable ASCII"),
        ({"s": "\ud800"}, "String at path .s is not valid Unicode"),
        (nested(MAX_NESTING + 1), "nested too deeply"),
        (json_nested(MAX_NESTING + 1), "nested too deeply"),
    ],
)
def test_check_value_rejects_bad_values(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check_value(value)
    with pytest.raises(ValidationError, match=message):
        encode_value(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        nested(MAX_NESTING),
        json_nested(MAX_NESTING),
        {"x" * MAX_FIELD_NAME_LEN: 1, " ~": [INT64_MIN, INT64_MAX]},
        {"_nested_underscore_is_fine": {"_x": 1}},
        "\x00 é \U0010ffff",
    ],
)
def test_check_value_accepts_values_at_the_limits(value: object) -> None:
    check_value(value)


def _fields(n: int) -> dict[str, float]:
    return {f"f{i}": 1.0 for i in range(n)}


def test_convex_value_limits_are_convexs() -> None:
    assert (MAX_ARRAY_ELEMENTS, MAX_OBJECT_FIELDS, MAX_NESTING) == (8192, 1024, 16)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1.0] * (MAX_ARRAY_ELEMENTS + 1), r"Array at the top level has 8193 elements; the limit"),
        ({"a": [[None] * (MAX_ARRAY_ELEMENTS + 1)]}, r"Array at path \.a\[0\] has 8193 elements"),
        (_fields(MAX_OBJECT_FIELDS + 1), r"Object at the top level has 1025 fields; the limit"),
        ({"a": [_fields(MAX_OBJECT_FIELDS + 1)]}, r"Object at path \.a\[0\] has 1025 fields"),
    ],
)
def test_arrays_and_objects_over_convexs_limits_are_refused_everywhere(
    value: object, message: str
) -> None:
    for check in (check_value, encode_value, lambda v: decode_value(json.loads(json.dumps(v)))):
        with pytest.raises(ValidationError, match=message) as caught:
            check(value)
        assert "Convex's" in caught.value.msg  # it says whose limit, and what to do instead


def test_arrays_and_objects_at_convexs_limits_are_values() -> None:
    at_limit = {"list": [1.0] * MAX_ARRAY_ELEMENTS, "obj": _fields(MAX_OBJECT_FIELDS)}
    check_value(at_limit)
    assert values_equal(decode_value(encode_value(at_limit)), at_limit)


def test_check_value_names_the_given_path() -> None:
    with pytest.raises(ValidationError, match=r"at path args\.x"):
        check_value({"x": {1}}, "args")


@given(VALUES)
def test_check_value_accepts_generated_values(value: object) -> None:
    assume(depth(value) <= MAX_NESTING)
    check_value(value)


def test_check_document_reserves_underscore_fields() -> None:
    with pytest.raises(ValidationError, match=r"'_secret'.*reserved for system fields"):
        check_document({"_secret": 1})
    with pytest.raises(ValidationError, match="'_id'"):
        check_document({"_id": "x", "a": 1.0})
    check_document({"_id": "x", "_creationTime": 1.0}, allow_system_fields=True)
    with pytest.raises(ValidationError, match="'_other'"):
        check_document({"_other": 1}, allow_system_fields=True)
    check_document({"a": {"_nested": 1}})


def test_check_document_requires_an_object() -> None:
    with pytest.raises(ValidationError, match="must be an object, got array"):
        check_document([1])


def test_check_document_limits_the_size() -> None:
    overhead = value_size({"s": ""})
    check_document({"s": "x" * (MAX_DOCUMENT_BYTES - overhead)})
    too_big = {"s": "x" * (MAX_DOCUMENT_BYTES - overhead + 1)}
    with pytest.raises(ValidationError, match="too large: 1048577 bytes, the limit is 1048576"):
        check_document(too_big)


def test_check_document_also_runs_check_value() -> None:
    with pytest.raises(ValidationError, match=r"Unsupported type set at path \.tags"):
        check_document({"tags": set()})


def test_check_field_name() -> None:
    check_field_name("ok name")
    with pytest.raises(ValidationError, match="must not start with"):
        check_field_name("$bad")


def test_value_size_is_a_simple_deterministic_estimate() -> None:
    assert value_size(None) == 1
    assert value_size(True) == 1
    assert value_size(7) == 8
    assert value_size(7.0) == 8
    assert value_size("ab") == 4
    assert value_size("é") == 4
    assert value_size(b"abc") == 5
    assert value_size([None, True]) == 4
    assert value_size({"a": 1}) == 2 + (1 + 2) + 8
    with pytest.raises(ValidationError):
        value_size({1, 2})


def test_type_name_uses_convex_names() -> None:
    assert [type_name(v) for v in [None, True, 1, 1.0, "", b"", [], {}]] == [
        "null",
        "boolean",
        "int64",
        "float64",
        "string",
        "bytes",
        "array",
        "object",
    ]
    assert type_name({1}) == "set"


# --- UNDEFINED -------------------------------------------------------------------------------


def test_undefined_is_a_falsy_singleton() -> None:
    assert repr(UNDEFINED) == "UNDEFINED"
    assert not UNDEFINED
    assert _Undefined() is UNDEFINED
    assert copy.deepcopy(UNDEFINED) is UNDEFINED
    assert pickle.loads(pickle.dumps(UNDEFINED)) is UNDEFINED
    assert UNDEFINED is not None


def test_undefined_is_not_a_value() -> None:
    with pytest.raises(ValidationError, match="UNDEFINED is not a value"):
        encode_value({"a": UNDEFINED})  # type: ignore[dict-item]


# --- order and equality ----------------------------------------------------------------------


def test_compare_values_orders_types_as_convex() -> None:
    ordered = [UNDEFINED, None, INT64_MIN, 5, INT64_MAX, -INF, 0.0, NAN, False, True]
    ordered += ["", "a", b"", b"\x00", [], [None], {}, {"a": None}]
    for i, low in enumerate(ordered):
        for high in ordered[i + 1 :]:
            assert compare_values(low, high) == -1, (low, high)
            assert compare_values(high, low) == 1, (high, low)
        assert compare_values(low, low) == 0


def test_compare_values_floats_use_total_order() -> None:
    ordered = [NEG_NAN, -INF, -1e308, -5e-324, -0.0, 0.0, 5e-324, 1.0, INF, NAN]
    shuffled = ordered[::2] + ordered[1::2]
    resorted = sorted(shuffled, key=cmp_to_key(compare_values))
    assert [float_bits(x) for x in resorted] == [float_bits(x) for x in ordered]
    for low, high in itertools.pairwise(ordered):
        assert compare_values(low, high) == -1


def test_compare_values_strings_by_utf8_bytes() -> None:
    # UTF-16 code units would put U+10000 (a surrogate pair) before U+FFFF; UTF-8 does not.
    assert compare_values("\uffff", "\U00010000") == -1
    assert compare_values("a", "a\x00") == -1
    assert compare_values("ab", "b") == -1


def test_compare_values_containers() -> None:
    assert compare_values([1], [1, None]) == -1
    assert compare_values([2], [1, None]) == 1
    assert compare_values({"a": 1}, {"a": 1, "b": None}) == -1
    assert compare_values({"b": None}, {"a": 1, "c": 1}) == 1  # key "a" < "b" decides
    assert compare_values({"a": 2, "b": 1}, {"b": 1, "a": 2}) == 0


def test_compare_values_rejects_unsupported_types() -> None:
    with pytest.raises(ValidationError, match="Unsupported type set"):
        compare_values({1}, 1)


def test_values_equal_is_strict_about_types_and_floats() -> None:
    assert not values_equal(1, 1.0)
    assert not values_equal(True, 1)
    assert not values_equal(False, 0.0)
    assert values_equal(NAN, float("nan"))
    assert not values_equal(NAN, NEG_NAN)
    assert not values_equal(-0.0, 0.0)
    assert values_equal({"a": [NAN], "b": 1}, {"b": 1, "a": [NAN]})
    assert not values_equal([1, 2], [1])
    assert not values_equal({"a": 1}, {"b": 1})
    with pytest.raises(ValidationError, match="Unsupported type tuple"):
        values_equal([1], (1,))
    assert values_equal(UNDEFINED, UNDEFINED)
    assert not values_equal(UNDEFINED, None)


@given(VALUES, VALUES)
def test_compare_values_is_antisymmetric_and_matches_values_equal(a: object, b: object) -> None:
    assert compare_values(a, b) == -compare_values(b, a)
    assert values_equal(a, b) == (compare_values(a, b) == 0)


@given(VALUES)
def test_values_equal_is_reflexive(value: object) -> None:
    assert values_equal(value, copy.deepcopy(value))
    assert compare_values(value, copy.deepcopy(value)) == 0


def test_a_kept_encoding_costs_its_size_not_orjsons_buffer():
    import tracemalloc

    import orjson

    from reactive.values import right_sized

    value = [{"_id": "k" * 24, "body": "hello"}]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        raw = [orjson.dumps(value) for _ in range(200)]
        after_raw = tracemalloc.get_traced_memory()[0]
        kept = [right_sized(r) for r in raw]
        after_kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept[0] == raw[0]
    per_raw, per_kept = (after_raw - before) / 200, (after_kept - after_raw) / 200
    assert per_kept < 200 < len(raw[0]) * 10 < per_raw  # ~100 bytes against ~4 KiB
