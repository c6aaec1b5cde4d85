"""The HTTP API (docs/PROTOCOL.md section 7), CORS, HTTP actions and bearer tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from reactive.errors import DatabaseUnavailableError
from reactive.http import create_app
from reactive.values import decode_ts, encode_ts
from tests.oidc_issuer import LocalIssuer

CHAT = Path(__file__).parent / "projects" / "chat"


@pytest.fixture(scope="module")
def issuer():
    with LocalIssuer() as local:
        yield local


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
