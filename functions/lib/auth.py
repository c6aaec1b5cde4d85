"""Who is calling and what they may touch: the signed-in user's row and project access.
Invariant: public functions reach data only through these checks; a failed check raises
AppError with code UNAUTHORIZED, NOT_FOUND or FORBIDDEN (see functions/lib/errors.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.lib.errors import forbidden, not_found, unauthorized
from reactive import DatabaseReader, MutationCtx, QueryCtx

__all__ = [
    "Document",
    "ProjectAccess",
    "get_auth_user",
    "is_public",
    "public_profile",
    "require_auth",
    "require_project_access",
    "user_by_clerk_id",
    "users_by_id",
]

#: A document as functions handle it (values are Convex values; see reactive.types.Value).
Document = dict[str, Any]
Ctx = QueryCtx | MutationCtx

#: User fields anyone who can see a project may see; email, plan and Stripe ids stay private.
_PUBLIC_USER_FIELDS = ("_id", "name", "imageUrl")


@dataclass(frozen=True, slots=True)
class ProjectAccess:
    """The signed-in user and a project they may read (owner, or a public project's reader)."""

    user: Document
    project: Document

    @property
    def is_owner(self) -> bool:
        return bool(self.project["userId"] == self.user["_id"])


async def user_by_clerk_id(db: DatabaseReader, clerk_id: str) -> Document | None:
    """The users row synced from the Clerk user `clerk_id`, if any."""
    query = db.query("users").with_index("by_clerkId", lambda q: q.eq("clerkId", clerk_id))
    return await query.unique()


async def get_auth_user(ctx: Ctx) -> Document | None:
    """The signed-in user's row, or None when signed out or not synced from Clerk yet."""
    identity = await ctx.auth.get_user_identity()
    if identity is None or identity.subject is None:
        return None
    return await user_by_clerk_id(ctx.db, identity.subject)


async def require_auth(ctx: Ctx) -> tuple[Mapping[str, Any], Document]:
    """(identity, user row) of the caller; UNAUTHORIZED when there is none."""
    identity = await ctx.auth.get_user_identity()
    if identity is None or identity.subject is None:
        raise unauthorized()
    user = await user_by_clerk_id(ctx.db, identity.subject)
    if user is None:
        # Signed in with Clerk, but the user.created webhook has not arrived (yet).
        raise unauthorized("User not found in database")
    return identity, user


async def require_project_access(
    ctx: Ctx, project_id: str, *, allow_public: bool = False
) -> ProjectAccess:
    """The caller may use `project_id`: they own it, or (`allow_public`, for reads) it is
    public. UNAUTHORIZED, NOT_FOUND {"resource": "Project"} or FORBIDDEN otherwise."""
    _, user = await require_auth(ctx)
    project = await ctx.db.get(project_id)
    if project is None:
        raise not_found("Project")
    access = ProjectAccess(user, project)
    if not access.is_owner and not (allow_public and is_public(project)):
        raise forbidden("Not authorized to access this project")
    return access


async def users_by_id(db: DatabaseReader, user_ids: Iterable[str]) -> dict[str, Document]:
    """The existing users among `user_ids`, each read once however often it is listed."""
    found: dict[str, Document] = {}
    for user_id in sorted(set(user_ids)):
        user = await db.get(user_id)
        if user is not None:
            found[user_id] = user
    return found


def is_public(project: Document) -> bool:
    """Public projects can be read (and, if they allow it, commented on) by any signed-in user."""
    settings = project["settings"]
    return isinstance(settings, dict) and settings.get("isPublic") is True


def public_profile(user: Document | None) -> Document | None:
    """What other users may see of `user` (None stays None, e.g. a deleted assignee)."""
    if user is None:
        return None
    return {name: user[name] for name in _PUBLIC_USER_FIELDS if name in user}
