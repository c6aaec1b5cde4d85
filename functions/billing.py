"""Stripe billing state: a user's one Stripe customer, and plan changes from Stripe's webhook
events. Invariants: once a user has a stripeCustomerId it is never replaced here; an event id
changes a plan at most once (its stripeEvents row commits in the transaction that applied it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from functions import users
from functions.lib.auth import Document
from functions.lib.errors import not_found
from reactive import DatabaseReader, MutationCtx, internal_mutation, v

__all__ = [
    "PlanChange",
    "SubscriptionChange",
    "applyStripeEvent",
    "claimStripeCustomer",
    "plan_change",
]


class SubscriptionChange(StrEnum):
    SUBSCRIBED = "subscribed"  # the user goes "pro" with this subscription
    CANCELED = "canceled"  # the user goes back to "free" if this is their subscription


#: customer.subscription.updated: statuses that grant or end "pro"; others (past_due,
#: incomplete, paused) leave the plan as it is while Stripe retries or waits for the customer.
_STATUS_CHANGES = {
    "active": SubscriptionChange.SUBSCRIBED,
    "trialing": SubscriptionChange.SUBSCRIBED,
    "canceled": SubscriptionChange.CANCELED,
    "unpaid": SubscriptionChange.CANCELED,
    "incomplete_expired": SubscriptionChange.CANCELED,
}


@dataclass(frozen=True, slots=True)
class PlanChange:
    """What one Stripe event does to the plan of the user with Stripe customer `customer_id`."""

    change: SubscriptionChange
    customer_id: str
    subscription_id: str

    def mutation_args(self, event_id: str, event_type: str) -> dict[str, Any]:
        """The args of billing:applyStripeEvent for this change made by event `event_id`."""
        return {
            "eventId": event_id,
            "type": event_type,
            "change": self.change.value,
            "stripeCustomerId": self.customer_id,
            "subscriptionId": self.subscription_id,
        }


def _object_id(obj: Mapping[str, Any], field: str) -> str:
    """The id in `obj[field]`, which Stripe sends as an id or, when expanded, as an object."""
    value = obj.get(field)
    if isinstance(value, Mapping):
        value = value.get("id")
    if not isinstance(value, str) or not value:
        raise ValueError(f"the event's object has no {field} id")
    return value


def plan_change(event_type: str, obj: Mapping[str, Any]) -> PlanChange | None:
    """The plan change of a webhook event of type `event_type` about `obj` (its
    data.object); None if it changes no plan. ValueError if `obj` lacks the ids it needs."""
    if event_type == "checkout.session.completed":
        if obj.get("mode") != "subscription" or not obj.get("subscription"):
            return None  # a one-off payment: no subscription to record
        change: SubscriptionChange | None = SubscriptionChange.SUBSCRIBED
        subscription_field = "subscription"
    elif event_type == "customer.subscription.deleted":
        change, subscription_field = SubscriptionChange.CANCELED, "id"
    elif event_type == "customer.subscription.updated":
        change, subscription_field = _STATUS_CHANGES.get(str(obj.get("status"))), "id"
    else:
        return None
    if change is None:
        return None
    return PlanChange(change, _object_id(obj, "customer"), _object_id(obj, subscription_field))


@internal_mutation(
    args={"userId": v.id("users"), "stripeCustomerId": v.string()}, returns=v.string()
)
async def claimStripeCustomer(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Make `stripeCustomerId` the user's Stripe customer unless they already have one.

    Returns the customer the user has now: when two checkouts race, both get the first one
    stored (the loser's read of the user conflicts with the winner's write, so it re-runs).
    """
    user = await ctx.db.get(args["userId"])
    if user is None:
        raise not_found("User")
    existing = user.get("stripeCustomerId")
    if isinstance(existing, str) and existing:
        return existing
    fields = {"stripeCustomerId": args["stripeCustomerId"], "updatedAt": time.time() * 1000}
    await ctx.db.patch(user["_id"], fields)
    return str(args["stripeCustomerId"])


async def _processed_event(db: DatabaseReader, event_id: str) -> Document | None:
    query = db.query("stripeEvents").with_index("by_eventId", lambda q: q.eq("eventId", event_id))
    return await query.first()


@internal_mutation(
    args={
        "eventId": v.string(),
        "type": v.string(),
        "change": v.union(*(v.literal(change.value) for change in SubscriptionChange)),
        "stripeCustomerId": v.string(),
        "subscriptionId": v.string(),
    },
    returns=v.object({"duplicate": v.boolean(), "userId": v.union(v.id("users"), v.null())}),
)
async def applyStripeEvent(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Apply a webhook event's plan change once, however often Stripe delivers the event.

    `duplicate` is true when the event was already processed (nothing changes); `userId` is
    the user whose plan changed, null if none did (no such customer, or another subscription).
    """
    if await _processed_event(ctx.db, args["eventId"]) is not None:
        return {"duplicate": True, "userId": None}
    handler = (
        users.handleSubscriptionCreated
        if args["change"] == SubscriptionChange.SUBSCRIBED
        else users.handleSubscriptionCanceled
    )
    subscription = {k: args[k] for k in ("stripeCustomerId", "subscriptionId")}
    user_id = await handler(ctx, subscription)  # in this transaction, so it commits with the row
    processed = {
        "eventId": args["eventId"],
        "type": args["type"],
        "processedAt": time.time() * 1000,
    }
    await ctx.db.insert("stripeEvents", processed)
    return {"duplicate": False, "userId": user_id}
