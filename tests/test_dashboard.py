"""The dashboard's server side: its routes and sync system functions answer only admins (401
without the admin key, 403 for pages of other sites and for a production server without one),
its views are live queries, and its edits are ordinary mutations that clients see live and that
the schema checks."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from reactive.application import Application
from reactive.dashboard import Dashboard
from reactive.database import Database
from reactive.http import create_app
from reactive.values import encode_value
from tests.live_server import LiveServer, open_sync_socket
from tests.seed_helpers import Peer as SyncPeer

CHAT = Path(__file__).parent / "projects" / "chat"
SCHEDULER = Path(__file__).parent / "projects" / "scheduler"
KEY = "test-admin-key-0123456789"
SYSTEM = "_system/dashboard"

#: Every dashboard route: (method, path).
ROUTES = [
    ("GET", "/_dashboard/"),
    ("GET", "/_dashboard/app.js"),
    ("GET", "/_dashboard/style.css"),
    ("GET", "/_dashboard/vendor/convex.bundle.js"),
    ("GET", "/_dashboard/api/key"),
    ("GET", "/_dashboard/api/health"),
    ("GET", "/_dashboard/api/logs"),
    ("POST", "/_dashboard/api/run"),
]


def _client(tmp_path: Path, *, dev: bool, database_url: str | None = None) -> TestClient:
    database_url = database_url or f"sqlite:///{tmp_path}/chat.db"
    app = create_app(CHAT, database_url=database_url, dev=dev)
    return TestClient(app, base_url="http://127.0.0.1:3210")


def _request(client: TestClient, method: str, path: str, **kwargs):
    if path.endswith("/logs"):
        # A stream that never ends: only its status is read.
        with client.stream(method, path, **kwargs) as response:
            return response
    if method == "POST":
        kwargs.setdefault("json", {"path": "messages:list", "args": {"channel": "a"}})
    return client.request(method, path, **kwargs)


class Peer(SyncPeer):
    def mutation(self, path: str, args: dict) -> dict:
        """Run a mutation: its MutationResponse (the Transition after it: `after_mutation`)."""
        response, self.after_mutation = self.mutate(path, args)
        return response


def _value(transition: dict, query_id: int):
    for modification in transition["modifications"]:
        if modification["queryId"] == query_id:
            return modification
    raise AssertionError(f"query {query_id} not in {transition}")


# -- the admin gate ------------------------------------------------------------------------------


def test_production_routes_answer_401_without_the_admin_key_and_403_to_other_sites(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("REACTIVE_ADMIN_KEY", KEY)
    with _client(tmp_path, dev=False) as client:
        for method, path in ROUTES:
            assert _request(client, method, path).status_code == 401, path
            wrong = {"Authorization": "Convex not-the-key"}
            assert _request(client, method, path, headers=wrong).status_code == 401, path
            foreign = {"Authorization": f"Convex {KEY}", "Origin": "https://evil.example"}
            assert _request(client, method, path, headers=foreign).status_code == 403, path
            right = {"Authorization": f"Convex {KEY}"}
            assert _request(client, method, path, headers=right).status_code == 200, path
        # The page without the key is the form that asks for it, and nothing else.
        page = client.get("/_dashboard/")
        assert page.status_code == 401 and 'name="key"' not in page.text
        assert "name=key" in page.text and "app.js" not in page.text
        assert client.get("/_dashboard/api/key").json()["code"] == "Unauthenticated"


def test_the_sign_in_form_sets_a_cookie_that_opens_the_dashboard(tmp_path, monkeypatch):
    monkeypatch.setenv("REACTIVE_ADMIN_KEY", KEY)
    with _client(tmp_path, dev=False) as client:
        refused = client.post("/_dashboard/sign-in", data={"key": "guess"}, follow_redirects=False)
        assert refused.status_code == 401 and "not the admin key" in refused.text
        assert "reactive_dashboard" not in client.cookies
        client.cookies.set("reactive_dashboard", "forged", path="/_dashboard")
        assert client.get("/_dashboard/api/key").status_code == 401
        client.cookies.clear()
        signed_in = client.post("/_dashboard/sign-in", data={"key": KEY}, follow_redirects=False)
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/_dashboard" in cookie
        assert KEY not in cookie
        page = client.get("/_dashboard/")
        assert page.status_code == 200 and "app.js" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert client.get("/_dashboard/api/key").json() == {"key": KEY}
        for escape in ("..%2F..%2Fschema.py", "vendor/..%2F..%2Fdashboard.py", "%2Fetc%2Fpasswd"):
            escaped = client.get(f"/_dashboard/{escape}")
            assert escaped.status_code == 404 and "No dashboard file" in escaped.text, escape
        # Another site's page gets nothing, cookie or not.
        foreign = client.get("/_dashboard/api/key", headers={"Sec-Fetch-Site": "cross-site"})
        assert foreign.status_code == 403
        assert "access-control-allow-origin" not in foreign.headers


def test_a_production_server_without_an_admin_key_has_no_dashboard(tmp_path, monkeypatch):
    monkeypatch.delenv("REACTIVE_ADMIN_KEY", raising=False)
    with _client(tmp_path, dev=False) as client:
        for method, path in ROUTES:
            assert _request(client, method, path).status_code == 403, path
        with client.websocket_connect("/api/sync") as ws:
            peer = Peer(ws)
            assert peer.authenticate_admin("anything")["type"] == "AuthError"
            with pytest.raises(WebSocketDisconnect):
                ws.receive_json()


def test_sync_admin_auth_needs_the_key_and_system_functions_need_admin_auth(tmp_path, monkeypatch):
    monkeypatch.setenv("REACTIVE_ADMIN_KEY", KEY)
    with _client(tmp_path, dev=False) as client:
        with client.websocket_connect("/api/sync") as ws:
            peer = Peer(ws)
            reply = peer.authenticate_admin("not-the-key")
            assert reply["type"] == "AuthError" and "admin key" in reply["error"]
            with pytest.raises(WebSocketDisconnect):
                ws.receive_json()
        with client.websocket_connect("/api/sync") as ws:
            peer = Peer(ws)
            failed = _value(peer.subscribe(1, f"{SYSTEM}:tables", {}), 1)
            assert failed["type"] == "QueryFailed"
            assert "Could not find public function" in failed["errorMessage"]
            refused = peer.mutation(f"{SYSTEM}:insert", {"table": "messages", "value": {}})
            assert refused["success"] is False
        with client.websocket_connect("/api/sync") as ws:
            peer = Peer(ws)
            assert peer.authenticate_admin(KEY)["type"] == "Transition"
            tables = _value(peer.subscribe(1, f"{SYSTEM}:tables", {}), 1)
            assert tables["type"] == "QueryUpdated"
            names = [table["name"] for table in tables["value"]]
            assert {"messages", "counters"} <= set(names)


def test_dev_hands_its_own_admin_key_to_this_machine_only(tmp_path, monkeypatch):
    monkeypatch.delenv("REACTIVE_ADMIN_KEY", raising=False)
    with _client(tmp_path, dev=True) as client:
        key = client.get("/_dashboard/api/key").json()["key"]
        assert len(key) >= 32
        rebinding = client.get("/_dashboard/api/key", headers={"Host": "evil.example"})
        assert rebinding.status_code == 403
        foreign = client.get("/_dashboard/api/key", headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        with client.websocket_connect("/api/sync") as ws:
            assert Peer(ws).authenticate_admin(key)["type"] == "Transition"


# -- live views and edits --------------------------------------------------------------------------


def _admin(ws) -> Peer:
    peer = Peer(ws)
    assert peer.authenticate_admin(KEY)["type"] == "Transition"
    return peer


@pytest.fixture
def admin_session(tmp_path, monkeypatch, store_url) -> Iterator[tuple[TestClient, Peer]]:
    """A production app with an admin key on `store_url`, and an admin's sync socket to it."""
    monkeypatch.setenv("REACTIVE_ADMIN_KEY", KEY)
    with (
        _client(tmp_path, dev=False, database_url=store_url) as client,
        client.websocket_connect("/api/sync") as admin_ws,
    ):
        yield client, _admin(admin_ws)


