"""Replayed and late Clerk webhooks, validly signed, against the seed app in a server process:
each svix message is applied once, events in their order, and a deleted user stays deleted.
Every such delivery is acknowledged (2xx), so Clerk stops retrying it."""

from __future__ import annotations

import time

from tests.seed_helpers import clerk_event

ALICE = "user_alice"


def current(seed_server):
    return seed_server.ok("query", "users:current", {}, user=ALICE)


def test_replaying_user_created_after_deletion_does_not_resurrect(seed_server):
    created = clerk_event("user.created", ALICE, email="a@example.test")
    assert seed_server.post_clerk(created, msg_id="msg_created").status_code == 200
    assert seed_server.post_clerk(clerk_event("user.deleted", ALICE)).status_code == 200

    replayed = seed_server.post_clerk(created, msg_id="msg_created")  # the same message again
    assert replayed.status_code == 200 and "already processed" in replayed.text
    recreated = seed_server.post_clerk(created)  # the same event as a new message
    assert recreated.status_code == 200 and "deleted" in recreated.text
    late = clerk_event("user.updated", ALICE, email="late@example.test")
    assert seed_server.post_clerk(late).status_code == 200
    assert current(seed_server) is None


def test_a_late_update_does_not_overwrite_a_newer_one(seed_server):
    now = time.time() * 1000
    seed_server.post_clerk(clerk_event("user.created", ALICE, email="v1@x.test", timestamp=now))
    newer = clerk_event("user.updated", ALICE, email="v3@x.test", timestamp=now + 2)
    older = clerk_event("user.updated", ALICE, email="v2@x.test", timestamp=now + 1)
    assert seed_server.post_clerk(newer).status_code == 200
    assert seed_server.post_clerk(older).status_code == 200
    assert current(seed_server)["email"] == "v3@x.test"


def test_control_events_in_order_are_applied(seed_server):
    now = time.time() * 1000
    seed_server.post_clerk(clerk_event("user.created", ALICE, email="v1@x.test", timestamp=now))
    update = clerk_event("user.updated", ALICE, email="v2@x.test", timestamp=now + 1)
    assert seed_server.post_clerk(update).text == f"upserted {ALICE}"
    assert current(seed_server)["email"] == "v2@x.test"
