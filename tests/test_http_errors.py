"""The one mapping from errors to HTTP statuses, JSON error bodies and WebSocket close frames."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from reactive.auth import AuthError, AuthFailure
from reactive.errors import (
    ConflictError,
    ErrorCode,
    InvalidCursorError,
    InvalidIdError,
    NotFoundError,
    PersistenceError,
    QueryError,
    ReactiveError,
    SchemaError,
    ValidationError,
)
from reactive.http import create_app
from reactive.http_errors import (
    CLOSE_AUTH_REJECTED,
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_MANY_PENDING_MESSAGES,
    CLOSE_TOO_MANY_QUERIES,
    HTTP_STATUS,
    HttpError,
    error_response,
    http_status,
    protocol_close_frame,
    text_response,
)

CHAT = Path(__file__).parent / "projects" / "chat"


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_family_has_an_error_status(code):
    assert 400 <= HTTP_STATUS[code] <= 599


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValidationError("bad value"), 400),
        (InvalidIdError("not an id"), 400),
        (InvalidCursorError("stale cursor"), 400),
        (QueryError("no such index"), 400),
        (SchemaError("bad schema"), 400),
        (NotFoundError("no such document"), 404),
        (ConflictError("raced"), 409),
        (PersistenceError("disk gone"), 500),
        (ReactiveError("unexpected"), 500),
        (AuthError(AuthFailure.TOKEN_EXPIRED, "token expired"), 401),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_each_error_class_answers_with_its_family_status(error, status):
    assert http_status(error) == status


def test_a_file_too_large_for_storage_is_413_not_400():
    error = ValidationError("File of 9 bytes exceeds 8", short_msg="FileTooLarge")
    assert http_status(error) == 413


def test_transport_errors_are_bad_requests_unless_given_a_family():
    assert http_status(HttpError("BadArgs", "args must be an object")) == 400
    too_large = HttpError("RequestTooLarge", "too big", code=ErrorCode.PAYLOAD_TOO_LARGE)
    assert http_status(too_large) == 413
    assert http_status(HttpError("StorageUnavailable", "no", code=ErrorCode.UNAVAILABLE)) == 503


def test_error_response_body_is_short_msg_and_message():
    response = error_response(AuthError(AuthFailure.UNKNOWN_ISSUER, "issuer not configured"))
    assert response.status_code == 401
    assert response.body == b'{"code":"UnknownIssuer","message":"issuer not configured"}'
    assert response.headers["content-type"] == "application/json"


def test_text_response_carries_the_family_status():
    response = text_response(ErrorCode.METHOD_NOT_ALLOWED, "Method Not Allowed")
    assert (response.status_code, response.body) == (405, b"Method Not Allowed")


def test_close_frames_for_auth_protocol_and_internal_failures():
    assert CLOSE_AUTH_REJECTED == (1000, "AuthError")
    assert CLOSE_PROTOCOL_ERROR == (1008, "ProtocolError")
    assert CLOSE_INTERNAL_ERROR == (1011, "InternalServerError")
    assert CLOSE_NORMAL == (1000, "")


@pytest.fixture
def client(tmp_path):
    app = create_app(CHAT, database_url=f"sqlite:///{tmp_path}/chat.db", dev=False)
    with TestClient(app) as test_client:
        yield test_client


def test_a_protocol_violation_closes_the_socket_with_1008(client):
    with client.websocket_connect("/api/sync") as ws:
        ws.send_text("not json")
        assert ws.receive_json()["type"] == "FatalError"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert (closed.value.code, closed.value.reason) == CLOSE_PROTOCOL_ERROR


def test_a_refused_token_closes_the_socket_with_auth_error(client):
    with client.websocket_connect("/api/sync") as ws:
        ws.send_json(
            {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "not.a.jwt"}
        )
        assert ws.receive_json()["type"] == "AuthError"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert (closed.value.code, closed.value.reason) == CLOSE_AUTH_REJECTED


def test_a_bad_bearer_header_is_a_401_json_error(client):
    response = client.post(
        "/api/query",
        json={"path": "messages:list", "args": {}},
        headers={"Authorization": "Basic x"},
    )
    assert response.status_code == 401
    assert response.json() == {
        "code": "Unauthenticated",
        "message": "Authorization header must be 'Bearer <token>'",
    }


def test_limit_violations_close_with_a_reason_of_their_own():
    assert protocol_close_frame("MessageTooBig") == CLOSE_MESSAGE_TOO_BIG == (1009, "MessageTooBig")
    assert protocol_close_frame("TooManyPendingMessages") == CLOSE_TOO_MANY_PENDING_MESSAGES
    assert protocol_close_frame("TooManyQueries") == CLOSE_TOO_MANY_QUERIES
    assert protocol_close_frame("ProtocolError") == CLOSE_PROTOCOL_ERROR
    assert protocol_close_frame("Anything else") == CLOSE_PROTOCOL_ERROR
