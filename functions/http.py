"""HTTP actions; `http` is the app's one router.
POST /webhooks/clerk takes Clerk user events signed in svix's scheme: "v1," + base64(HMAC-SHA256(
secret, f"{svix-id}.{svix-timestamp}.{body}")), each message (svix-id) applied once and in event
order (the event's `timestamp`): a replayed or late event is acknowledged and changes nothing.
POST /webhooks/stripe takes Stripe events signed as Stripe-Signature "t=<unix>,v1=" +
hex(HMAC-SHA256(secret, f"{t}.{body}")), each applied once.
Unverified requests get 400 and write nothing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import stripe
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from svix.webhooks import Webhook, WebhookVerificationError

from functions.billing import plan_change
from reactive import ActionCtx, HttpRouter, http_action, internal

__all__ = ["ClerkUser", "clerk_user", "clerk_webhook", "event_time", "http", "stripe_webhook"]

log = logging.getLogger("functions.http")

http = HttpRouter()


@dataclass(frozen=True, slots=True)
class ClerkUser:
    """The profile fields we keep from a Clerk user object."""

    clerk_id: str
    email: str
    name: str | None
    image_url: str | None

    def profile(self) -> dict[str, Any]:
        """The `profile` argument of users:applyClerkEvent."""
        profile: dict[str, Any] = {"email": self.email}
        if self.name:
            profile["name"] = self.name
        if self.image_url:
            profile["imageUrl"] = self.image_url
        return profile


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _primary_email(data: Mapping[str, Any]) -> str:
    """The primary address, else the first; "" for users without one (phone-only sign-up)."""
    addresses = [a for a in data.get("email_addresses") or [] if isinstance(a, Mapping)]
    primary_id = data.get("primary_email_address_id")
    chosen = next((a for a in addresses if a.get("id") == primary_id), None)
    chosen = chosen or (addresses[0] if addresses else {})
    return _text(chosen, "email_address") or ""


def _full_name(data: Mapping[str, Any]) -> str | None:
    parts = [part for part in (_text(data, "first_name"), _text(data, "last_name")) if part]
    return " ".join(parts) or _text(data, "username")


def _user_id(data: object) -> str:
    """The Clerk user id in an event's `data`; ValueError if there is none."""
    clerk_id = _text(data, "id") if isinstance(data, Mapping) else None
    if clerk_id is None:
        raise ValueError("event data has no user id")
    return clerk_id


def clerk_user(data: object) -> ClerkUser:
    """The user in a Clerk user.created / user.updated event's `data`; ValueError if it has
    no user id."""
    if not isinstance(data, Mapping):
        raise ValueError("event data is not an object")
    clerk_id = _user_id(data)
    image_url = _text(data, "image_url") or _text(data, "profile_image_url")
    return ClerkUser(clerk_id, _primary_email(data), _full_name(data), image_url)


def _verifier() -> Webhook | None:
    """The svix verifier for CLERK_WEBHOOK_SECRET; None when it is unset or malformed."""
    secret = os.environ.get("CLERK_WEBHOOK_SECRET", "")
    try:
        return Webhook(secret) if secret else None
    except Exception:  # a secret that is not whsec_<base64>: misconfiguration, not a bad request
        return None


