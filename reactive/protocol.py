"""The Convex sync protocol's messages: typed shapes, constructors, checks of client frames.

docs/PROTOCOL.md section 5 describes the protocol.

Every message is a plain dict typed as a `TypedDict` whose "type" key is a `Literal` tag, so
mypy checks the fields while the hot path keeps building plain dicts that orjson encodes
directly: the constructors return exactly the literal they replace, with no copies.

Client -> server: Connect, ModifyQuerySet (of Add / Remove), Mutation, Action, Authenticate,
Event. Server -> client: Transition (of QueryUpdated / QueryFailed / QueryRemoved),
TransitionChunk, MutationResponse, ActionResponse, AuthError, FatalError, Ping.

`parse_client_message` is the server's only way in: it checks the structure of every field the
server reads and raises ProtocolError (answered with FatalError) for anything malformed.
Unknown extra fields are tolerated. The function arguments are checked later, by the function:
bad ones fail the call, not the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, Final, Literal, NotRequired, TypeAlias, TypedDict, TypeGuard

import orjson

from reactive import knobs
from reactive.errors import ErrorCode, ReactiveError, ValidationError, excerpt
from reactive.types import JsonValue
from reactive.values import decode_ts, encode_ts

__all__ = [
    "NO_ERROR_DATA",
    "Action",
    "ActionResponse",
    "Add",
    "AuthError",
    "Authenticate",
    "ClientMessage",
    "Connect",
    "EncodedValue",
    "ErrorData",
    "Event",
    "FatalError",
    "ModifyQuerySet",
    "Mutation",
    "MutationResponse",
    "Ping",
    "ProtocolError",
    "QueryFailed",
    "QueryRemoved",
    "QuerySetModification",
    "QueryUpdated",
    "Remove",
    "ServerMessage",
    "StateModification",
    "StateVersion",
    "Transition",
    "TransitionChunk",
    "action_failed",
    "action_request",
    "action_succeeded",
    "add_query",
    "auth_error",
    "authenticate",
    "connect_message",
    "fatal_error",
    "is_u32",
    "modify_query_set",
    "mutation_failed",
    "mutation_request",
    "mutation_succeeded",
    "parse_client_message",
    "ping",
    "query_failed",
    "query_removed",
    "query_updated",
    "remove_query",
    "state_version",
    "transition",
    "validate_client_message",
]


class ProtocolError(ReactiveError):
    """A hopeless protocol violation: answered with FatalError, then the socket closes."""

    code = ErrorCode.BAD_REQUEST
    short_msg = "ProtocolError"


#: A convex-encoded value (docs/PROTOCOL.md section 2). The server may put an `orjson.Fragment`
#: (bytes encoded once and shared by every subscriber) where a received message holds JSON.
EncodedValue: TypeAlias = "JsonValue | orjson.Fragment"


class _NoErrorData(Enum):
    NO_ERROR_DATA = "NO_ERROR_DATA"


#: Passed as `error_data` when a failure is not a ConvexError: the message then has no
#: "errorData" key at all (its presence, even as null, makes the clients raise ConvexError).
NO_ERROR_DATA: Final = _NoErrorData.NO_ERROR_DATA
ErrorData: TypeAlias = "JsonValue | Literal[_NoErrorData.NO_ERROR_DATA]"


# -- shared structures ------------------------------------------------------------------------


class StateVersion(TypedDict):
    """Where a socket's state stands: query set and identity versions, snapshot ts (encoded)."""

    querySet: int
    identity: int
    ts: str


# -- client -> server -------------------------------------------------------------------------


class Connect(TypedDict):
    type: Literal["Connect"]
    sessionId: str
    connectionCount: NotRequired[int]
    lastCloseReason: NotRequired[str | None]
    clientTs: NotRequired[float]
    maxObservedTimestamp: NotRequired[str | None]


class Add(TypedDict):
    type: Literal["Add"]
    queryId: int
    udfPath: str
    #: A one-element array holding the args object (checked when the query runs).
    args: JsonValue
    journal: NotRequired[str | None]


class Remove(TypedDict):
    type: Literal["Remove"]
    queryId: int


QuerySetModification: TypeAlias = Add | Remove


class ModifyQuerySet(TypedDict):
    type: Literal["ModifyQuerySet"]
    baseVersion: int
    newVersion: int
    modifications: list[QuerySetModification]


class Mutation(TypedDict):
    type: Literal["Mutation"]
    requestId: int
    udfPath: str
    #: A one-element array holding the args object (checked when the function runs).
    args: JsonValue


class Action(TypedDict):
    type: Literal["Action"]
    requestId: int
    udfPath: str
    args: JsonValue


