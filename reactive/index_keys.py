"""Order-preserving index keys and byte intervals over them.

Invariant: for values a, b, `encode_value_key(a) < encode_value_key(b)` (as bytes) exactly when
`compare_values(a, b) < 0`, and a tuple's key is the concatenation of its elements' keys, so
the key of a tuple prefix is a byte prefix of the tuple's key. Storage only compares bytes.

Layout: one tag byte, in Convex's type order, then the payload:
    0x01 UNDEFINED  (no payload; only as a tuple element: "field absent")
    0x02 null       (no payload)
    0x03 int64      8 bytes big-endian of the value with its sign bit flipped
    0x04 float64    8 bytes big-endian of the IEEE 754 bits: all bits flipped if the sign
                    bit is set, else only the sign bit flipped (IEEE total order)
    0x05 boolean    0x00 or 0x01
    0x06 string     UTF-8 bytes, each 0x00 escaped as 0x00 0xFF, then a 0x00 terminator
    0x07 bytes      the bytes, escaped and terminated as for strings
    0x08 array      each element's encoding, then 0x00
    0x09 object     for each field in key order: the key escaped and terminated as a string
                    (no tag), then the value's encoding; then 0x00
After a terminator there is always a byte below 0xFF (a tag, a field name's first printable
ASCII byte, a terminator) or nothing, which keeps escaped strings in order. Every key starts
with a tag < 0xFF, so MAX_KEY = b"\\xff" sorts after all of them.
"""

from __future__ import annotations

import functools
import struct
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from reactive.errors import ValidationError
from reactive.values import (
    INT64_MAX,
    INT64_MIN,
    UNDEFINED,
    check_field_name,
    float_order_bits,
)

__all__ = [
    "MAX_KEY",
    "MIN_KEY",
    "Interval",
    "IntervalSet",
    "decode_key",
    "encode_key",
    "encode_value_key",
    "prefix_successor",
]

MIN_KEY: Final = b""
MAX_KEY: Final = b"\xff"

_TAG_UNDEFINED: Final = 0x01
_TAG_NULL: Final = 0x02
_TAG_INT: Final = 0x03
_TAG_FLOAT: Final = 0x04
_TAG_BOOL: Final = 0x05
_TAG_STR: Final = 0x06
_TAG_BYTES: Final = 0x07
_TAG_ARRAY: Final = 0x08
_TAG_OBJECT: Final = 0x09
_END: Final = 0x00
_ESCAPE: Final = 0xFF
_INT_OFFSET: Final = 1 << 63  # adding it = flipping the sign bit of the two's complement
_FLOAT_SIGN: Final = 1 << 63
_ALL_BITS: Final = (1 << 64) - 1


# --- encoding --------------------------------------------------------------------------------


def encode_value_key(value: object) -> bytes:
    """The order-preserving key of one value; UNDEFINED (a missing field) is accepted."""
    out = bytearray()
    _append(out, value, allow_undefined=True)
    return bytes(out)


@functools.lru_cache(maxsize=4096)
def id_point(doc_id: str) -> Interval:
    """The interval of exactly one `by_id` key, as every read of a document records it:
    the same few ids are read again on every attempt of a contended mutation."""
    return Interval.point(encode_key([doc_id]))


def encode_key(values: Sequence[object]) -> bytes:
    """The key of a tuple of values: the concatenation of their encode_value_key."""
    out = bytearray()
    for value in values:
        _append(out, value, allow_undefined=True)
    return bytes(out)


def _append_escaped(out: bytearray, data: bytes) -> None:
    out += data.replace(b"\x00", b"\x00\xff")
    out.append(_END)


def _append(out: bytearray, value: Any, *, allow_undefined: bool = False) -> None:
    if value is None:
        out.append(_TAG_NULL)
    elif isinstance(value, bool):
        out += bytes((_TAG_BOOL, int(value)))
    elif isinstance(value, int):
        _append_int(out, value)
    elif isinstance(value, float):
        out.append(_TAG_FLOAT)
        out += float_order_bits(value).to_bytes(8, "big")
    elif isinstance(value, str):
        out.append(_TAG_STR)
        _append_escaped(out, _utf8(value))
    elif isinstance(value, bytes):
        out.append(_TAG_BYTES)
        _append_escaped(out, value)
    elif isinstance(value, list):
        _append_array(out, value)
    elif isinstance(value, dict):
        _append_object(out, value)
    elif value is UNDEFINED and allow_undefined:
        out.append(_TAG_UNDEFINED)
    elif value is UNDEFINED:
        raise ValidationError(
            "Cannot encode UNDEFINED inside an array or object in an index key; "
            "it only stands for a missing field"
        )
    else:
        raise ValidationError(f"Cannot encode {type(value).__name__} {value!r} in an index key")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Cannot index a string with a lone surrogate") from None


