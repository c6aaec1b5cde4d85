"""Every error reactive raises, each with a stable code; transports map codes to statuses.

`short_msg` is a stable CamelCase tag for tests, metrics and clients; `msg` is prose for people.
Subclasses also inherit the builtin they behave like, so `except ValueError` still works.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from reactive import knobs

__all__ = [
    "AppError",
    "CommitNotApplied",
    "ConflictError",
    "DatabaseUnavailableError",
    "ErrorCode",
    "InvalidCursorError",
    "InvalidIdError",
    "LimitError",
    "NotFoundError",
    "PersistenceError",
    "QueryError",
    "ReactiveError",
    "SchemaError",
    "ValidationError",
    "excerpt",
]


class ErrorCode(StrEnum):
    """Families of failure; the HTTP layer maps each to one status code."""

    BAD_REQUEST = "BadRequest"  # 400: the caller sent something invalid
    UNAUTHENTICATED = "Unauthenticated"  # 401
    FORBIDDEN = "Forbidden"  # 403
    NOT_FOUND = "NotFound"  # 404
    CONFLICT = "OptimisticConcurrencyControlFailure"  # 409 after retries ran out
    OVERLOADED = "Overloaded"  # 503
    INTERNAL = "InternalServerError"  # 500
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"  # 413: a body or file over its limit
    METHOD_NOT_ALLOWED = "MethodNotAllowed"  # 405: the route exists, not for this method
    UNAVAILABLE = "Unavailable"  # 503: a feature this server lacks, or its database is down


class ReactiveError(Exception):
    """Base of reactive's errors: a code, a stable short tag and a readable message."""

    code: ErrorCode = ErrorCode.INTERNAL
    short_msg: str = "InternalError"

    def __init__(self, msg: str, *, short_msg: str | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        if short_msg is not None:
            self.short_msg = short_msg

    def __str__(self) -> str:
        return self.msg

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.short_msg}: {self.msg!r})"


class ValidationError(ReactiveError, ValueError):
    """A value, argument or document does not satisfy a validator or a limit."""

    code = ErrorCode.BAD_REQUEST
    short_msg = "ValidationError"


class InvalidIdError(ReactiveError, ValueError):
    """A string is not a document id, or is an id of another table."""

    code = ErrorCode.BAD_REQUEST
    short_msg = "InvalidId"


class InvalidCursorError(ReactiveError, ValueError):
    """A pagination cursor was not produced by this server for this query."""

    code = ErrorCode.BAD_REQUEST
    short_msg = "InvalidCursor"


class QueryError(ReactiveError, ValueError):
    """A query is malformed: unknown index, range out of index order, unique() with many."""

    code = ErrorCode.BAD_REQUEST
    short_msg = "InvalidQuery"


class LimitError(ReactiveError, ValueError):
    """A function went over one of Convex's limits (reads, writes, time): the message names
    the limit and what to do. Its transaction commits nothing."""

    code = ErrorCode.BAD_REQUEST
    short_msg = "LimitExceeded"


class SchemaError(ReactiveError, ValueError):
    """A schema definition is invalid, or existing data violates it."""

    code = ErrorCode.BAD_REQUEST
    short_msg = "SchemaValidationError"


class NotFoundError(ReactiveError, LookupError):
    """A document, table or function does not exist."""

    code = ErrorCode.NOT_FOUND
    short_msg = "NotFound"


class PersistenceError(ReactiveError, RuntimeError):
    """The database could not be read or written."""

    code = ErrorCode.INTERNAL
    short_msg = "PersistenceError"


class DatabaseUnavailableError(PersistenceError):
    """The database cannot be reached (connection refused or lost, server shutting down).

    Transient: the same call can succeed once the database is back, so it is a 503 and never
    redacted into a bare "Server Error". When the connection died during a commit, the commit
    may or may not have landed; clients on the sync protocol resend with the same request id,
    which the mutation record makes exactly-once.
    """

    code = ErrorCode.UNAVAILABLE
    short_msg = "DatabaseUnavailable"


class ConflictError(ReactiveError):
    """A transaction read data that a concurrent commit changed (optimistic concurrency).

    Carries the table and index whose read conflicted and the ts of the conflicting commit.
    """

    code = ErrorCode.CONFLICT
    short_msg = "OptimisticConcurrencyControlFailure"

    def __init__(
        self,
        msg: str,
        *,
        table: str | None = None,
        index: str | None = None,
        conflicting_ts: int | None = None,
    ) -> None:
        super().__init__(msg)
        self.table = table
        self.index = index
        self.conflicting_ts = conflicting_ts


class CommitNotApplied(ConflictError):
    """A commit's write failed and it is known not to have landed: safe to run again, and
    retried like a conflict."""

    short_msg = "CommitNotApplied"


class AppError(Exception):
    """Raised by application code; `data` reaches the client as ConvexError data, never redacted."""

    def __init__(self, data: Any = None, message: str | None = None) -> None:
        self.data = data
        if message is None:
            message = data if isinstance(data, str) else _as_json(data)
        super().__init__(message)


def _as_json(data: Any) -> str:
    """How JavaScript's JSON.stringify would show the data (what Convex users see)."""
    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=False, default=repr)
    except ValueError:
        return repr(data)


def excerpt(value: object, limit: int | None = None) -> str:
    """`repr(value)` cut to `limit` characters (default knobs.ERROR_ECHO_CHARS), saying how
    long it was: how an error quotes a client's input without echoing megabytes back."""
    limit = knobs.ERROR_ECHO_CHARS if limit is None else limit
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"
