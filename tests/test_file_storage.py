"""File storage: upload URLs, serving, metadata, deletion after commit, bad input; where the
bytes live (a directory, the database, an S3 bucket) and that every node sharing a database
reads them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from base64 import b64encode, urlsafe_b64encode
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from starlette.testclient import TestClient

from reactive.archive import export_archive, import_archive
from reactive.database import Database
from reactive.errors import ValidationError
from reactive.file_storage import (
    OWNER_FIELD,
    ActionStorage,
    BlobStoreUnavailable,
    DatabaseBlobStore,
    LocalBlobStore,
    S3BlobStore,
    open_blob_store,
    open_file_storage,
)
from reactive.http import create_app
from reactive.persistence import open_persistence
from tests.adversarial import attacks
from tests.live_server import LiveServer, free_port
from tests.s3_server import CREDENTIALS, S3Server

CHAT = Path(__file__).parent / "projects" / "chat"
UPLOADS = Path(__file__).parent / "projects" / "uploads"


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


# -- where the bytes live: every node sharing a database reads every file --------------------


@pytest.fixture(scope="module")
def s3_server():
    """One moto server for the module's S3 tests; each test takes a bucket of its own."""
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    """A fresh bucket, with the AWS environment that reaches it set for this process."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return s3_server.create_bucket()


async def blob_store(kind, persistence, request, tmp_path):
    """The blob store a node opens: as `open_blob_store` chooses with no settings, in the
    database, or in the test's S3 bucket."""
    if kind == "default":
        return await open_blob_store(persistence, tmp_path / "storage", env={})
    if kind == "database":
        return DatabaseBlobStore(persistence)
    s3 = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return await open_blob_store(persistence, tmp_path / "unused", env=s3.env(bucket))


@asynccontextmanager
async def node(url, kind, request, tmp_path):
    """One server's view of the database at `url`: its own Database and FileStorage."""
    db = await Database.open(url, prune=False)
    try:
        storage = await open_file_storage(
            db, await blob_store(kind, db.persistence, request, tmp_path)
        )
        try:
            yield storage
        finally:
            await storage.close()  # also waits for the deletions under way
    finally:
        await db.close()


async def test_persistence_keeps_replaces_and_deletes_blobs(persistence):
    data = bytes(range(256)) * 4096  # 1 MiB with every byte value, NUL included
    await persistence.put_blob("k1", data)
    assert await persistence.get_blob("k1") == data
    await persistence.put_blob("k1", b"replaced")
    assert await persistence.get_blob("k1") == b"replaced"
    await persistence.delete_blob("k1")
    assert await persistence.get_blob("k1") is None
    await persistence.delete_blob("k1")  # deleting twice is harmless
    assert await persistence.get_blob("never") is None


@pytest.mark.parametrize("kind", ["default", "database", "s3"])
async def test_a_file_stored_on_one_node_is_read_on_another(store_url, kind, request, tmp_path):
    async with (
        node(store_url, kind, request, tmp_path) as first,
        node(store_url, kind, request, tmp_path) as second,
    ):
        storage_id = await ActionStorage(first).store(b"made on the first node", "text/plain")
        found = await second.read(storage_id)
        assert found is not None
        row, data = found
        assert data == b"made on the first node"
        assert row["contentType"] == "text/plain"


@pytest.mark.parametrize("kind", ["default", "database", "s3"])
async def test_deleting_a_file_removes_its_bytes_for_every_node(store_url, kind, request, tmp_path):
    async with node(store_url, kind, request, tmp_path) as second:
        async with node(store_url, kind, request, tmp_path) as first:
            storage_id = await ActionStorage(first).store(b"short-lived", None)
            row, _ = await second.read(storage_id)
            await ActionStorage(first).delete(storage_id)
        # The first node has closed, so its deletion of the bytes has finished.
        assert await second.read(storage_id) is None
        assert await second.blobs.get(str(row["blobKey"])) is None


