"""Stripe Checkout and Billing Portal sessions for the signed-in user, through Stripe's official
SDK (async, over httpx). Invariant: a user has one Stripe customer, created once and stored once
(billing:claimStripeCustomer) by whichever comes first: the action users:store and the Clerk
webhook schedule when they create the user (`createCustomer`), or the user's first checkout
(users from before billing was configured), however many race.
Env: STRIPE_SECRET_KEY (required); STRIPE_API_BASE (optional: another API address, e.g. a
local stand-in in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import stripe
from stripe.params import CustomerCreateParams

from functions.lib.auth import Document
from functions.lib.errors import invalid, unauthorized
from reactive import ActionCtx, action, internal, internal_action, v

__all__ = [
    "createBillingPortalSession",
    "createCheckoutSession",
    "createCustomer",
    "customer_idempotency_key",
    "stripe_client",
]

log = logging.getLogger("functions.actions.stripe")

#: Retries of a failed Stripe call (connection errors, 409 and 5xx; safe: every POST carries an
#: idempotency key). A 409 is what a racing checkout gets while the other creates the customer.
_MAX_NETWORK_RETRIES = 2

_session_url = v.object({"url": v.union(v.string(), v.null())})


def customer_idempotency_key(user_id: str) -> str:
    """The Idempotency-Key of creating `user_id`'s customer: Stripe answers every request with
    this key (for 24 hours) with the customer the first one created."""
    return f"reactive-customer-{user_id}"


@contextlib.asynccontextmanager
async def stripe_client() -> AsyncIterator[stripe.StripeClient]:
    """A StripeClient for STRIPE_SECRET_KEY whose requests are async (httpx), closed on exit.

    Its HTTP client cannot make blocking calls, so a sync SDK method fails loudly instead of
    stalling the event loop. Stripe's invalid-request errors (an unknown price, say) become
    AppError STRIPE_INVALID_REQUEST; any other Stripe failure is a server error.
    """
    secret_key = os.environ.get("STRIPE_SECRET_KEY", "")
    if not secret_key:
        raise RuntimeError("STRIPE_SECRET_KEY is not set: billing is not configured")
    api_base = os.environ.get("STRIPE_API_BASE")
    # Built in a thread: the client loads the CA bundle from disk.
    http_client = await asyncio.to_thread(stripe.HTTPXClient)
    try:
        yield stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=http_client,
            max_network_retries=_MAX_NETWORK_RETRIES,
        )
    except stripe.InvalidRequestError as exc:
        message = exc.user_message or str(exc)
        raise invalid("STRIPE_INVALID_REQUEST", message) from exc
    finally:
        await http_client.close_async()  # type: ignore[no-untyped-call]  # untyped in stripe


async def _signed_in_user(ctx: ActionCtx) -> Document:
    """The caller's users row; UNAUTHORIZED when signed out or not synced from Clerk yet."""
    identity = await ctx.auth.get_user_identity()
    if identity is None or identity.subject is None:
        raise unauthorized()
    user: Document | None = await ctx.run_query(
        internal.users.getByClerkId, {"clerkId": identity.subject}
    )
    if user is None:
        raise unauthorized("User not found in database")
    return user


async def _customer_id(ctx: ActionCtx, client: stripe.StripeClient, user: Document) -> str:
    """The user's Stripe customer, created (once, see the module invariant) if they have none."""
    if user.get("stripeCustomerId"):
        return str(user["stripeCustomerId"])
    params: CustomerCreateParams = {"metadata": {"clerkId": user["clerkId"], "userId": user["_id"]}}
    if user.get("email"):  # "" for phone-only users; Stripe takes "" as "unset"
        params["email"] = user["email"]
    options: stripe.RequestOptions = {"idempotency_key": customer_idempotency_key(user["_id"])}
    customer = await client.v1.customers.create_async(params, options)
    winner: str = await ctx.run_mutation(
        internal.billing.claimStripeCustomer,
        {"userId": user["_id"], "stripeCustomerId": customer.id},
    )
    if winner != customer.id:
        # Only when Stripe forgot the key (older than 24 h): ours is referenced nowhere.
        await _delete_orphan(client, customer.id)
    return winner


async def _delete_orphan(client: stripe.StripeClient, customer_id: str) -> None:
    try:
        await client.v1.customers.delete_async(customer_id)
    except stripe.StripeError as exc:  # the checkout can go on; the customer is unused
        log.warning("could not delete unused Stripe customer %s: %s", customer_id, exc)


@internal_action(args={"userId": v.id("users")}, returns=v.union(v.string(), v.null()))
async def createCustomer(ctx: ActionCtx, args: dict[str, Any]) -> str | None:
    """Create a new user's Stripe customer (scheduled by the mutation that created the user);
    the customer id, or null when billing is not configured or the user is gone."""
    if not os.environ.get("STRIPE_SECRET_KEY"):
        return None  # billing is off here: a checkout would refuse anyway
    user: Document | None = await ctx.run_query(internal.users.getById, {"userId": args["userId"]})
    if user is None:
        return None
    async with stripe_client() as client:
        return await _customer_id(ctx, client, user)


@action(
    args={"priceId": v.string(), "successUrl": v.string(), "cancelUrl": v.string()},
    returns=_session_url,
)
async def createCheckoutSession(ctx: ActionCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A Checkout session subscribing the caller to `priceId`; returns its `url`."""
    user = await _signed_in_user(ctx)
    async with stripe_client() as client:
        customer_id = await _customer_id(ctx, client, user)
        params: Any = {
            "customer": customer_id,
            "mode": "subscription",
            "payment_method_types": ["card"],
            "line_items": [{"price": args["priceId"], "quantity": 1}],
            "success_url": args["successUrl"],
            "cancel_url": args["cancelUrl"],
            "subscription_data": {"metadata": {"userId": user["_id"]}},
        }
        session = await client.v1.checkout.sessions.create_async(params)
    return {"url": session.url}


@action(args={"returnUrl": v.string()}, returns=_session_url)
async def createBillingPortalSession(ctx: ActionCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A Billing Portal session for the caller's Stripe customer; returns its `url`.

    NO_BILLING_ACCOUNT when the caller has no customer yet (they never started a checkout).
    """
    user = await _signed_in_user(ctx)
    if not user.get("stripeCustomerId"):
        raise invalid("NO_BILLING_ACCOUNT", "No billing account found: subscribe first")
    async with stripe_client() as client:
        params: Any = {"customer": user["stripeCustomerId"], "return_url": args["returnUrl"]}
        session = await client.v1.billing_portal.sessions.create_async(params)
    return {"url": session.url}
