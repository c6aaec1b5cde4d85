"""A storage id is claimed only by its uploader: in the seed app, user B cannot save user A's
upload as B's file, and so cannot delete A's bytes by deleting "their" file."""

from __future__ import annotations

ALICE, BOB = "user_alice", "user_bob"


def blob_count(blob_dir):
    return sum(1 for path in blob_dir.rglob("*") if path.is_file())


def test_another_users_storage_id_cannot_be_saved_or_deleted(seed_server, blob_dir):
    seed_server.sign_up(ALICE)
    seed_server.sign_up(BOB)
    storage_id = seed_server.upload(b"alice's contract", user=ALICE)

    stolen = seed_server.call(
        "mutation", "files:save", {"storageId": storage_id, "name": "mine"}, user=BOB
    )
    assert stolen["status"] == "error" and stolen["errorData"] == {"code": "FORBIDDEN"}
    assert seed_server.ok("query", "files:listMine", {}, user=BOB) == []
    assert blob_count(blob_dir) == 1

    seed_server.ok("mutation", "files:save", {"storageId": storage_id, "name": "c"}, user=ALICE)
    [mine] = seed_server.ok("query", "files:listMine", {}, user=ALICE)
    removed = seed_server.call("mutation", "files:remove", {"fileId": mine["_id"]}, user=BOB)
    assert removed["status"] == "error" and removed["errorData"] == {"code": "FORBIDDEN"}
    assert blob_count(blob_dir) == 1


def test_control_the_uploader_saves_and_deletes_their_own_file(seed_server, blob_dir):
    seed_server.sign_up(ALICE)
    storage_id = seed_server.upload(b"draft", user=ALICE)
    file_id = seed_server.ok(
        "mutation", "files:save", {"storageId": storage_id, "name": "draft"}, user=ALICE
    )
    assert seed_server.ok("mutation", "files:remove", {"fileId": file_id}, user=ALICE) is None
    assert seed_server.ok("query", "files:listMine", {}, user=ALICE) == []