async def test_postgres_keeps_files_in_the_database_and_sqlite_beside_its_file(store_url, tmp_path):
    async with node(store_url, "default", None, tmp_path) as storage:
        if store_url.startswith("sqlite"):
            assert isinstance(storage.blobs, LocalBlobStore)
            assert storage.blobs.root == tmp_path / "storage"
        else:
            assert isinstance(storage.blobs, DatabaseBlobStore)
        storage_id = await ActionStorage(storage).store(b"where am I", None)
        on_disk = [p for p in (tmp_path / "storage").rglob("*") if p.is_file()]
        assert len(on_disk) == (1 if store_url.startswith("sqlite") else 0)
        assert (await storage.read(storage_id))[1] == b"where am I"


async def test_files_kept_on_disk_before_stay_readable_on_postgres(postgres_store_url, tmp_path):
    older = LocalBlobStore(tmp_path / "storage")
    await older.put("abc123", b"stored before the move")
    persistence = await open_persistence(postgres_store_url)
    try:
        blobs = await open_blob_store(persistence, tmp_path / "storage", env={})
        assert await blobs.get("abc123") == b"stored before the move"
        await blobs.put("def456", b"new")
        assert await persistence.get_blob("def456") == b"new"
        assert await older.get("def456") is None  # new files go into the database only
        await blobs.delete("abc123")
        assert await older.get("abc123") is None and await blobs.get("abc123") is None
        # Once the directory is empty, the database alone is used.
        assert isinstance(
            await open_blob_store(persistence, tmp_path / "storage", env={}), DatabaseBlobStore
        )
    finally:
        await persistence.close()


async def test_an_explicit_directory_wins_over_the_database(persistence, tmp_path):
    env = {"REACTIVE_STORAGE_DIR": str(tmp_path / "mine")}
    blobs = await open_blob_store(persistence, tmp_path / "default", env=env)
    assert isinstance(blobs, LocalBlobStore) and blobs.root == tmp_path / "mine"


async def test_a_bucket_and_a_directory_together_are_refused(persistence, tmp_path):
    env = {"REACTIVE_STORAGE_DIR": str(tmp_path), "REACTIVE_STORAGE_S3_BUCKET": "files"}
    with pytest.raises(BlobStoreUnavailable, match="set only one"):
        await open_blob_store(persistence, tmp_path, env=env)


async def test_a_file_too_large_for_the_database_is_refused(persistence, monkeypatch):
    monkeypatch.setattr("reactive.file_storage.MAX_DATABASE_BLOB_BYTES", 8)
    store = DatabaseBlobStore(persistence)
    with pytest.raises(ValidationError, match="S3 bucket") as refused:
        await store.put("abc", b"123456789")
    assert refused.value.short_msg == "FileTooLarge"
    assert await store.get("abc") is None
    await store.put("abc", b"12345678")
    assert await store.get("abc") == b"12345678"


@pytest.mark.parametrize("kind", ["database", "s3"])
async def test_blob_keys_that_are_not_plain_names_are_refused(kind, persistence, request, tmp_path):
    store = await blob_store(kind, persistence, request, tmp_path)
    try:
        for key in ("../escape", "a/b", "", "ké"):
            with pytest.raises(ValueError, match="bad blob key"):
                await store.put(key, b"x")
    finally:
        await store.close()


# -- S3 against a real S3-compatible server (moto) -----------------------------------------------


async def test_s3_objects_are_named_by_the_prefix_and_go_away_when_deleted(
    s3_server, s3_bucket, tmp_path
):
    store = await S3BlobStore.open(s3_bucket, endpoint_url=s3_server.endpoint_url, prefix="app1/")
    try:
        await store.put("abc123", b"\x00binary\xff")
        assert s3_server.object_names(s3_bucket) == ["app1/abc123"]
        assert await store.get("abc123") == b"\x00binary\xff"
        assert await store.get("missing") is None
        await store.delete("abc123")
        await store.delete("abc123")  # deleting twice is harmless
        assert s3_server.object_names(s3_bucket) == []
        assert await store.get("abc123") is None
    finally:
        await store.close()


