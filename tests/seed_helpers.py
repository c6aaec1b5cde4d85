"""Drive the seed app (schema.py + functions/ at the repo top) through the real server.

`running_seed_app` serves it over a Starlette TestClient with Clerk pointed at a LocalIssuer and
a fresh svix webhook secret; `SeedApp` makes HTTP API calls as a Clerk user, sends signed Clerk
webhooks and runs internal functions; `Peer` is a WebSocket client that keeps protocol versions.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from starlette.testclient import TestClient
from svix.webhooks import Webhook

from reactive.http import create_app
from reactive.query_builder import QueryBuilder
from reactive.values import encode_value
from tests.oidc_issuer import LocalIssuer

__all__ = [
    "ROOT",
    "Peer",
    "SeedApp",
    "clerk_event",
    "new_webhook_secret",
    "running_seed_app",
    "svix_headers",
    "updates",
]

#: The seed app's project directory: the repository's top level.
ROOT = Path(__file__).resolve().parent.parent


def new_webhook_secret() -> str:
    """A secret in Clerk/svix's format: "whsec_" + base64 of random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def svix_headers(
    secret: str, body: bytes, *, msg_id: str | None = None, sent_at: datetime | None = None
) -> dict[str, str]:
    """The headers svix sends with `body`, signed with `secret`."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    sent_at = sent_at or datetime.now(tz=UTC)
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(sent_at.timestamp())),
        "svix-signature": Webhook(secret).sign(msg_id, sent_at, body.decode()),
        "content-type": "application/json",
    }


def clerk_event(
    kind: str,
    clerk_id: str,
    *,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    image_url: str | None = None,
    timestamp: float | None = None,
) -> dict[str, Any]:
    """A Clerk webhook event as Clerk shapes it (trimmed to the fields the app reads), emitted
    at `timestamp` (ms; default now)."""
    at = time.time() * 1000 if timestamp is None else timestamp
    if kind == "user.deleted":
        data = {"id": clerk_id, "deleted": True}
        return {"type": kind, "object": "event", "timestamp": at, "data": data}
    addresses = [] if email is None else [{"id": "idn_primary", "email_address": email}]
    other = {"id": "idn_other", "email_address": f"other-{clerk_id}@example.test"}
    data = {
        "id": clerk_id,
        "object": "user",
        "email_addresses": [other, *addresses],
        "primary_email_address_id": "idn_primary" if email else None,
        "first_name": first_name,
        "last_name": last_name,
        "image_url": image_url,
        "username": None,
    }
    return {"type": kind, "object": "event", "timestamp": at, "data": data}


def _forbidden_read(method: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the seed app must read through an index, not .{method}()")

    return refuse


class ClerkUserCalls:
    """Calls to the seed app's public API as a Clerk user signed in through `issuer`, whatever
    carries them (`_post`: a TestClient, or HTTP to a server process)."""

    __slots__ = ()
    issuer: LocalIssuer

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        """The response to `body` POSTed as JSON to `path` (`/api/query`, ...)."""
        raise NotImplementedError

    def token(self, clerk_id: str) -> str:
        return self.issuer.sign(subject=clerk_id)

    def call(self, kind: str, path: str, args: dict[str, Any], *, user: str | None) -> Any:
        """The JSON body of `POST /api/<kind>` as the Clerk user `user` (None: signed out)."""
        headers = {} if user is None else {"Authorization": f"Bearer {self.token(user)}"}
        body = {"path": path, "args": [encode_value(args)], "format": "json"}
        response = self._post(f"/api/{kind}", body, headers)
        assert response.status_code == 200, response.text
        return response.json()

    def ok(self, kind: str, path: str, args: dict[str, Any], *, user: str | None) -> Any:
        """The value of a call that must succeed."""
        body = self.call(kind, path, args, user=user)
        assert body["status"] == "success", body
        return body["value"]


@dataclass(slots=True)
class SeedApp(ClerkUserCalls):
    client: TestClient
    issuer: LocalIssuer
    webhook_secret: str

    # -- HTTP API ----------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        return self.client.post(path, json=body, headers=headers)

    def error(self, kind: str, path: str, args: dict[str, Any], *, user: str | None) -> Any:
        """The body of a call that must fail."""
        body = self.call(kind, path, args, user=user)
        assert body["status"] == "error", body
        return body

    def query(self, path: str, args: dict[str, Any], *, user: str | None) -> Any:
        return self.ok("query", path, args, user=user)

    def upload(self, data: bytes, content_type: str, *, user: str) -> str:
        """POST `data` to a fresh upload URL as `user`; returns the storageId."""
        url = urlsplit(self.mutation("files:generateUploadUrl", {}, user=user))
        response = self.client.post(
            f"{url.path}?{url.query}", content=data, headers={"content-type": content_type}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["storageId"])

    def fetch(self, url: str) -> Any:
        """GET a URL the server handed out (a file URL, say)."""
        parts = urlsplit(url)
        return self.client.get(parts.path)

    def mutation(self, path: str, args: dict[str, Any], *, user: str | None) -> Any:
        return self.ok("mutation", path, args, user=user)

    def error_data(self, kind: str, path: str, args: dict[str, Any], *, user: str | None) -> Any:
        """The ConvexError data of a call that must fail with an AppError."""
        body = self.error(kind, path, args, user=user)
        assert "errorData" in body, body
        return body["errorData"]

    # -- webhooks and internals --------------------------------------------------------------

    def post_clerk(self, event: Any, *, headers: dict[str, str] | None = None) -> Any:
        """POST `event` to /webhooks/clerk, signed unless `headers` are given."""
        body = orjson.dumps(event)
        headers = svix_headers(self.webhook_secret, body) if headers is None else headers
        return self.client.post("/webhooks/clerk", content=body, headers=headers)

    def sign_up(self, clerk_id: str, name: str = "Ada Lovelace") -> dict[str, Any]:
        """Create `clerk_id`'s user through a signed user.created webhook; returns the row."""
        first, _, last = name.partition(" ")
        event = clerk_event(
            "user.created",
            clerk_id,
            email=f"{clerk_id}@example.test",
            first_name=first,
            last_name=last or None,
            image_url=f"https://img.example.test/{clerk_id}.png",
        )
        assert self.post_clerk(event).status_code == 200
        user = self.query("users:current", {}, user=clerk_id)
        assert user is not None and user["clerkId"] == clerk_id
        return user  # type: ignore[no-any-return]

    def run_internal(self, path: str, args: dict[str, Any]) -> Any:
        """Run an internal function as other functions do; returns its Outcome."""
        executor = self.client.app.state.reactive.executor  # type: ignore[attr-defined]

        async def run() -> Any:
            return await executor.run(None, path, args, None, allow_internal=True)

        assert self.client.portal is not None
        return self.client.portal.call(run)

    def wait_for_jobs(self, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until no scheduled function is pending or running; returns every job."""
        db = self.client.app.state.reactive.db  # type: ignore[attr-defined]

        async def jobs() -> list[dict[str, Any]]:
            async def read(tx: Any) -> list[dict[str, Any]]:
                rows = tx.query("_scheduled_functions").with_index("by_creation_time")
                return await rows.collect()  # type: ignore[no-any-return]

            return (await db.run_query(read)).value  # type: ignore[no-any-return]

        assert self.client.portal is not None
        deadline = time.monotonic() + timeout
        while True:
            rows = self.client.portal.call(jobs)
            if all(row["state"]["kind"] not in ("pending", "inProgress") for row in rows):
                return rows
            assert time.monotonic() < deadline, f"jobs still running: {rows}"
            time.sleep(0.02)

    def insert(self, table: str, doc: dict[str, Any], *, system: bool = False) -> str:
        """Insert a row directly (for tables the app has no functions for yet, e.g. files)."""
        db = self.client.app.state.reactive.db  # type: ignore[attr-defined]

        async def run() -> str:
            result = await db.run_mutation(lambda tx: tx.insert(table, doc, system=system))
            return result.value  # type: ignore[no-any-return]

        assert self.client.portal is not None
        return self.client.portal.call(run)


@contextlib.contextmanager
def running_seed_app(
    tmp_path: Path, issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SeedApp]:
    """The seed app on a fresh SQLite database, with full table scans and filters forbidden."""
    secret = new_webhook_secret()
    monkeypatch.setenv("CLERK_JWT_ISSUER_DOMAIN", issuer.url)
    monkeypatch.setenv("CLERK_WEBHOOK_SECRET", secret)
    monkeypatch.setattr(QueryBuilder, "full_table_scan", _forbidden_read("full_table_scan"))
    monkeypatch.setattr(QueryBuilder, "filter", _forbidden_read("filter"))
    app = create_app(ROOT, database_url=f"sqlite:///{tmp_path}/seed.db", dev=True)
    with TestClient(app) as client:
        yield SeedApp(client, issuer, secret)


# -- WebSocket ---------------------------------------------------------------------------------


class Peer:
    """One sync socket that checks version chaining as the official clients do."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.query_set = 0
        self.identity = 0
        self.request_id = 0
        self.version = {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}
        ws.send_json(
            {
                "type": "Connect",
                "sessionId": str(uuid.uuid4()),
                "connectionCount": 0,
                "lastCloseReason": "InitialConnect",
                "clientTs": int(time.time() * 1000),
            }
        )

    def receive(self) -> dict[str, Any]:
        message: dict[str, Any] = self.ws.receive_json()
        if message["type"] == "Transition":
            assert message["startVersion"] == self.version, "Invalid start version"
            self.version = message["endVersion"]
        return message

    def receive_until(self, kind: str) -> dict[str, Any]:
        while True:
            message = self.receive()
            if message["type"] == kind:
                return message

    def authenticate(self, token: str) -> dict[str, Any]:
        frame = {"type": "Authenticate", "baseVersion": self.identity, "tokenType": "User"}
        self.ws.send_json(frame | {"value": token})
        self.identity += 1
        transition = self.receive_until("Transition")
        assert transition["endVersion"]["identity"] == self.identity
        return transition

    def authenticate_admin(
        self, key: str, acting_as: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Authenticate with the admin key, as the dashboard does (acting as the `acting_as`
        claims, if any): the reply, a Transition or an AuthError."""
        frame = {"type": "Authenticate", "baseVersion": self.identity, "tokenType": "Admin"}
        if acting_as is not None:
            frame["impersonating"] = acting_as
        self.ws.send_json(frame | {"value": key})
        self.identity += 1
        return self.receive()

    def modify(self, *modifications: dict[str, Any]) -> dict[str, Any]:
        """Change the query set by `modifications`: the Transition that answers it."""
        self.ws.send_json(
            {
                "type": "ModifyQuerySet",
                "baseVersion": self.query_set,
                "newVersion": self.query_set + 1,
                "modifications": list(modifications),
            }
        )
        self.query_set += 1
        return self.receive_until("Transition")

    def subscribe(self, query_id: int, path: str, args: dict[str, Any]) -> dict[str, Any]:
        add = {"type": "Add", "queryId": query_id, "udfPath": path, "args": [encode_value(args)]}
        return self.modify(add)

    def mutate(self, path: str, args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send a mutation; returns its MutationResponse and the Transition that follows."""
        request_id, self.request_id = self.request_id, self.request_id + 1
        self.ws.send_json(
            {
                "type": "Mutation",
                "requestId": request_id,
                "udfPath": path,
                "args": [encode_value(args)],
            }
        )
        response = self.receive_until("MutationResponse")
        assert response["requestId"] == request_id
        return response, self.receive_until("Transition")


def updates(transition: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The transition's query modifications by query id."""
    return {m["queryId"]: m for m in transition["modifications"]}
