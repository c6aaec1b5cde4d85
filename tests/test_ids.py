import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactive.errors import InvalidIdError, ValidationError
from reactive.ids import (
    ID_ALPHABET,
    MAX_TABLE_NUMBER,
    check_id_for_table,
    decode_id,
    encode_id,
    fletcher16,
    is_id,
    new_id,
    table_number_of,
)

TABLE_NUMBERS = st.integers(0, MAX_TABLE_NUMBER)
RANDOM = st.binary(min_size=16, max_size=16)


def reference_text(data: bytes) -> str:
    """The documented text form, written independently: base32, MSB first, zero-padded."""
    bits = "".join(f"{byte:08b}" for byte in data)
    bits += "0" * (-len(bits) % 5)
    return "".join(ID_ALPHABET[int(bits[i : i + 5], 2)] for i in range(0, len(bits), 5))


def reference_id(body: bytes) -> str:
    """Text of `body` followed by its Fletcher-16 checksum (sum2, sum1)."""
    sum1 = sum2 = 0
    for byte in body:
        sum1 = (sum1 + byte) % 255
        sum2 = (sum2 + sum1) % 255
    return reference_text(body + bytes((sum2, sum1)))


def test_fletcher16_known_vectors() -> None:
    assert fletcher16(b"abcde") == 0xC8F0
    assert fletcher16(b"abcdef") == 0x2057
    assert fletcher16(b"abcdefgh") == 0x0627


@pytest.mark.parametrize(
    ("table_number", "varint"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (MAX_TABLE_NUMBER, b"\xff\xff\xff\xff\x0f"),
    ],
)
def test_encode_id_follows_the_documented_format(table_number: int, varint: bytes) -> None:
    random_bytes = bytes(range(16))
    text = encode_id(table_number, random_bytes)
    assert text == reference_id(varint + random_bytes)
    assert decode_id(text) == (table_number, random_bytes)


@given(TABLE_NUMBERS, RANDOM)
def test_decode_id_inverts_encode_id(table_number: int, random_bytes: bytes) -> None:
    text = encode_id(table_number, random_bytes)
    assert len(text) in (31, 32, 34, 36, 37)
    assert set(text) <= set(ID_ALPHABET)
    assert decode_id(text) == (table_number, random_bytes)
    assert table_number_of(text) == table_number


def test_new_id_is_random_and_encodes_its_table() -> None:
    ids = {new_id(10001) for _ in range(100)}
    assert len(ids) == 100
    assert all(table_number_of(i) == 10001 for i in ids)


@pytest.mark.parametrize("table_number", [-1, MAX_TABLE_NUMBER + 1, True, 1.0, "1"])
def test_new_id_rejects_bad_table_numbers(table_number: object) -> None:
    with pytest.raises(ValidationError, match=r"[Tt]able number"):
        new_id(table_number)  # type: ignore[arg-type]


def test_encode_id_needs_16_random_bytes() -> None:
    with pytest.raises(ValidationError, match="exactly 16 random bytes"):
        encode_id(1, b"short")


def test_is_id_never_raises() -> None:
    assert is_id(new_id(3))
    for bad in [None, 5, b"bytes", "", "x" * 32, new_id(3).upper(), ["list"]]:
        assert not is_id(bad)


def flip_char(text: str, index: int) -> str:
    replacement = ID_ALPHABET[(ID_ALPHABET.index(text[index]) + 1) % 32]
    return text[:index] + replacement + text[index + 1 :]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", 'Invalid id: "abc": wrong length 3'),
        ("0" * 33, "wrong length 33"),
        ("0" * 38, "wrong length 38"),
        ("i" * 31, "bad character 'i'"),
        ("A" * 31, "bad character 'A'"),
        ("\u00e9" * 32, "bad character"),
        # Characters int(text, 32) would take: a sign, separators, other scripts' digits.
        ("+" + "0" * 30, "bad character '\\+'"),
        ("0" * 15 + "_" + "0" * 15, "bad character '_'"),
        (" " + "0" * 30, "bad character ' '"),
        ("\u0663" * 31, "bad character"),
    ],
)
def test_decode_id_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(InvalidIdError, match=message):
        decode_id(text)


def test_decoded_ids_are_cached_within_a_bound() -> None:
    from reactive import ids

    ids._decode_text.cache_clear()
    made = [(n % 7, new_id(n % 7)) for n in range(ids._DECODED_CACHE_SIZE + 500)]
    for number, text in made:
        assert decode_id(text)[0] == number
    assert decode_id(made[-1][1]) == decode_id(made[-1][1])  # a hit gives the same answer
    assert ids._decode_text.cache_info().currsize == ids._DECODED_CACHE_SIZE
    for _ in range(3):  # an invalid id is refused every time, never kept
        with pytest.raises(InvalidIdError):
            decode_id("0" * 32)


def test_decode_id_rejects_a_changed_character() -> None:
    text = encode_id(5, bytes(range(16)))
    for index in range(len(text) - 1):  # the last char also holds padding bits
        with pytest.raises(InvalidIdError, match=r"checksum mismatch|table number|wrong length"):
            decode_id(flip_char(text, index))


def test_decode_id_rejects_non_zero_padding_bits() -> None:
    text = encode_id(1, bytes(16))  # 19 bytes = 152 bits in 31 chars: 3 padding bits
    assert len(text) == 31
    with pytest.raises(InvalidIdError, match="non-zero padding bits"):
        decode_id(text[:-1] + ID_ALPHABET[ID_ALPHABET.index(text[-1]) | 1])


def test_decode_id_rejects_varint_overflow() -> None:
    five_byte_overflow = b"\xff\xff\xff\xff\x1f"  # 2**33 - 1
    with pytest.raises(InvalidIdError, match="overflows 32 bits"):
        decode_id(reference_id(five_byte_overflow + bytes(16)))
    endless = b"\xff" * 6 + bytes(15)
    with pytest.raises(InvalidIdError, match="overflows 32 bits"):
        decode_id(reference_id(endless))


def test_decode_id_rejects_non_minimal_varint() -> None:
    with pytest.raises(InvalidIdError, match="non-minimal"):
        decode_id(reference_id(b"\x81\x00" + bytes(16)))


def test_decode_id_rejects_length_that_does_not_match_the_varint() -> None:
    with pytest.raises(InvalidIdError, match="wrong length 32 for table number 1"):
        decode_id(reference_id(b"\x01" + bytes(17)))


def test_decode_id_rejects_non_strings() -> None:
    with pytest.raises(InvalidIdError, match="expected a string, got bytes"):
        decode_id(b"k57abc")


def test_invalid_id_message_truncates_long_input() -> None:
    with pytest.raises(InvalidIdError) as info:
        decode_id("z" * 10_000)
    assert len(str(info.value)) < 120
    assert '..."' in str(info.value)


def test_check_id_for_table() -> None:
    text = new_id(7)
    check_id_for_table(text, 7, "messages")
    with pytest.raises(InvalidIdError, match='expected an id of table "users"') as info:
        check_id_for_table(text, 8, "users")
    assert text in str(info.value)
    with pytest.raises(InvalidIdError, match="Invalid id"):
        check_id_for_table("nope", 7, "messages")
