"""The sync protocol's messages: constructors build the wire shapes, malformed client frames
are protocol errors (FatalError on the socket), never internal errors."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from reactive import knobs, protocol
from reactive.errors import ErrorCode, ReactiveError
from reactive.http import create_app
from reactive.protocol import ProtocolError, parse_client_message, validate_client_message
from reactive.values import encode_ts

CHAT = Path(__file__).parent / "projects" / "chat"
SESSION = "3f0e6b1c-8d7a-4c52-9b1e-2a9d4c7e5f10"


def encoded(message: object) -> object:
    """What the other side receives."""
    return orjson.loads(orjson.dumps(message))


# -- constructors: server messages ------------------------------------------------------------


def test_state_version_encodes_its_ts():
    assert protocol.state_version(3, 1, 1) == {"querySet": 3, "identity": 1, "ts": "AQAAAAAAAAA="}


def test_transition_chains_the_given_versions_and_modifications():
    start, end = protocol.state_version(0, 0, 0), protocol.state_version(1, 0, 5)
    removed = protocol.query_removed(2)
    message = protocol.transition(start, end, [removed])
    assert message == {
        "type": "Transition",
        "startVersion": start,
        "endVersion": end,
        "modifications": [{"type": "QueryRemoved", "queryId": 2}],
    }
    assert message["startVersion"] is start  # no copies on the hot path


def test_query_updated_always_has_value_log_lines_and_journal():
    message = protocol.query_updated(7, None, [], None)
    assert message == {
        "type": "QueryUpdated",
        "queryId": 7,
        "value": None,
        "logLines": [],
        "journal": None,
    }


def test_query_updated_takes_an_already_encoded_fragment():
    message = protocol.query_updated(7, orjson.Fragment(b'[{"a":1.5}]'), ["[LOG] hi"], "j")
    assert encoded(message) == {
        "type": "QueryUpdated",
        "queryId": 7,
        "value": [{"a": 1.5}],
        "logLines": ["[LOG] hi"],
        "journal": "j",
    }


def test_query_failed_has_error_data_only_when_given():
    plain = protocol.query_failed(8, "Uncaught Error: boom", [], None)
    assert "errorData" not in plain
    assert plain["errorMessage"] == "Uncaught Error: boom" and plain["logLines"] == []
    with_data = protocol.query_failed(9, "Uncaught ConvexError: nope", [], None, {"code": "NOPE"})
    assert with_data["errorData"] == {"code": "NOPE"}


def test_null_error_data_is_still_sent():
    # Its presence, even as null, is what makes the clients raise ConvexError.
    message = protocol.mutation_failed(1, "Uncaught ConvexError", [], None)
    assert "errorData" in encoded(message)
    assert encoded(message)["errorData"] is None


def test_mutation_succeeded_carries_the_encoded_commit_ts():
    message = protocol.mutation_succeeded(12, "k57abc", 1, ["[LOG] x"])
    assert message == {
        "type": "MutationResponse",
        "requestId": 12,
        "success": True,
        "result": "k57abc",
        "ts": "AQAAAAAAAAA=",
        "logLines": ["[LOG] x"],
    }


def test_mutation_failed_has_null_ts_and_the_message_as_result():
    message = protocol.mutation_failed(12, "Uncaught Error: bad input", [], {"field": "text"})
    assert message == {
        "type": "MutationResponse",
        "requestId": 12,
        "success": False,
        "result": "Uncaught Error: bad input",
        "ts": None,
        "logLines": [],
        "errorData": {"field": "text"},
    }


def test_action_responses_have_no_ts():
    succeeded = protocol.action_succeeded(13, {"$integer": "BQAAAAAAAAA="}, [])
    failed = protocol.action_failed(14, "Uncaught Error: x", [])
    assert succeeded == {
        "type": "ActionResponse",
        "requestId": 13,
        "success": True,
        "result": {"$integer": "BQAAAAAAAAA="},
        "logLines": [],
    }
    assert "ts" not in failed and "errorData" not in failed and failed["success"] is False


def test_auth_error_fatal_error_and_ping():
    assert protocol.auth_error("Token expired", 1, attempted=False) == {
        "type": "AuthError",
        "error": "Token expired",
        "baseVersion": 1,
        "authUpdateAttempted": False,
    }
    assert protocol.fatal_error("bad") == {"type": "FatalError", "error": "bad"}
    assert protocol.ping() == {"type": "Ping"}
    assert protocol.ping() is not protocol.ping()  # a fresh dict: nobody shares a mutable one


def test_constructed_messages_are_plain_dicts():
    messages = [
        protocol.transition(protocol.state_version(0, 0, 0), protocol.state_version(0, 0, 0), []),
        protocol.mutation_request(0, "a:b", {}),
        protocol.ping(),
    ]
    assert all(type(message) is dict for message in messages)


# -- constructors: client messages ------------------------------------------------------------


def test_first_connect_has_no_max_observed_timestamp():
    message = protocol.connect_message(SESSION, 0, "InitialConnect", 1732430000000)
    assert message == {
        "type": "Connect",
        "sessionId": SESSION,
        "connectionCount": 0,
        "lastCloseReason": "InitialConnect",
        "clientTs": 1732430000000,
    }


def test_reconnect_sends_the_encoded_max_observed_timestamp():
    message = protocol.connect_message(SESSION, 1, None, 0, max_observed_ts=2**40)
    assert message["maxObservedTimestamp"] == encode_ts(2**40)


def test_requests_wrap_args_in_a_one_element_array():
    assert protocol.mutation_request(12, "tasks:create", {"text": "hi"}) == {
        "type": "Mutation",
        "requestId": 12,
        "udfPath": "tasks:create",
        "args": [{"text": "hi"}],
    }
    assert protocol.action_request(13, "ai:summarize", {})["args"] == [{}]
    assert protocol.add_query(7, "messages:list", {"channel": "a"}, None) == {
        "type": "Add",
        "queryId": 7,
        "udfPath": "messages:list",
        "args": [{"channel": "a"}],
        "journal": None,
    }


def test_modify_query_set_and_remove():
    message = protocol.modify_query_set(3, 4, [protocol.remove_query(2)])
    assert message == {
        "type": "ModifyQuerySet",
        "baseVersion": 3,
        "newVersion": 4,
        "modifications": [{"type": "Remove", "queryId": 2}],
    }


def test_authenticate_with_a_token_or_none():
    assert protocol.authenticate(0, "jwt") == {
        "type": "Authenticate",
        "baseVersion": 0,
        "tokenType": "User",
        "value": "jwt",
    }
    assert protocol.authenticate(1, None) == {
        "type": "Authenticate",
        "baseVersion": 1,
        "tokenType": "None",
    }


def test_every_client_constructor_passes_the_servers_validation():
    messages = [
        protocol.connect_message(SESSION, 2, "ConnectionClosed", 5, max_observed_ts=9),
        protocol.modify_query_set(
            0, 1, [protocol.add_query(0, "a:b", {}, "journal"), protocol.remove_query(3)]
        ),
        protocol.mutation_request(0, "a:b", {"n": 1.0}),
        protocol.action_request(1, "a:c", {}),
        protocol.authenticate(0, "jwt"),
        protocol.authenticate(1, None),
    ]
    for message in messages:
        assert parse_client_message(orjson.dumps(message)) == message


# -- parsing client frames --------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "Connect", "sessionId": SESSION, "connectionCount": 0, "clientTs": 0},
        {"type": "Connect", "sessionId": SESSION, "lastCloseReason": None},
        {"type": "Connect", "sessionId": SESSION, "maxObservedTimestamp": None},
        {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": []},
        {"type": "Mutation", "requestId": 0, "udfPath": "a", "args": [{}]},
        {"type": "Action", "requestId": 2**32 - 1, "udfPath": "a:b", "args": [{}]},
        {"type": "Authenticate", "baseVersion": 0, "tokenType": "None"},
        {"type": "Authenticate", "baseVersion": 0, "tokenType": "None", "value": None},
        {"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin", "value": "key"},
        {"type": "Event", "eventType": "NetworkRecoveryReconnect", "event": {"timeSavedMs": 1}},
        {"type": "Event"},
    ],
)
def test_well_formed_client_messages_pass_as_they_are(frame):
    assert validate_client_message(frame) is frame


def test_unknown_extra_fields_are_tolerated():
    frame = {"type": "Mutation", "requestId": 0, "udfPath": "a:b", "args": [{}], "x": 1}
    assert validate_client_message(frame) is frame


def test_arguments_are_left_to_the_function():
    # Bad args fail the call (a function error), not the connection.
    frame = {"type": "Mutation", "requestId": 0, "udfPath": "a:b", "args": 5}
    assert validate_client_message(frame) is frame


def test_journals_may_be_absent_null_or_a_string():
    adds = [
        {"type": "Add", "queryId": 0, "udfPath": "a:b", "args": [{}]},
        {"type": "Add", "queryId": 1, "udfPath": "a:b", "args": [{}], "journal": None},
        {"type": "Add", "queryId": 2, "udfPath": "a:b", "args": [{}], "journal": "j"},
    ]
    frame = {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": adds}
    assert validate_client_message(frame) is frame


def test_protocol_error_is_a_bad_request():
    error = ProtocolError("x")
    assert isinstance(error, ReactiveError) and error.code is ErrorCode.BAD_REQUEST
    assert error.short_msg == "ProtocolError" and str(error) == "x"


def _modify(*modifications: object, base: object = 0, new: object = 1) -> dict[str, object]:
    return {
        "type": "ModifyQuerySet",
        "baseVersion": base,
        "newVersion": new,
        "modifications": list(modifications),
    }


def _mutation(**fields: object) -> dict[str, object]:
    return {"type": "Mutation", "requestId": 0, "udfPath": "a:b", "args": [{}], **fields}


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("not json", "not JSON"),
        ("[1,2]", "not a JSON object"),
        ('"Connect"', "not a JSON object"),
        ("{}", "has no type"),
        ('{"type":null}', "has no type"),
        ('{"type":[1]}', "type must be a string, not [1]"),
        ('{"type":{"a":1}}', "type must be a string, not {'a': 1}"),
        ('{"type":7}', "type must be a string"),
        ('{"type":"Bogus"}', "Unknown message type 'Bogus'"),
        ('{"type":"Transition"}', "Unknown message type 'Transition'"),
    ],
)
def test_malformed_frames_are_protocol_errors(frame, error):
    with pytest.raises(ProtocolError, match=error.replace("[", r"\[").replace("{", r"\{")):
        parse_client_message(frame)


def test_a_huge_unknown_type_is_quoted_shortened():
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(orjson.dumps({"type": "x" * 10_000}))
    assert len(str(caught.value)) < 200 and str(caught.value).endswith("... (10000 characters)")


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "Connect"}, "Connect needs a sessionId"),
        ({"type": "Connect", "sessionId": ""}, "Connect needs a sessionId"),
        ({"type": "Connect", "sessionId": 5}, "Connect needs a sessionId"),
        ({"type": "Connect", "sessionId": SESSION, "connectionCount": "0"}, "connectionCount"),
        ({"type": "Connect", "sessionId": SESSION, "clientTs": True}, "clientTs"),
        ({"type": "Connect", "sessionId": SESSION, "lastCloseReason": 3}, "lastCloseReason"),
        (
            {"type": "Connect", "sessionId": SESSION, "maxObservedTimestamp": "nope"},
            "bad maxObservedTimestamp",
        ),
        (_modify(base=None), "integer baseVersion and newVersion"),
        (_modify(new=1.0), "integer baseVersion and newVersion"),
        (_modify(base=-1), "integer baseVersion and newVersion"),
        ({**_modify(), "modifications": {}}, "needs a modifications list"),
        (_modify("Add"), "Bad query modification"),
        (_modify({"type": "Add", "queryId": "0"}), "Bad query modification"),
        (_modify({"type": "Remove", "queryId": True}), "Bad query modification"),
        (_modify({"type": ["Add"], "queryId": 0}), "Unknown query modification type"),
        (_modify({"type": "Add", "queryId": 0, "args": [{}]}), "Add needs a string udfPath"),
        (_modify({"type": "Add", "queryId": 0, "udfPath": 5}), "Add needs a string udfPath"),
        (
            _modify({"type": "Add", "queryId": 0, "udfPath": "a:b", "journal": 5}),
            "journal must be a string or null",
        ),
        (_mutation(requestId=None), "Mutation needs an integer requestId"),
        (_mutation(requestId=-1), "Mutation needs an integer requestId"),
        (_mutation(requestId=2**32), "Mutation needs an integer requestId"),
        (_mutation(requestId=False), "Mutation needs an integer requestId"),
        (_mutation(udfPath=None), "Mutation needs a string udfPath"),
        (_mutation(udfPath=["a:b"]), "Mutation needs a string udfPath"),
        ({**_mutation(), "type": "Action", "requestId": "1"}, "Action needs an integer requestId"),
        ({**_mutation(), "type": "Action", "udfPath": 1}, "Action needs a string udfPath"),
        (
            {"type": "Authenticate", "baseVersion": "0", "tokenType": "None"},
            "integer baseVersion",
        ),
        ({"type": "Authenticate", "baseVersion": 0}, "unknown tokenType None"),
        ({"type": "Authenticate", "baseVersion": 0, "tokenType": "Bearer"}, "unknown tokenType"),
        ({"type": "Authenticate", "baseVersion": 0, "tokenType": ["User"]}, "unknown tokenType"),
        ({"type": "Authenticate", "baseVersion": 0, "tokenType": "User"}, "needs a string value"),
        (
            {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": 5},
            "value must be a string or null",
        ),
        ({"type": "Event", "eventType": 5}, "eventType must be a string"),
    ],
)
def test_malformed_fields_are_protocol_errors(message, error):
    with pytest.raises(ProtocolError, match=error.replace("[", r"\[")):
        validate_client_message(message)


def test_u32_excludes_bools_floats_and_out_of_range():
    assert protocol.is_u32(0) and protocol.is_u32(2**32 - 1)
    for value in (True, 1.0, -1, 2**32, "1", None):
        assert not protocol.is_u32(value)


# -- on the socket ----------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path):
    app = create_app(CHAT, database_url=f"sqlite:///{tmp_path}/chat.db", dev=True)
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":[1]}',
        '{"type":{"a":1}}',
        "{}",
        '{"type":"Mutation","requestId":0,"udfPath":null,"args":[{}]}',
        '{"type":"Action","requestId":0,"udfPath":["x"],"args":[{}]}',
        '{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,'
        '"modifications":[{"type":"Add","queryId":0,"udfPath":5,"args":[{}]}]}',
        '{"type":"Authenticate","baseVersion":0,"tokenType":"User","value":5}',
    ],
)
def test_malformed_frames_get_fatal_error_and_a_protocol_close(client, frame):
    with client.websocket_connect("/api/sync") as ws:
        ws.send_json(protocol.connect_message(str(uuid.uuid4()), 0, "InitialConnect", 0))
        ws.send_text(frame)
        message = ws.receive_json()
        assert message["type"] == "FatalError"
        closed = ws.receive()
        assert closed == {"type": "websocket.close", "code": 1008, "reason": "ProtocolError"}


def test_nesting_deeper_than_json_allows_is_a_protocol_error_not_a_recursion_error():
    frame = '{"type":"Event","event":' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(ProtocolError, match="not JSON"):
        parse_client_message(frame)


@pytest.mark.parametrize("kind", ["Mutation", "Action"])
def test_a_udf_path_over_the_limit_is_refused_and_quoted_short(kind):
    frame = {"type": kind, "requestId": 0, "udfPath": "p" * (4 << 20), "args": [{}]}
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(orjson.dumps(frame))
    assert f"longer than {knobs.MAX_FUNCTION_PATH_CHARS} characters" in str(caught.value)
    assert len(str(caught.value)) < 300


def test_an_added_query_with_a_path_over_the_limit_is_refused():
    add = {"type": "Add", "queryId": 0, "udfPath": "q" * 10_000, "args": [{}]}
    frame = {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [add]}
    with pytest.raises(ProtocolError, match="udfPath"):
        parse_client_message(orjson.dumps(frame))


def test_args_nested_deeper_than_values_allow_fail_the_call_not_the_socket(client):
    args = "[" * 1000 + "]" * 1000
    with client.websocket_connect("/api/sync") as ws:
        ws.send_json(protocol.connect_message(str(uuid.uuid4()), 0, "InitialConnect", 0))
        ws.send_text(
            '{"type":"Mutation","requestId":0,"udfPath":"messages:send","args":' + args + "}"
        )
        response = ws.receive_json()
        assert response["type"] == "MutationResponse" and response["success"] is False
        assert "nested too deeply" in response["result"]