def test_tables_page_and_edits_are_live_and_go_through_the_commit_path(admin_session):
    """On SQLite and on PostgreSQL."""
    client, admin = admin_session
    with client.websocket_connect("/api/sync") as user_ws:
        user = Peer(user_ws)
        for body in ("one", "two", "three"):
            assert user.mutation("messages:send", {"channel": "c", "body": body})["success"]
        count = _value(admin.subscribe(1, f"{SYSTEM}:count", {"table": "messages"}), 1)["value"]
        assert count == 3.0
        page_args = {
            "table": "messages",
            "index": "by_channel",
            "order": "asc",
            "range": [["eq", "channel", "c"]],
            "filter": [["neq", "body", "two"]],
            "paginationOpts": {"numItems": 10, "cursor": None},
        }
        page = _value(admin.subscribe(2, f"{SYSTEM}:page", page_args), 2)["value"]
        assert [doc["body"] for doc in page["page"]] == ["one", "three"]
        user_list = _value(user.subscribe(1, "messages:list", {"channel": "c"}), 1)["value"]
        first = next(doc for doc in user_list if doc["body"] == "one")

        # An edit from the dashboard is a mutation: the user's subscription moves with it.
        edit = {"id": first["_id"], "value": {"channel": "c", "body": "ONE"}}
        assert admin.mutation(f"{SYSTEM}:replace", edit)["success"]
        seen = _value(user.receive_until("Transition"), 1)["value"]
        assert "ONE" in [doc["body"] for doc in seen]

        # A client's insert moves the dashboard's page and count.
        assert user.mutation("messages:send", {"channel": "c", "body": "four"})["success"]
        updates: dict[int, object] = {}
        while not {1, 2} <= updates.keys():
            transition = admin.receive_until("Transition")
            for modification in transition["modifications"]:
                updates[modification["queryId"]] = modification["value"]
        assert [doc["body"] for doc in updates[2]["page"]] == ["ONE", "three", "four"]
        assert updates[1] == 4.0


