from __future__ import annotations

import base64

import pytest

from reactive.cursors import Cursor, CursorCodec
from reactive.errors import InvalidCursorError

codec = CursorCodec(b"k" * 32)


def test_round_trip_key_and_end():
    for cursor in (Cursor(b"\x06abc\x00"), Cursor(None)):
        text = codec.encode(cursor, "t.by_x", "asc")
        assert codec.decode(text, "t.by_x", "asc") == cursor


def test_cursor_of_another_query_is_rejected():
    text = codec.encode(Cursor(b"\x06a\x00"), "t.by_x", "asc")
    with pytest.raises(InvalidCursorError, match="InvalidCursor"):
        codec.decode(text, "t.by_y", "asc")
    with pytest.raises(InvalidCursorError):
        codec.decode(text, "t.by_x", "desc")


def test_cursor_of_another_server_is_rejected():
    text = CursorCodec(b"z" * 32).encode(Cursor(b"\x06a\x00"), "t.by_x", "asc")
    with pytest.raises(InvalidCursorError):
        codec.decode(text, "t.by_x", "asc")


def test_tampered_cursor_is_rejected():
    raw = bytearray(base64.urlsafe_b64decode(codec.encode(Cursor(b"\x06a\x00"), "i", "asc") + "=="))
    raw[3] ^= 1
    text = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(InvalidCursorError):
        codec.decode(text, "i", "asc")


@pytest.mark.parametrize("garbage", ["", "!!!", "abc", 5, None, "AAAA"])
def test_garbage_is_rejected(garbage):
    with pytest.raises(InvalidCursorError, match="InvalidCursor"):
        codec.decode(garbage, "i", "asc")
