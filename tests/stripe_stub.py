"""A local stand-in for Stripe on 127.0.0.1: the API calls the seed app's billing makes, and
signed webhook events as Stripe sends them.

API (form-encoded requests, JSON responses, `Authorization: Bearer <api_key>`, as the official
SDK speaks it): POST /v1/customers, DELETE /v1/customers/{id}, POST /v1/checkout/sessions,
POST /v1/billing_portal/sessions. Errors have Stripe's shape `{"error": {type, code, message,
param}}`. POSTs honour `Idempotency-Key` as Stripe does: a finished key replays its response
(`Idempotent-Replayed: true`), a key still in progress gets 409 `idempotency_key_in_use`, a key
reused with other parameters gets 400 `idempotency_error`. Every request is recorded in
`requests` (form keys flattened as sent: `line_items[0][price]`).

Webhooks: `signature_header(secret, payload)` is `t=<unix>,v1=<hex HMAC-SHA256(secret,
f"{t}.{payload}")>`; `event(type, obj)` wraps an API object in an Event.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.threaded_server import ThreadedServer

__all__ = [
    "StripeStub",
    "StubRequest",
    "event",
    "new_webhook_secret",
    "signature_header",
]

_GATE_TIMEOUT_S = 5.0

Handler = Callable[[Request, dict[str, str]], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class StubRequest:
    """One request as the stub received it."""

    method: str
    path: str
    #: Form fields with Stripe's bracketed keys, e.g. {"metadata[userId]": "..."}.
    params: dict[str, str]
    #: Header names in lower case.
    headers: dict[str, str]
    #: The status and JSON body the stub answered with.
    status: int
    response: Any

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass(slots=True)
class _Idempotent:
    """What the stub remembers of one Idempotency-Key: its request and, once done, its reply."""

    fingerprint: tuple[str, str, tuple[tuple[str, str], ...]]
    response: tuple[int, dict[str, Any]] | None = None


class StripeStub(ThreadedServer):
    """Stripe's API for one secret key `api_key`, served at `url` (use as STRIPE_API_BASE).

    Knobs for tests: `honour_idempotency` (False: every POST acts anew, as if the key had
    expired), `processing_delay_s` (time a POST is "in progress"), and
    `gate_customer_creations(n)` (the next n POST /v1/customers wait for each other, so
    racing callers provably overlap).
    """

    def __init__(self, api_key: str = "sk_test_stub") -> None:
        super().__init__()
        self.api_key = api_key
        self.honour_idempotency = True
        self.processing_delay_s = 0.0
        self.requests: list[StubRequest] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.deleted_customers: list[str] = []
        self._ids = itertools.count(1)
        self._keys: dict[str, _Idempotent] = {}
        self._gate_size = 0
        self._gate_arrivals = 0
        self._gate: asyncio.Event | None = None
        self.gate_timed_out = False

    # -- what tests look at ------------------------------------------------------------------

    def calls(self, method: str, path: str, *, status: int | None = None) -> list[StubRequest]:
        """Recorded requests to `method path` (answered with `status`, if given)."""
        return [
            r
            for r in self.requests
            if r.method == method and r.path == path and status in (None, r.status)
        ]

    def gate_customer_creations(self, count: int) -> None:
        """Hold the next `count` customer creations until all have arrived (or 5 s passed)."""
        self._gate_size, self._gate_arrivals, self._gate = count, 0, None

    # -- server ------------------------------------------------------------------------------

    def _app(self) -> Starlette:
        routes = [
            ("/v1/customers", "POST", self._create_customer),
            ("/v1/customers/{customer_id}", "DELETE", self._delete_customer),
            ("/v1/checkout/sessions", "POST", self._create_checkout_session),
            ("/v1/billing_portal/sessions", "POST", self._create_portal_session),
        ]
        return Starlette(
            routes=[
                Route(path, self._endpoint(handler), methods=[method])
                for path, method, handler in routes
            ]
        )

    # -- request plumbing --------------------------------------------------------------------

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            response = await self._respond(request, params, handler)
            headers = {name.lower(): value for name, value in request.headers.items()}
            answer = json.loads(response.body)
            self.requests.append(
                StubRequest(
                    request.method, request.url.path, params, headers, response.status_code, answer
                )
            )
            return response

        return endpoint

    async def _respond(
        self, request: Request, params: dict[str, str], handler: Handler
    ) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid_request_error", None, "Invalid API Key provided")
        if request.method == "POST" and request.url.path == "/v1/customers":
            await self._pass_gate()  # before the key is looked at: racers really overlap
        key = request.headers.get("idempotency-key")
        if request.method != "POST" or not key or not self.honour_idempotency:
            return await self._process(request, params, handler)
        return await self._idempotent(key, request, params, handler)

    async def _idempotent(
        self, key: str, request: Request, params: dict[str, str], handler: Handler
    ) -> Response:
        fingerprint = (request.method, request.url.path, tuple(sorted(params.items())))
        known = self._keys.get(key)
        if known is None:
            self._keys[key] = known = _Idempotent(fingerprint)
            response = await self._process(request, params, handler)
            known.response = (response.status_code, json.loads(response.body))
            return response
        if known.fingerprint != fingerprint:
            message = "Keys for idempotent requests can only be used with the same parameters"
            return _error(400, "idempotency_error", None, message)
        if known.response is None:
            message = "There is currently another in-progress request using this key"
            return _error(409, "idempotency_error", "idempotency_key_in_use", message)
        status, body = known.response
        return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})

    async def _process(
        self, request: Request, params: dict[str, str], handler: Handler
    ) -> Response:
        if self.processing_delay_s:
            await asyncio.sleep(self.processing_delay_s)
        return await handler(request, params)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_stub{next(self._ids):04d}{secrets.token_hex(4)}"

    async def _pass_gate(self) -> None:
        if self._gate_arrivals >= self._gate_size:
            return
        self._gate = self._gate or asyncio.Event()
        self._gate_arrivals += 1
        if self._gate_arrivals == self._gate_size:
            self._gate.set()
        try:
            await asyncio.wait_for(self._gate.wait(), _GATE_TIMEOUT_S)
        except TimeoutError:
            self.gate_timed_out = True

    # -- resources ---------------------------------------------------------------------------

    async def _create_customer(self, request: Request, params: dict[str, str]) -> Response:
        customer = {
            "id": self._new_id("cus"),
            "object": "customer",
            "created": int(time.time()),
            "email": params.get("email") or None,
            "metadata": _nested(params, "metadata"),
            "livemode": False,
        }
        self.customers[customer["id"]] = customer
        return JSONResponse(customer)

    async def _delete_customer(self, request: Request, params: dict[str, str]) -> Response:
        customer_id = request.path_params["customer_id"]
        if self.customers.pop(customer_id, None) is None:
            return _no_such("customer", customer_id, 404)
        self.deleted_customers.append(customer_id)
        return JSONResponse({"id": customer_id, "object": "customer", "deleted": True})

    async def _create_checkout_session(self, request: Request, params: dict[str, str]) -> Response:
        missing = _missing(params, "customer", "mode", "line_items[0][price]", "success_url")
        if missing:
            return missing
        if params["customer"] not in self.customers:
            return _no_such("customer", params["customer"])
        if not params["line_items[0][price]"].startswith("price_"):
            return _no_such("price", params["line_items[0][price]"], param="line_items[0][price]")
        session_id = self._new_id("cs_test")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "customer": params["customer"],
            "mode": params["mode"],
            "status": "open",
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "subscription": None,
            "livemode": False,
        }
        return JSONResponse(session)

    async def _create_portal_session(self, request: Request, params: dict[str, str]) -> Response:
        missing = _missing(params, "customer")
        if missing:
            return missing
        if params["customer"] not in self.customers:
            return _no_such("customer", params["customer"])
        session_id = self._new_id("bps")
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "url": f"https://billing.stripe.test/p/session/{session_id}",
            "customer": params["customer"],
            "return_url": params.get("return_url"),
            "livemode": False,
        }
        return JSONResponse(session)


def _nested(params: Mapping[str, str], name: str) -> dict[str, str]:
    """The hash `name[...]` of a form, e.g. metadata[userId]=u1 -> {"userId": "u1"}."""
    prefix = f"{name}["
    return {
        key[len(prefix) : -1]: value
        for key, value in params.items()
        if key.startswith(prefix) and key.endswith("]") and "[" not in key[len(prefix) :]
    }


def _error(status: int, kind: str, code: str | None, message: str, **extra: Any) -> Response:
    error = {"type": kind, "code": code, "message": message, **extra}
    return JSONResponse({"error": {k: v for k, v in error.items() if v is not None}}, status)


def _missing(params: Mapping[str, str], *names: str) -> Response | None:
    for name in names:
        if not params.get(name):
            message = f"Missing required param: {name}."
            return _error(400, "invalid_request_error", "parameter_missing", message, param=name)
    return None


def _no_such(resource: str, value: str, status: int = 400, *, param: str | None = None) -> Response:
    message = f"No such {resource}: '{value}'"
    kind, code = "invalid_request_error", "resource_missing"
    return _error(status, kind, code, message, param=param or resource)


# -- webhooks ----------------------------------------------------------------------------------


def new_webhook_secret() -> str:
    """An endpoint secret in Stripe's format."""
    return f"whsec_{secrets.token_hex(16)}"


def signature_header(secret: str, payload: bytes, *, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe sends with `payload` (computed here, not by the SDK)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(kind: str, obj: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """A webhook Event of type `kind` about the API object `obj`, shaped as Stripe sends it."""
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "type": kind,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
    }
