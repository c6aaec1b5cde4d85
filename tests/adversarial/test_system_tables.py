"""App code can never write a system table (any name starting with "_", existing or not) and
reads them only through ctx.db.system, as in Convex: each attempt is refused with a clear error
and the stored file is unchanged."""

from __future__ import annotations

import httpx
import pytest

from tests.adversarial.attacks import call, upload


def answer(url, kind, path, args):
    return httpx.post(f"{url}/api/{kind}", json={"path": path, "args": args}).json()


@pytest.fixture
def stored(storage_server):
    upload_url = call(storage_server.url, "mutation", "files:upload_url")
    response = upload(upload_url, b"genuine", "text/plain")
    assert response.status_code == 200
    return response.json()["storageId"]


def assert_untouched(server, storage_id):
    assert call(server.url, "query", "files:count") == 1.0
    file_url = call(server.url, "query", "files:url", {"storageId": storage_id})
    assert httpx.get(file_url).content == b"genuine"


@pytest.mark.parametrize("table", ["_storage", "_deployments", "_scheduled_functions", "_x"])
def test_inserting_into_a_system_table_is_refused(storage_server, stored, table):
    body = answer(storage_server.url, "mutation", "system_tables:insert", {"table": table})
    assert body["status"] == "error" and "SystemTableWrite" in body["errorMessage"]
    assert_untouched(storage_server, stored)


@pytest.mark.parametrize("how", ["patch", "replace", "delete"])
def test_changing_a_stored_files_row_is_refused(storage_server, stored, how):
    args = {"storageId": stored, "how": how}
    body = answer(storage_server.url, "mutation", "system_tables:change", args)
    assert body["status"] == "error" and "SystemTableWrite" in body["errorMessage"]
    assert_untouched(storage_server, stored)


@pytest.mark.parametrize("path", ["system_tables:get", "system_tables:scan"])
def test_reading_a_system_table_around_ctx_db_system_is_refused(storage_server, stored, path):
    args = {"storageId": stored} if path.endswith("get") else {}
    body = answer(storage_server.url, "query", path, args)
    assert body["status"] == "error"
    assert "System tables can only be accessed with db.system" in body["errorMessage"]