def _append_int(out: bytearray, value: int) -> None:
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValidationError(f"Integer {value} is out of the int64 range")
    out.append(_TAG_INT)
    out += (value + _INT_OFFSET).to_bytes(8, "big")


def _append_array(out: bytearray, items: list[Any]) -> None:
    out.append(_TAG_ARRAY)
    for item in items:
        _append(out, item)
    out.append(_END)


def _append_object(out: bytearray, obj: dict[Any, Any]) -> None:
    # Field names are non-empty printable ASCII, so a key never starts with the 0x00 that
    # ends the object; that is what makes the encoding decodable.
    for key in obj:
        check_field_name(key)
    out.append(_TAG_OBJECT)
    for key in sorted(obj):
        _append_escaped(out, key.encode("ascii"))
        _append(out, obj[key])
    out.append(_END)


# --- decoding --------------------------------------------------------------------------------


def decode_key(key: bytes) -> list[Any]:
    """The values of a tuple key (inverse of encode_key). ValidationError on anything that is
    not exactly what encode_key produces."""
    if not isinstance(key, bytes):
        raise ValidationError(f"An index key must be bytes, got {type(key).__name__}")
    values: list[Any] = []
    pos = 0
    while pos < len(key):
        value, pos = _read(key, pos, allow_undefined=True)
        values.append(value)
    if encode_key(values) != key:
        raise _garbage(key, "not in canonical form")
    return values


def _garbage(key: bytes, reason: str) -> ValidationError:
    shown = key.hex() if len(key) <= 64 else key[:64].hex() + "..."
    return ValidationError(f"Invalid index key {shown}: {reason}")


def _read(key: bytes, pos: int, *, allow_undefined: bool = False) -> tuple[Any, int]:
    tag, pos = key[pos], pos + 1
    if tag == _TAG_NULL:
        return None, pos
    if tag in (_TAG_INT, _TAG_FLOAT, _TAG_BOOL):
        return _read_fixed(key, tag, pos)
    if tag == _TAG_STR:
        data, pos = _read_escaped(key, pos)
        return _decode_utf8(key, data), pos
    if tag == _TAG_BYTES:
        return _read_escaped(key, pos)
    if tag == _TAG_ARRAY:
        return _read_array(key, pos)
    if tag == _TAG_OBJECT:
        return _read_object(key, pos)
    if tag == _TAG_UNDEFINED and allow_undefined:
        return UNDEFINED, pos
    raise _garbage(key, f"unexpected byte 0x{tag:02x} at offset {pos - 1}")


def _read_fixed(key: bytes, tag: int, pos: int) -> tuple[Any, int]:
    size = 1 if tag == _TAG_BOOL else 8
    if pos + size > len(key):
        raise _garbage(key, "truncated")
    number = int.from_bytes(key[pos : pos + size], "big")
    if tag == _TAG_INT:
        return number - _INT_OFFSET, pos + size
    if tag == _TAG_BOOL:
        if number > 1:
            raise _garbage(key, f"boolean byte 0x{number:02x} at offset {pos}")
        return bool(number), pos + size
    return _float_from_order_bits(number), pos + size


def _float_from_order_bits(bits: int) -> float:
    """Inverse of values.float_order_bits."""
    raw = (bits ^ _FLOAT_SIGN) if bits & _FLOAT_SIGN else (bits ^ _ALL_BITS)
    value: float = struct.unpack(">d", raw.to_bytes(8, "big"))[0]
    return value


