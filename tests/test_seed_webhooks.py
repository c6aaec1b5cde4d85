"""The Clerk webhook (functions/http.py): svix signatures, user sync, and what bad requests
leave untouched."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tests.seed_helpers import (
    SeedApp,
    clerk_event,
    new_webhook_secret,
    running_seed_app,
    svix_headers,
)

CLERK_ID = "user_2abc"


@pytest.fixture
def seed(tmp_path, issuer, monkeypatch) -> Iterator[SeedApp]:
    with running_seed_app(tmp_path, issuer, monkeypatch) as app:
        yield app


def current(seed: SeedApp, clerk_id: str = CLERK_ID):
    return seed.query("users:current", {}, user=clerk_id)


def created_event(**fields):
    defaults = {"email": "ada@example.test", "first_name": "Ada", "last_name": "Lovelace"}
    return clerk_event("user.created", CLERK_ID, **(defaults | fields))


def test_user_created_makes_a_free_user_with_starting_credits(seed):
    event = created_event(image_url="https://img.example.test/ada.png")
    response = seed.post_clerk(event)
    assert response.status_code == 200 and response.text == f"upserted {CLERK_ID}"
    user = current(seed)
    assert user["email"] == "ada@example.test"  # the primary address, not the first listed
    assert user["name"] == "Ada Lovelace" and user["imageUrl"] == "https://img.example.test/ada.png"
    assert user["plan"] == "free" and user["credits"] == 100.0
    assert user["createdAt"] == user["updatedAt"] and "stripeCustomerId" not in user


def test_user_updated_changes_the_profile_and_keeps_the_rest(seed):
    seed.post_clerk(created_event(image_url="https://img.example.test/old.png"))
    before = current(seed)
    updated = clerk_event(
        "user.updated", CLERK_ID, email="ada@new.example.test", first_name="Augusta"
    )
    assert seed.post_clerk(updated).status_code == 200
    after = current(seed)
    assert after["_id"] == before["_id"] and after["email"] == "ada@new.example.test"
    assert after["name"] == "Augusta" and "imageUrl" not in after
    assert after["plan"] == "free" and after["credits"] == 100.0
    assert after["createdAt"] == before["createdAt"] and after["updatedAt"] > before["updatedAt"]


def test_user_updated_for_an_unknown_user_creates_it(seed):
    event = clerk_event("user.updated", CLERK_ID, email="late@example.test")
    assert seed.post_clerk(event).status_code == 200
    user = current(seed)
    assert user["email"] == "late@example.test" and "name" not in user


def test_username_and_first_address_are_fallbacks(seed):
    event = clerk_event("user.created", CLERK_ID)
    event["data"]["username"] = "ada"
    assert seed.post_clerk(event).status_code == 200
    user = current(seed)
    assert user["name"] == "ada" and user["email"] == f"other-{CLERK_ID}@example.test"


def test_user_deleted_removes_the_user_and_their_data(seed):
    seed.post_clerk(created_event())
    seed.sign_up("user_owner", "Olive Owner")
    ada = current(seed)
    own_project = seed.mutation("projects:create", {"name": "Ada's"}, user=CLERK_ID)
    shared = seed.mutation("projects:create", {"name": "Shared"}, user="user_owner")
    seed.mutation(
        "projects:update",
        {"projectId": shared, "settings": {"isPublic": True}},
        user="user_owner",
    )
    task = seed.mutation(
        "tasks:create",
        {"projectId": shared, "title": "For Ada", "assigneeId": ada["_id"]},
        user="user_owner",
    )
    seed.mutation("comments:add", {"taskId": task, "content": "on it"}, user=CLERK_ID)
    seed.mutation("comments:add", {"taskId": task, "content": "thanks"}, user="user_owner")

    response = seed.post_clerk(clerk_event("user.deleted", CLERK_ID))
    assert response.status_code == 200 and response.text == f"deleted {CLERK_ID}"
    assert current(seed) is None
    assert seed.run_internal("users:getByClerkId", {"clerkId": CLERK_ID}).value is None
    missing = seed.error_data(
        "query", "projects:get", {"projectId": own_project}, user="user_owner"
    )
    assert missing == {"code": "NOT_FOUND", "resource": "Project"}
    board = seed.query("projects:get", {"projectId": shared}, user="user_owner")
    assert "assigneeId" not in board["tasks"][0] and board["tasks"][0]["assignee"] is None
    comments = seed.query("comments:list", {"taskId": task}, user="user_owner")
    assert [c["content"] for c in comments] == ["thanks"]


def test_repeated_delete_is_acknowledged(seed):
    assert seed.post_clerk(clerk_event("user.deleted", "user_never_seen")).status_code == 200


def test_unknown_event_types_are_acknowledged_and_ignored(seed):
    response = seed.post_clerk({"type": "session.created", "data": {"id": "sess_1"}})
    assert response.status_code == 200 and response.text == "ignored session.created"


def test_a_signed_but_malformed_event_is_400(seed):
    events = [{"type": "user.created", "data": {}}, {"type": "user.deleted", "data": None}, [1]]
    for event in events:
        response = seed.post_clerk(event)
        assert response.status_code == 400 and "Malformed event" in response.text


def _tampered(seed: SeedApp, body: bytes) -> dict[str, str]:
    headers = svix_headers(seed.webhook_secret, body)
    headers["svix-signature"] = headers["svix-signature"][:-6] + "AAAAA="
    return headers


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(lambda seed, body: {"content-type": "application/json"}, id="no-headers"),
        pytest.param(
            lambda seed, body: {
                k: v
                for k, v in svix_headers(seed.webhook_secret, body).items()
                if k != "svix-signature"
            },
            id="no-signature",
        ),
        pytest.param(
            lambda seed, body: svix_headers(new_webhook_secret(), body), id="other-secret"
        ),
        pytest.param(_tampered, id="tampered-signature"),
        pytest.param(
            lambda seed, body: svix_headers(seed.webhook_secret, body + b" "), id="other-body"
        ),
        pytest.param(
            lambda seed, body: svix_headers(
                seed.webhook_secret, body, sent_at=datetime.now(tz=UTC) - timedelta(minutes=10)
            ),
            id="replayed-old",
        ),
        pytest.param(
            lambda seed, body: (
                svix_headers(seed.webhook_secret, body) | {"svix-signature": "garbage"}
            ),
            id="malformed-signature",
        ),
    ],
)
def test_bad_signatures_are_400_and_change_nothing(seed, make_headers):
    event = created_event()
    response = seed.post_clerk(event, headers=make_headers(seed, orjson.dumps(event)))
    assert response.status_code == 400 and "signature" in response.text.lower()
    assert current(seed) is None


def test_signature_computed_by_hand_as_svix_does(seed):
    body = orjson.dumps(created_event())
    msg_id, timestamp = "msg_by_hand", str(int(datetime.now(tz=UTC).timestamp()))
    key = base64.b64decode(seed.webhook_secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "svix-id": msg_id,
        "svix-timestamp": timestamp,
        # svix sends every active signature, space separated; one matching v1 is enough
        "svix-signature": f"v1,{base64.b64encode(b'old' * 11).decode()} "
        f"v1,{base64.b64encode(digest).decode()}",
    }
    assert seed.client.post("/webhooks/clerk", content=body, headers=headers).status_code == 200
    assert current(seed)["email"] == "ada@example.test"


@pytest.mark.parametrize("secret", [None, "whsec_%%%not-base64%%%"])
def test_missing_or_malformed_secret_is_500_so_clerk_retries(seed, monkeypatch, secret):
    event = created_event()
    headers = svix_headers(seed.webhook_secret, orjson.dumps(event))
    if secret is None:
        monkeypatch.delenv("CLERK_WEBHOOK_SECRET")
    else:
        monkeypatch.setenv("CLERK_WEBHOOK_SECRET", secret)
    response = seed.post_clerk(event, headers=headers)
    assert response.status_code == 500 and "not configured" in response.text
    assert current(seed) is None


def test_only_post_is_routed(seed):
    assert seed.client.get("/webhooks/clerk").status_code == 405


# -- replays and order -------------------------------------------------------------------------


def test_a_redelivered_message_is_acknowledged_and_changes_nothing(seed):
    first = created_event(first_name="Ada")
    body = orjson.dumps(first)
    assert seed.post_clerk(first, headers=svix_headers(seed.webhook_secret, body, msg_id="m1"))
    renamed = clerk_event("user.updated", CLERK_ID, email="ada@example.test", first_name="Augusta")
    assert seed.post_clerk(renamed).status_code == 200
    # svix retries a message with its id and a fresh signature
    again = seed.post_clerk(first, headers=svix_headers(seed.webhook_secret, body, msg_id="m1"))
    assert again.status_code == 200 and again.text == "already processed message m1"
    assert current(seed)["name"] == "Augusta"


def test_a_late_update_does_not_undo_a_newer_one(seed):
    now = time.time() * 1000
    seed.post_clerk(created_event(timestamp=now - 3000))
    newer = clerk_event("user.updated", CLERK_ID, email="new@example.test", timestamp=now)
    older = clerk_event("user.updated", CLERK_ID, email="old@example.test", timestamp=now - 1000)
    assert seed.post_clerk(newer).status_code == 200
    late = seed.post_clerk(older)
    assert late.status_code == 200 and "a newer event was applied" in late.text
    assert current(seed)["email"] == "new@example.test"


@pytest.mark.parametrize("kind", ["user.created", "user.updated"])
def test_a_deleted_user_stays_deleted(seed, kind):
    now = time.time() * 1000
    seed.post_clerk(created_event(timestamp=now - 2000))
    assert seed.post_clerk(clerk_event("user.deleted", CLERK_ID, timestamp=now)).status_code == 200
    for at in (now - 1000, now + 1000):  # replayed from before, or claiming to be newer
        event = clerk_event(kind, CLERK_ID, email="back@example.test", timestamp=at)
        response = seed.post_clerk(event)
        assert response.status_code == 200 and "the user was deleted" in response.text
    assert current(seed) is None
    assert seed.run_internal("users:getByClerkId", {"clerkId": CLERK_ID}).value is None


def test_a_deleted_user_cannot_store_themselves_back(seed):
    seed.post_clerk(created_event())
    seed.post_clerk(clerk_event("user.deleted", CLERK_ID))
    data = seed.error_data("mutation", "users:store", {}, user=CLERK_ID)  # a token from before
    assert data["code"] == "UNAUTHORIZED" and "deleted" in data["message"]
    assert current(seed) is None


def test_an_update_without_a_timestamp_is_400_and_changes_nothing(seed):
    seed.post_clerk(created_event())
    event = clerk_event("user.updated", CLERK_ID, email="undated@example.test")
    del event["timestamp"]
    response = seed.post_clerk(event)
    assert response.status_code == 400 and "no timestamp" in response.text
    assert current(seed)["email"] == "ada@example.test"


def test_data_updated_at_orders_events_without_a_timestamp(seed):
    now = time.time() * 1000
    seed.post_clerk(created_event(timestamp=now))
    event = clerk_event("user.updated", CLERK_ID, email="older@example.test")
    del event["timestamp"]
    event["data"]["updated_at"] = now - 1000
    assert "a newer event was applied" in seed.post_clerk(event).text
    assert current(seed)["email"] == "ada@example.test"
