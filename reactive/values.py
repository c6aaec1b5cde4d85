"""Convex values in Python: validation, size, total order, equality and the wire JSON codec.

Invariant: whatever `check_value` accepts, `encode_value` turns into "convex encoded JSON" that
`decode_value` maps back to an equal value (`values_equal`), bit-exact for floats.

Python representation: None, bool, int (int64), float (float64), str, bytes, list, dict[str, ...].
`bool` is a subclass of `int`, so every type switch here tests `bool` before `int`.

Wire format ("convex encoded JSON", docs/PROTOCOL.md section 2); base64 is the standard alphabet
with `=` padding:
    null, bool, str, list      as themselves; dict as a JSON object (field names as below)
    float, finite, not -0.0    JSON number
    NaN, +-inf, -0.0           {"$float": base64(8-byte little-endian IEEE 754 bits)}
    int (int64)                {"$integer": base64(8-byte little-endian two's complement)}
    bytes                      {"$bytes": base64(bytes)}
Any bare JSON number decodes as float (`3` -> 3.0); only `$integer` yields an int.
Timestamps travel as base64(8-byte little-endian unsigned).

Field names (object keys) must be non-empty, at most 1024 chars of printable ASCII (32..126),
and must not start with `$` (the JS client rejects results that break this). Values nest at
most 16 arrays/objects deep (a top-level object counts as one level); an array holds at most
8192 elements and an object at most 1024 fields. Strings must be valid Unicode (no lone
surrogates), because they must have a UTF-8 form. The numbers are Convex's, kept in `knobs`.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Callable
from typing import Any, Final

import orjson

from reactive import knobs
from reactive.errors import ValidationError
from reactive.types import JsonValue, Value

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_ARRAY_ELEMENTS",
    "MAX_DOCUMENT_BYTES",
    "MAX_FIELD_NAME_LEN",
    "MAX_NESTING",
    "MAX_OBJECT_FIELDS",
    "SYSTEM_FIELDS",
    "UNDEFINED",
    "Undefined",
    "check_document",
    "check_field_name",
    "check_value",
    "compare_values",
    "decode_ts",
    "decode_value",
    "dumps",
    "encode_ts",
    "encode_value",
    "float_order_bits",
    "loads",
    "loads_stored",
    "right_sized",
    "to_clean_json",
    "type_name",
    "value_size",
    "values_equal",
]

# Bound once: the checks below run per element, where a module global is cheapest to read.
MAX_DOCUMENT_BYTES: Final = knobs.MAX_DOCUMENT_BYTES
MAX_NESTING: Final = knobs.MAX_NESTING
MAX_FIELD_NAME_LEN: Final = knobs.MAX_FIELD_NAME_LEN
MAX_ARRAY_ELEMENTS: Final = knobs.MAX_ARRAY_ELEMENTS
MAX_OBJECT_FIELDS: Final = knobs.MAX_OBJECT_FIELDS
INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1
#: Top-level fields every stored document has; only these may start with `_`.
SYSTEM_FIELDS: Final = frozenset({"_id", "_creationTime"})

_SPECIAL_KEYS: Final = frozenset({"$integer", "$float", "$bytes"})
_SIGN_BIT: Final = 1 << 63
_ALL_BITS: Final = (1 << 64) - 1


class _Undefined:
    """The type of UNDEFINED: "this field is absent". Not a value; never stored or sent."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"  # pickling/copying keeps the singleton


#: Marks an absent field: `patch(id, {"x": UNDEFINED})` removes x; a missing indexed field.
UNDEFINED: Final = _Undefined()
#: The type of UNDEFINED, for signatures that accept it beside values.
Undefined = _Undefined


# --- validation ------------------------------------------------------------------------------


def _where(path: str) -> str:
    return f"at path {path}" if path else "at the top level"