def test_a_bad_edit_is_refused_with_the_schema_message_and_changes_nothing(admin_session):
    """On SQLite and on PostgreSQL."""
    client, admin = admin_session
    inserted = admin.mutation(
        f"{SYSTEM}:insert", {"table": "messages", "value": {"channel": "c", "body": "b"}}
    )
    assert inserted["success"]
    doc_id = inserted["result"]
    bad = admin.mutation(f"{SYSTEM}:replace", {"id": doc_id, "value": {"channel": 5.0}})
    assert bad["success"] is False
    assert "channel" in bad["result"] and "messages" in bad["result"]
    doc = _value(admin.subscribe(1, f"{SYSTEM}:get", {"id": doc_id}), 1)["value"]
    assert (doc["channel"], doc["body"]) == ("c", "b")
    system = admin.mutation(f"{SYSTEM}:insert", {"table": "_storage", "value": {}})
    assert system["success"] is False and "system table" in system["result"]
    deleted = admin.mutation(f"{SYSTEM}:delete", {"ids": [doc_id]})
    assert deleted["success"]
    assert _value(admin.after_mutation, 1)["value"] is None
    logged = [(r.path, r.ok) for r in client.app.state.reactive.calls.recent()]
    assert (f"{SYSTEM}:replace", False) in logged and (f"{SYSTEM}:delete", True) in logged
    assert not any(path == f"{SYSTEM}:get" for path, _ in logged)


