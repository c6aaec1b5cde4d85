"""Comments on tasks: add, list (oldest first, with authors' public profiles), remove.
Invariant: readable by whoever can read the project (owner; anyone signed in if it is public),
added only while the project allows comments, removed only by the author or the project owner.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from functions.lib.auth import (
    Document,
    ProjectAccess,
    public_profile,
    require_auth,
    require_project_access,
    users_by_id,
)
from functions.lib.errors import forbidden, invalid, not_found
from reactive import DatabaseReader, MutationCtx, QueryCtx, mutation, query, v

__all__ = ["add", "list", "remove", "task_comments"]

MAX_CONTENT_LENGTH = 5000


async def task_comments(db: DatabaseReader, task_id: str) -> Sequence[Document]:
    """The comments of one task, oldest first (through by_taskId)."""
    query = db.query("comments").with_index("by_taskId", lambda q: q.eq("taskId", task_id))
    comments: Sequence[Document] = await query.collect()
    return comments


async def _task_access(ctx: QueryCtx | MutationCtx, task_id: str) -> ProjectAccess:
    """Read access to the task's project (checked after sign-in, so ids leak nothing)."""
    await require_auth(ctx)
    task: Document | None = await ctx.db.get(task_id)
    if task is None:
        raise not_found("Task")
    return await require_project_access(ctx, task["projectId"], allow_public=True)


def _content(raw: str) -> str:
    content = raw.strip()
    if not content:
        raise invalid("INVALID_CONTENT", "Comment must not be empty")
    if len(content) > MAX_CONTENT_LENGTH:
        raise invalid("INVALID_CONTENT", f"Comment must be at most {MAX_CONTENT_LENGTH} characters")
    return content


@mutation(args={"taskId": v.id("tasks"), "content": v.string()}, returns=v.id("comments"))
async def add(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A comment by the caller on a task of a project they can read that allows comments."""
    access = await _task_access(ctx, args["taskId"])
    if not access.project["settings"]["allowComments"]:
        raise invalid("COMMENTS_DISABLED", "Comments are turned off for this project")
    now = time.time() * 1000
    comment: Document = {
        "taskId": args["taskId"],
        "userId": access.user["_id"],
        "content": _content(args["content"]),
        "createdAt": now,
        "updatedAt": now,
    }
    return await ctx.db.insert("comments", comment)


@query(args={"taskId": v.id("tasks")})
async def list(ctx: QueryCtx, args: dict[str, Any]) -> Any:
    """The task's comments, oldest first, each with its `author`'s public profile."""
    await _task_access(ctx, args["taskId"])
    comments = await task_comments(ctx.db, args["taskId"])
    authors = await users_by_id(ctx.db, (comment["userId"] for comment in comments))
    return [
        {**comment, "author": public_profile(authors.get(comment["userId"]))}
        for comment in comments
    ]


async def _may_remove(ctx: MutationCtx, comment: Document, user: Document) -> bool:
    if comment["userId"] == user["_id"]:
        return True
    task: Document | None = await ctx.db.get(comment["taskId"])
    project = None if task is None else await ctx.db.get(task["projectId"])
    return project is not None and project["userId"] == user["_id"]


@mutation(args={"commentId": v.id("comments")}, returns=v.null())
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete a comment; only its author or the owner of its project may."""
    _, user = await require_auth(ctx)
    comment = await ctx.db.get(args["commentId"])
    if comment is None:
        raise not_found("Comment")
    if not await _may_remove(ctx, comment, user):
        raise forbidden("Only the author or the project owner can remove a comment")
    await ctx.db.delete(args["commentId"])