def _read_escaped(key: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    while True:
        end = key.find(b"\x00", pos)
        if end < 0:
            raise _garbage(key, "unterminated string or bytes")
        out += key[pos:end]
        if end + 1 < len(key) and key[end + 1] == _ESCAPE:
            out.append(0)
            pos = end + 2
        else:
            return bytes(out), end + 1


def _decode_utf8(key: bytes, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _garbage(key, "string is not valid UTF-8") from None


def _read_array(key: bytes, pos: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    while _peek(key, pos) != _END:
        item, pos = _read(key, pos)
        items.append(item)
    return items, pos + 1


def _read_object(key: bytes, pos: int) -> tuple[dict[str, Any], int]:
    obj: dict[str, Any] = {}
    while _peek(key, pos) != _END:
        name, pos = _read_escaped(key, pos)
        if pos >= len(key):
            raise _garbage(key, "truncated object")
        obj[_decode_utf8(key, name)], pos = _read(key, pos)
    return obj, pos + 1


def _peek(key: bytes, pos: int) -> int:
    if pos >= len(key):
        raise _garbage(key, "truncated array or object")
    return key[pos]


# --- intervals -------------------------------------------------------------------------------


def prefix_successor(prefix: bytes) -> bytes:
    """The smallest byte string greater than every string that starts with `prefix`.

    MAX_KEY when there is none (empty or all-0xFF prefix): no key reaches 0xFF.
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return MAX_KEY
    return stripped[:-1] + bytes((stripped[-1] + 1,))


@dataclass(frozen=True, slots=True)
class Interval:
    """The keys k with start <= k < end (as bytes). `end == MAX_KEY` means unbounded, since
    MAX_KEY is greater than every encoded key."""

    start: bytes
    end: bytes

    def __post_init__(self) -> None:
        if not (isinstance(self.start, bytes) and isinstance(self.end, bytes)):
            raise TypeError(
                f"Interval bounds must be bytes, got {type(self.start).__name__} "
                f"and {type(self.end).__name__}"
            )

    @classmethod
    def all(cls) -> Interval:
        return cls(MIN_KEY, MAX_KEY)

    @classmethod
    def prefix(cls, prefix: bytes) -> Interval:
        """Every key that starts with `prefix` (e.g. the key of a tuple prefix)."""
        return cls(prefix, prefix_successor(prefix))

    @classmethod
    def point(cls, key: bytes) -> Interval:
        """Exactly `key`: no byte string lies strictly between key and key + 0x00."""
        return cls(key, key + b"\x00")

    @property
    def is_empty(self) -> bool:
        return self.start >= self.end

    def contains(self, key: bytes) -> bool:
        return self.start <= key < self.end

    def overlaps(self, other: Interval) -> bool:
        return max(self.start, other.start) < min(self.end, other.end)

    def intersection(self, other: Interval) -> Interval:
        """The common part; an empty interval (is_empty) when they do not overlap."""
        return Interval(max(self.start, other.start), min(self.end, other.end))

    def __repr__(self) -> str:
        return f"Interval({self.start.hex() or '-'}..{self.end.hex()})"


class IntervalSet:
    """A union of intervals kept as sorted, disjoint, non-touching [start, end) ranges.

    Two parallel sorted lists of starts and ends make lookups O(log n) with bisect.
    """

    __slots__ = ("_ends", "_starts")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        self._starts: list[bytes] = []
        self._ends: list[bytes] = []
        for interval in intervals:
            self.add(interval)

    def add(self, interval: Interval) -> None:
        """Add `interval`, merging it with every interval it overlaps or touches."""
        if interval.is_empty:
            return
        first = bisect_left(self._ends, interval.start)  # first range ending at/after start
        stop = bisect_right(self._starts, interval.end)  # ranges starting at/before end
        start, end = interval.start, interval.end
        if first < stop:
            start = min(start, self._starts[first])
            end = max(end, self._ends[stop - 1])
        self._starts[first:stop] = [start]
        self._ends[first:stop] = [end]

    def contains(self, key: bytes) -> bool:
        i = bisect_right(self._starts, key) - 1
        return i >= 0 and key < self._ends[i]

    def overlaps(self, interval: Interval) -> bool:
        if interval.is_empty:
            return False
        i = bisect_right(self._ends, interval.start)  # first range ending after start
        return i < len(self._starts) and self._starts[i] < interval.end

    @property
    def intervals(self) -> tuple[Interval, ...]:
        return tuple(self)

    def union(self, other: IntervalSet) -> IntervalSet:
        result = self.copy()
        for interval in other:
            result.add(interval)
        return result

    def copy(self) -> IntervalSet:
        result = IntervalSet()
        result._starts = self._starts.copy()
        result._ends = self._ends.copy()
        return result

    def __iter__(self) -> Iterator[Interval]:
        return map(Interval, self._starts, self._ends)

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IntervalSet):
            return NotImplemented
        return self._starts == other._starts and self._ends == other._ends

    def __repr__(self) -> str:
        return f"IntervalSet({list(self)!r})"
