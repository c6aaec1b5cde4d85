"""File storage: bytes in a blob store, metadata as rows of the system table `_storage`.

`open_blob_store` chooses the blob store: a directory (SQLite, or REACTIVE_STORAGE_DIR), the
database's `blobs` table (PostgreSQL), or an S3-compatible bucket (REACTIVE_STORAGE_S3_BUCKET),
so that on PostgreSQL every server process sharing the database reads every file.

Uploads go through short-lived signed URLs (`generate_upload_url`); a stored file is served
at `/api/storage/<id>`. A URL made for an identity (a function run for a signed-in user) names
that identity, and the `_storage` row it creates records it in `reactiveOwner` (our field;
Convex's rows have none), so that apps can tell who uploaded a file. Deleting a file deletes
its row in the transaction and its bytes only after that transaction committed, so a
rolled-back or retried mutation never loses bytes that a committed row still points to.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from reactive import knobs
from reactive.database import Database
from reactive.errors import ValidationError
from reactive.ids import decode_id
from reactive.persistence import Persistence
from reactive.transaction import Transaction
from reactive.types import Value

__all__ = [
    "OWNER_FIELD",
    "STORAGE_TABLE",
    "BlobStore",
    "BlobStoreUnavailable",
    "DatabaseBlobStore",
    "FallbackBlobStore",
    "FileStorage",
    "LocalBlobStore",
    "S3BlobStore",
    "StorageReader",
    "StorageWriter",
    "UploadToken",
    "open_blob_store",
    "open_file_storage",
    "server_url",
]

log = logging.getLogger("reactive.file_storage")

STORAGE_TABLE = "_storage"
#: The `_storage` field holding the token identifier of the identity a file was uploaded for
#: (absent for files stored without one). Ours: Convex's `_storage` rows have no such field.
OWNER_FIELD = "reactiveOwner"
UPLOAD_URL_TTL_S = 3600.0
#: An upload URL is spent by recording its nonce as the exactly-once record of the mutation
#: that stores the file, under this session name; mutation records are unique in the
#: database, so a URL stores at most one file even across server processes.
_UPLOAD_SESSION = "storage-upload:"
#: Longest a read of a file waits to learn other processes' newer commits (`_caught_up_after`);
#: they arrive within milliseconds, or within knobs.COMMIT_WATCH_SAFETY_S if a notice is lost.
_CATCH_UP_TIMEOUT_S = 2.0
#: Where a server without REACTIVE_URL says it is when it cannot tell (not serving yet).
DEFAULT_PUBLIC_URL = "http://127.0.0.1:3210"
MAX_UPLOAD_BYTES = int(os.environ.get("REACTIVE_MAX_UPLOAD_BYTES", 64 << 20))
#: Largest file DatabaseBlobStore keeps in one database row. PostgreSQL's bytea stops at
#: 1 GiB, and the server holds a value several times over while writing it; larger files
#: belong in an S3 bucket.
MAX_DATABASE_BLOB_BYTES = int(os.environ.get("REACTIVE_MAX_DATABASE_BLOB_BYTES", 256 << 20))


class BlobStore(Protocol):
    """Where file bytes live. Keys are opaque strings chosen by FileStorage."""

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""


class BlobStoreUnavailable(RuntimeError):
    """The configured blob store cannot be used (missing bucket, credentials, library)."""


def _checked_key(key: str) -> str:
    # Keys are hex from FileStorage, but an imported snapshot names its own: never let one
    # become a path or an object name outside the store's own.
    if not (key.isascii() and key.isalnum()):
        raise ValueError(f"bad blob key {key!r}")
    return key


class LocalBlobStore:
    """Files on local disk under `root`, sharded by key prefix; writes are atomic (rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        _checked_key(key)
        return self.root / key[:2] / key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def close(self) -> None:
        pass


class DatabaseBlobStore:
    """Files as rows of the database's `blobs` table: every process that shares the database
    reads every file, with nothing else to run. Files up to MAX_DATABASE_BLOB_BYTES."""

    def __init__(self, persistence: Persistence) -> None:
        self.persistence = persistence

    async def put(self, key: str, data: bytes) -> None:
        if len(data) > MAX_DATABASE_BLOB_BYTES:
            raise ValidationError(
                f"File of {len(data)} bytes exceeds the {MAX_DATABASE_BLOB_BYTES} bytes a file "
                "may have in the database; store large files in an S3 bucket "
                "(REACTIVE_STORAGE_S3_BUCKET) or raise REACTIVE_MAX_DATABASE_BLOB_BYTES",
                short_msg="FileTooLarge",
            )
        await self.persistence.put_blob(_checked_key(key), data)

    async def get(self, key: str) -> bytes | None:
        return await self.persistence.get_blob(_checked_key(key))

    async def delete(self, key: str) -> None:
        await self.persistence.delete_blob(_checked_key(key))

    async def close(self) -> None:
        pass  # the database is closed by its owner


#: The environment that selects and configures the S3 store. Credentials and region are
#: boto3's own: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, a profile or a role.
S3_BUCKET_ENV = "REACTIVE_STORAGE_S3_BUCKET"
S3_ENDPOINT_ENV = "REACTIVE_STORAGE_S3_ENDPOINT_URL"
S3_PREFIX_ENV = "REACTIVE_STORAGE_S3_PREFIX"
_MISSING_OBJECT = frozenset({"NoSuchKey", "404"})
_MISSING_BUCKET = frozenset({"NoSuchBucket", "404"})
_REFUSED = frozenset({"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"})


class S3BlobStore:
    """Files as objects `<prefix><key>` of an S3-compatible bucket (AWS S3, MinIO, Cloudflare
    R2, ...). boto3's client blocks, so every call runs in a worker thread (the client is
    safe to share between threads); boto3 is imported only when a bucket is configured."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix

    @classmethod
    async def open(
        cls, bucket: str, *, endpoint_url: str | None = None, prefix: str = ""
    ) -> S3BlobStore:
        """The store on `bucket`, checked at once: a missing bucket, refused credentials or an
        unreachable endpoint raise BlobStoreUnavailable saying what to fix, at startup rather
        than at the first upload."""
        client = await asyncio.to_thread(_s3_client, endpoint_url)
        store = cls(client, bucket, prefix)
        try:
            await store._check_bucket(endpoint_url)
        except BaseException:
            await store.close()
            raise
        return store

    async def _check_bucket(self, endpoint_url: str | None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = f"S3 bucket {self.bucket!r}" + (f" at {endpoint_url}" if endpoint_url else "")
        try:
            await asyncio.to_thread(self.client.head_bucket, Bucket=self.bucket)
        except NoCredentialsError:
            raise BlobStoreUnavailable(
                f"no credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                " (or AWS_PROFILE, or run with an IAM role)"
            ) from None
        except ClientError as exc:
            raise BlobStoreUnavailable(_bucket_problem(where, exc)) from None
        except BotoCoreError as exc:
            raise BlobStoreUnavailable(
                f"cannot reach {where} ({exc}): check {S3_ENDPOINT_ENV} and the network"
            ) from None

    def _name(self, key: str) -> str:
        return self.prefix + _checked_key(key)

    async def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        await asyncio.to_thread(self.client.put_object, Bucket=self.bucket, Key=name, Body=data)

    async def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return await asyncio.to_thread(self._read, self._name(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_OBJECT:
                return None
            raise

    def _read(self, name: str) -> bytes:
        # In the worker thread: reading the body is network I/O too.
        response = self.client.get_object(Bucket=self.bucket, Key=name)
        body = response["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    async def delete(self, key: str) -> None:
        # S3 answers a delete of a missing object with success: deleting twice is harmless.
        name = self._name(key)
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=name)

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


def _s3_client(endpoint_url: str | None) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise BlobStoreUnavailable(
            f"{S3_BUCKET_ENV} is set but boto3 is not installed: pip install 'reactive[s3]'"
        ) from None
    options: dict[str, Any] = {
        "connect_timeout": 5,
        "read_timeout": 60,
        "retries": {"max_attempts": 3, "mode": "standard"},
    }
    if endpoint_url:
        # Path-style URLs (endpoint/bucket/key): self-hosted servers such as MinIO have no
        # per-bucket host names.
        options["s3"] = {"addressing_style": "path"}
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, config=Config(**options))


def _error_code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _bucket_problem(where: str, exc: Any) -> str:
    code = _error_code(exc)
    if code in _MISSING_BUCKET:
        return f"{where} does not exist: create it, or set {S3_BUCKET_ENV} to an existing bucket"
    if code in _REFUSED:
        return (
            f"{where} refused these credentials ({code}): check AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, and that the bucket's policy allows s3:ListBucket, "
            "s3:GetObject, s3:PutObject and s3:DeleteObject"
        )
    return f"{where} cannot be used: {exc}"


async def open_blob_store(
    persistence: Persistence, default_dir: Path, env: Mapping[str, str] = os.environ
) -> BlobStore:
    """Where this server keeps file bytes; the one place that decides:

    - REACTIVE_STORAGE_S3_BUCKET: that S3-compatible bucket (REACTIVE_STORAGE_S3_ENDPOINT_URL
      for MinIO, R2 and the like; REACTIVE_STORAGE_S3_PREFIX before every object name);
    - else REACTIVE_STORAGE_DIR: that directory;
    - else a SQLite database: `default_dir` on this machine, which every process opening
      that SQLite file shares;
    - else (PostgreSQL) the database itself, so that every node sharing it reads every file
      (files an older version kept in `default_dir` are still read from there).
    """
    bucket = env.get(S3_BUCKET_ENV)
    directory = env.get("REACTIVE_STORAGE_DIR")
    if bucket and directory:
        raise BlobStoreUnavailable(
            f"both {S3_BUCKET_ENV} and REACTIVE_STORAGE_DIR are set: set only one, the place"
            " where file bytes are kept"
        )
    if bucket:
        endpoint_url = env.get(S3_ENDPOINT_ENV) or None
        prefix = env.get(S3_PREFIX_ENV, "")
        return await S3BlobStore.open(bucket, endpoint_url=endpoint_url, prefix=prefix)
    if directory:
        return LocalBlobStore(directory)
    if persistence.url.partition(":")[0].lower() == "sqlite":
        return LocalBlobStore(default_dir)
    database = DatabaseBlobStore(persistence)
    if not await asyncio.to_thread(_holds_files, default_dir):
        return database
    # Before file bytes moved into the database, this server kept them in `default_dir`.
    log.warning(
        "files stored before in %s are still read from there, by this machine only; new "
        "files go into the database. To serve the old ones from every node, copy this "
        "deployment into a fresh database (reactive export, then reactive import)",
        default_dir,
    )
    return FallbackBlobStore(database, LocalBlobStore(default_dir))


def _holds_files(directory: Path) -> bool:
    return any(path.is_file() for path in directory.rglob("*"))


class FallbackBlobStore:
    """New files in `primary`; files stored earlier in `older` are still read (and deleted)
    there, so that changing where files go does not lose the ones stored before."""

    def __init__(self, primary: BlobStore, older: BlobStore) -> None:
        self.primary, self.older = primary, older

    async def put(self, key: str, data: bytes) -> None:
        await self.primary.put(key, data)

    async def get(self, key: str) -> bytes | None:
        data = await self.primary.get(key)
        return data if data is not None else await self.older.get(key)

    async def delete(self, key: str) -> None:
        await self.primary.delete(key)
        await self.older.delete(key)

    async def close(self) -> None:
        await self.primary.close()
        await self.older.close()


@dataclass(frozen=True, slots=True)
class UploadToken:
    """A checked upload URL token; `nonce` names it when it is spent, `owner` is the token
    identifier of the identity it was made for (None: made without one)."""

    nonce: str
    owner: str | None = None


def server_url(host: str, port: int, *, secure: bool = False) -> str:
    """The URL of a server bound to `host:port`, as a client on this machine reaches it: a
    wildcard bind (0.0.0.0, ::) is 127.0.0.1."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if secure else "http"
    default_port = 443 if secure else 80
    return f"{scheme}://{shown}" + ("" if port == default_port else f":{port}")


@dataclass(slots=True)
class FileStorage:
    """The storage service shared by every function call of one application."""

    db: Database
    blobs: BlobStore
    secret: bytes
    #: Public base URL of this server ("http://127.0.0.1:3210"): REACTIVE_URL, else set by the
    #: server from its configuration or its own socket — never from a request's Host header.
    base_url: str | None = field(default_factory=lambda: _configured_url())
    _pending_deletes: set[asyncio.Task[None]] = field(default_factory=set)

    # -- URLs ------------------------------------------------------------------------------

    def public_url(self) -> str:
        """This server's base URL, without a trailing slash."""
        return (self.base_url or DEFAULT_PUBLIC_URL).rstrip("/")

    def url_for(self, storage_id: str) -> str:
        return f"{self.public_url()}/api/storage/{quote(storage_id)}"

    def upload_url(self, owner: str | None = None) -> str:
        """A single-use upload URL; the file it stores is recorded as `owner`'s (a token
        identifier), which the URL carries signed, so no one can change it."""
        # A spent URL must stay spent while it is valid: never outlive the spent records.
        expires = int(time.time() + min(UPLOAD_URL_TTL_S, knobs.MUTATION_RECORD_RETENTION_S))
        signed = f"{expires}.{secrets.token_hex(16)}"
        if owner is not None:  # base64url has no ".", the token's separator
            signed += "." + base64.urlsafe_b64encode(owner.encode()).decode()
        token = f"{signed}.{self._sign(signed)}"
        return f"{self.public_url()}/api/storage/upload?token={token}"

    async def check_upload_token(self, token: str | None) -> UploadToken:
        """The token of an upload URL if it is genuine, unexpired and not used yet."""
        parts = (token or "").split(".")
        if len(parts) not in (3, 4) or not parts[0].isdigit():
            raise ValidationError("Invalid upload URL", short_msg="InvalidUploadUrl")
        *signed, signature = parts
        if not hmac.compare_digest(signature, self._sign(".".join(signed))):
            raise ValidationError("Invalid upload URL", short_msg="InvalidUploadUrl")
        if int(signed[0]) < time.time():
            raise _expired()
        nonce = signed[1]
        if await self.db.persistence.get_mutation(_UPLOAD_SESSION + nonce, 0) is not None:
            raise _already_used()
        owner = base64.urlsafe_b64decode(signed[2]).decode() if len(signed) == 3 else None
        return UploadToken(nonce, owner)

    def _sign(self, message: str) -> str:
        digest = hmac.new(self.secret, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    # -- storing and reading ---------------------------------------------------------------

    async def store(
        self,
        data: bytes,
        content_type: str | None,
        *,
        upload: UploadToken | None = None,
        owner: str | None = None,
    ) -> str:
        """Write the bytes, then commit their `_storage` row; returns the storage id.

        With `upload`, the row commits together with the record that spends that upload URL;
        if the URL was spent meanwhile, nothing is stored and the upload is refused. The row
        records as its owner the URL's identity, else `owner` (token identifiers)."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"File of {len(data)} bytes exceeds the limit of {MAX_UPLOAD_BYTES} bytes",
                short_msg="FileTooLarge",
            )
        key = secrets.token_hex(16)
        await self.blobs.put(key, data)
        row: dict[str, Value] = {
            "sha256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
            "size": float(len(data)),
            "contentType": content_type,
            "blobKey": key,
            OWNER_FIELD: upload.owner if upload is not None else owner,
        }
        spent_as = None if upload is None else _UPLOAD_SESSION + upload.nonce
        try:
            result = await self.db.run_mutation(
                lambda tx: tx.insert(
                    STORAGE_TABLE, {k: v for k, v in row.items() if v is not None}, system=True
                ),
                session_id=spent_as,
                request_id=None if spent_as is None else 0,
            )
        except BaseException:
            await self.blobs.delete(key)
            raise
        if result.duplicate:  # another upload with this URL committed first: its row stands
            await self.blobs.delete(key)
            raise _already_used()
        return str(result.value)

    async def read(self, storage_id: str) -> tuple[dict[str, Value], bytes] | None:
        found = await self.db.run_query(lambda tx: _storage_row(tx, storage_id))
        row = found.value
        if row is None and await self._caught_up_after(found.ts):
            row = (await self.db.run_query(lambda tx: _storage_row(tx, storage_id))).value
        if row is None:
            return None
        data = await self.blobs.get(str(row["blobKey"]))
        return None if data is None else (row, data)

    async def _caught_up_after(self, ts: int) -> bool:
        """Whether commits newer than `ts` exist and are now known here (waiting for them).

        A file uploaded to one node is fetched at once, often from another, which may not
        have heard of that commit yet: a miss at an old snapshot must not be a 404."""
        newest = await self.db.persistence.max_commit_ts()
        if newest <= ts:
            return False
        try:
            await asyncio.wait_for(self.db.wait_for_ts(newest), _CATCH_UP_TIMEOUT_S)
        except TimeoutError:
            return False
        return True

    def delete_blobs_later(self, keys: list[str]) -> None:
        """Delete bytes whose rows were deleted by a committed transaction."""
        for key in keys:
            task = asyncio.ensure_future(self.blobs.delete(key))
            self._pending_deletes.add(task)
            task.add_done_callback(self._pending_deletes.discard)

    async def close(self) -> None:
        """Finish the deletions under way (before the database they may live in closes),
        then close the blob store."""
        await asyncio.gather(*self._pending_deletes, return_exceptions=True)
        await self.blobs.close()


def _configured_url() -> str | None:
    return os.environ.get("REACTIVE_URL") or None


def _expired() -> ValidationError:
    return ValidationError(
        "Upload URL expired; generate a new one (ctx.storage.generate_upload_url)",
        short_msg="UploadUrlExpired",
    )


def _already_used() -> ValidationError:
    return ValidationError(
        "This upload URL was already used: each stores one file. Generate a new one "
        "(ctx.storage.generate_upload_url) for every upload.",
        short_msg="UploadUrlUsed",
    )


async def _storage_row(tx: Transaction, storage_id: object) -> dict[str, Value] | None:
    if not isinstance(storage_id, str) or tx.normalize_id(STORAGE_TABLE, storage_id) is None:
        _check_storage_id(storage_id)
        return None
    return await tx.get(storage_id)


def _check_storage_id(storage_id: object) -> None:
    decode_id(storage_id)  # raises InvalidIdError for a malformed id


def _metadata(row: dict[str, Value] | None) -> dict[str, Value] | None:
    if row is None:
        return None
    return {
        "storageId": row["_id"],
        "sha256": row.get("sha256"),
        "size": row.get("size"),
        "contentType": row.get("contentType"),
    }


async def open_file_storage(db: Database, blobs: BlobStore) -> FileStorage:
    """The file storage of `db` with its bytes in `blobs`; creates the `_storage` table and the
    secret that signs upload URLs on first use."""
    await db.catalog.ensure_table(STORAGE_TABLE, allow_system=True)
    # One secret for every process sharing the database: any node accepts any node's URLs.
    secret = await db.persistence.setdefault_meta("storage_secret", secrets.token_bytes(32))
    return FileStorage(db, blobs, secret)


# -- what functions see as ctx.storage ----------------------------------------------------------


class StorageReader:
    """`ctx.storage` in a query: URLs and metadata, read in the query's transaction."""

    __slots__ = ("_service", "_tx")

    def __init__(self, service: FileStorage, tx: Transaction) -> None:
        self._service, self._tx = service, tx

    async def get_url(self, storage_id: str) -> str | None:
        row = await _storage_row(self._tx, storage_id)
        return None if row is None else self._service.url_for(storage_id)

    async def get_metadata(self, storage_id: str) -> dict[str, Value] | None:
        return _metadata(await _storage_row(self._tx, storage_id))


class StorageWriter(StorageReader):
    """`ctx.storage` in a mutation: also upload URLs and deletion. `owner` is the token
    identifier of the identity the mutation runs for: its upload URLs store files as theirs."""

    __slots__ = ("_owner", "deleted_blobs")

    def __init__(self, service: FileStorage, tx: Transaction, owner: str | None = None) -> None:
        super().__init__(service, tx)
        self._owner = owner
        self.deleted_blobs: list[str] = []

    async def generate_upload_url(self) -> str:
        return self._service.upload_url(self._owner)

    async def delete(self, storage_id: str) -> None:
        row = await _storage_row(self._tx, storage_id)
        if row is None:
            raise ValidationError(f"Storage id {storage_id} not found", short_msg="FileNotFound")
        await self._tx.delete(storage_id, system=True)
        self.deleted_blobs.append(str(row["blobKey"]))


class ActionStorage:
    """`ctx.storage` in an action: every call is its own transaction. Files it stores and
    upload URLs it makes are `owner`'s (the token identifier the action runs for)."""

    __slots__ = ("_owner", "_service")

    def __init__(self, service: FileStorage, owner: str | None = None) -> None:
        self._service, self._owner = service, owner

    async def _in_query(self, read: Callable[[StorageReader], Awaitable[Any]]) -> Any:
        db = self._service.db
        return (await db.run_query(lambda tx: read(StorageReader(self._service, tx)))).value

    async def get_url(self, storage_id: str) -> str | None:
        return await self._in_query(lambda storage: storage.get_url(storage_id))  # type: ignore[no-any-return]

    async def get_metadata(self, storage_id: str) -> dict[str, Value] | None:
        return await self._in_query(lambda storage: storage.get_metadata(storage_id))  # type: ignore[no-any-return]

    async def generate_upload_url(self) -> str:
        return self._service.upload_url(self._owner)

    async def store(self, data: bytes, content_type: str | None = None) -> str:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValidationError(f"storage.store needs bytes, got {type(data).__name__}")
        return await self._service.store(bytes(data), content_type, owner=self._owner)

    async def get(self, storage_id: str) -> bytes | None:
        found = await self._service.read(storage_id)
        return None if found is None else found[1]

    async def delete(self, storage_id: str) -> None:
        async def remove(tx: Transaction) -> list[str]:
            writer = StorageWriter(self._service, tx)
            await writer.delete(storage_id)
            return writer.deleted_blobs

        keys = (await self._service.db.run_mutation(remove)).value
        self._service.delete_blobs_later(keys)
