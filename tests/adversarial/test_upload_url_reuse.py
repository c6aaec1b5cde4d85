"""An upload URL stores one file: a second POST to it is refused and stores nothing, also
when the POSTs race, and also on another server process sharing the database."""

from __future__ import annotations

import asyncio

import httpx

from tests.adversarial.attacks import call, upload
from tests.adversarial.conftest import storage_env
from tests.live_server import LiveServer


def blob_count(blob_dir):
    return sum(1 for path in blob_dir.rglob("*") if path.is_file())


def test_a_used_upload_url_is_refused_and_stores_nothing(storage_server, blob_dir):
    upload_url = call(storage_server.url, "mutation", "files:upload_url")
    first = upload(upload_url, b"first", "text/plain")
    assert first.status_code == 200, first.text
    again = upload(upload_url, b"second", "text/plain")
    assert again.status_code == 400
    assert again.json()["code"] == "UploadUrlUsed"
    assert "generate_upload_url" in again.json()["message"]  # says what to do instead
    assert call(storage_server.url, "query", "files:count") == 1.0
    assert blob_count(blob_dir) == 1


async def test_racing_uploads_with_one_url_store_one_file(storage_server, blob_dir):
    upload_url = call(storage_server.url, "mutation", "files:upload_url")
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post(upload_url, content=f"copy {n}".encode()) for n in range(8))
        )
    assert sorted(r.status_code for r in responses) == [200] + [400] * 7
    assert call(storage_server.url, "query", "files:count") == 1.0
    assert blob_count(blob_dir) == 1


def test_a_url_used_on_one_server_is_refused_by_another(
    storage_server, store_url, project, blob_dir
):
    upload_url = call(storage_server.url, "mutation", "files:upload_url")
    assert upload(upload_url, b"first", "text/plain").status_code == 200
    with LiveServer(project, store_url, env=storage_env(blob_dir), dev=False) as other:
        reused = upload_url.replace(storage_server.url, other.url)
        again = upload(reused, b"second", "text/plain")
        assert again.status_code == 400, again.text
        assert again.json()["code"] == "UploadUrlUsed"
        assert call(other.url, "query", "files:count") == 1.0
    assert blob_count(blob_dir) == 1


def test_control_each_fresh_upload_url_stores_a_file(storage_server, blob_dir):
    for n in range(3):
        upload_url = call(storage_server.url, "mutation", "files:upload_url")
        assert upload(upload_url, f"file {n}".encode(), "text/plain").status_code == 200
    assert call(storage_server.url, "query", "files:count") == 3.0
    assert blob_count(blob_dir) == 3
