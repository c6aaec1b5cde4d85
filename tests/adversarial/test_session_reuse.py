"""A mutation's exactly-once record belongs to the identity that ran it: another client that
sends the same session id and request id over the sync protocol, as another user or signed
out, is refused and learns nothing of the first result (here: Alice's private upload URL)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

ALICE, MALLORY = "user_alice", "user_mallory"


async def _session(url: str, session_id: str, token: str | None) -> ClientConnection:
    ws = await connect(url.replace("http", "ws", 1) + "/api/sync")
    connect_frame = {
        "type": "Connect",
        "sessionId": session_id,
        "connectionCount": 1,
        "lastCloseReason": "unknown",
        "clientTs": int(time.time() * 1000),
    }
    await ws.send(orjson.dumps(connect_frame).decode())
    if token is not None:
        auth = {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token}
        await ws.send(orjson.dumps(auth).decode())
    return ws


async def _mutation(ws: ClientConnection, request_id: int, path: str) -> dict[str, Any]:
    frame = {"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [{}]}
    await ws.send(orjson.dumps(frame).decode())
    while True:
        message = orjson.loads(await ws.recv())
        if message["type"] == "MutationResponse" and message["requestId"] == request_id:
            return message  # type: ignore[no-any-return]


async def test_another_identity_reusing_a_session_and_request_id_learns_nothing(seed_server):
    seed_server.sign_up(ALICE)
    seed_server.sign_up(MALLORY)
    session_id = str(uuid.uuid4())
    alice = await _session(seed_server.url, session_id, seed_server.token(ALICE))
    first = await _mutation(alice, 0, "files:generateUploadUrl")
    await alice.close()
    assert first["success"], first
    secret_url = first["result"]

    for token in (seed_server.token(MALLORY), None):  # another user, or signed out
        thief = await _session(seed_server.url, session_id, token)
        stolen = await _mutation(thief, 0, "files:generateUploadUrl")
        await thief.close()
        assert not stolen["success"], stolen
        assert "RequestIdReused" in stolen["result"] and secret_url not in str(stolen)


async def test_control_the_same_identity_gets_its_result_again(seed_server):
    seed_server.sign_up(ALICE)
    session_id = str(uuid.uuid4())
    alice = await _session(seed_server.url, session_id, seed_server.token(ALICE))
    first = await _mutation(alice, 0, "files:generateUploadUrl")
    await alice.close()
    again = await _session(seed_server.url, session_id, seed_server.token(ALICE))
    resent = await _mutation(again, 0, "files:generateUploadUrl")  # a reconnect's resend
    await again.close()
    assert resent["success"] and resent["result"] == first["result"]
