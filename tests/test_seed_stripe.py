"""Stripe billing in the seed app (functions/actions/stripe.py, functions/billing.py and the
/webhooks/stripe route): sessions made through the SDK against a local Stripe stand-in, one
customer per user (made by an action scheduled at sign-up, or by the first checkout) however
checkouts race, and signed webhook events applied once."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tests.seed_helpers import SeedApp, running_seed_app
from tests.stripe_stub import StripeStub, event, new_webhook_secret, signature_header

# The SDK's HTTPXClient hands httpx the form body as `data=`, which httpx deprecates (it would
# only be shown, not raised, outside tests); nothing of ours triggers it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content:DeprecationWarning"
)

CLERK_ID = "user_2stripe"
CHECKOUT = "actions/stripe:createCheckoutSession"
PORTAL = "actions/stripe:createBillingPortalSession"
CHECKOUT_ARGS = {
    "priceId": "price_pro_monthly",
    "successUrl": "https://app.example.test/billing/success",
    "cancelUrl": "https://app.example.test/billing/cancel",
}
PORTAL_ARGS = {"returnUrl": "https://app.example.test/settings"}


@pytest.fixture
def stub() -> Iterator[StripeStub]:
    with StripeStub() as local:
        yield local


@dataclass(slots=True)
class Billing:
    seed: SeedApp
    stub: StripeStub
    webhook_secret: str

    def sign_up(self, clerk_id: str = CLERK_ID, *, customer: bool = False) -> dict[str, Any]:
        """Sign `clerk_id` up and wait for the jobs it scheduled. Without `customer` billing is
        off meanwhile, so no Stripe customer is made at sign-up (as for a user who signed up
        before billing was configured): the checkout makes it."""
        key = os.environ.pop("STRIPE_SECRET_KEY") if not customer else None
        try:
            user = self.seed.sign_up(clerk_id)
            self.seed.wait_for_jobs()
        finally:
            if key is not None:
                os.environ["STRIPE_SECRET_KEY"] = key
        return user

    def user(self, clerk_id: str = CLERK_ID) -> dict[str, Any]:
        user: dict[str, Any] = self.seed.query("users:current", {}, user=clerk_id)
        return user

    def checkout(self, clerk_id: str = CLERK_ID, **args: str) -> str:
        """The url of a new checkout session for `clerk_id`."""
        value = self.seed.ok("action", CHECKOUT, CHECKOUT_ARGS | args, user=clerk_id)
        return value["url"]  # type: ignore[no-any-return]

    def subscriber(self, customer_id: str = "cus_hooked") -> dict[str, Any]:
        """A signed-up user whose Stripe customer is `customer_id` (no API call)."""
        user = self.sign_up(CLERK_ID)
        args = {"userId": user["_id"], "stripeCustomerId": customer_id}
        assert self.seed.run_internal("billing:claimStripeCustomer", args).value == customer_id
        return self.user()

    def post_event(self, evt: Any, *, headers: dict[str, str] | None = None) -> Any:
        """POST `evt` to /webhooks/stripe, signed with the endpoint secret unless `headers`."""
        body = orjson.dumps(evt)
        if headers is None:
            headers = {"Stripe-Signature": signature_header(self.webhook_secret, body)}
        headers = {"content-type": "application/json"} | headers
        return self.seed.client.post("/webhooks/stripe", content=body, headers=headers)


@pytest.fixture
def billing(tmp_path, issuer, stub, monkeypatch) -> Iterator[Billing]:
    secret = new_webhook_secret()
    monkeypatch.setenv("STRIPE_SECRET_KEY", stub.api_key)
    monkeypatch.setenv("STRIPE_API_BASE", stub.url)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", secret)
    # The SDK keeps a telemetry id under $XDG_CONFIG_HOME: not in the home of whoever runs tests.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with running_seed_app(tmp_path, issuer, monkeypatch) as seed:
        yield Billing(seed, stub, secret)


def checkout_completed(
    customer: Any = "cus_hooked", subscription: str | None = "sub_1", *, mode: str = "subscription"
) -> dict[str, Any]:
    session = {
        "id": "cs_test_done",
        "object": "checkout.session",
        "mode": mode,
        "status": "complete",
        "customer": customer,
        "subscription": subscription,
    }
    return event("checkout.session.completed", session)


def subscription_event(
    kind: str, status: str, *, sub_id: str = "sub_1", customer: str = "cus_hooked"
) -> dict[str, Any]:
    subscription = {"id": sub_id, "object": "subscription", "customer": customer, "status": status}
    return event(f"customer.subscription.{kind}", subscription)


def parallel(*calls: Any) -> list[Any]:
    """Run the calls at the same time in threads; their results in order."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