class Authenticate(TypedDict):
    type: Literal["Authenticate"]
    baseVersion: int
    tokenType: Literal["User", "Admin", "None"]
    #: The JWT ("User", always there) or admin key ("Admin"); absent or null for "None".
    value: NotRequired[str | None]
    impersonating: NotRequired[JsonValue]


class Event(TypedDict):
    """Client telemetry: tolerated, only logged."""

    type: Literal["Event"]
    eventType: NotRequired[str]
    event: NotRequired[JsonValue]


ClientMessage: TypeAlias = Connect | ModifyQuerySet | Mutation | Action | Authenticate | Event


# -- server -> client -------------------------------------------------------------------------


class QueryUpdated(TypedDict):
    type: Literal["QueryUpdated"]
    queryId: int
    value: EncodedValue
    logLines: list[str]
    journal: str | None


class QueryFailed(TypedDict):
    type: Literal["QueryFailed"]
    queryId: int
    errorMessage: str
    logLines: list[str]
    journal: str | None
    #: Only for a ConvexError (AppError) failure.
    errorData: NotRequired[JsonValue]


class QueryRemoved(TypedDict):
    type: Literal["QueryRemoved"]
    queryId: int


StateModification: TypeAlias = QueryUpdated | QueryFailed | QueryRemoved


class Transition(TypedDict):
    type: Literal["Transition"]
    startVersion: StateVersion
    endVersion: StateVersion
    modifications: list[StateModification]
    clientClockSkew: NotRequired[float]
    serverTs: NotRequired[int]


class TransitionChunk(TypedDict):
    """A slice of a large Transition's JSON (sent by upstream only; understood by the client)."""

    type: Literal["TransitionChunk"]
    chunk: str
    partNumber: int
    totalParts: int
    transitionId: str


class MutationResponse(TypedDict):
    type: Literal["MutationResponse"]
    requestId: int
    success: bool
    #: The encoded return value, or the error message on failure.
    result: JsonValue
    #: The commit ts (encoded) on success, null on failure.
    ts: str | None
    logLines: list[str]
    errorData: NotRequired[JsonValue]


class ActionResponse(TypedDict):
    type: Literal["ActionResponse"]
    requestId: int
    success: bool
    result: JsonValue
    logLines: list[str]
    errorData: NotRequired[JsonValue]


class AuthError(TypedDict):
    type: Literal["AuthError"]
    error: str
    baseVersion: int
    authUpdateAttempted: bool


class FatalError(TypedDict):
    type: Literal["FatalError"]
    error: str


class Ping(TypedDict):
    type: Literal["Ping"]


ServerMessage: TypeAlias = (
    Transition | TransitionChunk | MutationResponse | ActionResponse | AuthError | FatalError | Ping
)


# -- constructors: client messages ------------------------------------------------------------


def connect_message(
    session_id: str,
    connection_count: int,
    last_close_reason: str | None,
    client_ts: int,
    max_observed_ts: int | None = None,
) -> Connect:
    message: Connect = {
        "type": "Connect",
        "sessionId": session_id,
        "connectionCount": connection_count,
        "lastCloseReason": last_close_reason,
        "clientTs": client_ts,
    }
    if max_observed_ts is not None:
        message["maxObservedTimestamp"] = encode_ts(max_observed_ts)
    return message


def add_query(query_id: int, udf_path: str, args: JsonValue, journal: str | None) -> Add:
    """Subscribe `udf_path` with (encoded) `args` as query `query_id`."""
    return {
        "type": "Add",
        "queryId": query_id,
        "udfPath": udf_path,
        "args": [args],
        "journal": journal,
    }


def remove_query(query_id: int) -> Remove:
    return {"type": "Remove", "queryId": query_id}


def modify_query_set(
    base_version: int, new_version: int, modifications: list[QuerySetModification]
) -> ModifyQuerySet:
    return {
        "type": "ModifyQuerySet",
        "baseVersion": base_version,
        "newVersion": new_version,
        "modifications": modifications,
    }


def mutation_request(request_id: int, udf_path: str, args: JsonValue) -> Mutation:
    """Run `udf_path` with (encoded) `args`; the wire wraps them in a one-element array."""
    return {"type": "Mutation", "requestId": request_id, "udfPath": udf_path, "args": [args]}


def action_request(request_id: int, udf_path: str, args: JsonValue) -> Action:
    return {"type": "Action", "requestId": request_id, "udfPath": udf_path, "args": [args]}