def test_functions_are_listed_with_validators_and_run_as_any_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("REACTIVE_ADMIN_KEY", KEY)
    headers = {"Authorization": f"Convex {KEY}"}
    with (
        _client(tmp_path, dev=False) as client,
        client.websocket_connect("/api/sync") as admin_ws,
    ):
        admin = _admin(admin_ws)
        listed = _value(admin.subscribe(1, f"{SYSTEM}:functions", {}), 1)["value"]
        by_path = {fn["path"]: fn for fn in listed}
        assert by_path["messages:send"]["kind"] == "mutation"
        assert by_path["messages:send"]["args"]["value"]["body"]["fieldType"] == {"type": "string"}
        assert by_path["messages:send"]["returns"] == {"type": "id", "tableName": "messages"}
        assert not any(path.startswith("_system/") for path in by_path)
        internal = [fn for fn in listed if fn["internal"]]
        assert internal, "internal functions are listed too"

        claims = {"subject": "user_7", "issuer": "https://issuer.example"}
        body = {"path": "messages:send", "args": {"channel": "c", "body": "hi"}, "identity": claims}
        sent = client.post("/_dashboard/api/run", json=body, headers=headers).json()
        assert sent["status"] == "success" and sent["kind"] == "mutation"
        assert sent["durationMs"] >= 0
        whoami = {"path": "messages:whoami", "args": {}, "identity": claims}
        assert client.post("/_dashboard/api/run", json=whoami, headers=headers).json()["value"] == (
            "user_7"
        )
        nobody = client.post(
            "/_dashboard/api/run", json=whoami | {"identity": None}, headers=headers
        ).json()
        assert nobody["value"] is None
        listing = client.post(
            "/_dashboard/api/run",
            json={"path": "messages:list", "args": {"channel": "c"}},
            headers=headers,
        ).json()
        assert listing["logLines"] and "listing c" in listing["logLines"][0]
        assert listing["value"][0]["author"] == "user_7"
        # Acting as a user over sync: the admin's live queries run as that user.
        with client.websocket_connect("/api/sync") as ws:
            peer = Peer(ws)
            assert peer.authenticate_admin(KEY, acting_as=claims)["type"] == "Transition"
            assert _value(peer.subscribe(1, "messages:whoami", {}), 1)["value"] == "user_7"
        health = client.get("/_dashboard/api/health", headers=headers).json()
        assert health["status"] == "ok" and health["sockets"] == 1  # the admin's socket
        assert health["subscriptions"] >= 1 and health["commitsPerSecond"] > 0
        recent = [(r.kind, r.path) for r in client.app.state.reactive.calls.recent()]
        assert ("mutation", "messages:send") in recent and ("query", "messages:whoami") in recent
        assert not any(path.startswith("_system/") for _, path in recent)


# -- counts on both storage backends ---------------------------------------------------------------


async def test_count_index_counts_live_documents_at_a_snapshot(db):
    ids = []
    for n in range(5):
        result = await db.run_mutation(lambda tx, n=n: tx.insert("things", {"n": float(n)}))
        ids.append(result.value)
    after_inserts = db.latest_ts
    await db.run_mutation(lambda tx: tx.delete(ids[0]))
    await db.run_mutation(lambda tx: tx.patch(ids[1], {"n": 10.0}))
    by_id = db.catalog.index("things", "by_id")
    assert by_id is not None
    assert await db.persistence.count_index(by_id.index_id, db.latest_ts) == 4
    assert await db.persistence.count_index(by_id.index_id, after_inserts) == 5
    assert await db.persistence.count_index(by_id.index_id, 0) == 0


# -- a big table ---------------------------------------------------------------------------------

BIG = 100_000
FIRST_PAGE_P50_MS = 50.0


async def _seed_big_table(database_url: str) -> None:
    db = await Database.open(database_url)
    try:
        for start in range(0, BIG, 10_000):

            async def insert(tx, start=start):
                for n in range(start, start + 10_000):
                    await tx.insert("things", {"n": float(n), "label": f"thing {n}"})

            await db.run_mutation(insert)
    finally:
        await db.close()