# -- checkout and portal -----------------------------------------------------------------------


def test_checkout_creates_the_customer_and_returns_the_session_url(billing):
    user = billing.sign_up(CLERK_ID)
    url = billing.checkout()

    (create,) = billing.stub.calls("POST", "/v1/customers")
    customer_id = billing.user()["stripeCustomerId"]
    assert customer_id in billing.stub.customers and create.status == 200
    assert create.params == {
        "email": f"{CLERK_ID}@example.test",
        "metadata[clerkId]": CLERK_ID,
        "metadata[userId]": user["_id"],
    }
    assert create.idempotency_key == f"reactive-customer-{user['_id']}"
    assert create.headers["authorization"] == f"Bearer {billing.stub.api_key}"
    (session,) = billing.stub.calls("POST", "/v1/checkout/sessions")
    assert url == session.response["url"] and url.startswith("https://checkout.stripe.test/")
    assert session.params == {
        "customer": customer_id,
        "mode": "subscription",
        "payment_method_types[0]": "card",
        "line_items[0][price]": "price_pro_monthly",
        "line_items[0][quantity]": "1",
        "success_url": CHECKOUT_ARGS["successUrl"],
        "cancel_url": CHECKOUT_ARGS["cancelUrl"],
        "subscription_data[metadata][userId]": user["_id"],
    }


def test_sign_up_creates_the_customer_in_a_scheduled_action_and_checkout_uses_it(billing):
    user = billing.sign_up(CLERK_ID, customer=True)
    (create,) = billing.stub.calls("POST", "/v1/customers")  # before any request of the user
    customer_id = billing.user()["stripeCustomerId"]
    assert customer_id in billing.stub.customers
    assert create.idempotency_key == f"reactive-customer-{user['_id']}"
    (job,) = [
        j for j in billing.seed.wait_for_jobs() if j["name"] == "actions/stripe:createCustomer"
    ]
    assert job["state"] == {"kind": "success"} and job["args"] == [{"userId": user["_id"]}]
    billing.checkout()
    assert len(billing.stub.calls("POST", "/v1/customers")) == 1
    (session,) = billing.stub.calls("POST", "/v1/checkout/sessions")
    assert session.params["customer"] == customer_id


def test_later_checkouts_reuse_the_stored_customer(billing):
    billing.sign_up(CLERK_ID)
    first, second = billing.checkout(), billing.checkout(priceId="price_pro_yearly")
    assert first != second
    assert len(billing.stub.calls("POST", "/v1/customers")) == 1
    sessions = billing.stub.calls("POST", "/v1/checkout/sessions")
    customer_id = billing.user()["stripeCustomerId"]
    assert [s.params["customer"] for s in sessions] == [customer_id, customer_id]
    assert sessions[1].params["line_items[0][price]"] == "price_pro_yearly"


def test_racing_checkouts_create_one_customer(billing):
    billing.sign_up(CLERK_ID)
    # Both actions reach Stripe before either stores a customer; the first keeps its key busy.
    billing.stub.gate_customer_creations(2)
    billing.stub.processing_delay_s = 0.2
    urls = parallel(billing.checkout, billing.checkout)

    assert not billing.stub.gate_timed_out and urls[0] != urls[1]
    (customer_id,) = billing.stub.customers
    # The loser met Stripe's "key in use" 409, retried, and was handed the same customer.
    assert len(billing.stub.calls("POST", "/v1/customers", status=409)) == 1
    assert len(billing.stub.calls("POST", "/v1/customers", status=200)) == 2
    sessions = billing.stub.calls("POST", "/v1/checkout/sessions")
    assert [s.params["customer"] for s in sessions] == [customer_id, customer_id]
    assert billing.user()["stripeCustomerId"] == customer_id
    assert billing.stub.deleted_customers == []


def test_racing_checkouts_keep_one_customer_when_stripe_forgot_the_key(billing):
    billing.sign_up(CLERK_ID)
    billing.stub.honour_idempotency = False  # e.g. a key older than Stripe's 24 hours
    billing.stub.gate_customer_creations(2)
    parallel(billing.checkout, billing.checkout)

    assert not billing.stub.gate_timed_out
    assert len(billing.stub.calls("POST", "/v1/customers", status=200)) == 2
    stored = billing.user()["stripeCustomerId"]
    assert list(billing.stub.customers) == [stored]  # the loser deleted the one it made
    (orphan,) = billing.stub.deleted_customers
    assert orphan != stored
    sessions = billing.stub.calls("POST", "/v1/checkout/sessions")
    assert [s.params["customer"] for s in sessions] == [stored, stored]


