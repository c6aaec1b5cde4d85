"""File storage: upload URLs, serving, metadata, deletion after commit, bad input."""

from __future__ import annotations

import hashlib
from base64 import b64encode, urlsafe_b64encode
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from starlette.testclient import TestClient

from reactive.errors import ValidationError
from reactive.file_storage import OWNER_FIELD, ActionStorage, LocalBlobStore, open_file_storage
from reactive.http import create_app

CHAT = Path(__file__).parent / "projects" / "chat"


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("REACTIVE_STORAGE_DIR", str(tmp_path / "blobs"))
    app = create_app(CHAT, database_url=f"sqlite:///{tmp_path}/files.db", dev=True)
    with TestClient(app) as test_client:
        yield test_client


def run(client, kind, path, args):
    body = client.post(f"/api/{kind}", json={"path": path, "args": args}).json()
    assert body["status"] == "success", body
    return body["value"]


def local(url):
    parsed = urlparse(url)
    return f"{parsed.path}?{parsed.query}" if parsed.query else parsed.path


def upload(client, data, content_type="image/png"):
    url = run(client, "mutation", "files:generate_upload_url", {})
    response = client.post(local(url), content=data, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    return response.json()["storageId"]


def test_upload_serve_and_metadata(client):
    data = b"\x89PNG fake image bytes"
    storage_id = upload(client, data)
    meta = run(client, "query", "files:metadata", {"storageId": storage_id})
    assert meta == {
        "storageId": storage_id,
        "size": float(len(data)),
        "contentType": "image/png",
        "sha256": b64encode(hashlib.sha256(data).digest()).decode(),
    }
    url = run(client, "query", "files:url", {"storageId": storage_id})
    assert url.startswith("http://testserver/api/storage/")
    served = client.get(local(url))
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == "image/png"


def test_delete_removes_row_and_bytes(client, tmp_path):
    storage_id = upload(client, b"bye")
    blobs = list((tmp_path / "blobs").rglob("*"))
    assert any(p.is_file() for p in blobs)
    run(client, "mutation", "files:remove", {"storageId": storage_id})
    assert run(client, "query", "files:url", {"storageId": storage_id}) is None
    assert client.get(f"/api/storage/{storage_id}").status_code == 404
    assert not any(p.is_file() for p in (tmp_path / "blobs").rglob("*"))


def test_rolled_back_delete_keeps_the_bytes(client):
    storage_id = upload(client, b"keep me")
    body = client.post(
        "/api/mutation", json={"path": "files:remove_then_fail", "args": {"storageId": storage_id}}
    ).json()
    assert body["status"] == "error"
    url = run(client, "query", "files:url", {"storageId": storage_id})
    assert client.get(local(url)).content == b"keep me"


def test_actions_store_and_read_bytes(client):
    result = run(client, "action", "files:store_text", {"text": "hello files"})
    assert result["roundTrip"] == "hello files"
    assert client.get(local(result["url"])).content == b"hello files"


@pytest.mark.parametrize("token", ["", "garbage", "1.2.3", "99999999999.abc.forged"])
def test_bad_upload_tokens_are_refused(client, token):
    response = client.post(f"/api/storage/upload?token={token}", content=b"x")
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidUploadUrl"


def test_expired_upload_url_is_refused(client, monkeypatch):
    url = run(client, "mutation", "files:generate_upload_url", {})
    monkeypatch.setattr("reactive.file_storage.time.time", lambda: 4_000_000_000.0)
    response = client.post(local(url), content=b"late")
    assert response.status_code == 400 and response.json()["code"] == "UploadUrlExpired"


def test_oversized_upload_is_refused(client, monkeypatch):
    monkeypatch.setattr("reactive.http.MAX_UPLOAD_BYTES", 10)
    url = run(client, "mutation", "files:generate_upload_url", {})
    response = client.post(local(url), content=b"x" * 11)
    assert response.status_code == 413


def test_unknown_and_malformed_file_ids(client):
    assert client.get("/api/storage/not-an-id").status_code == 404
    body = client.post(
        "/api/query", json={"path": "files:url", "args": {"storageId": "not-an-id"}}
    ).json()
    assert body["status"] == "error"


async def test_local_blob_store_round_trip(tmp_path):
    store = LocalBlobStore(tmp_path)
    await store.put("abcdef", b"data")
    assert await store.get("abcdef") == b"data"
    await store.delete("abcdef")
    assert await store.get("abcdef") is None
    with pytest.raises(ValueError):
        await store.put("../escape", b"x")


# -- who uploaded a file -------------------------------------------------------------------------

ALICE = "https://issuer.example|user_alice"


@pytest.fixture
async def service(db, tmp_path):
    return await open_file_storage(db, LocalBlobStore(tmp_path / "owned-blobs"))


def token_of(url):
    return parse_qs(urlparse(url).query)["token"][0]


async def storage_row(service, storage_id):
    return (await service.db.run_query(lambda tx: tx.get(storage_id))).value


async def test_an_upload_url_made_for_an_identity_records_it_as_the_owner(service):
    upload = await service.check_upload_token(token_of(service.upload_url(ALICE)))
    storage_id = await service.store(b"mine", "text/plain", upload=upload)
    assert (await storage_row(service, storage_id))[OWNER_FIELD] == ALICE


async def test_a_file_stored_without_an_identity_has_no_owner(service):
    upload = await service.check_upload_token(token_of(service.upload_url()))
    storage_id = await service.store(b"anyone's", "text/plain", upload=upload)
    assert OWNER_FIELD not in await storage_row(service, storage_id)


async def test_an_upload_url_whose_owner_was_changed_is_refused(service):
    expires, nonce, _owner, signature = token_of(service.upload_url(ALICE)).split(".")
    forged_owner = urlsafe_b64encode(b"https://issuer.example|user_mallory").decode()
    with pytest.raises(ValidationError) as refused:
        await service.check_upload_token(f"{expires}.{nonce}.{forged_owner}.{signature}")
    assert refused.value.short_msg == "InvalidUploadUrl"
    with pytest.raises(ValidationError):  # nor may the owner be dropped from a signed URL
        await service.check_upload_token(f"{expires}.{nonce}.{signature}")


async def test_files_an_action_stores_are_its_identitys(service):
    storage_id = await ActionStorage(service, ALICE).store(b"from an action", "text/plain")
    assert (await storage_row(service, storage_id))[OWNER_FIELD] == ALICE
    url = await ActionStorage(service, ALICE).generate_upload_url()
    assert (await service.check_upload_token(token_of(url))).owner == ALICE
