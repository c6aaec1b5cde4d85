"""What the attacks send: calls to the public API, uploads, signed Clerk webhooks to the seed
app (`SeedServer`), and a deployment bundle that leaves a marker file behind if any of its code
runs; and the server a module of attacks must leave unharmed (`unharmed_server`)."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.live_server import LiveServer
from tests.oidc_issuer import LocalIssuer
from tests.seed_helpers import ClerkUserCalls, clerk_event, svix_headers

EVIL_ORIGIN = "https://evil.example"


def call(url: str, kind: str, path: str, args: dict[str, Any] | None = None, **kw: Any) -> Any:
    """The value of a public function; fails the test on an error answer."""
    response = httpx.post(f"{url}/api/{kind}", json={"path": path, "args": args or {}}, **kw)
    body = response.json()
    assert body.get("status") == "success", body
    return body["value"]


@contextlib.contextmanager
def unharmed_server(
    project: Path, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, *, dev: bool
) -> Iterator[LiveServer]:
    """A server of `project` with `env` on a fresh SQLite database, for a module of attacks:
    when it stops, its log must hold no traceback (every attack was refused, none crashed it)."""
    database = f"sqlite:///{tmp_path_factory.mktemp('limits')}/limits.db"
    with LiveServer(project, database, env=env, dev=dev) as live:
        yield live
        assert "Traceback" not in live.log(), live.log()


def upload(upload_url: str, data: bytes, content_type: str) -> httpx.Response:
    return httpx.post(upload_url, content=data, headers={"Content-Type": content_type})


def marker_bundle(marker: Path) -> bytes:
    """A deployment whose schema.py and functions both write `marker` when imported."""
    writes_marker = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    schema = writes_marker + "from reactive import define_schema\nschema = define_schema({})\n"
    functions = (
        writes_marker + "from reactive import query\n\n\n"
        "@query(args={})\nasync def hello(ctx, args):\n    return 'pwned'\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.py", schema)
        archive.writestr("functions/pwn.py", functions)
    return buffer.getvalue()


def deploy_events(response: httpx.Response) -> list[str]:
    """The `type` of each event a deploy streamed back."""
    return [json.loads(line)["type"] for line in response.text.splitlines() if line.strip()]


@dataclass(frozen=True, slots=True)
class SeedServer(ClerkUserCalls):
    """The seed app in a server process: calls as a Clerk user, signed Clerk webhooks."""

    url: str
    issuer: LocalIssuer
    webhook_secret: str

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=30)

    def upload(self, data: bytes, *, user: str) -> str:
        """POST `data` to a fresh upload URL made for `user`; returns the storage id."""
        upload_url = self.ok("mutation", "files:generateUploadUrl", {}, user=user)
        response = upload(upload_url, data, "text/plain")
        assert response.status_code == 200, response.text
        return str(response.json()["storageId"])

    def post_clerk(self, event: Any, **signing: Any) -> httpx.Response:
        """POST `event` to /webhooks/clerk signed as svix signs (`msg_id`, `sent_at`)."""
        body = orjson.dumps(event)
        headers = svix_headers(self.webhook_secret, body, **signing)
        return httpx.post(f"{self.url}/webhooks/clerk", content=body, headers=headers)

    def sign_up(self, clerk_id: str) -> dict[str, Any]:
        """Create `clerk_id`'s user with a user.created webhook; returns their row."""
        event = clerk_event("user.created", clerk_id, email=f"{clerk_id}@example.test")
        assert self.post_clerk(event).status_code == 200
        user = self.ok("query", "users:current", {}, user=clerk_id)
        assert user is not None
        return user  # type: ignore[no-any-return]