def test_portal_session_for_the_stored_customer(billing):
    billing.sign_up(CLERK_ID)
    billing.checkout()
    value = billing.seed.ok("action", PORTAL, PORTAL_ARGS, user=CLERK_ID)

    (request,) = billing.stub.calls("POST", "/v1/billing_portal/sessions")
    customer_id = billing.user()["stripeCustomerId"]
    assert request.params == {"customer": customer_id, "return_url": PORTAL_ARGS["returnUrl"]}
    assert value["url"].startswith("https://billing.stripe.test/p/session/bps_")


def test_portal_without_billing_account_is_refused_before_stripe(billing):
    billing.sign_up(CLERK_ID)
    data = billing.seed.error_data("action", PORTAL, PORTAL_ARGS, user=CLERK_ID)
    assert data["code"] == "NO_BILLING_ACCOUNT" and "billing account" in data["message"]
    assert billing.stub.requests == []


@pytest.mark.parametrize(("path", "args"), [(CHECKOUT, CHECKOUT_ARGS), (PORTAL, PORTAL_ARGS)])
@pytest.mark.parametrize("signed_up", [False, True])
def test_callers_without_a_user_are_unauthorized(billing, path, args, signed_up):
    if signed_up:
        billing.sign_up("user_someone_else")
    as_user = CLERK_ID if signed_up else None  # signed in with Clerk, but never synced
    data = billing.seed.error_data("action", path, args, user=as_user)
    assert data["code"] == "UNAUTHORIZED"
    assert billing.stub.requests == []


def test_an_unknown_price_is_a_stripe_invalid_request(billing):
    billing.sign_up(CLERK_ID)
    args = CHECKOUT_ARGS | {"priceId": "gold"}
    data = billing.seed.error_data("action", CHECKOUT, args, user=CLERK_ID)
    assert data == {"code": "STRIPE_INVALID_REQUEST", "message": "No such price: 'gold'"}


def test_without_a_secret_key_nothing_reaches_stripe(billing, monkeypatch):
    billing.sign_up(CLERK_ID)
    monkeypatch.delenv("STRIPE_SECRET_KEY")
    body = billing.seed.error("action", CHECKOUT, CHECKOUT_ARGS, user=CLERK_ID)
    assert "STRIPE_SECRET_KEY is not set" in body["errorMessage"]
    assert billing.stub.requests == [] and "stripeCustomerId" not in billing.user()


# -- webhooks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("customer", ["cus_hooked", {"id": "cus_hooked", "object": "customer"}])
def test_checkout_completed_makes_the_customer_pro(billing, customer):
    billing.subscriber()
    evt = checkout_completed(customer)
    response = billing.post_event(evt)
    assert response.status_code == 200 and response.text == f"applied {evt['id']}"
    user = billing.user()
    assert user["plan"] == "pro" and user["stripeSubscriptionId"] == "sub_1"


def test_a_one_off_payment_checkout_is_ignored(billing):
    billing.subscriber()
    response = billing.post_event(checkout_completed(subscription=None, mode="payment"))
    assert response.status_code == 200 and response.text == "ignored checkout.session.completed"
    assert billing.user()["plan"] == "free"


def test_subscription_deleted_makes_the_customer_free(billing):
    billing.subscriber()
    billing.post_event(checkout_completed())
    response = billing.post_event(subscription_event("deleted", "canceled"))
    assert response.status_code == 200 and response.text.startswith("applied evt_")
    user = billing.user()
    assert user["plan"] == "free" and "stripeSubscriptionId" not in user


def test_deleting_an_older_subscription_keeps_the_current_one(billing):
    billing.subscriber()
    billing.post_event(checkout_completed(subscription="sub_new"))
    old_deleted = subscription_event("deleted", "canceled", sub_id="sub_old")
    assert billing.post_event(old_deleted).status_code == 200
    user = billing.user()
    assert user["plan"] == "pro" and user["stripeSubscriptionId"] == "sub_new"


@pytest.mark.parametrize(
    ("status", "plan"),
    [
        ("active", "pro"),
        ("trialing", "pro"),
        ("canceled", "free"),
        ("unpaid", "free"),
        ("incomplete_expired", "free"),
        ("past_due", "pro"),  # Stripe is still retrying the payment: no change yet
    ],
)
def test_subscription_updated_follows_the_status(billing, status, plan):
    billing.subscriber()
    billing.post_event(checkout_completed())
    response = billing.post_event(subscription_event("updated", status))
    assert response.status_code == 200
    assert billing.user()["plan"] == plan


