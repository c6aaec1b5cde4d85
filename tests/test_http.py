"""The HTTP API (docs/PROTOCOL.md section 7), CORS, HTTP actions and bearer tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from reactive import knobs
from reactive.errors import DatabaseUnavailableError, ErrorCode
from reactive.http import create_app, read_body
from reactive.http_errors import HttpError
from reactive.values import decode_ts, encode_ts

CHAT = Path(__file__).parent / "projects" / "chat"


@pytest.fixture
def client(tmp_path, issuer, monkeypatch):
    monkeypatch.setenv("CHAT_ISSUER", issuer.url)
    app = create_app(CHAT, database_url=f"sqlite:///{tmp_path}/chat.db", dev=False)
    with TestClient(app) as test_client:
        yield test_client


def call(client, kind, path, args, **extra):
    return client.post(f"/api/{kind}", json={"path": path, "args": args, **extra})


def test_mutation_and_query_with_both_arg_shapes(client):
    sent = call(
        client,
        "mutation",
        "messages:send",
        [{"channel": "a", "body": "hi"}],
        format="convex_encoded_json",
    )
    assert sent.status_code == 200 and sent.json()["status"] == "success"
    listed = call(client, "query", "messages:list", {"channel": "a"})
    body = listed.json()
    assert body["status"] == "success" and body["value"][0]["body"] == "hi"
    assert body["logLines"] == ["[LOG] listing a"]


def test_function_errors_are_200_with_status_error(client):
    failed = call(client, "mutation", "messages:send", [{"channel": "a", "body": " "}])
    body = failed.json()
    assert failed.status_code == 200 and body["status"] == "error"
    assert body["errorData"] == {"code": "EMPTY_BODY"}
    crashed = call(client, "mutation", "messages:crash", [{}]).json()
    assert "errorData" not in crashed and "secret internals" not in crashed["errorMessage"]
    missing = call(client, "query", "messages:nope", [{}]).json()
    assert "Could not find public function" in missing["errorMessage"]


def test_clean_json_format_encodes_int64_as_string(client):
    encoded = call(
        client, "action", "messages:send_via_action", [{"channel": "n", "body": "x"}], format="json"
    ).json()
    assert encoded["value"] == 1.0
    value = client.post("/api/run/messages/count", json={"args": {"channel": "n"}}).json()
    assert value == {"status": "success", "value": 1.0, "logLines": []}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "BadJsonBody"),
        (b"[1]", "BadJsonBody"),
        (b'{"args": {}}', "BadConvexFunctionIdentifier"),
        (b'{"path": "messages:list", "args": [1, 2]}', "BadArgs"),
        (b'{"path": "messages:list", "args": {"$set": []}}', "BadArgs"),
        (b'{"path": "messages:list", "args": {}, "format": "xml"}', "BadFormat"),
    ],
)
def test_protocol_errors_are_4xx_with_code_and_message(client, body, code):
    response = client.post("/api/query", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == code and response.json()["message"]


def test_query_ts_and_query_at_ts(client):
    call(client, "mutation", "messages:send", [{"channel": "t", "body": "old"}])
    ts = client.post("/api/query_ts").json()["ts"]
    call(client, "mutation", "messages:send", [{"channel": "t", "body": "new"}])
    at_ts = client.post(
        "/api/query_at_ts", json={"path": "messages:count", "args": [{"channel": "t"}], "ts": ts}
    )
    assert at_ts.json()["value"] == 1.0
    assert decode_ts(ts) > 0
    bad = client.post("/api/query_at_ts", json={"path": "messages:count", "args": {}, "ts": "nope"})
    assert bad.status_code == 400


def test_cors_preflight_admits_any_origin_without_credentials(client):
    response = client.options(
        "/api/mutation",
        headers={
            "Origin": "http://example.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,convex-client,authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


def test_bearer_token_sets_identity(client, issuer):
    token = issuer.sign(subject="user_42")
    who = client.post(
        "/api/query",
        json={"path": "messages:whoami", "args": {}},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert who["value"] == "user_42"
    anonymous = call(client, "query", "messages:whoami", {}).json()
    assert anonymous["value"] is None


@pytest.mark.parametrize("kind", ["expired", "audience", "garbage", "scheme"])
def test_bad_tokens_are_401(client, issuer, kind):
    header = {
        "expired": lambda: f"Bearer {issuer.sign(expires_in=-60)}",
        "audience": lambda: f"Bearer {issuer.sign(audience='other')}",
        "garbage": lambda: "Bearer abc.def.ghi",
        "scheme": lambda: "Basic dXNlcjpwYXNz",
    }[kind]()
    response = client.post(
        "/api/query",
        json={"path": "messages:whoami", "args": {}},
        headers={"Authorization": header},
    )
    assert response.status_code == 401 and response.json()["message"]


def test_http_action_route_runs_and_unknown_routes_404(client):
    response = client.post("/hooks/echo", json={"text": "hello"})
    assert response.status_code == 200 and isinstance(response.json()["id"], str)
    assert call(client, "query", "messages:count", {"channel": "hooks"}).json()["value"] == 1.0
    assert client.get("/hooks/echo").status_code == 405
    assert client.post("/nowhere").status_code == 404


def test_http_actions_reach_the_call_log(client):
    client.post("/hooks/echo", json={"text": "logged"})
    calls = client.app.state.reactive.calls.recent()
    http_calls = [c for c in calls if c.kind == "http"]
    assert [(c.path, c.ok) for c in http_calls] == [("POST /hooks/echo", True)]


def test_double_slash_paths_are_tolerated(client):
    response = client.post(
        "http://testserver//api/query", json={"path": "messages:count", "args": {"channel": "x"}}
    )
    assert response.json()["value"] == 0.0
    with client.websocket_connect("ws://testserver//api/1.48.0/sync") as ws:
        ws.send_json(
            {
                "type": "Connect",
                "sessionId": "s",
                "connectionCount": 0,
                "lastCloseReason": None,
                "clientTs": 0,
            }
        )
        ws.send_json(
            {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": []}
        )
        assert ws.receive_json()["type"] == "Transition"


def test_health(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert encode_ts(int(body["ts"]))
    # How far this node trails the database's newest commit: nothing, with one process.
    assert body["latest_ts"] == body["database_ts"] == body["ts"]
    assert body["lag_ms"] == 0.0


def test_health_is_503_when_the_database_does_not_answer(client, monkeypatch):
    async def unreachable() -> int:
        raise DatabaseUnavailableError("PostgreSQL max_commit_ts failed on db.internal:5432")

    monkeypatch.setattr(client.app.state.reactive.db, "database_ts", unreachable)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["code"] == "DatabaseUnavailable"
    assert "db.internal" not in response.text  # the database's address is not for the public


def test_query_at_a_future_ts_is_refused(client):
    future = encode_ts(2**62)
    response = client.post(
        "/api/query_at_ts",
        json={"path": "messages:count", "args": {"channel": "x"}, "ts": future},
    )
    assert response.status_code == 400 and response.json()["code"] == "BadTimestamp"


# -- input limits -----------------------------------------------------------------------------


def test_body_over_the_api_limit_is_refused_with_413(client, monkeypatch):
    monkeypatch.setattr(knobs, "MAX_API_BODY_BYTES", 1000)
    response = call(client, "query", "messages:count", [{"channel": "x" * 2000}])
    assert response.status_code == 413
    assert response.json()["code"] == "RequestTooLarge"
    assert "1000 bytes" in response.json()["message"]
    assert call(client, "query", "messages:count", [{"channel": "x"}]).status_code == 200


def test_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit():
    pulled = 0

    async def endless_body():
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b" " * 500, "more_body": True}

    request = Request({"type": "http", "method": "POST", "headers": []}, endless_body)
    with pytest.raises(HttpError) as caught:
        asyncio.run(read_body(request, 1000, "REACTIVE_MAX_API_BODY_BYTES"))
    assert caught.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert pulled == 3  # 1500 bytes: the third chunk passed the limit, nothing more was read


def test_declared_length_over_the_limit_is_refused_before_reading(client, monkeypatch):
    monkeypatch.setattr(knobs, "MAX_API_BODY_BYTES", 1000)
    response = client.post("/api/mutation", content=b"{}", headers={"content-length": str(10**12)})
    assert response.status_code == 413


def test_http_action_route_has_its_own_body_limit(client):
    small = client.post("/hooks/small", content=b"x" * 1024)
    assert small.status_code == 200 and small.json() == {"bytes": 1024}
    refused = client.post("/hooks/small", content=b"x" * 1025)
    assert refused.status_code == 413 and "1024 bytes" in refused.json()["message"]
    # the default limit (knobs.HTTP_ACTION_MAX_BODY_BYTES) is far larger
    assert client.post("/hooks/size", content=b"x" * 100_000).json() == {"bytes": 100_000}


def test_http_action_default_body_limit_comes_from_knobs(client, monkeypatch):
    monkeypatch.setattr(knobs, "HTTP_ACTION_MAX_BODY_BYTES", 10)
    assert client.post("/hooks/size", content=b"x" * 11).status_code == 413
    assert client.post("/hooks/size", content=b"x" * 10).json() == {"bytes": 10}


def _nested(depth: int) -> bytes:
    return b'{"path":"messages:count","args":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [20, 1000, 100_000])
def test_deeply_nested_json_body_is_a_400(client, depth):
    response = client.post("/api/query", content=_nested(depth))
    assert response.status_code == 400
    assert response.json()["code"] in ("BadJsonBody", "BadArgs")


def test_deeply_nested_json_in_an_http_action_is_a_value_error_not_a_recursion_error(client):
    response = client.post("/hooks/parse", content=b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
    assert client.post("/hooks/parse", json={"a": 1}).json() == {"type": "dict"}


def test_a_huge_function_path_is_a_clear_error_that_does_not_echo_it(client):
    path = "x" * (4 << 20)
    response = call(client, "query", path, {})
    assert response.status_code == 200
    message = response.json()["errorMessage"]
    assert "too long" in message and len(message) < 1000
    recorded = _app_of(client).calls.recent()[-1]
    assert len(recorded.path) < 1000


def test_an_unknown_format_is_not_echoed_whole(client):
    response = call(client, "query", "messages:count", {}, format="f" * 100_000)
    assert response.status_code == 400
    assert len(response.json()["message"]) < 1000


def test_query_at_a_ts_older_than_the_retained_history_is_refused(client, monkeypatch):
    call(client, "mutation", "messages:send", [{"channel": "t", "body": "old"}])
    ts = client.post("/api/query_ts").json()["ts"]
    call(client, "mutation", "messages:send", [{"channel": "t", "body": "new"}])
    body = {"path": "messages:count", "args": [{"channel": "t"}], "ts": ts}
    assert client.post("/api/query_at_ts", json=body).json()["value"] == 1.0
    monkeypatch.setattr(knobs, "RETENTION_S", 0.0)  # the history before now may be pruned
    refused = client.post("/api/query_at_ts", json=body)
    assert refused.status_code == 400
    assert refused.json()["code"] == "TimestampTooOld"
    assert "/api/query_ts" in refused.json()["message"]


def _app_of(client):
    return client.app.state.reactive
