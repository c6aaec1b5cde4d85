"""Projects: the caller's paginated list, one project with its ordered tasks, create, update,
remove. Invariant: only the owner changes a project, and removing it deletes its tasks, their
comments and its file rows in the same transaction, so nothing is left pointing at it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from functions.comments import task_comments
from functions.files import delete_file
from functions.lib.auth import (
    Document,
    public_profile,
    require_auth,
    require_project_access,
    users_by_id,
)
from functions.lib.errors import invalid
from functions.tasks import project_tasks
from reactive import UNDEFINED, MutationCtx, QueryCtx, mutation, pagination_opts_validator, query, v
from schema import project_status

__all__ = [
    "create",
    "delete_project_tree",
    "get",
    "list",
    "project_name",
    "remove",
    "update",
]

MIN_NAME_LENGTH = 2
MAX_NAME_LENGTH = 100

#: A new project's settings; `update` merges changes into them.
DEFAULT_SETTINGS: Document = {"isPublic": False, "allowComments": True}


def project_name(raw: str) -> str:
    """`raw` trimmed, if it makes an acceptable project name; INVALID_NAME otherwise."""
    name = raw.strip()
    if len(name) < MIN_NAME_LENGTH:
        raise invalid("INVALID_NAME", f"Project name must be at least {MIN_NAME_LENGTH} characters")
    if len(name) > MAX_NAME_LENGTH:
        raise invalid("INVALID_NAME", f"Project name must be at most {MAX_NAME_LENGTH} characters")
    return name


@query(args={"status": v.optional(project_status), "paginationOpts": pagination_opts_validator})
async def list(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The caller's projects, newest first; only those with `status` when it is given."""
    _, user = await require_auth(ctx)
    user_id, status = user["_id"], args.get("status")
    if status is None:
        # by_userId_status sorts a user's projects by status before time, so the unfiltered
        # list reads by_userId, whose order within a user is creation time.
        projects = ctx.db.query("projects").with_index(
            "by_userId", lambda q: q.eq("userId", user_id)
        )
    else:
        projects = ctx.db.query("projects").with_index(
            "by_userId_status", lambda q: q.eq("userId", user_id).eq("status", status)
        )
    return await projects.order("desc").paginate(args["paginationOpts"])


@query(args={"projectId": v.id("projects")})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> Document:
    """The project with `tasks` in board order, each with its `assignee`'s public profile
    (each assignee read once, however many tasks they have)."""
    access = await require_project_access(ctx, args["projectId"], allow_public=True)
    tasks = await project_tasks(ctx.db, args["projectId"])
    assignees = await users_by_id(ctx.db, (t["assigneeId"] for t in tasks if "assigneeId" in t))
    with_assignees: Any = [
        {**task, "assignee": public_profile(assignees.get(task.get("assigneeId", "")))}
        for task in tasks
    ]
    return {**access.project, "tasks": with_assignees}


@mutation(
    args={
        "name": v.string(),
        "description": v.optional(v.string()),
        "organizationId": v.optional(v.string()),
    },
    returns=v.id("projects"),
)
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A new active, private project of the caller."""
    _, user = await require_auth(ctx)
    now = time.time() * 1000
    project: Document = {
        "userId": user["_id"],
        "name": project_name(args["name"]),
        "status": "active",
        "settings": dict(DEFAULT_SETTINGS),
        "createdAt": now,
        "updatedAt": now,
    }
    if "organizationId" in args:
        project["organizationId"] = args["organizationId"]
    description = args.get("description", "").strip()
    if description:
        project["description"] = description
    return await ctx.db.insert("projects", project)


_settings_changes = v.object(
    {
        "isPublic": v.optional(v.boolean()),
        "allowComments": v.optional(v.boolean()),
        "theme": v.optional(v.string()),
    }
)


@mutation(
    args={
        "projectId": v.id("projects"),
        "name": v.optional(v.string()),
        "description": v.optional(v.string()),
        "status": v.optional(project_status),
        "settings": v.optional(_settings_changes),
    },
    returns=v.id("projects"),
)
async def update(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Change the given fields; `settings` are merged into the current ones, and a blank
    `description` removes it."""
    access = await require_project_access(ctx, args["projectId"])
    changes: dict[str, Any] = {"updatedAt": time.time() * 1000}
    if "name" in args:
        changes["name"] = project_name(args["name"])
    if "description" in args:
        changes["description"] = args["description"].strip() or UNDEFINED
    if "status" in args:
        changes["status"] = args["status"]
    if "settings" in args:
        changes["settings"] = {**access.project["settings"], **args["settings"]}
    await ctx.db.patch(args["projectId"], changes)
    return str(args["projectId"])


async def delete_project_tree(ctx: MutationCtx, project_id: str) -> None:
    """Delete the project, its tasks, their comments and its files (rows and stored bytes),
    in the caller's one transaction."""
    db = ctx.db
    for task in await project_tasks(db, project_id):
        for comment in await task_comments(db, task["_id"]):
            await db.delete(comment["_id"])
        await db.delete(task["_id"])
    files = db.query("files").with_index("by_projectId", lambda q: q.eq("projectId", project_id))
    rows: Sequence[Document] = await files.collect()
    for file in rows:
        await delete_file(ctx, file)
    await db.delete(project_id)


@mutation(args={"projectId": v.id("projects")}, returns=v.null())
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete the project with everything in it."""
    await require_project_access(ctx, args["projectId"])
    await delete_project_tree(ctx, args["projectId"])
