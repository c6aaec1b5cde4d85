"""The seed app's functions (functions/*.py) through the real server: auth, projects, tasks,
comments, billing internals, and a live board over two WebSockets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from reactive.http import create_app
from reactive.transaction import Transaction
from tests.seed_helpers import ROOT, Peer, SeedApp, running_seed_app, updates

ALICE, BOB = "user_alice", "user_bob"
FIRST_PAGE = {"numItems": 2.0, "cursor": None}


@pytest.fixture
def seed(tmp_path, issuer, monkeypatch) -> Iterator[SeedApp]:
    with running_seed_app(tmp_path, issuer, monkeypatch) as app:
        app.sign_up(ALICE, "Alice Liddell")
        app.sign_up(BOB, "Bob Builder")
        yield app


def new_project(seed: SeedApp, name: str = "Website", user: str = ALICE) -> str:
    return seed.mutation("projects:create", {"name": name}, user=user)


def new_task(seed: SeedApp, project_id: str, title: str, **fields: Any) -> str:
    args = {"projectId": project_id, "title": title, **fields}
    return seed.mutation("tasks:create", args, user=ALICE)


def board(seed: SeedApp, project_id: str, user: str = ALICE) -> dict[str, Any]:
    return seed.query("projects:get", {"projectId": project_id}, user=user)


# -- users and sign-in -------------------------------------------------------------------------


def test_current_user_is_null_signed_out_and_own_row_signed_in(seed):
    assert seed.query("users:current", {}, user=None) is None
    alice = seed.query("users:current", {}, user=ALICE)
    assert alice["clerkId"] == ALICE and alice["email"] == f"{ALICE}@example.test"
    assert alice["plan"] == "free" and alice["credits"] == 100.0
    assert alice["name"] == "Alice Liddell"


def test_signed_in_user_without_a_row_is_unauthorized(seed):
    assert seed.query("users:current", {}, user="user_unsynced") is None
    data = seed.error_data("mutation", "projects:create", {"name": "Hi"}, user="user_unsynced")
    assert data == {"code": "UNAUTHORIZED", "message": "User not found in database"}


def _calls_for_every_public_function(seed: SeedApp) -> dict[str, tuple[str, dict[str, Any]]]:
    project_id = new_project(seed)
    task_id = new_task(seed, project_id, "Write copy")
    comment_id = seed.mutation("comments:add", {"taskId": task_id, "content": "hi"}, user=ALICE)
    storage_id = seed.upload(b"hello", "text/plain", user=ALICE)
    file_id = seed.mutation(
        "files:save",
        {"storageId": storage_id, "name": "a.txt", "projectId": project_id},
        user=ALICE,
    )
    return {
        "projects:list": ("query", {"paginationOpts": FIRST_PAGE}),
        "projects:get": ("query", {"projectId": project_id}),
        "projects:create": ("mutation", {"name": "Another"}),
        "projects:update": ("mutation", {"projectId": project_id, "name": "New name"}),
        "projects:remove": ("mutation", {"projectId": project_id}),
        "tasks:create": ("mutation", {"projectId": project_id, "title": "T"}),
        "tasks:updateStatus": ("mutation", {"taskId": task_id, "status": "done"}),
        "tasks:reorder": ("mutation", {"projectId": project_id, "taskIds": [task_id]}),
        "tasks:listByStatus": ("query", {"projectId": project_id, "status": "todo"}),
        "tasks:search": ("query", {"projectId": project_id, "query": "write"}),
        "comments:add": ("mutation", {"taskId": task_id, "content": "x"}),
        "comments:list": ("query", {"taskId": task_id}),
        "comments:remove": ("mutation", {"commentId": comment_id}),
        "files:generateUploadUrl": ("mutation", {}),
        "files:save": ("mutation", {"storageId": storage_id, "name": "a.txt"}),
        "files:list": ("query", {"projectId": project_id}),
        "files:listMine": ("query", {}),
        "files:getUrl": ("query", {"fileId": file_id}),
        "files:remove": ("mutation", {"fileId": file_id}),
        "actions/stripe:createCheckoutSession": (
            "action",
            {"priceId": "price_x", "successUrl": "https://a.test", "cancelUrl": "https://b.test"},
        ),
        "actions/stripe:createBillingPortalSession": ("action", {"returnUrl": "https://a.test"}),
        "users:store": ("mutation", {}),
    }


def test_every_public_function_requires_sign_in_and_changes_nothing(seed):
    calls = _calls_for_every_public_function(seed)
    registry = seed.client.app.state.reactive.project.registry
    public = {path for path, fn in registry if not fn.internal} - {"users:current"}
    assert set(calls) == public, "add the new public function to this test"
    before = board(seed, calls["projects:get"][1]["projectId"])
    for path, (kind, args) in calls.items():
        data = seed.error_data(kind, path, args, user=None)
        assert data["code"] == "UNAUTHORIZED", path
    assert board(seed, calls["projects:get"][1]["projectId"]) == before


def test_internal_functions_are_not_callable_by_clients(seed):
    body = seed.error("query", "users:getByClerkId", {"clerkId": ALICE}, user=ALICE)
    assert "Could not find public function" in body["errorMessage"]
    body = seed.error("mutation", "users:applyClerkEvent", {"clerkId": "x"}, user=None)
    assert "Could not find public function" in body["errorMessage"]


# -- projects ----------------------------------------------------------------------------------


def test_create_trims_and_sets_defaults(seed):
    project_id = seed.mutation(
        "projects:create",
        {"name": "  Launch  ", "description": "  the big one ", "organizationId": "org_1"},
        user=ALICE,
    )
    project = board(seed, project_id)
    alice = seed.query("users:current", {}, user=ALICE)
    assert project["name"] == "Launch" and project["description"] == "the big one"
    assert project["userId"] == alice["_id"] and project["organizationId"] == "org_1"
    assert project["status"] == "active" and project["tasks"] == []
    assert project["settings"] == {"isPublic": False, "allowComments": True}
    assert project["createdAt"] == project["updatedAt"] and project["createdAt"] > 1.6e12


@pytest.mark.parametrize("name", ["", "   ", " x ", "y" * 101])
def test_create_rejects_bad_names(seed, name):
    data = seed.error_data("mutation", "projects:create", {"name": name}, user=ALICE)
    assert data["code"] == "INVALID_NAME" and "characters" in data["message"]
    page = seed.query("projects:list", {"paginationOpts": FIRST_PAGE}, user=ALICE)
    assert page["page"] == []


def test_update_merges_settings_and_checks_the_name(seed):
    project_id = new_project(seed)
    seed.mutation(
        "projects:update",
        {"projectId": project_id, "settings": {"theme": "dark"}, "status": "archived"},
        user=ALICE,
    )
    seed.mutation(
        "projects:update", {"projectId": project_id, "settings": {"isPublic": True}}, user=ALICE
    )
    project = board(seed, project_id)
    assert project["settings"] == {"isPublic": True, "allowComments": True, "theme": "dark"}
    assert project["status"] == "archived" and project["updatedAt"] > project["createdAt"]
    data = seed.error_data(
        "mutation", "projects:update", {"projectId": project_id, "name": " a "}, user=ALICE
    )
    assert data["code"] == "INVALID_NAME"
    assert board(seed, project_id)["name"] == "Website"


def test_update_description_is_trimmed_and_blank_removes_it(seed):
    project_id = new_project(seed)
    args = {"projectId": project_id, "description": "  notes "}
    assert seed.mutation("projects:update", args, user=ALICE) == project_id
    assert board(seed, project_id)["description"] == "notes"
    seed.mutation("projects:update", {"projectId": project_id, "description": " "}, user=ALICE)
    assert "description" not in board(seed, project_id)


def test_list_pages_newest_first_and_only_own_projects(seed):
    names = [f"Project {i}" for i in range(5)]
    for name in names:
        new_project(seed, name)
    new_project(seed, "Bob's", user=BOB)
    seen, cursor, done = [], None, False
    while not done:
        page = seed.query(
            "projects:list", {"paginationOpts": {"numItems": 2.0, "cursor": cursor}}, user=ALICE
        )
        assert len(page["page"]) <= 2
        seen += [project["name"] for project in page["page"]]
        cursor, done = page["continueCursor"], page["isDone"]
    assert seen == names[::-1]


def test_list_filters_by_status_newest_first(seed):
    ids = [new_project(seed, f"P{i}") for i in range(4)]
    for project_id in (ids[0], ids[2]):
        args = {"projectId": project_id, "status": "archived"}
        seed.mutation("projects:update", args, user=ALICE)
    archived = seed.query(
        "projects:list",
        {"status": "archived", "paginationOpts": {"numItems": 10.0, "cursor": None}},
        user=ALICE,
    )
    assert [p["name"] for p in archived["page"]] == ["P2", "P0"] and archived["isDone"]
    everything = seed.query(
        "projects:list", {"paginationOpts": {"numItems": 10.0, "cursor": None}}, user=ALICE
    )
    assert [p["name"] for p in everything["page"]] == ["P3", "P2", "P1", "P0"]
    first = seed.query(
        "projects:list",
        {"status": "active", "paginationOpts": {"numItems": 1.0, "cursor": None}},
        user=ALICE,
    )
    assert [p["name"] for p in first["page"]] == ["P3"] and not first["isDone"]
    rest = seed.query(
        "projects:list",
        {
            "status": "active",
            "paginationOpts": {"numItems": 5.0, "cursor": first["continueCursor"]},
        },
        user=ALICE,
    )
    assert [p["name"] for p in rest["page"]] == ["P1"] and rest["isDone"]


def test_bad_pagination_cursor_fails_the_query(seed):
    body = seed.error(
        "query",
        "projects:list",
        {"paginationOpts": {"numItems": 2.0, "cursor": "nope"}},
        user=ALICE,
    )
    assert "InvalidCursor" in body["errorMessage"]


def test_get_returns_tasks_in_board_order_with_assignee_profiles(seed):
    bob = seed.query("users:current", {}, user=BOB)
    project_id = new_project(seed)
    first = new_task(seed, project_id, "First", assigneeId=bob["_id"])
    second = new_task(seed, project_id, "Second")
    third = new_task(seed, project_id, "Third", assigneeId=bob["_id"], priority="high")
    seed.mutation(
        "tasks:reorder", {"projectId": project_id, "taskIds": [third, first, second]}, user=ALICE
    )
    project = board(seed, project_id)
    assert [t["_id"] for t in project["tasks"]] == [third, first, second]
    assert [t["order"] for t in project["tasks"]] == [1.0, 2.0, 3.0]
    profile = {"_id": bob["_id"], "name": "Bob Builder", "imageUrl": bob["imageUrl"]}
    assert [t["assignee"] for t in project["tasks"]] == [profile, profile, None]
    assert project["tasks"][0]["priority"] == "high" and project["tasks"][2]["priority"] == "medium"


def test_get_reads_each_assignee_once(seed, monkeypatch):
    bob = seed.query("users:current", {}, user=BOB)
    alice = seed.query("users:current", {}, user=ALICE)
    project_id = new_project(seed)
    for i in range(6):
        new_task(seed, project_id, f"T{i}", assigneeId=(bob if i % 2 else alice)["_id"])
    read: list[str] = []
    original_get = Transaction.get

    async def counting_get(self, doc_id):
        read.append(doc_id)
        return await original_get(self, doc_id)

    monkeypatch.setattr(Transaction, "get", counting_get)
    tasks = board(seed, project_id)["tasks"]
    assert len(tasks) == 6 and all(t["assignee"] for t in tasks)
    assert sorted(read) == sorted([project_id, bob["_id"], alice["_id"]])


def test_other_users_private_project_is_forbidden_and_unchanged(seed):
    project_id = new_project(seed)
    task_id = new_task(seed, project_id, "Mine")
    before = board(seed, project_id)
    calls = [
        ("query", "projects:get", {"projectId": project_id}),
        ("query", "tasks:listByStatus", {"projectId": project_id, "status": "todo"}),
        ("query", "tasks:search", {"projectId": project_id, "query": "mine"}),
        ("mutation", "projects:update", {"projectId": project_id, "name": "Taken"}),
        ("mutation", "projects:remove", {"projectId": project_id}),
        ("mutation", "tasks:create", {"projectId": project_id, "title": "Intruder"}),
        ("mutation", "tasks:updateStatus", {"taskId": task_id, "status": "done"}),
        ("mutation", "tasks:reorder", {"projectId": project_id, "taskIds": [task_id]}),
        ("mutation", "comments:add", {"taskId": task_id, "content": "hi"}),
        ("query", "comments:list", {"taskId": task_id}),
    ]
    for kind, path, args in calls:
        assert seed.error_data(kind, path, args, user=BOB) == {"code": "FORBIDDEN"}, path
    assert board(seed, project_id) == before


def test_public_project_is_readable_but_not_writable_by_others(seed):
    project_id = new_project(seed)
    task_id = new_task(seed, project_id, "Shown")
    args = {"projectId": project_id, "settings": {"isPublic": True}}
    seed.mutation("projects:update", args, user=ALICE)
    assert [t["_id"] for t in board(seed, project_id, user=BOB)["tasks"]] == [task_id]
    column = seed.query("tasks:listByStatus", {"projectId": project_id, "status": "todo"}, user=BOB)
    assert [t["_id"] for t in column] == [task_id]
    found = seed.query("tasks:search", {"projectId": project_id, "query": "sho"}, user=BOB)
    assert [t["_id"] for t in found] == [task_id]
    data = seed.error_data(
        "mutation", "projects:update", {"projectId": project_id, "name": "Mine"}, user=BOB
    )
    assert data == {"code": "FORBIDDEN"}


def test_removed_project_is_not_found(seed):
    project_id = new_project(seed)
    seed.mutation("projects:remove", {"projectId": project_id}, user=ALICE)
    for kind, path, args in [
        ("query", "projects:get", {"projectId": project_id}),
        ("mutation", "projects:remove", {"projectId": project_id}),
        ("mutation", "tasks:create", {"projectId": project_id, "title": "Late"}),
    ]:
        assert seed.error_data(kind, path, args, user=ALICE) == {
            "code": "NOT_FOUND",
            "resource": "Project",
        }


def test_remove_cascades_tasks_comments_and_files_of_that_project_only(seed):
    doomed, kept = new_project(seed, "Doomed"), new_project(seed, "Kept")
    doomed_tasks = [new_task(seed, doomed, f"D{i}") for i in range(3)]
    kept_task = new_task(seed, kept, "K")
    comment_ids = [
        seed.mutation("comments:add", {"taskId": task_id, "content": "c"}, user=ALICE)
        for task_id in [*doomed_tasks, doomed_tasks[0], kept_task]
    ]
    doomed_bytes = seed.upload(b"doomed", "text/plain", user=ALICE)
    kept_bytes = seed.upload(b"kept", "text/plain", user=ALICE)
    doomed_file = seed.mutation(
        "files:save", {"storageId": doomed_bytes, "name": "d.txt", "projectId": doomed}, user=ALICE
    )
    kept_file = seed.mutation(
        "files:save", {"storageId": kept_bytes, "name": "k.txt", "projectId": kept}, user=ALICE
    )
    assert seed.mutation("projects:remove", {"projectId": doomed}, user=ALICE) is None
    gone = [doomed, *doomed_tasks, *comment_ids[:4], doomed_file, doomed_bytes]
    assert _exists(seed, gone) == [False] * len(gone)
    kept_ids = [kept, kept_task, comment_ids[4], kept_file, kept_bytes]
    assert _exists(seed, kept_ids) == [True] * len(kept_ids)
    assert seed.client.get(f"/api/storage/{doomed_bytes}").status_code == 404


def _exists(seed: SeedApp, ids: list[str]) -> list[bool]:
    db = seed.client.app.state.reactive.db

    async def check() -> list[bool]:
        result = await db.run_query(lambda tx: _gets(tx, ids))
        return result.value

    return seed.client.portal.call(check)


async def _gets(tx, ids):
    return [await tx.get(doc_id) is not None for doc_id in ids]


@pytest.mark.parametrize(
    ("path", "kind", "field"),
    [
        ("projects:get", "query", "projectId"),
        ("projects:remove", "mutation", "projectId"),
        ("tasks:updateStatus", "mutation", "taskId"),
        ("comments:list", "query", "taskId"),
        ("comments:remove", "mutation", "commentId"),
    ],
)
def test_malformed_and_wrong_table_ids_are_argument_errors(seed, path, kind, field):
    project_id = new_project(seed)
    task_id = new_task(seed, project_id, "T")
    wrong_table = project_id if field != "projectId" else task_id
    extra = {"status": "done"} if path == "tasks:updateStatus" else {}
    for bad in ["not-an-id", wrong_table]:
        body = seed.error(kind, path, {field: bad, **extra}, user=ALICE)
        assert "errorData" not in body and "ArgumentValidationError" in body["errorMessage"]
        assert field in body["errorMessage"]
    assert board(seed, project_id)["tasks"][0]["status"] == "todo"


# -- tasks -------------------------------------------------------------------------------------


def test_create_task_appends_after_the_highest_order(seed):
    project_id = new_project(seed)
    a, b = new_task(seed, project_id, "  A  "), new_task(seed, project_id, "B")
    seed.mutation("tasks:reorder", {"projectId": project_id, "taskIds": [b, a]}, user=ALICE)
    c = new_task(seed, project_id, "C", description=" why ", dueDate=1.7e12)
    tasks = board(seed, project_id)["tasks"]
    assert [(t["_id"], t["order"]) for t in tasks] == [(b, 1.0), (a, 2.0), (c, 3.0)]
    created = tasks[2]
    assert created["status"] == "todo" and created["description"] == "why"
    assert created["dueDate"] == 1.7e12 and "completedAt" not in created
    assert tasks[1]["title"] == "A" and "description" not in tasks[1]


def test_create_task_rejects_blank_title_and_unknown_assignee(seed):
    project_id = new_project(seed)
    data = seed.error_data(
        "mutation", "tasks:create", {"projectId": project_id, "title": "  "}, user=ALICE
    )
    assert data["code"] == "INVALID_TITLE"
    gone = seed.query("users:current", {}, user=BOB)["_id"]
    seed.post_clerk({"type": "user.deleted", "data": {"id": BOB, "deleted": True}})
    args = {"projectId": project_id, "title": "T", "assigneeId": gone}
    assert seed.error_data("mutation", "tasks:create", args, user=ALICE) == {
        "code": "NOT_FOUND",
        "resource": "User",
    }
    assert board(seed, project_id)["tasks"] == []


def test_update_status_sets_and_clears_completed_at(seed):
    project_id = new_project(seed)
    task_id = new_task(seed, project_id, "T")

    def set_status(status: str) -> dict[str, Any]:
        args = {"taskId": task_id, "status": status}
        assert seed.mutation("tasks:updateStatus", args, user=ALICE) is None
        return board(seed, project_id)["tasks"][0]

    done = set_status("done")
    assert done["status"] == "done" and done["completedAt"] >= done["createdAt"]
    assert set_status("done")["completedAt"] == done["completedAt"]
    doing = set_status("in_progress")
    assert doing["status"] == "in_progress" and "completedAt" not in doing
    assert "completedAt" in set_status("done")


def test_update_status_of_missing_task_is_not_found(seed):
    project_id = new_project(seed)
    task_id = new_task(seed, project_id, "T")
    seed.mutation("projects:remove", {"projectId": project_id}, user=ALICE)
    args = {"taskId": task_id, "status": "done"}
    data = seed.error_data("mutation", "tasks:updateStatus", args, user=ALICE)
    assert data == {"code": "NOT_FOUND", "resource": "Task"}


def test_reorder_with_another_projects_task_changes_nothing(seed):
    mine, bobs = new_project(seed), new_project(seed, "Bob's", user=BOB)
    a, b = new_task(seed, mine, "A"), new_task(seed, mine, "B")
    bob_task = seed.mutation("tasks:create", {"projectId": bobs, "title": "X"}, user=BOB)
    before, bob_before = board(seed, mine), board(seed, bobs, user=BOB)
    args = {"projectId": mine, "taskIds": [b, bob_task, a]}
    assert seed.error_data("mutation", "tasks:reorder", args, user=ALICE) == {"code": "FORBIDDEN"}
    assert board(seed, mine) == before and board(seed, bobs, user=BOB) == bob_before


def test_reorder_rejects_missing_and_duplicate_ids(seed):
    project_id = new_project(seed)
    a, b = new_task(seed, project_id, "A"), new_task(seed, project_id, "B")
    before = board(seed, project_id)
    args = {"projectId": project_id, "taskIds": [b, a, b]}
    assert seed.error_data("mutation", "tasks:reorder", args, user=ALICE)["code"] == (
        "DUPLICATE_TASK_IDS"
    )
    seed.mutation("projects:remove", {"projectId": new_project(seed, "Tmp")}, user=ALICE)
    other = new_project(seed, "Other")
    gone = new_task(seed, other, "Gone")
    seed.mutation("projects:remove", {"projectId": other}, user=ALICE)
    args = {"projectId": project_id, "taskIds": [b, gone]}
    data = seed.error_data("mutation", "tasks:reorder", args, user=ALICE)
    assert data == {"code": "NOT_FOUND", "resource": "Task"}
    assert board(seed, project_id) == before


def test_list_by_status_is_one_board_column_in_order(seed):
    project_id = new_project(seed)
    ids = [new_task(seed, project_id, f"T{i}") for i in range(4)]
    for task_id in (ids[3], ids[1]):
        seed.mutation("tasks:updateStatus", {"taskId": task_id, "status": "done"}, user=ALICE)
    seed.mutation(
        "tasks:reorder", {"projectId": project_id, "taskIds": [ids[3], ids[1]]}, user=ALICE
    )

    def column(status: str) -> list[str]:
        args = {"projectId": project_id, "status": status}
        return [t["_id"] for t in seed.query("tasks:listByStatus", args, user=ALICE)]

    assert column("done") == [ids[3], ids[1]]
    assert column("todo") == [ids[0], ids[2]]
    assert column("in_progress") == []


def test_search_finds_the_projects_tasks_by_title_best_first(seed):
    project_id = new_project(seed)
    other_project = new_project(seed, "Other")
    design = new_task(seed, project_id, "Design the landing page")
    design_review = new_task(seed, project_id, "Design review: design tokens")
    new_task(seed, project_id, "Write copy")
    new_task(seed, other_project, "Design elsewhere")

    def found(text: str) -> list[str]:
        args = {"projectId": project_id, "query": text}
        return [t["_id"] for t in seed.query("tasks:search", args, user=ALICE)]

    # Two occurrences of "design" outrank one; the other project's task is not found.
    assert found("design") == [design_review, design]
    assert found("landing pa") == [design]  # the last word is a prefix
    assert found("  ?! ") == []
    assert found("nothing like it") == []
    data = seed.error_data(
        "query", "tasks:search", {"projectId": project_id, "query": "x" * 201}, user=ALICE
    )
    assert data["code"] == "INVALID_QUERY"


# -- comments ----------------------------------------------------------------------------------


def _public_task(seed: SeedApp, **settings: bool) -> str:
    project_id = new_project(seed)
    args = {"projectId": project_id, "settings": {"isPublic": True, **settings}}
    seed.mutation("projects:update", args, user=ALICE)
    return new_task(seed, project_id, "Discuss")


def test_comments_are_listed_oldest_first_with_author_profiles(seed):
    task_id = _public_task(seed)
    seed.mutation("comments:add", {"taskId": task_id, "content": "  first "}, user=ALICE)
    seed.mutation("comments:add", {"taskId": task_id, "content": "second"}, user=BOB)
    comments = seed.query("comments:list", {"taskId": task_id}, user=BOB)
    assert [c["content"] for c in comments] == ["first", "second"]
    assert [c["author"]["name"] for c in comments] == ["Alice Liddell", "Bob Builder"]
    assert all(set(c["author"]) == {"_id", "name", "imageUrl"} for c in comments)


def test_comment_content_must_not_be_blank_or_huge(seed):
    task_id = _public_task(seed)
    for content in ["   ", "x" * 5001]:
        args = {"taskId": task_id, "content": content}
        assert seed.error_data("mutation", "comments:add", args, user=ALICE)["code"] == (
            "INVALID_CONTENT"
        )
    assert seed.query("comments:list", {"taskId": task_id}, user=ALICE) == []


def test_comments_disabled_rejects_everyone(seed):
    task_id = _public_task(seed, allowComments=False)
    for user in (ALICE, BOB):
        args = {"taskId": task_id, "content": "hi"}
        assert seed.error_data("mutation", "comments:add", args, user=user)["code"] == (
            "COMMENTS_DISABLED"
        )


def test_comment_removal_by_author_or_project_owner_only(seed):
    task_id = _public_task(seed)
    seed.sign_up("user_carol", "Carol Danvers")
    by_bob = seed.mutation("comments:add", {"taskId": task_id, "content": "b1"}, user=BOB)
    by_bob_2 = seed.mutation("comments:add", {"taskId": task_id, "content": "b2"}, user=BOB)
    by_alice = seed.mutation("comments:add", {"taskId": task_id, "content": "a"}, user=ALICE)
    for comment_id in (by_bob, by_alice):
        args = {"commentId": comment_id}
        data = seed.error_data("mutation", "comments:remove", args, user="user_carol")
        assert data == {"code": "FORBIDDEN"}
    data = seed.error_data("mutation", "comments:remove", {"commentId": by_alice}, user=BOB)
    assert data == {"code": "FORBIDDEN"}
    assert seed.mutation("comments:remove", {"commentId": by_bob}, user=BOB) is None
    assert seed.mutation("comments:remove", {"commentId": by_bob_2}, user=ALICE) is None
    remaining = seed.query("comments:list", {"taskId": task_id}, user=ALICE)
    assert [c["_id"] for c in remaining] == [by_alice]
    data = seed.error_data("mutation", "comments:remove", {"commentId": by_bob}, user=BOB)
    assert data == {"code": "NOT_FOUND", "resource": "Comment"}


def test_comments_on_a_missing_task_are_not_found(seed):
    project_id = new_project(seed)
    task_id = new_task(seed, project_id, "T")
    seed.mutation("projects:remove", {"projectId": project_id}, user=ALICE)
    for kind, path, args in [
        ("query", "comments:list", {"taskId": task_id}),
        ("mutation", "comments:add", {"taskId": task_id, "content": "x"}),
    ]:
        assert seed.error_data(kind, path, args, user=ALICE) == {
            "code": "NOT_FOUND",
            "resource": "Task",
        }


# -- billing internals -------------------------------------------------------------------------


def test_stripe_subscription_lifecycle_by_customer_index(seed):
    alice = seed.query("users:current", {}, user=ALICE)
    args = {"userId": alice["_id"], "stripeCustomerId": "cus_A"}
    assert seed.run_internal("users:updateStripeCustomerId", args).ok
    by_clerk = seed.run_internal("users:getByClerkId", {"clerkId": ALICE}).value
    assert by_clerk["stripeCustomerId"] == "cus_A"
    created = seed.run_internal(
        "users:handleSubscriptionCreated", {"stripeCustomerId": "cus_A", "subscriptionId": "sub_1"}
    )
    assert created.value == alice["_id"]
    pro = seed.query("users:current", {}, user=ALICE)
    assert pro["plan"] == "pro" and pro["stripeSubscriptionId"] == "sub_1"
    stale = {"stripeCustomerId": "cus_A", "subscriptionId": "sub_old"}
    assert seed.run_internal("users:handleSubscriptionCanceled", stale).value is None
    assert seed.query("users:current", {}, user=ALICE)["plan"] == "pro"
    canceled = {"stripeCustomerId": "cus_A", "subscriptionId": "sub_1"}
    assert seed.run_internal("users:handleSubscriptionCanceled", canceled).value == alice["_id"]
    free = seed.query("users:current", {}, user=ALICE)
    assert free["plan"] == "free" and "stripeSubscriptionId" not in free


def test_stripe_events_for_unknown_customers_change_nothing(seed):
    args = {"stripeCustomerId": "cus_nobody", "subscriptionId": "sub_1"}
    assert seed.run_internal("users:handleSubscriptionCreated", args).value is None
    assert seed.run_internal("users:handleSubscriptionCanceled", args).value is None
    assert seed.query("users:current", {}, user=ALICE)["plan"] == "free"
    bob = seed.query("users:current", {}, user=BOB)
    seed.post_clerk({"type": "user.deleted", "data": {"id": BOB, "deleted": True}})
    args = {"userId": bob["_id"], "stripeCustomerId": "cus_B"}
    outcome = seed.run_internal("users:updateStripeCustomerId", args)
    assert outcome.error.data == {"code": "NOT_FOUND", "resource": "User"}
    assert seed.run_internal("users:getByClerkId", {"clerkId": BOB}).value is None


# -- live board over WebSockets ----------------------------------------------------------------


def test_subscribed_board_sees_each_task_change_from_another_client(seed):
    project_id = new_project(seed)
    with (
        seed.client.websocket_connect("/api/1.48.0/sync") as ws1,
        seed.client.websocket_connect("/api/sync") as ws2,
    ):
        watcher, writer = Peer(ws1), Peer(ws2)
        watcher.authenticate(seed.token(ALICE))
        writer.authenticate(seed.token(ALICE))
        first = updates(watcher.subscribe(7, "projects:get", {"projectId": project_id}))[7]
        assert first["type"] == "QueryUpdated" and first["value"]["tasks"] == []

        def watched_titles() -> list[str]:
            transition = watcher.receive_until("Transition")
            return [t["title"] for t in updates(transition)[7]["value"]["tasks"]]

        created = []
        for title in ("One", "Two", "Three"):
            response, _ = writer.mutate("tasks:create", {"projectId": project_id, "title": title})
            assert response["success"], response
            created.append(response["result"])
            assert watched_titles()[-1] == title
        response, _ = writer.mutate(
            "tasks:reorder", {"projectId": project_id, "taskIds": created[::-1]}
        )
        assert response["success"], response
        assert watched_titles() == ["Three", "Two", "One"]
        response, _ = writer.mutate("tasks:updateStatus", {"taskId": created[0], "status": "done"})
        transition = watcher.receive_until("Transition")
        tasks = updates(transition)[7]["value"]["tasks"]
        assert [t["status"] for t in tasks] == ["todo", "todo", "done"]


def test_a_live_search_reruns_only_when_a_matching_task_changes(seed, monkeypatch):
    project_id, other_project = new_project(seed), new_project(seed, "Other")
    runs = []
    search = Transaction._search

    async def counting_search(self, spec, **options):  # type: ignore[no-untyped-def]
        runs.append(spec.search.text)
        return await search(self, spec, **options)

    monkeypatch.setattr(Transaction, "_search", counting_search)
    with seed.client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        peer.authenticate(seed.token(ALICE))
        first = updates(
            peer.subscribe(3, "tasks:search", {"projectId": project_id, "query": "des"})
        )
        assert first[3]["value"] == [] and runs == ["des"]

        def create(project: str, title: str) -> dict[str, Any]:
            response, transition = peer.mutate(
                "tasks:create", {"projectId": project, "title": title}
            )
            assert response["success"], response
            return updates(transition)

        # Another title in the project, the same title in another project: no re-run.
        assert 3 not in create(project_id, "Write copy")
        assert 3 not in create(other_project, "Design elsewhere")
        assert runs == ["des"]
        found = create(project_id, "Design the page")[3]["value"]
        assert [t["title"] for t in found] == ["Design the page"] and runs == ["des", "des"]


def test_signed_out_socket_query_fails_until_it_authenticates(seed):
    project_id = new_project(seed)
    with seed.client.websocket_connect("/api/sync") as ws:
        peer = Peer(ws)
        update = updates(peer.subscribe(1, "projects:get", {"projectId": project_id}))[1]
        assert update["type"] == "QueryFailed" and update["errorData"]["code"] == "UNAUTHORIZED"
        update = updates(peer.authenticate(seed.token(ALICE)))[1]
        assert update["type"] == "QueryUpdated" and update["value"]["_id"] == project_id


def test_app_starts_without_clerk_configured(tmp_path, issuer, monkeypatch):
    monkeypatch.delenv("CLERK_JWT_ISSUER_DOMAIN", raising=False)
    app = create_app(ROOT, database_url=f"sqlite:///{tmp_path}/plain.db")
    with TestClient(app) as client:
        anonymous = {"path": "users:current", "args": {}}
        assert client.post("/api/query", json=anonymous).json()["value"] is None
        token = issuer.sign(subject=ALICE)
        signed = client.post(
            "/api/query", json=anonymous, headers={"Authorization": f"Bearer {token}"}
        )
        assert signed.status_code == 401