def test_subscription_updated_to_active_upgrades_a_free_customer(billing):
    billing.subscriber()
    response = billing.post_event(subscription_event("updated", "trialing", sub_id="sub_trial"))
    assert response.text.startswith("applied evt_")
    user = billing.user()
    assert user["plan"] == "pro" and user["stripeSubscriptionId"] == "sub_trial"


def test_a_redelivered_event_changes_nothing(billing):
    billing.subscriber()
    upgrade = checkout_completed()
    assert billing.post_event(upgrade).text == f"applied {upgrade['id']}"
    billing.post_event(subscription_event("deleted", "canceled"))
    before = billing.user()
    assert before["plan"] == "free"

    time.sleep(0.002)  # a re-applied event would move updatedAt
    response = billing.post_event(upgrade)  # Stripe re-signs each delivery
    assert response.status_code == 200 and response.text == f"already processed {upgrade['id']}"
    assert billing.user() == before


def test_concurrent_deliveries_of_one_event_apply_it_once(billing):
    billing.subscriber()
    evt = checkout_completed()
    responses = parallel(lambda: billing.post_event(evt), lambda: billing.post_event(evt))
    assert [r.status_code for r in responses] == [200, 200]
    assert sorted(r.text for r in responses) == [
        f"already processed {evt['id']}",
        f"applied {evt['id']}",
    ]
    assert billing.user()["plan"] == "pro"


def test_unknown_event_types_are_acknowledged_and_ignored(billing):
    billing.subscriber()
    response = billing.post_event(event("invoice.paid", {"id": "in_1", "object": "invoice"}))
    assert response.status_code == 200 and response.text == "ignored invoice.paid"


def _signed_by(secret: str, body: bytes, **kwargs: Any) -> dict[str, str]:
    return {"Stripe-Signature": signature_header(secret, body, **kwargs)}


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(lambda billing, body: {}, id="missing"),
        pytest.param(lambda billing, body: {"Stripe-Signature": ""}, id="empty"),
        pytest.param(
            lambda billing, body: _signed_by(new_webhook_secret(), body), id="other-secret"
        ),
        pytest.param(
            lambda billing, body: _signed_by(billing.webhook_secret, body + b" "), id="other-body"
        ),
        pytest.param(
            lambda billing, body: _signed_by(
                billing.webhook_secret, body, timestamp=int(time.time()) - 600
            ),
            id="replayed-old",
        ),
        pytest.param(
            lambda billing, body: {
                "Stripe-Signature": _signed_by(billing.webhook_secret, body)[
                    "Stripe-Signature"
                ].replace("v1=", "v0=")
            },
            id="other-scheme",
        ),
        pytest.param(lambda billing, body: {"Stripe-Signature": "garbage"}, id="garbled"),
    ],
)
def test_bad_signatures_are_400_and_change_nothing(billing, make_headers):
    billing.subscriber()
    evt = checkout_completed()
    response = billing.post_event(evt, headers=make_headers(billing, orjson.dumps(evt)))
    assert response.status_code == 400 and "signature" in response.text.lower()
    assert billing.user()["plan"] == "free"
    # The event was not recorded as processed either: a good delivery still applies it.
    assert billing.post_event(evt).text == f"applied {evt['id']}"


def test_a_signed_but_malformed_event_is_400(billing):
    billing.subscriber()
    no_customer = subscription_event("deleted", "canceled")
    del no_customer["data"]["object"]["customer"]
    for evt in (no_customer, {"id": "evt_x", "type": "invoice.paid"}, [1]):
        response = billing.post_event(evt)
        assert response.status_code == 400 and response.text.startswith("Malformed event"), evt
    for body in (b"not json", b'{"id": "evt_\xff"}'):
        headers = _signed_by(billing.webhook_secret, body)
        response = billing.seed.client.post("/webhooks/stripe", content=body, headers=headers)
        assert response.status_code == 400 and response.text.startswith("Malformed event"), body
    assert billing.user()["plan"] == "free"


def test_a_missing_webhook_secret_is_500_so_stripe_retries(billing, monkeypatch):
    billing.subscriber()
    evt = checkout_completed()
    headers = _signed_by(billing.webhook_secret, orjson.dumps(evt))
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")
    response = billing.post_event(evt, headers=headers)
    assert response.status_code == 500 and "not configured" in response.text
    assert billing.user()["plan"] == "free"


def test_only_post_is_routed(billing):
    assert billing.seed.client.get("/webhooks/stripe").status_code == 405
