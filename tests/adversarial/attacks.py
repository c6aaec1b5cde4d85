"""What the attacks send: calls to the public API, uploads, and a deployment bundle that
leaves a marker file behind if any of its code runs."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx

EVIL_ORIGIN = "https://evil.example"


def call(url: str, kind: str, path: str, args: dict[str, Any] | None = None, **kw: Any) -> Any:
    """The value of a public function; fails the test on an error answer."""
    response = httpx.post(f"{url}/api/{kind}", json={"path": path, "args": args or {}}, **kw)
    body = response.json()
    assert body.get("status") == "success", body
    return body["value"]


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
