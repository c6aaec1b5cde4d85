"""The seed app's files: upload, save, list with URLs, access rules, delete with bytes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.seed_helpers import SeedApp, running_seed_app
from tests.test_seed_app import ALICE, BOB, new_project


@pytest.fixture
def seed(tmp_path, issuer, monkeypatch) -> Iterator[SeedApp]:
    with running_seed_app(tmp_path, issuer, monkeypatch) as app:
        app.sign_up(ALICE)
        app.sign_up(BOB)
        yield app


def save(seed, data=b"report", name="report.txt", project=None, user=ALICE):
    storage_id = seed.upload(data, "text/plain", user=user)
    args = {"storageId": storage_id, "name": name}
    if project is not None:
        args["projectId"] = project
    return seed.mutation("files:save", args, user=user), storage_id


def test_upload_save_list_and_download(seed):
    project = new_project(seed)
    file_id, _ = save(seed, b"quarterly numbers", project=project)
    [listed] = seed.query("files:list", {"projectId": project}, user=ALICE)
    assert listed["_id"] == file_id and listed["size"] == 17.0 and listed["type"] == "text/plain"
    assert seed.fetch(listed["url"]).content == b"quarterly numbers"
    assert [f["_id"] for f in seed.query("files:listMine", {}, user=ALICE)] == [file_id]
    url = seed.query("files:getUrl", {"fileId": file_id}, user=ALICE)
    assert seed.fetch(url).status_code == 200


def test_other_users_cannot_see_or_delete_private_files(seed):
    project = new_project(seed)
    file_id, _ = save(seed, project=project)
    assert seed.error_data("query", "files:getUrl", {"fileId": file_id}, user=BOB)["code"] == (
        "FORBIDDEN"
    )
    assert seed.error_data("query", "files:list", {"projectId": project}, user=BOB)["code"] == (
        "FORBIDDEN"
    )
    assert seed.error_data("mutation", "files:remove", {"fileId": file_id}, user=BOB)["code"] == (
        "FORBIDDEN"
    )
    assert seed.query("files:listMine", {}, user=BOB) == []


def test_save_checks_the_upload_and_the_project(seed):
    other = seed.mutation("projects:create", {"name": "Bob's"}, user=BOB)
    storage_id = seed.upload(b"x", "text/plain", user=ALICE)
    data = seed.error_data(
        "mutation",
        "files:save",
        {"storageId": storage_id, "name": "x", "projectId": other},
        user=ALICE,
    )
    assert data["code"] == "FORBIDDEN"
    data = seed.error_data(
        "mutation", "files:save", {"storageId": storage_id, "name": "  "}, user=ALICE
    )
    assert data["code"] == "INVALID_NAME"
    body = seed.error("mutation", "files:save", {"storageId": "not-an-id", "name": "x"}, user=ALICE)
    assert "storageId" in body["errorMessage"]
    assert seed.query("files:listMine", {}, user=ALICE) == []


def test_remove_deletes_row_and_bytes(seed):
    file_id, _ = save(seed)
    url = seed.query("files:getUrl", {"fileId": file_id}, user=ALICE)
    assert seed.mutation("files:remove", {"fileId": file_id}, user=ALICE) is None
    assert seed.fetch(url).status_code == 404
    data = seed.error_data("query", "files:getUrl", {"fileId": file_id}, user=ALICE)
    assert data == {"code": "NOT_FOUND", "resource": "File"}


def test_saving_a_storage_id_someone_else_uploaded_is_forbidden_and_changes_nothing(seed):
    storage_id = seed.upload(b"alice's secret", "text/plain", user=ALICE)
    body = seed.error(
        "mutation", "files:save", {"storageId": storage_id, "name": "mine now"}, user=BOB
    )
    assert body["errorData"] == {"code": "FORBIDDEN"}
    assert "generateUploadUrl" in body["errorMessage"]  # says what to do instead
    assert seed.query("files:listMine", {}, user=BOB) == []
    file_id = seed.mutation("files:save", {"storageId": storage_id, "name": "a"}, user=ALICE)
    [mine] = seed.query("files:listMine", {}, user=ALICE)
    assert mine["_id"] == file_id and seed.fetch(mine["url"]).content == b"alice's secret"


def test_an_upload_is_saved_once(seed):
    file_id, storage_id = save(seed)
    data = seed.error_data(
        "mutation", "files:save", {"storageId": storage_id, "name": "again"}, user=ALICE
    )
    assert data["code"] == "ALREADY_SAVED"
    assert [f["_id"] for f in seed.query("files:listMine", {}, user=ALICE)] == [file_id]


def test_deleting_a_row_keeps_bytes_another_row_still_points_at(seed):
    # Rows saved before storage ids had owners may share a storage id: B's delete must not
    # take A's bytes.
    file_id, storage_id = save(seed, b"shared bytes")
    bob = seed.query("users:current", {}, user=BOB)
    row = {"userId": bob["_id"], "storageId": storage_id, "name": "stolen", "type": "t"}
    stolen = seed.insert("files", row | {"size": 12.0, "createdAt": 0.0})
    assert seed.mutation("files:remove", {"fileId": stolen}, user=BOB) is None
    url = seed.query("files:getUrl", {"fileId": file_id}, user=ALICE)
    assert seed.fetch(url).content == b"shared bytes"


def test_the_daily_cron_deletes_uploads_never_saved_and_keeps_saved_ones(seed):
    _, kept = save(seed)
    unsaved = seed.upload(b"abandoned", "text/plain", user=ALICE)
    young = seed.run_internal("files:deleteUnsavedUploads", {})
    assert young.error is None and young.value == 0.0  # not a day old yet: left alone
    outcome = seed.run_internal("files:deleteUnsavedUploads", {"olderThanMs": -1000.0})
    assert outcome.error is None and outcome.value == 1.0
    reactive = seed.client.app.state.reactive

    async def stored() -> set[str]:
        async def read(tx):
            return {row["_id"] for row in await tx.query("_storage").collect()}

        return (await reactive.db.run_query(read)).value

    assert seed.client.portal.call(stored) == {kept}
    assert unsaved != kept
    crons = reactive.project.crons.jobs
    assert crons["delete unsaved uploads"].path == "files:deleteUnsavedUploads"