def type_name(value: object) -> str:
    """The Convex name of a value's type (for messages), or the Python name if unsupported."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for py_type, name in _TYPE_NAMES:
        if isinstance(value, py_type):
            return name
    return type(value).__name__


_TYPE_NAMES: Final = (
    (int, "int64"),
    (float, "float64"),
    (str, "string"),
    (bytes, "bytes"),
    (list, "array"),
    (dict, "object"),
)


def _unsupported(value: object, path: str) -> ValidationError:
    if value is UNDEFINED:
        return ValidationError(
            f"UNDEFINED is not a value {_where(path)}: it only marks an absent field"
        )
    return ValidationError(f"Unsupported type {type(value).__name__} {_where(path)}")


def _check_int(value: int, path: str) -> None:
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValidationError(
            f"Integer {value} {_where(path)} is out of the int64 range [-2**63, 2**63-1]"
        )


def _check_str(value: str, path: str) -> None:
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"String {_where(path)} is not valid Unicode (it contains a lone surrogate)"
        ) from None


def check_field_name(key: object, path: str = "") -> None:
    """Raise ValidationError unless `key` is a legal object field name (see module docstring)."""
    if not isinstance(key, str):
        raise ValidationError(
            f"Object keys must be strings, got {type(key).__name__} {key!r} {_where(path)}"
        )
    problem = _field_name_problem(key)
    if problem:
        shown = key if len(key) <= 64 else key[:64] + "..."
        raise ValidationError(f"Invalid field name {shown!r} {_where(path)}: {problem}")


def _field_name_problem(key: str) -> str:
    if not key:
        return "field names must not be empty"
    if key.startswith("$"):
        return "field names must not start with '$'"
    if len(key) > MAX_FIELD_NAME_LEN:
        return f"field names must be at most {MAX_FIELD_NAME_LEN} characters, got {len(key)}"
    if not (key.isascii() and key.isprintable()):
        return "field names may only contain printable ASCII characters (codes 32..126)"
    return ""


def _check_depth(depth: int, path: str) -> None:
    if depth > MAX_NESTING:
        raise ValidationError(
            f"Value is nested too deeply {_where(path)}: "
            f"more than {MAX_NESTING} levels of arrays and objects"
        )


def _check_container(value: list[Any] | dict[Any, Any], depth: int, path: str) -> None:
    """An array or object at `depth`: not too deep, not too many elements or fields."""
    _check_depth(depth, path)
    if isinstance(value, list) and len(value) > MAX_ARRAY_ELEMENTS:
        raise ValidationError(
            f"Array {_where(path)} has {len(value)} elements; the limit is "
            f"{MAX_ARRAY_ELEMENTS} (Convex's). Keep long lists as documents of their own "
            "table, one per element, or split the array",
            short_msg="ArrayTooLong",
        )
    if isinstance(value, dict) and len(value) > MAX_OBJECT_FIELDS:
        raise ValidationError(
            f"Object {_where(path)} has {len(value)} fields; the limit is "
            f"{MAX_OBJECT_FIELDS} (Convex's). Use an array of entries or a table "
            "for data keyed by many names",
            short_msg="TooManyFields",
        )


def check_value(value: object, path: str = "") -> None:
    """Raise ValidationError, naming the path, unless `value` is a valid Convex value."""
    if not _is_valid(value, 0):
        _check(value, path, 0)  # the slow walk names the path of the problem


def _is_valid(value: object, depth: int) -> bool:
    """check_value without building a path per element (the common, valid case); False also
    for anything unusual (subclasses), which the slow walk then judges."""
    if value is None or type(value) in _PLAIN_TYPES:
        return True
    if type(value) is str:
        return value.isascii() or _is_unicode(value)
    if type(value) is int:
        return INT64_MIN <= value <= INT64_MAX
    if depth >= MAX_NESTING:
        return False
    if type(value) is list:
        if len(value) > MAX_ARRAY_ELEMENTS:
            return False
        # Plain loops: all() over a generator costs a frame switch per element here.
        for item in value:  # noqa: SIM110
            if not _is_valid(item, depth + 1):
                return False
        return True
    if type(value) is dict:
        if len(value) > MAX_OBJECT_FIELDS:
            return False
        for key, item in value.items():
            if not (_is_good_field_name(key) and _is_valid(item, depth + 1)):
                return False
        return True
    return False


_PLAIN_TYPES: Final = frozenset({bool, float, bytes})


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: Field names already found legal: documents repeat the same few names endlessly.
_GOOD_FIELD_NAMES: set[str] = set()


def _is_good_field_name(key: object) -> bool:
    if key in _GOOD_FIELD_NAMES:
        return True
    if type(key) is not str or _field_name_problem(key):
        return False
    if len(_GOOD_FIELD_NAMES) < 100_000:  # bounded: names could come from user data
        _GOOD_FIELD_NAMES.add(key)
    return True


def _check(value: object, path: str, depth: int) -> None:
    if value is None or isinstance(value, (bool, float, bytes)):
        return
    if isinstance(value, int):
        _check_int(value, path)
    elif isinstance(value, str):
        _check_str(value, path)
    elif isinstance(value, list):
        _check_container(value, depth + 1, path)
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, dict):
        _check_container(value, depth + 1, path)
        for key, item in value.items():
            check_field_name(key, path)
            _check(item, f"{path}.{key}", depth + 1)
    else:
        raise _unsupported(value, path)


def check_document(doc: object, path: str = "", *, allow_system_fields: bool = False) -> int:
    """check_value plus document rules: an object, no user `_` fields, at most 1 MiB.
    Returns the document's `value_size` (writes count it against their own limit).

    `_id` and `_creationTime` are accepted only with `allow_system_fields=True`.
    """
    if not isinstance(doc, dict):
        raise ValidationError(f"A document must be an object, got {type_name(doc)} {_where(path)}")
    check_value(doc, path)
    for key in doc:
        if key.startswith("_") and not (allow_system_fields and key in SYSTEM_FIELDS):
            raise ValidationError(
                f"Invalid field name {key!r} {_where(path)}: "
                "top-level field names starting with '_' are reserved for system fields"
            )
    size = value_size(doc)
    if size > MAX_DOCUMENT_BYTES:
        raise ValidationError(
            f"Document {_where(path)} is too large: {size} bytes, "
            f"the limit is {MAX_DOCUMENT_BYTES} bytes (1 MiB)"
        )
    return size


def _str_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def value_size(value: object) -> int:
    """Deterministic size estimate in bytes: what the 1 MiB document limit is measured in.

    null/bool 1, int/float 8, str/bytes length + 2 (UTF-8 for str), array 2 + elements,
    object 2 + for each field (name length + 2 + value size).
    """
    # The common types first; bool before int (it is one). Plain loops: sum() over a
    # generator costs a frame switch per element.
    if isinstance(value, str):
        return _str_size(value) + 2
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float):
        return 8
    if isinstance(value, dict):
        size = 2
        for key, item in value.items():
            size += _str_size(key) + 2 + value_size(item)
        return size
    if isinstance(value, list):
        size = 2
        for item in value:
            size += value_size(item)
        return size
    if isinstance(value, bytes):
        return len(value) + 2
    raise _unsupported(value, "")


# --- the wire codec --------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str, path: str) -> bytes:
    if not isinstance(text, str):
        raise ValidationError(f"{what} {_where(path)} must hold a base64 string, got {text!r}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{what} {_where(path)} holds invalid base64: {text!r}") from None


def _is_plain_json_float(value: float) -> bool:
    """Finite and not -0.0: the floats JSON numbers can carry unambiguously."""
    return math.isfinite(value) and not (value == 0.0 and math.copysign(1.0, value) < 0)


def encode_value(value: Value, path: str = "") -> JsonValue:
    """Value -> convex encoded JSON. Enforces check_value's rules (ValidationError naming
    the problem's place under `path`)."""
    try:
        return _encode_fast(value, 0)
    except _Unusual:
        return _encode(value, path, 0)  # the slow walk names the path of the problem


