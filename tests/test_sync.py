"""The WebSocket sync protocol (docs/PROTOCOL.md 5.3-5.8), driven frame by frame."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
import weakref
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from reactive import knobs
from reactive.http import create_app
from reactive.http_errors import CLOSE_TOO_MANY_QUERIES
from reactive.protocol import ProtocolError
from reactive.sync import SyncSession
from reactive.values import decode_ts, encode_value
from tests.seed_helpers import Peer, updates

CHAT = Path(__file__).parent / "projects" / "chat"


@pytest.fixture
def client(tmp_path):
    app = create_app(CHAT, database_url=f"sqlite:///{tmp_path}/chat.db", dev=True)
    with TestClient(app) as test_client:
        yield test_client


def test_subscribe_gets_initial_result_and_versions_chain(client):
    with client.websocket_connect("/api/1.48.0/sync") as ws:
        peer = Peer(ws)
        transition = peer.subscribe(0, "messages:list", {"channel": "a"})
        update = updates(transition)[0]
        assert update["type"] == "QueryUpdated" and update["value"] == []
        assert update["logLines"] == ["[LOG] listing a"] and update["journal"] is None
        assert transition["endVersion"]["querySet"] == 1


def test_mutation_response_then_transition_with_the_write(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        peer.subscribe(0, "messages:list", {"channel": "a"})
        response, transition = peer.mutate("messages:send", {"channel": "a", "body": "hi"})
        assert response["success"] is True and isinstance(response["result"], str)
        assert decode_ts(transition["endVersion"]["ts"]) >= decode_ts(response["ts"])
        assert [m["body"] for m in updates(transition)[0]["value"]] == ["hi"]
        assert response["logLines"] == ["[WARN] sending to a"]


def test_write_elsewhere_changes_nothing_for_this_query(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        peer.subscribe(0, "messages:list", {"channel": "a"})
        _, transition = peer.mutate("messages:send", {"channel": "b", "body": "elsewhere"})
        assert transition["modifications"] == []


def test_other_clients_see_commits(client):
    with client.websocket_connect("/api/sync") as ws1, client.websocket_connect("/api/sync") as ws2:
        watcher, writer = Peer(ws1), Peer(ws2)
        watcher.subscribe(5, "messages:list", {"channel": "a"})
        writer.mutate("messages:send", {"channel": "a", "body": "from writer"})
        transition = watcher.receive_until("Transition")
        assert [m["body"] for m in updates(transition)[5]["value"]] == ["from writer"]


def test_failed_mutation_with_app_error_carries_error_data(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        response, _ = peer.mutate("messages:send", {"channel": "a", "body": "  "})
        assert response["success"] is False and response["ts"] is None
        assert response["errorData"] == {"code": "EMPTY_BODY"}


def test_unexpected_error_has_no_error_data(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        response, _ = peer.mutate("messages:crash", {})
        assert response["success"] is False and "errorData" not in response
        assert "RuntimeError" in response["result"]


def test_bad_arguments_and_unknown_functions_are_function_errors(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        response, _ = peer.mutate("messages:send", {"channel": "a"})
        assert response["success"] is False and "body" in response["result"]
        response, _ = peer.mutate("messages:nope", {})
        assert "Could not find public function for 'messages:nope'" in response["result"]
        response, _ = peer.mutate("messages:send_internal", {"channel": "a", "body": "x"})
        assert "Could not find public function" in response["result"]
        transition = peer.subscribe(1, "messages:list", {"channel": 5.0})
        assert updates(transition)[1]["type"] == "QueryFailed"


def test_query_failure_with_data_recovers_when_data_appears(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        transition = peer.subscribe(0, "messages:first_or_fail", {"channel": "z"})
        failed = updates(transition)[0]
        assert failed["type"] == "QueryFailed" and failed["errorData"]["code"] == "EMPTY"
        _, transition = peer.mutate("messages:send", {"channel": "z", "body": "now"})
        assert updates(transition)[0]["value"] == "now"


def test_remove_query_sends_query_removed(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        peer.subscribe(0, "messages:list", {"channel": "a"})
        transition = peer.modify({"type": "Remove", "queryId": 0})
        assert transition["modifications"] == [{"type": "QueryRemoved", "queryId": 0}]


def test_path_normalisation_accepts_js_suffix(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        transition = peer.subscribe(0, "messages.js:list", {"channel": "a"})
        assert updates(transition)[0]["type"] == "QueryUpdated"


def test_action_runs_internal_functions(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        ws.send_json(
            {
                "type": "Action",
                "requestId": 0,
                "udfPath": "messages:send_via_action",
                "args": [{"channel": "c", "body": "x"}],
            }
        )
        response = peer.receive_until("ActionResponse")
        assert response["success"] is True and response["result"] == 1.0
        ws.send_json(
            {"type": "Action", "requestId": 1, "udfPath": "messages:fail_action", "args": [{}]}
        )
        response = peer.receive_until("ActionResponse")
        assert response["success"] is False and response["errorData"] == "action says no"


def test_resent_mutation_is_not_run_twice(client):
    session = str(uuid.uuid4())
    first = None
    for _ in range(2):
        with client.websocket_connect("/api/sync") as ws:
            ws.send_json(
                {
                    "type": "Connect",
                    "sessionId": session,
                    "connectionCount": 0,
                    "lastCloseReason": None,
                    "clientTs": 0,
                }
            )
            ws.send_json(
                {
                    "type": "Mutation",
                    "requestId": 3,
                    "udfPath": "messages:send",
                    "args": [{"channel": "once", "body": "x"}],
                }
            )
            response = ws.receive_json()
            assert response["type"] == "MutationResponse"
            first = first or response
            assert response["result"] == first["result"] and response["ts"] == first["ts"]
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        transition = peer.subscribe(0, "messages:count", {"channel": "once"})
        assert updates(transition)[0]["value"] == 1.0


def test_authenticate_none_bumps_identity(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        peer.subscribe(0, "messages:whoami", {})
        ws.send_json({"type": "Authenticate", "baseVersion": 0, "tokenType": "None"})
        transition = peer.receive_until("Transition")
        assert transition["endVersion"]["identity"] == 1


def test_invalid_token_gets_auth_error_and_close(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        ws.send_json(
            {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "not.a.jwt"}
        )
        error = peer.receive()
        assert error["type"] == "AuthError" and error["authUpdateAttempted"] is True
        assert error["baseVersion"] == 0


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1,2]",
        '{"type":"Bogus"}',
        '{"type":"ModifyQuerySet","baseVersion":7,"newVersion":8,"modifications":[]}',
    ],
)
def test_hopeless_frames_get_fatal_error(client, frame):
    with client.websocket_connect("/api/sync") as ws:
        Peer(ws)
        ws.send_text(frame)
        message = ws.receive_json()
        assert message["type"] == "FatalError"


def test_a_broken_socket_does_not_affect_others(client):
    with client.websocket_connect("/api/sync") as good:
        peer = Peer(good)
        with client.websocket_connect("/api/sync") as bad:
            bad.send_text("garbage")
            assert bad.receive_json()["type"] == "FatalError"
        response, _ = peer.mutate("messages:send", {"channel": "a", "body": "fine"})
        assert response["success"] is True


def test_paginated_query_keeps_its_journal(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        for i in range(3):
            peer.mutate("messages:send", {"channel": "p", "body": str(i)})
        transition = peer.subscribe(
            0,
            "messages:page",
            {"channel": "p", "paginationOpts": {"numItems": 2.0, "cursor": None}},
        )
        first = updates(transition)[0]
        assert [m["body"] for m in first["value"]["page"]] == ["0", "1"]
        assert isinstance(first["journal"], str)
        _, transition = peer.mutate("messages:send", {"channel": "p", "body": "3"})
        # page one ends where it ended: the new message belongs to a later page
        assert 0 not in updates(transition)


@pytest.fixture
def authed_client(tmp_path, monkeypatch):
    from tests.oidc_issuer import LocalIssuer

    with LocalIssuer() as issuer:
        monkeypatch.setenv("CHAT_ISSUER", issuer.url)
        app = create_app(CHAT, database_url=f"sqlite:///{tmp_path}/chat.db", dev=True)
        with TestClient(app) as test_client:
            yield test_client, issuer


def test_valid_token_changes_identity_and_reruns_queries(authed_client):
    client, issuer = authed_client
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        assert updates(peer.subscribe(0, "messages:whoami", {}))[0]["value"] is None
        ws.send_json(
            {
                "type": "Authenticate",
                "baseVersion": 0,
                "tokenType": "User",
                "value": issuer.sign(subject="alice"),
            }
        )
        transition = peer.receive_until("Transition")
        assert transition["endVersion"]["identity"] == 1
        assert updates(transition)[0]["value"] == "alice"
        response, _ = peer.mutate("messages:send", {"channel": "a", "body": "signed"})
        assert response["success"]
        ws.send_json({"type": "Authenticate", "baseVersion": 1, "tokenType": "None"})
        transition = peer.receive_until("Transition")
        assert updates(transition)[0]["value"] is None


def test_token_expiring_mid_session_gets_auth_error(authed_client):
    client, issuer = authed_client
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        ws.send_json(
            {
                "type": "Authenticate",
                "baseVersion": 0,
                "tokenType": "User",
                "value": issuer.sign(subject="bob", expires_in=1),
            }
        )
        peer.receive_until("Transition")
        error = peer.receive_until("AuthError")
        assert error["authUpdateAttempted"] is False and "expired" in error["error"].lower()


@pytest.mark.parametrize("token", ["expired", "audience", "none"])
def test_rejected_tokens_get_auth_error_with_base_version(authed_client, token):
    client, issuer = authed_client
    value = {
        "expired": lambda: issuer.sign(expires_in=-60),
        "audience": lambda: issuer.sign(audience="someone-else"),
        "none": lambda: issuer.sign_unsigned(),
    }[token]()
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        ws.send_json(
            {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": value}
        )
        error = peer.receive()
        assert error["type"] == "AuthError" and error["authUpdateAttempted"] is True


def test_idle_socket_gets_ping(client, monkeypatch):
    monkeypatch.setattr("reactive.sync.session.PING_AFTER_S", 0.2)
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        peer.modify()
        assert peer.receive()["type"] == "Ping"


def test_resubscribe_with_journal_after_reconnect_keeps_page_end(client):
    page_args = {"channel": "j", "paginationOpts": {"numItems": 2.0, "cursor": None}}
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        for i in range(3):
            peer.mutate("messages:send", {"channel": "j", "body": str(i)})
        first = updates(peer.subscribe(0, "messages:page", page_args))[0]
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        for i in range(3, 5):
            peer.mutate("messages:send", {"channel": "j", "body": str(i)})
        transition = peer.modify(
            {
                "type": "Add",
                "queryId": 0,
                "udfPath": "messages.js:page",
                "args": [encode_value(page_args)],
                "journal": first["journal"],
            }
        )
        again = updates(transition)[0]
        assert [m["body"] for m in again["value"]["page"]] == ["0", "1"]
        assert again["value"]["continueCursor"] == first["value"]["continueCursor"]


def test_authenticate_with_wrong_base_version_is_fatal(client):
    with client.websocket_connect("/api/sync") as ws:
        Peer(ws)
        ws.send_json({"type": "Authenticate", "baseVersion": 3, "tokenType": "None"})
        assert ws.receive_json()["type"] == "FatalError"


def test_oversized_frame_is_fatal(client):
    with client.websocket_connect("/api/sync") as ws:
        Peer(ws)
        ws.send_text('{"type":"Event","pad":"' + "x" * (9 << 20) + '"}')
        assert ws.receive_json()["type"] == "FatalError"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert (closed.value.code, closed.value.reason) == (1009, "MessageTooBig")


def test_event_messages_are_tolerated(client):
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        ws.send_json(
            {"type": "Event", "eventType": "NetworkRecoveryReconnect", "event": {"timeSavedMs": 5}}
        )
        assert updates(peer.subscribe(0, "messages:count", {"channel": "e"}))[0]["value"] == 0.0


# -- limits on what one socket may make the server hold ---------------------------------------


def _adds(first, count, channel="limits"):
    return [
        {"type": "Add", "queryId": i, "udfPath": "messages:count", "args": [{"channel": channel}]}
        for i in range(first, first + count)
    ]


def test_more_live_queries_than_a_socket_may_hold_is_fatal_with_a_clear_reason(client, monkeypatch):
    monkeypatch.setattr(knobs, "MAX_QUERIES_PER_SOCKET", 5)
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        peer.modify(*_adds(0, 5))  # at the limit: fine
        modify = {"type": "ModifyQuerySet", "baseVersion": 1, "newVersion": 2}
        ws.send_json({**modify, "modifications": _adds(5, 1)})
        fatal = ws.receive_json()
        assert fatal["type"] == "FatalError" and "TooManyQueries" in fatal["error"]
        assert "at most 5 live queries" in fatal["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert (closed.value.code, closed.value.reason) == CLOSE_TOO_MANY_QUERIES


def test_removed_queries_free_their_place_in_the_limit(client, monkeypatch):
    monkeypatch.setattr(knobs, "MAX_QUERIES_PER_SOCKET", 2)
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        for round_ in range(5):
            peer.modify(*_adds(2 * round_, 2))
            peer.modify(*({"type": "Remove", "queryId": i} for i in (2 * round_, 2 * round_ + 1)))


def test_query_set_bytes_are_bounded(client, monkeypatch):
    monkeypatch.setattr(knobs, "MAX_QUERY_SET_BYTES", 10_000)
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        peer.modify(*_adds(0, 1, channel="x" * 4000))
        ws.send_json(
            {
                "type": "ModifyQuerySet",
                "baseVersion": 1,
                "newVersion": 2,
                "modifications": _adds(1, 2, channel="y" * 4000),
            }
        )
        fatal = ws.receive_json()
        assert fatal["type"] == "FatalError" and "10000 bytes" in fatal["error"]


def test_a_huge_udf_path_is_fatal_and_not_echoed(client):
    with client.websocket_connect("/api/sync") as ws:
        Peer(ws)
        ws.send_json({"type": "Mutation", "requestId": 0, "udfPath": "m" * (4 << 20), "args": [{}]})
        fatal = ws.receive_json()
        assert fatal["type"] == "FatalError" and len(fatal["error"]) < 500


class _StubApp:
    """Just enough of an Application for a session that is never run against it."""

    def on_reload(self, listener):
        return lambda: None


async def _nothing(message):
    pass


@pytest.mark.parametrize("limit", ["SYNC_INBOX_MAX_MESSAGES", "SYNC_INBOX_MAX_BYTES"])
def test_an_inbox_over_its_bounds_ends_the_session_before_the_waiting_frames(monkeypatch, limit):
    monkeypatch.setattr(knobs, limit, 3 if limit == "SYNC_INBOX_MAX_MESSAGES" else 30)

    async def flood():
        session = SyncSession(_StubApp(), _nothing)
        frame = '{"type":"Event"}'  # 16 characters
        accepted = [session.receive(frame) for _ in range(5)]
        with pytest.raises(ProtocolError) as caught:
            await session.run()
        return accepted, caught.value

    accepted, error = asyncio.run(flood())
    assert accepted[:1] == [True] and accepted[-1] is False
    assert error.short_msg == "TooManyPendingMessages"
    assert "wait for responses" in str(error)


def _track_sessions(monkeypatch):
    sessions = []
    original = SyncSession.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        sessions.append(weakref.ref(self))

    monkeypatch.setattr(SyncSession, "__init__", init)
    return sessions


@pytest.mark.parametrize("ending", ["client closes", "protocol error"])
def test_a_closed_sockets_session_is_freed_without_a_garbage_collection(
    client, monkeypatch, ending
):
    sessions = _track_sessions(monkeypatch)
    gc.collect()
    gc.disable()  # only reference counting may free it, as in a server whose collector is tuned
    try:
        with client.websocket_connect("/api/sync") as ws:
            peer = Peer(ws)
            peer.modify(*_adds(0, 20))
            if ending == "protocol error":
                ws.send_text("not json")
                assert ws.receive_json()["type"] == "FatalError"
        deadline = time.monotonic() + 5
        while sessions[0]() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sessions[0]() is None, "the session outlived its socket (a reference cycle?)"
    finally:
        gc.enable()


def test_a_socket_runs_at_most_its_share_of_actions_at_once(client, monkeypatch):
    monkeypatch.setattr(knobs, "MAX_ACTIONS_PER_SOCKET", 2)
    app = client.app.state.reactive
    original = app.run_action
    running, most = 0, 0

    async def slow_action(*args, **kwargs):
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.05)
            return await original(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(app, "run_action", slow_action)
    with client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        for request_id in range(6):
            call = {"type": "Action", "requestId": request_id, "args": [{}]}
            ws.send_json({**call, "udfPath": "messages:fail_action"})
        answered = {peer.receive_until("ActionResponse")["requestId"] for _ in range(6)}
    assert answered == set(range(6)) and most == 2
