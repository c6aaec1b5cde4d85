"""Users synced from Clerk (or stored by the client after sign-in) and updated by Stripe billing:
the caller's own row and the internal functions webhooks and actions call. Invariants: one row per
Clerk user id; new users start on plan "free" with STARTING_CREDITS credits; each Clerk webhook
message is applied once and in event order, and a deleted Clerk user is never created again.
"""

from __future__ import annotations

import time
from typing import Any

from functions.files import delete_file
from functions.lib.auth import Document, get_auth_user, user_by_clerk_id
from functions.lib.errors import invalid, not_found, unauthorized
from functions.projects import delete_project_tree
from reactive import (
    UNDEFINED,
    DatabaseReader,
    MutationCtx,
    QueryCtx,
    internal,
    internal_mutation,
    internal_query,
    mutation,
    query,
    v,
)

__all__ = [
    "STARTING_CREDITS",
    "applyClerkEvent",
    "current",
    "getByClerkId",
    "getById",
    "handleSubscriptionCanceled",
    "handleSubscriptionCreated",
    "store",
    "updateStripeCustomerId",
]

STARTING_CREDITS = 100.0


@query(args={})
async def current(ctx: QueryCtx, args: dict[str, Any]) -> Document | None:
    """The signed-in user's row, or null (signed out, or not synced from Clerk yet)."""
    return await get_auth_user(ctx)


@internal_query(args={"userId": v.id("users")})
async def getById(ctx: QueryCtx, args: dict[str, Any]) -> Document | None:
    return await ctx.db.get(args["userId"])


@internal_query(args={"clerkId": v.string()})
async def getByClerkId(ctx: QueryCtx, args: dict[str, Any]) -> Document | None:
    return await user_by_clerk_id(ctx.db, args["clerkId"])


@internal_mutation(args={"userId": v.id("users"), "stripeCustomerId": v.string()}, returns=v.null())
async def updateStripeCustomerId(ctx: MutationCtx, args: dict[str, Any]) -> None:
    if await ctx.db.get(args["userId"]) is None:
        raise not_found("User")
    fields: dict[str, Any] = {
        "stripeCustomerId": args["stripeCustomerId"],
        "updatedAt": time.time() * 1000,
    }
    await ctx.db.patch(args["userId"], fields)


async def _by_stripe_customer(db: DatabaseReader, customer_id: str) -> Document | None:
    query = db.query("users").with_index(
        "by_stripeCustomerId", lambda q: q.eq("stripeCustomerId", customer_id)
    )
    return await query.unique()


@internal_mutation(
    args={"stripeCustomerId": v.string(), "subscriptionId": v.string()},
    returns=v.union(v.id("users"), v.null()),
)
async def handleSubscriptionCreated(ctx: MutationCtx, args: dict[str, Any]) -> str | None:
    """Checkout completed: the customer's user goes "pro" with this subscription.

    Returns the user's id, or null when no user has this Stripe customer id.
    """
    user = await _by_stripe_customer(ctx.db, args["stripeCustomerId"])
    if user is None:
        return None
    fields: dict[str, Any] = {
        "plan": "pro",
        "stripeSubscriptionId": args["subscriptionId"],
        "updatedAt": time.time() * 1000,
    }
    await ctx.db.patch(user["_id"], fields)
    return str(user["_id"])


@internal_mutation(
    args={"stripeCustomerId": v.string(), "subscriptionId": v.string()},
    returns=v.union(v.id("users"), v.null()),
)
async def handleSubscriptionCanceled(ctx: MutationCtx, args: dict[str, Any]) -> str | None:
    """A subscription ended: its user goes back to "free".

    There is no index on stripeSubscriptionId, so the user is found by the subscription's
    customer (every Stripe Subscription carries `customer`) and the subscription id must match
    the stored one: a late event for an old subscription leaves a newer one alone. Returns the
    user's id if downgraded, else null.
    """
    user = await _by_stripe_customer(ctx.db, args["stripeCustomerId"])
    if user is None or user.get("stripeSubscriptionId") != args["subscriptionId"]:
        return None
    fields: dict[str, Any] = {
        "plan": "free",
        "stripeSubscriptionId": UNDEFINED,
        "updatedAt": time.time() * 1000,
    }
    await ctx.db.patch(user["_id"], fields)
    return str(user["_id"])


clerk_profile = v.object(
    {"email": v.string(), "name": v.optional(v.string()), "imageUrl": v.optional(v.string())}
)

#: What applyClerkEvent did: applied it, or acknowledged it and changed nothing because the
#: message was processed before, a newer event was applied already, or the user was deleted.
clerk_outcome = v.union(
    v.literal("applied"), v.literal("duplicate"), v.literal("stale"), v.literal("deleted_user")
)