class _Unusual(Exception):
    """A fast walk met something it leaves to the slow walk (an error or a subclass)."""


def _fast_fields(
    obj: dict[Any, Any], depth: int, walk: Callable[[Any, int], Any]
) -> dict[str, Any]:
    """A fast walk's step into an object: legal field names, each value walked one deeper."""
    out = {}
    for key, item in obj.items():
        if not _is_good_field_name(key):
            raise _Unusual
        out[key] = walk(item, depth + 1)
    return out


def _fast_str(text: str) -> str:
    if text.isascii() or _is_unicode(text):
        return text
    raise _Unusual


def _encode_fast(value: object, depth: int) -> JsonValue:
    if value is None or type(value) is bool:
        return value
    if type(value) is str:
        return _fast_str(value)
    if type(value) is float:
        if _is_plain_json_float(value):
            return value
        return {"$float": _b64(struct.pack("<d", value))}
    if type(value) is int:
        if INT64_MIN <= value <= INT64_MAX:
            return {"$integer": _b64(struct.pack("<q", value))}
        raise _Unusual
    if depth >= MAX_NESTING:
        raise _Unusual
    if type(value) is dict:
        if len(value) > MAX_OBJECT_FIELDS:
            raise _Unusual
        return _fast_fields(value, depth, _encode_fast)
    if type(value) is list:
        if len(value) > MAX_ARRAY_ELEMENTS:
            raise _Unusual
        return [_encode_fast(item, depth + 1) for item in value]
    if type(value) is bytes:
        return {"$bytes": _b64(value)}
    raise _Unusual