async def test_the_first_page_of_a_100k_document_table_answers_within_50_ms(tmp_path):
    """Over a real socket to a real server (`reactive serve`'s app under uvicorn): the time
    from asking for the dashboard's first page of the table to the Transition that carries it."""
    database_url = f"sqlite:///{tmp_path}/big.db"
    await _seed_big_table(database_url)
    server = LiveServer(CHAT, database_url, env={"REACTIVE_ADMIN_KEY": KEY}, dev=False)
    with server:
        async with websockets.connect(server.url.replace("http", "ws") + "/api/sync") as ws:
            await ws.send(json.dumps(_connect()))
            auth = {"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin", "value": KEY}
            await ws.send(json.dumps(auth))
            assert await _next_transition(ws)
            page_args = {"table": "things", "paginationOpts": {"numItems": 50, "cursor": None}}
            times, version = [], 0
            for query_id in range(30):
                started = time.perf_counter()
                add = {"type": "Add", "queryId": query_id, "udfPath": f"{SYSTEM}:page"}
                add["args"] = [encode_value(page_args)]
                await ws.send(json.dumps(_modify(version, add)))
                transition = await _next_transition(ws)
                times.append((time.perf_counter() - started) * 1000)
                page = transition["modifications"][0]["value"]["page"]
                assert [doc["n"] for doc in page] == [float(BIG - 1 - n) for n in range(50)]
                remove = {"type": "Remove", "queryId": query_id}
                await ws.send(json.dumps(_modify(version + 1, remove)))
                await _next_transition(ws)
                version += 2
            count = {"type": "Add", "queryId": 1000, "udfPath": f"{SYSTEM}:count"}
            count["args"] = [encode_value({"table": "things"})]
            await ws.send(json.dumps(_modify(version, count)))
            assert (await _next_transition(ws))["modifications"][0]["value"] == float(BIG)
    p50 = statistics.median(times)
    print(f"first page of {BIG} documents over the wire: p50 {p50:.2f} ms, max {max(times):.2f}")
    assert p50 < FIRST_PAGE_P50_MS


def _connect() -> dict:
    return {
        "type": "Connect",
        "sessionId": str(uuid.uuid4()),
        "connectionCount": 0,
        "lastCloseReason": "InitialConnect",
        "clientTs": 0,
    }


def _modify(base: int, modification: dict) -> dict:
    return {
        "type": "ModifyQuerySet",
        "baseVersion": base,
        "newVersion": base + 1,
        "modifications": [modification],
    }


async def _next_transition(ws) -> dict:
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == "Transition":
            return message


async def test_a_count_re_runs_only_for_writes_to_its_own_table(tmp_path):
    app = await Application.start(CHAT, f"sqlite:///{tmp_path}/counts.db", dev=True)
    try:
        dashboard = Dashboard(app)
        outcome = await dashboard.run_query(f"{SYSTEM}:count", {"table": "messages"})
        assert outcome.value == 0.0 and outcome.token is not None
        fired: list[int] = []
        app.subscribe(outcome.token, lambda _sub, ts: fired.append(ts))
        counter = {"table": "counters", "value": {"name": "a", "value": 1.0}}
        assert (await dashboard.run_mutation(f"{SYSTEM}:insert", counter)).ok
        await asyncio.sleep(0.05)
        assert fired == []
        assert (await app.run_mutation("messages:send", {"channel": "c", "body": "x"})).ok
        await asyncio.sleep(0.05)
        assert len(fired) == 1
        again = await dashboard.run_query(f"{SYSTEM}:count", {"table": "messages"})
        assert again.value == 1.0
    finally:
        await app.close()