def _signed(verifier: Webhook, body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether svix headers sign `body`: present, fresh (5 min) and matching the secret."""
    try:
        verifier.verify(body, dict(headers))
    except (WebhookVerificationError, ValueError) as exc:  # ValueError: garbled header or body
        log.warning("Clerk webhook rejected: %s", exc)
        return False
    return True


def _event(body: bytes) -> Mapping[str, Any]:
    """The verified body as an event object; ValueError when it is not one."""
    event = json.loads(body)
    if not isinstance(event, Mapping):
        raise ValueError("the body is not a JSON object")
    return event


def event_time(event: Mapping[str, Any]) -> float | None:
    """When Clerk emitted `event` (ms): its `timestamp`, else its user's `updated_at`."""
    data = event.get("data")
    updated_at = data.get("updated_at") if isinstance(data, Mapping) else None
    for found in (event.get("timestamp"), updated_at):
        if isinstance(found, int | float) and not isinstance(found, bool) and found >= 0:
            return float(found)
    return None


#: Response bodies for what users:applyClerkEvent did with an event for `clerk_id`.
_DONE = {
    "duplicate": "already processed message {message_id}",
    "stale": "ignored {kind} for {clerk_id}: a newer event was applied",
    "deleted_user": "ignored {kind} for {clerk_id}: the user was deleted",
}


async def _apply(ctx: ActionCtx, event: Mapping[str, Any], message_id: str) -> str:
    """Carry out one verified event; returns what was done (for the response body)."""
    kind, data = event.get("type"), event.get("data")
    if kind not in ("user.created", "user.updated", "user.deleted"):
        return f"ignored {kind}"  # acknowledged, so Clerk does not retry an event we do not use
    args: dict[str, Any] = {"svixId": message_id, "type": kind}
    if kind == "user.deleted":
        args["clerkId"] = _user_id(data)
    else:
        user = clerk_user(data)
        args |= {"clerkId": user.clerk_id, "profile": user.profile()}
    at = event_time(event)
    if at is None and kind != "user.deleted":  # a deletion applies whenever it was made
        raise ValueError(f"the {kind} event has no timestamp, so it cannot be put in order")
    args["timestamp"] = at or 0.0
    outcome = await ctx.run_mutation(internal.users.applyClerkEvent, args)
    if outcome == "applied":
        return f"{'deleted' if kind == 'user.deleted' else 'upserted'} {args['clerkId']}"
    return _DONE[outcome].format(message_id=message_id, kind=kind, clerk_id=args["clerkId"])


@http_action
async def clerk_webhook(ctx: ActionCtx, request: Request) -> Response:
    verifier = _verifier()
    if verifier is None:
        log.error("CLERK_WEBHOOK_SECRET is unset or not a whsec_ secret; Clerk will retry")
        return PlainTextResponse("Webhook secret not configured", status_code=500)
    body = await request.body()
    if not _signed(verifier, body, request.headers):
        return PlainTextResponse("Invalid or missing signature", status_code=400)
    try:
        # The svix-id header is signed, and svix keeps it across retries of one message.
        done = await _apply(ctx, _event(body), request.headers["svix-id"])
    except ValueError as exc:  # signed but unusable: a retry would not help
        return PlainTextResponse(f"Malformed event: {exc}", status_code=400)
    return PlainTextResponse(done, status_code=200)


http.route(path="/webhooks/clerk", method="POST", handler=clerk_webhook)


# -- Stripe ------------------------------------------------------------------------------------

#: How old a Stripe signature may be (Stripe's default): an older delivery is a replay.
_TOLERANCE_S = stripe.Webhook.DEFAULT_TOLERANCE


def _stripe_event(body: bytes, signature: str, secret: str) -> Mapping[str, Any]:
    """The event `signature` signs (fresh: 5 min); SignatureVerificationError if it does not,
    ValueError if the signed body is not a Stripe event."""
    # The SDK's check (the one Webhook.construct_event runs), given text as Stripe signs it;
    # the event is read as plain JSON: the SDK's event objects change shape between majors.
    stripe.WebhookSignature.verify_header(body.decode(), signature, secret, _TOLERANCE_S)
    event = _event(body)
    payload = event.get("data")
    obj = payload.get("object") if isinstance(payload, Mapping) else None
    if not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise ValueError("the event has no id or type")
    if not isinstance(obj, Mapping):
        raise ValueError("the event has no data.object")
    return event


async def _apply_stripe(ctx: ActionCtx, event: Mapping[str, Any]) -> str:
    """Carry out one verified event; returns what was done (for the response body)."""
    event_id, kind = event["id"], event["type"]
    change = plan_change(kind, event["data"]["object"])
    if change is None:
        return f"ignored {kind}"  # acknowledged, so Stripe does not retry it
    args = change.mutation_args(event_id, kind)
    result = await ctx.run_mutation(internal.billing.applyStripeEvent, args)
    return f"already processed {event_id}" if result["duplicate"] else f"applied {event_id}"


@http_action
async def stripe_webhook(ctx: ActionCtx, request: Request) -> Response:
    secret = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
    if not secret:
        log.error("STRIPE_WEBHOOK_SECRET is unset; Stripe will retry")
        return PlainTextResponse("Webhook secret not configured", status_code=500)
    signature = request.headers.get("stripe-signature")
    if not signature:
        return PlainTextResponse("Missing Stripe-Signature header", status_code=400)
    body = await request.body()
    try:
        event = _stripe_event(body, signature, secret)
        done = await _apply_stripe(ctx, event)
    except stripe.SignatureVerificationError as exc:
        log.warning("Stripe webhook rejected: %s", exc)
        return PlainTextResponse("Invalid Stripe signature", status_code=400)
    except ValueError as exc:  # signed but unusable (or not UTF-8): a retry would not help
        return PlainTextResponse(f"Malformed event: {exc}", status_code=400)
    return PlainTextResponse(done, status_code=200)


http.route(path="/webhooks/stripe", method="POST", handler=stripe_webhook)
