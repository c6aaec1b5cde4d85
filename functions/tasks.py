"""Tasks of a project: create, change status, reorder, the board's read by status, and search
by title.
Invariant: `order` places a task on the board (ties by creation time), `completedAt` is set
exactly while a task is done, and only the project's owner changes its tasks.
"""

from __future__ import annotations

import re
import time
from typing import Any

from functions.lib.auth import Document, require_auth, require_project_access
from functions.lib.errors import forbidden, invalid, not_found
from reactive import UNDEFINED, DatabaseReader, MutationCtx, QueryCtx, mutation, query, v
from schema import priority, task_status

__all__ = [
    "board_order",
    "create",
    "listByStatus",
    "project_tasks",
    "reorder",
    "search",
    "updateStatus",
]

MAX_TITLE_LENGTH = 200
#: What one search returns at most (the best matches), and the longest search text accepted.
MAX_SEARCH_RESULTS = 50
MAX_SEARCH_LENGTH = 200
_WORD = re.compile(r"[^\W_]")


def board_order(task: Document) -> tuple[Any, Any]:
    """Sort key of a task on the board: its `order`, then its creation time."""
    return (task["order"], task["_creationTime"])


async def project_tasks(db: DatabaseReader, project_id: str) -> list[Document]:
    """Every task of the project, in board order."""
    query = db.query("tasks").with_index("by_projectId", lambda q: q.eq("projectId", project_id))
    return sorted(await query.collect(), key=board_order)


async def _next_order(db: DatabaseReader, project_id: str) -> float:
    # The last task by creation need not hold the highest order once tasks were reordered, and
    # no index sorts by order, so take the maximum over the project's own index range.
    tasks = await project_tasks(db, project_id)
    return max((float(task["order"]) for task in tasks), default=0.0) + 1.0


def _title(raw: str) -> str:
    title = raw.strip()
    if not title:
        raise invalid("INVALID_TITLE", "Task title must not be empty")
    if len(title) > MAX_TITLE_LENGTH:
        raise invalid("INVALID_TITLE", f"Task title must be at most {MAX_TITLE_LENGTH} characters")
    return title


def _optional_fields(args: dict[str, Any]) -> Document:
    """The optional task fields the caller gave; an all-blank description is left out."""
    fields: Document = {name: args[name] for name in ("dueDate", "assigneeId") if name in args}
    description = args.get("description", "").strip()
    if description:
        fields["description"] = description
    return fields


@mutation(
    args={
        "projectId": v.id("projects"),
        "title": v.string(),
        "description": v.optional(v.string()),
        "priority": v.optional(priority),
        "dueDate": v.optional(v.number()),
        "assigneeId": v.optional(v.id("users")),
    },
    returns=v.id("tasks"),
)
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A new "todo" task at the end of the project's board."""
    await require_project_access(ctx, args["projectId"])
    title = _title(args["title"])
    if "assigneeId" in args and await ctx.db.get(args["assigneeId"]) is None:
        raise not_found("User")
    now = time.time() * 1000
    task: Document = {
        "projectId": args["projectId"],
        "title": title,
        "status": "todo",
        "priority": args.get("priority", "medium"),
        "order": await _next_order(ctx.db, args["projectId"]),
        "createdAt": now,
        "updatedAt": now,
    }
    return await ctx.db.insert("tasks", task | _optional_fields(args))


@mutation(args={"taskId": v.id("tasks"), "status": task_status}, returns=v.null())
async def updateStatus(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Move a task to `status`; entering "done" stamps completedAt, leaving it removes it."""
    await require_auth(ctx)  # before the lookup: signed-out callers learn nothing about ids
    task: Document | None = await ctx.db.get(args["taskId"])
    if task is None:
        raise not_found("Task")
    await require_project_access(ctx, task["projectId"])
    now = time.time() * 1000
    completed_at: Any = UNDEFINED
    if args["status"] == "done":
        # Re-marking a done task keeps the time it was first completed.
        completed_at = task.get("completedAt", now) if task["status"] == "done" else now
    fields = {"status": args["status"], "completedAt": completed_at, "updatedAt": now}
    await ctx.db.patch(args["taskId"], fields)


async def _require_task_of(db: DatabaseReader, task_id: str, project_id: str) -> None:
    task: Document | None = await db.get(task_id)
    if task is None:
        raise not_found("Task")
    if task["projectId"] != project_id:
        raise forbidden(f"Task {task_id} does not belong to project {project_id}")


@mutation(args={"projectId": v.id("projects"), "taskIds": v.array(v.id("tasks"))}, returns=v.null())
async def reorder(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Give the listed tasks orders 1, 2, ... in list order; every one must be the project's.

    All ids are checked before anything is written, so a rejected call changes nothing.
    """
    project_id, task_ids = args["projectId"], args["taskIds"]
    await require_project_access(ctx, project_id)
    if len(set(task_ids)) != len(task_ids):
        raise invalid("DUPLICATE_TASK_IDS", "Each task may appear only once in taskIds")
    for task_id in task_ids:
        await _require_task_of(ctx.db, task_id, project_id)
    now = time.time() * 1000
    for position, task_id in enumerate(task_ids, start=1):
        await ctx.db.patch(task_id, {"order": float(position), "updatedAt": now})


@query(args={"projectId": v.id("projects"), "status": task_status})
async def listByStatus(ctx: QueryCtx, args: dict[str, Any]) -> list[Document]:
    """One column of the board: the project's tasks with `status`, in board order."""
    project_id = args["projectId"]
    await require_project_access(ctx, project_id, allow_public=True)
    query = ctx.db.query("tasks").with_index(
        "by_projectId_status", lambda q: q.eq("projectId", project_id).eq("status", args["status"])
    )
    return sorted(await query.collect(), key=board_order)


@query(args={"projectId": v.id("projects"), "query": v.string()})
async def search(ctx: QueryCtx, args: dict[str, Any]) -> list[Document]:
    """The project's tasks whose titles match `query`, best match first (the last word may be
    the start of a word: "des" finds "Design"); none for a query without words."""
    project_id = args["projectId"]
    await require_project_access(ctx, project_id, allow_public=True)
    text = args["query"]
    if len(text) > MAX_SEARCH_LENGTH:
        raise invalid(
            "INVALID_QUERY", f"Search text must be at most {MAX_SEARCH_LENGTH} characters"
        )
    if not _WORD.search(text):
        return []
    query = ctx.db.query("tasks").with_search_index(
        "search_title", lambda q: q.search("title", text).eq("projectId", project_id)
    )
    return await query.take(MAX_SEARCH_RESULTS)