async def test_an_admin_cancels_a_pending_job_and_a_finished_one_stays(tmp_path):
    app = await Application.start(SCHEDULER, f"sqlite:///{tmp_path}/jobs.db", dev=True)
    try:
        dashboard = Dashboard(app)
        later = {"delay": 60_000.0, "ref": "jobs:record", "args": {"name": "later"}}
        pending_id = (await app.run_mutation("jobs:schedule", later)).value
        now = {"delay": 0.0, "ref": "jobs:record", "args": {"name": "now"}}
        done_id = (await app.run_mutation("jobs:schedule", now)).value

        async def state(job_id: str) -> str:
            row = (await dashboard.run_query(f"{SYSTEM}:get", {"id": job_id})).value
            return str(row["state"]["kind"])

        async with asyncio.timeout(10):
            while await state(done_id) != "success":
                await asyncio.sleep(0.02)
        for job_id in (pending_id, done_id):
            assert (await dashboard.run_mutation(f"{SYSTEM}:cancel", {"id": job_id})).ok
        assert (await state(pending_id), await state(done_id)) == ("canceled", "success")
        not_a_job = await dashboard.run_mutation(f"{SYSTEM}:cancel", {"id": "nonsense"})
        assert not_a_job.error is not None and "_scheduled_functions" in not_a_job.error.message
    finally:
        await app.close()


def test_health_shows_the_rows_a_deploy_backfilled_and_the_new_version(tmp_path, monkeypatch):
    import shutil

    from reactive.deployments import bundle_project

    monkeypatch.setenv("REACTIVE_ADMIN_KEY", KEY)
    monkeypatch.setenv("REACTIVE_DEPLOY_DIR", str(tmp_path / "deploys"))
    headers = {"Authorization": f"Convex {KEY}"}
    new = tmp_path / "new"
    shutil.copytree(CHAT, new, ignore=shutil.ignore_patterns("__pycache__"))
    schema = new / "schema.py"
    schema.write_text(
        schema.read_text().replace(
            '.index("by_channel", ["channel"])',
            '.index("by_channel", ["channel"]).index("by_body", ["body"])',
        )
    )
    with (
        _client(tmp_path, dev=False) as client,
        client.websocket_connect("/api/sync") as admin_ws,
    ):
        admin = _admin(admin_ws)
        for n in range(7):
            message = {"table": "messages", "value": {"channel": "c", "body": f"b{n}"}}
            assert admin.mutation(f"{SYSTEM}:insert", message)["success"]
        before = _value(admin.subscribe(1, f"{SYSTEM}:schema", {}), 1)["value"]["deployment"]
        assert before["version"] is None
        deployed = client.post("/api/deploy", content=bundle_project(new), headers=headers)
        assert '"type":"done"' in deployed.text
        health = client.get("/_dashboard/api/health", headers=headers).json()
        assert health["backfilledRows"] == {"messages.by_body": 7}
        # The code switch re-runs the admin's queries: the new version and index show up.
        after = _value(admin.receive_until("Transition"), 1)["value"]["deployment"]
        assert after["version"] == 1 and after["deployedAtMs"] > 0
        tables = _value(admin.subscribe(2, f"{SYSTEM}:tables", {}), 2)["value"]
        messages = next(table for table in tables if table["name"] == "messages")
        assert {"name": "by_body", "fields": ["body"], "state": "ready"} in messages["indexes"]


# -- the nodes sharing the database --------------------------------------------------------------


async def _nodes_until(dashboard: Dashboard, done, timeout: float = 10.0) -> dict[str, dict]:
    """The nodes `dashboard` lists, by id, once `done(nodes)` holds."""
    async with asyncio.timeout(timeout):
        while True:
            nodes = {node["id"]: node for node in await dashboard.nodes()}
            if done(nodes):
                return nodes
            await asyncio.sleep(0.02)


