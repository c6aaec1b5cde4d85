"""Files: upload through a short-lived URL, save the metadata row, list, serve, delete.

The browser POSTs the bytes to `files:generateUploadUrl`'s URL and gets a storageId back, then
calls `files:save`. A file belongs to its uploader and optionally to one of their projects;
deleting the row also deletes the stored bytes (after the transaction commits). Uploads never
saved (the browser went away between upload and save) are deleted by a daily cron
(`functions/crons.py` -> `deleteUnsavedUploads`) once they are a day old.
Invariant: a storage id is saved at most once, and only by the user whose upload URL stored it
(the runtime records the uploader's token identifier in `_storage.reactiveOwner`), so no one
can claim, or by deleting delete, another user's bytes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from functions.lib.auth import Document, require_auth, require_project_access
from functions.lib.errors import forbidden, invalid, not_found
from reactive import (
    STORAGE_OWNER_FIELD,
    MutationCtx,
    QueryCtx,
    internal_mutation,
    mutation,
    query,
    v,
)

__all__ = [
    "deleteUnsavedUploads",
    "delete_file",
    "generateUploadUrl",
    "getUrl",
    "list",
    "listMine",
    "remove",
    "save",
]

MAX_NAME = 255

file_with_url = v.object(
    {
        "_id": v.id("files"),
        "_creationTime": v.number(),
        "userId": v.id("users"),
        "projectId": v.optional(v.id("projects")),
        "storageId": v.id("_storage"),
        "name": v.string(),
        "type": v.string(),
        "size": v.number(),
        "createdAt": v.number(),
        "url": v.union(v.string(), v.null()),
    }
)


@mutation(args={}, returns=v.string())
async def generateUploadUrl(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A URL the signed-in user's browser may POST one file to (valid for an hour)."""
    await require_auth(ctx)
    return await ctx.storage.generate_upload_url()


