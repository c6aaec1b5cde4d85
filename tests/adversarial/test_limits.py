"""Convex's limits against a real server process: a function over one fails with an error
that names the limit, the database is left as it was, and the server keeps serving.

The server runs with the limits lowered (knobs from its environment) so that crossing them
is quick; tests/projects/limits holds the functions that cross them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adversarial.attacks import call, unharmed_server
from tests.live_server import LiveServer

LIMITS = Path(__file__).parent.parent / "projects" / "limits"

pytestmark = pytest.mark.usefixtures("still_serving")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "REACTIVE_MAX_DOCUMENTS_WRITTEN": "50",
        "REACTIVE_MAX_BYTES_WRITTEN": "20000",
        "REACTIVE_MAX_DOCUMENTS_SCANNED": "40",
        "REACTIVE_MAX_INDEX_RANGES_READ": "20",
        "REACTIVE_QUERY_MUTATION_TIMEOUT_S": "0.5",
        "REACTIVE_ACTION_TIMEOUT_S": "1",
    }
    with unharmed_server(LIMITS, env, tmp_path_factory, dev=False) as live:
        yield live


def failure(server: LiveServer, kind: str, path: str, args: dict[str, Any]) -> str:
    response = httpx.post(f"{server.url}/api/{kind}", json={"path": path, "args": args}, timeout=30)
    body = response.json()
    assert body.get("status") == "error", body
    return str(body["errorMessage"])


def count(server: LiveServer, group: str) -> float:
    return float(call(server.url, "query", "items:count", {"group": group}))


def test_writing_too_many_documents_commits_none_of_them(server):
    assert call(server.url, "mutation", "items:add", {"group": "w", "count": 50.0}) == 50.0
    message = failure(server, "mutation", "items:add", {"group": "w2", "count": 51.0})
    assert "Too many documents written" in message and "(limit: 50)" in message
    assert "Write in batches" in message
    assert count(server, "w2") == 0.0


def test_writing_too_many_bytes_commits_nothing(server):
    args = {"group": "b", "count": 30.0, "size": 1000.0}
    message = failure(server, "mutation", "items:add", args)
    assert "Too many bytes written" in message and "(limit: 20000 bytes)" in message
    assert count(server, "b") == 0.0


def test_scanning_too_many_documents_fails_and_a_mutation_commits_nothing(server):
    call(server.url, "mutation", "items:add", {"group": "s", "count": 45.0})
    message = failure(server, "query", "items:read_all", {"group": "s"})
    assert "Too many documents read" in message and "(limit: 40)" in message
    assert "index range" in message
    assert "Too many documents read" in failure(
        server, "mutation", "items:touch_all", {"group": "s"}
    )
    assert count(server, "touched") == 0.0  # its insert before the reads was not committed


def test_too_many_index_ranges_fail_and_commit_nothing(server):
    message = failure(server, "mutation", "items:get_many", {"group": "g", "gets": 25.0})
    assert "Too many reads" in message and "(limit: 20 db.get calls and queries)" in message
    assert count(server, "g") == 0.0


def test_arrays_over_8192_elements_are_refused_and_commit_nothing(server):
    message = failure(server, "mutation", "items:add_list", {"group": "l", "length": 8193.0})
    assert "has 8193 elements; the limit is 8192" in message
    assert count(server, "l") == 0.0
    big = {"group": "l", "count": 1.0, "extra": [0.0] * 8193}  # arguments too: a 400
    response = httpx.post(f"{server.url}/api/mutation", json={"path": "items:add", "args": big})
    assert response.status_code == 400 and "8193 elements" in response.json()["message"]
    assert count(server, "l") == 0.0


def test_a_mutation_over_its_time_limit_commits_nothing(server):
    message = failure(server, "mutation", "items:slow_mutation", {"group": "t", "seconds": 30.0})
    assert "Function execution timed out (maximum duration: 0.5s)" in message
    assert count(server, "t") == 0.0
    assert call(server.url, "query", "items:slow_query", {"seconds": 0.05}) == "done"


def test_an_action_over_its_time_limit_fails_naming_it(server):
    message = failure(server, "action", "items:slow_action", {"seconds": 30.0})
    assert "Function execution timed out (maximum duration: 1s)" in message


def test_a_second_paginate_in_a_mutation_commits_nothing(server):
    message = failure(server, "mutation", "items:paginate_twice", {"group": "p"})
    assert "ran multiple paginated queries" in message
    assert count(server, "p") == 0.0


def test_get_with_the_wrong_table_is_refused(server):
    other = call(server.url, "mutation", "items:add_other", {"body": "x"})
    assert call(server.url, "query", "items:get_from", {"table": "others", "id": other})
    message = failure(server, "query", "items:get_from", {"table": "items", "id": other})
    assert "is an id of table 'others', not of 'items'" in message


def test_eq_undefined_finds_documents_missing_the_field(server):
    call(server.url, "mutation", "items:add_tagged", {"group": "u"})
    call(server.url, "mutation", "items:add_tagged", {"group": "u", "tag": "x"})
    assert call(server.url, "query", "items:untagged", {"group": "u"}) == 1.0


def test_maximum_bytes_read_splits_a_page(server):
    call(server.url, "mutation", "items:add", {"group": "pg", "count": 6.0, "size": 300.0})
    opts = {"numItems": 10.0, "cursor": None, "maximumBytesRead": 1000.0}
    page = call(server.url, "query", "items:page", {"group": "pg", "paginationOpts": opts})
    assert len(page["page"]) == 3 and page["pageStatus"] == "SplitRequired"
    assert isinstance(page["splitCursor"], str) and page["isDone"] is False