@internal_mutation(
    args={
        "svixId": v.string(),
        "type": v.union(
            v.literal("user.created"), v.literal("user.updated"), v.literal("user.deleted")
        ),
        "clerkId": v.string(),
        "timestamp": v.number(),
        "profile": v.optional(clerk_profile),
    },
    returns=clerk_outcome,
)
async def applyClerkEvent(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Apply one Clerk webhook message (svix id `svixId`, event time `timestamp` in ms), once.

    A message seen before is a duplicate; a created/updated event older than the newest one
    applied to its user is stale; a deleted user stays deleted (Clerk never reuses ids). All
    three change nothing and are acknowledged, so Clerk stops retrying. A deletion is applied
    whatever its time: nothing can follow it.
    """
    db = ctx.db
    seen = db.query("clerkEvents").with_index("by_svixId", lambda q: q.eq("svixId", args["svixId"]))
    if await seen.first() is not None:
        return "duplicate"
    deleting = args["type"] == "user.deleted"
    if not deleting and "profile" not in args:
        raise invalid("INVALID_EVENT", f"{args['type']} needs the user's profile")
    now = time.time() * 1000
    await db.insert(
        "clerkEvents", {"svixId": args["svixId"], "type": args["type"], "processedAt": now}
    )
    state = await _clerk_state(ctx, args["clerkId"])
    if state is not None and state["deleted"]:
        return "deleted_user"
    if state is not None and not deleting and args["timestamp"] < state["lastEventAt"]:
        return "stale"
    newest = args["timestamp"] if state is None else max(args["timestamp"], state["lastEventAt"])
    fields = {"clerkId": args["clerkId"], "lastEventAt": newest, "deleted": deleting}
    if state is None:
        await db.insert("clerkUserStates", fields)
    else:
        await db.replace(state["_id"], fields)
    if deleting:
        await _delete_clerk_user(ctx, args["clerkId"])
    else:
        await _upsert_clerk_user(ctx, args["clerkId"], args["profile"])
    return "applied"


async def _clerk_state(ctx: QueryCtx | MutationCtx, clerk_id: str) -> Document | None:
    """What the webhook applied last for `clerk_id`: its time, and whether it deleted them."""
    query = ctx.db.query("clerkUserStates").with_index(
        "by_clerkId", lambda q: q.eq("clerkId", clerk_id)
    )
    return await query.unique()


async def _upsert_clerk_user(ctx: MutationCtx, clerk_id: str, fields: dict[str, Any]) -> str:
    """Create or update the row of a Clerk user (webhook user.created / user.updated).

    The profile fields mirror Clerk's: a name or image Clerk no longer has is removed.
    """
    now = time.time() * 1000
    profile: dict[str, Any] = {
        "email": fields["email"],
        "name": fields.get("name", UNDEFINED),
        "imageUrl": fields.get("imageUrl", UNDEFINED),
        "updatedAt": now,
    }
    user = await user_by_clerk_id(ctx.db, clerk_id)
    if user is not None:
        await ctx.db.patch(user["_id"], profile)
        return str(user["_id"])
    new_user = {"clerkId": clerk_id, "plan": "free", "credits": STARTING_CREDITS}
    new_user |= {name: value for name, value in profile.items() if value is not UNDEFINED}
    return await _create_user(ctx, new_user | {"createdAt": now})


async def _create_user(ctx: MutationCtx, row: Document) -> str:
    """Insert a new user, and schedule the creation of their Stripe customer: it happens after
    this mutation commits (and only if it does), in an action, not in anyone's request."""
    user_id = await ctx.db.insert("users", row)
    await ctx.scheduler.run_after(0, internal.actions.stripe.createCustomer, {"userId": user_id})
    return user_id


async def _delete_user_data(ctx: MutationCtx, user_id: str) -> None:
    """Remove what only made sense with the user: their projects (with everything in them),
    their comments and files elsewhere; tasks assigned to them become unassigned."""
    db = ctx.db
    owned = db.query("projects").with_index("by_userId", lambda q: q.eq("userId", user_id))
    for project in await owned.collect():
        await delete_project_tree(ctx, project["_id"])
    # Read after the cascade above, so rows it already deleted are not seen (read-your-writes).
    comments = db.query("comments").with_index("by_userId", lambda q: q.eq("userId", user_id))
    for row in await comments.collect():
        await db.delete(row["_id"])
    files = db.query("files").with_index("by_userId", lambda q: q.eq("userId", user_id))
    for row in await files.collect():
        await delete_file(ctx, row)
    assigned = db.query("tasks").with_index("by_assigneeId", lambda q: q.eq("assigneeId", user_id))
    unassigned: dict[str, Any] = {"assigneeId": UNDEFINED, "updatedAt": time.time() * 1000}
    for task in await assigned.collect():
        await db.patch(task["_id"], unassigned)


async def _delete_clerk_user(ctx: MutationCtx, clerk_id: str) -> None:
    """Delete a Clerk user's row and their data (webhook user.deleted), if they have a row."""
    user = await user_by_clerk_id(ctx.db, clerk_id)
    if user is None:
        return
    await _delete_user_data(ctx, user["_id"])
    await ctx.db.delete(user["_id"])


#: Identity attribute -> the users field `store` copies it to.
_IDENTITY_PROFILE = {"email": "email", "name": "name", "pictureUrl": "imageUrl"}


@mutation(args={}, returns=v.id("users"))
async def store(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Create or refresh the caller's row from their token; clients call it after signing in
    (Convex's "store user" pattern, for setups without the Clerk webhook, e.g. `reactive dev`).

    Only profile fields the token carries are written, and only when they changed, so signing
    in again neither erases what the webhook stored nor re-runs every query reading the row.
    A new user without an email claim gets "" (the schema requires a string). Returns the id.
    """
    identity = await ctx.auth.get_user_identity()
    if identity is None or identity.subject is None:
        raise unauthorized()
    state = await _clerk_state(ctx, identity.subject)
    if state is not None and state["deleted"]:  # a token issued before the deletion
        raise unauthorized("This account was deleted; sign up again to get a new one")
    profile = {
        field: identity[attribute]
        for attribute, field in _IDENTITY_PROFILE.items()
        if isinstance(identity.get(attribute), str)
    }
    now = time.time() * 1000
    user = await user_by_clerk_id(ctx.db, identity.subject)
    if user is None:
        new_user: Document = {"clerkId": identity.subject, "email": "", "plan": "free"}
        new_user |= profile | {"credits": STARTING_CREDITS, "createdAt": now, "updatedAt": now}
        return await _create_user(ctx, new_user)
    changed = {field: value for field, value in profile.items() if user.get(field) != value}
    if changed:
        await ctx.db.patch(user["_id"], changed | {"updatedAt": now})
    return str(user["_id"])