def _encode(value: Any, path: str, depth: int) -> JsonValue:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        _check_int(value, path)
        return {"$integer": _b64(struct.pack("<q", value))}
    if isinstance(value, float):
        if _is_plain_json_float(value):
            return value
        return {"$float": _b64(struct.pack("<d", value))}
    if isinstance(value, str):
        _check_str(value, path)
        return value
    if isinstance(value, bytes):
        return {"$bytes": _b64(value)}
    if isinstance(value, list):
        _check_container(value, depth + 1, path)
        return [_encode(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        _check_container(value, depth + 1, path)
        return {k: _encode(v, f"{path}.{k}", depth + 1) for k, v in _checked_items(value, path)}
    raise _unsupported(value, path)


def _checked_items(obj: dict[Any, Any], path: str) -> list[tuple[str, Any]]:
    for key in obj:
        check_field_name(key, path)
    return list(obj.items())


def decode_value(obj: JsonValue) -> Value:
    """Convex encoded JSON -> Value; the inverse of encode_value. ValidationError on bad input."""
    try:
        return _decode_fast(obj, 0)
    except _Unusual:
        return _decode(obj, "", 0)  # the slow walk names the path of the problem


def _decode_fast(obj: object, depth: int) -> Value:
    """decode_value without a path per element; leaves anything unusual to the slow walk."""
    if obj is None or type(obj) is bool:
        return obj
    if type(obj) is str:
        return _fast_str(obj)
    if type(obj) is float:
        return obj
    if type(obj) is int and INT64_MIN <= obj <= INT64_MAX:
        return float(obj)  # a bare JSON number is a float64
    if depth >= MAX_NESTING:
        raise _Unusual
    if type(obj) is dict:
        if len(obj) == 1:
            (key,) = obj
            if key in _SPECIAL_KEYS:
                try:
                    return _decode_special(obj, "")
                except ValidationError:
                    raise _Unusual from None  # the slow walk reports it with its path
            if type(key) is str and key.startswith("$"):
                raise _Unusual
        if len(obj) > MAX_OBJECT_FIELDS:
            raise _Unusual
        return _fast_fields(obj, depth, _decode_fast)
    if type(obj) is list:
        if len(obj) > MAX_ARRAY_ELEMENTS:
            raise _Unusual
        return [_decode_fast(item, depth + 1) for item in obj]
    raise _Unusual


def _decode(obj: Any, path: str, depth: int) -> Value:
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, (int, float)):
        return _json_number(obj, path)
    if isinstance(obj, str):
        _check_str(obj, path)
        return obj
    if isinstance(obj, list):
        _check_container(obj, depth + 1, path)
        return [_decode(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(obj)]
    if isinstance(obj, dict):
        return _decode_object(obj, path, depth)
    raise ValidationError(f"Unsupported JSON type {type(obj).__name__} {_where(path)}")


def _decode_object(obj: dict[Any, Any], path: str, depth: int) -> Value:
    if len(obj) == 1:
        (key,) = obj
        if key in _SPECIAL_KEYS:
            return _decode_special(obj, path)
        if isinstance(key, str) and key.startswith("$"):
            raise ValidationError(
                f"Unsupported special form {key!r} {_where(path)}: "
                "only $integer, $float and $bytes are supported"
            )
    _check_container(obj, depth + 1, path)
    return {k: _decode(v, f"{path}.{k}", depth + 1) for k, v in _checked_items(obj, path)}


def _json_number(number: int | float, path: str) -> float:
    """Every bare JSON number is a float64, as in JavaScript."""
    try:
        return float(number)
    except OverflowError:
        raise ValidationError(f"Number {_where(path)} is too large for a float64") from None


def _decode_special(obj: dict[str, Any], path: str) -> Value:
    ((key, payload),) = obj.items()
    data = _unb64(payload, key, path)
    if key == "$bytes":
        return data
    if len(data) != 8:
        raise ValidationError(f"{key} {_where(path)} must hold exactly 8 bytes, got {len(data)}")
    if key == "$integer":
        return int(struct.unpack("<q", data)[0])
    number: float = struct.unpack("<d", data)[0]
    if _is_plain_json_float(number):
        raise ValidationError(
            f"$float {_where(path)} holds the ordinary number {number!r}; "
            "only NaN, Infinity, -Infinity and -0 use $float"
        )
    return number


def right_sized(data: bytes) -> bytes:
    """`data` in an allocation of its own size, for bytes that are kept: orjson builds its
    output in a buffer of at least 4 KiB and hands that buffer back, so a 100-byte result
    kept per subscription or per remembered mutation would hold 4 KiB."""
    return bytes(memoryview(data))


def dumps(value: Value) -> bytes:
    """Value -> UTF-8 JSON bytes of its convex encoding (never bare NaN/Infinity)."""
    return orjson.dumps(encode_value(value))


def loads(data: bytes | str) -> Value:
    """UTF-8 JSON of a convex encoding -> Value. ValidationError on malformed JSON."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"Invalid JSON: {exc}") from None
    return decode_value(parsed)


def loads_stored(data: bytes | str) -> Value:
    """`loads` for JSON this process wrote itself (stored documents and results): decodes
    the special forms but skips the checks, which the value passed when it was written."""
    return _decode_stored(orjson.loads(data))


def _decode_stored(obj: Any) -> Value:
    kind = type(obj)
    if kind is dict:
        if len(obj) == 1:
            (key,) = obj
            if key in _SPECIAL_KEYS:
                return _decode_special(obj, "")
        return {key: _decode_stored(item) for key, item in obj.items()}
    if kind is list:
        return [_decode_stored(item) for item in obj]
    if kind is int:
        return float(obj)  # a bare JSON number is a float64
    return obj  # type: ignore[no-any-return]


def to_clean_json(value: Value) -> JsonValue:
    """Value -> plain JSON (format "json"): int64 as a decimal string, bytes as base64,
    NaN/Infinity/-Infinity as strings. Lossy: meant for people and `/api/run`."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _clean_float(value)
    if isinstance(value, bytes):
        return _b64(value)
    if isinstance(value, list):
        return [to_clean_json(item) for item in value]
    if isinstance(value, dict):
        return {str(k): to_clean_json(v) for k, v in value.items()}
    raise _unsupported(value, "")


def _clean_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def encode_ts(ts: int) -> str:
    """Commit timestamp -> base64 of its 8 little-endian bytes (0 -> "AAAAAAAAAAA=")."""
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= _ALL_BITS:
        raise ValidationError(f"A timestamp must be an unsigned 64-bit integer, got {ts!r}")
    return _b64(ts.to_bytes(8, "little"))


def decode_ts(s: object) -> int:
    """base64 of 8 little-endian bytes -> timestamp. ValidationError on anything else."""
    data = _unb64(s, "Timestamp", "")
    if len(data) != 8:
        raise ValidationError(f"A timestamp must encode exactly 8 bytes, got {len(data)}: {s!r}")
    return int.from_bytes(data, "little")


# --- order and equality ----------------------------------------------------------------------

# Convex's order across types: UNDEFINED < null < int64 < float64 < boolean < string < bytes
# < array < object. Index keys (index_keys.py) use the same ranks as their tag bytes.
_RANK_UNDEFINED, _RANK_NULL, _RANK_INT, _RANK_FLOAT, _RANK_BOOL = range(5)
_RANK_STR, _RANK_BYTES, _RANK_ARRAY, _RANK_OBJECT = range(5, 9)


def _rank(value: object) -> int:
    if value is UNDEFINED:
        return _RANK_UNDEFINED
    if value is None:
        return _RANK_NULL
    if isinstance(value, bool):
        return _RANK_BOOL
    for py_type, rank in _RANKS:
        if isinstance(value, py_type):
            return rank
    raise _unsupported(value, "")


_RANKS: Final = (
    (int, _RANK_INT),
    (float, _RANK_FLOAT),
    (str, _RANK_STR),
    (bytes, _RANK_BYTES),
    (list, _RANK_ARRAY),
    (dict, _RANK_OBJECT),
)


def float_order_bits(value: float) -> int:
    """An unsigned 64-bit int whose numeric order is the IEEE 754 total order of floats.

    -NaN < -inf < ... < -0.0 < 0.0 < ... < inf < NaN; distinct bit patterns stay distinct.
    """
    bits: int = struct.unpack(">Q", struct.pack(">d", value))[0]
    return (bits ^ _ALL_BITS) if bits & _SIGN_BIT else (bits | _SIGN_BIT)


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def compare_values(a: object, b: object) -> int:
    """-1, 0 or 1: Convex's total order over values (and UNDEFINED, lowest of all).

    Floats by IEEE total order of their bits, strings by UTF-8 bytes (same as code points),
    arrays element-wise then shorter first, objects as their (key, value) pairs sorted by key.
    """
    rank_a, rank_b = _rank(a), _rank(b)
    if rank_a != rank_b:
        return _cmp(rank_a, rank_b)
    if isinstance(a, float) and isinstance(b, float):
        return _cmp(float_order_bits(a), float_order_bits(b))
    if isinstance(a, list) and isinstance(b, list):
        return _compare_sequences(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return _compare_objects(a, b)
    if rank_a <= _RANK_NULL:
        return 0  # UNDEFINED and null each have a single member
    return _cmp(a, b)


def _compare_sequences(a: list[Any], b: list[Any]) -> int:
    for item_a, item_b in zip(a, b, strict=False):
        result = compare_values(item_a, item_b)
        if result:
            return result
    return _cmp(len(a), len(b))


def _compare_objects(a: dict[str, Any], b: dict[str, Any]) -> int:
    keys_a, keys_b = sorted(a), sorted(b)
    for key_a, key_b in zip(keys_a, keys_b, strict=False):
        result = _cmp(key_a, key_b) or compare_values(a[key_a], b[key_b])
        if result:
            return result
    return _cmp(len(keys_a), len(keys_b))


def values_equal(a: object, b: object) -> bool:
    """Structural equality, exactly `compare_values(a, b) == 0`.

    Unlike `==`: 1 != 1.0, True != 1, NaN equals NaN (floats compare by bits, so -0.0 != 0.0
    and NaNs with different sign or payload differ), dict key order does not matter.
    """
    if _rank(a) != _rank(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        return float_order_bits(a) == float_order_bits(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(values_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(v, b[k]) for k, v in a.items())
    return a == b
