"""Document ids: strings that encode their table number, checked by a checksum.

Bytes: varint(table_number) ‖ 16 random bytes ‖ Fletcher-16 checksum of the preceding bytes.
  varint   unsigned LEB128 (7 bits per byte, least significant group first, high bit = more),
           minimal length, table_number in [0, 2**32), so 1..5 bytes.
  checksum sum1 = Σ byte mod 255, sum2 = Σ sum1 mod 255, stored as 2 bytes: sum2, sum1.
Text: lowercase base32, alphabet `0123456789abcdefghjkmnpqrstvwxyz`, no padding, most
significant bit first; the final character's unused low bits are zero. So 19..23 bytes give
31, 32, 34, 36 or 37 characters. Invariant: every id has exactly one accepted spelling.
"""

from __future__ import annotations

import functools
import secrets
from typing import Final

from reactive.errors import InvalidIdError, ValidationError

__all__ = [
    "ID_ALPHABET",
    "MAX_TABLE_NUMBER",
    "RANDOM_BYTES",
    "check_id_for_table",
    "decode_id",
    "encode_id",
    "fletcher16",
    "is_id",
    "new_id",
    "table_number_of",
]

ID_ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"
RANDOM_BYTES: Final = 16
MAX_TABLE_NUMBER: Final = (1 << 32) - 1
_CHECKSUM_BYTES: Final = 2
_MAX_VARINT_BYTES: Final = 5
_ALPHABET_CHARS: Final = frozenset(ID_ALPHABET)
#: Our alphabet's characters as the digits `int(text, 32)` reads (0-9 then a-v).
_TO_BASE32_DIGITS: Final = str.maketrans(ID_ALPHABET, "0123456789abcdefghijklmnopqrstuv")
#: Ids decoded lately: a transaction decodes the same few ids on every read, patch and
#: validation, and an OCC retry does it all again (~7 decodes per attempt of a transfer).
_DECODED_CACHE_SIZE: Final = 4096
_MAX_SHOWN: Final = 60


def fletcher16(data: bytes) -> int:
    """Fletcher-16 of `data`: (sum2 << 8) | sum1, both sums modulo 255."""
    sum1 = sum2 = 0
    for byte in data:
        sum1 = (sum1 + byte) % 255
        sum2 = (sum2 + sum1) % 255
    return (sum2 << 8) | sum1


def _varint(number: int) -> bytes:
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _base32(data: bytes) -> str:
    n_chars = (len(data) * 8 + 4) // 5
    number = int.from_bytes(data, "big") << (n_chars * 5 - len(data) * 8)
    chars = [ID_ALPHABET[(number >> (5 * i)) & 31] for i in range(n_chars)]
    return "".join(reversed(chars))


def encode_id(table_number: int, random_bytes: bytes) -> str:
    """The id string of `random_bytes` (16 bytes) in table `table_number`."""
    if isinstance(table_number, bool) or not isinstance(table_number, int):
        raise ValidationError(f"A table number must be an int, got {table_number!r}")
    if not 0 <= table_number <= MAX_TABLE_NUMBER:
        raise ValidationError(f"Table number {table_number} is outside [0, 2**32)")
    if not isinstance(random_bytes, bytes) or len(random_bytes) != RANDOM_BYTES:
        raise ValidationError(f"An id needs exactly {RANDOM_BYTES} random bytes")
    body = _varint(table_number) + random_bytes
    return _base32(body + fletcher16(body).to_bytes(_CHECKSUM_BYTES, "big"))


def new_id(table_number: int) -> str:
    """A fresh random id for a document of table `table_number`."""
    return encode_id(table_number, secrets.token_bytes(RANDOM_BYTES))


def _invalid(text: str, reason: str) -> InvalidIdError:
    shown = text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."
    return InvalidIdError(f'Invalid id: "{shown}": {reason}')


def _unbase32(text: str) -> bytes:
    n_bytes = len(text) * 5 // 8
    if not 19 <= n_bytes <= 23 or (n_bytes * 8 + 4) // 5 != len(text):
        raise _invalid(text, f"wrong length {len(text)}")
    if not _ALPHABET_CHARS.issuperset(text):
        bad = next(char for char in text if char not in _ALPHABET_CHARS)
        raise _invalid(text, f"bad character {bad!r}")
    number = int(text.translate(_TO_BASE32_DIGITS), 32)
    spare_bits = len(text) * 5 - n_bytes * 8
    if number & ((1 << spare_bits) - 1):
        raise _invalid(text, "non-zero padding bits")
    return (number >> spare_bits).to_bytes(n_bytes, "big")


def _read_varint(text: str, data: bytes) -> tuple[int, int]:
    """(table_number, bytes used); rejects overflow and non-minimal encodings."""
    number = 0
    for i, byte in enumerate(data[:_MAX_VARINT_BYTES]):
        number |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if number > MAX_TABLE_NUMBER:
                raise _invalid(text, "table number overflows 32 bits")
            if i > 0 and byte == 0:
                raise _invalid(text, "non-minimal table number")
            return number, i + 1
    raise _invalid(text, "table number overflows 32 bits")


def decode_id(s: object) -> tuple[int, bytes]:
    """(table_number, 16 random bytes) of an id string; InvalidIdError says what is wrong."""
    if not isinstance(s, str):
        raise InvalidIdError(f"Invalid id: expected a string, got {type(s).__name__}")
    return _decode_text(s)


@functools.lru_cache(maxsize=_DECODED_CACHE_SIZE)
def _decode_text(s: str) -> tuple[int, bytes]:
    """decode_id of a string; bounded cache (an invalid id raises and is not kept)."""
    data = _unbase32(s)
    body, checksum = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
    if fletcher16(body) != int.from_bytes(checksum, "big"):
        raise _invalid(s, "checksum mismatch")
    table_number, used = _read_varint(s, body)
    if len(body) - used != RANDOM_BYTES:
        raise _invalid(s, f"wrong length {len(s)} for table number {table_number}")
    return table_number, body[used:]


def table_number_of(s: str) -> int:
    """The table number encoded in id `s` (InvalidIdError if `s` is not an id)."""
    return decode_id(s)[0]


def is_id(s: object) -> bool:
    """Whether `s` is a well-formed id string of any table. Never raises."""
    try:
        decode_id(s)
    except InvalidIdError:
        return False
    return True


def check_id_for_table(s: str, table_number: int, table_name: str) -> None:
    """InvalidIdError unless `s` is a valid id of table `table_name` (number `table_number`)."""
    if table_number_of(s) != table_number:
        raise InvalidIdError(
            f'Id "{s}" belongs to a different table, expected an id of table "{table_name}"'
        )