async def test_a_missing_bucket_is_reported_at_startup(s3_server, s3_bucket, tmp_path):
    with pytest.raises(BlobStoreUnavailable, match=r"'no-such-bucket' .* does not exist: create"):
        await S3BlobStore.open("no-such-bucket", endpoint_url=s3_server.endpoint_url)


async def test_an_unreachable_endpoint_is_reported_at_startup(monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    nowhere = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BlobStoreUnavailable, match=f"cannot reach .*{nowhere}"):
        await S3BlobStore.open("files", endpoint_url=nowhere)


async def test_missing_credentials_are_reported_at_startup(s3_server, s3_bucket, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to ask
    with pytest.raises(BlobStoreUnavailable, match=r"no credentials .* AWS_ACCESS_KEY_ID"):
        await S3BlobStore.open(s3_bucket, endpoint_url=s3_server.endpoint_url)


@pytest.mark.parametrize("kind", ["database", "s3"])
async def test_a_snapshot_carries_files_between_blob_stores(store_url, kind, request, tmp_path):
    async with node(store_url, kind, request, tmp_path) as source:
        storage_id = await ActionStorage(source).store(b"exported bytes", "text/plain")
        await export_archive(source.db, source.blobs, tmp_path / "snapshot.zip")
    target_url = f"sqlite:///{tmp_path}/target.db"
    async with node(target_url, kind, request, tmp_path) as target:
        summary = await import_archive(target.db, target.blobs, tmp_path / "snapshot.zip")
        assert summary.files == 1
        assert (await target.read(storage_id))[1] == b"exported bytes"


# -- two real server processes on one PostgreSQL database ----------------------------------------


@pytest.mark.parametrize("kind", ["database", "s3"])
def test_a_file_uploaded_to_one_server_is_served_by_another(
    postgres_store_url, kind, request, tmp_path
):
    project = tmp_path / "uploads"
    shutil.copytree(UPLOADS, project, ignore=shutil.ignore_patterns("__pycache__"))
    env = {
        "REACTIVE_STORAGE_DIR": "",
        "REACTIVE_STORAGE_S3_BUCKET": "",
        "REACTIVE_URL": "",
        "REACTIVE_ADMIN_KEY": "",
    }
    if kind == "s3":
        s3 = request.getfixturevalue("s3_server")
        env |= s3.env(request.getfixturevalue("s3_bucket"))
    with (
        LiveServer(project, postgres_store_url, env=env, dev=False) as first,
        LiveServer(project, postgres_store_url, env=env, dev=False) as second,
    ):
        upload_url = attacks.call(first.url, "mutation", "files:upload_url")
        assert upload_url.startswith(first.url)
        uploaded = attacks.upload(upload_url, b"%PDF uploaded to the first", "application/pdf")
        assert uploaded.status_code == 200, uploaded.text
        file_url = attacks.call(
            second.url, "query", "files:url", {"storageId": uploaded.json()["storageId"]}
        )
        assert file_url.startswith(second.url)
        served = httpx.get(file_url)
        assert served.status_code == 200, served.text
        assert served.content == b"%PDF uploaded to the first"
        assert served.headers["content-type"] == "application/pdf"
    assert not (project / ".reactive").exists()  # nothing on either server's disk


def test_a_server_without_a_bucket_never_loads_boto3(tmp_path):
    script = (
        "import asyncio, sys\n"
        "from reactive.application import Application\n"
        "async def main():\n"
        f"    app = await Application.start({str(CHAT)!r}, 'sqlite:///{tmp_path}/db.sqlite')\n"
        "    await app.close()\n"
        "asyncio.run(main())\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore'))\n"
        "print(loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REACTIVE_STORAGE")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "[]"


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