def authenticate(base_version: int, token: str | None) -> Authenticate:
    """Authenticate with a user JWT, or log out when `token` is None."""
    if token is None:
        return {"type": "Authenticate", "baseVersion": base_version, "tokenType": "None"}
    return {
        "type": "Authenticate",
        "baseVersion": base_version,
        "tokenType": "User",
        "value": token,
    }


# -- constructors: server messages ------------------------------------------------------------


def state_version(query_set: int, identity: int, ts: int) -> StateVersion:
    return {"querySet": query_set, "identity": identity, "ts": encode_ts(ts)}


def transition(
    start: StateVersion, end: StateVersion, modifications: list[StateModification]
) -> Transition:
    return {
        "type": "Transition",
        "startVersion": start,
        "endVersion": end,
        "modifications": modifications,
    }


def query_updated(
    query_id: int, value: EncodedValue, log_lines: list[str], journal: str | None
) -> QueryUpdated:
    return {
        "type": "QueryUpdated",
        "queryId": query_id,
        "value": value,
        "logLines": log_lines,
        "journal": journal,
    }


def _attach_error_data(
    message: QueryFailed | MutationResponse | ActionResponse, error_data: ErrorData
) -> None:
    """`errorData` is sent only when the failure carries data (a ConvexError); an explicit
    null is data too."""
    if error_data is not NO_ERROR_DATA:
        message["errorData"] = error_data


def query_failed(
    query_id: int,
    error_message: str,
    log_lines: list[str],
    journal: str | None,
    error_data: ErrorData = NO_ERROR_DATA,
) -> QueryFailed:
    message: QueryFailed = {
        "type": "QueryFailed",
        "queryId": query_id,
        "errorMessage": error_message,
        "logLines": log_lines,
        "journal": journal,
    }
    _attach_error_data(message, error_data)
    return message


def query_removed(query_id: int) -> QueryRemoved:
    return {"type": "QueryRemoved", "queryId": query_id}


def mutation_succeeded(
    request_id: int, result: JsonValue, ts: int, log_lines: list[str]
) -> MutationResponse:
    """A committed mutation: `result` is its encoded value, `ts` its commit timestamp."""
    return {
        "type": "MutationResponse",
        "requestId": request_id,
        "success": True,
        "result": result,
        "ts": encode_ts(ts),
        "logLines": log_lines,
    }


def mutation_failed(
    request_id: int,
    error_message: str,
    log_lines: list[str],
    error_data: ErrorData = NO_ERROR_DATA,
) -> MutationResponse:
    message: MutationResponse = {
        "type": "MutationResponse",
        "requestId": request_id,
        "success": False,
        "result": error_message,
        "ts": None,
        "logLines": log_lines,
    }
    _attach_error_data(message, error_data)
    return message


def action_succeeded(request_id: int, result: JsonValue, log_lines: list[str]) -> ActionResponse:
    return {
        "type": "ActionResponse",
        "requestId": request_id,
        "success": True,
        "result": result,
        "logLines": log_lines,
    }


def action_failed(
    request_id: int,
    error_message: str,
    log_lines: list[str],
    error_data: ErrorData = NO_ERROR_DATA,
) -> ActionResponse:
    message: ActionResponse = {
        "type": "ActionResponse",
        "requestId": request_id,
        "success": False,
        "result": error_message,
        "logLines": log_lines,
    }
    _attach_error_data(message, error_data)
    return message


def auth_error(error: str, base_version: int, *, attempted: bool) -> AuthError:
    """The token was refused (`attempted`) or the current one expired (not `attempted`)."""
    return {
        "type": "AuthError",
        "error": error,
        "baseVersion": base_version,
        "authUpdateAttempted": attempted,
    }


def fatal_error(error: str) -> FatalError:
    return {"type": "FatalError", "error": error}


def ping() -> Ping:
    return {"type": "Ping"}


# -- validation of client frames (server side) ------------------------------------------------

#: How much of an offending value a ProtocolError message quotes.
_QUOTE_LIMIT: Final = 100


def parse_client_message(frame: str | bytes) -> ClientMessage:
    """One client frame as a checked message; ProtocolError if it is malformed."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise ProtocolError("Malformed message: not JSON") from None
    return validate_client_message(message)


def validate_client_message(message: object) -> ClientMessage:
    """`message` (decoded JSON) as a client message, checked in place (no copy)."""
    if not isinstance(message, dict):
        raise ProtocolError("Malformed message: not a JSON object")
    kind = message.get("type")
    if kind is None:
        raise ProtocolError("Malformed message: it has no type")
    if not isinstance(kind, str):
        raise ProtocolError(f"Malformed message: its type must be a string, not {_quote(kind)}")
    validate = _VALIDATORS.get(kind)
    if validate is None:
        raise ProtocolError(f"Unknown message type {_quote(kind)}")
    return validate(message)


def is_u32(value: object) -> TypeGuard[int]:
    """An unsigned 32-bit integer (query ids, request ids, versions); bool is not one."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


