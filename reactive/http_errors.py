"""How errors become HTTP statuses, JSON error bodies and WebSocket close frames: the one table.

Every ReactiveError has a family (`code`) and a stable tag (`short_msg`); the family decides the
status, the tag and the message make the body `{"code": short_msg, "message": msg}`. Errors that
only the transport knows (a bad JSON body, a missing Authorization scheme) are HttpErrors, which
pick their family per instance. WebSocket endings are the CloseFrame constants below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple

from starlette.responses import JSONResponse, PlainTextResponse

from reactive.errors import ErrorCode, ReactiveError

__all__ = [
    "CLOSE_AUTH_REJECTED",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TOO_MANY_PENDING_MESSAGES",
    "CLOSE_TOO_MANY_QUERIES",
    "HTTP_STATUS",
    "CloseFrame",
    "HttpError",
    "error_family",
    "error_response",
    "http_status",
    "protocol_close_frame",
    "text_response",
]

#: The status of each family of failure.
HTTP_STATUS: Final[Mapping[ErrorCode, int]] = MappingProxyType(
    {
        ErrorCode.BAD_REQUEST: 400,
        ErrorCode.UNAUTHENTICATED: 401,
        ErrorCode.FORBIDDEN: 403,
        ErrorCode.NOT_FOUND: 404,
        ErrorCode.METHOD_NOT_ALLOWED: 405,
        ErrorCode.CONFLICT: 409,
        ErrorCode.PAYLOAD_TOO_LARGE: 413,
        ErrorCode.INTERNAL: 500,
        ErrorCode.OVERLOADED: 503,
        ErrorCode.UNAVAILABLE: 503,
    }
)

#: Errors raised with a broader family than the transport reports: file storage raises
#: ValidationError("FileTooLarge"), which is a 413, not a 400.
_FAMILY_BY_SHORT_MSG: Final[Mapping[str, ErrorCode]] = MappingProxyType(
    {"FileTooLarge": ErrorCode.PAYLOAD_TOO_LARGE}
)


class HttpError(ReactiveError):
    """A failure the HTTP transport itself detects: a bad request unless `code` says otherwise."""

    def __init__(
        self, short_msg: str, msg: str, *, code: ErrorCode = ErrorCode.BAD_REQUEST
    ) -> None:
        super().__init__(msg, short_msg=short_msg)
        self.code = code


def error_family(error: ReactiveError) -> ErrorCode:
    """The family that decides `error`'s status."""
    return _FAMILY_BY_SHORT_MSG.get(error.short_msg, error.code)


def http_status(error: ReactiveError) -> int:
    """The HTTP status answering `error`."""
    return HTTP_STATUS[error_family(error)]


def error_response(error: ReactiveError) -> JSONResponse:
    """`{"code": short_msg, "message": msg}` with `error`'s status."""
    return JSONResponse(
        {"code": error.short_msg, "message": error.msg}, status_code=http_status(error)
    )


def text_response(code: ErrorCode, text: str) -> PlainTextResponse:
    """A plain-text error with `code`'s status, for routes whose callers expect text (HTTP
    actions, served files) rather than the API's JSON error body."""
    return PlainTextResponse(text, status_code=HTTP_STATUS[code])


class CloseFrame(NamedTuple):
    """How a sync WebSocket ends: the close code and its reason."""

    code: int
    reason: str


#: The client left or the server is shutting down.
CLOSE_NORMAL: Final = CloseFrame(1000, "")
#: The client's token was refused (the client reconnects with a fresh one).
CLOSE_AUTH_REJECTED: Final = CloseFrame(1000, "AuthError")
#: The client broke the protocol; a FatalError message precedes the close.
CLOSE_PROTOCOL_ERROR: Final = CloseFrame(1008, "ProtocolError")
#: The session failed on the server's side.
CLOSE_INTERNAL_ERROR: Final = CloseFrame(1011, "InternalServerError")
#: The client sent a message over knobs.WS_MAX_MESSAGE_BYTES (1009 is "message too big").
CLOSE_MESSAGE_TOO_BIG: Final = CloseFrame(1009, "MessageTooBig")
#: The client sent more than its inbox holds (knobs.SYNC_INBOX_MAX_MESSAGES / _BYTES).
CLOSE_TOO_MANY_PENDING_MESSAGES: Final = CloseFrame(1008, "TooManyPendingMessages")
#: The client asked for more live queries than a socket may hold (knobs.MAX_QUERIES_PER_SOCKET).
CLOSE_TOO_MANY_QUERIES: Final = CloseFrame(1008, "TooManyQueries")

#: Protocol errors that close with a reason of their own instead of CLOSE_PROTOCOL_ERROR's.
_PROTOCOL_CLOSE_FRAMES: Final[Mapping[str, CloseFrame]] = MappingProxyType(
    {
        "MessageTooBig": CLOSE_MESSAGE_TOO_BIG,
        "TooManyPendingMessages": CLOSE_TOO_MANY_PENDING_MESSAGES,
        "TooManyQueries": CLOSE_TOO_MANY_QUERIES,
    }
)


def protocol_close_frame(short_msg: str) -> CloseFrame:
    """How a socket closes after the protocol error tagged `short_msg` (its FatalError, sent
    first, carries the whole message)."""
    return _PROTOCOL_CLOSE_FRAMES.get(short_msg, CLOSE_PROTOCOL_ERROR)
