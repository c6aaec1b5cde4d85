"""Pagination cursors: opaque, tamper-evident positions in one index of one query.

Layout (then urlsafe base64 without padding):
  version (1 byte = 1) | kind (1 byte: 1 = after/before a key, 2 = end of range) | key bytes |
  tag (16 bytes: HMAC-SHA256(secret, index ref | order | kind | key), truncated)
The tag binds a cursor to the server's secret and to the query's index and order, so an edited,
truncated or foreign cursor is rejected with InvalidCursorError instead of reading garbage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from reactive.errors import InvalidCursorError

__all__ = ["Cursor", "CursorCodec"]

_VERSION = 1
_KIND_KEY = 1
_KIND_END = 2
_TAG_LEN = 16


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position: `key` is the last key read (None = the end of the range was reached)."""

    key: bytes | None

    @property
    def is_end(self) -> bool:
        return self.key is None


class CursorCodec:
    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def encode(self, cursor: Cursor, index_ref: str, order: str) -> str:
        kind = _KIND_END if cursor.key is None else _KIND_KEY
        key = cursor.key or b""
        body = bytes([_VERSION, kind]) + key
        token = body + self._tag(index_ref, order, kind, key)
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")

    def decode(self, text: object, index_ref: str, order: str) -> Cursor:
        if not isinstance(text, str) or not text:
            raise InvalidCursorError(f"InvalidCursor: expected a cursor string, got {text!r}")
        raw = _b64decode(text)
        if len(raw) < 2 + _TAG_LEN or raw[0] != _VERSION or raw[1] not in (_KIND_KEY, _KIND_END):
            raise InvalidCursorError("InvalidCursor: malformed pagination cursor")
        kind, key, tag = raw[1], raw[2:-_TAG_LEN], raw[-_TAG_LEN:]
        if not hmac.compare_digest(tag, self._tag(index_ref, order, kind, key)):
            raise InvalidCursorError(
                "InvalidCursor: this cursor was not issued for this query "
                "(it was altered, or belongs to another query or server)"
            )
        return Cursor(None if kind == _KIND_END else key)

    def _tag(self, index_ref: str, order: str, kind: int, key: bytes) -> bytes:
        message = b"|".join([index_ref.encode(), order.encode(), bytes([kind]), key])
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_TAG_LEN]


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursorError("InvalidCursor: pagination cursor is not valid base64") from None