def _quote(value: object) -> str:
    return excerpt(value, _QUOTE_LIMIT)


def _connect(message: dict[str, Any]) -> Connect:
    session_id = message.get("sessionId")
    if not isinstance(session_id, str) or not session_id:
        raise ProtocolError("Connect needs a sessionId")
    _check_optional(message, "connectionCount", is_u32, "an integer")
    _check_optional(message, "lastCloseReason", _is_str_or_none, "a string or null")
    _check_optional(message, "clientTs", _is_number, "a number")
    observed = message.get("maxObservedTimestamp")
    if observed is not None:
        try:
            decode_ts(observed)
        except ValidationError as exc:
            raise ProtocolError(f"Connect: bad maxObservedTimestamp: {exc}") from None
    return message  # type: ignore[return-value]


def _modify_query_set(message: dict[str, Any]) -> ModifyQuerySet:
    if not is_u32(message.get("baseVersion")) or not is_u32(message.get("newVersion")):
        raise ProtocolError("ModifyQuerySet needs integer baseVersion and newVersion")
    modifications = message.get("modifications")
    if not isinstance(modifications, list):
        raise ProtocolError("ModifyQuerySet needs a modifications list")
    for modification in modifications:
        _check_query_modification(modification)
    return message  # type: ignore[return-value]


def _check_query_modification(modification: object) -> None:
    if not isinstance(modification, dict) or not is_u32(modification.get("queryId")):
        raise ProtocolError(f"Bad query modification {_quote(modification)}")
    kind = modification.get("type")
    if kind == "Add":
        _check_udf_path("Add", modification.get("udfPath"))
        _check_optional(modification, "journal", _is_str_or_none, "a string or null")
    elif kind != "Remove":
        raise ProtocolError(f"Unknown query modification type {_quote(kind)}")


def _mutation(message: dict[str, Any]) -> Mutation:
    _check_request(message)
    return message  # type: ignore[return-value]


def _action(message: dict[str, Any]) -> Action:
    _check_request(message)
    return message  # type: ignore[return-value]


def _check_request(message: dict[str, Any]) -> None:
    if not is_u32(message.get("requestId")):
        raise ProtocolError(f"{message['type']} needs an integer requestId")
    _check_udf_path(message["type"], message.get("udfPath"))


def _check_udf_path(kind: str, path: object) -> None:
    """A function path is a string of at most knobs.MAX_FUNCTION_PATH_CHARS: a longer one is
    never stored or echoed whole."""
    if not isinstance(path, str):
        raise ProtocolError(f"{kind} needs a string udfPath, not {_quote(path)}")
    if len(path) > knobs.MAX_FUNCTION_PATH_CHARS:
        raise ProtocolError(
            f"{kind}: udfPath {_quote(path)} is longer than "
            f"{knobs.MAX_FUNCTION_PATH_CHARS} characters"
        )


_TOKEN_TYPES: Final = frozenset({"User", "Admin", "None"})


def _authenticate(message: dict[str, Any]) -> Authenticate:
    if not is_u32(message.get("baseVersion")):
        raise ProtocolError("Authenticate needs an integer baseVersion")
    token_type = message.get("tokenType")
    if not isinstance(token_type, str) or token_type not in _TOKEN_TYPES:
        raise ProtocolError(f"Authenticate: unknown tokenType {_quote(token_type)}")
    _check_optional(message, "value", _is_str_or_none, "a string or null")
    if token_type == "User" and not isinstance(message.get("value"), str):
        raise ProtocolError("Authenticate: a User token needs a string value")
    return message  # type: ignore[return-value]


def _event(message: dict[str, Any]) -> Event:
    _check_optional(message, "eventType", _is_str, "a string")
    return message  # type: ignore[return-value]


def _check_optional(
    message: dict[str, Any], key: str, check: Callable[[object], bool], expected: str
) -> None:
    """A field that may be absent, but must be `expected` when present."""
    if key in message and not check(message[key]):
        raise ProtocolError(
            f"{message.get('type')}: {key} must be {expected}, not {_quote(message[key])}"
        )


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_str_or_none(value: object) -> bool:
    return value is None or isinstance(value, str)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_VALIDATORS: Final[dict[str, Callable[[dict[str, Any]], ClientMessage]]] = {
    "Connect": _connect,
    "ModifyQuerySet": _modify_query_set,
    "Mutation": _mutation,
    "Action": _action,
    "Authenticate": _authenticate,
    "Event": _event,
}