@mutation(
    args={
        "storageId": v.id("_storage"),
        "name": v.string(),
        "type": v.optional(v.string()),
        "projectId": v.optional(v.id("projects")),
    },
    returns=v.id("files"),
)
async def save(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Record an uploaded file; size and type come from what was actually stored."""
    identity, user = await require_auth(ctx)
    if args.get("projectId") is not None:
        await require_project_access(ctx, args["projectId"])
    name = args["name"].strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise invalid("INVALID_NAME", f"File names have 1 to {MAX_NAME} characters")
    stored = await _own_unsaved_upload(ctx, args["storageId"], identity["tokenIdentifier"])
    row: Document = {
        "userId": user["_id"],
        "storageId": args["storageId"],
        "name": name,
        "type": args.get("type") or stored.get("contentType") or "application/octet-stream",
        "size": stored["size"],
        "createdAt": time.time() * 1000,
    }
    if args.get("projectId") is not None:
        row["projectId"] = args["projectId"]
    return await ctx.db.insert("files", row)


async def _own_unsaved_upload(ctx: MutationCtx, storage_id: str, caller: str) -> Document:
    """The `_storage` row of `storage_id` if `caller` (a token identifier) uploaded it and it
    is not saved as a file yet; NOT_FOUND, FORBIDDEN or ALREADY_SAVED otherwise."""
    stored = await ctx.db.system.get(storage_id)
    if stored is None:
        raise not_found("File")
    if stored.get(STORAGE_OWNER_FIELD) != caller:
        raise forbidden(
            "This storage id was uploaded by someone else: upload the file yourself "
            "(files:generateUploadUrl) and save the storage id you get back"
        )
    if await _file_of_storage(ctx, storage_id) is not None:
        raise invalid("ALREADY_SAVED", "This upload is already saved as a file")
    return stored


async def _file_of_storage(ctx: MutationCtx, storage_id: str) -> Document | None:
    """A files row that points at `storage_id`, if any."""
    query = ctx.db.query("files").with_index(
        "by_storageId", lambda q: q.eq("storageId", storage_id)
    )
    return await query.first()


async def _with_url(ctx: QueryCtx, rows: Sequence[Document]) -> Sequence[Document]:
    return [{**row, "url": await ctx.storage.get_url(row["storageId"])} for row in rows]


@query(args={"projectId": v.id("projects")}, returns=v.array(file_with_url))
async def list(ctx: QueryCtx, args: dict[str, Any]) -> Sequence[Document]:
    """A project's files, newest first, each with its download URL."""
    await require_project_access(ctx, args["projectId"], allow_public=True)
    rows = await (
        ctx.db.query("files")
        .with_index("by_projectId", lambda q: q.eq("projectId", args["projectId"]))
        .order("desc")
        .collect()
    )
    return await _with_url(ctx, rows)


@query(args={}, returns=v.array(file_with_url))
async def listMine(ctx: QueryCtx, args: dict[str, Any]) -> Sequence[Document]:
    """The signed-in user's files, newest first."""
    _, user = await require_auth(ctx)
    rows = await (
        ctx.db.query("files")
        .with_index("by_userId", lambda q: q.eq("userId", user["_id"]))
        .order("desc")
        .collect()
    )
    return await _with_url(ctx, rows)


async def _accessible_file(ctx: QueryCtx | MutationCtx, file_id: str, *, write: bool) -> Document:
    """The file if the caller uploaded it, or may use (write: owns) its project."""
    _, user = await require_auth(ctx)
    row = await ctx.db.get(file_id)
    if row is None:
        raise not_found("File")
    if row["userId"] == user["_id"]:
        return row
    if row.get("projectId") is None:
        raise forbidden()
    access = await require_project_access(ctx, row["projectId"], allow_public=not write)
    if write and not access.is_owner:
        raise forbidden()
    return row


@query(args={"fileId": v.id("files")}, returns=v.union(v.string(), v.null()))
async def getUrl(ctx: QueryCtx, args: dict[str, Any]) -> str | None:
    row = await _accessible_file(ctx, args["fileId"], write=False)
    return await ctx.storage.get_url(row["storageId"])


async def delete_file(ctx: MutationCtx, row: Document) -> None:
    """Delete a file row and its stored bytes (if they are still there and no other row, one
    saved before storage ids had owners, points at them)."""
    await ctx.db.delete(row["_id"])
    if await _file_of_storage(ctx, row["storageId"]) is not None:
        return  # read after the delete above: only another row is found
    if await ctx.storage.get_metadata(row["storageId"]) is not None:
        await ctx.storage.delete(row["storageId"])


@mutation(args={"fileId": v.id("files")}, returns=v.null())
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete a file: its uploader or the owner of its project may."""
    row = await _accessible_file(ctx, args["fileId"], write=True)
    await delete_file(ctx, row)


#: An upload is "unsaved" once it is this old with no files row (an upload URL is valid for
#: an hour, and save follows the upload at once).
UNSAVED_AFTER_MS = 24 * 3600 * 1000.0
#: How far back the daily cleanup looks: a week (an upload older than that, missed by every
#: run, stays), and how many uploads one run checks at most (a mutation's read limits).
_CLEANUP_WINDOW_MS = 7 * 24 * 3600 * 1000.0
_CLEANUP_BATCH = 1000


@internal_mutation(args={"olderThanMs": v.optional(v.number())}, returns=v.number())
async def deleteUnsavedUploads(ctx: MutationCtx, args: dict[str, Any]) -> float:
    """Delete stored files that no files row points at and that are older than `olderThanMs`
    (default a day); returns how many. Run daily by the cron in functions/crons.py."""
    newest = time.time() * 1000 - args.get("olderThanMs", UNSAVED_AFTER_MS)
    oldest = newest - _CLEANUP_WINDOW_MS
    uploads = await (
        ctx.db.system.query("_storage")
        .with_index(
            "by_creation_time", lambda q: q.gte("_creationTime", oldest).lt("_creationTime", newest)
        )
        .take(_CLEANUP_BATCH)
    )
    deleted = 0
    for upload in uploads:
        if await _file_of_storage(ctx, upload["_id"]) is None:
            await ctx.storage.delete(upload["_id"])
            deleted += 1
    return float(deleted)
