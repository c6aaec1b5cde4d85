"""HTTP actions; `http` is the app's one router (billing adds /webhooks/stripe to it).
POST /webhooks/clerk takes Clerk user events signed in svix's scheme: "v1," + base64(HMAC-SHA256(
secret, f"{svix-id}.{svix-timestamp}.{body}")). Unverified requests get 400 and write nothing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from svix.webhooks import Webhook, WebhookVerificationError

from reactive.executor import ActionCtx, internal
from reactive.functions import HttpRouter, http_action

__all__ = ["ClerkUser", "clerk_user", "clerk_webhook", "http"]

log = logging.getLogger("functions.http")

http = HttpRouter()


@dataclass(frozen=True, slots=True)
class ClerkUser:
    """The profile fields we keep from a Clerk user object."""

    clerk_id: str
    email: str
    name: str | None
    image_url: str | None

    def mutation_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"clerkId": self.clerk_id, "email": self.email}
        if self.name:
            args["name"] = self.name
        if self.image_url:
            args["imageUrl"] = self.image_url
        return args


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


async def _apply(ctx: ActionCtx, event: Mapping[str, Any]) -> str:
    """Carry out one verified event; returns what was done (for the response body)."""
    kind, data = event.get("type"), event.get("data")
    if kind in ("user.created", "user.updated"):
        user = clerk_user(data)
        await ctx.run_mutation(internal.users.upsertFromClerk, user.mutation_args())
        return f"upserted {user.clerk_id}"
    if kind == "user.deleted":
        clerk_id = _user_id(data)
        await ctx.run_mutation(internal.users.deleteFromClerk, {"clerkId": clerk_id})
        return f"deleted {clerk_id}"
    return f"ignored {kind}"  # acknowledged, so Clerk does not retry an event we do not use


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
        done = await _apply(ctx, _event(body))
    except ValueError as exc:  # signed but unusable: a retry would not help
        return PlainTextResponse(f"Malformed event: {exc}", status_code=400)
    return PlainTextResponse(done, status_code=200)


http.route(path="/webhooks/clerk", method="POST", handler=clerk_webhook)