async def test_every_node_on_the_database_is_listed_and_one_that_stops_leaves(store_url):
    first = await Application.start(CHAT, store_url, dev=False)
    second = await Application.start(CHAT, store_url, dev=False)
    a, b = Dashboard(first), Dashboard(second)
    try:
        first.storage.base_url, second.storage.base_url = "http://a.test", "http://b.test"
        a.start_reporting(lambda: 3)
        b.start_reporting(lambda: 5)
        nodes = await _nodes_until(a, lambda nodes: len(nodes) == 2)
        assert nodes[a.node_id]["self"] and not nodes[b.node_id]["self"]
        seen_by_b = {node["id"]: node for node in await b.nodes()}
        assert set(seen_by_b) == set(nodes) and seen_by_b[b.node_id]["self"]
        other = nodes[b.node_id]
        assert (other["url"], other["sockets"], other["state"]) == ("http://b.test", 5, "live")
        assert other["status"] == "ok" and other["lag_ms"] >= 0
        assert {"commitsPerSecond", "subscriptions", "pid", "startedAtMs"} <= set(other)
        await b.stop_reporting()
        assert set(await _nodes_until(a, lambda nodes: len(nodes) == 1)) == {a.node_id}
    finally:
        await a.stop_reporting()
        await first.close()
        await second.close()


async def test_a_silent_node_is_marked_and_a_long_silent_or_unreadable_report_is_dropped(
    store_url,
):
    import orjson

    app = await Application.start(CHAT, store_url, dev=False)
    try:
        dashboard = Dashboard(app)
        await dashboard.report()
        persistence = app.db.persistence
        now_ms = time.time() * 1000
        ghost = {"id": "ghost", "url": None, "reportedAtMs": now_ms - 10_000, "status": "ok"}
        gone = ghost | {"id": "gone", "reportedAtMs": now_ms - 3_600_000}
        await persistence.set_meta("node/ghost", orjson.dumps(ghost))
        await persistence.set_meta("node/gone", orjson.dumps(gone))
        await persistence.set_meta("node/garbage", b"not json")
        nodes = {node["id"]: node for node in await dashboard.nodes()}
        assert set(nodes) == {dashboard.node_id, "ghost"}
        assert (nodes["ghost"]["state"], nodes[dashboard.node_id]["state"]) == ("silent", "live")
        assert 9_000 <= nodes["ghost"]["reportAgeMs"] <= 60_000
        left = [key for key, _ in await persistence.meta_items("node/")]
        assert left == sorted(["node/ghost", f"node/{dashboard.node_id}"])
    finally:
        await app.close()


@pytest.mark.postgres
async def test_server_processes_see_each_other_and_a_killed_one_goes_silent(postgres_store_url):
    env = {"REACTIVE_ADMIN_KEY": KEY, "REACTIVE_NODE_REPORT_INTERVAL_S": "0.2"}
    servers = [LiveServer(CHAT, postgres_store_url, env=env, dev=False) for _ in range(3)]
    watcher, stopped, killed = servers
    for server in servers:
        server.start()
    try:

        def nodes() -> dict[str, dict]:
            response = httpx.get(
                watcher.url + "/_dashboard/api/health",
                headers={"Authorization": f"Convex {KEY}"},
                timeout=5,
            )
            assert response.status_code == 200, response.text
            return {node["url"]: node for node in response.json()["nodes"]}

        async def until(done) -> dict[str, dict]:
            async with asyncio.timeout(15):
                while not done(found := nodes()):
                    await asyncio.sleep(0.1)
                return found

        args = {"channel": "a"}
        ws = await open_sync_socket(killed.url, "messages:list", args, session_id="s1")
        try:
            found = await until(lambda n: n.get(killed.url, {}).get("sockets") == 1 and len(n) == 3)
            assert all(node["state"] == "live" for node in found.values())
            assert found[watcher.url]["self"] and not found[killed.url]["self"]
            stopped.stop()  # a clean shutdown takes the node off the list
            await until(lambda n: stopped.url not in n)
            assert killed.process is not None
            killed.process.kill()
            found = await until(lambda n: n[killed.url]["state"] == "silent")
            assert found[watcher.url]["state"] == "live"
        finally:
            await ws.close()
    finally:
        for server in servers:
            server.stop()
