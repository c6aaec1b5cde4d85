"""The dashboard edits any document and runs any function as anyone: a web page of another
site must not reach it on `reactive dev` (no key to steal, no admin socket to open), and a
production server answers nothing of it without the admin key."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import websockets

from tests.adversarial.attacks import EVIL_ORIGIN
from tests.adversarial.conftest import CLEAN_ENV
from tests.live_server import LiveServer

KEY = "adversarial-dashboard-key"
ROUTES = [
    ("GET", "/_dashboard/"),
    ("GET", "/_dashboard/app.js"),
    ("GET", "/_dashboard/api/key"),
    ("GET", "/_dashboard/api/health"),
    ("POST", "/_dashboard/api/run"),
]


def _status(server, method: str, path: str, **headers: str) -> tuple[int, str | None]:
    body = {"path": "files:list", "args": {}} if method == "POST" else None
    response = httpx.request(method, f"{server.url}{path}", json=body, headers=headers, timeout=10)
    return response.status_code, response.headers.get("access-control-allow-origin")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": EVIL_ORIGIN}, id="origin-of-another-site"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="fetch-metadata-only"),
    ],
)
def test_a_page_of_another_site_gets_nothing_from_a_dev_dashboard(dev_server, headers):
    for method, path in ROUTES:
        status, allow_origin = _status(dev_server, method, path, **headers)
        assert (status, allow_origin) == (403, None), path


def test_a_dns_rebound_host_name_gets_no_dev_admin_key(dev_server):
    status, _ = _status(
        dev_server,
        "GET",
        "/_dashboard/api/key",
        Host=f"evil.example:{dev_server.port}",
        **{"Sec-Fetch-Site": "same-origin"},
    )
    assert status == 403


def test_an_admin_socket_needs_the_key_a_page_cannot_read(dev_server):
    """A WebSocket is not held back by CORS: the key is what keeps a page out."""
    for guess in ("", "admin", "dev"):
        assert asyncio.run(_admin_socket(dev_server, guess, origin=EVIL_ORIGIN)) == "AuthError"
    key = httpx.get(f"{dev_server.url}/_dashboard/api/key", timeout=10).json()["key"]
    assert asyncio.run(_admin_socket(dev_server, key)) == "Transition"  # control: a local tool


def test_production_answers_nothing_without_the_admin_key(tmp_path, project):
    env = {**CLEAN_ENV, "REACTIVE_ADMIN_KEY": KEY}
    with LiveServer(project, f"sqlite:///{tmp_path}/prod.db", env=env, dev=False) as server:
        for method, path in ROUTES:
            assert _status(server, method, path)[0] == 401, path
            wrong = {"Authorization": "Convex guess", "Cookie": "reactive_dashboard=guess"}
            assert _status(server, method, path, **wrong)[0] == 401, path
        assert asyncio.run(_admin_socket(server, "guess")) == "AuthError"
        assert asyncio.run(_admin_socket(server, KEY)) == "Transition"
    with LiveServer(project, f"sqlite:///{tmp_path}/nokey.db", env=CLEAN_ENV, dev=False) as bare:
        for method, path in ROUTES:
            assert _status(bare, method, path)[0] == 403, path
        assert asyncio.run(_admin_socket(bare, "")) == "AuthError"


async def _admin_socket(server, key: str, origin: str | None = None) -> str:
    """The type of the server's answer to an admin Authenticate with `key`."""
    headers = {"Origin": origin} if origin else {}
    url = server.url.replace("http", "ws") + "/api/sync"
    async with websockets.connect(url, additional_headers=headers) as ws:
        connect = {
            "type": "Connect",
            "sessionId": str(uuid.uuid4()),
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 0,
        }
        await ws.send(json.dumps(connect))
        auth = {"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin", "value": key}
        await ws.send(json.dumps(auth))
        while True:
            message = json.loads(await ws.recv())
            if message["type"] in ("AuthError", "Transition"):
                return str(message["type"])
